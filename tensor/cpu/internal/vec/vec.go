package vec

// Exp returns e^x for float32 arguments the way the SIMD kernels compute it
// (same clamping: below -87 is 0, above 88 is e^88), for tails and tests.
func Exp(x float32) float32 { return expScalar(x) }

// ExpSum returns the sum of e^(x[i]-shift) over x, accumulated in float64.
func ExpSum(x []float32, shift float32) float64 {
	n := 0
	var s float64
	if hasSIMD && len(x) >= 8 {
		n = len(x) &^ 7
		s = expSumF32(&x[0], n, shift)
	}
	for _, v := range x[n:] {
		s += float64(expScalar(v - shift))
	}
	return s
}

// ExpScale sets dst[i] = e^(x[i]-shift)*scale and returns the sum of the
// exponentials in float64; dst may be x and must be at least as long.
func ExpScale(dst, x []float32, shift, scale float32) float64 {
	dst = dst[:len(x)]
	n := 0
	var s float64
	if hasSIMD && len(x) >= 8 {
		n = len(x) &^ 7
		s = expScaleF32(&dst[0], &x[0], n, shift, scale)
	}
	for i := n; i < len(x); i++ {
		e := expScalar(x[i] - shift)
		s += float64(e)
		dst[i] = e * scale
	}
	return s
}

// expScalar mirrors the SIMD algorithm in float32, one element at a time.
func expScalar(x float32) float32 {
	if x != x {
		return x
	}
	if x < -87 {
		return 0
	}
	x = min(x, 88)
	const (
		log2e = 1.4426950408889634
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	n := roundEven(x * log2e)
	r := x - n*c1
	r -= n * c2
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * pow2(int32(n))
}
