package conformance

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// gemmSpec is one Gemm call. padA, padB and padC widen the leading
// dimensions beyond the matrix; gapA, gapB and gapC separate batch items
// by that many unused elements; shareA and shareB give a zero batch stride.
type gemmSpec struct {
	tA, tB           bool
	m, n, k          int
	alpha, beta      float64
	padA, padB, padC int
	batch            int
	gapA, gapB, gapC int
	shareA, shareB   bool
	nanC             bool // C starts as NaN (valid only with beta 0)
}

func gemmCases() []kcase {
	var cases []kcase
	add := func(name string, s gemmSpec) {
		cases = append(cases, kcase{name: name, run: func(h *harness) { runGemm(h, s) }})
	}
	tn := func(tA, tB bool) string {
		n := map[bool]string{false: "n", true: "t"}
		return n[tA] + n[tB]
	}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			add("small-"+tn(tA, tB), gemmSpec{tA: tA, tB: tB, m: 5, n: 7, k: 3, alpha: 1, batch: 1, nanC: true})
			add("odd-"+tn(tA, tB), gemmSpec{tA: tA, tB: tB, m: 67, n: 131, k: 33, alpha: 1.5, beta: 0.5, batch: 1})
			add("tall-"+tn(tA, tB), gemmSpec{tA: tA, tB: tB, m: 301, n: 37, k: 41, alpha: 1, beta: 0, batch: 1, nanC: true})
			add("ld-padded-"+tn(tA, tB), gemmSpec{tA: tA, tB: tB, m: 6, n: 5, k: 4, alpha: -0.75, beta: 0.25,
				padA: 3, padB: 2, padC: 4, batch: 1})
			add("batch-"+tn(tA, tB), gemmSpec{tA: tA, tB: tB, m: 4, n: 6, k: 5, alpha: 1, beta: 0.5,
				padA: 1, padC: 2, batch: 3, gapA: 3, gapB: 5, gapC: 7})
		}
	}
	add("large-nn", gemmSpec{m: 300, n: 200, k: 150, alpha: 1, batch: 1, nanC: true})
	add("large-tt", gemmSpec{tA: true, tB: true, m: 300, n: 200, k: 150, alpha: 1, batch: 1, nanC: true})
	add("large-nt-beta", gemmSpec{tB: true, m: 200, n: 300, k: 150, alpha: 0.5, beta: 2, batch: 1})
	add("beta0-nan-garbage", gemmSpec{m: 9, n: 11, k: 13, alpha: 1, padC: 3, batch: 1, nanC: true})
	add("beta1-accumulates", gemmSpec{m: 8, n: 9, k: 10, alpha: 1, beta: 1, batch: 1})
	add("k0-beta0", gemmSpec{m: 4, n: 5, k: 0, alpha: 1, batch: 1, nanC: true})
	add("k0-beta-half", gemmSpec{m: 4, n: 5, k: 0, alpha: 1, beta: 0.5, padC: 1, batch: 2, gapC: 2})
	add("m0", gemmSpec{m: 0, n: 5, k: 3, alpha: 1, beta: 1, batch: 1})
	add("n0", gemmSpec{m: 5, n: 0, k: 3, alpha: 1, beta: 1, batch: 1})
	add("vector", gemmSpec{m: 1, n: 1, k: 17, alpha: 1, batch: 1, nanC: true})
	add("batch-shared-B", gemmSpec{m: 5, n: 4, k: 6, alpha: 1, batch: 4, shareB: true, gapA: 1, nanC: true})
	add("batch-shared-A-t", gemmSpec{tA: true, m: 5, n: 4, k: 6, alpha: 1, beta: 1, batch: 3, shareA: true, gapB: 2})
	add("batch-many", gemmSpec{tB: true, m: 33, n: 40, k: 20, alpha: 1, batch: 16, nanC: true})
	add("batch-large", gemmSpec{m: 96, n: 80, k: 64, alpha: 1, batch: 6, padC: 1, nanC: true})
	return cases
}

// layoutMat returns the stored shape [rows, cols] of an operand that op
// turns into [r, c] (transposed storage when t).
func layoutMat(t bool, r, c int) (rows, cols int) {
	if t {
		return c, r
	}
	return r, c
}

// gemmOperand builds a batch of stored matrices, NaN in every unused
// element, and returns the host values, leading dimension and batch stride.
func gemmOperand(h *harness, rows, cols, pad, batch, gap int, share bool, fill func(i int) float64) (vals []float64, ld, stride int) {
	ld = max(cols+pad, 1)
	per := rows * ld
	stride = per + gap
	items := batch
	if share {
		stride, items = 0, 1
	}
	n := (items-1)*stride + per
	if items == 0 || n <= 0 {
		n = 1
	}
	vals = filled(n, math.NaN())
	k := 0
	for b := 0; b < items; b++ {
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				vals[b*stride+r*ld+c] = fill(k)
				k++
			}
		}
	}
	return vals, ld, stride
}

func runGemm(h *harness, s gemmSpec) {
	ar, ac := layoutMat(s.tA, s.m, s.k)
	br, bc := layoutMat(s.tB, s.k, s.n)
	a, lda, sa := gemmOperand(h, ar, ac, s.padA, s.batch, s.gapA, s.shareA, func(int) float64 { return h.rng.NormFloat64() })
	b, ldb, sb := gemmOperand(h, br, bc, s.padB, s.batch, s.gapB, s.shareB, func(int) float64 { return h.rng.NormFloat64() })
	c, ldc, sc := gemmOperand(h, s.m, s.n, s.padC, s.batch, s.gapC, false, func(int) float64 {
		if s.nanC {
			return math.NaN()
		}
		return h.rng.NormFloat64()
	})
	ab, bb, cb := h.in(a), h.in(b), h.in(c)
	want := append([]float64(nil), c...)
	for bi := 0; bi < s.batch; bi++ {
		for i := 0; i < s.m; i++ {
			for j := 0; j < s.n; j++ {
				var sum float64
				for p := 0; p < s.k; p++ {
					var x, y float64
					if s.tA {
						x = a[bi*sa+p*lda+i]
					} else {
						x = a[bi*sa+i*lda+p]
					}
					if s.tB {
						y = b[bi*sb+j*ldb+p]
					} else {
						y = b[bi*sb+p*ldb+j]
					}
					sum += x * y
				}
				o := bi*sc + i*ldc + j
				if s.beta == 0 {
					want[o] = s.alpha * sum
				} else {
					want[o] = s.alpha*sum + s.beta*c[o]
				}
			}
		}
	}
	h.call("Gemm", h.be.Gemm(&tensor.GemmArgs{TransA: s.tA, TransB: s.tB, M: s.m, N: s.n, K: s.k,
		Alpha: s.alpha, Beta: s.beta, A: ab.ref(), B: bb.ref(), C: cb.ref(),
		LDA: lda, LDB: ldb, LDC: ldc, Batch: s.batch, StrideA: sa, StrideB: sb, StrideC: sc}))
	h.check(fmt.Sprintf("C of %+v", s), cb, want, tolStd)
}
