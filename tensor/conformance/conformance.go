package conformance

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// Tolerances, as max|got-want| / max|want| over an output.
type tol struct{ f32, f64 float64 }

var (
	// exact demands bit-identical results (NaN matches any NaN).
	exact = tol{0, 0}
	// tolStd covers sums and products in the dtype under test.
	tolStd = tol{1e-5, 1e-12}
	// tolFn covers transcendental functions (exp, tanh, sigmoid). Float64
	// must be accurate to the last few bits: it is the reference of
	// gradient checks, whose central differences turn any step or kink in
	// an approximation into a gradient error (a polynomial exp with 3e-9
	// jumps at (k+½)·ln2 once failed them by 1e-3).
	tolFn = tol{1e-5, 1e-12}
	// tolSoft covers softmax, cross-entropy and attention, which chain
	// exponentials, a normalising sum and, for attention, two products.
	tolSoft = tol{1e-4, 1e-11}
	// tolRoPE covers rotary embedding: angles up to ~50 radians computed in
	// float32 lose about 50*2^-24 ≈ 3e-6 before the sine.
	tolRoPE = tol{3e-5, 1e-10}
)

// computeDTypes are the dtypes kernels compute in.
var computeDTypes = []tensor.DType{tensor.Float32, tensor.Float64}

// allDTypes are every stored dtype.
var allDTypes = []tensor.DType{tensor.Float32, tensor.Float64, tensor.BFloat16, tensor.Float16, tensor.Int32}

// kcase is one conformance case. It runs once per dtype in dts (the compute
// dtypes when nil) as a subtest named by the dtype, or once without a dtype
// subtest when single is set.
type kcase struct {
	name   string
	dts    []tensor.DType
	single bool
	run    func(h *harness)
}

// group is the set of cases of one Backend method or family of methods.
type group struct {
	name  string
	cases []kcase
}

// groups lists every group in the order Run reports them.
func groups() []group {
	return []group{
		{"Memory", memoryCases()},
		{"Fill", fillCases()},
		{"Copy", copyCases()},
		{"Gemm", gemmCases()},
		{"Binary", binaryCases()},
		{"Unary", unaryCases()},
		{"UnaryGrad", unaryGradCases()},
		{"Reduce", reduceCases()},
		{"ReduceGrad", reduceGradCases()},
		{"SumSquares", sumSquaresCases()},
		{"AdamW", adamwCases()},
		{"Softmax", softmaxCases()},
		{"SoftmaxGrad", softmaxGradCases()},
		{"CrossEntropy", crossEntropyCases()},
		{"CrossEntropyGrad", crossEntropyGradCases()},
		{"Norm", normCases()},
		{"NormGrad", normGradCases()},
		{"RoPE", ropeCases()},
		{"Gather", gatherCases()},
		{"ScatterAdd", scatterAddCases()},
		{"SwiGLU", swigluCases()},
		{"SwiGLUGrad", swigluGradCases()},
		{"Dropout", dropoutCases()},
		{"Attention", attentionCases()},
		{"AttentionGrad", attentionGradCases()},
	}
}

// Run exercises every method of be against the oracle, as subtests of t
// named Group/case/dtype. A case whose kernel returns an error wrapping
// tensor.ErrUnsupported is skipped and logged; any other error, a panic in
// the backend, an out-of-bounds write or a numeric mismatch fails it.
func Run(t *testing.T, be tensor.Backend) {
	t.Helper()
	t.Logf("backend: %s", be.Describe())
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				if c.single {
					t.Run(c.name, func(t *testing.T) { runCase(t, be, tensor.Float64, g.name+"/"+c.name, c) })
					continue
				}
				dts := c.dts
				if dts == nil {
					dts = computeDTypes
				}
				t.Run(c.name, func(t *testing.T) {
					for _, dt := range dts {
						t.Run(dt.String(), func(t *testing.T) { runCase(t, be, dt, g.name+"/"+c.name+"/"+dt.String(), c) })
					}
				})
			}
		})
	}
}

