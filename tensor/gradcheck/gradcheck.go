package gradcheck

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// Tolerances used by Check, as the project requires: float64 gradients
// within 1e-6 of finite differences, float32 forwards within 1e-4 of
// float64 ones. Float32 gradients are held to 1e-3, as their rounding is
// larger.
const (
	GradTol      = 1e-6
	Forward32Tol = 1e-4
	Grad32Tol    = 1e-3
	step         = 1e-6
)

// TB is the part of testing.TB that Check uses.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Func computes an output from the inputs with tensor ops.
type Func func(in []*tensor.Tensor) *tensor.Tensor

// Check runs f on float64 inputs and compares the gradient that Backward
// gives each input marked RequiresGrad with central differences of
// L = sum(f(x) * R) for a fixed random R, normwise: max|analytic - numeric|
// / max|numeric| must stay under GradTol. It then reruns f in float32 (Int32
// inputs pass unchanged) and compares the output and gradients with the
// float64 ones. Failures are reported through t with name; the returned
// error is the first failure, or nil.
func Check(t TB, name string, f Func, inputs ...*tensor.Tensor) error {
	t.Helper()
	err := check(f, inputs)
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
	return err
}

func check(f Func, inputs []*tensor.Tensor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	be := inputs[0].Backend()
	host := make([][]float64, len(inputs))
	for i, in := range inputs {
		if in.DType() == tensor.Float64 {
			host[i] = in.Float64s()
			in.ZeroGrad()
		}
	}
	out := f(inputs)
	shape := append([]int(nil), out.Shape()...)
	rng := tensor.NewRNG(7)
	r := make([]float64, out.Len())
	for i := range r {
		r[i] = rng.Float64()*2 - 1
	}
	out64 := out.Float64s()
	out.BackwardWith(tensor.From(be, tensor.Float64, r, shape...))

	loss := func(xs []*tensor.Tensor) float64 {
		var l float64
		tensor.NoGrad(func() {
			o := f(xs)
			for i, v := range o.Float64s() {
				l += v * r[i]
			}
		})
		return l
	}
	for i, in := range inputs {
		if !in.RequiresGrad() {
			continue
		}
		if in.Grad() == nil {
			return fmt.Errorf("input %d: no gradient reached it", i)
		}
		analytic := in.Grad().Float64s()
		numeric := make([]float64, len(host[i]))
		xs := append([]*tensor.Tensor(nil), inputs...)
		vals := append([]float64(nil), host[i]...)
		for j := range vals {
			v := vals[j]
			vals[j] = v + step
			xs[i] = tensor.From(be, tensor.Float64, vals, in.Shape()...)
			lp := loss(xs)
			vals[j] = v - step
			xs[i] = tensor.From(be, tensor.Float64, vals, in.Shape()...)
			lm := loss(xs)
			vals[j] = v
			numeric[j] = (lp - lm) / (2 * step)
		}
		if e := relErr(analytic, numeric); !(e <= GradTol) {
			k := worst(analytic, numeric)
			return fmt.Errorf("input %d %v: gradient relative error %.3g > %g (element %d: analytic %.9g, numeric %.9g)",
				i, in.Shape(), e, GradTol, k, analytic[k], numeric[k])
		}
	}

	// The float32 path: same inputs rounded to float32.
	xs := make([]*tensor.Tensor, len(inputs))
	for i, in := range inputs {
		if in.DType() != tensor.Float64 {
			xs[i] = in
			continue
		}
		xs[i] = tensor.From(be, tensor.Float32, host[i], in.Shape()...).SetRequiresGrad(in.RequiresGrad())
	}
	o32 := f(xs)
	if e := relErr(o32.Float64s(), out64); !(e <= Forward32Tol) {
		k := worst(o32.Float64s(), out64)
		return fmt.Errorf("float32 forward relative error %.3g > %g (element %d: f32 %.9g, f64 %.9g)", e, Forward32Tol, k, o32.Float64s()[k], out64[k])
	}
	if !o32.RequiresGrad() {
		return nil
	}
	o32.BackwardWith(tensor.From(be, tensor.Float32, r, shape...))
	for i, in := range inputs {
		if !in.RequiresGrad() {
			continue
		}
		g32, g64 := xs[i].Grad().Float64s(), in.Grad().Float64s()
		if e := relErr(g32, g64); !(e <= Grad32Tol) {
			k := worst(g32, g64)
			return fmt.Errorf("input %d: float32 gradient relative error %.3g > %g (element %d: f32 %.9g, f64 %.9g)", i, e, Grad32Tol, k, g32[k], g64[k])
		}
	}
	return nil
}

// relErr returns max|a-b| / max|b| (0 when both are zero).
func relErr(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i := range a {
		diff = max(diff, math.Abs(a[i]-b[i]))
		scale = max(scale, math.Abs(b[i]))
		if math.IsNaN(a[i]) || math.IsNaN(b[i]) {
			return math.NaN()
		}
	}
	if diff == 0 {
		return 0
	}
	return diff / max(scale, 1e-300)
}

func worst(a, b []float64) int {
	k, d := 0, -1.0
	for i := range a {
		if e := math.Abs(a[i] - b[i]); e > d || math.IsNaN(e) {
			k, d = i, e
			if math.IsNaN(e) {
				break
			}
		}
	}
	return k
}
