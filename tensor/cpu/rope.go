package cpu

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// RoPE rotates pairs of the first RotDim features of every head by
// Pos[r]*InvFreq[i] (the negative angle with Inverse), computing each angle's
// sine and cosine once per row in float64; features past RotDim are copied.
// Y may equal X. It returns an error for a RotDim that is odd or exceeds
// HeadDim, and one wrapping tensor.ErrUnsupported for dtypes other than f32
// and f64 or positions other than i32.
func (b *Backend) RoPE(a *tensor.RoPEArgs) error {
	if a.RotDim < 0 || a.RotDim%2 != 0 || a.RotDim > a.HeadDim {
		return fmt.Errorf("cpu: rope: rotary dimension %d for head dimension %d", a.RotDim, a.HeadDim)
	}
	if dt := st(a.Pos).dt; dt != tensor.Int32 {
		return unsupported("rope positions", dt)
	}
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		ropeRun(b, a, f32(a.X), f32(a.Y), f32(a.InvFreq))
	case tensor.Float64:
		ropeRun(b, a, f64(a.X), f64(a.Y), f64(a.InvFreq))
	default:
		return unsupported("rope", dt)
	}
	return nil
}

func ropeRun[T float](b *Backend, a *tensor.RoPEArgs, x, y, freq []T) {
	heads, hd, half := a.Heads, a.HeadDim, a.RotDim/2
	rowLen := heads * hd
	pos := i32(a.Pos)
	// Adjacent pairs are (2i, 2i+1); half-split pairs are (i, i+half).
	step, gap := 2, 1
	if a.HalfSplit {
		step, gap = 1, half
	}
	b.parallel(a.Rows, rowLen*4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*rowLen : r*rowLen+rowLen]
			yr := y[r*rowLen : r*rowLen+rowLen]
			if a.RotDim < hd {
				for h := range heads {
					copy(yr[h*hd+a.RotDim:h*hd+hd], xr[h*hd+a.RotDim:h*hd+hd])
				}
			}
			p := float64(pos[r])
			for i := range half {
				s, c := math.Sincos(p * float64(freq[i]))
				if a.Inverse {
					s = -s
				}
				cs, sn := T(c), T(s)
				for o := i * step; o < rowLen; o += hd {
					x0, x1 := xr[o], xr[o+gap]
					yr[o] = x0*cs - x1*sn
					yr[o+gap] = x0*sn + x1*cs
				}
			}
		}
	})
}
