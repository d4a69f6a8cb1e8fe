package conformance

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// The oracle is the reference every backend is held to, so its gradients
// are checked here against central differences of its forward functions.

const fdStep = 1e-6

// numGrad returns the central-difference gradient of f at x.
func numGrad(x []float64, f func() float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		if math.IsNaN(x[i]) {
			continue
		}
		v := x[i]
		x[i] = v + fdStep
		lp := f()
		x[i] = v - fdStep
		lm := f()
		x[i] = v
		g[i] = (lp - lm) / (2 * fdStep)
	}
	return g
}

// inner returns sum(a*b), skipping NaN padding.
func inner(a, b []float64) float64 {
	var s float64
	for i := range a {
		if !math.IsNaN(a[i]) && !math.IsNaN(b[i]) {
			s += a[i] * b[i]
		}
	}
	return s
}

func nanToZero(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		if !math.IsNaN(x) {
			out[i] = x
		}
	}
	return out
}

func agree(t *testing.T, what string, analytic, numeric []float64) {
	t.Helper()
	if msg := compare(analytic, numeric, 1e-6); msg != "" {
		t.Errorf("%s: oracle gradient against finite differences: %s", what, msg)
	}
}

func testRNG() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func randn(rng *rand.Rand, n int, mean, std float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = mean + std*rng.NormFloat64()
	}
	return v
}

func TestOracleUnaryDerivatives(t *testing.T) {
	for _, u := range unarySpecs {
		for _, x := range []float64{0.3, 0.7, 1.9, 2.5} {
			if u.op != tensor.Log && u.op != tensor.Sqrt && u.op != tensor.Rsqrt && u.op != tensor.Pow {
				x -= 1.2 // negative inputs too, where the domain allows
			}
			num := (unaryRef(u.op, u.alpha, x+fdStep) - unaryRef(u.op, u.alpha, x-fdStep)) / (2 * fdStep)
			if got := unaryDeriv(u.op, u.alpha, x); math.Abs(got-num) > 1e-6*max(1, math.Abs(num)) {
				t.Errorf("%s'(%g) = %g, finite difference %g", u.name, x, got, num)
			}
		}
	}
	// GELU is the tanh approximation of the doc.
	if got, want := unaryRef(tensor.GELU, 0, 1), 0.8411919906082768; math.Abs(got-want) > 1e-15 {
		t.Errorf("gelu(1) = %.17g, want %.17g", got, want)
	}
}

func TestOracleSoftmaxGrad(t *testing.T) {
	rng := testRNG()
	const rows, cols = 3, 5
	x, dy := randn(rng, rows*cols, 0, 1.5), randn(rng, rows*cols, 0, 1)
	for _, log := range []bool{false, true} {
		y := softmaxRef(log, rows, cols, x)
		num := numGrad(x, func() float64 { return inner(dy, softmaxRef(log, rows, cols, x)) })
		agree(t, "softmax", softmaxGradRef(log, rows, cols, y, dy), num)
	}
}

func TestOracleCrossEntropyGrad(t *testing.T) {
	rng := testRNG()
	const rows, cols = 5, 6
	logits, dloss := randn(rng, rows*cols, 0, 2), randn(rng, rows, 0, 1)
	targets := []int{2, -100, 0, 5, 6}
	loss, lse := ceRef(rows, cols, logits, targets)
	if loss[1] != 0 || loss[4] != 0 {
		t.Errorf("ignored rows have losses %g and %g, want 0", loss[1], loss[4])
	}
	num := numGrad(logits, func() float64 {
		l, _ := ceRef(rows, cols, logits, targets)
		return inner(dloss, l)
	})
	agree(t, "cross-entropy", ceGradRef(rows, cols, logits, targets, lse, dloss), num)
}

