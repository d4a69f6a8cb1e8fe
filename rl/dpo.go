package rl

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// The DPO loss types (METHODS §4).
const (
	DPOSigmoid = "sigmoid"
	DPOIPO     = "ipo"
	DPOSimPO   = "simpo"
)

// DPOConfig holds the preference-optimisation hyperparameters. The zero
// value of a field means the default WithDefaults fills in.
type DPOConfig struct {
	// LossType is "sigmoid" (DPO, the default), "ipo" or "simpo".
	LossType string `yaml:"loss_type"`
	// Beta scales the log-ratios (0.1, TRL's default for every type; the
	// SimPO paper's 2 to 2.5 is unconfirmed).
	Beta float64 `yaml:"beta"`
	// LabelSmoothing is the assumed probability eps that a preference is
	// flipped, for the sigmoid and simpo losses (0).
	LabelSmoothing float64 `yaml:"label_smoothing"`
	// SimPOGamma is SimPO's target margin gamma (0.5, TRL's CPO default).
	SimPOGamma float64 `yaml:"simpo_gamma"`
	// RPOAlpha weighs a negative log-likelihood term on the chosen
	// completions, per token (RPO; TRL's rpo_alpha), added to any loss
	// type (0, off). DPO alone can lower both completions' likelihoods
	// while it widens their margin, which leaves a small model's greedy
	// answers broken; the term keeps the chosen ones likely.
	RPOAlpha float64 `yaml:"rpo_alpha"`
}

// WithDefaults returns c with its zero fields set to their defaults. It
// returns an error for an unknown loss type or a value out of range.
func (c DPOConfig) WithDefaults() (DPOConfig, error) {
	if c.LossType == "" {
		c.LossType = DPOSigmoid
	}
	if c.Beta == 0 {
		c.Beta = 0.1
	}
	if c.SimPOGamma == 0 {
		c.SimPOGamma = 0.5
	}
	switch {
	case c.LossType != DPOSigmoid && c.LossType != DPOIPO && c.LossType != DPOSimPO:
		return c, fmt.Errorf("rl: dpo: unknown loss_type %q (want sigmoid, ipo or simpo)", c.LossType)
	case !(c.Beta > 0) || math.IsInf(c.Beta, 0):
		return c, fmt.Errorf("rl: dpo: beta %v must be positive", c.Beta)
	case !(c.LabelSmoothing >= 0 && c.LabelSmoothing < 0.5):
		return c, fmt.Errorf("rl: dpo: label_smoothing %v must lie in [0, 0.5)", c.LabelSmoothing)
	case math.IsNaN(c.SimPOGamma) || math.IsInf(c.SimPOGamma, 0):
		return c, fmt.Errorf("rl: dpo: simpo_gamma %v must be finite", c.SimPOGamma)
	case !(c.RPOAlpha >= 0) || math.IsInf(c.RPOAlpha, 0):
		return c, fmt.Errorf("rl: dpo: rpo_alpha %v must be finite and not negative", c.RPOAlpha)
	}
	return c, nil
}

// DPOInput is a batch of N preference pairs for DPOLoss.
type DPOInput struct {
	// Chosen and Rejected are the policy's sequence log-probs [N], the sum
	// of per-token log-probs over each completion, in the autograd graph.
	Chosen, Rejected *tensor.Tensor
	// RefChosen and RefRejected are the reference's sequence log-probs;
	// SimPO ignores them.
	RefChosen, RefRejected []float64
	// ChosenLens and RejectedLens are the completions' token counts, which
	// IPO, SimPO and the RPO term average over.
	ChosenLens, RejectedLens []int
}

// DPOStats are DPO's diagnostics, averaged over pairs. The implicit
// rewards are beta·(logp - logp_ref) (beta·mean token log-prob for
// SimPO); Accuracy is the fraction of pairs whose chosen reward is the
// larger.
type DPOStats struct {
	RewardChosen, RewardRejected, Margin, Accuracy float64
}

