package lora

import (
	"errors"
	"fmt"
	"math"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
)

// Layer is the adapter of one linear layer: the pair A, B and its scale.
type Layer struct {
	// Name is the adapted layer's name, as model.Linears gives it
	// ("blk.0.attn_q").
	Name string
	// Kind is the adapted layer's kind ("attn_q").
	Kind string
	// Linear is the adapted layer; its Adapter field points at this Layer.
	Linear *nn.Linear
	// A is [r, in] and B is [out, r]; both require grad.
	A, B *tensor.Tensor
	// R is the rank, Alpha the configured alpha and Scale the factor
	// applied to B·A: Alpha/R, or Alpha/√R with rsLoRA.
	R     int
	Alpha float64
	Scale float64

	ad *Adapter
}

// Delta returns s·dropout(x)·Aᵀ·Bᵀ, or nil while the adapter is switched
// off or merged into the weight; see nn.Adapter. Dropout applies only
// while gradients are recorded, so evaluation and generation see the
// whole adapter.
func (l *Layer) Delta(x *tensor.Tensor) *tensor.Tensor {
	a := l.ad
	if !a.enabled || a.merged {
		return nil
	}
	if a.cfg.Dropout > 0 && tensor.GradEnabled() {
		a.draws++
		x = x.Dropout(a.cfg.Dropout, mix(a.cfg.Seed^mix(a.draws)))
	}
	// Scaling the narrow [.., r] intermediate costs r/out of scaling the
	// output.
	return x.MatMul(l.A.Transpose(0, 1)).Scale(l.Scale).MatMul(l.B.Transpose(0, 1))
}

// delta returns s·B·A [out, in], the change Merge adds to the weight.
func (l *Layer) delta() *tensor.Tensor {
	return l.B.MatMul(l.A).Scale(l.Scale)
}

// Adapter is a set of LoRA layers attached to one model.
type Adapter struct {
	cfg     Config
	layers  []*Layer
	enabled bool
	merged  bool
	// draws counts dropout masks, so each call gets a fresh one.
	draws uint64
}

// Apply freezes every parameter of m and attaches a LoRA adapter to each
// linear layer that cfg selects, with A initialised as cfg.Init says and B
// zero, so the model's output is unchanged until training moves B. It
// returns an error when cfg is invalid, a target or override matches no
// layer, a layer already has an adapter, or a weight is not f32 or f64 (a
// trainable adapter needs a compute dtype).
func Apply(m model.Model, cfg Config) (*Adapter, error) {
	specs, err := cfg.resolve(model.Linears(m))
	if err != nil {
		return nil, err
	}
	return attach(m, cfg, specs, true)
}

// attach builds the adapter of specs on m, initialised from cfg when init
// is set and left at zero otherwise (for a loader to fill in).
func attach(m model.Model, cfg Config, specs []layerSpec, init bool) (*Adapter, error) {
	if len(specs) == 0 {
		return nil, errors.New("lora: no layer to adapt")
	}
	byName := map[string]model.NamedLinear{}
	for _, l := range model.Linears(m) {
		byName[l.Name] = l
	}
	for _, s := range specs {
		l, ok := byName[s.Name]
		switch {
		case !ok:
			return nil, fmt.Errorf("lora: the model has no linear layer %q", s.Name)
		case l.Layer.Adapter != nil:
			return nil, fmt.Errorf("lora: layer %s already has an adapter", s.Name)
		case !l.Layer.Weight.DType().IsCompute():
			return nil, fmt.Errorf("lora: layer %s holds %s weights; adapters train in f32 or f64", s.Name, l.Layer.Weight.DType())
		case s.R <= 0 || !(s.Alpha > 0):
			return nil, fmt.Errorf("lora: layer %s: rank %d and alpha %g must be positive", s.Name, s.R, s.Alpha)
		}
	}
	Freeze(m)
	ad := &Adapter{cfg: cfg, enabled: true}
	rng := tensor.NewRNG(cfg.Seed)
	for _, s := range specs {
		nl := byName[s.Name]
		w := nl.Layer.Weight
		be, dt, out, in := w.Backend(), w.DType(), w.Dim(0), w.Dim(1)
		var a *tensor.Tensor
		switch {
		case !init:
			a = tensor.Full(be, dt, 0, s.R, in)
		case cfg.Init == "gaussian":
			a = tensor.Randn(be, dt, rng, 1/float64(s.R), s.R, in)
		default:
			// torch's kaiming_uniform_ with a = √5, PEFT's choice: the
			// bound is gain·√(3/fan_in) with gain √(2/(1+5)), so 1/√in.
			bound := 1 / math.Sqrt(float64(in))
			a = tensor.Uniform(be, dt, rng, -bound, bound, s.R, in)
		}
		l := &Layer{Name: s.Name, Kind: nl.Kind, Linear: nl.Layer, R: s.R, Alpha: s.Alpha,
			Scale: scale(s.Alpha, s.R, cfg.RSLoRA), ad: ad,
			A: a.SetRequiresGrad(true), B: tensor.Full(be, dt, 0, out, s.R).SetRequiresGrad(true)}
		nl.Layer.Adapter = l
		ad.layers = append(ad.layers, l)
	}
	return ad, nil
}

func scale(alpha float64, r int, rs bool) float64 {
	if rs {
		return alpha / math.Sqrt(float64(r))
	}
	return alpha / float64(r)
}

