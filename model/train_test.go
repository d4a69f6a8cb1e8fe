package model

import (
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/train"
)

// trainTiny trains a tiny model from seed on a repeated sequence with
// AdamW and returns the loss of every step.
func trainTiny(t *testing.T, cfg Config, seed uint64, steps int) []float64 {
	t.Helper()
	m := build(t, cfg, tensor.Float32, seed)
	pattern := []int32{1, 7, 3, 9, 4, 2}
	const B, T = 2, 12
	ids, targets := make([]int32, B*T), make([]int32, B*T)
	for b := range B {
		for i := range T {
			// Row b starts b tokens into the cycle, so rows differ.
			ids[b*T+i] = pattern[(b+i)%len(pattern)]
			targets[b*T+i] = pattern[(b+i+1)%len(pattern)]
		}
	}
	x, y := idsOf(ids, B, T), idsOf(targets, B, T)
	decay, keep := DecaySplit(m.Params())
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2, WeightDecay: 0.01},
		train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		t.Fatal(err)
	}
	losses := make([]float64, steps)
	for s := range steps {
		loss := m.Loss(x, y)
		losses[s] = loss.Item()
		loss.Backward()
		if err := opt.Step(opt.Config.LR, 1); err != nil {
			t.Fatal(err)
		}
	}
	return losses
}

func memoCfg(modelType string) Config {
	c := Config{ModelType: modelType, VocabSize: 11, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 16}
	if modelType == "gpt2" {
		c.NumKeyValueHeads = 0
		c.IntermediateSize = 0
		c.TieWordEmbeddings = true
	}
	return c
}

// TestTrainingMemorises trains tiny models for a few dozen steps on a
// repeated sequence, which they must learn: the loss falls below a tenth
// of its start.
func TestTrainingMemorises(t *testing.T) {
	for _, mt := range []string{"llama", "qwen2", "gpt2"} {
		losses := trainTiny(t, memoCfg(mt), 1, 40)
		first, last := losses[0], losses[len(losses)-1]
		if !(last < 0.1*first) {
			t.Errorf("%s: loss went from %.4f to %.4f in %d steps, want below %.4f", mt, first, last, len(losses), 0.1*first)
		}
	}
}

// TestTrainingDeterministic checks that the same seed gives bit-identical
// losses and another seed different ones.
func TestTrainingDeterministic(t *testing.T) {
	cfg := memoCfg("llama")
	a, b, c := trainTiny(t, cfg, 5, 8), trainTiny(t, cfg, 5, 8), trainTiny(t, cfg, 6, 8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: losses %v and %v differ for one seed", i, a[i], b[i])
		}
	}
	if a[0] == c[0] {
		t.Errorf("seeds 5 and 6 gave the same initial loss %v", a[0])
	}
}

// TestStepReusesBuffers checks that after the first training step every
// step takes all its buffers from the backend's pool: the models build no
// per-step tensors (positions, frequencies) outside it.
func TestStepReusesBuffers(t *testing.T) {
	for _, mt := range []string{"llama", "gpt2"} {
		b := cpu.New(1)
		m, err := New(memoCfg(mt), b, tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		ids := tensor.From(b, tensor.Int32, make([]int32, 24), 2, 12)
		opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-3}, train.ParamGroup{Params: Tensors(m.Params())})
		if err != nil {
			t.Fatal(err)
		}
		for s := range 3 {
			before := b.MemoryStats().Allocs
			loss := m.Loss(ids, ids)
			loss.Backward()
			loss.Release()
			if err := opt.Step(1e-3, 1); err != nil {
				t.Fatal(err)
			}
			if n := b.MemoryStats().Allocs - before; s > 0 && n != 0 {
				t.Errorf("%s: step %d allocated %d new buffers", mt, s, n)
			}
		}
	}
}
