package distill

import (
	"math"
	"testing"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

// sanityP and sanityQ are METHODS §3 and §5's teacher and student.
var (
	sanityP = []float64{0.7, 0.2, 0.1}
	sanityQ = []float64{0.5, 0.3, 0.2}
)

// logitsOf returns float64 logits [1, V] whose softmax is probs.
func logitsOf(probs []float64) *tensor.Tensor {
	z := make([]float64, len(probs))
	for i, p := range probs {
		z[i] = math.Log(p)
	}
	return tensor.FromFloat64(z, 1, len(probs)).SetRequiresGrad(true)
}

func round(x float64, places int) float64 {
	s := math.Pow(10, float64(places))
	return math.Round(x*s) / s
}

// TestKDSanity reproduces METHODS §5's numbers (FKL 0.0851, RKL 0.0920,
// JSD(0.5) 0.0219), on the full distribution and on METHODS §3's sparse
// bins (top-2 plus a remainder bin that here holds exactly token 2).
func TestKDSanity(t *testing.T) {
	dense, err := DenseTargets(sanityP, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The teacher's top-2 and a remainder of 0.1.
	sparse := Targets{K: 2, Index: []int32{0, 1}, LogP: []float32{float32(math.Log(0.7)), float32(math.Log(0.2))}, Rest: []float32{0.1}}
	for _, tc := range []struct {
		name string
		div  string
		beta float64
		want float64
	}{
		{"forward KL", ForwardKL, 0, 0.0851},
		{"reverse KL", ReverseKL, 0, 0.0920},
		{"JSD 0.5", JSD, 0.5, 0.0219},
		{"JSD beta 0 is forward KL", JSD, 0, 0.0851},
		{"JSD beta 1 is reverse KL", JSD, 1, 0.0920},
	} {
		for _, tg := range []struct {
			name string
			t    Targets
		}{{"dense", dense}, {"sparse", sparse}} {
			cfg := DefaultKDConfig()
			cfg.Divergence, cfg.Beta = tc.div, tc.beta
			loss, err := KDLoss(cfg, logitsOf(sanityQ), tg.t)
			if err != nil {
				t.Fatal(err)
			}
			if got := round(loss.Item(), 4); got != tc.want {
				t.Errorf("%s, %s: %.6f rounds to %v, want %v", tc.name, tg.name, loss.Item(), got, tc.want)
			}
		}
	}
}

// TestKDTemperatureSquared checks that τ divides the student's logits and
// that the τ² flag multiplies the loss by τ².
func TestKDTemperatureSquared(t *testing.T) {
	dense, _ := DenseTargets(sanityP, 3)
	z := []float64{0.3, -1.2, 0.9}
	for _, div := range []string{ForwardKL, ReverseKL, JSD} {
		cfg := DefaultKDConfig()
		cfg.Divergence, cfg.Temperature = div, 2
		plain, err := KDLoss(cfg, tensor.FromFloat64(z, 1, 3), dense)
		if err != nil {
			t.Fatal(err)
		}
		// τ = 2 on z equals τ = 1 on z/2.
		half := DefaultKDConfig()
		half.Divergence = div
		ref, _ := KDLoss(half, tensor.FromFloat64([]float64{0.15, -0.6, 0.45}, 1, 3), dense)
		if math.Abs(plain.Item()-ref.Item()) > 1e-12 {
			t.Errorf("%s: τ=2 gives %v, logits/2 give %v", div, plain.Item(), ref.Item())
		}
		cfg.TemperatureSquared = true
		sq, _ := KDLoss(cfg, tensor.FromFloat64(z, 1, 3), dense)
		if math.Abs(sq.Item()-4*plain.Item()) > 1e-12 {
			t.Errorf("%s: with τ² %v, want 4 × %v", div, sq.Item(), plain.Item())
		}
	}
}

// TestKDPoolsWeightedTokens checks the pooled token mean: a position of
// weight 0 changes nothing, and two positions average.
func TestKDPoolsWeightedTokens(t *testing.T) {
	two, _ := DenseTargets(append(append([]float64{}, sanityP...), 0.1, 0.1, 0.8), 3)
	z := tensor.FromFloat64([]float64{math.Log(0.5), math.Log(0.3), math.Log(0.2), 5, -3, 1}, 2, 3)
	cfg := DefaultKDConfig()
	cfg.Divergence = ForwardKL
	two.Weight = []float32{1, 0}
	l, err := KDLoss(cfg, z, two)
	if err != nil {
		t.Fatal(err)
	}
	if got := round(l.Item(), 4); got != 0.0851 {
		t.Errorf("with the second position masked: %v, want 0.0851", l.Item())
	}
	two.Weight = nil
	all, _ := KDLoss(cfg, z, two)
	second, _ := DenseTargets([]float64{0.1, 0.1, 0.8}, 3)
	l2, _ := KDLoss(cfg, tensor.FromFloat64([]float64{5, -3, 1}, 1, 3), second)
	if want := (l.Item() + l2.Item()) / 2; math.Abs(all.Item()-want) > 1e-12 {
		t.Errorf("pooled mean %v, want %v", all.Item(), want)
	}
}

// TestADPASanity reproduces METHODS §3: A = [0.4, -0.2, -1.0] gives
// L_ADPA = 0.06 and logit gradients [-0.23, +0.042, +0.188].
func TestADPASanity(t *testing.T) {
	adv := []float64{0.4, -0.2, -1.0}
	tg := Targets{K: 3, Index: []int32{0, 1, 2}, LogP: make([]float32, 3), Rest: []float32{0}, RefLogP: make([]float32, 3)}
	for i, a := range adv {
		tg.LogP[i] = -1
		tg.RefLogP[i] = float32(-1 - a)
	}
	z := logitsOf(sanityQ)
	loss, err := ADPALoss(ADPAConfig{ProbFloor: 1e-8}, z, tg)
	if err != nil {
		t.Fatal(err)
	}
	if got := round(loss.Item(), 6); got != 0.06 {
		t.Errorf("L_ADPA %v, want 0.06", loss.Item())
	}
	loss.Backward()
	g := z.Grad().Float64s()
	for i, want := range []float64{-0.23, 0.042, 0.188} {
		if got := round(g[i], 6); got != want {
			t.Errorf("dL/dz[%d] = %v, want %v", i, g[i], want)
		}
	}
	if g[0] >= 0 {
		t.Error("a descent step must raise token 0")
	}
}

// TestADPAGradientMatchesHandDerivation compares autodiff with METHODS
// §3's hand-derived gradient, -p_j(A_j - Ā) inside the top-K and p_j·Ā
// outside, on random logits with K < V, for the raw and the clamped
// advantage.
func TestADPAGradientMatchesHandDerivation(t *testing.T) {
	rng := tensor.NewRNG(7)
	const N, V, K = 3, 7, 3
	z := make([]float64, N*V)
	for i := range z {
		z[i] = rng.NormFloat64()
	}
	tg := Targets{K: K, Index: make([]int32, N*K), LogP: make([]float32, N*K), Rest: make([]float32, N), RefLogP: make([]float32, N*K)}
	for n := range N {
		perm := rng.Perm(V)
		for k := range K {
			tg.Index[n*K+k] = int32(perm[k])
			tg.LogP[n*K+k] = float32(-1 - rng.Float64())
			tg.RefLogP[n*K+k] = float32(-1 - rng.Float64())
		}
	}
	for _, clamp := range []bool{false, true} {
		cfg := ADPAConfig{ClampAdvantage: clamp, ProbFloor: 1e-8}
		x := tensor.FromFloat64(z, N, V).SetRequiresGrad(true)
		loss, err := ADPALoss(cfg, x, tg)
		if err != nil {
			t.Fatal(err)
		}
		loss.Backward()
		got := x.Grad().Float64s()
		adv, _ := Advantages(cfg, tg)
		for n := range N {
			p := make([]float64, V)
			s := 0.0
			for j := range V {
				p[j] = math.Exp(z[n*V+j])
				s += p[j]
			}
			a := make([]float64, V)
			in := make([]bool, V)
			abar := 0.0
			for k := range K {
				j := tg.Index[n*K+k]
				p[j] /= 1 // normalised below
				a[j], in[j] = adv[n*K+k], true
			}
			for j := range V {
				p[j] /= s
			}
			for j := range V {
				abar += p[j] * a[j] * b2f(in[j])
			}
			for j := range V {
				want := p[j] * abar
				if in[j] {
					want = -p[j] * (a[j] - abar)
				}
				want /= N // the pooled mean over N positions
				if math.Abs(got[n*V+j]-want) > 1e-12 {
					t.Errorf("clamp %v: position %d token %d: autodiff %v, hand %v", clamp, n, j, got[n*V+j], want)
				}
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestAdvantageClamp checks the parity flag: clamped advantages lie in
// [1e-8, 1-1e-8], so a negative one becomes the floor.
func TestAdvantageClamp(t *testing.T) {
	tg := Targets{K: 3, LogP: []float32{-1, -1, -1}, RefLogP: []float32{-1.4, -0.8, -4}}
	for _, tc := range []struct {
		clamp bool
		want  []float64
	}{
		{false, []float64{0.4, -0.2, 3}},
		{true, []float64{0.4, 1e-8, 1 - 1e-8}},
	} {
		a, err := Advantages(ADPAConfig{ClampAdvantage: tc.clamp, ProbFloor: 1e-8}, tg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if math.Abs(a[i]-tc.want[i]) > 1e-6 {
				t.Errorf("clamp %v: A[%d] = %v, want %v", tc.clamp, i, a[i], tc.want[i])
			}
		}
	}
}

// TestLossGradcheck checks the KD losses and ADPA against finite
// differences, in float64 and float32, on sparse targets with K < V.
func TestLossGradcheck(t *testing.T) {
	rng := tensor.NewRNG(3)
	const N, V, K = 4, 6, 3
	tg := Targets{K: K, Index: make([]int32, N*K), LogP: make([]float32, N*K), Rest: make([]float32, N),
		RefLogP: make([]float32, N*K), Weight: []float32{1, 1, 0, 1}}
	for n := range N {
		perm := rng.Perm(V)
		raw := make([]float64, K)
		s := 0.0
		for k := range K {
			raw[k] = rng.Float64() + 0.1
			s += raw[k]
		}
		mass := 0.8
		for k := range K {
			tg.Index[n*K+k] = int32(perm[k])
			tg.LogP[n*K+k] = float32(math.Log(mass * raw[k] / s))
			tg.RefLogP[n*K+k] = float32(math.Log(mass*raw[k]/s) - rng.Float64())
		}
		tg.Rest[n] = float32(1 - mass)
	}
	z := make([]float64, N*V)
	for i := range z {
		z[i] = rng.NormFloat64()
	}
	for _, tc := range []struct {
		name string
		f    func(x *tensor.Tensor) (*tensor.Tensor, error)
	}{
		{"forward KL", kdWith(ForwardKL, 0.5, 1, tg)},
		{"reverse KL", kdWith(ReverseKL, 0.5, 1, tg)},
		{"JSD 0.3", kdWith(JSD, 0.3, 1, tg)},
		{"JSD 0.5 at τ 1.7", kdWith(JSD, 0.5, 1.7, tg)},
		{"ADPA", func(x *tensor.Tensor) (*tensor.Tensor, error) { return ADPALoss(ADPAConfig{ProbFloor: 1e-8}, x, tg) }},
	} {
		x := tensor.FromFloat64(z, N, V).SetRequiresGrad(true)
		gradcheck.Check(t, tc.name, func(in []*tensor.Tensor) *tensor.Tensor {
			l, err := tc.f(in[0])
			if err != nil {
				panic(err)
			}
			return l
		}, x)
	}
}

func kdWith(div string, beta, tau float64, tg Targets) func(x *tensor.Tensor) (*tensor.Tensor, error) {
	return func(x *tensor.Tensor) (*tensor.Tensor, error) {
		cfg := DefaultKDConfig()
		cfg.Divergence, cfg.Beta, cfg.Temperature = div, beta, tau
		return KDLoss(cfg, x, tg)
	}
}

// TestLossErrors checks that bad configs and shapes are errors, not
// panics.
func TestLossErrors(t *testing.T) {
	dense, _ := DenseTargets(sanityP, 3)
	z := tensor.FromFloat64([]float64{0, 0, 0}, 1, 3)
	for _, tc := range []struct {
		name string
		cfg  KDConfig
		t    Targets
	}{
		{"unknown divergence", KDConfig{Divergence: "tv", Temperature: 1, ProbFloor: 1e-8}, dense},
		{"beta above 1", KDConfig{Divergence: JSD, Beta: 1.5, Temperature: 1, ProbFloor: 1e-8}, dense},
		{"zero temperature", KDConfig{Divergence: JSD, Beta: 0.5, ProbFloor: 1e-8}, dense},
		{"zero floor", KDConfig{Divergence: JSD, Beta: 0.5, Temperature: 1}, dense},
		{"index outside vocabulary", DefaultKDConfig(), Targets{K: 1, Index: []int32{3}, LogP: []float32{0}, Rest: []float32{0}}},
		{"wrong count", DefaultKDConfig(), Targets{K: 1, Index: []int32{0, 1}, LogP: []float32{0, 0}, Rest: []float32{0, 0}}},
	} {
		if _, err := KDLoss(tc.cfg, z, tc.t); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := ADPALoss(ADPAConfig{ProbFloor: 1e-8}, z, dense); err == nil {
		t.Error("ADPA without reference log-probs: no error")
	}
	if _, err := DenseTargets([]float64{0.5, 0.4, 0.3}, 3); err == nil {
		t.Error("DenseTargets of a row summing to 1.2: no error")
	}
}

// TestJudgeArith checks the programmatic preference and the rejected
// answers it is built on.
func TestJudgeArith(t *testing.T) {
	p := data.Problem{Question: "12 + 9 = ?", Solution: "2 + 9 = 11, carry 1\n1 + 0 + 1 = 2", Answer: "21"}
	right := p.Target()
	rambling := "2 + 9 = 11, carry 1\n2 + 9 = 11, carry 1\n1 + 0 + 1 = 2\n#### 21"
	wrong := RejectedArith(p)
	for _, tc := range []struct {
		name string
		a, b string
		want float64
	}{
		{"right beats wrong", right, wrong, 1},
		{"wrong loses to right", wrong, right, 0},
		{"concise beats rambling", right, rambling, 1},
		{"rambling loses to concise", rambling, right, 0},
		{"equal is a tie", right, right, 0.5},
		{"two wrong tie", wrong, "#### 7", 0.5},
	} {
		if got := JudgeArith(p, tc.a, tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if p.Correct(wrong) || len(wrong) <= len(right) {
		t.Errorf("rejected answer %q is not wrong and longer than %q", wrong, right)
	}
	if win, acc := WinRate([]data.Problem{p, p}, []string{right, wrong}, []string{wrong, wrong}); win != 0.75 || acc != 0.5 {
		t.Errorf("win rate %v accuracy %v, want 0.75 and 0.5", win, acc)
	}
	for _, tc := range [][2]string{{"21", "22"}, {"-9", "-8"}, {"x", "x1"}, {"109", "108"}} {
		if got := offByOne(tc[0]); got != tc[1] {
			t.Errorf("offByOne(%q) = %q, want %q", tc[0], got, tc[1])
		}
	}
}
