package rl

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/minnowml/minnow/tensor"
)

// The scale_rewards modes of GRPOConfig (METHODS §1).
const (
	ScaleGroup = "group"
	ScaleBatch = "batch"
	ScaleNone  = "none"
)

// The loss types of GRPOConfig (METHODS §1, Aggregation).
const (
	LossGRPO   = "grpo"
	LossBNPO   = "bnpo"
	LossDrGRPO = "dr_grpo"
	LossDAPO   = "dapo"
)

// GRPOConfig holds GRPO's hyperparameters. The zero value of a field means
// TRL's default, filled in by WithDefaults.
type GRPOConfig struct {
	// NumGenerations is G, the completions sampled per prompt (8).
	NumGenerations int `yaml:"num_generations"`
	// ScaleRewards divides the group-centred rewards by the group's std
	// ("group", the default), the batch's ("batch") or nothing ("none",
	// Dr. GRPO's recommendation).
	ScaleRewards string `yaml:"scale_rewards"`
	// StdEpsilon is added to the std before dividing (1e-4).
	StdEpsilon float64 `yaml:"std_epsilon"`
	// EpsilonLow and EpsilonHigh bound the ratio to [1-low, 1+high] in the
	// clipped surrogate (0.2 and EpsilonLow; DAPO's clip-higher uses 0.2
	// and 0.28).
	EpsilonLow  float64 `yaml:"epsilon_low"`
	EpsilonHigh float64 `yaml:"epsilon_high"`
	// Beta weighs the k3 KL term against the reference; 0 (the default)
	// needs no reference model.
	Beta float64 `yaml:"beta"`
	// NumIterations is mu, the optimizer passes over each generated batch
	// (1).
	NumIterations int `yaml:"num_iterations"`
	// LossType is "grpo", "bnpo", "dr_grpo" or "dapo" (the default).
	LossType string `yaml:"loss_type"`
	// MaxCompletionLength bounds completions in tokens and is dr_grpo's
	// constant L_max (512).
	MaxCompletionLength int `yaml:"max_completion_length"`
	// MaskTruncatedCompletions gives completions that hit the length limit
	// mask 0 (DAPO's overlong filtering).
	MaskTruncatedCompletions bool `yaml:"mask_truncated_completions"`
	// DynamicSampling drops groups whose rewards are all equal and samples
	// more prompts until the batch is full again (DAPO; the filter is
	// ours, METHODS §1).
	DynamicSampling bool `yaml:"dynamic_sampling"`
	// TemperatureScaledLogProbs computes the policy's, the old policy's
	// and the reference's log-probs from logits divided by the sampling
	// temperature, as TRL does, so that the ratio compares the
	// distributions actually sampled from; false (our default) uses the
	// raw distribution, whose log-probs the rollout records for free.
	TemperatureScaledLogProbs bool `yaml:"temperature_scaled_logprobs"`
	// MaxResampleRounds caps the extra generation rounds of dynamic
	// sampling per step (3); a batch still short after them trains on the
	// groups it has.
	MaxResampleRounds int `yaml:"max_resample_rounds"`
}

