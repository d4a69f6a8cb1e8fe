package main

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/shareddata"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/tensor"
)

// logitsOf runs m on a fixed prompt.
func logitsOf(t *testing.T, m model.Model) []float32 {
	t.Helper()
	var out []float32
	if err := tensor.Catch(func() {
		ids := tensor.FromInt32([]int32{1, 5, 9, 3, 7, 2, 8, 4}, 1, 8)
		out = m.Forward(ids, model.ForwardOptions{}).Float32s()
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportCommands imports with the CLI, loads the run back as
// `minnow generate` does, and compares logits with a direct import.
func TestImportCommands(t *testing.T) {
	hfDir := filepath.Join("..", "..", "convert", "testdata", "hf", "llama-tied-sharded")
	cases := []struct {
		name   string
		args   func(t *testing.T, out string) []string
		direct func(t *testing.T) (model.Model, *tokenizer.Vocab, error)
	}{
		{"hf", func(_ *testing.T, out string) []string { return []string{"import", "hf", hfDir, "--out", out} },
			func(*testing.T) (model.Model, *tokenizer.Vocab, error) {
				return convert.ImportHF(hfDir, tensor.Default(), tensor.Float32)
			}},
		{"llama2c", func(t *testing.T, out string) []string {
			return []string{"import", "llama2c", "--checkpoint", shareddata.Path(t, "models/aidreams260K/aidreams260K.bin"),
				"--tokenizer", shareddata.Path(t, "models/aidreams260K/tok512.bin"), "--out", out}
		}, func(t *testing.T) (model.Model, *tokenizer.Vocab, error) {
			return convert.ImportLlama2C(shareddata.Path(t, "models/aidreams260K/aidreams260K.bin"),
				shareddata.Path(t, "models/aidreams260K/tok512.bin"), tensor.Default(), tensor.Float32)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := c.args(t, out)
			var stdout, stderr bytes.Buffer
			if code := run2(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if !strings.Contains(stdout.String(), "imported") {
				t.Errorf("output %q", stdout.String())
			}
			ck, err := recipes.LoadCheckpoint(out)
			if err != nil {
				t.Fatal(err)
			}
			back, _, err := recipes.LoadModel(tensor.Default(), ck)
			if err != nil {
				t.Fatal(err)
			}
			want, v, err := c.direct(t)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := logitsOf(t, back), logitsOf(t, want); !slices.Equal(a, b) {
				t.Errorf("logits of the loaded run differ from the direct import")
			}
			if !slices.Equal(back.Config().EOSTokenID, want.Config().EOSTokenID) || back.Config().RopeScaling.Kind() != want.Config().RopeScaling.Kind() {
				t.Errorf("config changed: %+v, want %+v", back.Config(), want.Config())
			}
			tok, err := tokenizer.Load(filepath.Join(out, ck.Tokenizer))
			if err != nil {
				t.Fatal(err)
			}
			if len(tok.Vocab().Tokens) != len(v.Tokens) {
				t.Errorf("tokenizer.gguf has %d tokens, want %d", len(tok.Vocab().Tokens), len(v.Tokens))
			}
			// A second import would rewind the run: refused.
			stdout.Reset()
			stderr.Reset()
			if code := run2(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "already holds checkpoints") {
				t.Errorf("second import: exit %d, %s", code, stderr.String())
			}
		})
	}
	for _, args := range [][]string{
		{"import", "hf", hfDir},
		{"import", "hf", hfDir, "--out"},
		{"import", "hf", "--out", "x"},
		{"import", "hf", hfDir, "other", "--out", "x"},
		{"import", "hf", hfDir, "--outt", "x"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run2(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
	// Flags may also come before the folder.
	var stdout, stderr bytes.Buffer
	if code := run2([]string{"import", "hf", "--out=" + filepath.Join(t.TempDir(), "r"), hfDir}, &stdout, &stderr); code != 0 {
		t.Errorf("--out before DIR: exit %d, %s", code, stderr.String())
	}
	if code := run2([]string{"import", "hf", t.TempDir(), "--out", filepath.Join(t.TempDir(), "x")}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "config.json") {
		t.Errorf("import of an empty folder: exit %d, %s", code, stderr.String())
	}
}