// runCase runs one case; key seeds its random source, so that every
// backend (and thread count) sees the same data.
func runCase(t *testing.T, be tensor.Backend, dt tensor.DType, key string, c kcase) {
	hash := fnv.New64a()
	hash.Write([]byte(key))
	h := &harness{T: t, be: be, dt: dt, rng: rand.New(rand.NewPCG(hash.Sum64(), 42))}
	t.Cleanup(h.freeAll)
	defer func() {
		// t.Skip and t.Fatal leave through runtime.Goexit, which recover
		// does not see; only a real panic lands here.
		if r := recover(); r != nil {
			t.Errorf("backend panicked: %v\n%s", r, debug.Stack())
		}
	}()
	c.run(h)
	if err := be.Sync(); err != nil {
		h.call("Sync", err)
	}
}

// harness is the state of one case: the backend, the dtype under test, a
// deterministic random source and the storage to free at the end.
type harness struct {
	*testing.T
	be    tensor.Backend
	dt    tensor.DType
	rng   *rand.Rand
	owned []tensor.Storage
}

// guard is the number of padding elements on each side of every operand,
// odd so that operands start at unaligned offsets.
const guard = 5

// buf is one operand: n elements at offset guard inside a storage of
// n+2*guard elements whose padding holds a sentinel.
type buf struct {
	dt tensor.DType
	s  tensor.Storage
	n  int
}

// ref returns the operand's first element.
func (b *buf) ref() tensor.Ref { return tensor.Ref{S: b.s, Off: guard} }

// at returns the operand's element i.
func (b *buf) at(i int) tensor.Ref { return tensor.Ref{S: b.s, Off: guard + i} }

// call checks a backend method's error: one wrapping ErrUnsupported skips
// the case, any other fails it.
func (h *harness) call(op string, err error) {
	h.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, tensor.ErrUnsupported) {
		h.Skipf("unsupported: %s on %s: %v", op, h.dt, err)
	}
	h.Fatalf("%s: unexpected error: %v", op, err)
}

func (h *harness) freeAll() {
	for _, s := range h.owned {
		h.be.Free(s)
	}
	h.owned = nil
}

// alloc returns storage of n elements of dt that is freed after the case.
func (h *harness) alloc(dt tensor.DType, n int) tensor.Storage {
	h.Helper()
	s, err := h.be.Alloc(dt, n)
	h.call(fmt.Sprintf("Alloc(%s, %d)", dt, n), err)
	if s == nil {
		h.Fatalf("Alloc(%s, %d) returned nil storage and no error", dt, n)
	}
	h.owned = append(h.owned, s)
	return s
}

// sentinel is the value of guard elements and of outputs a kernel must
// overwrite.
func sentinel(dt tensor.DType) float64 {
	if dt == tensor.Int32 {
		return -1234567
	}
	return math.NaN()
}

// isSentinel reports whether v is dt's sentinel.
func isSentinel(dt tensor.DType, v float64) bool {
	if dt == tensor.Int32 {
		return v == -1234567
	}
	return math.IsNaN(v)
}

// newBuf returns an operand of len(vals) elements of dt holding vals, which
// it first rounds in place to dt so the caller's oracle sees the stored
// values. A NaN in vals marks an element the kernel must not read (padding
// between rows) or must overwrite.
func (h *harness) newBuf(dt tensor.DType, vals []float64) *buf {
	h.Helper()
	n := len(vals)
	b := &buf{dt: dt, s: h.alloc(dt, n+2*guard), n: n}
	all := make([]float64, n+2*guard)
	for i := range all {
		all[i] = sentinel(dt)
	}
	for i, v := range vals {
		vals[i] = quantize(dt, v)
		all[guard+i] = vals[i]
	}
	h.call("Write", h.be.Write(tensor.Ref{S: b.s}, toHost(dt, all)))
	return b
}

