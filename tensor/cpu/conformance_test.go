package cpu_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/conformance"
	"github.com/minnowml/minnow/tensor/cpu"
)

// TestConformance runs the backend conformance suite on one, two and three
// threads: odd thread counts catch chunking bugs at the edges of the splits.
func TestConformance(t *testing.T) {
	for _, threads := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			conformance.Run(t, cpu.New(threads))
		})
	}
}

// det runs kernels on one backend for the determinism tests.
type det struct {
	t  *testing.T
	be *cpu.Backend
}

// f32 returns float32 storage holding n deterministic pseudo-random values.
func (d det) f32(n int, seed uint64) tensor.Ref {
	d.t.Helper()
	rng := tensor.NewRNG(seed)
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	s, err := d.be.Alloc(tensor.Float32, n)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.be.Write(tensor.Ref{S: s}, v); err != nil {
		d.t.Fatal(err)
	}
	return tensor.Ref{S: s}
}

// bits returns the bit patterns of n float32 elements at r.
func (d det) bits(r tensor.Ref, n int) []uint32 {
	d.t.Helper()
	v := make([]float32, n)
	if err := d.be.Read(v, r); err != nil {
		d.t.Fatal(err)
	}
	b := make([]uint32, n)
	for i, x := range v {
		b[i] = math.Float32bits(x)
	}
	return b
}

func (d det) ok(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
}

func sameBits(t *testing.T, what string, a, b []uint32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d and %d elements", what, len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("%s: element %d differs between runs: %#x and %#x", what, i, a[i], b[i])
		}
	}
}

// detKernels are calls whose result must not vary between runs on a
// backend; each starts from the same inputs (fixed seeds) and returns the
// bits of its output. The sizes split the work across threads.
var detKernels = []struct {
	name string
	run  func(d det) []uint32
}{
	{"gemm", func(d det) []uint32 {
		const m, n, k = 300, 200, 150
		c := d.f32(m*n, 3)
		d.ok(d.be.Gemm(&tensor.GemmArgs{M: m, N: n, K: k, Alpha: 1, Beta: 0.5, A: d.f32(m*k, 1), B: d.f32(k*n, 2), C: c,
			LDA: k, LDB: n, LDC: n, Batch: 1}))
		return d.bits(c, m*n)
	}},
	{"gemm-batched-transposed", func(d det) []uint32 {
		const m, n, k, b = 64, 48, 80, 8
		c := d.f32(b*m*n, 3)
		d.ok(d.be.Gemm(&tensor.GemmArgs{TransA: true, TransB: true, M: m, N: n, K: k, Alpha: 1,
			A: d.f32(b*m*k, 1), B: d.f32(b*k*n, 2), C: c, LDA: m, LDB: k, LDC: n, Batch: b,
			StrideA: m * k, StrideB: k * n, StrideC: m * n}))
		return d.bits(c, b*m*n)
	}},
	{"reduce-sum-rows", func(d det) []uint32 {
		y := d.f32(600, 0)
		d.ok(d.be.Reduce(&tensor.ReduceArgs{Op: tensor.ReduceSum, Outer: 600, N: 700, Inner: 1, X: d.f32(600*700, 1), Y: y}))
		return d.bits(y, 600)
	}},
	{"reduce-sum-inner", func(d det) []uint32 {
		y := d.f32(2*3000, 0)
		d.ok(d.be.Reduce(&tensor.ReduceArgs{Op: tensor.ReduceSum, Outer: 2, N: 70, Inner: 3000, X: d.f32(2*70*3000, 1), Y: y}))
		return d.bits(y, 2*3000)
	}},
	{"reduce-max", func(d det) []uint32 {
		y := d.f32(500, 0)
		d.ok(d.be.Reduce(&tensor.ReduceArgs{Op: tensor.ReduceMax, Outer: 500, N: 300, Inner: 1, X: d.f32(500*300, 1), Y: y}))
		return d.bits(y, 500)
	}},
	{"sum-squares", func(d det) []uint32 {
		out := d.f32(1, 0)
		x := d.f32(300001, 1)
		d.ok(d.be.SumSquares(out, x, 300001))
		d.ok(d.be.SumSquares(out, x, 300001))
		return d.bits(out, 1)
	}},
	{"adamw", func(d det) []uint32 {
		const n = 100003
		p, m, v := d.f32(n, 1), d.f32(n, 2), d.f32(n, 3)
		// V must be non-negative: square it in place.
		d.ok(d.be.Unary(&tensor.UnaryArgs{Op: tensor.Square, N: n, X: v, Y: v}))
		for step := 1; step <= 3; step++ {
			d.ok(d.be.AdamW(&tensor.AdamWArgs{N: n, Param: p, Grad: d.f32(n, uint64(10+step)), M: m, V: v,
				LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, GradScale: 0.7, Step: step}))
		}
		return append(append(d.bits(p, n), d.bits(m, n)...), d.bits(v, n)...)
	}},
	{"dropout", func(d det) []uint32 {
		const n = 200001
		y := d.f32(n, 0)
		d.ok(d.be.Dropout(&tensor.DropoutArgs{N: n, P: 0.3, Seed: 77, X: d.f32(n, 1), Y: y}))
		return d.bits(y, n)
	}},
}

// TestDeterminism checks that a call repeated on the same inputs gives
// bit-identical results, as the package documents for a given thread count.
func TestDeterminism(t *testing.T) {
	for _, threads := range []int{1, 3, 4} {
		be := cpu.New(threads)
		for _, k := range detKernels {
			t.Run(fmt.Sprintf("%s/threads=%d", k.name, threads), func(t *testing.T) {
				d := det{t, be}
				sameBits(t, k.name, k.run(d), k.run(d))
			})
		}
	}
}

// TestThreadIndependence checks the results documented not to depend on
// the thread count: SumSquares ("bit-identical however it is split") and
// the Dropout mask ("the same seed gives the same mask on any thread
// count").
func TestThreadIndependence(t *testing.T) {
	for _, name := range []string{"sum-squares", "dropout"} {
		var run func(d det) []uint32
		for _, k := range detKernels {
			if k.name == name {
				run = k.run
			}
		}
		want := run(det{t, cpu.New(1)})
		for _, threads := range []int{2, 3, 5} {
			sameBits(t, fmt.Sprintf("%s on %d threads against 1", name, threads), run(det{t, cpu.New(threads)}), want)
		}
	}
}
