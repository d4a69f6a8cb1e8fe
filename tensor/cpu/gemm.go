package cpu

import (
	"fmt"

	"github.com/minnowml/minnow/tensor"
)

// Gemm runs a batch of row-major matrix products. Batches run in parallel
// when there are several; a single large product is split across workers
// along the larger of M and N.
func (b *Backend) Gemm(a *tensor.GemmArgs) error {
	if a.M == 0 || a.N == 0 || a.Batch == 0 {
		return nil
	}
	dt := st(a.C).dt
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return unsupported("gemm", dt)
	}
	if a.K == 0 {
		// BLAS treats K=0 as a no-op on C, but the definition asks for
		// beta*C; honour it so a zero-length product never leaves garbage.
		for i := 0; i < a.Batch; i++ {
			scaleRows(a, dt, i)
		}
		return nil
	}
	flops := a.M * a.N * a.K
	if a.Batch > 1 {
		b.parallel(a.Batch, flops, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gemmOne(a, dt, i, 0, a.M, 0, a.N)
			}
		})
		return nil
	}
	if !blasSplits || b.threads == 1 || flops < 1<<18 {
		gemmOne(a, dt, 0, 0, a.M, 0, a.N)
		return nil
	}
	if a.M >= a.N {
		b.parallel(a.M, a.N*a.K, func(lo, hi int) { gemmOne(a, dt, 0, lo, hi, 0, a.N) })
	} else {
		b.parallel(a.N, a.M*a.K, func(lo, hi int) { gemmOne(a, dt, 0, 0, a.M, lo, hi) })
	}
	return nil
}

// gemmOne computes rows [m0, m1) and columns [n0, n1) of batch item i.
func gemmOne(a *tensor.GemmArgs, dt tensor.DType, i, m0, m1, n0, n1 int) {
	offA := a.A.Off + i*a.StrideA
	if a.TransA {
		offA += m0
	} else {
		offA += m0 * a.LDA
	}
	offB := a.B.Off + i*a.StrideB
	if a.TransB {
		offB += n0 * a.LDB
	} else {
		offB += n0
	}
	offC := a.C.Off + i*a.StrideC + m0*a.LDC + n0
	m, n := m1-m0, n1-n0
	if dt == tensor.Float32 {
		sgemm(a.TransA, a.TransB, m, n, a.K, float32(a.Alpha), st(a.A).f32[offA:], a.LDA,
			st(a.B).f32[offB:], a.LDB, float32(a.Beta), st(a.C).f32[offC:], a.LDC)
		return
	}
	dgemm(a.TransA, a.TransB, m, n, a.K, a.Alpha, st(a.A).f64[offA:], a.LDA,
		st(a.B).f64[offB:], a.LDB, a.Beta, st(a.C).f64[offC:], a.LDC)
}

func scaleRows(a *tensor.GemmArgs, dt tensor.DType, i int) {
	for r := 0; r < a.M; r++ {
		off := a.C.Off + i*a.StrideC + r*a.LDC
		if dt == tensor.Float32 {
			row := st(a.C).f32[off : off+a.N]
			for j := range row {
				row[j] = float32(a.Beta) * row[j]
				if a.Beta == 0 {
					row[j] = 0
				}
			}
		} else {
			row := st(a.C).f64[off : off+a.N]
			for j := range row {
				row[j] = a.Beta * row[j]
				if a.Beta == 0 {
					row[j] = 0
				}
			}
		}
	}
}

// Fill sets n elements to v.
func (b *Backend) Fill(dst tensor.Ref, n int, v float64) error {
	s := st(dst)
	switch s.dt {
	case tensor.Float32:
		x := s.f32[dst.Off : dst.Off+n]
		b.parallel(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				x[i] = float32(v)
			}
		})
	case tensor.Float64:
		x := s.f64[dst.Off : dst.Off+n]
		for i := range x {
			x[i] = v
		}
	case tensor.Int32:
		x := s.i32[dst.Off : dst.Off+n]
		for i := range x {
			x[i] = int32(v)
		}
	case tensor.BFloat16, tensor.Float16:
		h := tensor.BF16FromFloat32(float32(v))
		if s.dt == tensor.Float16 {
			h = tensor.F16FromFloat32(float32(v))
		}
		x := s.u16[dst.Off : dst.Off+n]
		for i := range x {
			x[i] = h
		}
	default:
		return fmt.Errorf("cpu: fill: %w", tensor.ErrUnsupported)
	}
	return nil
}
