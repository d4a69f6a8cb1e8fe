package recipes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/tensor/cpu"
)

// rlBase pretrains a tiny model on arithmetic for the RL methods to start
// from and returns its run directory.
func rlBase(t *testing.T) string {
	t.Helper()
	src := `name: base
seed: 1
model: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2,
  num_key_value_heads: 1, max_position_embeddings: 96, tie_word_embeddings: true}
tokenizer:
  train: {vocab_size: 300, special: ["<|endoftext|>"]}
data: {arith: {n: 300, max_digits: 2}, batch: 4, seq: 64, shuffle: true}
train: {steps: 10, schedule: {kind: constant, peak_lr: 0.01}}
`
	r := runnable(t, src, filepath.Join(t.TempDir(), "base"))
	if _, err := Run(context.Background(), cpu.New(1), r, nil); err != nil {
		t.Fatal(err)
	}
	return r.Out
}

// rlRecipes are small recipes of each RL method; BASE is the starting run.
var rlRecipes = []struct{ method, src string }{
	{"grpo", `name: g
method: grpo
seed: 2
model: {checkpoint: BASE}
data: {arith: {n: 100, max_digits: 2}, val_fraction: 0.1, batch: 2, seq: 64}
grpo:
  loss: {num_generations: 4, max_completion_length: 24, beta: 0.04}
  sampling: {temperature: 1}
  rewards: [{kind: answer_match}, {kind: soft_overlong, soft_overlong: {max_length: 24, cache: 8}}]
  eval: {prompts: 4}
train: {steps: 4, clip_norm: 1, eval_every: 2, checkpoint_every: 2, keep: 3, schedule: {kind: cosine, peak_lr: 0.01, warmup_steps: 1}}
`},
	{"tldr", `name: t
method: tldr
seed: 2
model: {checkpoint: BASE}
data: {arith: {n: 100, max_digits: 2}, batch: 2, seq: 64}
tldr:
  loss: {num_generations: 4, max_completion_length: 24}
  length: {levels: [{name: short, budget: 8, lambda: 0.5}, {name: long, budget: 24, lambda: 0.1}]}
  rewards: [{kind: answer_match}, {kind: tldr_length}]
  eval: {prompts: 4}
  thinking_temperatures: [0.5, 2]
  thinking_budgets: [4, 12]
  budget_close: "\n####"
train: {steps: 4, clip_norm: 1, checkpoint_every: 2, keep: 3, schedule: {kind: cosine, peak_lr: 0.01, warmup_steps: 1}}
`},
	{"dpo", `name: d
method: dpo
seed: 2
model: {checkpoint: BASE}
data: {arith: {n: 40, max_digits: 2}, batch: 4, seq: 64}
dpo:
  pairs: {generations: 4, max_completion_length: 24}
  rewards: [{kind: answer_match}, {kind: soft_overlong, soft_overlong: {max_length: 24, cache: 20}}]
  eval: {prompts: 8}
train: {steps: 4, clip_norm: 1, checkpoint_every: 2, keep: 3, schedule: {kind: cosine, peak_lr: 0.01, warmup_steps: 1}}
`},
}

// updateLines returns the metrics lines with a loss (the updates) by step,
// without timings, which differ between runs.
func updateLines(t *testing.T, dir string) map[int]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["loss"]; !ok {
			continue
		}
		for _, k := range []string{"generation_s", "step_s", "time", "elapsed_s", "tokens_per_s"} {
			delete(m, k)
		}
		b, _ := json.Marshal(m)
		out[int(m["step"].(float64))] = string(b)
	}
	return out
}

