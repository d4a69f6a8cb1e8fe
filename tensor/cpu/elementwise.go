package cpu

import (
	"math"

	"github.com/minnowml/minnow/tensor/cpu/internal/vec"

	"github.com/minnowml/minnow/tensor"
)

type float interface{ ~float32 | ~float64 }

// Binary computes an element-wise op with broadcasting.
func (b *Backend) Binary(a *tensor.BinaryArgs) error {
	out := make([]int, len(a.Shape))
	s := 1
	for i := len(a.Shape) - 1; i >= 0; i-- {
		out[i] = s
		s *= a.Shape[i]
	}
	l := newLayout(a.Shape, out, a.AStrides, a.BStrides)
	switch dt := st(a.Out).dt; dt {
	case tensor.Float32:
		binaryRows(b, &l, a.Op, f32(a.Out), f32(a.A), f32(a.B))
	case tensor.Float64:
		binaryRows(b, &l, a.Op, f64(a.Out), f64(a.A), f64(a.B))
	default:
		return unsupported("binary", dt)
	}
	return nil
}

func binaryRows[T float](b *Backend, l *layout, op tensor.BinaryOp, out, x, y []T) {
	rows, n := l.rows()
	in := l.inner()
	b.parallel(rows, n, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := l.offsets(r)
			binaryRow(op, n, out[o[0]:], x[o[1]:], in[1], y[o[2]:], in[2])
		}
	})
}

// binaryRow handles the common stride patterns (contiguous, and one side
// broadcast) with simple loops the compiler keeps tight.
func binaryRow[T float](op tensor.BinaryOp, n int, out, x []T, sx int, y []T, sy int) {
	out = out[:n]
	switch {
	case sx == 1 && sy == 1:
		x, y = x[:n], y[:n]
		switch op {
		case tensor.Add:
			for i := range out {
				out[i] = x[i] + y[i]
			}
		case tensor.Sub:
			for i := range out {
				out[i] = x[i] - y[i]
			}
		case tensor.Mul:
			for i := range out {
				out[i] = x[i] * y[i]
			}
		case tensor.Div:
			for i := range out {
				out[i] = x[i] / y[i]
			}
		}
	case sx == 1 && sy == 0:
		x, v := x[:n], y[0]
		switch op {
		case tensor.Add:
			for i := range out {
				out[i] = x[i] + v
			}
		case tensor.Sub:
			for i := range out {
				out[i] = x[i] - v
			}
		case tensor.Mul:
			for i := range out {
				out[i] = x[i] * v
			}
		case tensor.Div:
			for i := range out {
				out[i] = x[i] / v
			}
		}
	default:
		for i := range out {
			u, v := x[i*sx], y[i*sy]
			switch op {
			case tensor.Add:
				out[i] = u + v
			case tensor.Sub:
				out[i] = u - v
			case tensor.Mul:
				out[i] = u * v
			case tensor.Div:
				out[i] = u / v
			}
		}
	}
}

// Unary computes an element-wise function; X and Y may be the same.
func (b *Backend) Unary(a *tensor.UnaryArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		unaryRun(b, a, f32(a.X)[:a.N], f32(a.Y)[:a.N])
	case tensor.Float64:
		unaryRun(b, a, f64(a.X)[:a.N], f64(a.Y)[:a.N])
	default:
		return unsupported("unary", dt)
	}
	return nil
}

func unaryRun[T float](b *Backend, a *tensor.UnaryArgs, x, y []T) {
	alpha := a.Alpha
	cost := 1
	if a.Op >= tensor.Exp {
		cost = 8
	}
	b.parallel(a.N, cost, func(lo, hi int) {
		x, y := x[lo:hi], y[lo:hi]
		if xf, ok := asF32(x); ok && (a.Op == tensor.GELU || a.Op == tensor.Exp) {
			yf, _ := asF32(y)
			if a.Op == tensor.GELU {
				vec.GELU(yf, xf)
			} else {
				vec.ExpScale(yf, xf, 0, 1)
			}
			return
		}
		switch a.Op {
		case tensor.Neg:
			for i := range y {
				y[i] = -x[i]
			}
		case tensor.Scale:
			s := T(alpha)
			for i := range y {
				y[i] = s * x[i]
			}
		case tensor.AddScalar:
			s := T(alpha)
			for i := range y {
				y[i] = x[i] + s
			}
		case tensor.Square:
			for i := range y {
				y[i] = x[i] * x[i]
			}
		default:
			f := unaryFunc(a.Op, alpha)
			for i := range y {
				y[i] = T(f(float64(x[i])))
			}
		}
	})
}

