package cpu

import "math"

// The scalar activations below serve the float64 kernels (gradient checks
// and references) and the float32 ones that have no SIMD kernel; they use
// math.Exp, whose full precision the float64 checks depend on.

// sigmoid returns 1/(1+e^-x) without overflow.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// tanh returns the hyperbolic tangent.
func tanh(x float64) float64 { return math.Tanh(x) }

const geluC = 0.7978845608028654 // sqrt(2/pi)

// gelu and geluGrad use 0.5(1+tanh u) = sigmoid(2u) and
// 1-tanh²u = 4·sigmoid(2u)·sigmoid(-2u), which keep full precision where
// tanh is near ±1.
func gelu(x float64) float64 {
	return x * sigmoid(2*geluC*(x+0.044715*x*x*x))
}

func geluGrad(x float64) float64 {
	u := geluC * (x + 0.044715*x*x*x)
	p, r := sigmoid(2*u), sigmoid(-2*u)
	return p * (1 + 2*x*r*geluC*(1+3*0.044715*x*x))
}
