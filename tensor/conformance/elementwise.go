package conformance

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// This file covers Binary, Unary, UnaryGrad, SwiGLU, SwiGLUGrad and
// Dropout.

var binaryOps = []struct {
	name string
	op   tensor.BinaryOp
	f    func(a, b float64) float64
}{
	{"add", tensor.Add, func(a, b float64) float64 { return a + b }},
	{"sub", tensor.Sub, func(a, b float64) float64 { return a - b }},
	{"mul", tensor.Mul, func(a, b float64) float64 { return a * b }},
	{"div", tensor.Div, func(a, b float64) float64 { return a / b }},
}

// binaryPattern is a broadcast pattern: the iteration shape and the
// strides of A and B (nil for contiguous).
type binaryPattern struct {
	name     string
	shape    []int
	aSt, bSt []int
}

var binaryPatterns = []binaryPattern{
	{name: "same", shape: []int{5, 7}},
	{name: "row", shape: []int{5, 7}, bSt: []int{0, 1}},
	{name: "col", shape: []int{5, 7}, bSt: []int{1, 0}},
	{name: "outer", shape: []int{5, 7}, aSt: []int{1, 0}, bSt: []int{0, 1}},
	{name: "scalar-b", shape: []int{3, 4}, bSt: []int{0, 0}},
	{name: "scalar-a", shape: []int{3, 4}, aSt: []int{0, 0}},
	{name: "middle-3d", shape: []int{3, 4, 5}, bSt: []int{5, 0, 1}},
	{name: "transposed-a", shape: []int{6, 4}, aSt: []int{1, 6}},
	{name: "strided-both", shape: []int{4, 3}, aSt: []int{7, 2}, bSt: []int{1, 5}},
	{name: "rank0", shape: []int{}, aSt: []int{}, bSt: []int{}},
	{name: "empty", shape: []int{0, 4}},
	{name: "large-row", shape: []int{64, 1031}, bSt: []int{0, 1}},
	{name: "large-same", shape: []int{3, 40000}},
}

func binaryCases() []kcase {
	var cases []kcase
	for _, op := range binaryOps {
		for _, p := range binaryPatterns {
			op, p := op, p
			cases = append(cases, kcase{name: op.name + "-" + p.name, run: func(h *harness) {
				aSt, bSt := p.aSt, p.bSt
				if aSt == nil {
					aSt = contiguous(p.shape)
				}
				if bSt == nil {
					bSt = contiguous(p.shape)
				}
				av := h.normal(span(p.shape, aSt), 0, 2)
				bv := h.normal(span(p.shape, bSt), 0, 2)
				if op.op == tensor.Div {
					bv = h.magnitude(len(bv), 0.5, 2)
				}
				ab, bb := h.in(av), h.in(bv)
				n := 1
				for _, d := range p.shape {
					n *= d
				}
				ob := h.out(n)
				want := make([]float64, 0, n)
				forEach(p.shape, func(idx []int) {
					want = append(want, op.f(av[dot(idx, aSt)], bv[dot(idx, bSt)]))
				})
				h.call("Binary", h.be.Binary(&tensor.BinaryArgs{Op: op.op, Shape: p.shape, Out: ob.ref(),
					A: ab.ref(), B: bb.ref(), AStrides: aSt, BStrides: bSt}))
				h.check(fmt.Sprintf("%s over %v, A strides %v, B strides %v", op.name, p.shape, aSt, bSt), ob, want, tolStd)
			}})
		}
	}
	return cases
}

// unarySpec names a unary op, its parameter and the input domain.
type unarySpec struct {
	name   string
	op     tensor.UnaryOp
	alpha  float64
	domain func(h *harness, n int) []float64
	tl     tol
}

func normalDomain(std float64) func(h *harness, n int) []float64 {
	return func(h *harness, n int) []float64 { return h.normal(n, 0, std) }
}

func positiveDomain(h *harness, n int) []float64 { return h.uniform(n, 0.25, 4) }

