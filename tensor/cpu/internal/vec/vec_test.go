package vec

import (
	"math"
	"testing"
)

// TestExpAccuracy checks the kernels against math.Exp over the range that
// softmax uses (shifted arguments are <= 0) and beyond, lane by lane and in
// every tail length.
func TestExpAccuracy(t *testing.T) {
	var x []float32
	for v := -100.0; v <= 88; v += 0.0137 {
		x = append(x, float32(v))
	}
	x = append(x, 0, -0, float32(math.Inf(-1)), -87.5, -86.9)
	dst := make([]float32, len(x))
	for _, n := range []int{len(x), len(x) - 1, 7, 8, 9, 15, 17} {
		sum := ExpScale(dst[:n], x[:n], 0, 1)
		var want float64
		for i, v := range x[:n] {
			ref := math.Exp(float64(v))
			if v < -87 {
				ref = 0
			}
			want += float64(dst[i])
			if rel := math.Abs(float64(dst[i])-ref) / math.Max(ref, 1e-37); rel > 4e-7 && ref > 0 {
				t.Fatalf("n=%d: exp(%g) = %g, want %g (rel %.2g)", n, v, dst[i], ref, rel)
			}
			if ref == 0 && dst[i] != 0 {
				t.Fatalf("exp(%g) = %g, want 0", v, dst[i])
			}
			// The scalar path rounds without fused multiply-adds, so it
			// may differ from the SIMD lanes in the last bit or two.
			if scalar := Exp(v); math.Abs(float64(scalar-dst[i])) > 3e-7*float64(dst[i]) && v <= 88 {
				t.Fatalf("scalar Exp(%g) = %g differs from SIMD %g", v, scalar, dst[i])
			}
		}
		if math.Abs(sum-want) > 1e-9*math.Abs(want) {
			t.Fatalf("n=%d: returned sum %g, elements add to %g", n, sum, want)
		}
		if got := ExpSum(x[:n], 0); math.Abs(got-sum) > 1e-12*math.Abs(sum) {
			t.Fatalf("n=%d: ExpSum %g != ExpScale's sum %g", n, got, sum)
		}
	}
}

func TestExpShiftScaleNaN(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	dst := make([]float32, len(x))
	ExpScale(dst, x, 9, 0.5)
	for i, v := range x {
		want := 0.5 * math.Exp(float64(v)-9)
		if math.Abs(float64(dst[i])-want) > 1e-6*want {
			t.Fatalf("shift/scale: got %g want %g", dst[i], want)
		}
	}
	x[3] = float32(math.NaN())
	if s := ExpSum(x, 0); !math.IsNaN(s) {
		t.Fatalf("a NaN input must make the sum NaN, got %g", s)
	}
}

func BenchmarkExpSum(b *testing.B) {
	x := make([]float32, 50257)
	for i := range x {
		x[i] = -float32(i%100) * 0.1
	}
	for b.Loop() {
		ExpSum(x, 0)
	}
	b.SetBytes(int64(4 * len(x)))
}

// TestAdamWMatchesFloat64 runs several steps through the kernel (SIMD lanes
// and the scalar tail) and through the formula in float64.
func TestAdamWMatchesFloat64(t *testing.T) {
	const n = 21
	p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	rp, rm, rv := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range p {
		p[i] = float32(i%7) - 3
		rp[i] = float64(p[i])
	}
	lr, b1, b2, eps, wd, gs := 0.01, 0.9, 0.95, 1e-8, 0.1, 0.5
	for step := 1; step <= 5; step++ {
		c1, c2 := 1/(1-math.Pow(b1, float64(step))), 1/(1-math.Pow(b2, float64(step)))
		for i := range g {
			g[i] = float32(math.Sin(float64(i*step))) * 2
		}
		AdamW(p, g, m, v, lr, b1, b2, eps, wd, gs, c1, c2)
		for i := range rp {
			gi := float64(g[i]) * gs
			rm[i] = b1*rm[i] + (1-b1)*gi
			rv[i] = b2*rv[i] + (1-b2)*gi*gi
			rp[i] -= lr * (rm[i]*c1/(math.Sqrt(rv[i]*c2)+eps) + wd*rp[i])
		}
	}
	for i := range p {
		if math.Abs(float64(p[i])-rp[i]) > 2e-6 || math.Abs(float64(m[i])-rm[i]) > 1e-6 {
			t.Fatalf("element %d: p %v m %v, want p %v m %v", i, p[i], m[i], rp[i], rm[i])
		}
	}
}

func TestGELUAndGrad(t *testing.T) {
	var x []float32
	for v := -12.0; v <= 12; v += 0.0731 {
		x = append(x, float32(v))
	}
	x = append(x, 0, 50, -50, 1e-4)
	y, dx, dy := make([]float32, len(x)), make([]float32, len(x)), make([]float32, len(x))
	for i := range dy {
		dy[i] = float32(i%5) - 1.5
	}
	GELU(y, x)
	GELUGrad(dx, x, dy)
	for i, v := range x {
		u := geluC * (float64(v) + 0.044715*float64(v)*float64(v)*float64(v))
		th := math.Tanh(u)
		want := 0.5 * float64(v) * (1 + th)
		wantG := float64(dy[i]) * (0.5*(1+th) + 0.5*float64(v)*(1-th*th)*geluC*(1+3*0.044715*float64(v)*float64(v)))
		if math.Abs(float64(y[i])-want) > 2e-6*math.Max(1, math.Abs(want)) {
			t.Fatalf("GELU(%g) = %g, want %g", v, y[i], want)
		}
		if math.Abs(float64(dx[i])-wantG) > 2e-6*math.Max(1, math.Abs(wantG)) {
			t.Fatalf("GELU'(%g)·%g = %g, want %g", v, dy[i], dx[i], wantG)
		}
	}
}

func TestSumSquares(t *testing.T) {
	for _, n := range []int{0, 3, 8, 19, 1000} {
		x := make([]float32, n)
		var want float64
		for i := range x {
			x[i] = float32(i%13) * 0.37
			want += float64(x[i]) * float64(x[i])
		}
		if got := SumSquares(x); math.Abs(got-want) > 1e-12*math.Max(1, want) {
			t.Fatalf("n=%d: %g, want %g", n, got, want)
		}
	}
}