// WithDefaults returns c with its zero fields set to their defaults. It
// returns an error for an unknown mode or loss type, or a value out of
// range.
func (c GRPOConfig) WithDefaults() (GRPOConfig, error) {
	if c.NumGenerations == 0 {
		c.NumGenerations = 8
	}
	if c.ScaleRewards == "" {
		c.ScaleRewards = ScaleGroup
	}
	if c.StdEpsilon == 0 {
		c.StdEpsilon = 1e-4
	}
	if c.EpsilonLow == 0 {
		c.EpsilonLow = 0.2
	}
	if c.EpsilonHigh == 0 {
		c.EpsilonHigh = c.EpsilonLow
	}
	if c.NumIterations == 0 {
		c.NumIterations = 1
	}
	if c.LossType == "" {
		c.LossType = LossDAPO
	}
	if c.MaxCompletionLength == 0 {
		c.MaxCompletionLength = 512
	}
	if c.MaxResampleRounds == 0 {
		c.MaxResampleRounds = 3
	}
	switch {
	case c.NumGenerations < 2:
		return c, fmt.Errorf("rl: grpo: num_generations %d: a group needs at least 2 completions", c.NumGenerations)
	case c.ScaleRewards != ScaleGroup && c.ScaleRewards != ScaleBatch && c.ScaleRewards != ScaleNone:
		return c, fmt.Errorf("rl: grpo: unknown scale_rewards %q (want group, batch or none)", c.ScaleRewards)
	case c.LossType != LossGRPO && c.LossType != LossBNPO && c.LossType != LossDrGRPO && c.LossType != LossDAPO:
		return c, fmt.Errorf("rl: grpo: unknown loss_type %q (want grpo, bnpo, dr_grpo or dapo)", c.LossType)
	case !(c.StdEpsilon > 0) || math.IsInf(c.StdEpsilon, 0):
		return c, fmt.Errorf("rl: grpo: std_epsilon %v must be positive", c.StdEpsilon)
	case !(c.EpsilonLow > 0 && c.EpsilonLow < 1):
		return c, fmt.Errorf("rl: grpo: epsilon_low %v must lie in (0, 1)", c.EpsilonLow)
	case !(c.EpsilonHigh > 0) || math.IsInf(c.EpsilonHigh, 0):
		return c, fmt.Errorf("rl: grpo: epsilon_high %v must be positive", c.EpsilonHigh)
	case !(c.Beta >= 0) || math.IsInf(c.Beta, 0):
		return c, fmt.Errorf("rl: grpo: beta %v must be finite and not negative", c.Beta)
	case c.NumIterations < 1:
		return c, fmt.Errorf("rl: grpo: num_iterations %d must be positive", c.NumIterations)
	case c.MaxCompletionLength < 1:
		return c, fmt.Errorf("rl: grpo: max_completion_length %d must be positive", c.MaxCompletionLength)
	case c.MaxResampleRounds < 0:
		return c, fmt.Errorf("rl: grpo: max_resample_rounds %d must not be negative", c.MaxResampleRounds)
	}
	return c, nil
}

// GroupAdvantages returns each completion's advantage from its reward
// (METHODS §1): the reward minus its group's mean, divided by std + eps
// when scale is "group" (the group's std) or "batch" (the whole batch's
// std), undivided when scale is "none". Groups are the consecutive runs of
// groupSize rewards. Stds use Bessel's correction. A NaN reward marks an
// unscorable completion: it is left out of every mean and std and gets
// advantage 0. It returns an error when the rewards do not split into
// groups, or for an unknown scale.
func GroupAdvantages(rewards []float64, groupSize int, scale string, eps float64) ([]float64, error) {
	if groupSize < 1 || len(rewards)%groupSize != 0 {
		return nil, fmt.Errorf("rl: %d rewards do not split into groups of %d", len(rewards), groupSize)
	}
	if scale != ScaleGroup && scale != ScaleBatch && scale != ScaleNone {
		return nil, fmt.Errorf("rl: unknown scale_rewards %q", scale)
	}
	adv := make([]float64, len(rewards))
	batchStd := nanStd(rewards)
	for g := 0; g < len(rewards); g += groupSize {
		grp := rewards[g : g+groupSize]
		mu := nanMean(grp)
		div := 1.0
		switch scale {
		case ScaleGroup:
			div = nanStd(grp) + eps
		case ScaleBatch:
			div = batchStd + eps
		}
		for i, r := range grp {
			if math.IsNaN(r) || math.IsNaN(mu) {
				continue
			}
			a := (r - mu) / div
			if math.IsNaN(a) {
				a = 0 // a lone scored completion has no spread to compare with
			}
			adv[g+i] = a
		}
	}
	return adv, nil
}

// nanMean is the mean of the non-NaN values, NaN when there are none.
func nanMean(xs []float64) float64 {
	s, n := 0.0, 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// nanStd is the Bessel-corrected std of the non-NaN values, NaN when fewer
// than two.
func nanStd(xs []float64) float64 {
	mu := nanMean(xs)
	s, n := 0.0, 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			s += (x - mu) * (x - mu)
			n++
		}
	}
	if n < 2 {
		return math.NaN()
	}
	return math.Sqrt(s / float64(n-1))
}

// ZeroStdGroups reports, per group of groupSize consecutive rewards,
// whether all its rewards are equal, so that every advantage is 0 and the
// group teaches nothing. Dynamic sampling drops these groups, and
// frac_reward_zero_std is the fraction that are.
func ZeroStdGroups(rewards []float64, groupSize int) []bool {
	out := make([]bool, len(rewards)/groupSize)
	for g := range out {
		grp := rewards[g*groupSize : (g+1)*groupSize]
		same := true
		for _, r := range grp[1:] {
			same = same && r == grp[0]
		}
		out[g] = same
	}
	return out
}