// in returns an input operand of the dtype under test holding vals (rounded
// in place).
func (h *harness) in(vals []float64) *buf { h.Helper(); return h.newBuf(h.dt, vals) }

// out returns an output operand of n elements of the dtype under test,
// filled with NaN so that elements the kernel skips are caught.
func (h *harness) out(n int) *buf {
	h.Helper()
	return h.newBuf(h.dt, filled(n, math.NaN()))
}

// ids returns an Int32 operand.
func (h *harness) ids(v []int) *buf {
	h.Helper()
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return h.newBuf(tensor.Int32, f)
}

// get reads an operand back, fails the case if a guard element changed, and
// returns the operand's elements as float64.
func (h *harness) get(b *buf) []float64 {
	h.Helper()
	host := newHost(b.dt, b.n+2*guard)
	h.call("Read", h.be.Read(unwrap(host), tensor.Ref{S: b.s}))
	all := fromHost(host)
	for i := range all {
		if i >= guard && i < guard+b.n {
			continue
		}
		if !isSentinel(b.dt, all[i]) {
			pos := i - guard
			h.Fatalf("element %d of a %d-element %s operand (outside it) was overwritten with %v", pos, b.n, b.dt, all[i])
		}
	}
	return all[guard : guard+b.n]
}

// check reads b and compares it with want under tolerance tl for b's
// dtype.
func (h *harness) check(what string, b *buf, want []float64, tl tol) {
	h.Helper()
	if msg := compare(h.get(b), want, tolOf(b.dt, tl)); msg != "" {
		h.Errorf("%s: %s", what, msg)
	}
}

// tolOf returns the tolerance of tl for dt: the float64 one for Float64,
// the float32 one otherwise.
func tolOf(dt tensor.DType, tl tol) float64 {
	if dt == tensor.Float64 {
		return tl.f64
	}
	return tl.f32
}

// tolFor returns the tolerance of tl for the dtype under test.
func (h *harness) tolFor(tl tol) float64 { return tolOf(h.dt, tl) }

// near compares got with want: a NaN in want must be NaN in got, an
// infinity must match exactly, and the finite elements must agree normwise,
// max|got-want| / max|want| <= tolerance, or bit for bit when the tolerance
// is 0.
func (h *harness) near(what string, got, want []float64, tl tol) {
	h.Helper()
	if msg := compare(got, want, h.tolFor(tl)); msg != "" {
		h.Errorf("%s: %s", what, msg)
	}
}

// compare returns "" when got matches want, else a description of the
// worst mismatch.
func compare(got, want []float64, tolerance float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d elements, want %d", len(got), len(want))
	}
	var scale, worst float64
	at := -1
	for i, w := range want {
		g := got[i]
		switch {
		case math.IsNaN(w):
			if !math.IsNaN(g) {
				return fmt.Sprintf("element %d = %v, want NaN (an element that must stay untouched or be NaN)", i, g)
			}
		case math.IsInf(w, 0):
			if g != w {
				return fmt.Sprintf("element %d = %v, want %v", i, g, w)
			}
		case math.IsNaN(g) || math.IsInf(g, 0):
			return fmt.Sprintf("element %d = %v, want %v", i, g, w)
		case tolerance == 0:
			if math.Float64bits(g) != math.Float64bits(w) {
				return fmt.Sprintf("element %d = %v, want exactly %v", i, g, w)
			}
		default:
			scale = max(scale, math.Abs(w))
			if d := math.Abs(g - w); d > worst {
				worst, at = d, i
			}
		}
	}
	if at < 0 || tolerance == 0 {
		return ""
	}
	rel := worst / max(scale, 1e-300)
	if scale == 0 {
		rel = worst
	}
	if rel > tolerance {
		return fmt.Sprintf("relative error %.3g > %.3g (worst element %d = %.10g, want %.10g; max |want| %.4g)",
			rel, tolerance, at, got[at], want[at], scale)
	}
	return ""
}

