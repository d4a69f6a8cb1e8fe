package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadConfigFixtures(t *testing.T) {
	type want struct {
		modelType                      string
		vocab, hidden, inter, layers   int
		heads, kvHeads, headSize, maxP int
		tie                            bool
		eps, theta                     float64
		act                            string
		bos                            int
		eos                            []int
		scaling                        string
		extra                          string // a key that must land in Extra
	}
	cases := []struct {
		file string
		want want
	}{
		{"llama-3.2-1b.json", want{"llama", 128256, 2048, 8192, 16, 32, 8, 64, 131072, true, 1e-5, 500000, "silu", 128000, []int{128001}, "llama3", "pretraining_tp"}},
		{"qwen2-0.5b.json", want{"qwen2", 151936, 896, 4864, 24, 14, 2, 64, 32768, true, 1e-6, 1e6, "silu", 151643, []int{151643}, "", "max_window_layers"}},
		{"smollm-135m.json", want{"llama", 49152, 576, 1536, 30, 9, 3, 64, 2048, true, 1e-5, 10000, "silu", 0, []int{0}, "", "torch_dtype"}},
		// TinyLlama leaves rope_theta out: LlamaConfig's 10000 applies.
		{"tinyllama-1.1b.json", want{"llama", 32000, 2048, 5632, 22, 32, 4, 64, 2048, false, 1e-5, 10000, "silu", 1, []int{2}, "", "use_cache"}},
		{"gpt2.json", want{"gpt2", 50257, 768, 0, 12, 12, 12, 64, 1024, true, 1e-5, 0, "gelu_new", 50256, []int{50256}, "", "n_ctx"}},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(filepath.Join("testdata", c.file))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		eps := cfg.RMSNormEps
		if cfg.ModelType == "gpt2" {
			eps = cfg.LayerNormEpsilon
		}
		bos := -1
		if cfg.BOSTokenID != nil {
			bos = *cfg.BOSTokenID
		}
		got := want{cfg.ModelType, cfg.VocabSize, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers,
			cfg.NumAttentionHeads, cfg.KVHeads(), cfg.HeadSize(), cfg.MaxPositionEmbeddings, cfg.TieWordEmbeddings,
			eps, cfg.RopeTheta, cfg.HiddenAct, bos, []int(cfg.EOSTokenID), cfg.RopeScaling.Kind(), c.want.extra}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.file, got, c.want)
		}
		if _, ok := cfg.Extra[c.want.extra]; !ok {
			t.Errorf("%s: key %q not kept in Extra (%v)", c.file, c.want.extra, sortedKeys(cfg.Extra))
		}
		if cfg.ModelType == "llama" && cfg.RopeScaling.Kind() == "llama3" {
			if s := cfg.RopeScaling; s.Factor != 32 || s.LowFreqFactor != 1 || s.HighFreqFactor != 4 || s.OriginalMaxPositionEmbeddings != 8192 {
				t.Errorf("%s: rope_scaling %+v", c.file, *s)
			}
		}
	}
}

// TestConfigRoundTrip writes each fixture back and reads it again: the
// configs must be equal, and GPT-2 must keep its own key names.
func TestConfigRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	if len(files) < 5 {
		t.Fatalf("found %d fixtures", len(files))
	}
	for _, f := range files {
		cfg, err := LoadConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Errorf("%s: reading back: %v\n%s", f, err, out)
			continue
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Errorf("%s: round trip changed the config:\n%+v\n%+v", f, cfg, back)
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(out, &keys); err != nil {
			t.Fatal(err)
		}
		gpt2 := cfg.ModelType == "gpt2"
		for _, k := range []string{"n_embd", "n_layer", "n_head", "n_positions", "activation_function"} {
			if _, ok := keys[k]; ok != gpt2 {
				t.Errorf("%s: key %s present = %v", f, k, ok)
			}
		}
		if _, ok := keys["hidden_size"]; ok == gpt2 {
			t.Errorf("%s: hidden_size present = %v", f, ok)
		}
	}
}

