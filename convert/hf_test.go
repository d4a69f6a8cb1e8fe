package convert

import (
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/safetensors"
	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu"
)

// golden is a golden.safetensors: prompts, transformers' float64 logits
// and its greedy continuations.
type golden struct {
	ids    [][]int32
	logits []float32 // [B, T, V]
	greedy [][]int32
}

func loadGolden(t *testing.T, path string) golden {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	be := tensor.Default()
	rows := func(name string) [][]int32 {
		x, err := f.Tensor(be, tensor.Int32, name)
		if err != nil {
			t.Fatal(err)
		}
		flat, n := x.Int32s(), x.Dim(1)
		var out [][]int32
		for i := 0; i < len(flat); i += n {
			out = append(out, flat[i:i+n])
		}
		return out
	}
	lg, err := f.Tensor(be, tensor.Float32, "logits")
	if err != nil {
		t.Fatal(err)
	}
	return golden{ids: rows("ids"), logits: lg.Float32s(), greedy: rows("greedy")}
}

// forwardLogits runs m on the prompts and returns the logits, flattened.
func forwardLogits(t *testing.T, m model.Model, ids [][]int32) []float32 {
	t.Helper()
	flat := slices.Concat(ids...)
	var out []float32
	err := tensor.Catch(func() {
		x := tensor.From(tensor.Default(), tensor.Int32, flat, len(ids), len(ids[0]))
		out = m.Forward(x, model.ForwardOptions{}).Float32s()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestImportHFGoldens imports each golden checkpoint and compares its
// logits and greedy continuations with transformers'.
func TestImportHFGoldens(t *testing.T) {
	for _, c := range []struct {
		name string
		tol  float64
	}{
		{"llama-gqa", 1e-4},
		{"llama-tied-sharded", 1e-4},
		{"qwen2-bf16", 1e-4},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "hf", c.name)
			g := loadGolden(t, filepath.Join(dir, "golden.safetensors"))
			m, v, err := ImportHF(dir, tensor.Default(), tensor.Float32)
			if err != nil {
				t.Fatal(err)
			}
			got := forwardLogits(t, m, g.ids)
			if len(got) != len(g.logits) {
				t.Fatalf("%d logits, want %d", len(got), len(g.logits))
			}
			d := maxAbsDiff(got, g.logits)
			t.Logf("max |logit - transformers| = %.3g", d)
			if d > c.tol {
				t.Errorf("max |logit diff| %.3g > %g", d, c.tol)
			}
			out, err := model.Generate(m, nil, g.ids, model.GenerateConfig{MaxNewTokens: len(g.greedy[0]), StopTokens: []int32{}})
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range out {
				if !slices.Equal(o.Tokens, g.greedy[i]) {
					t.Errorf("row %d: greedy %v, transformers %v", i, o.Tokens, g.greedy[i])
				}
			}
			if v == nil {
				t.Fatal("no vocabulary from tokenizer.json")
			}
			tok, err := tokenizer.New(v)
			if err != nil {
				t.Fatal(err)
			}
			// The goldens' second prompt starts with this text's tokens.
			enc := tok.Encode("To be, or not", tokenizer.EncodeOptions{})
			n := min(len(enc), len(g.ids[1]))
			if n == 0 || !slices.Equal(enc[:n], g.ids[1][:n]) {
				t.Errorf("encoded %v, transformers %v", enc, g.ids[1])
			}
		})
	}
}

// TestImportHFPermutationMatters checks that the Q/K permutation is what
// makes Llama match: without it the logits move far from transformers'.
func TestImportHFPermutationMatters(t *testing.T) {
	dir := filepath.Join("testdata", "hf", "llama-gqa")
	g := loadGolden(t, filepath.Join(dir, "golden.safetensors"))
	m, _, err := ImportHF(dir, tensor.Default(), tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		if strings.HasSuffix(p.Name, "attn_q.weight") {
			// Undo the import's permutation on layer 0's queries by
			// reloading them as stored.
			st, err := safetensors.OpenModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := st.Tensor(tensor.Default(), tensor.Float32, "model.layers.0.self_attn.q_proj.weight")
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			p.Tensor.CopyFrom(raw)
			break
		}
	}
	if d := maxAbsDiff(forwardLogits(t, m, g.ids), g.logits); d < 1e-3 {
		t.Errorf("unpermuted queries still match transformers (max diff %.3g): the permutation is not exercised", d)
	}
}