// DPOLoss returns the mean preference loss of the pairs of in (METHODS §4):
// with Δ the chosen minus the rejected policy-to-reference log-ratio,
// -(1-eps)·logσ(βΔ) - eps·logσ(-βΔ) for "sigmoid"; (Δ_avg - 1/(2β))² with
// length-averaged log-ratios for "ipo"; and the smoothed
// -logσ(β·avg(y_w) - β·avg(y_l) - γ) for "simpo"; plus RPOAlpha times the
// chosen completions' mean per-token negative log-likelihood. cfg must
// have been through WithDefaults. It returns an error when the inputs disagree in
// length or a needed length is not positive.
func DPOLoss(cfg DPOConfig, in DPOInput) (*tensor.Tensor, DPOStats, error) {
	if in.Chosen == nil || in.Rejected == nil || in.Chosen.Rank() != 1 || !slices.Equal(in.Chosen.Shape(), in.Rejected.Shape()) {
		return nil, DPOStats{}, errors.New("rl: dpo loss: chosen and rejected log-probs must be [N] tensors of one shape")
	}
	n := in.Chosen.Dim(0)
	if n == 0 {
		return nil, DPOStats{}, errors.New("rl: dpo loss: no pairs")
	}
	if cfg.LossType != DPOSimPO && (len(in.RefChosen) != n || len(in.RefRejected) != n) {
		return nil, DPOStats{}, fmt.Errorf("rl: dpo loss: %d and %d reference log-probs for %d pairs", len(in.RefChosen), len(in.RefRejected), n)
	}
	if cfg.LossType != DPOSigmoid || cfg.RPOAlpha != 0 {
		if len(in.ChosenLens) != n || len(in.RejectedLens) != n {
			return nil, DPOStats{}, fmt.Errorf("rl: dpo loss: %s (or rpo_alpha) needs %d chosen and rejected lengths, have %d and %d", cfg.LossType, n, len(in.ChosenLens), len(in.RejectedLens))
		}
		for i := range n {
			if in.ChosenLens[i] <= 0 || in.RejectedLens[i] <= 0 {
				return nil, DPOStats{}, fmt.Errorf("rl: dpo loss: pair %d has an empty completion", i)
			}
		}
	}
	be, dt := in.Chosen.Backend(), in.Chosen.DType()
	vec := func(v []float64) *tensor.Tensor { return tensor.From(be, dt, v, n) }
	recip := func(lens []int) *tensor.Tensor {
		v := make([]float64, n)
		for i, l := range lens {
			v[i] = 1 / float64(l)
		}
		return vec(v)
	}
	// Per-pair "rewards" of chosen and rejected before beta.
	var rc, rr *tensor.Tensor
	switch cfg.LossType {
	case DPOSigmoid:
		rc, rr = in.Chosen.Sub(vec(in.RefChosen)), in.Rejected.Sub(vec(in.RefRejected))
	case DPOIPO:
		rc = in.Chosen.Sub(vec(in.RefChosen)).Mul(recip(in.ChosenLens))
		rr = in.Rejected.Sub(vec(in.RefRejected)).Mul(recip(in.RejectedLens))
	case DPOSimPO:
		rc, rr = in.Chosen.Mul(recip(in.ChosenLens)), in.Rejected.Mul(recip(in.RejectedLens))
	}
	delta := rc.Sub(rr)
	var perPair *tensor.Tensor
	switch cfg.LossType {
	case DPOIPO:
		perPair = delta.AddScalar(-1 / (2 * cfg.Beta)).Square()
	default:
		z := delta.Scale(cfg.Beta)
		if cfg.LossType == DPOSimPO {
			z = z.AddScalar(-cfg.SimPOGamma)
		}
		perPair = softplus(z.Neg())
		if eps := cfg.LabelSmoothing; eps != 0 {
			perPair = perPair.Scale(1 - eps).Add(softplus(z).Scale(eps))
		}
	}
	loss := perPair.Mean()
	if cfg.RPOAlpha != 0 {
		loss = loss.Add(in.Chosen.Mul(recip(in.ChosenLens)).Mean().Scale(-cfg.RPOAlpha))
	}

	var st DPOStats
	tensor.NoGrad(func() {
		c, r := rc.Float64s(), rr.Float64s()
		for i := range n {
			st.RewardChosen += cfg.Beta * c[i] / float64(n)
			st.RewardRejected += cfg.Beta * r[i] / float64(n)
			if c[i] > r[i] {
				st.Accuracy += 1 / float64(n)
			}
		}
		st.Margin = st.RewardChosen - st.RewardRejected
	})
	return loss, st, nil
}

