package vec

// geluC is sqrt(2/pi), the scale inside GELU's tanh approximation.
const geluC = 0.7978845608028654

// GELU sets dst[i] to the tanh approximation of GELU of x[i]:
// 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x³))). dst may be x.
func GELU(dst, x []float32) {
	dst = dst[:len(x)]
	n := 0
	if hasSIMD && len(x) >= 8 {
		n = len(x) &^ 7
		geluF32(&dst[0], &x[0], n)
	}
	for i := n; i < len(x); i++ {
		v := x[i]
		p, _ := sigmoid2(geluC * (v + 0.044715*v*v*v))
		dst[i] = v * p
	}
}

// GELUGrad sets dx[i] = dy[i] * GELU'(x[i]).
func GELUGrad(dx, x, dy []float32) {
	dx, dy = dx[:len(x)], dy[:len(x)]
	n := 0
	if hasSIMD && len(x) >= 8 {
		n = len(x) &^ 7
		geluGradF32(&dx[0], &x[0], &dy[0], n)
	}
	for i := n; i < len(x); i++ {
		v := x[i]
		p, r := sigmoid2(geluC * (v + 0.044715*v*v*v))
		dx[i] = dy[i] * p * (1 + 2*v*r*geluC*(1+3*0.044715*v*v))
	}
}

// sigmoid2 returns p = sigmoid(2u) and r = 1-p as the SIMD lanes compute
// them: GELU needs 0.5(1+tanh u) = p and 1-tanh²u = 4pr, and these forms
// avoid the cancellation of 1-t² when tanh is near ±1.
func sigmoid2(u float32) (p, r float32) {
	e := expScalar(2 * u)
	r = 1 / (e + 1)
	return e * r, r
}

// SumSquares returns the sum of x[i]² accumulated in float64.
func SumSquares(x []float32) float64 {
	n := 0
	var s float64
	if hasSIMD && len(x) >= 8 {
		n = len(x) &^ 7
		s = sumSquaresF32(&x[0], n)
	}
	for _, v := range x[n:] {
		s += float64(v) * float64(v)
	}
	return s
}
