package convert

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/tensor"
)

// TestLoRAGGUFLlamaCpp loads a base model with a LoRA adapter file in
// llama.cpp and checks its logits (1e-4) and greedy tokens against
// minnow's forward with W + (alpha/r)·B·A merged by hand.
func TestLoRAGGUFLlamaCpp(t *testing.T) {
	nodeDir(t)
	dir := t.TempDir()
	c := tinyCases()[1] // llama, GQA, tied
	m, v := c.build(t, testVocab(t))
	base := filepath.Join(dir, "base.gguf")
	if err := ExportGGUFFile(base, m, v, GGUFOptions{}); err != nil {
		t.Fatal(err)
	}
	const r, alpha = 4, 8
	rng := rand.New(rand.NewPCG(9, 9))
	randn := func(rows, cols int) *tensor.Tensor {
		vals := make([]float32, rows*cols)
		for i := range vals {
			vals[i] = float32(0.2 * rng.NormFloat64())
		}
		return tensor.From(testBackend, tensor.Float32, vals, rows, cols)
	}
	merged, _, err := ImportGGUF(base, testBackend)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []LoRATensorPair
	for _, p := range merged.Params() {
		switch p.Name {
		case "blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.1.ffn_down.weight", "blk.1.attn_output.weight":
		default:
			continue
		}
		out, in := p.Tensor.Dim(0), p.Tensor.Dim(1)
		pair := LoRATensorPair{Name: p.Name, A: randn(r, in), B: randn(out, r)}
		pairs = append(pairs, pair)
		w, a, b := p.Tensor.Float32s(), pair.A.Float32s(), pair.B.Float32s()
		for o := range out {
			for i := range in {
				var s float64
				for k := range r {
					s += float64(b[o*r+k]) * float64(a[k*in+i])
				}
				w[o*in+i] += float32(alpha / float64(r) * s)
			}
		}
		p.Tensor.CopyFrom(tensor.From(testBackend, tensor.Float32, w, out, in))
	}
	var buf bytes.Buffer
	if err := ExportLoRAGGUF(&buf, "llama", alpha, pairs, LoRAOptions{}); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(dir, "lora.gguf")
	if err := os.WriteFile(adapter, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	prompts := testPrompts(3, 8, len(v.Tokens), 4)
	res := runLlamaCpp(t, []llamaRequest{{Model: base, Lora: adapter, LoraScale: 1, ContextSize: 64,
		Prompts: prompts, AllPositions: true, Generate: greedyTokens}})[0]
	greedy := minnowGreedy(t, merged, prompts, greedyTokens)
	plain := minnowGreedy(t, m, prompts, greedyTokens)
	worst, changed := 0.0, false
	for i, p := range prompts {
		worst = max(worst, maxDiff(t, res[i].Logits, minnowLogits(t, merged, p)))
		if !slices.Equal(res[i].Greedy, greedy[i]) {
			t.Errorf("prompt %d: llama.cpp with the adapter generates %v, minnow merged %v", i, res[i].Greedy, greedy[i])
		}
		changed = changed || !slices.Equal(plain[i], greedy[i])
	}
	t.Logf("max |llama.cpp base+adapter - minnow merged| = %.3g", worst)
	if worst > f32Tolerance {
		t.Errorf("logits differ by %.3g, over %g", worst, f32Tolerance)
	}
	if !changed {
		t.Errorf("the adapter changes no greedy token, so the check proves little")
	}
}

// TestLoRAGGUFFile checks the adapter file's metadata and tensor layout,
// and that ExportLoRAGGUF refuses bad input.
func TestLoRAGGUFFile(t *testing.T) {
	a := tensor.From(testBackend, tensor.Float32, make([]float32, 2*6), 2, 6) // r=2, in=6
	b := tensor.From(testBackend, tensor.Float32, make([]float32, 5*2), 5, 2) // out=5, r=2
	var buf bytes.Buffer
	if err := ExportLoRAGGUF(&buf, "qwen2", 16, []LoRATensorPair{{Name: "blk.0.attn_q.weight", A: a, B: b}}, LoRAOptions{Type: gguf.F16}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"general.type": "adapter", "adapter.type": "lora", "adapter.lora.alpha": float32(16), "general.architecture": "qwen2"} {
		if got, _ := f.Metadata.Get(key); got != want {
			t.Errorf("%s = %v (%T), want %v (%T)", key, got, got, want, want)
		}
	}
	wantDims := map[string][]uint64{"blk.0.attn_q.weight.lora_a": {6, 2}, "blk.0.attn_q.weight.lora_b": {2, 5}}
	for _, ti := range f.Tensors {
		if d := wantDims[ti.Name]; len(d) != 2 || d[0] != ti.Dims[0] || d[1] != ti.Dims[1] || ti.Type != gguf.F16 {
			t.Errorf("tensor %s: dims %v type %s, want %v F16", ti.Name, ti.Dims, ti.Type, d)
		}
	}
	bad := []struct {
		name  string
		pairs []LoRATensorPair
		opt   LoRAOptions
	}{
		{"not-chained", []LoRATensorPair{{Name: "blk.0.attn_q.weight", A: a, B: a}}, LoRAOptions{}},
		{"embedding", []LoRATensorPair{{Name: "token_embd.weight", A: a, B: b}}, LoRAOptions{}},
		{"bias", []LoRATensorPair{{Name: "blk.0.attn_q.bias", A: a, B: b}}, LoRAOptions{}},
		{"duplicate", []LoRATensorPair{{Name: "blk.0.attn_q.weight", A: a, B: b}, {Name: "blk.0.attn_q.weight", A: a, B: b}}, LoRAOptions{}},
		{"quantised", []LoRATensorPair{{Name: "blk.0.attn_q.weight", A: a, B: b}}, LoRAOptions{Type: gguf.Q8_0}},
		{"nil", []LoRATensorPair{{Name: "blk.0.attn_q.weight", A: a}}, LoRAOptions{}},
	}
	for _, c := range bad {
		if err := ExportLoRAGGUF(&bytes.Buffer{}, "llama", 1, c.pairs, c.opt); err == nil || !strings.Contains(err.Error(), "convert:") {
			t.Errorf("%s: error %v", c.name, err)
		}
	}
}