// softplus returns log(1 + exp(x)) = -log σ(-x), as x·1[x>=0] +
// log(1 + exp(-|x|)) so that exp never overflows; tensor has no softplus
// or log-sigmoid op. The signs are read on the host and enter as
// constants, which keeps the gradient σ(x) exact at x = 0, where a ReLU
// composition would give 0 (and DPO starts there, policy equal to
// reference).
func softplus(x *tensor.Tensor) *tensor.Tensor {
	var vals []float64
	tensor.NoGrad(func() { vals = x.Float64s() })
	pos := make([]float64, len(vals))
	sign := make([]float64, len(vals))
	for i, v := range vals {
		sign[i] = -1
		if v >= 0 {
			pos[i], sign[i] = 1, 1
		}
	}
	c := func(v []float64) *tensor.Tensor { return tensor.From(x.Backend(), x.DType(), v, x.Shape()...) }
	abs := x.Mul(c(sign))
	return x.Mul(c(pos)).Add(abs.Neg().Exp().AddScalar(1).Log())
}

// Pair is one tokenised preference: a prompt with a preferred (chosen) and
// a dispreferred (rejected) completion.
type Pair struct {
	Prompt   []int32 `json:"prompt"`
	Chosen   []int32 `json:"chosen"`
	Rejected []int32 `json:"rejected"`
}

// PairsFromGroups builds preference pairs from scored rollouts of G
// completions per prompt, as DPO on a verifiable task needs them: in each
// group whose rewards differ, the best completion (the shortest among
// equals, so that concise wins) is chosen over the worst (the longest
// among equals). Groups of equal rewards give no pair. It returns an error
// when the rewards or completions do not split into groups of G.
func PairsFromGroups(r Rollout, rewards []float64, G int) ([]Pair, error) {
	n := len(r.Completions)
	if G < 2 || n%G != 0 || len(rewards) != n || len(r.Prompts) != n {
		return nil, fmt.Errorf("rl: pairs: %d completions, %d prompts and %d rewards in groups of %d", n, len(r.Prompts), len(rewards), G)
	}
	var out []Pair
	for g := 0; g < n; g += G {
		best, worst := g, g
		for i := g + 1; i < g+G; i++ {
			li := len(r.Completions[i])
			if rewards[i] > rewards[best] || rewards[i] == rewards[best] && li < len(r.Completions[best]) {
				best = i
			}
			if rewards[i] < rewards[worst] || rewards[i] == rewards[worst] && li > len(r.Completions[worst]) {
				worst = i
			}
		}
		if rewards[best] > rewards[worst] {
			out = append(out, Pair{Prompt: r.Prompts[g], Chosen: r.Completions[best], Rejected: r.Completions[worst]})
		}
	}
	return out, nil
}

// ConcisePairs returns the pairs whose chosen completion has fewer tokens
// than the rejected one, in order: a preference for right and concise over
// wrong, where PairsFromGroups alone also prefers a long right answer over
// a short wrong one.
func ConcisePairs(pairs []Pair) []Pair {
	var out []Pair
	for _, p := range pairs {
		if len(p.Chosen) < len(p.Rejected) {
			out = append(out, p)
		}
	}
	return out
}

