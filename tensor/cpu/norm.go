package cpu

import (
	"math"

	"github.com/minnowml/minnow/tensor"
)

// Norm computes RMSNorm or LayerNorm over each row, with the statistics in
// float64, and saves RStd (and Mean for LayerNorm) when present. W may be
// absent (taken as ones), as may B. It returns an error wrapping
// tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) Norm(a *tensor.NormArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		normRun(b, a, f32(a.X), opt(a.W, f32), opt(a.B, f32), f32(a.Y), opt(a.Mean, f32), opt(a.RStd, f32))
	case tensor.Float64:
		normRun(b, a, f64(a.X), opt(a.W, f64), opt(a.B, f64), f64(a.Y), opt(a.Mean, f64), opt(a.RStd, f64))
	default:
		return unsupported("norm", dt)
	}
	return nil
}

// rowStats returns the mean (0 for RMSNorm) and 1/sqrt(variance + eps) of
// row, where the variance is the mean square about the mean. LayerNorm takes
// two passes so a large mean does not cancel the variance away.
func rowStats[T float](row []T, layer bool, eps float64) (mean, rstd float64) {
	n := float64(max(len(row), 1))
	if layer {
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		mean = s / n
	}
	var ss float64
	for _, v := range row {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/n+eps)
}

func normRun[T float](b *Backend, a *tensor.NormArgs, x, w, bias, y, mean, rstd []T) {
	cols := a.Cols
	b.parallel(a.Rows, cols*4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*cols : r*cols+cols]
			yr := y[r*cols : r*cols+cols]
			mu, rs := rowStats(xr, a.Layer, a.Eps)
			if mean != nil && a.Layer {
				mean[r] = T(mu)
			}
			if rstd != nil {
				rstd[r] = T(rs)
			}
			switch {
			case w != nil && bias != nil:
				for j, v := range xr {
					yr[j] = T((float64(v)-mu)*rs*float64(w[j]) + float64(bias[j]))
				}
			case w != nil:
				for j, v := range xr {
					yr[j] = T((float64(v) - mu) * rs * float64(w[j]))
				}
			case bias != nil:
				for j, v := range xr {
					yr[j] = T((float64(v)-mu)*rs + float64(bias[j]))
				}
			default:
				for j, v := range xr {
					yr[j] = T((float64(v) - mu) * rs)
				}
			}
		}
	})
}

// NormGrad sets DX and, when present, DW and DB (adding into them with
// Accumulate). With xhat = (X - mean)*rstd and g = DY*W, DX = rstd*(g -
// mean(g) - xhat*mean(g*xhat)), dropping the mean(g) term for RMSNorm. The
// saved statistics are used when present, else recomputed. DW and DB sum
// over rows column by column in row order, so they do not depend on the
// thread count. It returns an error wrapping
// tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) NormGrad(a *tensor.NormArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		normGradRun(b, a, f32(a.X), opt(a.W, f32), f32(a.DY), f32(a.DX), opt(a.DW, f32), opt(a.DB, f32),
			opt(a.Mean, f32), opt(a.RStd, f32))
	case tensor.Float64:
		normGradRun(b, a, f64(a.X), opt(a.W, f64), f64(a.DY), f64(a.DX), opt(a.DW, f64), opt(a.DB, f64),
			opt(a.Mean, f64), opt(a.RStd, f64))
	default:
		return unsupported("norm grad", dt)
	}
	return nil
}

// normColBlock is the number of columns one DW/DB task sums at a time, in
// float64 accumulators on the stack.
const normColBlock = 32

func normGradRun[T float](b *Backend, a *tensor.NormArgs, x, w, dy, dx, dw, db, mean, rstd []T) {
	rows, cols := a.Rows, a.Cols
	if !a.Layer {
		mean = nil
	}
	// stats returns row r's saved statistics, or recomputes them.
	stats := func(r int) (float64, float64) {
		if rstd == nil || (a.Layer && mean == nil) {
			return rowStats(x[r*cols:r*cols+cols], a.Layer, a.Eps)
		}
		mu := 0.0
		if mean != nil {
			mu = float64(mean[r])
		}
		return mu, float64(rstd[r])
	}
	if present(a.DX) {
		n := float64(max(cols, 1))
		b.parallel(rows, cols*6, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr := x[r*cols : r*cols+cols]
				gr := dy[r*cols : r*cols+cols]
				dr := dx[r*cols : r*cols+cols]
				mu, rs := stats(r)
				var sg, sgx float64
				for j, v := range xr {
					g := float64(gr[j])
					if w != nil {
						g *= float64(w[j])
					}
					sg += g
					sgx += g * (float64(v) - mu) * rs
				}
				mg, mgx := sg/n, sgx/n
				if !a.Layer {
					mg = 0
				}
				for j, v := range xr {
					g := float64(gr[j])
					if w != nil {
						g *= float64(w[j])
					}
					xh := (float64(v) - mu) * rs
					dr[j] = T(rs * (g - mg - xh*mgx))
				}
			}
		})
	}
	if dw == nil && db == nil {
		return
	}
	blocks := (cols + normColBlock - 1) / normColBlock
	b.parallel(blocks, rows*normColBlock*3, func(lo, hi int) {
		var sw, sb [normColBlock]float64
		for blk := lo; blk < hi; blk++ {
			c0 := blk * normColBlock
			c1 := min(c0+normColBlock, cols)
			sw, sb = [normColBlock]float64{}, [normColBlock]float64{}
			for r := 0; r < rows; r++ {
				mu, rs := stats(r)
				xr := x[r*cols+c0 : r*cols+c1]
				gr := dy[r*cols+c0 : r*cols+c1]
				for j, v := range xr {
					g := float64(gr[j])
					sw[j] += g * (float64(v) - mu) * rs
					sb[j] += g
				}
			}
			for j := range c1 - c0 {
				if dw != nil {
					if a.Accumulate {
						dw[c0+j] += T(sw[j])
					} else {
						dw[c0+j] = T(sw[j])
					}
				}
				if db != nil {
					if a.Accumulate {
						db[c0+j] += T(sb[j])
					} else {
						db[c0+j] = T(sb[j])
					}
				}
			}
		}
	})
}
