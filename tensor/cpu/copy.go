package cpu

import (
	"fmt"

	"github.com/minnowml/minnow/tensor"
)

// Copy copies, converts or accumulates a strided array.
func (b *Backend) Copy(a *tensor.CopyArgs) error {
	ds, ss := st(a.Dst), st(a.Src)
	if a.Accumulate && !ds.dt.IsCompute() {
		return unsupported("accumulating copy", ds.dt)
	}
	l := newLayout(a.Shape, a.DstStrides, a.SrcStrides)
	rows, n := l.rows()
	in := l.inner()
	if ds.dt == ss.dt {
		switch ds.dt {
		case tensor.Float32:
			copyRows(b, &l, rows, n, in, ds.f32[a.Dst.Off:], ss.f32[a.Src.Off:], a.Accumulate)
		case tensor.Float64:
			copyRows(b, &l, rows, n, in, ds.f64[a.Dst.Off:], ss.f64[a.Src.Off:], a.Accumulate)
		case tensor.Int32:
			copyRows(b, &l, rows, n, in, ds.i32[a.Dst.Off:], ss.i32[a.Src.Off:], false)
		default:
			copyRows(b, &l, rows, n, in, ds.u16[a.Dst.Off:], ss.u16[a.Src.Off:], false)
		}
		return nil
	}
	load, store := loader(ss, a.Src.Off), storer(ds, a.Dst.Off, a.Accumulate)
	if load == nil || store == nil {
		return fmt.Errorf("cpu: copy %s to %s: %w", ss.dt, ds.dt, tensor.ErrUnsupported)
	}
	b.parallel(rows, n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := l.offsets(r)
			for j := 0; j < n; j++ {
				store(o[0]+j*in[0], load(o[1]+j*in[1]))
			}
		}
	})
	return nil
}

type elem interface {
	~float32 | ~float64 | ~int32 | ~uint16
}

func copyRows[T elem](b *Backend, l *layout, rows, n int, in [3]int, dst, src []T, acc bool) {
	b.parallel(rows, n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := l.offsets(r)
			d, s := dst[o[0]:], src[o[1]:]
			switch {
			case acc && in[0] == 1 && in[1] == 1:
				d, s = d[:n], s[:n]
				for j := range d {
					d[j] += s[j]
				}
			case acc:
				for j := 0; j < n; j++ {
					d[j*in[0]] += s[j*in[1]]
				}
			case in[0] == 1 && in[1] == 1:
				copy(d[:n], s[:n])
			default:
				for j := 0; j < n; j++ {
					d[j*in[0]] = s[j*in[1]]
				}
			}
		}
	})
}

func loader(s *Storage, off int) func(i int) float64 {
	switch s.dt {
	case tensor.Float32:
		x := s.f32[off:]
		return func(i int) float64 { return float64(x[i]) }
	case tensor.Float64:
		x := s.f64[off:]
		return func(i int) float64 { return x[i] }
	case tensor.Int32:
		x := s.i32[off:]
		return func(i int) float64 { return float64(x[i]) }
	case tensor.BFloat16:
		x := s.u16[off:]
		return func(i int) float64 { return float64(tensor.BF16ToFloat32(x[i])) }
	case tensor.Float16:
		x := s.u16[off:]
		return func(i int) float64 { return float64(tensor.F16ToFloat32(x[i])) }
	}
	return nil
}

func storer(s *Storage, off int, acc bool) func(i int, v float64) {
	switch s.dt {
	case tensor.Float32:
		x := s.f32[off:]
		if acc {
			return func(i int, v float64) { x[i] += float32(v) }
		}
		return func(i int, v float64) { x[i] = float32(v) }
	case tensor.Float64:
		x := s.f64[off:]
		if acc {
			return func(i int, v float64) { x[i] += v }
		}
		return func(i int, v float64) { x[i] = v }
	case tensor.Int32:
		x := s.i32[off:]
		return func(i int, v float64) { x[i] = int32(v) }
	case tensor.BFloat16:
		x := s.u16[off:]
		return func(i int, v float64) { x[i] = tensor.BF16FromFloat32(float32(v)) }
	case tensor.Float16:
		x := s.u16[off:]
		return func(i int, v float64) { x[i] = tensor.F16FromFloat32(float32(v)) }
	}
	return nil
}
