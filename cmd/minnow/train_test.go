package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainGenerate trains a tiny recipe through the CLI and samples from
// its run directory.
func TestTrainGenerate(t *testing.T) {
	if os.Getenv("MINNOW_DATA") == "" {
		t.Skip("MINNOW_DATA is not set")
	}
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	run := filepath.Join(dir, "run")
	os.WriteFile(recipe, []byte(`name: t
model: {model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32, tie_word_embeddings: true}
tokenizer: {train: {vocab_size: 300}}
data: {text: ["${MINNOW_DATA}/text/tinyshakespeare/input.txt"], val_fraction: 0.1, batch: 4, seq: 32}
train: {steps: 20, schedule: {kind: constant, peak_lr: 0.01}, eval_every: 20, eval_batches: 2}
out: `+run+"\n"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"train", []string{"train", recipe}, 0, "step 20/20 loss"},
		{"generate", []string{"generate", "--run", run, "--prompt", "ROMEO:", "--max-new", "8"}, 0, "ROMEO:"},
		{"generate-no-source", []string{"generate", "--prompt", "x"}, 2, "exactly one of --run"},
		{"train-missing", []string{"train", filepath.Join(dir, "none.yaml")}, 2, "none.yaml"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run2(c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String()+errOut.String(), c.want) {
			t.Fatalf("%s: exit %d (want %d), output %q %q, want %q", c.name, code, c.code, out.String(), errOut.String(), c.want)
		}
	}
}

func run2(args []string, out, errOut *bytes.Buffer) int {
	return run(append([]string{"minnow", "--threads", "2"}, args...), out, errOut)
}

func TestProgressBar(t *testing.T) {
	cases := []struct {
		done, total, width int
		want               string
	}{
		{0, 10, 4, "[....]"},
		{5, 10, 4, "[##..]"},
		{10, 10, 4, "[####]"},
		{12, 10, 4, "[####]"},
		{1, 0, 3, "[...]"},
	}
	for _, c := range cases {
		if got := progressBar(c.done, c.total, c.width); got != c.want {
			t.Errorf("progressBar(%d, %d, %d) = %q, want %q", c.done, c.total, c.width, got, c.want)
		}
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}