func TestOracleNormGrad(t *testing.T) {
	rng := testRNG()
	const rows, cols, eps = 4, 7, 1e-3
	for _, layer := range []bool{false, true} {
		x, w, b, dy := randn(rng, rows*cols, 0.5, 1), randn(rng, cols, 1, 0.3), randn(rng, cols, 0, 1), randn(rng, rows*cols, 0, 1)
		if !layer {
			b = nil
		}
		_, mean, rstd := normRef(layer, rows, cols, eps, x, w, b)
		dx, dw, db := normGradRef(layer, rows, cols, x, w, mean, rstd, dy)
		loss := func() float64 {
			y, _, _ := normRef(layer, rows, cols, eps, x, w, b)
			return inner(dy, y)
		}
		agree(t, "norm dx", dx, numGrad(x, loss))
		agree(t, "norm dw", dw, numGrad(w, loss))
		if layer {
			agree(t, "norm db", db, numGrad(b, loss))
		}
	}
}

func TestOracleSwiGLUGrad(t *testing.T) {
	// The conformance cases inline the derivative; check it here once.
	for _, g := range []float64{-3, -0.5, 0.2, 2.7} {
		s := 1 / (1 + math.Exp(-g))
		num := (silu(g+fdStep) - silu(g-fdStep)) / (2 * fdStep)
		if d := s + g*s*(1-s); math.Abs(d-num) > 1e-8 {
			t.Errorf("silu'(%g) = %g, finite difference %g", g, d, num)
		}
	}
}

func TestOracleRoPEInverseIsAdjoint(t *testing.T) {
	// Inverse RoPE is the gradient of RoPE: <rope(x), y> = <x, rope⁻¹(y)>,
	// and positions 0 leave x unchanged.
	rng := testRNG()
	for _, half := range []bool{false, true} {
		s := ropeSpec{rows: 3, heads: 2, headDim: 10, rotDim: 6, half: half}
		x, y := randn(rng, 60, 0, 1), randn(rng, 60, 0, 1)
		pos, inv := []int{0, 5, 17}, []float64{1, 0.2, 0.05}
		fwd := ropeRef(s, x, pos, inv)
		s.inverse = true
		back := ropeRef(s, y, pos, inv)
		if a, b := inner(fwd, y), inner(x, back); math.Abs(a-b) > 1e-12 {
			t.Errorf("half %v: <rope x, y> = %g, <x, rope⁻¹ y> = %g", half, a, b)
		}
		if compare(fwd[:20], x[:20], 0) != "" {
			t.Errorf("half %v: position 0 changed the row", half)
		}
		if compare(fwd[26:30], x[26:30], 0) != "" {
			t.Errorf("half %v: features beyond RotDim changed", half)
		}
	}
	// Adjacent pairs: row at position p, pair 0 turns by p*inv[0].
	s := ropeSpec{rows: 1, heads: 1, headDim: 2, rotDim: 2}
	got := ropeRef(s, []float64{1, 0}, []int{2}, []float64{0.25})
	if math.Abs(got[0]-math.Cos(0.5)) > 1e-15 || math.Abs(got[1]-math.Sin(0.5)) > 1e-15 {
		t.Errorf("rope of (1, 0) by 0.5 rad = %v", got)
	}
}

