package model

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

var be = cpu.New(2)

// tiny returns small configs of every built-in family: vocabulary 11,
// width 8, 2 layers, 2 query heads and (where the family allows) 1
// key/value head. A larger initializer_range than the default makes the
// gradients large enough to check.
func tiny() map[string]Config {
	return map[string]Config{
		"llama": {ModelType: "llama", VocabSize: 11, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
			NumAttentionHeads: 2, NumKeyValueHeads: 1, RopeTheta: 100, InitializerRange: 0.3},
		"qwen2-tied": {ModelType: "qwen2", VocabSize: 11, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
			NumAttentionHeads: 2, NumKeyValueHeads: 1, RopeTheta: 100, InitializerRange: 0.3, TieWordEmbeddings: true},
		"gpt2": {ModelType: "gpt2", VocabSize: 11, HiddenSize: 8, NumHiddenLayers: 2, NumAttentionHeads: 2,
			MaxPositionEmbeddings: 16, InitializerRange: 0.3, TieWordEmbeddings: true},
	}
}

// names returns the keys of tiny in order, so tests run deterministically.
func names() []string { return sortedKeys(tiny()) }

func build(t *testing.T, cfg Config, dt tensor.DType, seed uint64) Model {
	t.Helper()
	m, err := New(cfg, be, dt, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func idsOf(vals []int32, shape ...int) *tensor.Tensor {
	return tensor.From(be, tensor.Int32, vals, shape...)
}

var testIDs = []int32{1, 4, 0, 10, 7, 3, 3, 9, 2, 5}

func TestForwardShape(t *testing.T) {
	for _, name := range names() {
		m := build(t, tiny()[name], tensor.Float32, 1)
		logits := m.Forward(idsOf(testIDs, 2, 5), ForwardOptions{})
		if got := logits.Shape(); !reflect.DeepEqual(got, []int{2, 5, 11}) {
			t.Errorf("%s: logits %v, want [2 5 11]", name, got)
		}
		if l := m.Loss(idsOf(testIDs, 2, 5), idsOf(testIDs, 2, 5)).Item(); !(l > 0 && l < 10) {
			t.Errorf("%s: loss %g", name, l)
		}
	}
}

// TestGradModels checks every parameter's gradient of each tiny model
// against finite differences.
func TestGradModels(t *testing.T) {
	for _, name := range names() {
		m := build(t, tiny()[name], tensor.Float64, 2)
		ps := m.Params()
		in := []*tensor.Tensor{idsOf(testIDs[:8], 2, 4)}
		for _, p := range ps {
			in = append(in, p.Tensor)
		}
		gradcheck.Check(t, name, func(in []*tensor.Tensor) *tensor.Tensor {
			for i, p := range ps {
				*p.Slot = in[1+i]
			}
			return m.Forward(in[0], ForwardOptions{})
		}, in...)
	}
}

// TestCacheDecoding checks that a prefill followed by one token at a time
// through KV caches gives the logits of one full forward pass.
func TestCacheDecoding(t *testing.T) {
	const B, T, prefill = 2, 7, 3
	ids := idsOf([]int32{1, 4, 0, 10, 7, 3, 3, 9, 2, 5, 6, 8, 0, 1}, B, T)
	for _, name := range names() {
		m := build(t, tiny()[name], tensor.Float32, 3)
		tensor.NoGrad(func() {
			full := m.Forward(ids, ForwardOptions{}).Float32s()
			caches := m.NewCaches(B, T)
			defer func() {
				for _, c := range caches {
					c.Release()
				}
			}()
			V := m.Config().VocabSize
			for lo := 0; lo < T; {
				hi := lo + 1
				if lo == 0 {
					hi = prefill
				}
				got := m.Forward(ids.Slice(1, lo, hi), ForwardOptions{Caches: caches}).Float32s()
				worst := 0.0
				for b := range B {
					for i := range (hi - lo) * V {
						worst = max(worst, math.Abs(float64(got[b*(hi-lo)*V+i]-full[b*T*V+lo*V+i])))
					}
				}
				if worst > 1e-5 {
					t.Errorf("%s: tokens [%d, %d) differ from the full pass by %g", name, lo, hi, worst)
				}
				lo = hi
			}
			if n := caches[0].Len(); n != T {
				t.Errorf("%s: cache holds %d tokens, want %d", name, n, T)
			}
		})
	}
}

// TestPackedDocuments checks that a row packing two documents, with the
// document mask and restarting positions, gives each document the logits
// it gets alone.
func TestPackedDocuments(t *testing.T) {
	docs := [][]int32{{3, 1, 4}, {1, 5, 9, 2}}
	mask, pos, err := nn.DocumentMask(be, tensor.Float32, [][]int{{3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names() {
		m := build(t, tiny()[name], tensor.Float32, 4)
		tensor.NoGrad(func() {
			packed := m.Forward(idsOf(append(append([]int32{}, docs[0]...), docs[1]...), 1, 7),
				ForwardOptions{Mask: mask, Positions: pos}).Float32s()
			V, at := 11, 0
			for _, d := range docs {
				alone := m.Forward(idsOf(d, 1, len(d)), ForwardOptions{}).Float32s()
				for i := range alone {
					if diff := math.Abs(float64(alone[i] - packed[at*V+i])); diff > 1e-5 {
						t.Fatalf("%s: document at %d differs packed by %g", name, at, diff)
					}
				}
				at += len(d)
			}
			// Without the mask the second document sees the first.
			leaky := m.Forward(idsOf(append(append([]int32{}, docs[0]...), docs[1]...), 1, 7),
				ForwardOptions{Positions: pos}).Float32s()
			if d := math.Abs(float64(leaky[6*V] - packed[6*V])); d < 1e-6 {
				t.Errorf("%s: the mask changed nothing", name)
			}
		})
	}
}

func TestLossIgnoresTargets(t *testing.T) {
	m := build(t, tiny()["llama"], tensor.Float64, 5)
	ids := idsOf(testIDs, 2, 5)
	targets := []int32{4, 0, -100, 7, 3, -100, 9, 2, 5, -100}
	var logits []float64
	var loss float64
	tensor.NoGrad(func() {
		logits = m.Forward(ids, ForwardOptions{}).Float64s()
		loss = m.Loss(ids, idsOf(targets, 2, 5)).Item()
	})
	var sum float64
	n := 0
	for r, tg := range targets {
		if tg < 0 {
			continue
		}
		row := logits[r*11 : (r+1)*11]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - mx)
		}
		sum += mx + math.Log(z) - row[tg]
		n++
	}
	if want := sum / float64(n); math.Abs(loss-want) > 1e-12 {
		t.Errorf("loss %g, want %g over the %d counted targets", loss, want, n)
	}
}

func TestNewErrors(t *testing.T) {
	good := tiny()["llama"]
	cases := []struct {
		name string
		cfg  Config
		be   tensor.Backend
		dt   tensor.DType
		want string
	}{
		{"unknown", Config{ModelType: "rwkv"}, be, tensor.Float32, "registered"},
		{"nil-backend", good, nil, tensor.Float32, "nil backend"},
		{"dtype", good, be, tensor.Int32, "cannot hold weights"},
		{"heads", func() Config { c := good; c.NumKeyValueHeads = 3; return c }(), be, tensor.Float32, "num_key_value_heads"},
	}
	for _, c := range cases {
		if _, err := New(c.cfg, c.be, c.dt, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// Zero numeric fields of a config built in code take the defaults.
	m := build(t, Config{ModelType: "llama", VocabSize: 11, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 1, NumAttentionHeads: 2}, tensor.Float32, 1)
	if c := m.Config(); c.RMSNormEps != 1e-6 || c.RopeTheta != 10000 || c.HiddenAct != "silu" || c.InitializerRange != 0.02 {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestRegisterPanics(t *testing.T) {
	for _, c := range []struct {
		name string
		arch Architecture
	}{
		{"llama", Architecture{New: newGPT2}},
		{"", Architecture{New: newGPT2}},
		{"new-one", Architecture{}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", c.name)
				}
			}()
			Register(c.name, c.arch)
		}()
	}
	if r := Registered(); !reflect.DeepEqual(r, []string{"GPT2LMHeadModel", "LlamaForCausalLM", "MistralForCausalLM",
		"Qwen2ForCausalLM", "gpt2", "llama", "mistral", "qwen2", "smollm"}) {
		t.Errorf("registered %v", r)
	}
}

// TestInitialisation checks the initial values against the reference
// recipes: norms 1, biases 0, matrices normal with initializer_range, and
// GPT-2's residual projections scaled by 1/sqrt(2·layers).
func TestInitialisation(t *testing.T) {
	std := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x * x
		}
		return math.Sqrt(s / float64(len(v)))
	}
	cfg := Config{ModelType: "gpt2", VocabSize: 512, HiddenSize: 64, NumHiddenLayers: 8, NumAttentionHeads: 4, MaxPositionEmbeddings: 64}
	m := build(t, cfg, tensor.Float64, 1)
	resid := 0.02 / math.Sqrt(16)
	for _, p := range m.Params() {
		v := p.Tensor.Float64s()
		var want float64
		switch {
		case strings.HasSuffix(p.Name, "norm.weight"):
			want = 1
		case strings.HasSuffix(p.Name, ".bias"):
			want = 0
		case strings.HasSuffix(p.Name, "attn_output.weight"), strings.HasSuffix(p.Name, "ffn_down.weight"):
			want = resid
		default:
			want = 0.02
		}
		if got := std(v); math.Abs(got-want) > 0.1*want+1e-12 {
			t.Errorf("%s: root mean square %g, want about %g", p.Name, got, want)
		}
	}
}

// TestDeterministicInit checks that a seed fixes every weight and that
// another seed changes them.
func TestDeterministicInit(t *testing.T) {
	for _, name := range names() {
		a := build(t, tiny()[name], tensor.Float32, 7).Params()
		b := build(t, tiny()[name], tensor.Float32, 7).Params()
		c := build(t, tiny()[name], tensor.Float32, 8).Params()
		same := true
		for i := range a {
			if !reflect.DeepEqual(a[i].Tensor.Float32s(), b[i].Tensor.Float32s()) {
				t.Errorf("%s: %s differs between equal seeds", name, a[i].Name)
			}
			if a[i].Tensor.Rank() == 2 && !reflect.DeepEqual(a[i].Tensor.Float32s(), c[i].Tensor.Float32s()) {
				same = false
			}
		}
		if same {
			t.Errorf("%s: another seed gave the same weights", name)
		}
	}
}

func ExampleNew() {
	cfg := Config{ModelType: "llama", VocabSize: 32, HiddenSize: 16, IntermediateSize: 32,
		NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, TieWordEmbeddings: true}
	be := cpu.New(1)
	m, err := New(cfg, be, tensor.Float32, 42)
	if err != nil {
		panic(err)
	}
	ids := tensor.From(be, tensor.Int32, []int32{1, 2, 3}, 1, 3)
	fmt.Println(m.Forward(ids, ForwardOptions{}).Shape())
	fmt.Println(m.Params()[1].Name)
	// Output:
	// [1 3 32]
	// blk.0.attn_norm.weight
}

func TestForwardPanics(t *testing.T) {
	gpt := build(t, tiny()["gpt2"], tensor.Float32, 1)
	llama := build(t, tiny()["llama"], tensor.Float32, 1)
	ids := idsOf(testIDs, 2, 5)
	cases := []struct {
		name string
		f    func()
		want string
	}{
		{"float-ids", func() { llama.Forward(tensor.Zeros(2, 5), ForwardOptions{}) }, "i32"},
		{"1d-ids", func() { llama.Forward(idsOf(testIDs), ForwardOptions{}) }, "[B, T]"},
		{"caches", func() { llama.Forward(ids, ForwardOptions{Caches: llama.NewCaches(2, 8)[:1]}) }, "1 KV caches for 2 layers"},
		{"positions", func() { llama.Forward(ids, ForwardOptions{Positions: idsOf([]int32{0, 1, 2})}) }, "positions"},
		{"id-range", func() { llama.Forward(idsOf([]int32{0, 11}, 1, 2), ForwardOptions{}) }, "embedding"},
		{"gpt2-context", func() { gpt.Forward(idsOf(make([]int32, 17), 1, 17), ForwardOptions{}) }, "embedding"},
	}
	for _, c := range cases {
		err := tensor.Catch(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want a *tensor.Error containing %q", c.name, err, c.want)
		}
	}
}
