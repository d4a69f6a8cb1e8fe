package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// CheckpointArch is the Arch of a checkpoint file holding a LoRA adapter.
const CheckpointArch = "minnow.lora"

// savedAdapter is the Config field of an adapter checkpoint: the config
// and the layers it resolved to, so that loading needs no re-resolution
// and fails loudly when the model lacks a layer.
type savedAdapter struct {
	Config Config      `json:"config"`
	Layers []layerSpec `json:"layers"`
}

func (a *Adapter) specs() []layerSpec {
	out := make([]layerSpec, len(a.layers))
	for i, l := range a.layers {
		out[i] = layerSpec{Name: l.Name, R: l.R, Alpha: l.Alpha}
	}
	return out
}

// Save writes the adapter alone (its config, layers, A and B, no base
// weights) to path as a minnow checkpoint, with metadata as the
// checkpoint's free-form notes. It returns an error when a tensor cannot
// be read or the file cannot be written.
func (a *Adapter) Save(path string, metadata map[string]string) error {
	cfg, err := json.Marshal(savedAdapter{Config: a.cfg, Layers: a.specs()})
	if err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	ps := a.Params()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	var nts []checkpoint.NamedTensor
	if err := tensor.Catch(func() { nts, err = checkpoint.FromTensors("", names, model.Tensors(ps)) }); err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	if err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	c := &checkpoint.Checkpoint{Arch: CheckpointArch, Config: cfg, Tensors: nts, Metadata: metadata}
	if err := checkpoint.Save(path, c); err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	return nil
}

// Load reads an adapter that Save wrote and attaches it to m, freezing
// m's parameters as Apply does. It returns an error when the file is not
// an adapter checkpoint or is damaged, m lacks an adapted layer or a
// layer's shape differs, or a layer already has an adapter; on error no
// adapter stays attached.
func Load(path string, m model.Model) (*Adapter, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("lora: load: %w", err)
	}
	if c.Arch != CheckpointArch {
		return nil, fmt.Errorf("lora: load %s: a checkpoint of %q, not a LoRA adapter", path, c.Arch)
	}
	var s savedAdapter
	if err := json.Unmarshal(c.Config, &s); err != nil {
		return nil, fmt.Errorf("lora: load %s: config: %w", path, err)
	}
	ad, err := attach(m, s.Config, s.Layers, false)
	if err != nil {
		return nil, fmt.Errorf("lora: load %s: %w", path, err)
	}
	ps := ad.Params()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	ts, err := checkpoint.Tensors(ps[0].Tensor.Backend(), c.Tensors, "", names)
	if err == nil {
		err = fill(ps, ts)
	}
	if err != nil {
		ad.Remove()
		return nil, fmt.Errorf("lora: load %s: %w", path, err)
	}
	return ad, nil
}

// fill copies ts into the parameters ps, converting dtypes, and releases
// ts. It returns an error when a shape differs.
func fill(ps []model.NamedParam, ts []*tensor.Tensor) error {
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	if len(ts) != len(ps) {
		return errors.New("tensor count differs from the adapter's")
	}
	for i, p := range ps {
		if !slices.Equal(ts[i].Shape(), p.Tensor.Shape()) {
			return fmt.Errorf("tensor %s has shape %v, the model's layer needs %v", p.Name, ts[i].Shape(), p.Tensor.Shape())
		}
		if err := tensor.Catch(func() { p.Tensor.CopyFrom(ts[i]) }); err != nil {
			return fmt.Errorf("tensor %s: %w", p.Name, err)
		}
	}
	return nil
}
