//go:build !cgo || noopenblas

package cpu

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/minnowml/minnow/tensor/cpu/internal/vec"
)

func blasInit(int) {}

func blasName() string {
	switch vec.SgemmKernel() {
	case "avx512":
		return "pure-Go BLAS (minnow AVX-512 kernels, gonum for f64)"
	case "avx2":
		return "pure-Go BLAS (minnow AVX2 kernels, gonum for f64)"
	}
	return "pure-Go BLAS (minnow Go kernels, gonum for f64)"
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// sgemm is minnow's own blocked SGEMM (vec.Sgemm): single-threaded, so the
// backend splits large products across its workers.
func sgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	vec.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// dgemm serves the float64 gradient checks; gonum is fast enough for them.
// It splits large products across goroutines itself, which is harmless
// inside the backend's own split.
func dgemm(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gonum.Implementation{}.Dgemm(trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// blasSplits reports that the backend must split products across its
// workers: vec.Sgemm runs on the calling goroutine.
const blasSplits = true
