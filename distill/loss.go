package distill

import (
	"errors"
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// The divergences KDConfig.Divergence names (METHODS §5).
const (
	ForwardKL = "forward_kl"
	ReverseKL = "reverse_kl"
	JSD       = "jsd"
)

// KDConfig configures the token-level divergence between the teacher's and
// the student's next-token distributions (METHODS §5). The zero value is
// not valid; start from DefaultKDConfig.
type KDConfig struct {
	// Divergence is forward_kl (mass-covering, KL(p||q)), reverse_kl
	// (mode-seeking, KL(q||p)) or jsd (generalised JSD with Beta).
	Divergence string `yaml:"divergence"`
	// Beta weighs the JSD mixture m = β·p + (1-β)·q; β = 0 is forward KL
	// and β = 1 reverse KL, as TRL defines the ends (0.5).
	Beta float64 `yaml:"beta"`
	// Temperature divides the student's logits before the softmax (1). The
	// teacher's side was tempered when its signals were computed, and
	// the cache records at which temperature, so the two must agree.
	Temperature float64 `yaml:"temperature"`
	// TemperatureSquared multiplies the loss by τ², as Hinton-style KD
	// does to keep gradient scales comparable across τ; TRL does not
	// (METHODS §5 marks it as our flag; default off).
	TemperatureSquared bool `yaml:"temperature_squared"`
	// ProbFloor clamps both binned distributions to [floor, 1-floor]
	// before logs, as the reference code does with 1e-8 (METHODS §3).
	ProbFloor float64 `yaml:"prob_floor"`
}

// DefaultKDConfig returns TRL's GKD defaults: JSD with β = 0.5 at τ = 1,
// no τ² factor, and the reference code's 1e-8 probability floor.
func DefaultKDConfig() KDConfig {
	return KDConfig{Divergence: JSD, Beta: 0.5, Temperature: 1, ProbFloor: 1e-8}
}

// Validate returns an error naming the field (by its yaml key) that is
// out of range.
func (c KDConfig) Validate() error {
	switch c.Divergence {
	case ForwardKL, ReverseKL, JSD:
	default:
		return fmt.Errorf("divergence: %q is not one of %s, %s, %s", c.Divergence, ForwardKL, ReverseKL, JSD)
	}
	if !(c.Beta >= 0 && c.Beta <= 1) {
		return fmt.Errorf("beta: %v is out of range (allowed: 0 to 1)", c.Beta)
	}
	if !(c.Temperature > 0) || math.IsInf(c.Temperature, 0) {
		return fmt.Errorf("temperature: %v is out of range (allowed: above 0)", c.Temperature)
	}
	if !(c.ProbFloor > 0 && c.ProbFloor < 0.5) {
		// A zero floor would take the log of the empty bins outside the
		// top-K, and 0·log 0 is NaN in floating point.
		return fmt.Errorf("prob_floor: %v is out of range (allowed: above 0 and below 0.5)", c.ProbFloor)
	}
	return nil
}

// Targets are sparse teacher signals for N positions: at each, the
// teacher's top K token ids with their log-probs and the probability mass
// outside them. Row-major: position n's tokens are Index[n*K:(n+1)*K].
type Targets struct {
	K     int
	Index []int32
	// LogP are the teacher's log-probs of Index.
	LogP []float32
	// Rest is 1 - Σ exp(LogP) per position, the remainder bin.
	Rest []float32
	// RefLogP, for ADPA, are the reference teacher's log-probs of the
	// same tokens; nil otherwise.
	RefLogP []float32
	// Weight is each position's weight in the pooled mean: 1 for a
	// response token that counts, 0 for padding. nil means all 1.
	Weight []float32
}

// N returns the number of positions.
func (t Targets) N() int {
	if t.K == 0 {
		return 0
	}
	return len(t.Index) / t.K
}

// check returns an error when t does not describe n positions over a
// vocabulary of v tokens.
func (t Targets) check(n, v int, needRef bool) error {
	if t.K < 1 || t.K > v {
		return fmt.Errorf("distill: top-k %d for a vocabulary of %d", t.K, v)
	}
	if len(t.Index) != n*t.K || len(t.LogP) != n*t.K || len(t.Rest) != n {
		return fmt.Errorf("distill: targets of %d indices, %d log-probs and %d remainders for %d positions of top-%d",
			len(t.Index), len(t.LogP), len(t.Rest), n, t.K)
	}
	if t.Weight != nil && len(t.Weight) != n {
		return fmt.Errorf("distill: %d weights for %d positions", len(t.Weight), n)
	}
	if needRef && len(t.RefLogP) != n*t.K {
		return fmt.Errorf("distill: %d reference log-probs for %d positions of top-%d", len(t.RefLogP), n, t.K)
	}
	for i, id := range t.Index {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("distill: target token %d at position %d is outside the vocabulary of %d", id, i/t.K, v)
		}
	}
	return nil
}

// weight returns position n's weight.
func (t Targets) weight(n int) float32 {
	if t.Weight == nil {
		return 1
	}
	return t.Weight[n]
}