var unarySpecs = []unarySpec{
	{"neg", tensor.Neg, 0, normalDomain(2), tolStd},
	{"scale", tensor.Scale, -1.5, normalDomain(2), tolStd},
	{"scale-third", tensor.Scale, 1.0 / 3, normalDomain(2), tolStd},
	{"add-scalar", tensor.AddScalar, 2.25, normalDomain(2), tolStd},
	{"exp", tensor.Exp, 0, normalDomain(3), tolFn},
	{"exp-wide", tensor.Exp, 0, func(h *harness, n int) []float64 { return h.uniform(n, -80, 80) }, tolFn},
	{"log", tensor.Log, 0, positiveDomain, tolFn},
	{"sqrt", tensor.Sqrt, 0, positiveDomain, tolStd},
	{"rsqrt", tensor.Rsqrt, 0, positiveDomain, tolStd},
	{"square", tensor.Square, 0, normalDomain(2), tolStd},
	{"pow-1.5", tensor.Pow, 1.5, positiveDomain, tolFn},
	{"pow-2", tensor.Pow, 2, positiveDomain, tolFn},
	{"pow-neg-half", tensor.Pow, -0.5, positiveDomain, tolFn},
	{"tanh", tensor.Tanh, 0, normalDomain(2), tolFn},
	{"tanh-wide", tensor.Tanh, 0, func(h *harness, n int) []float64 { return h.uniform(n, -30, 30) }, tolFn},
	{"sigmoid", tensor.Sigmoid, 0, normalDomain(3), tolFn},
	{"sigmoid-wide", tensor.Sigmoid, 0, func(h *harness, n int) []float64 { return h.uniform(n, -60, 60) }, tolFn},
	{"relu", tensor.ReLU, 0, normalDomain(2), tolStd},
	{"silu", tensor.SiLU, 0, normalDomain(3), tolFn},
	{"gelu", tensor.GELU, 0, normalDomain(3), tolFn},
}

// unaryRef is the oracle of Unary.
func unaryRef(op tensor.UnaryOp, alpha, x float64) float64 {
	switch op {
	case tensor.Neg:
		return -x
	case tensor.Scale:
		return alpha * x
	case tensor.AddScalar:
		return x + alpha
	case tensor.Exp:
		return math.Exp(x)
	case tensor.Log:
		return math.Log(x)
	case tensor.Sqrt:
		return math.Sqrt(x)
	case tensor.Rsqrt:
		return 1 / math.Sqrt(x)
	case tensor.Square:
		return x * x
	case tensor.Pow:
		return math.Pow(x, alpha)
	case tensor.Tanh:
		return math.Tanh(x)
	case tensor.Sigmoid:
		return 1 / (1 + math.Exp(-x))
	case tensor.ReLU:
		return math.Max(x, 0)
	case tensor.SiLU:
		return x / (1 + math.Exp(-x))
	case tensor.GELU:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}
	panic(fmt.Sprintf("conformance: unknown unary op %d", op))
}

// unaryDeriv is the oracle of f'(x) for UnaryGrad.
func unaryDeriv(op tensor.UnaryOp, alpha, x float64) float64 {
	switch op {
	case tensor.Neg:
		return -1
	case tensor.Scale:
		return alpha
	case tensor.AddScalar:
		return 1
	case tensor.Exp:
		return math.Exp(x)
	case tensor.Log:
		return 1 / x
	case tensor.Sqrt:
		return 0.5 / math.Sqrt(x)
	case tensor.Rsqrt:
		return -0.5 * math.Pow(x, -1.5)
	case tensor.Square:
		return 2 * x
	case tensor.Pow:
		return alpha * math.Pow(x, alpha-1)
	case tensor.Tanh:
		t := math.Tanh(x)
		return 1 - t*t
	case tensor.Sigmoid:
		s := 1 / (1 + math.Exp(-x))
		return s * (1 - s)
	case tensor.ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case tensor.SiLU:
		s := 1 / (1 + math.Exp(-x))
		return s + x*s*(1-s)
	case tensor.GELU:
		c := math.Sqrt(2 / math.Pi)
		u := c * (x + 0.044715*x*x*x)
		t := math.Tanh(u)
		return 0.5*(1+t) + 0.5*x*(1-t*t)*c*(1+3*0.044715*x*x)
	}
	panic(fmt.Sprintf("conformance: unknown unary op %d", op))
}

func unaryCases() []kcase {
	var cases []kcase
	for _, u := range unarySpecs {
		u := u
		cases = append(cases, kcase{name: u.name, run: func(h *harness) { runUnary(h, u, 257, false) }})
	}
	for _, u := range []unarySpec{unarySpecs[0], unarySpecs[4], unarySpecs[19]} {
		u := u
		cases = append(cases, kcase{name: u.name + "-large", run: func(h *harness) { runUnary(h, u, 40001, false) }})
	}
	cases = append(cases, kcase{name: "empty", run: func(h *harness) { runUnary(h, unarySpecs[4], 0, false) }})
	// The tensor layer negates and scales in place (Y = X).
	for _, u := range []unarySpec{unarySpecs[0], unarySpecs[1], unarySpecs[4]} {
		u := u
		cases = append(cases, kcase{name: u.name + "-in-place", run: func(h *harness) { runUnary(h, u, 1001, true) }})
	}
	return cases
}

