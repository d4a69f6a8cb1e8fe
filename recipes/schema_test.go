package recipes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEditDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"steps", "steps", 0},
		{"stpes", "steps", 1}, // a swap counts one
		{"clip_nrom", "clip_norm", 1},
		{"hiden_size", "hidden_size", 1},
		{"lr", "seq", 3},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
	}
	for _, c := range cases {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestNearest(t *testing.T) {
	keys := []string{"steps", "grad_accum", "clip_norm", "optimizer", "schedule", "eval_every", "keep"}
	cases := []struct {
		key, want string
		ok        bool
	}{
		{"step", "steps", true},
		{"Steps", "steps", true},
		{"evl_every", "eval_every", true},
		{"kep", "keep", true},
		{"optimiser", "optimizer", true},
		{"learning_rate", "", false},
		{"sched", "schedule", true},
		{"zz", "", false},
		{"x", "", false},
	}
	for _, c := range cases {
		got, ok := nearest(c.key, keys)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("nearest(%q) = %q, %v; want %q, %v", c.key, got, ok, c.want, c.ok)
		}
	}
}

// TestUnknownKeys: an unknown key anywhere, in the file or through
// --set, names its path and line and suggests the nearest allowed key, or
// lists the allowed ones when none is close.
func TestUnknownKeys(t *testing.T) {
	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte("to be\n"), 0o644)
	good := strings.Replace(base, "TEXT", text, 1)
	checkRecipeEdits(t, good, []recipeEdit{
		{"top", "name: t", "nmae: t", `line 1: nmae: unknown key "nmae"; did you mean "name"?`},
		{"top-far", "seed: 1", "colour: 1", `colour: unknown key "colour" (allowed: data, description, distill, dpo, export, grpo, lora, method, model, name, out, sample, seed, soft_prompt, tldr, tokenizer, train)`},
		{"train", "  steps: 30", "  stesp: 30", `line 20: train.stesp: unknown key "stesp"; did you mean "steps"?`},
		{"optimizer", "{weight_decay: 0.1}", "{weight_decya: 0.1}", `train.optimizer.weight_decya: unknown key "weight_decya"; did you mean "weight_decay"?`},
		{"schedule", "peak_lr: 0.01", "peak_rl: 0.01", `did you mean "peak_lr"?`},
		{"model-inline", "  num_hidden_layers: 1", "  num_hiden_layers: 1", `line 7: model.num_hiden_layers: unknown key "num_hiden_layers"; did you mean "num_hidden_layers"?`},
		{"tokenizer-train", "vocab_size: 300", "vocab: 300", `tokenizer.train.vocab: unknown key "vocab"; did you mean "vocab_size"?`},
		{"data", "  shuffle: true", "  shufle: true", `data.shufle: unknown key "shufle"; did you mean "shuffle"?`},
		{"arith", `  text: ["` + text + `"]`, "  arith: {n: 10, max_digit: 2}", `data.arith.max_digit: unknown key "max_digit"; did you mean "max_digits"?`},
		{"sample", "name: t", "name: t\nsample: {arth: 3}", `sample.arth: unknown key "arth"; did you mean "arith"?`},
	})
}

