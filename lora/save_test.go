package lora_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/safetensors"
	"github.com/minnowml/minnow/tensor"
)

// adapted returns a tiny model of typ with an adapter of cfg whose B
// matrices are random, and the logits it computes.
func adapted(t *testing.T, typ string, cfg lora.Config) (model.Model, *lora.Adapter, []float64) {
	t.Helper()
	m := newModel(t, tinyCfg(typ), tensor.Float32, 8)
	ad := apply(t, m, cfg)
	randomizeB(ad, 12)
	return m, ad, logits(m)
}

// checkSameAdapter fails unless b has a's layers, ranks, alphas, scales
// and tensors.
func checkSameAdapter(t *testing.T, what string, a, b *lora.Adapter) {
	t.Helper()
	if !slices.Equal(names(a), names(b)) {
		t.Fatalf("%s: layers %v, want %v", what, names(b), names(a))
	}
	for i, la := range a.Layers() {
		lb := b.Layers()[i]
		if la.R != lb.R || la.Alpha != lb.Alpha || la.Scale != lb.Scale {
			t.Errorf("%s: %s: r %d alpha %g scale %g, want %d %g %g", what, la.Name, lb.R, lb.Alpha, lb.Scale, la.R, la.Alpha, la.Scale)
		}
		if !slices.Equal(la.A.Float32s(), lb.A.Float32s()) || !slices.Equal(la.B.Float32s(), lb.B.Float32s()) {
			t.Errorf("%s: %s: A or B differ", what, la.Name)
		}
	}
}

var saveConfigs = []struct {
	typ string
	cfg lora.Config
}{
	{"llama", lora.Config{R: 4, Alpha: 8}},
	{"llama", lora.Config{R: 4, Alpha: 8, RSLoRA: true, Targets: lora.Targets{"q", "k", "blk.1.ffn_down"},
		Overrides: []lora.Override{{Match: "k", R: 2, Alpha: 3}}}},
	{"qwen2", lora.Config{R: 3, Targets: lora.Targets{"q", "v", "o"}}},
	{"gpt2", lora.Config{R: 2, Alpha: 4, Targets: lora.Targets{"qkv", "blk.0.attn_output", "ffn_down"}}},
}

// TestSaveLoad checks that an adapter saved in minnow's checkpoint format
// and loaded onto a fresh copy of the base model gives the same layers,
// tensors and logits.
func TestSaveLoad(t *testing.T) {
	for i, c := range saveConfigs {
		_, ad, want := adapted(t, c.typ, c.cfg)
		path := filepath.Join(t.TempDir(), "adapter.ckpt")
		if err := ad.Save(path, map[string]string{"note": "test"}); err != nil {
			t.Fatal(err)
		}
		fresh := newModel(t, tinyCfg(c.typ), tensor.Float32, 8)
		got, err := lora.Load(path, fresh)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkSameAdapter(t, c.typ, ad, got)
		if d := maxDiff(logits(fresh), want); d != 0 {
			t.Errorf("case %d: loaded adapter's logits differ by %g", i, d)
		}
		if got.Config().R != c.cfg.R || !slices.Equal(got.Config().Targets, c.cfg.Targets) {
			t.Errorf("case %d: config %+v, want %+v", i, got.Config(), c.cfg)
		}
	}
}

