package tensor_test

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

// This file checks every op against float64 central differences on random
// shapes. Each family draws its shapes, axes, options and input seeds from
// tensor.NewRNG(seed + family) before any check runs, so the sweep is the
// same on every run and under any -run filter: a failing subtest is
// reproduced by rerunning its name with the same -gradseed. Dimensions stay
// in 1..5 (a few element counts are capped) so that the whole sweep, two
// forward passes per input element, runs in a fraction of a second.

var rndSeed = flag.Uint64("gradseed", 1, "seed of the random-shape gradient sweep (TestGradRandom*)")

// rndDraws is the number of random draws per op (and option) in the sweep.
const rndDraws = 3

// rndFamily draws the cases of one op family.
type rndFamily func(rng *rand.Rand) []gradCase

// rndFamilies lists the families by test name; each gets its own stream,
// so adding a case to one leaves the others' draws unchanged.
var rndFamilies = []struct {
	name string
	gen  rndFamily
}{
	{"binary", rndBinaryCases},
	{"unary", rndUnaryCases},
	{"reduce", rndReduceCases},
	{"views", rndViewCases},
	{"matmul", rndMatMulCases},
	{"nn", rndNNCases},
	{"attention", rndAttentionCases},
}

func rndRun(t *testing.T, family string) {
	for i, f := range rndFamilies {
		if f.name == family {
			runCases(t, f.gen(tensor.NewRNG(*rndSeed+uint64(i))))
			return
		}
	}
	t.Fatalf("no family %q", family)
}

func TestGradRandomBinary(t *testing.T)    { rndRun(t, "binary") }
func TestGradRandomUnary(t *testing.T)     { rndRun(t, "unary") }
func TestGradRandomReduce(t *testing.T)    { rndRun(t, "reduce") }
func TestGradRandomViews(t *testing.T)     { rndRun(t, "views") }
func TestGradRandomMatMul(t *testing.T)    { rndRun(t, "matmul") }
func TestGradRandomNN(t *testing.T)        { rndRun(t, "nn") }
func TestGradRandomAttention(t *testing.T) { rndRun(t, "attention") }

// TestGradRandomDeterministic: the sweep is a function of its seed alone (no
// map order, global source or clock leaks into the draws), and the seed
// does reach the draws.
func TestGradRandomDeterministic(t *testing.T) {
	names := func(seed uint64) []string {
		var out []string
		for i, f := range rndFamilies {
			for _, c := range f.gen(tensor.NewRNG(seed + uint64(i))) {
				out = append(out, c.name)
			}
		}
		return out
	}
	a, b := names(*rndSeed), names(*rndSeed)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different sweeps:\n%v\n%v", a, b)
	}
	if c := names(*rndSeed + 1000); slices.Equal(a, c) {
		t.Fatalf("seeds %d and %d draw the same shapes", *rndSeed, *rndSeed+1000)
	}
	t.Logf("%d cases", len(a))
}