func TestOverrides(t *testing.T) {
	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte("to be\n"), 0o644)
	good := strings.Replace(base, "TEXT", text, 1)
	cases := []struct {
		name  string
		sets  []string
		check func(*Recipe) bool
		want  string // error substring; "" for none
	}{
		{"scalar", []string{"train.steps=7"}, func(r *Recipe) bool { return r.Train.Steps == 7 }, ""},
		{"float", []string{"train.schedule.peak_lr=1e-3"}, func(r *Recipe) bool { return r.Train.Schedule.PeakLR == 1e-3 }, ""},
		{"string", []string{"name=other"}, func(r *Recipe) bool { return r.Name == "other" }, ""},
		{"new-key", []string{"out=/tmp/x", "train.grad_accum=2"}, func(r *Recipe) bool { return r.Out == "/tmp/x" && r.Train.GradAccum == 2 }, ""},
		{"new-section", []string{"sample.max_new_tokens=9"}, func(r *Recipe) bool { return r.Sample != nil && r.Sample.MaxNewTokens == 9 }, ""},
		{"model-inline", []string{"model.hidden_size=64"}, func(r *Recipe) bool { return r.Model.Resolved.HiddenSize == 64 }, ""},
		{"list-index", []string{"data.text[0]=" + text + "x"}, func(r *Recipe) bool { return r.Data.Text[0] == text+"x" }, ""},
		{"list-value", []string{"tokenizer.train.special=[a, b]"}, func(r *Recipe) bool { return len(r.Tokenizer.Train.Special) == 2 }, ""},
		{"last-wins", []string{"train.steps=7", "train.steps=8"}, func(r *Recipe) bool { return r.Train.Steps == 8 }, ""},
		{"unknown", []string{"train.stpes=3"}, nil, `--set train.stpes: unknown key "stpes"; did you mean "steps"?`},
		{"unknown-top", []string{"trian.steps=3"}, nil, `--set trian: unknown key "trian"; did you mean "train"?`},
		{"unknown-model", []string{"model.hiden_size=3"}, nil, `did you mean "hidden_size"?`},
		{"wrong-type", []string{"train.steps=many"}, nil, `--set train.steps: "many" has the wrong type (allowed: an integer)`},
		{"fraction", []string{"train.steps=2.5"}, nil, `--set train.steps: "2.5" has the wrong type (allowed: an integer)`},
		{"model-type", []string{"model.hidden_size=abc"}, nil, `--set model.hidden_size: "abc" has the wrong type (allowed: an integer)`},
		{"bool-yaml11", []string{"data.shuffle=no"}, func(r *Recipe) bool { return !r.Data.Shuffle }, ""},
		{"bool-wrong", []string{"data.shuffle=3"}, nil, `--set data.shuffle: "3" has the wrong type (allowed: true or false)`},
		{"no-equals", []string{"train.steps"}, nil, "want key.path=value"},
		{"bad-index", []string{"data.text[3]=x"}, nil, "data.text has no element 3"},
		{"index-scalar", []string{"name[0]=x"}, nil, "name has no element 0"},
		{"not-mapping", []string{"name.x=1"}, nil, "name is not a mapping"},
		{"bad-yaml", []string{"name=[unclosed"}, nil, "is not YAML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sets []Override
			var err error
			for _, s := range c.sets {
				var o Override
				if o, err = ParseOverride(s); err != nil {
					break
				}
				sets = append(sets, o)
			}
			var r *Recipe
			if err == nil {
				r, err = Parse([]byte(good), sets...)
			}
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want it to contain %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(r) {
				t.Fatalf("override not applied: %+v", r)
			}
		})
	}
}