// quantize rounds v to the nearest value of dt: float32 and the 16-bit
// types by round-to-nearest-even through float32, Int32 by truncation
// toward zero.
func quantize(dt tensor.DType, v float64) float64 {
	switch dt {
	case tensor.Float32:
		return float64(float32(v))
	case tensor.BFloat16:
		return float64(tensor.BF16ToFloat32(tensor.BF16FromFloat32(float32(v))))
	case tensor.Float16:
		return float64(tensor.F16ToFloat32(tensor.F16FromFloat32(float32(v))))
	case tensor.Int32:
		return float64(int32(v))
	}
	return v
}

// newHost returns a host slice of n elements of dt's host type.
func newHost(dt tensor.DType, n int) any {
	switch dt {
	case tensor.Float32:
		return make([]float32, n)
	case tensor.Float64:
		return make([]float64, n)
	case tensor.Int32:
		return make([]int32, n)
	case tensor.BFloat16:
		return bf16s(make([]uint16, n))
	case tensor.Float16:
		return f16s(make([]uint16, n))
	}
	panic("conformance: unknown dtype " + dt.String())
}

// bf16s and f16s tag []uint16 host data with its meaning inside this
// package; unwrap turns them back into the []uint16 the Backend takes.
type (
	bf16s []uint16
	f16s  []uint16
)

func unwrap(host any) any {
	switch v := host.(type) {
	case bf16s:
		return []uint16(v)
	case f16s:
		return []uint16(v)
	}
	return host
}

// toHost converts vals to the host slice type of dt ([]uint16 bits for the
// 16-bit types), rounding to nearest even.
func toHost(dt tensor.DType, vals []float64) any {
	switch dt {
	case tensor.Float32:
		out := make([]float32, len(vals))
		for i, v := range vals {
			out[i] = float32(v)
		}
		return out
	case tensor.Float64:
		return append([]float64(nil), vals...)
	case tensor.Int32:
		out := make([]int32, len(vals))
		for i, v := range vals {
			out[i] = int32(v)
		}
		return out
	case tensor.BFloat16:
		out := make([]uint16, len(vals))
		for i, v := range vals {
			out[i] = tensor.BF16FromFloat32(float32(v))
		}
		return out
	case tensor.Float16:
		out := make([]uint16, len(vals))
		for i, v := range vals {
			out[i] = tensor.F16FromFloat32(float32(v))
		}
		return out
	}
	panic("conformance: unknown dtype " + dt.String())
}

// fromHost converts a host slice made by newHost to float64 exactly; the
// Backend reads into the []uint16 inside the 16-bit wrappers.
func fromHost(host any) []float64 {
	switch v := host.(type) {
	case []float32:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return v
	case []int32:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	case bf16s:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(tensor.BF16ToFloat32(x))
		}
		return out
	case f16s:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(tensor.F16ToFloat32(x))
		}
		return out
	}
	panic(fmt.Sprintf("conformance: unknown host type %T", host))
}

// filled returns n copies of v.
func filled(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// normal returns n samples of a normal distribution with the given mean
// and standard deviation.
func (h *harness) normal(n int, mean, std float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + std*h.rng.NormFloat64()
	}
	return out
}

// uniform returns n samples uniform in [lo, hi).
func (h *harness) uniform(n int, lo, hi float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*h.rng.Float64()
	}
	return out
}

// magnitude returns n samples with |x| uniform in [lo, hi) and a random
// sign: values safely away from zero.
func (h *harness) magnitude(n int, lo, hi float64) []float64 {
	out := h.uniform(n, lo, hi)
	for i := range out {
		if h.rng.IntN(2) == 0 {
			out[i] = -out[i]
		}
	}
	return out
}

// intsIn returns n integers uniform in [lo, hi).
func (h *harness) intsIn(n, lo, hi int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = lo + h.rng.IntN(hi-lo)
	}
	return out
}