func TestUnpermuteHalves(t *testing.T) {
	// Two heads of size 4, one input column: rows are (head, dim). HF's
	// pairs are (0,2) and (1,3) in each head; minnow's are (0,1), (2,3).
	w := tensor.FromFloat32([]float32{0, 1, 2, 3, 10, 11, 12, 13}, 8, 1)
	got := unpermuteHalves(w, 2).Float32s()
	want := []float32{0, 2, 1, 3, 10, 12, 11, 13}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	b := tensor.FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 6)
	if got, want := unpermuteHalves(b, 1).Float32s(), []float32{0, 3, 1, 4, 2, 5}; !slices.Equal(got, want) {
		t.Errorf("bias: got %v, want %v", got, want)
	}
}

func TestHFTensorName(t *testing.T) {
	for hf, want := range map[string]string{
		"model.embed_tokens.weight":                       "token_embd.weight",
		"model.norm.weight":                               "output_norm.weight",
		"lm_head.weight":                                  "output.weight",
		"model.layers.0.input_layernorm.weight":           "blk.0.attn_norm.weight",
		"model.layers.11.post_attention_layernorm.weight": "blk.11.ffn_norm.weight",
		"model.layers.2.self_attn.q_proj.bias":            "blk.2.attn_q.bias",
		"model.layers.2.self_attn.o_proj.weight":          "blk.2.attn_output.weight",
		"model.layers.3.mlp.gate_proj.weight":             "blk.3.ffn_gate.weight",
		"model.layers.3.mlp.down_proj.weight":             "blk.3.ffn_down.weight",
		"model.layers.x.mlp.down_proj.weight":             "",
		"model.layers.3.mlp.fc.weight":                    "",
		"transformer.wte.weight":                          "",
	} {
		got, ok := HFTensorName(hf)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", hf, got, ok, want)
		}
		if ok && hfName(got) != hf {
			t.Errorf("%s: back to %q", got, hfName(got))
		}
	}
}

// copyDir copies the files of src into a new temporary folder, leaving
// out those skip names.
func copyDir(t *testing.T, src string, skip ...string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if slices.Contains(skip, e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestImportHFErrors(t *testing.T) {
	src := filepath.Join("testdata", "hf", "llama-gqa")
	be := tensor.Default()
	st, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]*tensor.Tensor{}
	for _, n := range st.Names() {
		if all[n], err = st.Tensor(be, tensor.Float32, n); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	// weights returns the checkpoint's tensors with edits: a nil value
	// drops a tensor, others replace or add one.
	weights := func(edit map[string]*tensor.Tensor) []safetensors.Named {
		var ts []safetensors.Named
		for _, n := range slices.Sorted(maps.Keys(all)) {
			if x, ok := edit[n]; ok {
				if x != nil {
					ts = append(ts, safetensors.Named{Name: n, Tensor: x})
				}
				continue
			}
			ts = append(ts, safetensors.Named{Name: n, Tensor: all[n]})
		}
		for n, x := range edit {
			if _, ok := all[n]; !ok && x != nil {
				ts = append(ts, safetensors.Named{Name: n, Tensor: x})
			}
		}
		return ts
	}
	for _, c := range []struct {
		name string
		edit map[string]*tensor.Tensor
		want string
	}{
		{"missing", map[string]*tensor.Tensor{"model.layers.1.mlp.up_proj.weight": nil}, "lacks model.layers.1.mlp.up_proj.weight"},
		{"unknown", map[string]*tensor.Tensor{"model.layers.0.mlp.extra.weight": tensor.FromFloat32([]float32{1}, 1)}, `"model.layers.0.mlp.extra.weight"`},
		{"extra layer", map[string]*tensor.Tensor{"model.layers.2.input_layernorm.weight": tensor.FromFloat32(make([]float32, 64), 64)}, `"model.layers.2.input_layernorm.weight"`},
		{"shape", map[string]*tensor.Tensor{"model.norm.weight": tensor.FromFloat32(make([]float32, 32), 32)}, `"model.norm.weight" has shape [32]`},
		{"inv_freq ignored", map[string]*tensor.Tensor{"model.layers.0.self_attn.rotary_emb.inv_freq": tensor.FromFloat32(make([]float32, 8), 8)}, ""},
	} {
		dir := copyDir(t, src, "model.safetensors")
		if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), weights(c.edit), nil); err != nil {
			t.Fatal(err)
		}
		_, _, err := ImportHF(dir, be, tensor.Float32)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// No tokenizer.json: no vocabulary and no error.
	dir := copyDir(t, src, "tokenizer.json")
	if _, v, err := ImportHF(dir, be, tensor.Float32); err != nil || v != nil {
		t.Errorf("without tokenizer.json: vocab %v, error %v", v != nil, err)
	}
	if _, _, err := ImportHF(t.TempDir(), be, tensor.Float32); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty folder: error %v", err)
	}
}