// TestGradRandomFound keeps the failures that sweeps over other seeds
// (-gradseed 1..3000) found, reduced to one input that triggers each. All
// have one cause: the CPU backend's float64 Exp (cpu.Exp, a degree-7
// polynomial after reduction by ln2, which the float64 paths of exp, tanh,
// sigmoid, silu, gelu, swiglu, softmax, log-softmax and cross-entropy use)
// is accurate to about 7e-9, not to float64 precision, and its relative
// error jumps by 3.2e-9 at every x = (k+1/2)·ln2 (from -3.8e-9 just below
// -ln2/2 to -7.0e-9 just above). A central difference whose step straddles
// such a point sees that jump divided by 2e-6, a gradient error of about
// 1e-3 against the required 1e-6; the analytic gradients themselves are
// right, and the same inputs moved 1e-4 away pass. Attention's float64 rows
// use math.Exp for this reason and pass. The sweeps hit it in exp (views,
// seeds 368, 1431, 1449), sigmoid (unary, 279, 993, 2280), gelu (unary,
// 309, 1974), cross-entropy (nn, 1179) and softmax (nn, 2501); with the
// default seed no drawn input lies that close to a boundary.
func TestGradRandomFound(t *testing.T) {
	const x = -0.34657349149068917 // transpose_4x5x3_axes=0,0_exp of seed 368, element 38: 9.9e-8 above -ln2/2
	leaf := func(v ...float64) *tensor.Tensor { return rndLeaf(v, len(v)) }
	un := func(f func(*tensor.Tensor) *tensor.Tensor) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0]) }
	}
	runCases(t, []gradCase{
		{"exp_seed368", un((*tensor.Tensor).Exp), []*tensor.Tensor{leaf(x)}},
		// sigmoid_2x2 of seed 279, element 2: sigmoid(x) = 1/(1+Exp(-x)),
		// and -x lies 6.3e-8 from -5ln2/2.
		{"sigmoid_seed279", un((*tensor.Tensor).Sigmoid), []*tensor.Tensor{leaf(1.7328678884373689)}},
		// gelu_4x4x2x3 of seed 309, element 28: the Exp argument
		// -2·sqrt(2/pi)·|x+0.044715x³| lies 3.3e-7 from -ln2/2.
		{"gelu_seed309", un((*tensor.Tensor).GELU), []*tensor.Tensor{leaf(-0.21672780456155094)}},
		// tanh(x) uses Exp(2x), and 2x lies 1.5e-6 below ln2/2.
		{"tanh", un((*tensor.Tensor).Tanh), []*tensor.Tensor{leaf(0.173286044316594)}},
		{"silu", un((*tensor.Tensor).SiLU), []*tensor.Tensor{leaf(x)}},
		// Softmax and cross-entropy take Exp of x - max(row).
		{"softmax", un((*tensor.Tensor).Softmax), []*tensor.Tensor{leaf(0, x)}},
		{"cross-entropy", func(in []*tensor.Tensor) *tensor.Tensor {
			per, _ := tensor.CrossEntropy(in[0], in[1])
			return per
		}, []*tensor.Tensor{rndLeaf([]float64{0, x}, 1, 2), rndIDs([]int32{0}, 1)}},
	})
}

// rndInt returns an integer uniform in [lo, hi].
func rndInt(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

// rndShape returns rank dimensions in [1, 5] whose product is at most
// maxLen, redrawing until it is.
func rndShape(rng *rand.Rand, rank, maxLen int) []int {
	for {
		s := make([]int, rank)
		n := 1
		for i := range s {
			s[i] = rndInt(rng, 1, 5)
			n *= s[i]
		}
		if n <= maxLen {
			return s
		}
	}
}

func rndLen(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// rndInts formats integers for a subtest name: 0,-1,2.
func rndInts(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, ",")
}

// rndShp formats a shape for a subtest name: 3x1x4.
func rndShp(s []int) string { return strings.ReplaceAll(rndInts(s), ",", "x") }

// rndRound rounds v to two decimals, so that %g in a name shows it exactly.
func rndRound(v float64) float64 { return math.Round(v*100) / 100 }

// rndAxis returns axis ax of a rank-r tensor, counted from the end half of
// the time.
func rndAxis(rng *rand.Rand, ax, r int) int {
	if rng.IntN(2) == 0 {
		return ax - r
	}
	return ax
}

func rndParam(rng *rand.Rand, shape ...int) *tensor.Tensor { return param(rng.Uint64(), shape...) }

func rndPositive(rng *rand.Rand, shape ...int) *tensor.Tensor {
	return positive(rng.Uint64(), shape...)
}

func rndLeaf(vals []float64, shape ...int) *tensor.Tensor {
	return tensor.From(be, tensor.Float64, vals, shape...).SetRequiresGrad(true)
}

// rndAwayFrom returns a leaf whose values x all have |x-c| >= 0.1: away
// from the kink of ReLU at 0, or from the zero of x+alpha at -alpha, where
// a one-element output near 0 would make the normwise float32 comparison
// measure only the rounding of the input.
func rndAwayFrom(rng *rand.Rand, c float64, shape ...int) *tensor.Tensor {
	v := make([]float64, rndLen(shape))
	for i := range v {
		d := 0.1 + math.Abs(rng.NormFloat64())
		if rng.IntN(2) == 0 {
			d = -d
		}
		v[i] = c + d
	}
	return rndLeaf(v, shape...)
}

// rndDistinct returns a leaf of shuffled values at least 0.2 apart, so a
// maximum has no ties, not even after rounding to float32.
func rndDistinct(rng *rand.Rand, shape ...int) *tensor.Tensor {
	n := rndLen(shape)
	v := make([]float64, n)
	for i, p := range rng.Perm(n) {
		v[i] = (float64(p)-float64(n)/2)*0.25 + 0.05*rng.Float64()
	}
	return rndLeaf(v, shape...)
}

// rndTail applies a randomly chosen consumer (none, exp or square) after a
// view, so gradients reach views both as the root and through another op.
func rndTail(rng *rand.Rand) (string, func(*tensor.Tensor) *tensor.Tensor) {
	switch rng.IntN(3) {
	case 0:
		return "", func(x *tensor.Tensor) *tensor.Tensor { return x }
	case 1:
		return "_exp", (*tensor.Tensor).Exp
	}
	return "_square", (*tensor.Tensor).Square
}

// rndBroadcastOf returns a shape that broadcasts to out: a random number of
// its trailing axes, each set to 1 with probability 1/3.
func rndBroadcastOf(rng *rand.Rand, out []int) []int {
	s := slices.Clone(out[len(out)-rndInt(rng, 1, len(out)):])
	for i := range s {
		if rng.IntN(3) == 0 {
			s[i] = 1
		}
	}
	return s
}

func rndBinaryCases(rng *rand.Rand) []gradCase {
	ops := []struct {
		name     string
		f        func(a, b *tensor.Tensor) *tensor.Tensor
		positive bool // b is a divisor
	}{
		{"add", (*tensor.Tensor).Add, false},
		{"sub", (*tensor.Tensor).Sub, false},
		{"mul", (*tensor.Tensor).Mul, false},
		{"div", (*tensor.Tensor).Div, true},
	}
	var cases []gradCase
	for _, op := range ops {
		for range rndDraws {
			out := rndShape(rng, rndInt(rng, 1, 4), 120)
			as, bs := rndBroadcastOf(rng, out), rndBroadcastOf(rng, out)
			b := rndParam(rng, bs...)
			if op.positive {
				b = rndPositive(rng, bs...)
			}
			f := op.f
			cases = append(cases, gradCase{fmt.Sprintf("%s_a%s_b%s", op.name, rndShp(as), rndShp(bs)),
				func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0], in[1]) },
				[]*tensor.Tensor{rndParam(rng, as...), b}})
		}
	}
	return cases
}