// CompletionMask returns the loss mask [B, T] (row-major) of B completions
// on a grid of T token columns: 1 on the first lengths[b] columns of row b,
// except rows whose truncated flag is set when maskTruncated is, which
// count nothing. It returns an error when a length exceeds T or the slices
// differ in length.
func CompletionMask(lengths []int, truncated []bool, T int, maskTruncated bool) ([]float32, error) {
	if truncated != nil && len(truncated) != len(lengths) {
		return nil, fmt.Errorf("rl: %d truncated flags for %d completions", len(truncated), len(lengths))
	}
	m := make([]float32, len(lengths)*T)
	for b, n := range lengths {
		if n < 0 || n > T {
			return nil, fmt.Errorf("rl: completion %d has %d tokens, outside a grid of %d", b, n, T)
		}
		if maskTruncated && truncated != nil && truncated[b] {
			continue
		}
		for t := range n {
			m[b*T+t] = 1
		}
	}
	return m, nil
}

// GRPOInput is one micro-batch of B completions on a grid of T token
// columns, for GRPOLoss. Every tensor is [B, T] of one float dtype.
type GRPOInput struct {
	// LogProbs are the policy's per-token log-probs of the sampled tokens,
	// in the autograd graph.
	LogProbs *tensor.Tensor
	// OldLogProbs are the log-probs under the policy that sampled the
	// batch; nil means LogProbs detached, as when num_iterations is 1.
	OldLogProbs *tensor.Tensor
	// RefLogProbs are the reference model's log-probs, needed when beta is
	// not 0.
	RefLogProbs *tensor.Tensor
	// Mask is 1 on tokens that count, row-major [B, T].
	Mask []float32
	// Advantages holds one advantage per completion.
	Advantages []float64
	// GlobalTokens is, for loss_type dapo, the active tokens of the whole
	// optimizer step across micro-batches and processes, divided by the
	// number of processes; 0 means this micro-batch's count.
	GlobalTokens float64
	// AccumSteps is the number of micro-batches whose gradients the
	// optimizer step sums; grpo, bnpo and dr_grpo divide by it, dapo does
	// not (METHODS §1). 0 means 1.
	AccumSteps int
}

// GRPOStats are the diagnostics of one GRPOLoss call, over active tokens.
type GRPOStats struct {
	// ClipLow is the fraction of active tokens with A < 0 and ratio below
	// 1-epsilon_low, whose gradient the clip removes; ClipHigh the fraction
	// with A > 0 and ratio above 1+epsilon_high; ClipRegion their sum.
	ClipLow, ClipHigh, ClipRegion float64
	// KL is the mean k3 estimate (0 without a reference).
	KL float64
	// Tokens counts the active tokens.
	Tokens int
}

