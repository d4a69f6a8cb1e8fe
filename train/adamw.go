package train

import (
	"fmt"
	"math"
	"slices"

	"github.com/minnowml/minnow/tensor"
)

// AdamWConfig holds AdamW's hyper-parameters; the zero value of a field
// means its default (Beta1 0.9, Beta2 0.95, Eps 1e-8). LR is the base
// learning rate that a schedule multiplies.
type AdamWConfig struct {
	LR          float64 `json:"lr" yaml:"lr"`
	Beta1       float64 `json:"beta1" yaml:"beta1"`
	Beta2       float64 `json:"beta2" yaml:"beta2"`
	Eps         float64 `json:"eps" yaml:"eps"`
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
}

func (c AdamWConfig) withDefaults() AdamWConfig {
	if c.Beta1 == 0 {
		c.Beta1 = 0.9
	}
	if c.Beta2 == 0 {
		c.Beta2 = 0.95
	}
	if c.Eps == 0 {
		c.Eps = 1e-8
	}
	return c
}

// ParamGroup is a set of parameters sharing a weight decay: by convention
// matrices decay and norms, biases and embeddings do not.
type ParamGroup struct {
	Params []*tensor.Tensor
	// NoDecay turns weight decay off for the group.
	NoDecay bool
}

type slot struct {
	p, m, v *tensor.Tensor
	decay   bool
}

// AdamW is the Adam optimizer with decoupled weight decay (Loshchilov &
// Hutter), run as one fused kernel per parameter on the parameter's backend.
type AdamW struct {
	Config AdamWConfig
	slots  []slot
	step   int
}

// NewAdamW returns an optimizer over the groups' parameters, with zeroed
// moment buffers of each parameter's dtype on its backend. It returns an
// error when a parameter does not require grad or is not a float32 or
// float64 tensor.
func NewAdamW(cfg AdamWConfig, groups ...ParamGroup) (*AdamW, error) {
	o := &AdamW{Config: cfg.withDefaults()}
	for gi, g := range groups {
		for pi, p := range g.Params {
			if !p.RequiresGrad() {
				return nil, fmt.Errorf("adamw: group %d parameter %d %v does not require grad", gi, pi, p.Shape())
			}
			if !p.IsContiguous() || !p.DType().IsCompute() {
				return nil, fmt.Errorf("adamw: group %d parameter %d must be a contiguous f32/f64 tensor, got %s %v", gi, pi, p.DType(), p.Shape())
			}
			z := func() *tensor.Tensor { return tensor.Full(p.Backend(), p.DType(), 0, p.Shape()...) }
			o.slots = append(o.slots, slot{p: p, m: z(), v: z(), decay: !g.NoDecay})
		}
	}
	return o, nil
}

// StepCount returns how many updates have been applied.
func (o *AdamW) StepCount() int { return o.step }

// Step applies one update at learning rate lr to every parameter that has
// a gradient, scaling gradients by gradScale first (1/accumulation steps,
// times a clipping factor), then releases the gradients for the next step.
// It returns an error from the backend, such as a missing kernel.
func (o *AdamW) Step(lr, gradScale float64) error {
	o.step++
	c := o.Config
	for _, s := range o.slots {
		g := s.p.Grad()
		if g == nil {
			continue
		}
		wd := 0.0
		if s.decay {
			wd = c.WeightDecay
		}
		if err := stepOne(s, g, lr, wd, gradScale, c, o.step); err != nil {
			return err
		}
		s.p.ZeroGrad()
	}
	return nil
}

func stepOne(s slot, g *tensor.Tensor, lr, wd, gradScale float64, c AdamWConfig, step int) error {
	return tensor.Catch(func() {
		tensor.AdamWUpdate(s.p, g, s.m, s.v, &tensor.AdamWArgs{
			LR: lr, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps,
			WeightDecay: wd, GradScale: gradScale, Step: step,
		})
	})
}

// GradNorm returns the global L2 norm of the gradients of params (those
// without a gradient count as zero), reading one scalar from the device.
func GradNorm(params []*tensor.Tensor) float64 {
	return math.Sqrt(tensor.SumSquares(grads(params)...))
}

func grads(params []*tensor.Tensor) []*tensor.Tensor {
	var gs []*tensor.Tensor
	for _, p := range params {
		if g := p.Grad(); g != nil {
			gs = append(gs, g)
		}
	}
	return gs
}

// ClipScale returns the factor that brings a gradient of global norm norm
// within maxNorm: 1 when it already is or when maxNorm is 0 (no clipping).
func ClipScale(norm, maxNorm float64) float64 {
	if maxNorm <= 0 || norm <= maxNorm || norm == 0 {
		return 1
	}
	return maxNorm / (norm + 1e-6)
}

// Params returns every parameter of the optimizer, in group order.
func (o *AdamW) Params() []*tensor.Tensor {
	ps := make([]*tensor.Tensor, len(o.slots))
	for i, s := range o.slots {
		ps[i] = s.p
	}
	return ps
}

// State returns the number of updates applied and each parameter's first
// and second moments, in Params order. They are the optimizer's own
// buffers, for saving in a checkpoint: read them, do not modify or release
// them.
func (o *AdamW) State() (step int, m, v []*tensor.Tensor) {
	m = make([]*tensor.Tensor, len(o.slots))
	v = make([]*tensor.Tensor, len(o.slots))
	for i, s := range o.slots {
		m[i], v[i] = s.m, s.v
	}
	return o.step, m, v
}

// SetState restores the update count and the moments (in Params order),
// copying their values into the optimizer's buffers, so that a resumed run
// continues exactly where the saved one stopped. It returns an error when
// the counts differ or a moment's shape or backend differs from its
// parameter's.
func (o *AdamW) SetState(step int, m, v []*tensor.Tensor) error {
	if step < 0 {
		return fmt.Errorf("adamw: negative step %d", step)
	}
	if len(m) != len(o.slots) || len(v) != len(o.slots) {
		return fmt.Errorf("adamw: state for %d and %d parameters, optimizer has %d", len(m), len(v), len(o.slots))
	}
	for i, s := range o.slots {
		for _, src := range []*tensor.Tensor{m[i], v[i]} {
			if !slices.Equal(src.Shape(), s.p.Shape()) || src.Backend() != s.p.Backend() {
				return fmt.Errorf("adamw: moment %d is %v on %s, parameter is %v on %s", i, src.Shape(), src.Backend().Name(), s.p.Shape(), s.p.Backend().Name())
			}
		}
	}
	for i, s := range o.slots {
		s.m.CopyFrom(m[i])
		s.v.CopyFrom(v[i])
	}
	o.step = step
	return nil
}
