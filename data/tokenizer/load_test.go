package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadDetectsFormat loads the same GPT-2 and Llama 2 vocabularies
// through every path form and checks they encode alike.
func TestLoadDetectsFormat(t *testing.T) {
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		t.Skip("MINNOW_DATA is not set")
	}
	gpt2Dir := t.TempDir()
	for _, name := range []string{"vocab.json", "merges.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, "tokenizers/gpt2", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(gpt2Dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const text = "Hello world! It's a test of 123 tokens."
	cases := []struct {
		name, path, sameAs string
	}{
		{"gguf-bpe", filepath.Join(dir, "llama-vocab/ggml-vocab-gpt-2.gguf"), ""},
		{"vocab-merges-dir", gpt2Dir, "gguf-bpe"},
		{"gguf-spm", filepath.Join(dir, "llama-vocab/ggml-vocab-llama-spm.gguf"), ""},
		{"sentencepiece-model", filepath.Join(dir, "tokenizers/llama2-spm/tokenizer.model"), "gguf-spm"},
		{"sentencepiece-dir", filepath.Join(dir, "tokenizers/llama2-spm"), "gguf-spm"},
		{"llama2c-bin", filepath.Join(dir, "models/aidreams260K/tok512.bin"), ""},
	}
	got := map[string]string{}
	for _, c := range cases {
		tok, err := Load(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ids := tok.Encode(text, EncodeOptions{})
		if dec := tok.Decode(ids, DecodeOptions{}); dec != text {
			t.Errorf("%s: round trip gave %q", c.name, dec)
		}
		got[c.name] = fmt.Sprint(ids)
		if c.sameAs != "" && got[c.name] != got[c.sameAs] {
			t.Errorf("%s gives %s, %s gives %s", c.name, got[c.name], c.sameAs, got[c.sameAs])
		}
	}
	for _, bad := range []string{filepath.Join(dir, "README.md"), t.TempDir(), filepath.Join(dir, "nope.gguf")} {
		if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), filepath.Base(bad)) {
			t.Errorf("Load(%s) = %v, want an error naming it", bad, err)
		}
	}
}