func rndUnaryCases(rng *rand.Rand) []gradCase {
	const (
		normal = iota
		pos    // in [0.5, 2)
		away   // |x| >= 0.1
		shift  // |x + alpha| >= 0.1
	)
	ops := []struct {
		name   string
		domain int
		alpha  func() float64 // nil when the op has no parameter
		f      func(x *tensor.Tensor, alpha float64) *tensor.Tensor
	}{
		{"neg", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Neg() }},
		{"scale", normal, func() float64 { return rndRound(4*rng.Float64() - 2) }, (*tensor.Tensor).Scale},
		{"add-scalar", shift, func() float64 { return rndRound(4*rng.Float64() - 2) }, (*tensor.Tensor).AddScalar},
		{"exp", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Exp() }},
		{"log", pos, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Log() }},
		{"sqrt", pos, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Sqrt() }},
		{"rsqrt", pos, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Rsqrt() }},
		{"pow", pos, func() float64 { return rndRound(5*rng.Float64() - 2) }, (*tensor.Tensor).Pow},
		{"square", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Square() }},
		{"tanh", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Tanh() }},
		{"sigmoid", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.Sigmoid() }},
		{"relu", away, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.ReLU() }},
		{"silu", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.SiLU() }},
		{"gelu", normal, nil, func(x *tensor.Tensor, _ float64) *tensor.Tensor { return x.GELU() }},
	}
	var cases []gradCase
	for _, op := range ops {
		for range rndDraws {
			s := rndShape(rng, rndInt(rng, 1, 4), 120)
			name := op.name
			alpha := 0.0
			if op.alpha != nil {
				alpha = op.alpha()
				name += strconv.FormatFloat(alpha, 'g', -1, 64)
			}
			var x *tensor.Tensor
			switch op.domain {
			case pos:
				x = rndPositive(rng, s...)
			case away:
				x = rndAwayFrom(rng, 0, s...)
			case shift:
				x = rndAwayFrom(rng, -alpha, s...)
			default:
				x = rndParam(rng, s...)
			}
			f := op.f
			cases = append(cases, gradCase{name + "_" + rndShp(s),
				func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0], alpha) },
				[]*tensor.Tensor{x}})
		}
	}
	return cases
}

