package train

import (
	"math"
	"slices"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

var be = cpu.New(2)

// adamRef is AdamW written out for one scalar parameter.
func adamRef(p float64, grads []float64, lr, b1, b2, eps, wd, scale float64) float64 {
	var m, v float64
	for i, g := range grads {
		g *= scale
		m = b1*m + (1-b1)*g
		v = b2*v + (1-b2)*g*g
		mh := m / (1 - math.Pow(b1, float64(i+1)))
		vh := v / (1 - math.Pow(b2, float64(i+1)))
		p -= lr * (mh/(math.Sqrt(vh)+eps) + wd*p)
	}
	return p
}

func TestAdamWMatchesReference(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64} {
		for _, noDecay := range []bool{false, true} {
			w := tensor.From(be, dt, []float64{0.5, -1.5, 2}, 3).SetRequiresGrad(true)
			cfg := AdamWConfig{LR: 0.1, Beta1: 0.8, Beta2: 0.9, Eps: 1e-6, WeightDecay: 0.05}
			opt, err := NewAdamW(cfg, ParamGroup{Params: []*tensor.Tensor{w}, NoDecay: noDecay})
			if err != nil {
				t.Fatal(err)
			}
			gradSeq := [][]float64{{1, -2, 0.5}, {0.3, 0.1, -4}, {-1, 1, 1}}
			for _, g := range gradSeq {
				// loss = sum(w * g) has gradient g.
				w.Mul(tensor.From(be, dt, g, 3)).Sum().Backward()
				if err := opt.Step(0.1, 0.5); err != nil {
					t.Fatal(err)
				}
				if w.Grad() != nil {
					t.Fatal("Step must release the gradients")
				}
			}
			wd := 0.05
			if noDecay {
				wd = 0
			}
			got := w.Float64s()
			for i, p0 := range []float64{0.5, -1.5, 2} {
				want := adamRef(p0, []float64{gradSeq[0][i], gradSeq[1][i], gradSeq[2][i]}, 0.1, 0.8, 0.9, 1e-6, wd, 0.5)
				tol := 1e-12
				if dt == tensor.Float32 {
					tol = 1e-6
				}
				if math.Abs(got[i]-want) > tol {
					t.Errorf("%s noDecay=%v: param %d = %.9f, want %.9f", dt, noDecay, i, got[i], want)
				}
			}
			if opt.StepCount() != 3 {
				t.Errorf("StepCount %d, want 3", opt.StepCount())
			}
		}
	}
}

func TestAdamWRejectsFrozen(t *testing.T) {
	w := tensor.Zeros(3)
	if _, err := NewAdamW(AdamWConfig{LR: 1}, ParamGroup{Params: []*tensor.Tensor{w}}); err == nil {
		t.Fatal("a parameter without requires-grad must be an error")
	}
}

func TestGradNormAndClip(t *testing.T) {
	a := tensor.From(be, tensor.Float32, []float32{0, 0}, 2).SetRequiresGrad(true)
	b := tensor.From(be, tensor.Float32, []float32{0}, 1).SetRequiresGrad(true)
	c := tensor.From(be, tensor.Float32, []float32{0}, 1).SetRequiresGrad(true) // gets no gradient
	ga := tensor.From(be, tensor.Float32, []float32{3, 0}, 2)
	gb := tensor.From(be, tensor.Float32, []float32{4}, 1)
	a.Mul(ga).Sum().Add(b.Mul(gb).Sum()).Backward()
	if n := GradNorm([]*tensor.Tensor{a, b, c}); math.Abs(n-5) > 1e-6 {
		t.Fatalf("GradNorm = %v, want 5", n)
	}
	cases := []struct{ norm, max, want float64 }{
		{5, 0, 1}, {5, 10, 1}, {5, 1, 1 / (5 + 1e-6)}, {0, 1, 1},
	}
	for _, c := range cases {
		if got := ClipScale(c.norm, c.max); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("ClipScale(%v, %v) = %v, want %v", c.norm, c.max, got, c.want)
		}
	}
}

// TestAdamWStateResume: an optimizer restored from another's state takes
// exactly the same next step.
func TestAdamWStateResume(t *testing.T) {
	newRun := func() (*tensor.Tensor, *AdamW) {
		w := tensor.From(be, tensor.Float32, []float32{0.5, -1.5, 2}, 3).SetRequiresGrad(true)
		opt, err := NewAdamW(AdamWConfig{LR: 0.1, WeightDecay: 0.01}, ParamGroup{Params: []*tensor.Tensor{w}})
		if err != nil {
			t.Fatal(err)
		}
		return w, opt
	}
	step := func(w *tensor.Tensor, opt *AdamW, g []float32) {
		w.Mul(tensor.From(be, tensor.Float32, g, 3)).Sum().Backward()
		if err := opt.Step(0.1, 1); err != nil {
			t.Fatal(err)
		}
	}
	a, optA := newRun()
	step(a, optA, []float32{1, 2, 3})
	step(a, optA, []float32{-1, 0.5, 2})

	b, optB := newRun()
	b.CopyFrom(a)
	n, m, v := optA.State()
	if err := optB.SetState(n, m, v); err != nil {
		t.Fatal(err)
	}
	step(a, optA, []float32{0.3, -0.2, 1})
	step(b, optB, []float32{0.3, -0.2, 1})
	if !slices.Equal(a.Float32s(), b.Float32s()) {
		t.Fatalf("resumed parameters %v, uninterrupted %v", b.Float32s(), a.Float32s())
	}
	if err := optB.SetState(1, m[:0], v); err == nil {
		t.Fatal("a state for the wrong number of parameters must be an error")
	}
}