func unaryFunc(op tensor.UnaryOp, alpha float64) func(float64) float64 {
	switch op {
	case tensor.Exp:
		return math.Exp
	case tensor.Log:
		return math.Log
	case tensor.Sqrt:
		return math.Sqrt
	case tensor.Rsqrt:
		return func(x float64) float64 { return 1 / math.Sqrt(x) }
	case tensor.Pow:
		return func(x float64) float64 { return math.Pow(x, alpha) }
	case tensor.Tanh:
		return tanh
	case tensor.Sigmoid:
		return sigmoid
	case tensor.ReLU:
		return func(x float64) float64 { return max(x, 0) }
	case tensor.SiLU:
		return func(x float64) float64 { return x * sigmoid(x) }
	case tensor.GELU:
		return gelu
	}
	panic("cpu: unknown unary op")
}

// UnaryGrad computes DX = DY * f'(X), or adds it with Accumulate.
func (b *Backend) UnaryGrad(a *tensor.UnaryArgs) error {
	switch dt := st(a.X).dt; dt {
	case tensor.Float32:
		unaryGradRun(b, a, f32(a.X)[:a.N], f32(a.Y)[:a.N], f32(a.DY)[:a.N], f32(a.DX)[:a.N])
	case tensor.Float64:
		unaryGradRun(b, a, f64(a.X)[:a.N], f64(a.Y)[:a.N], f64(a.DY)[:a.N], f64(a.DX)[:a.N])
	default:
		return unsupported("unary grad", dt)
	}
	return nil
}

func unaryGradRun[T float](b *Backend, a *tensor.UnaryArgs, x, y, dy, dx []T) {
	d := derivative(a.Op, a.Alpha)
	b.parallel(a.N, 8, func(lo, hi int) {
		if xf, ok := asF32(x[lo:hi]); ok && a.Op == tensor.GELU && !a.Accumulate {
			dxf, _ := asF32(dx[lo:hi])
			dyf, _ := asF32(dy[lo:hi])
			vec.GELUGrad(dxf, xf, dyf)
			return
		}
		for i := lo; i < hi; i++ {
			g := T(float64(dy[i]) * d(float64(x[i]), float64(y[i])))
			if a.Accumulate {
				dx[i] += g
			} else {
				dx[i] = g
			}
		}
	})
}

// derivative returns f'(x) given x and y = f(x).
func derivative(op tensor.UnaryOp, alpha float64) func(x, y float64) float64 {
	switch op {
	case tensor.Neg:
		return func(x, y float64) float64 { return -1 }
	case tensor.Scale:
		return func(x, y float64) float64 { return alpha }
	case tensor.AddScalar:
		return func(x, y float64) float64 { return 1 }
	case tensor.Exp:
		return func(x, y float64) float64 { return y }
	case tensor.Log:
		return func(x, y float64) float64 { return 1 / x }
	case tensor.Sqrt:
		return func(x, y float64) float64 { return 0.5 / y }
	case tensor.Rsqrt: // d/dx x^-1/2 = -x^-3/2 / 2 = -y³/2
		return func(x, y float64) float64 { return -0.5 * y * y * y }
	case tensor.Square:
		return func(x, y float64) float64 { return 2 * x }
	case tensor.Pow:
		return func(x, y float64) float64 { return alpha * math.Pow(x, alpha-1) }
	case tensor.Tanh:
		return func(x, y float64) float64 { return 1 - y*y }
	case tensor.Sigmoid:
		return func(x, y float64) float64 { return y * (1 - y) }
	case tensor.ReLU:
		return func(x, y float64) float64 {
			if x > 0 {
				return 1
			}
			return 0
		}
	case tensor.SiLU:
		return func(x, y float64) float64 {
			s := sigmoid(x)
			return s * (1 + x*(1-s))
		}
	case tensor.GELU:
		return func(x, y float64) float64 { return geluGrad(x) }
	}
	panic("cpu: unknown unary op")
}