func rndReduceCases(rng *rand.Rand) []gradCase {
	ops := []struct {
		name string
		f    func(x *tensor.Tensor, axes ...int) *tensor.Tensor
	}{
		{"sum", (*tensor.Tensor).Sum},
		{"mean", (*tensor.Tensor).Mean},
		{"max", (*tensor.Tensor).Max},
	}
	var cases []gradCase
	for _, op := range ops {
		for range 2 * rndDraws {
			r := rndInt(rng, 1, 4)
			s := rndShape(rng, r, 120)
			var axes []int // empty reduces every axis
			for ax := range r {
				if rng.IntN(2) == 0 {
					axes = append(axes, rndAxis(rng, ax, r))
				}
			}
			rng.Shuffle(len(axes), func(i, j int) { axes[i], axes[j] = axes[j], axes[i] })
			ax := "all"
			if len(axes) > 0 {
				ax = rndInts(axes)
			}
			// Sums and means over every axis of signed values can cancel
			// to near 0, where the float32 forward, normwise, would only
			// show the rounding of the inputs; positive values keep the
			// comparison meaningful and the gradient check is unchanged.
			x := rndPositive(rng, s...)
			if op.name == "max" {
				x = rndDistinct(rng, s...)
			}
			f := op.f
			cases = append(cases, gradCase{fmt.Sprintf("%s_%s_axes=%s", op.name, rndShp(s), ax),
				func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0], axes...) },
				[]*tensor.Tensor{x}})
		}
	}
	return cases
}