func TestOracleAttentionGrad(t *testing.T) {
	rng := testRNG()
	for _, s := range []attnSpec{
		{b: 2, tq: 3, tk: 4, hq: 4, hkv: 2, d: 3, qOffset: 1, causal: true, scale: 0.6, mask: true, maskGap: 2, kvExtra: 5},
		{b: 1, tq: 4, tk: 4, hq: 2, hkv: 1, d: 2, scale: 0.9, mask: true, maskShared: true},
	} {
		d := &attnData{kvStride: s.tk*s.hkv*s.d + s.kvExtra}
		d.q = randn(rng, s.b*s.tq*s.hq*s.d, 0, 1)
		dense := s.tk * s.hkv * s.d
		d.k = filled((s.b-1)*d.kvStride+dense, math.NaN())
		d.v = filled(len(d.k), math.NaN())
		for bi := 0; bi < s.b; bi++ {
			copy(d.k[bi*d.kvStride:], randn(rng, dense, 0, 1))
			copy(d.v[bi*d.kvStride:], randn(rng, dense, 0, 1))
		}
		if !s.maskShared {
			d.maskStride = s.tq*s.tk + s.maskGap
		}
		d.mask = randn(rng, (s.b-1)*d.maskStride+s.tq*s.tk, -1, 0.5)
		o, lse := attnRef(s, d)
		d.do = randn(rng, len(o), 0, 1)
		dq, dk, dv := attnGradRef(s, d)
		loss := func() float64 { o, _ := attnRef(s, d); return inner(d.do, o) }
		agree(t, "attention dq", dq, numGrad(d.q, loss))
		// DK and DV are dense; the oracle inputs are strided.
		densify := func(v []float64) []float64 {
			out := make([]float64, 0, s.b*dense)
			for bi := 0; bi < s.b; bi++ {
				out = append(out, v[bi*d.kvStride:bi*d.kvStride+dense]...)
			}
			return out
		}
		agree(t, "attention dk", dk, densify(nanToZero(numGrad(d.k, loss))))
		agree(t, "attention dv", dv, densify(nanToZero(numGrad(d.v, loss))))
		// LSE normalises the probabilities of each row.
		for bi := 0; bi < s.b; bi++ {
			for hh := 0; hh < s.hq; hh++ {
				for i := 0; i < s.tq; i++ {
					sc, l := s.scores(d, bi, i, hh)
					var sum float64
					for _, v := range sc {
						sum += math.Exp(v - l)
					}
					if math.Abs(sum-1) > 1e-12 || l != lse[(bi*s.hq+hh)*s.tq+i] {
						t.Fatalf("row (%d, %d, %d): probabilities sum to %g", bi, hh, i, sum)
					}
				}
			}
		}
	}
}

func TestCompare(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		got, want []float64
		tol       float64
		ok        bool
		msg       string
	}{
		{[]float64{1, 2}, []float64{1, 2}, 0, true, ""},
		{[]float64{1, 2.0000001}, []float64{1, 2}, 0, false, "exactly"},
		{[]float64{0}, []float64{math.Copysign(0, -1)}, 0, false, "exactly"},
		{[]float64{1, 2.0000001}, []float64{1, 2}, 1e-6, true, ""},
		{[]float64{1, 2.1}, []float64{1, 2}, 1e-6, false, "relative error"},
		{[]float64{nan}, []float64{nan}, 1e-6, true, ""},
		{[]float64{1}, []float64{nan}, 1e-6, false, "want NaN"},
		{[]float64{nan, 1}, []float64{1, 1}, 1e-6, false, "= NaN"},
		{[]float64{math.Inf(1)}, []float64{math.Inf(1)}, 0, true, ""},
		{[]float64{1e300}, []float64{math.Inf(1)}, 1e-6, false, "want +Inf"},
		{[]float64{1}, []float64{1, 2}, 1e-6, false, "elements"},
		{[]float64{1e-7}, []float64{0}, 1e-6, true, ""},
		{[]float64{1e-5}, []float64{0}, 1e-6, false, "relative error"},
	} {
		msg := compare(c.got, c.want, c.tol)
		if (msg == "") != c.ok || !strings.Contains(msg, c.msg) {
			t.Errorf("compare(%v, %v, %g) = %q, want ok %v containing %q", c.got, c.want, c.tol, msg, c.ok, c.msg)
		}
	}
}

func TestQuantize(t *testing.T) {
	for _, c := range []struct {
		dt      tensor.DType
		in, out float64
	}{
		{tensor.Float32, 0.1, float64(float32(0.1))},
		{tensor.BFloat16, 1 + 1.0/256, 1},           // a tie, to even
		{tensor.BFloat16, 1 + 3.0/256, 1 + 4.0/256}, // a tie, to even
		{tensor.Float16, 65520, math.Inf(1)},
		{tensor.Float16, 1 + 1.0/2048, 1},
		{tensor.Int32, -2.75, -2},
		{tensor.Float64, 0.1, 0.1},
	} {
		if got := quantize(c.dt, c.in); got != c.out {
			t.Errorf("quantize(%s, %g) = %g, want %g", c.dt, c.in, got, c.out)
		}
	}
}