// Freeze makes every parameter of m stop requiring grad, so that Backward
// gives them no gradient buffers and an optimizer cannot take them.
func Freeze(m model.Model) {
	for _, p := range m.Params() {
		p.Tensor.SetRequiresGrad(false)
		p.Tensor.ZeroGrad()
	}
}

// Config returns the configuration the adapter was built from.
func (a *Adapter) Config() Config { return a.cfg }

// Layers returns the adapted layers in the model's order; callers must
// not modify the slice.
func (a *Adapter) Layers() []*Layer { return a.layers }

// Params returns the adapter's trainable tensors with names that extend
// the adapted weight's GGUF name as llama.cpp's LoRA adapters do
// ("blk.0.attn_q.weight.lora_a" and ".lora_b"), in a fixed order: what the
// optimizer takes (model.Tensors) and checkpoints name
// (train.LoopConfig.Weights).
func (a *Adapter) Params() []model.NamedParam {
	ps := make([]model.NamedParam, 0, 2*len(a.layers))
	for _, l := range a.layers {
		ps = append(ps,
			model.NamedParam{Name: l.Name + ".weight.lora_a", Tensor: l.A, Slot: &l.A},
			model.NamedParam{Name: l.Name + ".weight.lora_b", Tensor: l.B, Slot: &l.B})
	}
	return ps
}

// NumParams returns the number of trainable values in the adapter.
func (a *Adapter) NumParams() int {
	n := 0
	for _, l := range a.layers {
		n += l.A.Len() + l.B.Len()
	}
	return n
}

// Enabled reports whether the adapter acts on the forward pass.
func (a *Adapter) Enabled() bool { return a.enabled }

// SetEnabled switches the adapter on or off: off, the model computes
// exactly the frozen base model, the reference policy of RL and DPO. It
// returns an error while the adapter is merged, since the weights then
// hold it whatever the switch says.
func (a *Adapter) SetEnabled(on bool) error {
	if a.merged {
		return errors.New("lora: the adapter is merged into the weights; unmerge it before switching it")
	}
	a.enabled = on
	return nil
}

// Merged reports whether the adapter is folded into the weights.
func (a *Adapter) Merged() bool { return a.merged }

// Merge adds s·B·A to each adapted weight, so inference runs at the base
// model's cost, and stops the adapter's own forward term. Training a
// merged adapter would not reach A and B: unmerge first. It returns an
// error when the adapter is already merged or switched off, or an op
// fails.
func (a *Adapter) Merge() error {
	if a.merged || !a.enabled {
		return fmt.Errorf("lora: merge: the adapter is %s", map[bool]string{true: "already merged", false: "switched off"}[a.merged])
	}
	if err := a.fold(1); err != nil {
		return fmt.Errorf("lora: merge: %w", err)
	}
	a.merged = true
	return nil
}

// Unmerge subtracts s·B·A from each adapted weight again, restoring the
// base weights up to floating-point rounding, and restarts the adapter's
// forward term. It returns an error when the adapter is not merged or an
// op fails.
func (a *Adapter) Unmerge() error {
	if !a.merged {
		return errors.New("lora: unmerge: the adapter is not merged")
	}
	if err := a.fold(-1); err != nil {
		return fmt.Errorf("lora: unmerge: %w", err)
	}
	a.merged = false
	return nil
}

// fold adds sign·s·B·A to every adapted weight in place.
func (a *Adapter) fold(sign float64) error {
	return tensor.Catch(func() {
		tensor.NoGrad(func() {
			for _, l := range a.layers {
				w := l.Linear.Weight
				d := l.delta()
				// Bf16 or f16 weights are updated in the adapter's dtype and
				// rounded back by CopyFrom.
				wc := w.Cast(d.DType())
				sd := d.Scale(sign)
				sum := wc.Add(sd)
				w.CopyFrom(sum)
				for _, t := range []*tensor.Tensor{d, sd, wc, sum} {
					if t != w {
						t.Release()
					}
				}
			}
		})
	})
}

// Remove detaches the adapter from the model's layers; a merged adapter's
// change stays in the weights (PEFT's merge_and_unload). The base
// parameters stay frozen.
func (a *Adapter) Remove() {
	for _, l := range a.layers {
		if l.Linear.Adapter == l {
			l.Linear.Adapter = nil
		}
	}
}

// mix is splitmix64's finaliser, spreading consecutive counters over
// unrelated dropout seeds.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Export returns the adapter as llama.cpp applies one, ready for
// convert.ExportLoRAGGUF: a single alpha and per weight A and B, scaled
// by alpha/r with r each A's rank. Layers whose own scale differs from
// that (rsLoRA, alpha overrides) get B multiplied by the ratio, in a
// fresh tensor; the others share the adapter's B. The caller must not
// modify the tensors. It returns an error when an op fails.
func (a *Adapter) Export() (alpha float64, ts []convert.LoRATensorPair, err error) {
	alpha = a.cfg.Alpha
	if alpha == 0 {
		alpha = float64(a.cfg.R)
	}
	err = tensor.Catch(func() {
		tensor.NoGrad(func() {
			for _, l := range a.layers {
				b := l.B
				if f := l.Scale / (alpha / float64(l.R)); math.Abs(f-1) > 1e-12 {
					b = l.B.Scale(f)
				}
				ts = append(ts, convert.LoRATensorPair{Name: l.Name + ".weight", A: l.A, B: b})
			}
		})
	})
	return alpha, ts, err
}