// TestRLMethodsResumeExactly runs each RL method uninterrupted, and again
// cancelled after step 2 (which saves a checkpoint) and rerun on the same
// directory, and checks that the resumed run samples and trains exactly
// as the uninterrupted one: the same metrics lines (rewards, lengths,
// losses) and the same final weights and optimizer state.
func TestRLMethodsResumeExactly(t *testing.T) {
	base := rlBase(t)
	be := cpu.New(1)
	for _, c := range rlRecipes {
		t.Run(c.method, func(t *testing.T) {
			src := strings.ReplaceAll(c.src, "BASE", base)
			run := func(dir string, stopAt int) (Summary, error) {
				r := runnable(t, src, dir)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				return Run(ctx, be, r, func(p Progress) {
					if p.Step == stopAt {
						cancel()
					}
				})
			}
			whole := filepath.Join(t.TempDir(), "whole")
			sum, err := run(whole, 0)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Steps != 4 || sum.Extra["held-out accuracy, end"] == "" && c.method != "dpo" {
				t.Fatalf("summary %+v", sum)
			}
			if c.method == "tldr" {
				checkThinkingControls(t, whole, sum)
			}
			parted := filepath.Join(t.TempDir(), "parted")
			if sum, err := run(parted, 2); err == nil || sum.Steps != 2 {
				t.Fatalf("cancelled run: summary %+v, error %v; want it stopped at step 2 with the context's error", sum, err)
			}
			if _, err := os.Stat(filepath.Join(parted, "step-000002.ckpt")); err != nil {
				t.Fatal(err)
			}
			sum, err = run(parted, 0)
			if err != nil || sum.StartStep != 2 || sum.Steps != 4 {
				t.Fatalf("resumed run: summary %+v, error %v", sum, err)
			}
			want, got := updateLines(t, whole), updateLines(t, parted)
			if len(want) != 4 {
				t.Fatalf("%d update lines, want 4", len(want))
			}
			for s := 1; s <= 4; s++ {
				if got[s] != want[s] {
					t.Errorf("step %d:\nresumed       %s\nuninterrupted %s", s, got[s], want[s])
				}
			}
			a, err := checkpoint.Load(filepath.Join(whole, "step-000004.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := checkpoint.Load(filepath.Join(parted, "step-000004.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			all := func(c *checkpoint.Checkpoint) []checkpoint.NamedTensor {
				return append(append([]checkpoint.NamedTensor{}, c.Tensors...), c.Optimizer.Tensors...)
			}
			ta, tb := all(a), all(b)
			if len(ta) != len(tb) || len(a.Optimizer.Tensors) == 0 || a.Optimizer.Step != 4 {
				t.Fatalf("checkpoints of %d and %d tensors, optimizer step %d", len(ta), len(tb), a.Optimizer.Step)
			}
			for i := range ta {
				if ta[i].Name != tb[i].Name || !bytes.Equal(ta[i].Data, tb[i].Data) {
					t.Errorf("tensor %s differs after resuming", ta[i].Name)
				}
			}
		})
	}
}

// checkThinkingControls checks that the TLDR run in dir logged one line
// per thinking temperature (0.5, 2) and budget (4, 12) of rlRecipes and
// put each set in its summary. (rl's TestBudgetForcing and
// TestThinkingTemperatureMovesLength check what the settings do.)
func checkThinkingControls(t *testing.T, dir string, sum Summary) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	lens := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if v, ok := m["thinking_temperature"]; ok {
			lens[fmt.Sprint("T", v)] = m["ts_completion_length_mean"].(float64)
		}
		if v, ok := m["thinking_budget"]; ok {
			lens[fmt.Sprint("B", v)] = m["bf_completion_length_mean"].(float64)
		}
	}
	for _, k := range []string{"T0.5", "T2", "B4", "B12"} {
		if _, ok := lens[k]; !ok {
			t.Errorf("metrics lack %s: %v", k, lens)
		}
	}
	for label, want := range map[string][]string{"thinking temperature": {"T=0.5:", "T=2:"}, "budget forcing": {"B=4:", "B=12:"}} {
		for _, w := range want {
			if !strings.Contains(sum.Extra[label], w) {
				t.Errorf("summary %q = %q, want %s in it", label, sum.Extra[label], w)
			}
		}
	}
}

