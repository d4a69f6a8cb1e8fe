package rl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// DPOTrainerConfig configures DPOTrainer.
type DPOTrainerConfig struct {
	DPO DPOConfig `yaml:"dpo"`
	// BatchPairs is the number of pairs per optimizer step (8).
	BatchPairs int `yaml:"batch_pairs"`
	// ClipNorm clips the global gradient norm; 0 means no clipping.
	ClipNorm float64 `yaml:"clip_norm"`
	// Seed orders the pairs, a fresh permutation per epoch.
	Seed uint64 `yaml:"seed"`
}

// DPOTrainer trains a policy on preference pairs against reference
// log-probs computed once beforehand (see LoadOrComputeRefLogps), so the
// reference model need not stay in memory.
type DPOTrainer struct {
	Policy model.Model
	Opt    *train.AdamW
	// Schedule gives each step's learning rate; nil means the optimizer's
	// LR.
	Schedule train.Schedule
	Pairs    []Pair
	// Ref holds the reference log-probs of Pairs, in order.
	Ref     RefLogps
	Metrics io.Writer
	Config  DPOTrainerConfig
}

// DPOMetric is one step's metrics line.
type DPOMetric struct {
	Step           int     `json:"step"`
	Loss           float64 `json:"loss"`
	LR             float64 `json:"lr"`
	GradNorm       float64 `json:"grad_norm"`
	RewardChosen   float64 `json:"rewards_chosen"`
	RewardRejected float64 `json:"rewards_rejected"`
	Margin         float64 `json:"rewards_margin"`
	Accuracy       float64 `json:"rewards_accuracy"`
}

// pairsLoss runs m over the chosen and rejected completions of pairs in
// one batch and returns DPOLoss.
func pairsLoss(m model.Model, cfg DPOConfig, pairs []Pair, refChosen, refRejected []float64) (*tensor.Tensor, DPOStats, error) {
	n := len(pairs)
	prompts := make([][]int32, 0, 2*n)
	comps := make([][]int32, 0, 2*n)
	in := DPOInput{RefChosen: refChosen, RefRejected: refRejected}
	for _, p := range pairs {
		prompts = append(prompts, p.Prompt)
		comps = append(comps, p.Chosen)
		in.ChosenLens = append(in.ChosenLens, len(p.Chosen))
	}
	for _, p := range pairs {
		prompts = append(prompts, p.Prompt)
		comps = append(comps, p.Rejected)
		in.RejectedLens = append(in.RejectedLens, len(p.Rejected))
	}
	lp, err := CompletionLogProbs(m, prompts, comps, LogProbOptions{})
	if err != nil {
		return nil, DPOStats{}, err
	}
	var loss *tensor.Tensor
	var st DPOStats
	var lerr error
	if err := tensor.Catch(func() {
		seq := lp.Values.Sum(1)
		in.Chosen, in.Rejected = seq.Slice(0, 0, n), seq.Slice(0, n, 2*n)
		loss, st, lerr = DPOLoss(cfg, in)
	}); err != nil {
		return nil, DPOStats{}, err
	}
	return loss, st, lerr
}

