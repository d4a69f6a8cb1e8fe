package checkpoint

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// Checkpoint is the state of a training run at one step. The package
// stores the opaque fields as they are; their producers give them meaning.
type Checkpoint struct {
	// Arch names the model architecture, such as "llama".
	Arch string
	// Config is the architecture's configuration as the model package
	// serialises it (JSON by convention).
	Config []byte
	// Tokenizer refers to the tokenizer the model uses: a path, a name or
	// a content hash.
	Tokenizer string
	// Step is the training step the checkpoint was taken after.
	Step int64
	// Tensors holds the model weights by name, in the order the model
	// lists them; names are unique.
	Tensors []NamedTensor
	// Optimizer holds the optimizer's state; its zero value means none.
	Optimizer OptimizerState
	// RNG is the training loop's random state, for example from
	// (*rand.PCG).MarshalBinary.
	RNG []byte
	// Cursor is the data position to resume from, as JSON of a
	// data.Cursor by convention.
	Cursor []byte
	// Recipe is a snapshot of the run's recipe, so a resumed run can check
	// it is continuing the same one.
	Recipe []byte
	// Metadata holds free-form notes: versions, hosts, losses, dates.
	Metadata map[string]string
}

// OptimizerState is an optimizer's state as named tensors and scalars, so
// that any optimizer can be checkpointed without this package knowing it.
type OptimizerState struct {
	// Name identifies the optimizer, such as "adamw", so a loader can
	// refuse another optimizer's state.
	Name string
	// Step is the optimizer's update count, on which AdamW's bias
	// correction depends; it differs from Checkpoint.Step when, say, the
	// optimizer was started afresh for fine-tuning.
	Step int64
	// Scalars holds any other scalar state by name.
	Scalars map[string]float64
	// Tensors holds the state tensors by name, unique within the list, by
	// convention "<optimizer>.<slot>/<parameter>" such as
	// "adamw.m/blk.0.attn_q.weight".
	Tensors []NamedTensor
}

// NamedTensor is a tensor's name, dtype, shape and data as raw
// little-endian bytes in row-major order. Its Data must hold exactly the
// dtype's size times the product of Shape bytes; a scalar has an empty
// Shape and one element.
type NamedTensor struct {
	Name  string
	DType tensor.DType
	Shape []int
	Data  []byte
}

// Find returns the tensor named name in ts and whether there is one.
func Find(ts []NamedTensor, name string) (NamedTensor, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return NamedTensor{}, false
}

// check returns an error when the tensor's dtype is unknown, its shape is
// invalid or its data has the wrong length.
func (nt NamedTensor) check() error {
	size, err := dataSize(nt.DType, nt.Shape)
	if err != nil {
		return err
	}
	if int64(len(nt.Data)) != size {
		return fmt.Errorf("%d bytes of data, but %s %v needs %d", len(nt.Data), nt.DType, nt.Shape, size)
	}
	return nil
}

// validate returns an error describing the first thing in c that Save
// cannot write faithfully or Load would reject.
func validate(c *Checkpoint) error {
	if c == nil {
		return fmt.Errorf("nil checkpoint")
	}
	if err := checkTensors("tensor", c.Tensors); err != nil {
		return err
	}
	if err := checkTensors("optimizer tensor", c.Optimizer.Tensors); err != nil {
		return err
	}
	// MessagePack lengths are 32-bit; a longer string or blob would be
	// written with a wrapped length.
	for what, n := range map[string]int{
		"arch": len(c.Arch), "config": len(c.Config), "tokenizer": len(c.Tokenizer),
		"optimizer name": len(c.Optimizer.Name), "rng": len(c.RNG), "cursor": len(c.Cursor), "recipe": len(c.Recipe),
	} {
		if int64(n) > math.MaxUint32 {
			return fmt.Errorf("%s is %d bytes, over the 4 GiB limit", what, n)
		}
	}
	for k, v := range c.Metadata {
		if int64(len(k)) > math.MaxUint32 || int64(len(v)) > math.MaxUint32 {
			return fmt.Errorf("metadata %.40q is over the 4 GiB limit", k)
		}
	}
	for k := range c.Optimizer.Scalars {
		if int64(len(k)) > math.MaxUint32 {
			return fmt.Errorf("optimizer scalar %.40q has a name over the 4 GiB limit", k)
		}
	}
	return nil
}

// checkTensors returns an error when a tensor of ts is invalid, unnamed or
// shares its name with another.
func checkTensors(what string, ts []NamedTensor) error {
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		if t.Name == "" {
			return fmt.Errorf("%s %d has no name", what, i)
		}
		if int64(len(t.Name)) > math.MaxUint32 {
			return fmt.Errorf("%s %d has a name over the 4 GiB limit", what, i)
		}
		if seen[t.Name] {
			return fmt.Errorf("%s name %q appears twice", what, t.Name)
		}
		seen[t.Name] = true
		if err := t.check(); err != nil {
			return fmt.Errorf("%s %q: %w", what, t.Name, err)
		}
	}
	return nil
}
