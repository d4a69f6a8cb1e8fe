package cpu

import (
	"math"
	"unsafe"

	"github.com/minnowml/minnow/tensor/cpu/internal/vec"

	"github.com/minnowml/minnow/tensor"
)

// expCost is the rough cost of one Exp in element operations, for the
// parallel split.
const expCost = 16

// Softmax computes softmax (or log-softmax with Log) over each row,
// accumulating the row sum in float64. Y may equal X. It returns an error
// wrapping tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) Softmax(a *tensor.SoftmaxArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		softmaxRun(b, a, f32(a.X), f32(a.Y))
	case tensor.Float64:
		softmaxRun(b, a, f64(a.X), f64(a.Y))
	default:
		return unsupported("softmax", dt)
	}
	return nil
}

// rowMax returns the largest element of row as float64 (-Inf for an empty
// row); NaNs are skipped here and surface through the exponentials.
func rowMax[T float](row []T) float64 {
	m := T(math.Inf(-1))
	for _, v := range row {
		if v > m {
			m = v
		}
	}
	return float64(m)
}

func softmaxRun[T float](b *Backend, a *tensor.SoftmaxArgs, x, y []T) {
	cols := a.Cols
	b.parallel(a.Rows, cols*expCost, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*cols : r*cols+cols]
			yr := y[r*cols : r*cols+cols]
			m := rowMax(xr)
			if a.Log {
				lse := m + math.Log(expSum(xr, m))
				for j, v := range xr {
					yr[j] = T(float64(v) - lse)
				}
				continue
			}
			inv := 1 / expScaled(yr, xr, m, 1)
			for j, v := range yr {
				yr[j] = T(float64(v) * inv)
			}
		}
	})
}

// SoftmaxGrad sets DX from Y and DY: DX = Y*(DY - sum(DY*Y)) for softmax and
// DX = DY - exp(Y)*sum(DY) for log-softmax. It returns an error wrapping
// tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) SoftmaxGrad(a *tensor.SoftmaxArgs) error {
	switch dt := st(a.Y).dt; dt {
	case tensor.Float32:
		softmaxGradRun(b, a, f32(a.Y), f32(a.DY), f32(a.DX))
	case tensor.Float64:
		softmaxGradRun(b, a, f64(a.Y), f64(a.DY), f64(a.DX))
	default:
		return unsupported("softmax grad", dt)
	}
	return nil
}

func softmaxGradRun[T float](b *Backend, a *tensor.SoftmaxArgs, y, dy, dx []T) {
	cols := a.Cols
	cost := 4
	if a.Log {
		cost = expCost
	}
	b.parallel(a.Rows, cols*cost, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			yr := y[r*cols : r*cols+cols]
			gr := dy[r*cols : r*cols+cols]
			dr := dx[r*cols : r*cols+cols]
			var s float64
			if a.Log {
				for _, g := range gr {
					s += float64(g)
				}
				for j, v := range yr {
					dr[j] = T(float64(gr[j]) - math.Exp(float64(v))*s)
				}
				continue
			}
			for j, v := range yr {
				s += float64(gr[j]) * float64(v)
			}
			for j, v := range yr {
				dr[j] = T(float64(v) * (float64(gr[j]) - s))
			}
		}
	})
}

// CrossEntropy sets Loss[r] = logsumexp(Logits[r]) - Logits[r, Targets[r]]
// (0 for an ignored target) and, when present, LSE[r]. Each row takes one
// pass for the maximum and one for the sum of exponentials, accumulated in
// float64. It returns an error wrapping tensor.ErrUnsupported for logits
// other than f32 and f64 or targets other than i32.
func (b *Backend) CrossEntropy(a *tensor.CrossEntropyArgs) error {
	if dt := st(a.Targets).dt; dt != tensor.Int32 {
		return unsupported("cross-entropy targets", dt)
	}
	switch dt := st(a.Logits).dt; dt {
	case tensor.Float32:
		crossEntropyRun(b, a, f32(a.Logits), f32(a.Loss), opt(a.LSE, f32))
	case tensor.Float64:
		crossEntropyRun(b, a, f64(a.Logits), f64(a.Loss), opt(a.LSE, f64))
	default:
		return unsupported("cross-entropy", dt)
	}
	return nil
}

