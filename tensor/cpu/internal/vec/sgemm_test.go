package vec

import (
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"
)

// gemmCase is one Sgemm call: op(A) is m x k, op(B) k x n, C m x n, each
// stored with its leading dimension padded by pad elements.
type gemmCase struct {
	m, n, k     int
	tA, tB      bool
	alpha, beta float32
	pad         int
}

func (g gemmCase) String() string {
	return fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/alpha=%g/beta=%g/pad=%d", g.m, g.n, g.k, g.tA, g.tB, g.alpha, g.beta, g.pad)
}

// sentinel marks the padding between rows, which Sgemm must leave alone.
const sentinel = float32(-12345.5)

// runGemmCase calls Sgemm and checks every element of C against a float64
// triple loop. The allowed error is relative to the sum of the magnitudes
// of the terms (sum_p |alpha a_ip b_pj| + |beta c_ij|) and grows with
// sqrt(k), which a wrong or missing term would exceed by orders of
// magnitude while float32 rounding stays well inside it.
func runGemmCase(t *testing.T, g gemmCase, rng *rand.Rand) {
	t.Helper()
	aRows, aCols := g.m, g.k
	if g.tA {
		aRows, aCols = g.k, g.m
	}
	bRows, bCols := g.k, g.n
	if g.tB {
		bRows, bCols = g.n, g.k
	}
	lda, ldb, ldc := max(aCols+g.pad, 1), max(bCols+g.pad, 1), g.n+g.pad
	fill := func(rows, cols, ld int) []float32 {
		x := make([]float32, max(rows*ld, 1))
		for i := range x {
			x[i] = sentinel
		}
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				x[i*ld+j] = rng.Float32()*2 - 1
			}
		}
		return x
	}
	a := fill(aRows, aCols, lda)
	b := fill(bRows, bCols, ldb)
	c := fill(g.m, g.n, ldc)
	if g.beta == 0 {
		// beta == 0 must not read C: poison it.
		for i := 0; i < g.m; i++ {
			for j := 0; j < g.n; j++ {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	a0 := append([]float32(nil), a...)
	b0 := append([]float32(nil), b...)
	c0 := append([]float32(nil), c...)
	opA := func(i, p int) float64 {
		if g.tA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	opB := func(p, j int) float64 {
		if g.tB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}

	Sgemm(g.tA, g.tB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)

	tol := 1e-5*math.Sqrt(float64(g.k)) + 1e-6
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.n; j++ {
			var want, mag float64
			for p := 0; p < g.k; p++ {
				v := float64(g.alpha) * opA(i, p) * opB(p, j)
				want += v
				mag += math.Abs(v)
			}
			if g.beta != 0 {
				v := float64(g.beta) * float64(c0[i*ldc+j])
				want += v
				mag += math.Abs(v)
			}
			got := float64(c[i*ldc+j])
			if err := math.Abs(got - want); !(err <= tol*mag) {
				t.Fatalf("%v: C[%d][%d] = %g, want %g (error %.3g, allowed %.3g)", g, i, j, got, want, err, tol*mag)
			}
		}
		for j := g.n; j < ldc && i*ldc+j < len(c); j++ {
			if c[i*ldc+j] != sentinel {
				t.Fatalf("%v: padding C[%d][%d] changed to %g", g, i, j, c[i*ldc+j])
			}
		}
	}
	for i := range a {
		if a[i] != a0[i] && !(a[i] != a[i] && a0[i] != a0[i]) {
			t.Fatalf("%v: A[%d] changed", g, i)
		}
	}
	for i := range b {
		if b[i] != b0[i] {
			t.Fatalf("%v: B[%d] changed", g, i)
		}
	}
}

// gemmCases lists the shapes: tiny and odd sizes, every remainder around
// the 6x16 tile, k around and beyond the k block, m beyond the m block and n
// beyond the n block.
func gemmCases() []gemmCase {
	type shape struct{ m, n, k int }
	shapes := []shape{
		{1, 1, 1}, {1, 1, 5}, {2, 3, 1}, {1, 17, 3}, {19, 1, 4},
		{7, 13, 17}, {37, 41, 53}, {6, 16, 8}, {12, 32, 64},
		{64, 64, 700}, {13, 35, 700}, {150, 40, 30}, {293, 67, 261},
		{9, 3100, 5}, {5, 3089, 3},
	}
	for _, m := range []int{5, 6, 7, 11, 12, 13} {
		for _, n := range []int{15, 16, 17, 31, 33} {
			shapes = append(shapes, shape{m, n, 9})
		}
	}
	for _, k := range []int{2, 3, 4, 5, 255, 256, 257, 513} {
		shapes = append(shapes, shape{8, 20, k})
	}
	var cs []gemmCase
	for i, s := range shapes {
		for tr := 0; tr < 4; tr++ {
			alpha, beta := float32(1), float32(0)
			switch (i + tr) % 4 {
			case 1:
				alpha, beta = -0.75, 1
			case 2:
				alpha, beta = 2.5, 0.5
			case 3:
				alpha, beta = 1, 1
			}
			cs = append(cs, gemmCase{m: s.m, n: s.n, k: s.k, tA: tr&1 != 0, tB: tr&2 != 0,
				alpha: alpha, beta: beta, pad: (i + tr) % 3 * 3})
		}
	}
	return cs
}

func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, g := range gemmCases() {
		runGemmCase(t, g, rng)
	}
}

// kernels lists the micro-kernels this machine can run.
func kernels() []*gemmKernel {
	ks := []*gemmKernel{gemmGo}
	if hasSIMD {
		ks = append(ks, gemmAVX2)
	}
	if hasAVX512 {
		ks = append(ks, gemmAVX512)
	}
	return ks
}

// withKernel runs f with Sgemm switched to kernel g.
func withKernel(g *gemmKernel, f func()) {
	old := sgemmKern
	sgemmKern = g
	defer func() { sgemmKern = old }()
	f()
}

// TestSgemmKernels runs the cases through every kernel the machine has,
// not only the one Sgemm picks.
func TestSgemmKernels(t *testing.T) {
	t.Logf("Sgemm uses the %s kernel", SgemmKernel())
	for _, g := range kernels() {
		withKernel(g, func() {
			rng := rand.New(rand.NewSource(2))
			for _, c := range gemmCases() {
				if !g.asm && c.m*c.n*c.k > 1<<20 {
					continue
				}
				runGemmCase(t, c, rng)
			}
		})
	}
}

// TestSgemmAlphaBeta covers all combinations of the scalars, including
// alpha == 0 (A and B unread) and beta == 0 over NaN.
func TestSgemmAlphaBeta(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, g := range kernels() {
		withKernel(g, func() {
			for _, alpha := range []float32{1, -1, 0.5, 3} {
				for _, beta := range []float32{0, 1, 0.5, -2} {
					for tr := 0; tr < 4; tr++ {
						runGemmCase(t, gemmCase{m: 26, n: 70, k: 21, tA: tr&1 != 0, tB: tr&2 != 0,
							alpha: alpha, beta: beta, pad: 2}, rng)
					}
				}
			}
		})
	}
}

// TestSgemmNoProduct checks k == 0 and alpha == 0: C = beta*C, with NaN in A
// and B never reaching C and beta == 0 clearing NaN from C.
func TestSgemmNoProduct(t *testing.T) {
	nan := float32(math.NaN())
	for _, beta := range []float32{0, 1, 0.5} {
		for _, k := range []int{0, 3} {
			m, n, ldc := 3, 5, 7
			c := make([]float32, m*ldc)
			for i := range c {
				c[i] = float32(i)
			}
			if beta == 0 {
				c[1] = nan
			}
			a := []float32{nan, nan, nan, nan, nan, nan, nan, nan, nan}
			b := []float32{nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan}
			alpha := float32(0)
			if k == 0 {
				alpha = 2
			}
			Sgemm(false, false, m, n, k, alpha, a, max(k, 1), b, n, beta, c, ldc)
			for i := 0; i < m; i++ {
				for j := 0; j < ldc; j++ {
					want := float32(i*ldc + j)
					if j < n {
						want *= beta
					}
					if got := c[i*ldc+j]; got != want {
						t.Fatalf("k=%d beta=%g: C[%d][%d] = %g, want %g", k, beta, i, j, got, want)
					}
				}
			}
		}
	}
}

// TestSgemmConcurrent runs products on disjoint row blocks of one C from
// several goroutines, as the CPU backend does, and compares with one call.
func TestSgemmConcurrent(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	const m, n, k = 96, 70, 300
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		a[i] = rng.Float32() - 0.5
	}
	for i := range b {
		b[i] = rng.Float32() - 0.5
	}
	want := make([]float32, m*n)
	Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, want, n)
	for round := 0; round < 20; round++ {
		got := make([]float32, m*n)
		var wg sync.WaitGroup
		for part := 0; part < 4; part++ {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				Sgemm(false, false, hi-lo, n, k, 1, a[lo*k:], k, b, n, 0, got[lo*n:], n)
			}(part*m/4, (part+1)*m/4)
		}
		wg.Wait()
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("round %d: element %d = %g, want %g", round, i, got[i], want[i])
			}
		}
	}
}

