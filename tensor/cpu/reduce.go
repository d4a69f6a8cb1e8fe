package cpu

import (
	"math"

	"github.com/minnowml/minnow/tensor/cpu/internal/vec"

	"github.com/minnowml/minnow/tensor"
)

// Reduce reduces the middle axis of [Outer, N, Inner]. Sums of a contiguous
// axis accumulate in float64.
func (b *Backend) Reduce(a *tensor.ReduceArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		reduceRun(b, a, f32(a.X), f32(a.Y))
	case tensor.Float64:
		reduceRun(b, a, f64(a.X), f64(a.Y))
	default:
		return unsupported("reduce", dt)
	}
	return nil
}

func reduceRun[T float](b *Backend, a *tensor.ReduceArgs, x, y []T) {
	outer, n, inner := a.Outer, a.N, a.Inner
	if inner == 1 {
		b.parallel(outer, n, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				row := x[o*n : o*n+n]
				if a.Op == tensor.ReduceSum {
					var s float64
					for _, v := range row {
						s += float64(v)
					}
					y[o] = T(s)
				} else {
					m := T(math.Inf(-1))
					for _, v := range row {
						if v > m || v != v {
							m = v
						}
					}
					y[o] = m
				}
			}
		})
		return
	}
	// Reduce rows of Inner elements; split over Inner so a single outer
	// block (a bias gradient) still uses every thread.
	b.parallel(inner, outer*n, func(lo, hi int) {
		for o := 0; o < outer; o++ {
			dst := y[o*inner+lo : o*inner+hi]
			base := o * n * inner
			copy(dst, x[base+lo:base+hi])
			for j := 1; j < n; j++ {
				src := x[base+j*inner+lo : base+j*inner+hi]
				if a.Op == tensor.ReduceSum {
					for i := range dst {
						dst[i] += src[i]
					}
				} else {
					for i := range dst {
						if src[i] > dst[i] || src[i] != src[i] {
							dst[i] = src[i]
						}
					}
				}
			}
		}
	})
}

// ReduceGrad broadcasts DY back over the reduced axis (sum) or routes it to
// the first maximal element (max).
func (b *Backend) ReduceGrad(a *tensor.ReduceArgs) error {
	switch dt := st(a.DY).dt; dt {
	case tensor.Float32:
		reduceGradRun(b, a, f32(a.X), f32(a.Y), f32(a.DY), f32(a.DX))
	case tensor.Float64:
		reduceGradRun(b, a, f64(a.X), f64(a.Y), f64(a.DY), f64(a.DX))
	default:
		return unsupported("reduce grad", dt)
	}
	return nil
}

func reduceGradRun[T float](b *Backend, a *tensor.ReduceArgs, x, y, dy, dx []T) {
	outer, n, inner := a.Outer, a.N, a.Inner
	b.parallel(outer, n*inner, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			base := o * n * inner
			g := dy[o*inner : o*inner+inner]
			if a.Op == tensor.ReduceSum {
				for j := 0; j < n; j++ {
					copy(dx[base+j*inner:base+j*inner+inner], g)
				}
				continue
			}
			m := y[o*inner : o*inner+inner]
			clear(dx[base : base+n*inner])
			for i := 0; i < inner; i++ {
				for j := 0; j < n; j++ {
					if v := x[base+j*inner+i]; v == m[i] || (v != v && m[i] != m[i]) {
						dx[base+j*inner+i] = g[i]
						break
					}
				}
			}
		}
	})
}

// sumSqChunk fixes the partial-sum blocks of SumSquares independently of
// the thread count, so the norm is bit-identical however it is split.
const sumSqChunk = 1 << 14

// SumSquares adds the sum of squares of n elements of x to out[0],
// accumulating in float64.
func (b *Backend) SumSquares(out, x tensor.Ref, n int) error {
	chunks := (n + sumSqChunk - 1) / sumSqChunk
	part := make([]float64, chunks)
	switch dt := st(x).dt; dt {
	case tensor.Float32:
		sumSquaresRun(b, f32(x)[:n], part)
	case tensor.Float64:
		sumSquaresRun(b, f64(x)[:n], part)
	default:
		return unsupported("sum of squares", dt)
	}
	var s float64
	for _, p := range part {
		s += p
	}
	switch st(out).dt {
	case tensor.Float32:
		f32(out)[0] += float32(s)
	case tensor.Float64:
		f64(out)[0] += s
	default:
		return unsupported("sum of squares output", st(out).dt)
	}
	return nil
}

func sumSquaresRun[T float](b *Backend, x []T, part []float64) {
	b.parallel(len(part), sumSqChunk, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			blk := x[c*sumSqChunk : min((c+1)*sumSqChunk, len(x))]
			if f, ok := asF32(blk); ok {
				part[c] = vec.SumSquares(f)
				continue
			}
			var s float64
			for _, v := range blk {
				s += float64(v) * float64(v)
			}
			part[c] = s
		}
	})
}

// AdamW applies one fused AdamW step with decoupled weight decay.
func (b *Backend) AdamW(a *tensor.AdamWArgs) error {
	dt := st(a.Param).dt
	for _, r := range []tensor.Ref{a.Grad, a.M, a.V} {
		if st(r).dt != dt {
			return unsupported("adamw with "+st(r).dt.String()+" state for parameters", dt)
		}
	}
	switch dt {
	case tensor.Float32:
		p, g, m, v := f32(a.Param)[:a.N], f32(a.Grad)[:a.N], f32(a.M)[:a.N], f32(a.V)[:a.N]
		c1 := 1 / (1 - math.Pow(a.Beta1, float64(a.Step)))
		c2 := 1 / (1 - math.Pow(a.Beta2, float64(a.Step)))
		// Chunks of a multiple of 8 keep the SIMD lanes full.
		b.parallel((a.N+7)/8, 48, func(lo, hi int) {
			lo, hi = lo*8, min(hi*8, a.N)
			vec.AdamW(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.GradScale, c1, c2)
		})
	case tensor.Float64:
		adamwRun(b, a, f64(a.Param)[:a.N], f64(a.Grad)[:a.N], f64(a.M)[:a.N], f64(a.V)[:a.N])
	default:
		return unsupported("adamw", dt)
	}
	return nil
}

func adamwRun[T float](b *Backend, a *tensor.AdamWArgs, p, g, m, v []T) {
	b1, b2 := a.Beta1, a.Beta2
	c1 := 1 / (1 - math.Pow(b1, float64(a.Step)))
	c2 := 1 / (1 - math.Pow(b2, float64(a.Step)))
	lr, eps, wd, gs := a.LR, a.Eps, a.WeightDecay, a.GradScale
	b.parallel(len(p), 6, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := float64(g[i]) * gs
			mi := b1*float64(m[i]) + (1-b1)*gi
			vi := b2*float64(v[i]) + (1-b2)*gi*gi
			m[i], v[i] = T(mi), T(vi)
			pi := float64(p[i])
			p[i] = T(pi - lr*(mi*c1/(math.Sqrt(vi*c2)+eps)+wd*pi))
		}
	})
}
