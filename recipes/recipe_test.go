package recipes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor/cpu"
)

const base = `name: t
seed: 1
model:
  model_type: llama
  hidden_size: 32
  intermediate_size: 64
  num_hidden_layers: 1
  num_attention_heads: 2
  max_position_embeddings: 32
  tie_word_embeddings: true
tokenizer:
  train: {vocab_size: 300, special: ["<|endoftext|>"]}
data:
  text: ["TEXT"]
  val_fraction: 0.1
  batch: 4
  seq: 32
  shuffle: true
train:
  steps: 30
  clip_norm: 1
  optimizer: {weight_decay: 0.1}
  schedule: {kind: cosine, peak_lr: 0.01, warmup_steps: 3}
  eval_every: 30
  eval_batches: 4
  keep: 2
`

func TestStrictness(t *testing.T) {
	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte(strings.Repeat("to be or not to be\n", 50)), 0o644)
	good := strings.Replace(base, "TEXT", text, 1)
	checkRecipeEdits(t, good, []recipeEdit{
		{"ok", "", "", ""},
		{"unknown-key", "  clip_norm: 1", "  clip_nrom: 1", `line 21: train.clip_nrom: unknown key "clip_nrom"`},
		{"unknown-nested", "{weight_decay: 0.1}", "{weight_decay: 0.1, lr_max: 1}", `train.optimizer.lr_max: unknown key "lr_max"`},
		{"unknown-model-field", "  hidden_size: 32", "  hiden_size: 32", "model.hiden_size: unknown key"},
		{"wrong-type", "  batch: 4", "  batch: four", `line 16: data.batch: "four" has the wrong type (allowed: an integer)`},
		{"bad-value", "val_fraction: 0.1", "val_fraction: 1.5", "data.val_fraction: 1.5 is out of range (allowed: 0 <= val_fraction < 1)"},
		{"bad-kind", "kind: cosine", "kind: cosin", "train.schedule:"},
		{"missing-file", text, "/nope/x.txt", "data.text[0]: file /nope/x.txt does not exist"},
		{"two-tokenizers", "  train: {vocab_size", "  path: x\n  train: {vocab_size", "tokenizer: give exactly one"},
	})
}

func TestBuiltinParses(t *testing.T) {
	b, err := Builtin("shakespeare-pretrain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}

// TestRunResumes trains a tiny model on Tiny Shakespeare, then runs the
// same recipe with more steps and checks that it resumes.
// runnable parses src, sets its run directory to out and validates it,
// failing t on any error.
func runnable(t *testing.T, src, out string) *Recipe {
	t.Helper()
	r, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r.Out = out
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunResumes(t *testing.T) {
	dataDir := os.Getenv("MINNOW_DATA")
	if dataDir == "" {
		t.Skip("MINNOW_DATA is not set")
	}
	src := strings.Replace(base, "TEXT", "${MINNOW_DATA}/text/tinyshakespeare/input.txt", 1)
	r := runnable(t, src, t.TempDir())
	be := cpu.New(2)
	var losses []float64
	sum, err := Run(context.Background(), be, r, func(p Progress) { losses = append(losses, p.Loss) })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps != 30 || sum.EvalLoss == 0 || losses[len(losses)-1] >= losses[0]-0.5 {
		t.Fatalf("summary %+v, losses %v", sum, losses)
	}
	for _, f := range []string{RecipeFile, TokenizerFile, ConfigFile, MetricsFile} {
		if _, err := os.Stat(filepath.Join(r.Out, f)); err != nil {
			t.Error(err)
		}
	}
	// No evaluation this time: the summary keeps the first run's.
	first := sum.EvalLoss
	r.Train.Steps, r.Train.EvalEvery = 35, 0
	sum, err = Run(context.Background(), be, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.StartStep != 30 || sum.Steps != 35 || sum.EvalLoss != first {
		t.Fatalf("second run %+v, want it to resume at 30, end at 35 and keep eval loss %v", sum, first)
	}
}

// TestCheckpointRecordsRun: a run's checkpoints carry the recipe and the
// tokenizer reference besides the weights.
func TestCheckpointRecordsRun(t *testing.T) {
	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte(strings.Repeat("to be or not to be\n", 200)), 0o644)
	r, err := Parse([]byte(strings.Replace(base, "TEXT", text, 1)))
	if err != nil {
		t.Fatal(err)
	}
	r.Out, r.Train.Steps, r.Train.EvalEvery = t.TempDir(), 5, 0
	if _, err := Run(context.Background(), cpu.New(2), r, nil); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCheckpoint(r.Out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tokenizer != TokenizerFile || !strings.Contains(string(c.Recipe), "name: t") || c.Arch != "llama" {
		t.Fatalf("checkpoint records tokenizer %q, arch %q, recipe %q", c.Tokenizer, c.Arch, c.Recipe)
	}
}

// recipeEdit applies one textual edit to a valid recipe and names the
// error Parse or Validate must then give ("" for none).
type recipeEdit struct{ name, old, new, want string }

// checkRecipeEdits runs each edit of good as a subtest.
func checkRecipeEdits(t *testing.T, good string, cases []recipeEdit) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := good
			if c.old != "" {
				if !strings.Contains(src, c.old) {
					t.Fatalf("test setup: %q not in the recipe", c.old)
				}
				src = strings.Replace(src, c.old, c.new, 1)
			}
			r, err := Parse([]byte(src))
			if err == nil {
				err = r.Validate()
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid recipe rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}
