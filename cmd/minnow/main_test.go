package main

import (
	"bytes"
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