// opt returns get(r), or nil when r is absent.
func opt[T any](r tensor.Ref, get func(tensor.Ref) []T) []T {
	if !present(r) {
		return nil
	}
	return get(r)
}

// logSumExp returns log(sum(exp(row))) with the sum in float64.
func logSumExp[T float](row []T) float64 {
	m := rowMax(row)
	return m + math.Log(expSum(row, m))
}

// expSum returns the sum of e^(row[j] - shift) in float64: float32 rows go
// through the SIMD kernel, float64 rows through math.Exp, since float64
// serves gradient checks and references, where any approximation would show.
func expSum[T float](row []T, shift float64) float64 {
	if f, ok := asF32(row); ok {
		return vec.ExpSum(f, float32(shift))
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - shift)
	}
	return s
}

// expScaled sets dst[j] = e^(row[j] - shift) * scale and returns the sum
// of the exponentials in float64, computed as expSum does. dst may be row.
func expScaled[T float](dst, row []T, shift, scale float64) float64 {
	if f, ok := asF32(row); ok {
		d, _ := asF32(dst)
		return vec.ExpScale(d, f, float32(shift), float32(scale))
	}
	dst = dst[:len(row)]
	var s float64
	for j, v := range row {
		e := math.Exp(float64(v) - shift)
		s += e
		dst[j] = T(e * scale)
	}
	return s
}

func crossEntropyRun[T float](b *Backend, a *tensor.CrossEntropyArgs, x, loss, lse []T) {
	cols := a.Cols
	tg := i32(a.Targets)
	b.parallel(a.Rows, cols*expCost, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			l := logSumExp(x[r*cols : r*cols+cols])
			if lse != nil {
				lse[r] = T(l)
			}
			if t := int(tg[r]); t >= 0 && t < cols {
				loss[r] = T(l - float64(x[r*cols+t]))
			} else {
				loss[r] = 0
			}
		}
	})
}

// CrossEntropyGrad sets DLogits[r] = (softmax(Logits[r]) -
// onehot(Targets[r])) * DLoss[r], recomputing the softmax from the saved
// LSE (or from the logits when LSE is absent); ignored rows get zeros. It
// returns an error wrapping tensor.ErrUnsupported for logits other than f32
// and f64 or targets other than i32.
func (b *Backend) CrossEntropyGrad(a *tensor.CrossEntropyArgs) error {
	if dt := st(a.Targets).dt; dt != tensor.Int32 {
		return unsupported("cross-entropy targets", dt)
	}
	switch dt := st(a.Logits).dt; dt {
	case tensor.Float32:
		crossEntropyGradRun(b, a, f32(a.Logits), opt(a.LSE, f32), f32(a.DLoss), f32(a.DLogits))
	case tensor.Float64:
		crossEntropyGradRun(b, a, f64(a.Logits), opt(a.LSE, f64), f64(a.DLoss), f64(a.DLogits))
	default:
		return unsupported("cross-entropy grad", dt)
	}
	return nil
}

func crossEntropyGradRun[T float](b *Backend, a *tensor.CrossEntropyArgs, x, lse, dloss, dx []T) {
	cols := a.Cols
	tg := i32(a.Targets)
	b.parallel(a.Rows, cols*expCost, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*cols : r*cols+cols]
			dr := dx[r*cols : r*cols+cols]
			t := int(tg[r])
			if t < 0 || t >= cols {
				clear(dr)
				continue
			}
			var l float64
			if lse != nil {
				l = float64(lse[r])
			} else {
				l = logSumExp(xr)
			}
			g := float64(dloss[r])
			expScaled(dr, xr, l, g)
			dr[t] = T((math.Exp(float64(xr[t])-l) - 1) * g)
		}
	})
}

// asF32 views a float32 slice of a generic kernel as []float32 (false for
// float64 or an empty slice), so the SIMD kernels can serve both.
func asF32[T float](x []T) ([]float32, bool) {
	var z T
	if unsafe.Sizeof(z) != 4 || len(x) == 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&x[0])), len(x)), true
}

// asF64 views a float64 slice of a generic kernel as []float64; it is only
// called where T is float64.
func asF64[T float](x []T) []float64 {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&x[0])), len(x))
}
