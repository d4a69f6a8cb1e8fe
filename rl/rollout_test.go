package rl

import (
	"math"
	"slices"
	"testing"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// noop is a processor that changes nothing, to drive the decoder path.
type noop struct{ calls int }

func (n *noop) Process(int, []int32, []float32) { n.calls++ }

func equalIDs(a, b [][]int32) bool {
	return slices.EqualFunc(a, b, func(x, y []int32) bool { return slices.Equal(x, y) })
}

// TestRolloutSeededPerCompletion: a completion's sample depends only on
// (seed, step, prompt id, completion index), so a resumed run that batches
// prompts differently samples exactly what the uninterrupted run did, on
// both the model.Generate path and the processor path.
func TestRolloutSeededPerCompletion(t *testing.T) {
	m := tinyModel(t, 24, 5)
	pa, pb := []int32{1, 2, 3}, []int32{4, 5, 6}
	cfg := SamplingConfig{Seed: 9}
	for _, withProc := range []bool{false, true} {
		proc := func() LogitProcessor {
			if withProc {
				return &noop{}
			}
			return nil
		}
		full, err := Generate(m, nil, [][]int32{pa, pb}, []uint64{10, 11}, 5, 3, 8, cfg, proc())
		if err != nil {
			t.Fatal(err)
		}
		alone, err := Generate(m, nil, [][]int32{pb}, []uint64{11}, 5, 3, 8, cfg, proc())
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(full.Completions[3:], alone.Completions) {
			t.Errorf("proc=%v: prompt 11 sampled %v in a batch and %v alone", withProc, full.Completions[3:], alone.Completions)
		}
		if equalIDs(full.Completions[3:4], full.Completions[4:5]) && equalIDs(full.Completions[4:5], full.Completions[5:6]) {
			t.Errorf("proc=%v: the G completions of a prompt are identical: %v", withProc, full.Completions[3:])
		}
		later, _ := Generate(m, nil, [][]int32{pb}, []uint64{11}, 6, 3, 8, cfg, proc())
		if equalIDs(later.Completions, alone.Completions) {
			t.Errorf("proc=%v: steps 5 and 6 sampled the same completions", withProc)
		}
		for i, c := range full.Completions {
			if len(c) != 8 || !full.Truncated[i] {
				t.Errorf("proc=%v: completion %d has %d tokens, truncated %v (no stop tokens, so want 8, true)", withProc, i, len(c), full.Truncated[i])
			}
		}
	}
}

// TestDecoderMatchesGenerate: with a processor that changes nothing, the
// decoder samples the same tokens as model.Generate, which draws the same
// way when no filter runs.
func TestDecoderMatchesGenerate(t *testing.T) {
	m := tinyModel(t, 24, 6)
	prompts := [][]int32{{1, 2, 3, 4}, {7}, {9, 9}}
	ids := []uint64{0, 1, 2}
	cfg := SamplingConfig{Seed: 3, StopTokens: []int32{0}}
	a, err := Generate(m, nil, prompts, ids, 0, 2, 10, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &noop{}
	b, err := Generate(m, nil, prompts, ids, 0, 2, 10, cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(a.Completions, b.Completions) || !slices.Equal(a.Truncated, b.Truncated) {
		t.Errorf("generate %v %v\ndecoder  %v %v", a.Completions, a.Truncated, b.Completions, b.Truncated)
	}
	if p.calls == 0 {
		t.Error("the processor was never called")
	}
}

// TestRolloutLogProbsMatchForward: the sampling policy's log-probs equal
// what CompletionLogProbs computes over the same tokens, with prompts of
// different lengths, so that GRPO's ratio starts at 1.
func TestRolloutLogProbsMatchForward(t *testing.T) {
	m := tinyModel(t, 24, 7)
	prompts := [][]int32{{1, 2, 3, 4, 5}, {6}, {7, 8}}
	for _, proc := range []LogitProcessor{nil, &noop{}} {
		r, err := Generate(m, nil, prompts, []uint64{1, 2, 3}, 0, 2, 6, SamplingConfig{Seed: 1, StopTokens: []int32{0}}, proc)
		if err != nil {
			t.Fatal(err)
		}
		lp, err := CompletionLogProbs(m, r.Prompts, r.Completions, LogProbOptions{Entropy: true})
		if err != nil {
			t.Fatal(err)
		}
		vals := lp.Values.Float64s()
		for b, c := range r.Completions {
			for j := range c {
				got, want := vals[b*lp.T+j], float64(r.LogProbs[b][j])
				if math.Abs(got-want) > 1e-4 {
					t.Errorf("proc=%v: completion %d token %d: forward %v, sampling %v", proc != nil, b, j, got, want)
				}
			}
		}
		for i, e := range lp.Entropy {
			if !(e >= 0 && e <= math.Log(24)+1e-4) {
				t.Errorf("entropy[%d] = %v outside [0, log V]", i, e)
			}
		}
	}
}

func TestRolloutErrors(t *testing.T) {
	m := tinyModel(t, 24, 5)
	if _, err := Generate(m, nil, [][]int32{{1}}, []uint64{1, 2}, 0, 2, 4, SamplingConfig{}, nil); err == nil {
		t.Error("ids mismatch: no error")
	}
	if _, err := Generate(m, nil, [][]int32{{1}}, []uint64{1}, 0, 0, 4, SamplingConfig{}, nil); err == nil {
		t.Error("G = 0: no error")
	}
	if _, err := Generate(m, nil, [][]int32{{}}, []uint64{1}, 0, 2, 4, SamplingConfig{}, &noop{}); err == nil {
		t.Error("empty prompt: no error")
	}
	if _, err := Generate(m, nil, [][]int32{{1}}, []uint64{1}, 0, 2, 4, SamplingConfig{StopStrings: []string{"x"}}, &noop{}); err == nil {
		t.Error("stop strings without a tokenizer: no error")
	}
}

// TestCompletionLogProbsTemperature: with a temperature, the log-probs are
// those of softmax(logits / T), checked against the model's logits
// directly.
func TestCompletionLogProbsTemperature(t *testing.T) {
	m := tinyModel(t, 24, 8)
	prompt, comp := []int32{3, 4, 5}, []int32{6, 7}
	lp, err := CompletionLogProbs(m, [][]int32{prompt}, [][]int32{comp}, LogProbOptions{Temperature: 2})
	if err != nil {
		t.Fatal(err)
	}
	ids := append(slices.Clone(prompt), comp...)
	logits := m.Forward(tensor.FromInt32(ids, 1, len(ids)), model.ForwardOptions{}).Float32s()
	got := lp.Values.Float64s()
	for j, y := range comp {
		row := logits[(len(prompt)-1+j)*24 : (len(prompt)+j)*24]
		scaled := make([]float32, len(row))
		for i, v := range row {
			scaled[i] = v / 2
		}
		want := float64(scaled[y]) - logSumExp(scaled)
		if math.Abs(got[j]-want) > 1e-5 {
			t.Errorf("token %d: %v, want %v", j, got[j], want)
		}
	}
	if _, err := CompletionLogProbs(m, [][]int32{prompt}, [][]int32{comp}, LogProbOptions{Temperature: -1}); err == nil {
		t.Error("negative temperature: no error")
	}
}

func TestBenchRollout(t *testing.T) {
	m := tinyModel(t, 24, 9)
	res, err := BenchRollout(m, BenchConfig{Prompts: [][]int32{{1, 2}, {3}}, G: 3, NewTokens: 5, MicroBatch: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !(res.RolloutTokensPerS > 0 && res.TrainTokensPerS > 0 && res.GenerationShare > 0 && res.GenerationShare < 1) {
		t.Errorf("result %+v", res)
	}
	for _, p := range m.Params() {
		if p.Tensor.Grad() != nil {
			t.Fatalf("%s keeps a gradient", p.Name)
		}
	}
	if _, err := BenchRollout(m, BenchConfig{G: 1, NewTokens: 1}); err == nil {
		t.Error("no prompts: no error")
	}
}

// sharpened is a model whose "adapter", when on, doubles the logits.
type sharpened struct {
	model.Model
	on bool
}

func (s *sharpened) Forward(ids *tensor.Tensor, opt model.ForwardOptions) *tensor.Tensor {
	out := s.Model.Forward(ids, opt)
	if s.on {
		out = out.Scale(2)
	}
	return out
}
func (s *sharpened) Enabled() bool { return s.on }
func (s *sharpened) SetEnabled(on bool) error {
	s.on = on
	return nil
}

// TestAdapterOffReference: the reference is the base model's log-probs,
// though the policy's adapter is on, and the switch is restored.
func TestAdapterOffReference(t *testing.T) {
	base := tinyModel(t, 24, 12)
	pol := &sharpened{Model: base, on: true}
	prompts, comps := [][]int32{{1, 2}, {3}}, [][]int32{{4, 5, 6}, {7}}
	got, err := AdapterOffReference{Policy: pol, Adapter: pol}.RefLogProbs(prompts, comps, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ModelReference{Model: base}.RefLogProbs(prompts, comps, 1)
	on, _ := ModelReference{Model: pol}.RefLogProbs(prompts, comps, 1)
	if !slices.Equal(got.Float32s(), want.Float32s()) || slices.Equal(on.Float32s(), want.Float32s()) {
		t.Errorf("reference %v, base %v, policy %v", got.Float32s(), want.Float32s(), on.Float32s())
	}
	if !pol.on {
		t.Error("the adapter was left off")
	}
}