func runUnary(h *harness, u unarySpec, n int, inPlace bool) {
	x := u.domain(h, n)
	xb := h.in(x)
	yb := xb
	if !inPlace {
		yb = h.out(n)
	}
	want := make([]float64, n)
	for i, v := range x {
		want[i] = unaryRef(u.op, u.alpha, v)
	}
	h.call("Unary", h.be.Unary(&tensor.UnaryArgs{Op: u.op, N: n, Alpha: u.alpha, X: xb.ref(), Y: yb.ref()}))
	h.check(fmt.Sprintf("%s (alpha %g)", u.name, u.alpha), yb, want, u.tl)
}

func unaryGradCases() []kcase {
	var cases []kcase
	for _, u := range unarySpecs {
		u := u
		cases = append(cases, kcase{name: u.name, run: func(h *harness) { runUnaryGrad(h, u, 257, false) }})
	}
	for _, i := range []int{1, 4, 13, 19} {
		u := unarySpecs[i]
		cases = append(cases, kcase{name: u.name + "-accumulate", run: func(h *harness) { runUnaryGrad(h, u, 257, true) }})
	}
	cases = append(cases, kcase{name: "gelu-large", run: func(h *harness) { runUnaryGrad(h, unarySpecs[19], 40001, false) }})
	return cases
}

