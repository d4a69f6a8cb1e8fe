package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// GenerateResult holds the figures of one generation benchmark run.
type GenerateResult struct {
	// Batch is the number of prompts generated together.
	Batch int
	// PrefillTokensPerS is batch·prompt tokens over the prefill time.
	PrefillTokensPerS float64
	// DecodeTokensPerS is the tokens produced by decode steps, batch·(new
	// tokens - 1), over the decode time.
	DecodeTokensPerS float64
}

// Line returns the RESULT line that `minnow bench generate` prints for one
// batch size.
func (r GenerateResult) Line() string {
	return fmt.Sprintf("RESULT batch=%d decode_tokens_per_s=%.1f prefill_tokens_per_s=%.1f", r.Batch, r.DecodeTokensPerS, r.PrefillTokensPerS)
}

// GenerateBench builds the model cfg describes on be with float32 weights
// from a fixed seed and times greedy model.Generate on batch random prompts
// of prompt tokens each, with no stop tokens so that every row runs to
// newTokens.
//
// Generate does not expose its phases, so they are told apart by
// difference: a run with MaxNewTokens 1 is the prefill (the prompt's
// forward passes and one sampling step, no decode pass), and a run with
// MaxNewTokens newTokens does the same work plus newTokens-1 decode steps,
// so the extra time is the decode time of batch·(newTokens-1) tokens. Each
// time is the median of reps runs, after one untimed run of each kind that
// fills the storage pool. It returns an error when a size is out of range,
// the config is invalid, or Generate fails.
func GenerateBench(be tensor.Backend, cfg model.Config, batch, prompt, newTokens, reps int) (GenerateResult, error) {
	res := GenerateResult{Batch: batch}
	if batch < 1 || prompt < 1 || newTokens < 2 || reps < 1 {
		return res, fmt.Errorf("bench: generate needs positive batch, prompt and reps and at least 2 new tokens, got batch %d, prompt %d, new tokens %d, reps %d", batch, prompt, newTokens, reps)
	}
	// The context must hold prompt and completion, or Generate would cut
	// the completion short and the decode count would be wrong.
	cfg.MaxPositionEmbeddings = max(cfg.MaxPositionEmbeddings, prompt+newTokens)
	m, err := model.New(cfg, be, tensor.Float32, 1)
	if err != nil {
		return res, err
	}
	// Distinct random prompts, so no row repeats another's work.
	rng := tensor.NewRNG(3)
	prompts := make([][]int32, batch)
	for i := range prompts {
		prompts[i] = make([]int32, prompt)
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(cfg.VocabSize))
		}
	}
	timed := func(n int) (float64, error) {
		t0 := time.Now()
		out, err := model.Generate(m, nil, prompts, model.GenerateConfig{MaxNewTokens: n, StopTokens: []int32{}})
		dt := time.Since(t0).Seconds()
		if err == nil && len(out[0].Tokens) != n {
			err = fmt.Errorf("bench: generate made %d tokens, want %d", len(out[0].Tokens), n)
		}
		return dt, err
	}
	var pre, full []float64
	for i := range reps + 1 {
		p, err := timed(1)
		if err != nil {
			return res, err
		}
		f, err := timed(newTokens)
		if err != nil {
			return res, err
		}
		if i > 0 {
			pre, full = append(pre, p), append(full, f)
		}
	}
	tp, tf := median(pre), median(full)
	if tf <= tp {
		return res, errors.New("bench: the decoding run was no slower than the prefill alone; use more new tokens")
	}
	res.PrefillTokensPerS = float64(batch*prompt) / tp
	res.DecodeTokensPerS = float64(batch*(newTokens-1)) / (tf - tp)
	return res, nil
}
