package recipes

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/train"
)

func tinySFTModel(t *testing.T, be tensor.Backend, seed uint64) model.Model {
	t.Helper()
	cfg := model.Config{ModelType: "llama", VocabSize: 24, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 32}
	m, err := model.New(cfg, be, tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// allTrainable returns an example whose every token is a target, so that
// every position's loss is compared.
func allTrainable(ids ...int32) data.SFTSequence {
	tr := make([]bool, len(ids))
	for i := range tr {
		tr[i] = true
	}
	return data.SFTSequence{IDs: ids, Trainable: tr}
}

// perToken returns the per-token losses of one packed batch, passing
// positions and mask to the model when given.
func perToken(t *testing.T, m model.Model, b train.Batch) []float32 {
	t.Helper()
	var out []float32
	err := tensor.Catch(func() {
		tensor.NoGrad(func() {
			logits := m.Forward(b.IDs, model.ForwardOptions{Positions: b.Positions, Mask: b.Mask})
			pt, _ := tensor.CrossEntropy(logits, b.Targets)
			out = pt.Float32s()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPackedLossesEqualAlone is the proof that packing is sound: the
// per-token losses of two examples packed into one row, under the
// document mask and restarted positions, equal each example's losses
// when run alone, so packed examples do not see each other.
func TestPackedLossesEqualAlone(t *testing.T) {
	be := cpu.New(2)
	m := tinySFTModel(t, be, 7)
	for _, tc := range []struct {
		name string
		a, b data.SFTSequence
	}{
		{"5+6", allTrainable(1, 5, 9, 3, 7), allTrainable(2, 4, 6, 8, 10, 12)},
		{"3+8", allTrainable(11, 2, 3), allTrainable(4, 4, 5, 19, 20, 1, 2, 23)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seqLen := len(tc.a.IDs) + len(tc.b.IDs) - 1
			rows, err := data.PackSFT([]data.SFTSequence{tc.a, tc.b}, seqLen, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			alone := func(s data.SFTSequence) []float32 {
				r, err := data.PackSFT([]data.SFTSequence{s}, len(s.IDs)-1, 0)
				if err != nil {
					t.Fatal(err)
				}
				// Run alone with no mask and default positions at all.
				b := train.Batch{IDs: tensor.From(be, tensor.Int32, r[0].IDs, 1, len(s.IDs)-1),
					Targets: tensor.From(be, tensor.Int32, r[0].Targets, 1, len(s.IDs)-1)}
				defer b.Release()
				return perToken(t, m, b)
			}
			src, err := PackedBatches(rows, be, tensor.Float32, 1, 1, false)
			if err != nil {
				t.Fatal(err)
			}
			b, err := src.Next()
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			packed := perToken(t, m, b)
			la, lb := alone(tc.a), alone(tc.b)
			na := len(tc.a.IDs)
			want := append(append(append([]float32{}, la...), 0), lb...)
			if len(want) != len(packed) {
				t.Fatalf("%d packed losses, want %d", len(packed), len(want))
			}
			for i := range want {
				if math.Abs(float64(packed[i]-want[i])) > 1e-5 {
					t.Fatalf("token %d (first example has %d tokens): packed loss %v, alone %v", i, na, packed[i], want[i])
				}
			}
			// Without the mask the second example sees the first, which
			// is what the test must be able to detect.
			b.Mask.Release()
			b.Mask = nil
			leak := perToken(t, m, b)
			if math.Abs(float64(leak[na+1]-want[na+1])) < 1e-6 {
				t.Fatalf("unmasked loss %v equals the isolated one: the test cannot see leaks", leak[na+1])
			}
		})
	}
}

// sftPairs returns prompt/completion examples whose completion (the
// prompt's tokens reversed, then EOS) is learnable from the prompt.
func sftPairs() []data.SFTSequence {
	const sep, eos = 21, 22
	prompts := [][]int32{{1, 2, 3}, {4, 5}, {6, 7, 8, 9}, {10, 11}, {12, 13, 14}, {15, 16}}
	var out []data.SFTSequence
	for _, p := range prompts {
		s := data.SFTSequence{}
		for _, id := range append(append([]int32{}, p...), sep) {
			s.IDs, s.Trainable = append(s.IDs, id), append(s.Trainable, false)
		}
		for i := len(p) - 1; i >= 0; i-- {
			s.IDs, s.Trainable = append(s.IDs, p[i]), append(s.Trainable, true)
		}
		s.IDs, s.Trainable = append(s.IDs, eos), append(s.Trainable, true)
		out = append(out, s)
	}
	return out
}

func TestSFTTrainingLowersCompletionLoss(t *testing.T) {
	be := cpu.New(2)
	m := tinySFTModel(t, be, 3)
	rows, err := data.PackSFT(sftPairs(), 15, 0)
	if err != nil {
		t.Fatal(err)
	}
	evalLoss := func() float64 {
		src, err := PackedBatches(rows, be, tensor.Float32, len(rows), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		l, err := train.Evaluate(m, SFT{}, src, 1)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := evalLoss()
	decay, keep := model.DecaySplit(m.Params())
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2},
		train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		t.Fatal(err)
	}
	src, err := PackedBatches(rows, be, tensor.Float32, 2, 42, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := train.Loop(context.Background(), m, opt, SFT{}, src, train.LoopConfig{Steps: 60}); err != nil {
		t.Fatal(err)
	}
	after := evalLoss()
	t.Logf("completion loss %.3f -> %.3f", before, after)
	if after > before/2 {
		t.Fatalf("completion loss %v -> %v, want it at least halved", before, after)
	}
}

func TestPackedBatchesCursor(t *testing.T) {
	be := cpu.New(2)
	rows, err := data.PackSFT(sftPairs(), 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(b train.Batch) []int32 { defer b.Release(); return b.IDs.Int32s() }
	a, err := PackedBatches(rows, be, tensor.Float32, 2, 9, true)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.Next(); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := a.Cursor()
	if err != nil {
		t.Fatal(err)
	}
	b, err := PackedBatches(rows, be, tensor.Float32, 2, 9, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Seek(cur); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		x, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(x), ids(y)) {
			t.Fatalf("batch %d after seeking differs", i)
		}
	}
	for _, tc := range []struct {
		name, cursor, want string
	}{
		{"malformed", `{`, "cursor"},
		{"other data", `{"rows":1,"cursor":{"epoch":0,"index":0}}`, "cursor of 1 rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Seek([]byte(tc.cursor)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPackedBatchesErrors(t *testing.T) {
	be := cpu.New(2)
	row := data.PackedRow{IDs: []int32{1, 2}, Targets: []int32{2, -100}, DocLens: []int{2}, Positions: []int32{0, 1}}
	short := data.PackedRow{IDs: []int32{1}, Targets: []int32{-100}, DocLens: []int{1}, Positions: []int32{0}}
	for _, tc := range []struct {
		name  string
		rows  []data.PackedRow
		be    tensor.Backend
		batch int
		want  string
	}{
		{"no rows", nil, be, 1, "no rows"},
		{"batch", []data.PackedRow{row}, be, 0, "batch size"},
		{"backend", []data.PackedRow{row}, nil, 1, "no backend"},
		{"lengths", []data.PackedRow{row, short}, be, 1, "row 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := PackedBatches(tc.rows, tc.be, tensor.Float32, tc.batch, 0, false); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSFTLossNeedsModel checks that a packed batch is refused for a model
// that cannot take the packing inputs, instead of silently leaking.
func TestSFTLossNeedsModel(t *testing.T) {
	be := cpu.New(2)
	b := train.Batch{Mask: tensor.Full(be, tensor.Float32, 0, 1, 1, 1)}
	defer b.Release()
	if _, err := (SFT{}).Loss(lossOnly{}, b); err == nil || !strings.Contains(err.Error(), "needs a model.Model") {
		t.Fatalf("error %v", err)
	}
}

type lossOnly struct{}

func (lossOnly) Loss(ids, targets *tensor.Tensor) *tensor.Tensor { return nil }

// sftBase is a recipe fine-tuning a tiny llama on chat-formatted
// prompt/completion pairs with the GPT-2 vocabulary.
const sftBase = `name: sft
method: sft
seed: 1
model:
  model_type: llama
  hidden_size: 32
  intermediate_size: 64
  num_hidden_layers: 1
  num_attention_heads: 2
  max_position_embeddings: 64
  tie_word_embeddings: true
tokenizer:
  path: ${MINNOW_DATA}/llama-vocab/ggml-vocab-gpt-2.gguf
data:
  jsonl: ["JSONL"]
  chat_template: chatml
  val_fraction: 0.2
  batch: 4
  seq: 64
  shuffle: true
train:
  steps: 40
  clip_norm: 1
  optimizer: {weight_decay: 0.0}
  schedule: {kind: constant, peak_lr: 0.01}
  eval_every: 40
  eval_batches: 2
`

func writeSFTData(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "{\"prompt\": \"What is %d plus %d?\", \"completion\": \"%d\"}\n", i, i, 2*i)
	}
	path := filepath.Join(t.TempDir(), "sft.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSFTRecipe runs method: sft end to end through Run: the loss on the
// completions falls, and the eval loss is reported.
func TestSFTRecipe(t *testing.T) {
	if os.Getenv("MINNOW_DATA") == "" {
		t.Skip("MINNOW_DATA is not set; the recipe uses the GPT-2 vocabulary")
	}
	r := runnable(t, strings.Replace(sftBase, "JSONL", writeSFTData(t), 1), t.TempDir())
	var losses []float64
	sum, err := Run(context.Background(), cpu.New(2), r, func(p Progress) { losses = append(losses, p.Loss) })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Steps != 40 || sum.EvalLoss == 0 || losses[len(losses)-1] > losses[0]/2 {
		t.Fatalf("summary %+v, losses %.3f -> %.3f: the completion loss should at least halve", sum, losses[0], losses[len(losses)-1])
	}
}

func TestSFTRecipeValidation(t *testing.T) {
	jsonl := writeSFTData(t)
	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte("hello\n"), 0o644)
	good := strings.Replace(sftBase, "JSONL", jsonl, 1)
	good = strings.Replace(good, "${MINNOW_DATA}/llama-vocab/ggml-vocab-gpt-2.gguf", jsonl, 1) // any existing file passes validation
	checkRecipeEdits(t, good, []recipeEdit{
		{"ok", "", "", ""},
		{"bad-method", "method: sft", "method: rl", `method: "rl" is out of range (allowed: distill, dpo, grpo, pretrain, sft, tldr)`},
		{"sft-needs-jsonl", `  jsonl: ["` + jsonl + `"]`, `  text: ["` + text + `"]`, "data.jsonl: list at least one JSONL file"},
		{"sft-no-text", `  jsonl: ["` + jsonl + `"]`, `  jsonl: ["` + jsonl + `"]` + "\n  text: [\"" + text + `"]`, "data.text: method sft reads data.jsonl"},
		{"sft-own-tokenizer", "  path: " + jsonl, "  train: {vocab_size: 300}", "tokenizer.train: method sft fine-tunes with the model's own tokenizer"},
		{"bad-template", "chat_template: chatml", "chat_template: alpaca", "data.chat_template:"},
		{"missing-jsonl", `  jsonl: ["` + jsonl + `"]`, `  jsonl: ["/nope/x.jsonl"]`, "data.jsonl[0]: file /nope/x.jsonl does not exist"},
		{"pretrain-with-jsonl", "method: sft", "method: pretrain", "data.text: list at least one text file"},
		{"eval-needs-cap", "  eval_batches: 2\n", "", "train.eval_batches:"},
	})
}

// TestArithLevels: data.arith.levels writes a level into
// data.arith.level_fraction of the training prompts, the same ones on
// every call; verbose solutions pass through to the examples, and
// level_verbose pads each level's at its own rate.
func TestArithLevels(t *testing.T) {
	tests := []struct {
		name    string
		verbose float64
		levels  []float64
		// padded is the fraction of each level's solutions that must be
		// padded (none, short, medium, long); -1 means any.
		padded [4]float64
	}{
		{"verbose", 1, nil, [4]float64{1, 1, 1, 1}},
		{"level-verbose", 0.5, []float64{0, 1, 1}, [4]float64{-1, 0, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := &ArithSpec{N: 400, Ops: []string{"+", "-"}, Verbose: tc.verbose, VerboseWhole: true,
				Levels: []string{"short", "medium", "long"}, LevelFraction: 0.5, LevelVerbose: tc.levels}
			if err := spec.validate(); err != nil {
				t.Fatal(err)
			}
			e := &Env{Recipe: &Recipe{Seed: 3, Data: DataSpec{Arith: spec}}, Dir: t.TempDir()}
			prompts, ps, err := e.arithExamples()
			if err != nil {
				t.Fatal(err)
			}
			again, _, _ := e.arithExamples()
			counts, padded := map[string]int{}, map[string]int{}
			for i, p := range prompts {
				if p != again[i] {
					t.Fatalf("prompt %d: %q, then %q", i, p, again[i])
				}
				level := "none"
				if rest, ok := strings.CutPrefix(p, "Think "); ok {
					level, _, _ = strings.Cut(rest, ".\n")
				}
				if want := ArithPrompt(ps[i].Question); !strings.HasSuffix(p, want) {
					t.Fatalf("prompt %d: %q does not end with %q", i, p, want)
				}
				counts[level]++
				if strings.Contains(ps[i].Solution, "Let me work it out") {
					padded[level]++
				}
			}
			if counts["none"] < 160 || counts["none"] > 240 || counts["short"] < 40 || counts["medium"] < 40 || counts["long"] < 40 || len(counts) != 4 {
				t.Errorf("levels %v: want about 200 plain and 67 of each level", counts)
			}
			for i, level := range []string{"none", "short", "medium", "long"} {
				if want := tc.padded[i]; want >= 0 && float64(padded[level]) != want*float64(counts[level]) {
					t.Errorf("%s: %d of %d solutions padded, want a fraction %v", level, padded[level], counts[level], want)
				}
			}
		})
	}
	bad := &ArithSpec{N: 10, Levels: []string{"short", "long"}, LevelVerbose: []float64{0.5}, VerboseWhole: true}
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "data.arith.level_verbose") {
		t.Errorf("one rate for two levels: %v", err)
	}
}