// TestLoadErrors checks that loading onto a model lacking a layer, or a
// file that is no adapter, fails and leaves no adapter attached.
func TestLoadErrors(t *testing.T) {
	_, ad, _ := adapted(t, "llama", lora.Config{R: 2, Targets: lora.Targets{"output"}})
	dir := t.TempDir()
	path := filepath.Join(dir, "a.ckpt")
	if err := ad.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	tied := tinyCfg("llama")
	tied.TieWordEmbeddings = true
	m := newModel(t, tied, tensor.Float32, 8)
	if _, err := lora.Load(path, m); err == nil || !strings.Contains(err.Error(), `no linear layer "output"`) {
		t.Errorf("tied model: %v", err)
	}
	wide := tinyCfg("llama")
	wide.VocabSize = 20
	m = newModel(t, wide, tensor.Float32, 8)
	if _, err := lora.Load(path, m); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("other vocabulary: %v", err)
	}
	for _, l := range model.Linears(m) {
		if l.Layer.Adapter != nil {
			t.Errorf("%s keeps an adapter after a failed load", l.Name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lora.Load(filepath.Join(dir, "junk"), m); err == nil {
		t.Error("junk loaded")
	}
}

// TestPEFTRoundTrip checks that an adapter saved in PEFT's layout loads
// back with the same layers, tensors and logits, and that the files hold
// PEFT's names, config keys and (for Llama) B rows of q and k in Hugging
// Face's rotate-half order.
func TestPEFTRoundTrip(t *testing.T) {
	for i, c := range saveConfigs {
		m, ad, want := adapted(t, c.typ, c.cfg)
		dir := t.TempDir()
		if err := ad.SavePEFT(dir, m, lora.PEFTOptions{BaseModel: "test/base"}); err != nil {
			t.Fatal(err)
		}
		fresh := newModel(t, tinyCfg(c.typ), tensor.Float32, 8)
		got, err := lora.LoadPEFT(dir, fresh)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkSameAdapter(t, c.typ, ad, got)
		if d := maxDiff(logits(fresh), want); d != 0 {
			t.Errorf("case %d: loaded adapter's logits differ by %g", i, d)
		}
		var pc map[string]any
		js, _ := os.ReadFile(filepath.Join(dir, lora.PEFTConfigFile))
		if err := json.Unmarshal(js, &pc); err != nil {
			t.Fatal(err)
		}
		if pc["peft_type"] != "LORA" || pc["r"] != float64(c.cfg.R) || pc["base_model_name_or_path"] != "test/base" {
			t.Errorf("case %d: config %s", i, js)
		}
		f, err := safetensors.Open(filepath.Join(dir, lora.PEFTWeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ad.Layers() {
			if c.typ != "llama" || l.Kind != "attn_q" {
				continue
			}
			name := "base_model.model.model.layers." + l.Name[4:5] + ".self_attn.q_proj.lora_B.weight"
			hb, err := f.Tensor(be, tensor.Float32, name)
			if err != nil {
				t.Fatal(err)
			}
			// Head h's HF row j < hd/2 is minnow's row 2j, and row hd/2+j
			// is 2j+1.
			hf, mb := hb.Float32s(), l.B.Float32s()
			hd, r := 16/4, l.R
			for row := range 16 {
				h, j := row/hd, row%hd
				src := h*hd + 2*(j%(hd/2)) + j/(hd/2)
				if !slices.Equal(hf[row*r:(row+1)*r], mb[src*r:(src+1)*r]) {
					t.Fatalf("case %d: %s HF row %d is not minnow row %d", i, name, row, src)
				}
			}
		}
		f.Close()
		if c.typ == "llama" && len(c.cfg.Overrides) > 0 {
			rp := pc["rank_pattern"].(map[string]any)
			if rp["model.layers.0.self_attn.k_proj"] != 2.0 || len(rp) != 2 {
				t.Errorf("case %d: rank_pattern %v", i, rp)
			}
			tm := pc["target_modules"].([]any)
			if !slices.Contains(tm, any("q_proj")) || !slices.Contains(tm, any("model.layers.1.mlp.down_proj")) {
				t.Errorf("case %d: target_modules %v", i, tm)
			}
		}
	}
}

// TestPEFTGolden loads the Hugging Face model convert/testdata/hf/llama-gqa
// and the adapter PEFT 0.21 trained on it (random A and B on all seven
// linears), and checks the logits against PEFT's own within 1e-4.
func TestPEFTGolden(t *testing.T) {
	m, _, err := convert.ImportHF("../convert/testdata/hf/llama-gqa", be, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.LoadPEFT("../convert/testdata/hf/llama-gqa-lora", m)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ad.Layers()); n != 14 {
		t.Errorf("%d adapted layers, want 14", n)
	}
	f, err := safetensors.Open("../convert/testdata/hf/llama-gqa-lora/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := f.Tensor(be, tensor.Int32, "ids")
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.Tensor(be, tensor.Float32, "logits")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, tol float64) float64 {
		var got []float32
		tensor.NoGrad(func() { got = m.Forward(ids, model.ForwardOptions{}).Float32s() })
		d := 0.0
		for i, w := range want.Float32s() {
			d = max(d, math.Abs(float64(got[i]-w)))
		}
		if d > tol {
			t.Errorf("%s: logits differ from PEFT's by %g", what, d)
		}
		return d
	}
	d := check("unmerged", 1e-4)
	t.Logf("max |logit - PEFT| = %.3g", d)
	if err := ad.Merge(); err != nil {
		t.Fatal(err)
	}
	check("merged", 1e-4)
	if err := ad.Unmerge(); err != nil {
		t.Fatal(err)
	}
	if err := ad.SetEnabled(false); err != nil {
		t.Fatal(err)
	}
	var base []float32
	tensor.NoGrad(func() { base = m.Forward(ids, model.ForwardOptions{}).Float32s() })
	moved := 0.0
	for i, w := range want.Float32s() {
		moved = max(moved, math.Abs(float64(base[i]-w)))
	}
	if moved < 1e-2 {
		t.Errorf("the adapter moves the logits by only %g; the golden does not test it", moved)
	}
}

// TestLoadPEFTErrors checks that adapters minnow cannot represent, or that
// do not fit the model, are refused and leave no adapter attached.
func TestLoadPEFTErrors(t *testing.T) {
	m, ad, _ := adapted(t, "llama", lora.Config{R: 4, Targets: lora.Targets{"q", "v"}})
	good := t.TempDir()
	if err := ad.SavePEFT(good, m, lora.PEFTOptions{}); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(good, lora.PEFTConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(good, lora.PEFTWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(cfg map[string]any)
		typ  string
		want string
	}{
		{"dora", func(c map[string]any) { c["use_dora"] = true }, "llama", "DoRA"},
		{"bias", func(c map[string]any) { c["bias"] = "all" }, "llama", "biases"},
		{"modules to save", func(c map[string]any) { c["modules_to_save"] = []string{"lm_head"} }, "llama", "modules_to_save"},
		{"not lora", func(c map[string]any) { c["peft_type"] = "PROMPT_TUNING" }, "llama", "not LORA"},
		{"rank", func(c map[string]any) { c["rank_pattern"] = map[string]int{"v_proj": 8} }, "llama", "the config gives 8"},
		{"other architecture", func(map[string]any) {}, "gpt2", "lacks"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		var cfg map[string]any
		if err := json.Unmarshal(js, &cfg); err != nil {
			t.Fatal(err)
		}
		c.edit(cfg)
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(dir, lora.PEFTConfigFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, lora.PEFTWeightsFile), weights, 0o644); err != nil {
			t.Fatal(err)
		}
		fresh := newModel(t, tinyCfg(c.typ), tensor.Float32, 8)
		if _, err := lora.LoadPEFT(dir, fresh); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		for _, l := range model.Linears(fresh) {
			if l.Layer.Adapter != nil {
				t.Errorf("%s: %s keeps an adapter", c.name, l.Name)
			}
		}
	}
}
