package tokenizer

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

type vocabVector struct {
	text string
	want []int32
}

// readVocabVectors reads llama.cpp's .inp/.out test vectors as its
// tests/test-tokenizer-0.cpp does: the inputs are the texts between
// occurrences of "\n__ggml_vocab_test__\n" (so an input never ends with the
// separator's newline), and line i of .out holds input i's ids.
func readVocabVectors(tb testing.TB, vocabPath string) []vocabVector {
	tb.Helper()
	inp, err := os.ReadFile(vocabPath + ".inp")
	if err != nil {
		tb.Fatal(err)
	}
	out, err := os.ReadFile(vocabPath + ".out")
	if err != nil {
		tb.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	var texts []string
	for raw := string(inp); raw != ""; {
		i := strings.Index(raw, sep)
		if i < 0 {
			texts = append(texts, raw)
			break
		}
		texts = append(texts, raw[:i])
		raw = raw[i+len(sep):]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(texts) != len(lines) {
		tb.Fatalf("%s: %d inputs but %d output lines", vocabPath, len(texts), len(lines))
	}
	vs := make([]vocabVector, len(texts))
	for i, text := range texts {
		vs[i].text = text
		for _, f := range strings.Fields(lines[i]) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				tb.Fatalf("%s.out line %d: %v", vocabPath, i+1, err)
			}
			vs[i].want = append(vs[i].want, int32(n))
		}
	}
	return vs
}
