package recipes

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minnowml/minnow/tensor/cpu"
)

func TestNewRunDir(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if got, want := NewRunDir("runs", "arith-sft", at), filepath.Join("runs", "arith-sft-20260304-050607"); got != want {
		t.Fatalf("NewRunDir = %q, want %q", got, want)
	}
}

func TestReadMetrics(t *testing.T) {
	cases := []struct {
		name, lines string
		want        []MetricRow
		err         string
	}{
		{"plain", `{"step":1,"loss":2}` + "\n" + `{"step":2,"loss":1.5,"eval_loss":1.7}`,
			[]MetricRow{{"step": 1, "loss": 2}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}}, ""},
		{"resumed-step-replaced", `{"step":1,"loss":2}` + "\n" + `{"step":2,"loss":9}` + "\n" + `{"step":2,"loss":1.5}`,
			[]MetricRow{{"step": 1, "loss": 2}, {"step": 2, "loss": 1.5}}, ""},
		{"extra-line-merged", `{"step":3,"loss":1}` + "\n" + `{"step":3,"arith_accuracy":0.5}`,
			[]MetricRow{{"step": 3, "loss": 1, "arith_accuracy": 0.5}}, ""},
		{"nested-flattened-strings-dropped", `{"step":1,"reward":0.5,"rewards":{"correct":1,"format":0},"samples":["x"],"note":"hi"}`,
			[]MetricRow{{"step": 1, "reward": 0.5, "rewards.correct": 1, "rewards.format": 0}}, ""},
		{"sorted-by-step", `{"step":5,"loss":1}` + "\n\n" + `{"step":4,"loss":2}`,
			[]MetricRow{{"step": 4, "loss": 2}, {"step": 5, "loss": 1}}, ""},
		{"malformed", `{"step":1}` + "\n" + `{"step":`, nil, "metrics.jsonl:2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, MetricsFile), []byte(c.lines), 0o644)
			got, err := ReadMetrics(dir)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ReadMetrics = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestDefaultRunDirs runs a tiny arithmetic recipe twice without out: in
// a fresh directory: each run gets its own runs/<name>-<timestamp>, the
// -latest link follows the newest, and ListRuns lists both once with
// their final metrics.
func TestDefaultRunDirs(t *testing.T) {
	t.Chdir(t.TempDir())
	src := `name: d
description: tiny
model: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64}
tokenizer: {train: {vocab_size: 300, special: ["<|endoftext|>"]}}
data: {arith: {n: 100}, batch: 2, seq: 64, val_fraction: 0.1}
train: {steps: 2, schedule: {kind: constant, peak_lr: 0.01}, eval_every: 2, eval_batches: 1}
sample: {arith: 2, max_new_tokens: 4}
`
	var dirs []string
	for range 2 {
		r, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		sum, err := Run(context.Background(), cpu.New(2), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sum.RunDir != r.Out || !strings.HasPrefix(sum.RunDir, filepath.Join("runs", "d-")) || sum.ArithAccuracy == nil {
			t.Fatalf("summary %+v, recipe out %q", sum, r.Out)
		}
		dirs = append(dirs, sum.RunDir)
	}
	if dirs[0] == dirs[1] {
		t.Fatalf("two runs share %s", dirs[0])
	}
	if target, err := os.Readlink(filepath.Join("runs", "d"+LatestSuffix)); err != nil || target != filepath.Base(dirs[1]) {
		t.Fatalf("latest link -> %q (%v), want %s", target, err, filepath.Base(dirs[1]))
	}
	md, err := os.ReadFile(filepath.Join(dirs[1], SummaryFile))
	if err != nil || !strings.Contains(string(md), "| status | finished |") || !strings.Contains(string(md), "tiny") {
		t.Fatalf("summary.md: %v\n%s", err, md)
	}
	saved, err := os.ReadFile(filepath.Join(dirs[1], RecipeFile))
	if err != nil || !strings.Contains(string(saved), "out: "+dirs[1]) {
		t.Fatalf("recipe.yaml must record the run directory: %v\n%s", err, saved)
	}
	for _, f := range []string{SamplesFile, "arith.txt", TokenizerFile, ConfigFile} {
		if _, err := os.Stat(filepath.Join(dirs[1], f)); err != nil {
			t.Error(err)
		}
	}
	os.MkdirAll(filepath.Join("runs", "not-a-run"), 0o755)
	runs, err := ListRuns("runs")
	if err != nil || len(runs) != 2 {
		t.Fatalf("ListRuns = %+v, %v; want the two runs", runs, err)
	}
	for _, info := range runs {
		if info.Name != "d" || info.Method != MethodPretrain || info.Steps != 2 || info.Last["step"] != 2 ||
			info.Last["eval_loss"] == 0 || info.Last["loss"] == 0 {
			t.Errorf("run info %+v", info)
		}
		if _, ok := info.Last["arith_accuracy"]; !ok {
			t.Errorf("run info lacks the sampled accuracy: %+v", info)
		}
	}
	if one, err := ListRuns(dirs[0]); err != nil || len(one) != 1 || one[0].Dir != dirs[0] {
		t.Fatalf("ListRuns of a run directory = %+v, %v", one, err)
	}
	if _, err := ListRuns("nowhere"); err == nil {
		t.Fatal("ListRuns of a missing directory must fail")
	}
}