func runUnaryGrad(h *harness, u unarySpec, n int, acc bool) {
	x := u.domain(h, n)
	y := make([]float64, n)
	for i, v := range x {
		y[i] = unaryRef(u.op, u.alpha, quantize(h.dt, v))
	}
	dy := h.normal(n, 0, 1)
	xb, yb, dyb := h.in(x), h.in(y), h.in(dy)
	var dx []float64
	if acc {
		dx = h.normal(n, 0, 1)
	} else {
		dx = filled(n, math.NaN())
	}
	dxb := h.in(dx)
	want := make([]float64, n)
	for i := range x {
		g := dy[i] * unaryDeriv(u.op, u.alpha, x[i])
		if acc {
			g += dx[i]
		}
		want[i] = g
	}
	h.call("UnaryGrad", h.be.UnaryGrad(&tensor.UnaryArgs{Op: u.op, N: n, Alpha: u.alpha,
		X: xb.ref(), Y: yb.ref(), DX: dxb.ref(), DY: dyb.ref(), Accumulate: acc}))
	h.check(fmt.Sprintf("gradient of %s (alpha %g, accumulate %v)", u.name, u.alpha, acc), dxb, want, u.tl)
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

func swigluCases() []kcase {
	run := func(n int) func(h *harness) {
		return func(h *harness) {
			g, u := h.normal(n, 0, 3), h.normal(n, 0, 2)
			gb, ub, ob := h.in(g), h.in(u), h.out(n)
			want := make([]float64, n)
			for i := range g {
				want[i] = silu(g[i]) * u[i]
			}
			h.call("SwiGLU", h.be.SwiGLU(&tensor.SwiGLUArgs{N: n, Gate: gb.ref(), Up: ub.ref(), Out: ob.ref()}))
			h.check("silu(gate)*up", ob, want, tolFn)
		}
	}
	return []kcase{{name: "small", run: run(37)}, {name: "large", run: run(50001)}}
}

func swigluGradCases() []kcase {
	run := func(n int) func(h *harness) {
		return func(h *harness) {
			g, u, do := h.normal(n, 0, 3), h.normal(n, 0, 2), h.normal(n, 0, 1)
			gb, ub, dob := h.in(g), h.in(u), h.in(do)
			dgb, dub := h.out(n), h.out(n)
			wantG, wantU := make([]float64, n), make([]float64, n)
			for i := range g {
				s := 1 / (1 + math.Exp(-g[i]))
				wantU[i] = do[i] * silu(g[i])
				wantG[i] = do[i] * u[i] * (s + g[i]*s*(1-s))
			}
			h.call("SwiGLUGrad", h.be.SwiGLUGrad(&tensor.SwiGLUArgs{N: n, Gate: gb.ref(), Up: ub.ref(),
				DGate: dgb.ref(), DUp: dub.ref(), DOut: dob.ref()}))
			h.check("DGate", dgb, wantG, tolFn)
			h.check("DUp", dub, wantU, tolFn)
		}
	}
	return []kcase{{name: "small", run: run(37)}, {name: "large", run: run(50001)}}
}

// dropout runs Dropout on x (Y = X when inPlace) and returns Y and the keep
// mask read from it; it checks that every element is either 0 or
// x/(1-p).
func dropout(h *harness, x []float64, p float64, seed uint64, inPlace bool) (y []float64, keep []bool) {
	h.Helper()
	n := len(x)
	xb := h.in(x)
	yb := xb
	if !inPlace {
		yb = h.out(n)
	}
	h.call("Dropout", h.be.Dropout(&tensor.DropoutArgs{N: n, P: p, Seed: seed, X: xb.ref(), Y: yb.ref()}))
	y = h.get(yb)
	keep = make([]bool, n)
	relTol := h.tolFor(tol{1e-6, 1e-14})
	for i, v := range y {
		scaled := x[i] / (1 - p)
		switch {
		case v == 0:
		case math.Abs(v-scaled) <= relTol*math.Abs(scaled):
			keep[i] = true
		default:
			h.Fatalf("Dropout(p=%g) element %d = %v: neither 0 nor x/(1-p) = %v", p, i, v, scaled)
		}
	}
	return y, keep
}

// keptFraction checks that the fraction of kept elements of each block of
// keep is within slack of 1-p.
func keptFraction(h *harness, keep []bool, p float64, block int, slack float64) {
	h.Helper()
	for lo := 0; lo < len(keep); lo += block {
		hi := min(lo+block, len(keep))
		k := 0
		for _, v := range keep[lo:hi] {
			if v {
				k++
			}
		}
		if f := float64(k) / float64(hi-lo); math.Abs(f-(1-p)) > slack {
			h.Errorf("Dropout(p=%g): elements [%d, %d) keep %.4f, want %.4f ± %.3f", p, lo, hi, f, 1-p, slack)
		}
	}
}

func sameMask(h *harness, what string, a, b []bool) {
	h.Helper()
	for i := range a {
		if a[i] != b[i] {
			h.Fatalf("%s: masks differ at element %d", what, i)
		}
	}
}

func dropoutCases() []kcase {
	const n = 100000
	return []kcase{
		{name: "keep-fraction", run: func(h *harness) {
			_, keep := dropout(h, h.magnitude(n, 0.5, 2), 0.25, 12345, false)
			// The binomial standard deviation of the fraction is 0.0014
			// overall and 0.0043 per block of 10000: the slack is 7σ.
			keptFraction(h, keep, 0.25, n, 0.01)
			keptFraction(h, keep, 0.25, 10000, 0.03)
		}},
		{name: "keep-fraction-high-p", run: func(h *harness) {
			_, keep := dropout(h, h.magnitude(n, 0.5, 2), 0.9, 99, false)
			keptFraction(h, keep, 0.9, n, 0.007)
		}},
		{name: "same-seed-same-mask", run: func(h *harness) {
			_, k1 := dropout(h, h.magnitude(n, 0.5, 2), 0.3, 7, false)
			_, k2 := dropout(h, h.magnitude(n, 0.5, 2), 0.3, 7, false)
			sameMask(h, "two calls with one seed", k1, k2)
		}},
		{name: "other-seed-other-mask", run: func(h *harness) {
			x := h.magnitude(n, 0.5, 2)
			_, k1 := dropout(h, x, 0.5, 7, false)
			_, k2 := dropout(h, x, 0.5, 8, false)
			diff := 0
			for i := range k1 {
				if k1[i] != k2[i] {
					diff++
				}
			}
			// Independent masks differ in half the elements.
			if f := float64(diff) / n; f < 0.45 || f > 0.55 {
				h.Errorf("seeds 7 and 8 give masks differing in %.3f of elements, want about 0.5", f)
			}
		}},
		{name: "mask-is-a-function-of-index", run: func(h *harness) {
			// keep[i] depends on (Seed, i) only, not on N: a short call
			// sees the prefix of a long one's mask.
			x := h.magnitude(n, 0.5, 2)
			_, long := dropout(h, x, 0.4, 2024, false)
			_, short := dropout(h, x[:1000], 0.4, 2024, false)
			sameMask(h, "mask of the first 1000 elements", short, long[:1000])
		}},
		{name: "in-place", run: func(h *harness) {
			x := h.magnitude(20001, 0.5, 2)
			y1, _ := dropout(h, x, 0.25, 5, false)
			y2, _ := dropout(h, x, 0.25, 5, true)
			h.near("in-place Dropout against out-of-place", y2, y1, exact)
		}},
		{name: "p0-identity", run: func(h *harness) {
			x := h.magnitude(1001, 0.5, 2)
			y, _ := dropout(h, x, 0, 3, false)
			h.near("Dropout(p=0)", y, x, exact)
		}},
	}
}