// raceEnabled is set by race_test.go in -race builds.
var raceEnabled bool

// TestSgemmNoAlloc checks that warm calls reuse the pooled pack buffers.
func TestSgemmNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	const m, n, k = 64, 80, 300
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	c := make([]float32, m*n)
	Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
	allocs := testing.AllocsPerRun(20, func() {
		Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
	})
	if allocs > 0 {
		t.Fatalf("Sgemm allocates %.1f times per warm call", allocs)
	}
}

func TestSgemmPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"short C": func() {
			Sgemm(false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 3), 2)
		},
		"short A": func() {
			Sgemm(true, false, 2, 2, 2, 1, make([]float32, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
		},
		"small ldb": func() {
			Sgemm(false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 1, 0, make([]float32, 4), 2)
		},
		"negative": func() { Sgemm(false, false, -1, 2, 2, 1, nil, 2, nil, 2, 0, nil, 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func benchSgemm(b *testing.B, size int, tA, tB bool) {
	rng := rand.New(rand.NewSource(5))
	x := make([]float32, size*size)
	y := make([]float32, size*size)
	z := make([]float32, size*size)
	for i := range x {
		x[i] = rng.Float32()
		y[i] = rng.Float32()
	}
	b.ResetTimer()
	for b.Loop() {
		Sgemm(tA, tB, size, size, size, 1, x, size, y, size, 0, z, size)
	}
	b.ReportMetric(2*float64(size)*float64(size)*float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm1024 times one thread on a 1024³ product (C = A·B).
func BenchmarkSgemm1024(b *testing.B) { benchSgemm(b, 1024, false, false) }

// BenchmarkSgemm1024AVX2 times the AVX2+FMA kernel where the AVX-512 one
// would be chosen.
func BenchmarkSgemm1024AVX2(b *testing.B) {
	if !hasSIMD {
		b.Skip("no AVX2+FMA")
	}
	withKernel(gemmAVX2, func() { benchSgemm(b, 1024, false, false) })
}

func BenchmarkSgemm1024TransA(b *testing.B) { benchSgemm(b, 1024, true, false) }

func BenchmarkSgemm1024TransB(b *testing.B) { benchSgemm(b, 1024, false, true) }

func BenchmarkSgemm256(b *testing.B) { benchSgemm(b, 256, false, false) }

func BenchmarkSgemm64(b *testing.B) { benchSgemm(b, 64, false, false) }