// TestTLDRBudgetCloseFailsEarly: a budget_close without the end token is
// an error naming the key before the first step, not after training.
func TestTLDRBudgetCloseFailsEarly(t *testing.T) {
	src := strings.ReplaceAll(rlRecipes[1].src, "BASE", rlBase(t))
	src = strings.Replace(src, `budget_close: "\n####"`, `budget_close: "zz"`, 1)
	r := runnable(t, src, t.TempDir())
	steps := 0
	_, err := Run(context.Background(), cpu.New(1), r, func(p Progress) { steps = max(steps, p.Step) })
	if err == nil || !strings.Contains(err.Error(), "tldr.budget_close") || steps > 0 {
		t.Fatalf("error %v after %d steps, want a tldr.budget_close error before step 1", err, steps)
	}
}

// TestRLValidate: the RL sections' errors name the key.
func TestRLValidate(t *testing.T) {
	const good = `name: v
method: METHOD
model: {checkpoint: CK}
data: {arith: {n: 10}, batch: 2, seq: 64}
train: {steps: 1, schedule: {kind: constant, peak_lr: 0.001}}
`
	ck := rlBase(t)
	cases := []struct {
		method, section, want string
	}{
		{"grpo", "grpo: {rewards: [{kind: answer_match}]}", ""},
		{"grpo", "grpo: {}", "grpo.rewards"},
		{"grpo", "grpo: {rewards: [{kind: nope}]}", `unknown kind "nope"`},
		{"grpo", "grpo: {rewards: [{kind: answer_match}], loss: {loss_type: ppo}}", "grpo.loss"},
		{"grpo", "grpo: {rewards: [{kind: answer_match}], loss: {num_generations: 1}}", "grpo.loss"},
		{"grpo", "grpo: {rewards: [{kind: answer_match}], sampling: {top_p: 2}}", "grpo.sampling"},
		{"grpo", "grpo: {rewards: [{kind: answer_match}], length: {levels: [{name: s, budget: 8}]}}", "grpo.length"},
		{"grpo", "grpo: {rewards: [{kind: tldr}]}", "tldr levels"},
		{"grpo", "grpo: {rewards: [{kind: answer_match}], eval: {prompts: -1}}", "grpo.eval.prompts"},
		{"tldr", "tldr: {rewards: [{kind: answer_match}, {kind: tldr_length}]}", ""},
		{"tldr", "tldr: {rewards: [{kind: tldr}], length: {levels: [{name: s, budget: 0}]}}", "tldr.length"},
		{"tldr", "tldr: {rewards: [{kind: tldr}], thinking_temperatures: [0]}", "tldr.thinking_temperatures[0]"},
		{"tldr", "tldr: {rewards: [{kind: tldr}], thinking_budgets: [8, 0]}", "tldr.thinking_budgets[1]"},
		{"tldr", "tldr: {rewards: [{kind: tldr}], thinking_budgets: [8], end_of_thinking: ''}", "tldr.end_of_thinking"},
		{"grpo", "grpo: {rewards: [{kind: answer_match}], thinking_budgets: [8]}", "grpo.thinking_budgets"},
		{"dpo", "dpo: {}", ""},
		{"dpo", "dpo: {loss: {beta: -1}}", "dpo.loss"},
		{"dpo", "dpo: {pairs: {generations: 1}}", "dpo.pairs.generations"},
		{"dpo", "dpo: {rewards: [{kind: format}]}", "dpo.rewards"},
	}
	for _, c := range cases {
		t.Run(c.section, func(t *testing.T) {
			src := strings.NewReplacer("METHOD", c.method, "CK", ck).Replace(good) + c.section + "\n"
			r, err := Parse([]byte(src))
			if err == nil {
				err = r.Validate()
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	// Without prompts, RL refuses.
	for _, edit := range []struct{ from, to, want string }{
		{"data: {arith: {n: 10},", "data: {", "data.jsonl"},
	} {
		src := strings.NewReplacer("METHOD", "dpo", edit.from, edit.to).Replace(good)
		src = strings.ReplaceAll(src, "CK", ck) + "dpo: {}\n"
		r, err := Parse([]byte(src))
		if err == nil {
			err = r.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), edit.want) {
			t.Errorf("%s: error %v, want one naming %s", edit.to, err, edit.want)
		}
	}
}

// TestBuiltinMethodFirst: grpo-arith names the built-in arith-grpo.
func TestBuiltinMethodFirst(t *testing.T) {
	for _, c := range []struct{ name, same string }{{"grpo-arith", "arith-grpo"}, {"tldr-arith", "arith-tldr"}, {"dpo-arith", "arith-dpo"}, {"sft-arith", "arith-sft"}} {
		a, err := Builtin(c.name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Builtin(c.same)
		if !bytes.Equal(a, b) {
			t.Errorf("%s is not %s", c.name, c.same)
		}
	}
	if _, err := Builtin("nope-arith"); err == nil {
		t.Error("nope-arith found")
	}
}

// TestRLJSONLPrompts: GRPO reads prompt records with an answer column from
// data.jsonl, holds out the last ones, and names the line of a bad record.
func TestRLJSONLPrompts(t *testing.T) {
	base := rlBase(t)
	dir := t.TempDir()
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, "{\"prompt\": \"What is %d + 1?\\n\", \"answer\": %d}\n", i, i+1)
	}
	good := filepath.Join(dir, "good.jsonl")
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(good, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{\"prompt\": \"a\"}\n{\"answer\": 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{{good, ""}, {bad, "bad.jsonl:2: no \"prompt\""}} {
		src := `name: j
method: grpo
seed: 2
model: {checkpoint: ` + base + `}
data: {jsonl: [` + c.file + `], batch: 2, seq: 64}
grpo:
  loss: {num_generations: 2, max_completion_length: 16}
  rewards: [{kind: answer_match}]
  eval: {prompts: 3}
train: {steps: 2, schedule: {kind: constant, peak_lr: 0.001}}
`
		r := runnable(t, src, filepath.Join(t.TempDir(), "run"))
		sum, err := Run(context.Background(), cpu.New(1), r, nil)
		switch {
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one naming %q", c.file, err, c.want)
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.file, err)
		case c.want == "" && (sum.Steps != 2 || sum.Extra["held-out accuracy, end"] == ""):
			t.Errorf("%s: summary %+v", c.file, sum)
		}
	}
}

// TestMarshalKeepsDefaults: a resolved recipe (recipe.yaml, which --resume
// reads) means what the recipe meant. A list left out asks for a default
// and must stay out; written as [], a resumed GRPO run sampled with no stop
// token at all and its accuracy fell to 0.
func TestMarshalKeepsDefaults(t *testing.T) {
	src, err := Builtin("arith-grpo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		sets     []Override
		wantNone bool // stop_tokens: [] (no stop token) rather than the default
	}{
		{"default", nil, false},
		{"none", []Override{{Path: "grpo.sampling.stop_tokens", Value: "[]"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(src, tc.sets...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(b)
			if err != nil {
				t.Fatalf("%v in\n%s", err, b)
			}
			for i, rr := range []*Recipe{r, again} {
				c := rr.MethodConfig.(*GRPOSection)
				if got := c.Sampling.StopTokens != nil; got != tc.wantNone || (got && len(c.Sampling.StopTokens) != 0) {
					t.Errorf("read %d: stop_tokens %#v, want none %v", i, c.Sampling.StopTokens, tc.wantNone)
				}
				if c.Rewards[0].AnswerMatch.Extract != nil {
					t.Errorf("read %d: extract %#v, want nil (all three)", i, c.Rewards[0].AnswerMatch.Extract)
				}
			}
		})
	}
}
