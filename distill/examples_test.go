package distill

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
)

// TestReadAndTokenizeExamples checks the data file reader's errors and
// that every response becomes a sequence of its role whose response part
// is the response's tokens and EOS.
func TestReadAndTokenizeExamples(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	os.WriteFile(corpus, []byte(strings.Repeat("What is 12 + 9?\n2+9=11, write 1\n#### 21\n\n", 20)), 0o644)
	v, err := tokenizer.TrainFiles(tokenizer.TrainConfig{VocabSize: 290, Special: []string{"<|endoftext|>"}}, corpus)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown field", `{"prompt": "a", "answer": "b"}`, "unknown field"},
		{"no response", `{"prompt": "a"}`, "needs a prompt"},
		{"no prompt", `{"chosen": "a"}`, "needs a prompt"},
		{"bad json", `{"prompt": `, ":1:"},
		{"empty", ``, "no records"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".jsonl")
		os.WriteFile(p, []byte(tc.body+"\n"), 0o644)
		if _, err := ReadExamples(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	p := filepath.Join(dir, "ok.jsonl")
	os.WriteFile(p, []byte(`{"prompt": "What is 12 + 9?\n", "chosen": "#### 21", "rejected": "#### 22", "student": "#### 2"}`+"\n\n"+
		`{"prompt": "What is 1 + 1?\n", "completion": "#### 2"}`+"\n"), 0o644)
	exs, err := ReadExamples(p)
	if err != nil || len(exs) != 2 {
		t.Fatalf("%d examples, %v", len(exs), err)
	}
	seqs, err := Tokenize(exs, tok, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ex   int32
		role Role
		text string
	}{{0, RoleChosen, "#### 21"}, {0, RoleRejected, "#### 22"}, {0, RoleStudent, "#### 2"}, {1, RoleData, "#### 2"}}
	if len(seqs) != len(want) {
		t.Fatalf("%d sequences, want %d", len(seqs), len(want))
	}
	for i, w := range want {
		s := seqs[i]
		resp := s.IDs[s.Start:]
		if s.Example != w.ex || s.Role != w.role || resp[len(resp)-1] != v.EOS {
			t.Errorf("sequence %d: example %d role %s ending %d, want %d %s ending in EOS", i, s.Example, s.Role, resp[len(resp)-1], w.ex, w.role)
		}
		if got := tok.Decode(resp[:len(resp)-1], tokenizer.DecodeOptions{}); got != w.text {
			t.Errorf("sequence %d: response %q, want %q", i, got, w.text)
		}
	}
	if cut, err := Tokenize(exs[:1], tok, nil, seqs[0].Start+1); err != nil || len(cut[0].IDs) != seqs[0].Start+1 {
		t.Errorf("cut to one response token: %v", err)
	}
	if _, err := Tokenize(exs[:1], tok, nil, seqs[0].Start); err == nil {
		t.Error("a cut that leaves no response token: no error")
	}
}