// Step runs DPO update number step (1-based) on the next BatchPairs pairs
// and returns its metrics, also written to Metrics. It returns an error
// when the trainer is incomplete, the reference log-probs do not match the
// pairs, the forward pass fails, the loss or gradient is not finite, or
// writing the metrics fails.
func (t *DPOTrainer) Step(step int) (DPOMetric, error) {
	c := t.Config
	dc, err := c.DPO.WithDefaults()
	if err != nil {
		return DPOMetric{}, err
	}
	if c.BatchPairs == 0 {
		c.BatchPairs = 8
	}
	switch {
	case t.Policy == nil || t.Opt == nil:
		return DPOMetric{}, errors.New("rl: dpo trainer: needs a policy and an optimizer")
	case len(t.Pairs) == 0:
		return DPOMetric{}, errors.New("rl: dpo trainer: no pairs")
	case dc.LossType != DPOSimPO && (len(t.Ref.Chosen) != len(t.Pairs) || len(t.Ref.Rejected) != len(t.Pairs)):
		return DPOMetric{}, fmt.Errorf("rl: dpo trainer: %d reference log-probs for %d pairs", len(t.Ref.Chosen), len(t.Pairs))
	case c.BatchPairs < 0:
		return DPOMetric{}, fmt.Errorf("rl: dpo trainer: batch_pairs %d", c.BatchPairs)
	}
	n := len(t.Pairs)
	batch := make([]Pair, c.BatchPairs)
	var rc, rr []float64
	for i := range batch {
		k := (step-1)*c.BatchPairs + i
		j := permute(n, SampleKey(c.Seed, 0xd90, uint64(k/n)))[k%n]
		batch[i] = t.Pairs[j]
		if dc.LossType != DPOSimPO {
			rc, rr = append(rc, t.Ref.Chosen[j]), append(rr, t.Ref.Rejected[j])
		}
	}
	loss, st, err := pairsLoss(t.Policy, dc, batch, rc, rr)
	if err != nil {
		return DPOMetric{}, fmt.Errorf("rl: dpo step %d: %w", step, err)
	}
	if err := tensor.Catch(func() { loss.Backward() }); err != nil {
		return DPOMetric{}, fmt.Errorf("rl: dpo step %d: %w", step, err)
	}
	lv := loss.Item()
	norm := train.GradNorm(t.Opt.Params())
	if math.IsNaN(lv) || math.IsInf(lv, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
		for _, p := range t.Opt.Params() {
			p.ZeroGrad()
		}
		return DPOMetric{}, fmt.Errorf("rl: dpo step %d: loss %v, gradient norm %v; stopped before the update", step, lv, norm)
	}
	lr := t.Opt.Config.LR
	if t.Schedule != nil {
		lr = t.Schedule.LR(step)
	}
	if err := t.Opt.Step(lr, train.ClipScale(norm, c.ClipNorm)); err != nil {
		return DPOMetric{}, fmt.Errorf("rl: dpo step %d: %w", step, err)
	}
	met := DPOMetric{Step: step, Loss: lv, LR: lr, GradNorm: norm, RewardChosen: st.RewardChosen,
		RewardRejected: st.RewardRejected, Margin: st.Margin, Accuracy: st.Accuracy}
	if t.Metrics != nil {
		b, err := json.Marshal(met)
		if err != nil {
			return met, fmt.Errorf("rl: metrics: %w", err)
		}
		if _, err := t.Metrics.Write(append(b, '\n')); err != nil {
			return met, fmt.Errorf("rl: writing metrics: %w", err)
		}
	}
	return met, nil
}

// EvaluateDPO returns the mean loss and statistics of m on pairs, batch
// pairs at a time, without gradients. It returns an error when the
// reference log-probs do not match the pairs or a forward pass fails.
func EvaluateDPO(m model.Model, cfg DPOConfig, pairs []Pair, ref RefLogps, batch int) (float64, DPOStats, error) {
	dc, err := cfg.WithDefaults()
	if err != nil {
		return 0, DPOStats{}, err
	}
	if len(pairs) == 0 {
		return 0, DPOStats{}, errors.New("rl: dpo evaluation: no pairs")
	}
	if dc.LossType != DPOSimPO && (len(ref.Chosen) != len(pairs) || len(ref.Rejected) != len(pairs)) {
		return 0, DPOStats{}, fmt.Errorf("rl: dpo evaluation: %d reference log-probs for %d pairs", len(ref.Chosen), len(pairs))
	}
	batch = max(batch, 1)
	var loss float64
	var st DPOStats
	tensor.NoGrad(func() {
		for lo := 0; lo < len(pairs) && err == nil; lo += batch {
			hi := min(lo+batch, len(pairs))
			var rc, rr []float64
			if dc.LossType != DPOSimPO {
				rc, rr = ref.Chosen[lo:hi], ref.Rejected[lo:hi]
			}
			var l *tensor.Tensor
			var s DPOStats
			l, s, err = pairsLoss(m, dc, pairs[lo:hi], rc, rr)
			if err != nil {
				return
			}
			w := float64(hi-lo) / float64(len(pairs))
			loss += l.Item() * w
			st.RewardChosen += s.RewardChosen * w
			st.RewardRejected += s.RewardRejected * w
			st.Accuracy += s.Accuracy * w
		}
	})
	st.Margin = st.RewardChosen - st.RewardRejected
	return loss, st, err
}