// rndFactor returns a random shape of rank r with n elements.
func rndFactor(rng *rand.Rand, n, r int) []int {
	s := make([]int, 0, r)
	for len(s) < r-1 {
		var divs []int
		for d := 1; d <= n; d++ {
			if n%d == 0 {
				divs = append(divs, d)
			}
		}
		d := divs[rng.IntN(len(divs))]
		s = append(s, d)
		n /= d
	}
	s = append(s, n)
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func rndViewCases(rng *rand.Rand) []gradCase {
	var cases []gradCase
	add := func(name string, f gradcheck.Func, in ...*tensor.Tensor) {
		cases = append(cases, gradCase{name, f, in})
	}
	for range rndDraws {
		// Reshape, of a contiguous input (a view) or of a transposed one
		// (a copy), with one dimension inferred half of the time.
		for _, transposed := range []bool{false, true} {
			s := rndShape(rng, rndInt(rng, 2, 4), 120)
			to := rndFactor(rng, rndLen(s), rndInt(rng, 1, 4))
			arg := slices.Clone(to)
			if rng.IntN(2) == 0 {
				arg[rng.IntN(len(arg))] = -1
			}
			tail, tf := rndTail(rng)
			name := "reshape"
			if transposed {
				name = "reshape-transposed"
			}
			add(fmt.Sprintf("%s_%s_to=%s%s", name, rndShp(s), rndInts(arg), tail), func(in []*tensor.Tensor) *tensor.Tensor {
				x := in[0]
				if transposed {
					x = x.Transpose(0, -1)
				}
				return tf(x.Reshape(arg...))
			}, rndParam(rng, s...))
		}

		// Transpose of two random axes (possibly the same one).
		{
			r := rndInt(rng, 1, 5)
			s := rndShape(rng, r, 120)
			a, b := rndAxis(rng, rng.IntN(r), r), rndAxis(rng, rng.IntN(r), r)
			tail, tf := rndTail(rng)
			add(fmt.Sprintf("transpose_%s_axes=%d,%d%s", rndShp(s), a, b, tail),
				func(in []*tensor.Tensor) *tensor.Tensor { return tf(in[0].Transpose(a, b)) }, rndParam(rng, s...))
		}

		// Permute by a random permutation.
		{
			r := rndInt(rng, 1, 5)
			s := rndShape(rng, r, 120)
			perm := rng.Perm(r)
			tail, tf := rndTail(rng)
			add(fmt.Sprintf("permute_%s_perm=%s%s", rndShp(s), rndInts(perm), tail),
				func(in []*tensor.Tensor) *tensor.Tensor { return tf(in[0].Permute(perm...)) }, rndParam(rng, s...))
		}

		// Slice a random non-empty range of a random axis.
		{
			r := rndInt(rng, 1, 4)
			s := rndShape(rng, r, 120)
			ax := rng.IntN(r)
			start := rng.IntN(s[ax])
			end := rndInt(rng, start+1, s[ax])
			axis := rndAxis(rng, ax, r)
			tail, tf := rndTail(rng)
			add(fmt.Sprintf("slice_%s_axis=%d_range=%d,%d%s", rndShp(s), axis, start, end, tail),
				func(in []*tensor.Tensor) *tensor.Tensor { return tf(in[0].Slice(axis, start, end)) }, rndParam(rng, s...))
		}

		// Concat of 2 or 3 parts of random sizes along a random axis; the
		// second part passes through exp so one input is a graph node.
		{
			r := rndInt(rng, 1, 4)
			s := rndShape(rng, r, 40)
			ax := rng.IntN(r)
			sizes := make([]int, rndInt(rng, 2, 3))
			in := make([]*tensor.Tensor, len(sizes))
			for i := range sizes {
				sizes[i] = rndInt(rng, 1, 4)
				ps := slices.Clone(s)
				ps[ax] = sizes[i]
				in[i] = rndParam(rng, ps...)
			}
			axis := rndAxis(rng, ax, r)
			dims := strings.Split(rndShp(s), "x")
			dims[ax] = "n"
			add(fmt.Sprintf("concat_%s_axis=%d_n=%s", strings.Join(dims, "x"), axis, rndInts(sizes)), func(in []*tensor.Tensor) *tensor.Tensor {
				parts := slices.Clone(in)
				parts[1] = parts[1].Exp()
				return tensor.Concat(axis, parts...)
			}, in...)
		}

		// Unsqueeze at a random position, 0..rank or counted from the end.
		{
			r := rndInt(rng, 1, 4)
			s := rndShape(rng, r, 120)
			ax := rndInt(rng, 0, r)
			if rng.IntN(2) == 0 {
				ax -= r + 1
			}
			tail, tf := rndTail(rng)
			add(fmt.Sprintf("unsqueeze_%s_axis=%d%s", rndShp(s), ax, tail),
				func(in []*tensor.Tensor) *tensor.Tensor { return tf(in[0].Unsqueeze(ax)) }, rndParam(rng, s...))
		}
	}
	return cases
}

// rndMatOperand returns a leaf for a matmul operand of logical shape
// [batch..., rows, cols], stored transposed over the last two axes when
// trans is set, and the function that turns the leaf into the operand.
func rndMatOperand(rng *rand.Rand, batch []int, rows, cols int, trans bool) (*tensor.Tensor, func(*tensor.Tensor) *tensor.Tensor) {
	if trans {
		return rndParam(rng, append(slices.Clone(batch), cols, rows)...), func(x *tensor.Tensor) *tensor.Tensor { return x.Transpose(-1, -2) }
	}
	return rndParam(rng, append(slices.Clone(batch), rows, cols)...), func(x *tensor.Tensor) *tensor.Tensor { return x }
}

// rndFlag returns "_name" when on, for a subtest name.
func rndFlag(name string, on bool) string {
	if on {
		return "_" + name
	}
	return ""
}

func rndMatMulCases(rng *rand.Rand) []gradCase {
	var cases []gradCase
	add := func(name string, a, b *tensor.Tensor, fa, fb func(*tensor.Tensor) *tensor.Tensor) {
		cases = append(cases, gradCase{name,
			func(in []*tensor.Tensor) *tensor.Tensor { return fa(in[0]).MatMul(fb(in[1])) },
			[]*tensor.Tensor{a, b}})
	}
	for range 2 * rndDraws {
		M, K, N := rndInt(rng, 1, 5), rndInt(rng, 1, 5), rndInt(rng, 1, 5)
		ta, tb := rng.IntN(2) == 0, rng.IntN(2) == 0

		// 2-D.
		a, fa := rndMatOperand(rng, nil, M, K, ta)
		b, fb := rndMatOperand(rng, nil, K, N, tb)
		add(fmt.Sprintf("matmul-2d_M%d_K%d_N%d%s%s", M, K, N, rndFlag("tA", ta), rndFlag("tB", tb)), a, b, fa, fb)

		// Batched on both sides, with one or two batch axes.
		batch := rndShape(rng, rndInt(rng, 1, 2), 6)
		M, K, N = rndInt(rng, 1, 5), rndInt(rng, 1, 5), rndInt(rng, 1, 5)
		ta, tb = rng.IntN(2) == 0, rng.IntN(2) == 0
		a, fa = rndMatOperand(rng, batch, M, K, ta)
		b, fb = rndMatOperand(rng, batch, K, N, tb)
		add(fmt.Sprintf("matmul-batched_batch%s_M%d_K%d_N%d%s%s", rndShp(batch), M, K, N, rndFlag("tA", ta), rndFlag("tB", tb)), a, b, fa, fb)

		// A shared 2-D weight on the right (a linear layer) or on the
		// left, against a batched operand.
		batch = rndShape(rng, rndInt(rng, 1, 2), 6)
		M, K, N = rndInt(rng, 1, 5), rndInt(rng, 1, 5), rndInt(rng, 1, 5)
		ta, tb = rng.IntN(2) == 0, rng.IntN(2) == 0
		if rng.IntN(2) == 0 {
			a, fa = rndMatOperand(rng, batch, M, K, ta)
			b, fb = rndMatOperand(rng, nil, K, N, tb)
			add(fmt.Sprintf("matmul-shared-right_batch%s_M%d_K%d_N%d%s%s", rndShp(batch), M, K, N, rndFlag("tA", ta), rndFlag("tB", tb)), a, b, fa, fb)
		} else {
			a, fa = rndMatOperand(rng, nil, M, K, ta)
			b, fb = rndMatOperand(rng, batch, K, N, tb)
			add(fmt.Sprintf("matmul-shared-left_batch%s_M%d_K%d_N%d%s%s", rndShp(batch), M, K, N, rndFlag("tA", ta), rndFlag("tB", tb)), a, b, fa, fb)
		}

		// Attention-style heads: a stored [B, M, H, K] and read as
		// [B, H, M, K] through a permuted view.
		Bn, H := rndInt(rng, 1, 3), rndInt(rng, 1, 3)
		M, K, N = rndInt(rng, 1, 5), rndInt(rng, 1, 5), rndInt(rng, 1, 5)
		tb = rng.IntN(2) == 0
		a = rndParam(rng, Bn, M, H, K)
		b, fb = rndMatOperand(rng, []int{Bn, H}, K, N, tb)
		add(fmt.Sprintf("matmul-permuted-heads_B%d_H%d_M%d_K%d_N%d%s", Bn, H, M, K, N, rndFlag("tB", tb)), a, b,
			func(x *tensor.Tensor) *tensor.Tensor { return x.Permute(0, 2, 1, 3) }, fb)
	}
	return cases
}

func rndIDs(v []int32, shape ...int) *tensor.Tensor {
	return tensor.From(be, tensor.Int32, v, shape...)
}

func rndNNCases(rng *rand.Rand) []gradCase {
	var cases []gradCase
	add := func(name string, f gradcheck.Func, in ...*tensor.Tensor) {
		cases = append(cases, gradCase{name, f, in})
	}
	for range rndDraws {
		// Softmax and log-softmax over the last axis, of a contiguous
		// input or a transposed view.
		for _, log := range []bool{false, true} {
			name, f := "softmax", (*tensor.Tensor).Softmax
			if log {
				name, f = "log-softmax", (*tensor.Tensor).LogSoftmax
			}
			s := rndShape(rng, rndInt(rng, 1, 4), 120)
			transposed := len(s) >= 2 && rng.IntN(3) == 0
			if transposed {
				name += "-transposed"
			}
			add(fmt.Sprintf("%s_%s", name, rndShp(s)), func(in []*tensor.Tensor) *tensor.Tensor {
				if transposed {
					return f(in[0].Transpose(0, -1))
				}
				return f(in[0])
			}, rndParam(rng, s...))
		}

		// Cross-entropy, per token and mean, with about a quarter of the
		// targets ignored (-100, or rarely an id past the vocabulary).
		{
			lead := rndShape(rng, rndInt(rng, 1, 2), 12)
			V := rndInt(rng, 1, 5)
			tg := make([]int32, rndLen(lead))
			ignored := 0
			for i := range tg {
				switch rng.IntN(12) {
				case 0, 1:
					tg[i] = -100
					ignored++
				case 2:
					tg[i] = int32(V + rng.IntN(3))
					ignored++
				default:
					tg[i] = int32(rng.IntN(V))
				}
			}
			for _, mean := range []bool{false, true} {
				name := "cross-entropy-per-token"
				if mean {
					name = "cross-entropy-mean"
				}
				add(fmt.Sprintf("%s_%s_V%d_ignored%d", name, rndShp(lead), V, ignored), func(in []*tensor.Tensor) *tensor.Tensor {
					per, m := tensor.CrossEntropy(in[0], in[1])
					if mean {
						return m
					}
					return per
				}, rndParam(rng, append(slices.Clone(lead), V)...), rndIDs(tg, lead...))
			}
		}

		// RMSNorm, and LayerNorm with and without bias, over random
		// leading axes, with eps 1e-5 or 1. Rows too short to normalise
		// (RMSNorm over 1 feature, LayerNorm over 2) always get eps 1: with
		// a small eps their output hardly depends on x (x/|x| = ±1, and
		// ±1 for a centred pair), so the true x-gradient is O(eps) and the
		// difference quotient, whose rounding is O(1e-10), cannot resolve it
		// to 1e-6 (checked in 50-digit arithmetic: the kernels are right to
		// 1e-11 there).
		for _, op := range []struct {
			name  string
			short int // rows of up to this many features are degenerate
			layer bool
			bias  bool
		}{{"rmsnorm", 1, false, false}, {"layernorm", 2, true, true}, {"layernorm-no-bias", 2, true, false}} {
			s := rndShape(rng, rndInt(rng, 1, 4), 120)
			C := s[len(s)-1]
			eps := []float64{1e-5, 1}[rng.IntN(2)]
			if C <= op.short {
				eps = 1
			}
			in := []*tensor.Tensor{rndParam(rng, s...), rndParam(rng, C)}
			if op.bias {
				in = append(in, rndParam(rng, C))
			}
			layer, bias := op.layer, op.bias
			add(fmt.Sprintf("%s_%s_eps%g", op.name, rndShp(s), eps), func(in []*tensor.Tensor) *tensor.Tensor {
				switch {
				case !layer:
					return in[0].RMSNorm(in[1], eps)
				case bias:
					return in[0].LayerNorm(in[1], in[2], eps)
				}
				return in[0].LayerNorm(in[1], nil, eps)
			}, in...)
		}

		// RoPE in both conventions: x [T, H, D] or [B, T, H, D] with D
		// even, a random rotary dimension up to D and random positions.
		{
			lead := rndShape(rng, rndInt(rng, 1, 2), 12)
			H := rndInt(rng, 1, 3)
			D := 2 * rndInt(rng, 1, 3)
			rot := 2 * rndInt(rng, 1, D/2)
			theta := []float64{10, 100, 10000}[rng.IntN(3)]
			pos := make([]int32, rndLen(lead))
			for i := range pos {
				pos[i] = int32(rng.IntN(64))
			}
			s := append(slices.Clone(lead), H, D)
			x := rndParam(rng, s...)
			for _, half := range []bool{false, true} {
				name := "rope-adjacent"
				if half {
					name = "rope-half-split"
				}
				add(fmt.Sprintf("%s_%s_rot%d_theta%g", name, rndShp(s), rot, theta),
					func(in []*tensor.Tensor) *tensor.Tensor { return in[0].RoPE(in[1], in[2], half) },
					x, rndIDs(pos, lead...), tensor.RoPEFreqs(be, tensor.Float64, rot, theta))
			}
		}

		// Embedding with ids drawn from a small vocabulary, so repeats
		// are likely.
		{
			V, C := rndInt(rng, 1, 5), rndInt(rng, 1, 5)
			lead := rndShape(rng, rndInt(rng, 1, 2), 25)
			ids := make([]int32, rndLen(lead))
			for i := range ids {
				ids[i] = int32(rng.IntN(V))
			}
			add(fmt.Sprintf("embedding_V%d_C%d_ids%s", V, C, rndShp(lead)),
				func(in []*tensor.Tensor) *tensor.Tensor { return tensor.Embedding(in[0], in[1]) },
				rndParam(rng, V, C), rndIDs(ids, lead...))
		}

		// SwiGLU.
		{
			s := rndShape(rng, rndInt(rng, 1, 4), 120)
			add("swiglu_"+rndShp(s), func(in []*tensor.Tensor) *tensor.Tensor { return tensor.SwiGLU(in[0], in[1]) },
				rndParam(rng, s...), rndParam(rng, s...))
		}

		// Dropout with a fixed seed and a random probability.
		{
			s := rndShape(rng, rndInt(rng, 1, 4), 120)
			p := rndRound(0.05 + 0.85*rng.Float64())
			seed := rng.Uint64() % 1000
			add(fmt.Sprintf("dropout_%s_p%g_seed%d", rndShp(s), p, seed),
				func(in []*tensor.Tensor) *tensor.Tensor { return in[0].Dropout(p, seed) }, rndParam(rng, s...))
		}
	}
	return cases
}

func rndAttentionCases(rng *rand.Rand) []gradCase {
	var cases []gradCase
	for range 4 * rndDraws {
		B, Tk := rndInt(rng, 1, 3), rndInt(rng, 1, 5)
		Tq := rndInt(rng, 1, Tk)
		Hkv, group := rndInt(rng, 1, 3), rndInt(rng, 1, 3)
		Hq := Hkv * group
		D := rndInt(rng, 1, 5)
		causal := rng.IntN(2) == 0
		opt := tensor.AttentionOptions{Causal: causal}
		name := fmt.Sprintf("attention_B%d_Tq%d_Tk%d_Hq%d_Hkv%d_D%d", B, Tq, Tk, Hq, Hkv, D)
		if causal {
			name += "_causal"
		}
		if rng.IntN(3) == 0 {
			opt.Scale = rndRound(0.1 + rng.Float64())
			name += fmt.Sprintf("_scale%g", opt.Scale)
		}
		// With a single key every probability is 1, so the output is v
		// whatever q and k are: their true gradients are exactly zero, and
		// the normwise relative check has no scale to judge the kernel's
		// rounding (1e-16) against. Then q and k enter as constants and
		// only v's gradient (and the forward) is checked.
		q, k := rndParam(rng, B, Tq, Hq, D), rndParam(rng, B, Tk, Hkv, D)
		if Tk == 1 {
			q.SetRequiresGrad(false)
			k.SetRequiresGrad(false)
			name += "_vonly"
		}
		in := []*tensor.Tensor{q, k, rndParam(rng, B, Tk, Hkv, D)}

		// The mask, when drawn: [B, Tq, Tk], [1, Tq, Tk] or [Tq, Tk] of
		// small values, with about one entry in six blocked by -1e9. Two
		// keys that row i sees (j <= Tk-Tq+i when causal) stay open, or the
		// one it sees: a row whose keys are all blocked by a finite -1e9
		// averages scores shifted by 1e9, which float32 cannot resolve, and
		// if every row saw one open key the gradients of q and k would
		// vanish as above.
		withMask := rng.IntN(3) > 0
		if withMask {
			var mshape []int
			switch rng.IntN(3) {
			case 0:
				mshape = []int{B, Tq, Tk}
			case 1:
				mshape = []int{1, Tq, Tk}
			default:
				mshape = []int{Tq, Tk}
			}
			m := make([]float64, rndLen(mshape))
			for r := 0; r < len(m)/Tk; r++ {
				row := m[r*Tk : (r+1)*Tk]
				for j := range row {
					if rng.IntN(6) == 0 {
						row[j] = -1e9
					} else {
						row[j] = 0.5 * rng.NormFloat64()
					}
				}
				seen := Tk
				if causal {
					seen = Tk - Tq + r%Tq + 1
				}
				for _, j := range rng.Perm(seen)[:min(seen, 2)] {
					row[j] = 0.5 * rng.NormFloat64()
				}
			}
			name += "_mask" + rndShp(mshape)
			in = append(in, tensor.From(be, tensor.Float64, m, mshape...))
		}
		cases = append(cases, gradCase{name, attnFunc(opt, withMask), in})
	}
	return cases
}
