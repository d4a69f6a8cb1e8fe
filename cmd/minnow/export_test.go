package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// tinyRun writes a run directory holding a random tiny Llama's step-0
// checkpoint and its tokenizer.gguf, as training leaves one.
func tinyRun(t *testing.T) (dir string, m model.Model) {
	t.Helper()
	dir = t.TempDir()
	v, err := tokenizer.Train(strings.NewReader(strings.Repeat("hello world, hello minnow. ", 30)), tokenizer.TrainConfig{VocabSize: 280, Special: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	be := cpu.New(1)
	m, err = model.New(model.Config{ModelType: "llama", VocabSize: len(v.Tokens), HiddenSize: 32, IntermediateSize: 64,
		NumHiddenLayers: 1, NumAttentionHeads: 2, MaxPositionEmbeddings: 32, TieWordEmbeddings: true}, be, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var ts []*tensor.Tensor
	for _, p := range m.Params() {
		names, ts = append(names, p.Name), append(ts, p.Tensor)
	}
	weights, err := checkpoint.FromTensors("", names, ts)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := m.Config().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	d, err := checkpoint.OpenDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(&checkpoint.Checkpoint{Arch: "llama", Config: cj, Tensors: weights, Tokenizer: recipes.TokenizerFile}); err != nil {
		t.Fatal(err)
	}
	if err := gguf.WriteFile(filepath.Join(dir, recipes.TokenizerFile), v.GGUFMetadata(), nil); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// TestExportInspect exports a tiny checkpoint through the CLI in each
// type, reads the file back, and inspects it.
func TestExportInspect(t *testing.T) {
	run, m := tinyRun(t)
	out := filepath.Join(t.TempDir(), "m.gguf")
	ckFile, _ := filepath.Glob(filepath.Join(run, "step-*.ckpt"))
	if len(ckFile) != 1 {
		t.Fatalf("checkpoint files: %v", ckFile)
	}
	tmpl := filepath.Join(t.TempDir(), "t.jinja")
	os.WriteFile(tmpl, []byte("{% for m in messages %}{{ m.content }}{% endfor %}"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"f32", []string{"export", "gguf", "--checkpoint", run, "--type", "f32", "--out", out, "--name", "tiny"}, 0, "F32 weights"},
		{"q8_0-file", []string{"export", "gguf", "--checkpoint", ckFile[0], "--type", "q8_0", "--out", out}, 0, "Q8_0 weights"},
		{"q4_0-template", []string{"export", "gguf", "--checkpoint", run, "--type", "Q4_0", "--out", out, "--chat-template", tmpl}, 0, "Q4_0 weights"},
		{"inspect", []string{"inspect", out}, 0, "blk.0.attn_q.weight"},
		// Rows narrower than Q4_K's 256-value blocks fall back to Q5_0, and
		// the message counts what the file holds.
		{"q4_k-fallback", []string{"export", "gguf", "--checkpoint", run, "--type", "q4_k", "--out", out}, 0, "Q4_K weights; tensors: "},
		{"q4_k-fallback-types", []string{"export", "gguf", "--checkpoint", run, "--type", "q4_k", "--out", out}, 0, " Q5_0"},
		{"bad-type", []string{"export", "gguf", "--checkpoint", run, "--type", "q5_k", "--out", out}, 2, "unknown GGUF type"},
		{"no-checkpoint", []string{"export", "gguf", "--checkpoint", filepath.Join(run, "none"), "--out", out}, 2, "none"},
		{"no-out", []string{"export", "gguf", "--checkpoint", run}, 2, "out"},
		{"no-tokenizer", []string{"export", "gguf", "--checkpoint", t.TempDir(), "--out", out}, 2, ""},
		{"inspect-none", []string{"inspect"}, 2, "one GGUF file"},
		{"inspect-bad", []string{"inspect", tmpl}, 2, ""},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run2(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String()+stderr.String(), c.want) {
			t.Fatalf("%s: exit %d (want %d), output %q %q, want %q", c.name, code, c.code, stdout.String(), stderr.String(), c.want)
		}
		if c.name == "inspect" {
			for _, want := range []string{"general.architecture", `"llama"`, "tokenizer.ggml.tokens", fmt.Sprintf("[%d string]", m.Config().VocabSize), "Q4_0", "tokenizer.chat_template", "tensor data:"} {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("inspect output lacks %q:\n%s", want, stdout.String())
				}
			}
		}
	}
	// The last export (Q4_K, fallen back to Q5_0 and Q8_0) reads back into
	// the same architecture.
	back, _, err := convert.ImportGGUF(out, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	if back.Config().HiddenSize != m.Config().HiddenSize || len(back.Params()) != len(m.Params()) {
		t.Errorf("imported %+v, want %+v", back.Config(), m.Config())
	}
}
