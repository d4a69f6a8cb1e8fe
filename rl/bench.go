package rl

import (
	"errors"
	"fmt"
	"time"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// BenchConfig sizes BenchRollout.
type BenchConfig struct {
	// Prompts are the prompts; each gets G completions.
	Prompts [][]int32
	G       int
	// NewTokens is every completion's exact length: no token stops one.
	NewTokens int
	// MicroBatch bounds the completions per training forward pass, and so
	// the memory of the logits; 0 means all at once.
	MicroBatch int
	Seed       uint64
}

// BenchResult is what BenchRollout measures. Token rates count completion
// tokens.
type BenchResult struct {
	RolloutTokensPerS float64
	TrainTokensPerS   float64
	// GenerationShare is the fraction of the step's time spent generating.
	GenerationShare float64
	GenerationS     float64
	TrainS          float64
}

// BenchRollout times the two halves of a GRPO step on m, for `minnow bench
// rollout`: sampling G completions of NewTokens tokens per prompt through
// the KV cache, then the policy forward and backward passes of the GRPO
// loss over them. The gradients it leaves are released. It returns an
// error when the config is out of range or a pass fails.
func BenchRollout(m model.Model, cfg BenchConfig) (BenchResult, error) {
	if len(cfg.Prompts) == 0 || cfg.G < 1 || cfg.NewTokens < 1 || cfg.MicroBatch < 0 {
		return BenchResult{}, fmt.Errorf("rl: bench: %d prompts, G %d, %d new tokens, micro-batch %d", len(cfg.Prompts), cfg.G, cfg.NewTokens, cfg.MicroBatch)
	}
	ids := make([]uint64, len(cfg.Prompts))
	for i := range ids {
		ids[i] = uint64(i)
	}
	start := time.Now()
	r, err := Generate(m, nil, cfg.Prompts, ids, 0, cfg.G, cfg.NewTokens, SamplingConfig{Seed: cfg.Seed, StopTokens: []int32{}}, nil)
	if err != nil {
		return BenchResult{}, err
	}
	gen := time.Since(start).Seconds()
	tokens := 0
	for _, c := range r.Completions {
		tokens += len(c)
	}
	if tokens == 0 {
		return BenchResult{}, errors.New("rl: bench: no tokens generated")
	}
	n := len(r.Completions)
	mb := cfg.MicroBatch
	if mb == 0 || mb > n {
		mb = n
	}
	gcfg, err := GRPOConfig{NumGenerations: max(cfg.G, 2)}.WithDefaults()
	if err != nil {
		return BenchResult{}, err
	}
	start = time.Now()
	for lo := 0; lo < n; lo += mb {
		hi := min(lo+mb, n)
		lp, err := CompletionLogProbs(m, r.Prompts[lo:hi], r.Completions[lo:hi], LogProbOptions{})
		if err != nil {
			return BenchResult{}, err
		}
		lens := make([]int, hi-lo)
		adv := make([]float64, hi-lo)
		for i := range lens {
			lens[i] = len(r.Completions[lo+i])
			adv[i] = float64(i%3) - 1
		}
		mask, err := CompletionMask(lens, nil, lp.T, false)
		if err != nil {
			return BenchResult{}, err
		}
		loss, _, err := GRPOLoss(gcfg, GRPOInput{LogProbs: lp.Values, Mask: mask, Advantages: adv, GlobalTokens: float64(tokens)})
		if err != nil {
			return BenchResult{}, err
		}
		if err := tensor.Catch(func() { loss.Backward() }); err != nil {
			return BenchResult{}, err
		}
	}
	ps := make([]*tensor.Tensor, 0, len(m.Params()))
	for _, p := range m.Params() {
		ps = append(ps, p.Tensor)
	}
	// Reading the gradient norm waits for the backend, so the time is the
	// work's, not just its launch, as an optimizer step would read it.
	train.GradNorm(ps)
	trainS := time.Since(start).Seconds()
	for _, p := range ps {
		p.ZeroGrad()
	}
	return BenchResult{RolloutTokensPerS: float64(tokens) / gen, TrainTokensPerS: float64(tokens) / trainS,
		GenerationShare: gen / (gen + trainS), GenerationS: gen, TrainS: trainS}, nil
}