func TestParseConfigSnippets(t *testing.T) {
	cases := []struct {
		name, json string
		check      func(Config) bool
	}{
		{"instruct-eos-list", `{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
			"num_attention_heads":2,"eos_token_id":[128001,128008,128009]}`,
			func(c Config) bool { return reflect.DeepEqual(c.EOSTokenID, TokenIDs{128001, 128008, 128009}) }},
		{"mistral-null-window", `{"model_type":"mistral","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
			"num_attention_heads":2,"num_key_value_heads":1,"sliding_window":null,"max_position_embeddings":32768}`,
			func(c Config) bool { return c.SlidingWindow == 0 && !c.TieWordEmbeddings }},
		{"smollm-alias", `{"model_type":"smollm","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}`,
			func(c Config) bool { return c.ModelType == "llama" && c.RMSNormEps == 1e-6 && *c.BOSTokenID == 1 }},
		{"class-only", `{"architectures":["Qwen2ForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}`,
			func(c Config) bool { return c.ModelType == "qwen2" && c.BOSTokenID == nil }},
		{"gpt2-n-inner-null", `{"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"n_inner":null}`,
			func(c Config) bool {
				return c.IntermediateSize == 0 && c.TieWordEmbeddings && c.MaxPositionEmbeddings == 1024
			}},
		// transformers 5 writes rope_parameters instead of rope_theta and
		// rope_scaling, and dtype instead of torch_dtype.
		{"v5-rope-llama3", `{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,
			"dtype":"float32","rope_parameters":{"factor":8.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":32,"rope_theta":50000.0,"rope_type":"llama3"}}`,
			func(c Config) bool {
				return c.RopeTheta == 50000 && reflect.DeepEqual(c.RopeScaling, &RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1,
					HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 32}) && string(c.Extra["dtype"]) == `"float32"` && c.Extra["rope_parameters"] == nil
			}},
		{"v5-rope-default", `{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,
			"rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"}}`,
			func(c Config) bool { return c.RopeTheta == 1e6 && c.RopeScaling == nil }},
		{"v5-rope-no-theta", `{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,
			"rope_parameters":{"rope_type":"linear","factor":2.0}}`,
			func(c Config) bool {
				return c.RopeTheta == 10000 && c.RopeScaling.Kind() == "linear" && c.RopeScaling.Factor == 2
			}},
		{"qwen2-window-off", `{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
			"num_attention_heads":2,"sliding_window":4096,"use_sliding_window":false}`,
			func(c Config) bool { return c.SlidingWindow == 4096 }},
	}
	for _, c := range cases {
		cfg, err := ParseConfig([]byte(c.json))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(cfg) {
			t.Errorf("%s: unexpected config %+v", c.name, cfg)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	const llama = `"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2`
	cases := []struct {
		name, json string
		want       []string
	}{
		{"unknown-type", `{"model_type":"bert","hidden_size":8}`, []string{`"model_type"`, `unknown architecture "bert"`, "registered", "gpt2", "llama", "qwen2"}},
		{"unknown-class", `{"architectures":["BertModel"]}`, []string{`"architectures"`, "BertModel", "registered"}},
		{"no-type", `{"hidden_size":8}`, []string{`"model_type" is missing`}},
		{"not-object", `[1, 2]`, []string{"not an object"}},
		{"syntax", "{\n\"model_type\": \"llama\",\n\"vocab_size\": 10,,\n}", []string{"line 3", "invalid JSON"}},
		{"type", `{` + llama + `,"hidden_size":"8"}`, []string{`key "hidden_size"`, "string", "int"}},
		{"nested-type", `{` + llama + `,"rope_scaling":{"factor":"big"}}`, []string{`key "rope_scaling.factor"`}},
		{"eos-type", `{` + llama + `,"eos_token_id":"end"}`, []string{`key "eos_token_id"`, "token id"}},
		{"missing-vocab", `{"model_type":"llama","hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}`, []string{`key "vocab_size" is missing`}},
		{"heads-split", `{` + llama + `,"num_attention_heads":3}`, []string{`"num_attention_heads" (3)`, `"hidden_size" (8)`}},
		{"kv-heads", `{` + llama + `,"num_attention_heads":4,"num_key_value_heads":3}`, []string{`"num_attention_heads" (4)`, `"num_key_value_heads" (3)`}},
		{"eps", `{` + llama + `,"rms_norm_eps":-1}`, []string{`"rms_norm_eps"`, "negative"}},
		{"activation", `{` + llama + `,"hidden_act":"gelu"}`, []string{`"hidden_act"`, "gelu"}},
		{"no-intermediate", `{"model_type":"llama","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2}`, []string{`"intermediate_size"`}},
		{"rope-type", `{` + llama + `,"rope_scaling":{"rope_type":"yarn","factor":4}}`, []string{`"rope_scaling"`, "yarn"}},
		{"rope-llama3", `{` + llama + `,"rope_scaling":{"rope_type":"llama3","factor":4}}`, []string{`"rope_scaling"`, "low_freq_factor"}},
		{"v5-rope-type", `{` + llama + `,"rope_parameters":{"rope_type":"yarn","factor":4}}`, []string{"yarn"}},
		{"v5-rope-value", `{` + llama + `,"rope_parameters":{"rope_theta":"big"}}`, []string{`key "rope_parameters"`}},
		{"v5-rope-not-object", `{` + llama + `,"rope_parameters":7}`, []string{`key "rope_parameters"`}},
		{"partial-rotary", `{` + llama + `,"partial_rotary_factor":0.3}`, []string{`"partial_rotary_factor"`, "even"}},
		{"mistral-window", `{"model_type":"mistral","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
			"num_attention_heads":2,"max_position_embeddings":32768}`, []string{`"sliding_window" (4096)`, "not supported"}},
		{"qwen2-window-on", `{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
			"num_attention_heads":2,"use_sliding_window":true}`, []string{`"sliding_window"`}},
		{"gpt2-missing", `{"model_type":"gpt2","vocab_size":10,"n_layer":1,"n_head":2}`, []string{`key "n_embd" is missing`}},
		{"gpt2-heads", `{"model_type":"gpt2","vocab_size":10,"n_embd":9,"n_layer":1,"n_head":2}`, []string{`"n_head" (2)`, `"n_embd" (9)`}},
		{"gpt2-activation", `{"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"activation_function":"relu"}`, []string{`"activation_function"`, "relu"}},
		{"gpt2-gqa", `{"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"num_key_value_heads":1}`, []string{"grouped-query"}},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(`{"model_type":"llama","vocab_size":"many"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), `"vocab_size"`) {
		t.Errorf("error %v, want one starting with the path and naming vocab_size", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: error %v", err)
	}
}
