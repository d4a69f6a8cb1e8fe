package vec

import "math"

// AdamW applies one AdamW step to float32 parameters p with gradients g and
// moments m and v (equal lengths), computing in float32: with g' =
// g*gradScale, m = b1*m + (1-b1)*g', v = b2*v + (1-b2)*g'², and
// p -= lr*(m*c1/(sqrt(v*c2)+eps) + wd*p), where c1 and c2 are the bias
// corrections 1/(1-b^step).
func AdamW(p, g, m, v []float32, lr, b1, b2, eps, wd, gradScale, c1, c2 float64) {
	k := [9]float32{float32(gradScale), float32(b1), float32(1 - b1), float32(b2), float32(1 - b2),
		float32(c2), float32(eps), float32(lr * c1), float32(lr * wd)}
	n := 0
	if hasSIMD && len(p) >= 8 {
		n = len(p) &^ 7
		adamwF32(&p[0], &g[0], &m[0], &v[0], n, &k)
	}
	for i := n; i < len(p); i++ {
		gi := g[i] * k[0]
		mi := k[1]*m[i] + k[2]*gi
		vi := k[3]*v[i] + k[4]*gi*gi
		m[i], v[i] = mi, vi
		p[i] -= k[7]*mi/(float32(math.Sqrt(float64(vi*k[5])))+k[6]) + k[8]*p[i]
	}
}