// count returns the pooled token count, Σ weights.
func (t Targets) count() float64 {
	s := 0.0
	for n := range t.N() {
		s += float64(t.weight(n))
	}
	return s
}

// DenseTargets turns full next-token distributions, probs [N·V] row-major
// (each row summing to 1), into Targets with K = V, so that the sparse
// losses compute the exact divergence; the remainder is 0. Tests and small
// vocabularies use it. It returns an error when a row is not a
// distribution.
func DenseTargets(probs []float64, v int) (Targets, error) {
	if v < 1 || len(probs)%v != 0 {
		return Targets{}, fmt.Errorf("distill: %d probabilities for rows of %d", len(probs), v)
	}
	n := len(probs) / v
	t := Targets{K: v, Index: make([]int32, n*v), LogP: make([]float32, n*v), Rest: make([]float32, n)}
	for r := range n {
		s := 0.0
		for j := range v {
			p := probs[r*v+j]
			if !(p >= 0) {
				return Targets{}, fmt.Errorf("distill: row %d: probability %v", r, p)
			}
			s += p
			t.Index[r*v+j] = int32(j)
			t.LogP[r*v+j] = float32(math.Log(p))
		}
		if math.Abs(s-1) > 1e-6 {
			return Targets{}, fmt.Errorf("distill: row %d sums to %v, not 1", r, s)
		}
	}
	return t, nil
}

// constant makes a host slice into a tensor like ref's (backend, dtype).
func constant(ref *tensor.Tensor, xs []float64, shape ...int) *tensor.Tensor {
	if ref.DType() == tensor.Float64 {
		return tensor.From(ref.Backend(), tensor.Float64, xs, shape...)
	}
	f := make([]float32, len(xs))
	for i, x := range xs {
		f[i] = float32(x)
	}
	return tensor.From(ref.Backend(), tensor.Float32, f, shape...)
}

// hostValues reads t as float64 values.
func hostValues(t *tensor.Tensor) []float64 {
	if t.DType() == tensor.Float64 {
		return t.Float64s()
	}
	f := t.Float32s()
	out := make([]float64, len(f))
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}

// clampProb returns x clamped elementwise to [lo, hi] with torch.clamp's
// gradient: it passes through where x is inside and is 0 where clamped.
// The tensor package has no clamp op, so the inside mask is read on the
// host; it depends only on forward values, never on gradients.
func clampProb(x *tensor.Tensor, lo, hi float64) *tensor.Tensor {
	vals := hostValues(x)
	keep := make([]float64, len(vals))
	fill := make([]float64, len(vals))
	clamped := false
	for i, v := range vals {
		switch {
		case v < lo:
			fill[i], clamped = lo, true
		case v > hi:
			fill[i], clamped = hi, true
		default:
			keep[i] = 1
		}
	}
	if !clamped {
		return x
	}
	return x.Mul(constant(x, keep, x.Shape()...)).Add(constant(x, fill, x.Shape()...))
}

// KDLoss returns the pooled token-mean divergence (cfg.Divergence) between
// the teacher targets t and the student's logits [N, V] (f32 or f64), on
// the reference code's K+1 bins: the teacher's top-K tokens and the
// remainder mass, each distribution clamped to [floor, 1-floor] (METHODS
// §3). With K = V (DenseTargets) it is the exact divergence over the
// vocabulary. The sum runs over positions weighted by t.Weight and is
// divided by their total, so padding counts nothing. It returns an error
// when cfg is invalid, the shapes disagree, or an op fails.
func KDLoss(cfg KDConfig, logits *tensor.Tensor, t Targets) (loss *tensor.Tensor, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("distill: kd: %w", err)
	}
	if logits == nil || logits.Rank() != 2 {
		return nil, errors.New("distill: kd: logits must be [N, V]")
	}
	n, v := logits.Dim(0), logits.Dim(1)
	if err := t.check(n, v, false); err != nil {
		return nil, err
	}
	err = tensor.Catch(func() { loss = kdLoss(cfg, logits, t, n, v) })
	return loss, err
}

