package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minnowml/minnow/distill"
)

// TestDistillCacheTeacher runs `minnow distill cache-teacher` on a tiny
// pretrained run and reads the cache back, and checks that a student of
// another tokenizer, a malformed data file and a bad flag are bad input.
func TestDistillCacheTeacher(t *testing.T) {
	t.Chdir(t.TempDir())
	pretrain := func(vocab string) string {
		args := append([]string{"run", "arith-pretrain", "--quiet"}, tinySetsFor(t, "arith-pretrain")...)
		args = append(args, "--set", "tokenizer.train.vocab_size="+vocab, "--set", "out=runs/pre-"+vocab)
		code, out, errOut := runCLI(args...)
		if code != 0 {
			t.Fatalf("arith-pretrain: exit %d: %s", code, errOut)
		}
		return strings.TrimSpace(out)
	}
	teacher, other := pretrain("300"), pretrain("280")
	data := "triples.jsonl"
	recs := `{"prompt": "12 + 9 =\n", "chosen": "21", "rejected": "22, or 23", "student": "2"}
{"prompt": "7 - 3 =\n", "completion": "4"}
`
	if err := os.WriteFile(data, []byte(recs), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("cache", "teacher.cache")
	os.Mkdir("cache", 0o755)
	code, stdout, errOut := runCLI("distill", "cache-teacher", "--teacher", teacher, "--reference", teacher,
		"--student", teacher, "--data", data, "--out", out, "--top-k", "5")
	if code != 0 {
		t.Fatalf("cache-teacher: exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "4 sequences of 2 records") {
		t.Errorf("stdout %q", stdout)
	}
	c, err := distill.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Header.K != 5 || !c.Header.Reference || len(c.Seqs) != 4 {
		t.Errorf("header %+v with %d sequences, want top-5 with reference and 4", c.Header, len(c.Seqs))
	}
	roles := []distill.Role{distill.RoleChosen, distill.RoleRejected, distill.RoleStudent, distill.RoleData}
	for i, s := range c.Seqs {
		if s.Role != roles[i] {
			t.Errorf("sequence %d: role %s, want %s", i, s.Role, roles[i])
		}
	}

	os.WriteFile("bad.jsonl", []byte(`{"prompt": "x", "answer": "y"}`+"\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"other tokenizer", []string{"--teacher", teacher, "--student", other, "--data", data, "--out", "x.cache"}, "share a tokenizer"},
		{"unknown field", []string{"--teacher", teacher, "--data", "bad.jsonl", "--out", "x.cache"}, "bad.jsonl:1"},
		{"zero top-k", []string{"--teacher", teacher, "--data", data, "--out", "x.cache", "--top-k", "0"}, "top_k"},
		{"missing teacher", []string{"--teacher", "runs/nothing", "--data", data, "--out", "x.cache"}, "--teacher"},
	} {
		code, _, errOut := runCLI(append([]string{"distill", "cache-teacher"}, tc.args...)...)
		if code != exitBadInput || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d mentioning %q", tc.name, code, errOut, exitBadInput, tc.want)
		}
	}
	if _, err := os.Stat("x.cache"); err == nil {
		t.Error("a failed run left x.cache")
	}
}