// GRPOLoss returns the GRPO objective of in under cfg (METHODS §1): per
// token -min(rho·A, clip(rho, 1-eps_low, 1+eps_high)·A) + beta·k3, with
// rho = exp(logp - logp_old), aggregated as cfg.LossType says. cfg must
// have been through WithDefaults. It returns an error when shapes or
// lengths disagree, or beta is not 0 without reference log-probs.
func GRPOLoss(cfg GRPOConfig, in GRPOInput) (*tensor.Tensor, GRPOStats, error) {
	lp := in.LogProbs
	if lp == nil || lp.Rank() != 2 {
		return nil, GRPOStats{}, errors.New("rl: grpo loss: log-probs must be a [B, T] tensor")
	}
	B, T := lp.Dim(0), lp.Dim(1)
	if len(in.Mask) != B*T {
		return nil, GRPOStats{}, fmt.Errorf("rl: grpo loss: mask of %d values for log-probs %v", len(in.Mask), lp.Shape())
	}
	if len(in.Advantages) != B {
		return nil, GRPOStats{}, fmt.Errorf("rl: grpo loss: %d advantages for %d completions", len(in.Advantages), B)
	}
	for _, x := range []*tensor.Tensor{in.OldLogProbs, in.RefLogProbs} {
		if x != nil && !slices.Equal(x.Shape(), lp.Shape()) {
			return nil, GRPOStats{}, fmt.Errorf("rl: grpo loss: log-probs of shape %v beside %v", x.Shape(), lp.Shape())
		}
	}
	if cfg.Beta != 0 && in.RefLogProbs == nil {
		return nil, GRPOStats{}, errors.New("rl: grpo loss: beta is not 0 but there are no reference log-probs")
	}
	accum := max(in.AccumSteps, 1)
	weights, tokens := lossWeights(cfg, in.Mask, B, T, in.GlobalTokens, accum)

	be, dt := lp.Backend(), lp.DType()
	old := in.OldLogProbs
	if old == nil {
		old = lp.Detach()
	}
	// min(rho·A, clip(rho)·A) equals A·min(rho, 1+eps_high) for A >= 0 and
	// A·max(rho, 1-eps_low) for A < 0; with min(x, c) = x - relu(x - c)
	// that needs only ReLU, which tensor has.
	pos := make([]float64, B*T)
	neg := make([]float64, B*T)
	negA := make([]float64, B*T)
	for b, a := range in.Advantages {
		for t := range T {
			i := b*T + t
			negA[i] = -a
			if a >= 0 {
				pos[i] = 1
			} else {
				neg[i] = 1
			}
		}
	}
	cnst := func(v []float64) *tensor.Tensor { return tensor.From(be, dt, v, B, T) }
	rho := lp.Sub(old).Exp()
	capHigh := rho.AddScalar(-(1 + cfg.EpsilonHigh)).ReLU().Mul(cnst(pos))
	capLow := rho.Neg().AddScalar(1 - cfg.EpsilonLow).ReLU().Mul(cnst(neg))
	perTok := rho.Sub(capHigh).Add(capLow).Mul(cnst(negA))
	if cfg.Beta != 0 {
		perTok = perTok.Add(k3(in.RefLogProbs, lp).Scale(cfg.Beta))
	}
	loss := perTok.Mul(cnst(weights)).Sum()

	st := GRPOStats{Tokens: tokens}
	tensor.NoGrad(func() {
		st = grpoStats(cfg, rho.Float64s(), in, B, T, tokens)
	})
	return loss, st, nil
}

// k3 returns Schulman's k3 estimate of KL(pi_theta || pi_ref) per token,
// exp(ref - lp) - (ref - lp) - 1, which is never negative.
func k3(ref, lp *tensor.Tensor) *tensor.Tensor {
	d := ref.Sub(lp)
	return d.Exp().Sub(d).AddScalar(-1)
}

// lossWeights returns each token's weight in the aggregated loss (mask
// times the loss type's normaliser) and the number of active tokens.
func lossWeights(cfg GRPOConfig, mask []float32, B, T int, global float64, accum int) ([]float64, int) {
	w := make([]float64, B*T)
	tokens := 0
	for _, m := range mask {
		if m != 0 {
			tokens++
		}
	}
	for b := range B {
		rowLen := 0
		for t := range T {
			if mask[b*T+t] != 0 {
				rowLen++
			}
		}
		var norm float64
		switch cfg.LossType {
		case LossGRPO:
			if rowLen > 0 {
				norm = 1 / float64(rowLen*B*accum)
			}
		case LossBNPO:
			norm = 1 / float64(max(tokens, 1)*accum)
		case LossDrGRPO:
			norm = 1 / float64(B*cfg.MaxCompletionLength*accum)
		case LossDAPO:
			n := global
			if n <= 0 {
				n = float64(max(tokens, 1))
			}
			norm = 1 / n
		}
		for t := range T {
			w[b*T+t] = float64(mask[b*T+t]) * norm
		}
	}
	return w, tokens
}

// grpoStats computes the clip fractions and mean KL over active tokens.
func grpoStats(cfg GRPOConfig, rho []float64, in GRPOInput, B, T, tokens int) GRPOStats {
	st := GRPOStats{Tokens: tokens}
	if tokens == 0 {
		return st
	}
	var ref, lp []float64
	if in.RefLogProbs != nil {
		ref, lp = in.RefLogProbs.Float64s(), in.LogProbs.Float64s()
	}
	var low, high, kl float64
	for b := range B {
		a := in.Advantages[b]
		for t := range T {
			i := b*T + t
			if in.Mask[i] == 0 {
				continue
			}
			if a < 0 && rho[i] < 1-cfg.EpsilonLow {
				low++
			}
			if a > 0 && rho[i] > 1+cfg.EpsilonHigh {
				high++
			}
			if ref != nil {
				d := ref[i] - lp[i]
				kl += math.Exp(d) - d - 1
			}
		}
	}
	n := float64(tokens)
	st.ClipLow, st.ClipHigh, st.ClipRegion, st.KL = low/n, high/n, (low+high)/n, kl/n
	return st
}