// TestParseShape: a recipe must be one YAML mapping.
func TestParseShape(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"empty", "", "a recipe is one YAML mapping"},
		{"list", "- name: t\n", "a recipe is one YAML mapping"},
		{"scalar", "hello\n", "a recipe is one YAML mapping"},
		{"malformed", "name: [t\n", "did not find expected"},
	}
	for _, c := range cases {
		if _, err := Parse([]byte(c.src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// TestValidateRules has one case per range and file rule of Validate
// and of the built-in methods' Validate (the SFT rules are in
// TestSFTRecipeValidation).
func TestValidateRules(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "a.txt")
	os.WriteFile(text, []byte("to be\n"), 0o644)
	good := strings.Replace(base, "TEXT", text, 1)
	arith := `  text: ["` + text + `"]`
	const modelBlock = "model:\n  model_type: llama\n  hidden_size: 32\n  intermediate_size: 64\n  num_hidden_layers: 1\n" +
		"  num_attention_heads: 2\n  max_position_embeddings: 32\n  tie_word_embeddings: true"
	checkRecipeEdits(t, good, []recipeEdit{
		{"ok", "", "", ""},
		{"name-empty", "name: t", `name: ""`, `name: "" is out of range (allowed: a non-empty name without slashes)`},
		{"name-slash", "name: t", "name: a/b", `name: "a/b" is out of range`},
		{"model-none", modelBlock, "model: {}", "model: give exactly one of config:"},
		{"model-not-mapping", modelBlock, "model: 3", "model: want a mapping with config:, checkpoint: or model.Config fields"},
		{"model-config-not-string", modelBlock, "model: {config: [a]}", "model.config: want a file path string"},
		{"model-invalid-inline", "  hidden_size: 32", "  hidden_size: 0", `model: key "hidden_size" is missing or not positive`},
		{"model-two", "  model_type: llama", "  checkpoint: x\n  model_type: llama", "inline config fields cannot be combined"},
		{"model-config-missing", modelBlock,
			"model: {config: /nope/config.json}", "model.config: file /nope/config.json does not exist"},
		{"model-checkpoint-missing", modelBlock,
			"model: {checkpoint: /nope/run}", "model.checkpoint: file /nope/run does not exist"},
		{"tokenizer-none", "  train: {vocab_size: 300, special: [\"<|endoftext|>\"]}", "  path: ''", "tokenizer: give path:"},
		{"tokenizer-missing", "  train: {vocab_size: 300, special: [\"<|endoftext|>\"]}", "  path: /nope/tok.gguf", "tokenizer.path: file /nope/tok.gguf does not exist"},
		{"vocab-small", "vocab_size: 300", "vocab_size: 200", "tokenizer.train.vocab_size: 200 is out of range (allowed: at least 257 + the 1 special tokens)"},
		{"pre", "special: [\"<|endoftext|>\"]}", "special: [\"<|endoftext|>\"], pre: gpt3}", `tokenizer.train.pre: "gpt3" is out of range`},
		{"min-frequency", "special: [\"<|endoftext|>\"]}", "special: [\"<|endoftext|>\"], min_frequency: -1}", "tokenizer.train.min_frequency: -1 is out of range"},
		{"model-vocab", "  hidden_size: 32", "  hidden_size: 32\n  vocab_size: 280", "model.vocab_size: 280 is out of range"},
		{"method", "seed: 1", "seed: 1\nmethod: dpo2", `method: "dpo2" is out of range (allowed: `},
		{"pretrain-needs-text", arith, "  text: []", "data.text: list at least one text file, or generate text with data.arith"},
		{"pretrain-no-jsonl", arith, arith + "\n  jsonl: [\"" + text + "\"]", "data.jsonl and data.chat_template belong to method: sft"},
		{"text-missing", text, "/nope/b.txt", "data.text[0]: file /nope/b.txt does not exist"},
		{"arith-and-text", arith, arith + "\n  arith: {n: 10}", "data.arith: generate the data or read data.text/data.jsonl, not both"},
		{"arith-ok", arith, "  arith: {n: 10, ops: [\"*\"], max_digits: 2}", ""},
		{"arith-n", arith, "  arith: {n: 0}", "data.arith.n: 0 is out of range (allowed: 1 to 10000000 problems)"},
		{"arith-op", arith, "  arith: {n: 5, ops: [\"/\"]}", `data.arith.ops[0]: "/" is out of range (allowed: "+", "-" or "*")`},
		{"arith-digits", arith, "  arith: {n: 5, min_digits: 4, max_digits: 2}", "data.arith: operand digits 4..2"},
		{"arith-operands", arith, "  arith: {n: 5, operands: 1}", "data.arith: 1 operands"},
		{"val-fraction", "val_fraction: 0.1", "val_fraction: -0.1", "data.val_fraction: -0.1 is out of range"},
		{"batch", "  batch: 4", "  batch: 0", "data.batch: 0 is out of range (allowed: a positive integer)"},
		{"seq", "  seq: 32", "  seq: -1", "data.seq: -1 is out of range"},
		{"seq-context", "  seq: 32", "  seq: 64", "data.seq: 64 is out of range (allowed: at most model.max_position_embeddings (32))"},
		{"steps", "  steps: 30", "  steps: 0", "train.steps: 0 is out of range (allowed: an integer >= 1)"},
		{"grad-accum", "  steps: 30", "  steps: 30\n  grad_accum: -1", "train.grad_accum: -1 is out of range"},
		{"eval-batches", "  eval_batches: 4", "  eval_batches: -4", "train.eval_batches: -4 is out of range"},
		{"checkpoint-every", "  keep: 2", "  keep: 2\n  checkpoint_every: -1", "train.checkpoint_every: -1 is out of range"},
		{"keep", "  keep: 2", "  keep: -2", "train.keep: -2 is out of range"},
		{"clip", "  clip_norm: 1", "  clip_norm: -1", "train.clip_norm: -1 is out of range"},
		{"lr", "{weight_decay: 0.1}", "{weight_decay: 0.1, lr: -1}", "train.optimizer.lr: -1 is out of range"},
		{"beta1", "{weight_decay: 0.1}", "{weight_decay: 0.1, beta1: 1}", "train.optimizer.beta1: 1 is out of range"},
		{"beta2", "{weight_decay: 0.1}", "{weight_decay: 0.1, beta2: 1.5}", "train.optimizer.beta2: 1.5 is out of range"},
		{"decay", "{weight_decay: 0.1}", "{weight_decay: -0.1}", "train.optimizer.eps/weight_decay"},
		{"schedule", "kind: cosine", "kind: cosin", "train.schedule:"},
		{"eval-without-val", "val_fraction: 0.1", "val_fraction: 0", "train.eval_every: 30 is out of range (allowed: 0 when data.val_fraction is 0"},
		{"sample-ok", "name: t", "name: t\nsample: {prompts: [hi], max_new_tokens: 4}", ""},
		{"sample-arith-needs-arith", "name: t", "name: t\nsample: {arith: 3}", "sample.arith: 3 is out of range (allowed: 0 unless data.arith generates the data)"},
		{"sample-arith-range", "name: t", "name: t\nsample: {arith: -1}", "sample.arith: -1 is out of range"},
		{"sample-max-new", "name: t", "name: t\nsample: {max_new_tokens: -1}", "sample.max_new_tokens: -1 is out of range"},
		{"sample-temperature", "name: t", "name: t\nsample: {temperature: -1}", "sample.temperature: -1 is out of range"},
		{"lora-needs-checkpoint", "name: t", "name: t\nlora: {r: 4}", "lora: adapters train on a frozen model, so model.checkpoint must name"},
		{"lora-r", "name: t", "name: t\nlora: {r: 0}", "lora.r: 0 is out of range (allowed: a positive rank)"},
		{"lora-alpha", "name: t", "name: t\nlora: {alpha: -1}", "lora.alpha: -1 is out of range"},
		{"lora-dropout", "name: t", "name: t\nlora: {dropout: 1}", "lora.dropout: 1 is out of range (allowed: [0, 1))"},
		{"lora-init", "name: t", "name: t\nlora: {init: xavier}", "lora.init: xavier is out of range (allowed: kaiming or gaussian)"},
		{"lora-targets-type", "name: t", "name: t\nlora: {targets: {q: 1}}", "targets must be a string or a list of strings"},
		{"soft-prompt-needs-checkpoint", "name: t", "name: t\nsoft_prompt: {tokens: 4}", "soft_prompt: a soft prompt trains on a frozen model, so model.checkpoint must name"},
		{"soft-prompt-init", "name: t", "name: t\nsoft_prompt: {init: glove}", "soft_prompt.init: glove is out of range (allowed: random, vocab or text)"},
		{"soft-prompt-text", "name: t", "name: t\nsoft_prompt: {init: text}", "soft_prompt.text: \"\" is out of range"},
		{"soft-prompt-tokens", "name: t", "name: t\nsoft_prompt: {tokens: 0}", "soft_prompt.tokens: 0 is out of range"},
		{"soft-prompt-std", "name: t", "name: t\nsoft_prompt: {std: -1}", "soft_prompt.std: -1 is out of range"},
		{"soft-prompt-export", "name: t", "name: t\nsoft_prompt: {}\nexport: {}", "export: llama.cpp cannot read a soft prompt"},
		{"export-ok", "name: t", "name: t\nexport: {gguf: q4_0}", ""},
		{"export-adapter-needs-lora", "name: t", "name: t\nexport: {adapter: true}", "export.adapter: true is out of range (allowed: false unless the recipe trains LoRA adapters"},
		{"export-type", "name: t", "name: t\nexport: {gguf: q5_k}", "export.gguf: q5_k is out of range (allowed: f32, f16, bf16, q8_0, q6_k, q5_0, q4_k or q4_0)"},
		{"wrong-type-bool", "  shuffle: true", "  shuffle: maybe", `data.shuffle: "maybe" has the wrong type (allowed: true or false)`},
		{"wrong-type-list", "special: [\"<|endoftext|>\"]", "special: 3", `tokenizer.train.special: "3" has the wrong type (allowed: a list of strings)`},
		{"wrong-type-string", "name: t", "name: [t]", "line 1: name: a list has the wrong type (allowed: a string)"},
		{"wrong-type-float", "  steps: 30", "  steps: 1.5", `train.steps: "1.5" has the wrong type (allowed: an integer)`},
		{"wrong-type-number", "peak_lr: 0.01", "peak_lr: fast", `train.schedule.peak_lr: "fast" has the wrong type (allowed: a number)`},
		{"wrong-type-mapping", "  optimizer: {weight_decay: 0.1}", "  optimizer: [1]", "train.optimizer: a list has the wrong type (allowed: a mapping)"},
	})
}

// TestCheckpointTokenizer: a recipe starting from a run's checkpoint may
// leave the tokenizer out and gets that run's, and the file must exist.
func TestCheckpointTokenizer(t *testing.T) {
	run := t.TempDir()
	r := &Recipe{Model: ModelSpec{Checkpoint: run}}
	if got, want := r.TokenizerPath(), filepath.Join(run, TokenizerFile); got != want {
		t.Fatalf("TokenizerPath %q, want %q", got, want)
	}
	r.Tokenizer.Path = "/x/tok.gguf"
	if got := r.TokenizerPath(); got != "/x/tok.gguf" {
		t.Fatalf("tokenizer.path must win, got %q", got)
	}
	src := "name: s\nmethod: sft\nmodel: {checkpoint: " + run + "}\ndata: {arith: {n: 10}, batch: 2, seq: 16}\ntrain: {steps: 1, schedule: {kind: constant, peak_lr: 0.01}}\n"
	rr, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = rr.Validate()
	var fe *FileError
	if !errors.As(err, &fe) || fe.File != filepath.Join(run, TokenizerFile) || !strings.Contains(err.Error(), "model.checkpoint") {
		t.Fatalf("want a FileError naming the run's tokenizer, got %v", err)
	}
	os.WriteFile(filepath.Join(run, TokenizerFile), nil, 0o644)
	if err := rr.Validate(); err != nil {
		t.Fatal(err)
	}
}

// testMethod is a method with a section, registered by TestRegistry.
type testMethod struct{ section string }

type testConfig struct {
	Alpha float64 `yaml:"alpha"`
	Rank  int     `yaml:"rank"`
}

func (m testMethod) Name() string      { return "test-" + m.section }
func (testMethod) Description() string { return "a method for tests" }
func (m testMethod) Section() string   { return m.section }
func (testMethod) NewConfig() any      { return &testConfig{Rank: 4} }
func (testMethod) Validate(r *Recipe) error {
	if c := r.MethodConfig.(*testConfig); c.Rank < 1 {
		return rangeErr("tsec.rank", c.Rank, "1 or more")
	}
	return nil
}
func (testMethod) Run(ctx context.Context, e *Env) (Summary, error) {
	return Summary{Steps: e.Recipe.MethodConfig.(*testConfig).Rank}, nil
}

func TestRegistry(t *testing.T) {
	Register(testMethod{section: "tsec"})
	t.Cleanup(func() {
		registryMu.Lock()
		delete(registry, "test-tsec")
		registryMu.Unlock()
	})
	mustPanic := func(name string, m Method) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: Register did not panic", name)
			}
		}()
		Register(m)
	}
	mustPanic("duplicate", testMethod{section: "tsec"})
	mustPanic("core-key", testMethod{section: "train"})
	mustPanic("empty-name", pretrainLike{})

	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte("to be\n"), 0o644)
	good := strings.Replace(base, "TEXT", text, 1)
	good = strings.Replace(good, "seed: 1", "seed: 1\nmethod: test-tsec\ntsec: {alpha: 0.5}", 1)
	r, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.MethodConfig.(*testConfig)
	if !ok || c.Alpha != 0.5 || c.Rank != 4 {
		t.Fatalf("section decoded to %#v, want alpha 0.5 over the default rank 4", r.MethodConfig)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := r.Marshal()
	if err != nil || !strings.Contains(string(out), "tsec:\n  alpha: 0.5\n  rank: 4\n") {
		t.Fatalf("Marshal lost the section: %v\n%s", err, out)
	}
	if back, err := Parse(out); err != nil || back.MethodConfig.(*testConfig).Alpha != 0.5 {
		t.Fatalf("round trip: %v", err)
	}
	checkRecipeEdits(t, good, []recipeEdit{
		{"section-ok", "", "", ""},
		{"section-unknown-key", "alpha: 0.5", "alpah: 0.5", `tsec.alpah: unknown key "alpah"; did you mean "alpha"?`},
		{"section-type", "alpha: 0.5", "rank: many", `tsec.rank: "many" has the wrong type (allowed: an integer)`},
		{"section-validate", "alpha: 0.5", "rank: 0", "tsec.rank: 0 is out of range (allowed: 1 or more)"},
		{"section-of-other-method", "method: test-tsec", "method: pretrain", `tsec: this section belongs to method: test-tsec, but the recipe's method is "pretrain"`},
	})
	if _, err := Parse([]byte(good), Override{"tsec.rank", "9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(good), Override{"tsec.rnak", "9"}); err == nil || !strings.Contains(err.Error(), `did you mean "rank"?`) {
		t.Fatalf("--set into a section: %v", err)
	}
	r.Out = t.TempDir()
	sum, err := Run(context.Background(), nil, r, nil)
	if err != nil || sum.Steps != 4 || sum.Method != "test-tsec" || !fileExists(filepath.Join(r.Out, SummaryFile)) {
		t.Fatalf("Run through the registry: %+v, %v", sum, err)
	}
}

// pretrainLike has no name, which Register rejects.
type pretrainLike struct{ pretrainMethod }

func (pretrainLike) Name() string { return "" }
