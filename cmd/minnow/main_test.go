package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout *regexp.Regexp
		stderr *regexp.Regexp
	}{
		{"version", []string{"version"}, 0, regexp.MustCompile(`(?s)^minnow .*\nbackend: cpu \(.*, 2 threads`), nil},
		{"bench-core", []string{"bench", "core", "--steps", "1", "--warmup", "0", "--batch", "1", "--seq", "8", "--vocab", "300", "--quiet"}, 0,
			regexp.MustCompile(`^RESULT sgemm_gflops=[0-9.]+ step_ms=[0-9.]+ tokens_per_s=[0-9]+ model_gflops=[0-9.]+ mfu_vs_sgemm=[0-9.]+ allocs_per_step=[0-9]+\n$`), nil},
		{"bench-train", []string{"bench", "train", "--layers", "1", "--vocab", "64", "--seq", "8", "--steps", "1", "--warmup", "0"}, 0,
			regexp.MustCompile(`^RESULT tokens_per_s=[0-9]+ step_ms=[0-9.]+ peak_rss_mb=[0-9]+\n$`), nil},
		{"bench-generate", []string{"bench", "generate", "--layers", "1", "--vocab", "64", "--prompt", "4", "--new", "32", "--reps", "3", "--batch", "1", "--batch", "2"}, 0,
			regexp.MustCompile(`^RESULT batch=1 decode_tokens_per_s=[0-9.]+ prefill_tokens_per_s=[0-9.]+\nRESULT batch=2 decode_tokens_per_s=[0-9.]+ prefill_tokens_per_s=[0-9.]+\n$`), nil},
		{"bench-train-bad-layers", []string{"bench", "train", "--layers", "0"}, 2, nil, regexp.MustCompile(`--layers`)},
		{"bench-generate-bad-new", []string{"bench", "generate", "--new", "1"}, 2, nil, regexp.MustCompile(`--new`)},
		{"bench-generate-bad-batch", []string{"bench", "generate", "--batch", "0"}, 2, nil, regexp.MustCompile(`--batch 0`)},
		{"bad-steps", []string{"bench", "core", "--steps", "0"}, 2, nil, regexp.MustCompile(`--steps`)},
		{"unknown-flag", []string{"bench", "core", "--stepz", "3"}, 2, nil, regexp.MustCompile(`stepz`)},
		{"unknown-command", []string{"trian"}, 2, nil, regexp.MustCompile(`unknown command "trian"`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"minnow", "--threads", "2"}, c.args...), &out, &errOut)
			if code != c.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, c.code, errOut.String())
			}
			if c.stdout != nil && !c.stdout.MatchString(out.String()) {
				t.Errorf("stdout %q does not match %v", out.String(), c.stdout)
			}
			if c.stderr != nil && !c.stderr.MatchString(errOut.String()) {
				t.Errorf("stderr %q does not match %v", errOut.String(), c.stderr)
			}
			if c.code != 0 && !strings.HasPrefix(errOut.String(), "minnow: ") {
				t.Errorf("an error must be one line starting with %q, got %q", "minnow: ", errOut.String())
			}
		})
	}
}

// TestBenchTokenize runs the tokenizer benchmark on a small text with the
// GPT-2 files from MINNOW_DATA.
func TestBenchTokenize(t *testing.T) {
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		t.Skip("MINNOW_DATA is not set; it holds the GPT-2 tokenizer files")
	}
	text := t.TempDir() + "/t.txt"
	if err := os.WriteFile(text, []byte("Hello world, it's 2026!\n  Tokens  \u00e9t\u00e9.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"minnow", "bench", "tokenize", "--text", text, "--reps", "1",
		"--vocab", dir + "/tokenizers/gpt2/vocab.json", "--merges", dir + "/tokenizers/gpt2/merges.txt"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !regexp.MustCompile(`^RESULT mb_per_s=[0-9.]+ tokens=1[0-9]\n$`).MatchString(out.String()) {
		t.Fatalf("unexpected output %q", out.String())
	}
	code = run([]string{"minnow", "bench", "tokenize", "--text", text, "--vocab", dir + "/missing.json"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "missing.json") {
		t.Fatalf("a missing vocabulary must be bad input naming the file; got exit %d, %q", code, errOut.String())
	}
}

// TestDataCommands covers the tokenizer and data commands end to end:
// train a vocabulary to GGUF, encode and decode with it, and generate
// arithmetic problems.
func TestDataCommands(t *testing.T) {
	dir := t.TempDir()
	corpus := dir + "/corpus.txt"
	if err := os.WriteFile(corpus, []byte(strings.Repeat("the cat sat on the mat. the dog sat on the log.\n", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := dir + "/tok.gguf"
	runOK := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append([]string{"minnow"}, args...), &out, &errOut); code != 0 {
			t.Fatalf("minnow %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	// The corpus has few distinct words, so training stops once they are
	// whole tokens, below the 300 asked for.
	if out := runOK("tokenizer", "train", "--vocab-size", "300", "--out", tok, corpus); !regexp.MustCompile(`: 2[5-9][0-9] tokens, [0-9]+ merges`).MatchString(out) {
		t.Fatalf("train printed %q", out)
	}
	ids := strings.TrimSpace(runOK("tokenizer", "encode", "-t", tok, "the cat sat"))
	if n := len(strings.Fields(ids)); n == 0 || n >= len("the cat sat") {
		t.Fatalf("the trained tokenizer did not merge anything: %q", ids)
	}
	if got := runOK(append([]string{"tokenizer", "decode", "-t", tok}, strings.Fields(ids)...)...); got != "the cat sat\n" {
		t.Fatalf("decode gave %q", got)
	}
	lines := strings.Split(strings.TrimSpace(runOK("data", "arith", "--n", "3", "--seed", "7")), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "####") {
		t.Fatalf("arith printed %q", lines)
	}
	// Comma-separated operations, and verbose solutions.
	if got := runOK("data", "arith", "--n", "40", "--ops", "+,-", "--verbose", "1"); !strings.Contains(got, " - ") || !strings.Contains(got, "Let me work it out") {
		t.Fatalf("arith --ops +,- --verbose 1 printed %q", got)
	}
	// Whole solutions padded or not: half of them open with the line.
	if got := runOK("data", "arith", "--n", "200", "--verbose", "0.5", "--verbose-whole"); !strings.Contains(got, "So far") || strings.Count(got, "Let me work it out") < 60 || strings.Count(got, "Let me work it out") > 140 {
		t.Fatalf("arith --verbose 0.5 --verbose-whole: %d of 200 solutions padded", strings.Count(got, "Let me work it out"))
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"minnow", "tokenizer", "decode", "-t", tok, "99999"}, &out, &errOut); code != 2 {
		t.Fatalf("an out-of-range id must be bad input, got exit %d", code)
	}
	if code := run([]string{"minnow", "data", "arith", "--max-digits", "50"}, &out, &errOut); code != 2 {
		t.Fatalf("a bad difficulty must be bad input, got exit %d", code)
	}
}