func kdLoss(cfg KDConfig, logits *tensor.Tensor, t Targets, n, v int) *tensor.Tensor {
	floor := cfg.ProbFloor
	// Host side: the teacher's binned distribution over V+1 columns (the
	// vocabulary, then the remainder), the top-K membership of each
	// student column, and which bins exist (top-K and remainder) with
	// the position's weight.
	w := v + 1
	top := make([]float64, n*v)
	p := make([]float64, n*w)
	bins := make([]float64, n*w)
	for r := range n {
		wt := float64(t.weight(r))
		for k := range t.K {
			j := int(t.Index[r*t.K+k])
			top[r*v+j] = 1
			p[r*w+j] = math.Exp(float64(t.LogP[r*t.K+k]))
			bins[r*w+j] = wt
		}
		p[r*w+v] = float64(t.Rest[r])
		bins[r*w+v] = wt
		for j := range w {
			p[r*w+j] = min(max(p[r*w+j], floor), 1-floor)
		}
	}
	logp := make([]float64, len(p))
	for i, x := range p {
		logp[i] = math.Log(x)
	}
	q := logits
	if cfg.Temperature != 1 {
		q = q.Scale(1 / cfg.Temperature)
	}
	q = q.Softmax()
	topT := constant(logits, top, n, v)
	qTop := q.Mul(topT)
	// The remainder is summed from the columns outside the top-K rather
	// than taken as 1 - Σ top, so that it stays exact (never negative)
	// when the top-K holds almost all the mass.
	qRest := q.Sub(qTop).Sum(1).Reshape(n, 1)
	qb := clampProb(tensor.Concat(1, qTop, qRest), floor, 1-floor)
	logq := qb.Log()
	pT := constant(logits, p, n, w)
	logpT := constant(logits, logp, n, w)
	var term *tensor.Tensor
	switch {
	case cfg.Divergence == ForwardKL || cfg.Divergence == JSD && cfg.Beta == 0:
		term = pT.Mul(logpT.Sub(logq))
	case cfg.Divergence == ReverseKL || cfg.Divergence == JSD && cfg.Beta == 1:
		term = qb.Mul(logq.Sub(logpT))
	default:
		b := cfg.Beta
		m := pT.Scale(b).Add(qb.Scale(1 - b))
		logm := m.Log()
		term = pT.Mul(logpT.Sub(logm)).Scale(b).Add(qb.Mul(logq.Sub(logm)).Scale(1 - b))
	}
	scale := 1.0
	if c := t.count(); c > 0 {
		scale = 1 / c
	}
	if cfg.TemperatureSquared {
		scale *= cfg.Temperature * cfg.Temperature
	}
	return term.Mul(constant(logits, bins, n, w)).Sum().Scale(scale)
}

// ADPAConfig configures the ADPA loss (METHODS §3).
type ADPAConfig struct {
	// ClampAdvantage passes the advantages through the reference code's
	// [floor, 1-floor] probability clamp, which zeroes negative
	// advantages; off by default, so the raw log-ratio is used
	// (METHODS §3 pitfall a). It exists for parity runs.
	ClampAdvantage bool `yaml:"clamp_advantage"`
	// ProbFloor is the clamp's floor (1e-8).
	ProbFloor float64 `yaml:"prob_floor"`
}

// Advantages returns A = log π_dpo − log π_ref at each of t's top-K
// tokens, row-major [N·K], clamped when cfg says so. It returns an error
// when t has no reference log-probs.
func Advantages(cfg ADPAConfig, t Targets) ([]float64, error) {
	if len(t.RefLogP) != len(t.LogP) {
		return nil, fmt.Errorf("distill: adpa: %d reference log-probs for %d teacher log-probs", len(t.RefLogP), len(t.LogP))
	}
	a := make([]float64, len(t.LogP))
	for i := range a {
		a[i] = float64(t.LogP[i]) - float64(t.RefLogP[i])
		if cfg.ClampAdvantage {
			a[i] = min(max(a[i], cfg.ProbFloor), 1-cfg.ProbFloor)
		}
	}
	return a, nil
}

// ADPALoss returns L = -(1/N) Σ_t Σ_{a in top-K(t)} p_θ(a|s_t)·A(s_t, a),
// pooled over the positions weighted by t.Weight, for the student's
// logits [N, V] and the teacher's top-K with reference log-probs (METHODS
// §3). Its gradient in logit z_j is -p_j(A_j - Ā) inside the top-K and
// p_j·Ā outside, with Ā = Σ_K p_k A_k, so descent moves mass toward
// tokens of above-average advantage. It returns an error when the shapes
// disagree, t lacks reference log-probs, or an op fails.
func ADPALoss(cfg ADPAConfig, logits *tensor.Tensor, t Targets) (loss *tensor.Tensor, err error) {
	if cfg.ProbFloor < 0 || cfg.ProbFloor >= 0.5 || math.IsNaN(cfg.ProbFloor) {
		return nil, fmt.Errorf("distill: adpa: prob_floor: %v is out of range (allowed: 0 to below 0.5)", cfg.ProbFloor)
	}
	if logits == nil || logits.Rank() != 2 {
		return nil, errors.New("distill: adpa: logits must be [N, V]")
	}
	n, v := logits.Dim(0), logits.Dim(1)
	if err := t.check(n, v, true); err != nil {
		return nil, err
	}
	adv, err := Advantages(cfg, t)
	if err != nil {
		return nil, err
	}
	dense := make([]float64, n*v)
	for r := range n {
		wt := float64(t.weight(r))
		for k := range t.K {
			dense[r*v+int(t.Index[r*t.K+k])] += wt * adv[r*t.K+k]
		}
	}
	scale := 0.0
	if c := t.count(); c > 0 {
		scale = -1 / c
	}
	err = tensor.Catch(func() {
		loss = logits.Softmax().Mul(constant(logits, dense, n, v)).Sum().Scale(scale)
	})
	return loss, err
}
