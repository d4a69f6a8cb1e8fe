package cpu

import "github.com/minnowml/minnow/tensor"

// SwiGLU computes Out = silu(Gate) * Up elementwise. It returns an error
// wrapping tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) SwiGLU(a *tensor.SwiGLUArgs) error {
	switch dt := st(a.Gate).dt; dt {
	case tensor.Float32:
		swigluRun(b, f32(a.Gate)[:a.N], f32(a.Up)[:a.N], f32(a.Out)[:a.N])
	case tensor.Float64:
		swigluRun(b, f64(a.Gate)[:a.N], f64(a.Up)[:a.N], f64(a.Out)[:a.N])
	default:
		return unsupported("swiglu", dt)
	}
	return nil
}

func swigluRun[T float](b *Backend, gate, up, out []T) {
	b.parallel(len(out), expCost, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := float64(gate[i])
			out[i] = T(g * sigmoid(g) * float64(up[i]))
		}
	})
}

// SwiGLUGrad sets DGate = DOut*Up*silu'(Gate) and DUp = DOut*silu(Gate),
// skipping whichever is absent. It returns an error wrapping
// tensor.ErrUnsupported for dtypes other than f32 and f64.
func (b *Backend) SwiGLUGrad(a *tensor.SwiGLUArgs) error {
	switch dt := st(a.Gate).dt; dt {
	case tensor.Float32:
		swigluGradRun(b, a.N, f32(a.Gate), f32(a.Up), f32(a.DOut), opt(a.DGate, f32), opt(a.DUp, f32))
	case tensor.Float64:
		swigluGradRun(b, a.N, f64(a.Gate), f64(a.Up), f64(a.DOut), opt(a.DGate, f64), opt(a.DUp, f64))
	default:
		return unsupported("swiglu grad", dt)
	}
	return nil
}

func swigluGradRun[T float](b *Backend, n int, gate, up, dout, dgate, dup []T) {
	b.parallel(n, expCost, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g, d := float64(gate[i]), float64(dout[i])
			s := sigmoid(g)
			if dgate != nil {
				// silu'(g) = s + g*s*(1-s)
				dgate[i] = T(d * float64(up[i]) * s * (1 + g*(1-s)))
			}
			if dup != nil {
				dup[i] = T(d * g * s)
			}
		}
	})
}