// RefLogps are the reference's sequence log-probs of a data set of pairs,
// precomputed once before DPO training (METHODS §4).
type RefLogps struct {
	// Key fingerprints the pairs and the reference model; a cache whose
	// key differs is stale.
	Key      string    `json:"key"`
	Chosen   []float64 `json:"chosen"`
	Rejected []float64 `json:"rejected"`
}

// PairsKey returns a fingerprint of the tokenised pairs and a model
// fingerprint (see ModelKey), so that a reference cache is reused only for
// identical tokenisation and the same reference.
func PairsKey(pairs []Pair, modelKey string) string {
	h := sha256.New()
	h.Write([]byte(modelKey))
	put := func(ids []int32) {
		binary.Write(h, binary.LittleEndian, int64(len(ids)))
		binary.Write(h, binary.LittleEndian, ids)
	}
	for _, p := range pairs {
		put(p.Prompt)
		put(p.Chosen)
		put(p.Rejected)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ModelKey returns a fingerprint of m's config and parameter values. It
// returns an error when the config cannot be encoded.
func ModelKey(m model.Model) (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(m.Config())
	if err != nil {
		return "", fmt.Errorf("rl: model key: %w", err)
	}
	h.Write(cfg)
	for _, p := range m.Params() {
		h.Write([]byte(p.Name))
		binary.Write(h, binary.LittleEndian, p.Tensor.Float32s())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PrecomputeRefLogps runs ref over pairs in order, batch pairs at a time,
// and returns their sequence log-probs. It returns ref's errors.
func PrecomputeRefLogps(ref Reference, pairs []Pair, batch int) (chosen, rejected []float64, err error) {
	batch = max(batch, 1)
	for start := 0; start < len(pairs); start += batch {
		ps := pairs[start:min(start+batch, len(pairs))]
		prompts := make([][]int32, 0, 2*len(ps))
		comps := make([][]int32, 0, 2*len(ps))
		for _, p := range ps {
			prompts = append(prompts, p.Prompt, p.Prompt)
			comps = append(comps, p.Chosen, p.Rejected)
		}
		lp, err := ref.RefLogProbs(prompts, comps, 1)
		if err != nil {
			return nil, nil, fmt.Errorf("rl: reference log-probs of pairs %d..%d: %w", start, start+len(ps)-1, err)
		}
		var sums []float64
		tensor.NoGrad(func() { sums = lp.Sum(1).Float64s() })
		for i := range ps {
			chosen = append(chosen, sums[2*i])
			rejected = append(rejected, sums[2*i+1])
		}
	}
	return chosen, rejected, nil
}

// LoadOrComputeRefLogps returns the reference log-probs of pairs from the
// JSON cache at path when its key matches key, and otherwise computes them
// with PrecomputeRefLogps and writes the cache (path "" means no cache).
// It returns the errors of computing, reading a corrupt cache or writing
// it.
func LoadOrComputeRefLogps(path, key string, ref Reference, pairs []Pair, batch int) (RefLogps, error) {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			var c RefLogps
			if err := json.Unmarshal(b, &c); err != nil {
				return RefLogps{}, fmt.Errorf("rl: reference cache %s: %w", path, err)
			}
			if c.Key == key && len(c.Chosen) == len(pairs) && len(c.Rejected) == len(pairs) {
				return c, nil
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return RefLogps{}, fmt.Errorf("rl: reference cache: %w", err)
		}
	}
	ch, rj, err := PrecomputeRefLogps(ref, pairs, batch)
	if err != nil {
		return RefLogps{}, err
	}
	c := RefLogps{Key: key, Chosen: ch, Rejected: rj}
	if path == "" {
		return c, nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return RefLogps{}, fmt.Errorf("rl: reference cache: %w", err)
	}
	// Write then rename, so an interrupted run never leaves half a cache.
	tmp := path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return RefLogps{}, fmt.Errorf("rl: reference cache: %w", err)
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return RefLogps{}, fmt.Errorf("rl: reference cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return RefLogps{}, fmt.Errorf("rl: reference cache: %w", err)
	}
	return c, nil
}
