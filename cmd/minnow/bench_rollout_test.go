package main

import (
	"bytes"
	"regexp"
	"testing"
)

// TestBenchRollout runs the rollout benchmark on a one-block model and
// checks its RESULT line and usage errors.
func TestBenchRollout(t *testing.T) {
	small := []string{"--layers", "1", "--vocab", "64", "--prompts", "2", "--g", "2", "--new", "4", "--prompt-len", "3"}
	cases := []struct {
		name string
		args []string
		code int
		want *regexp.Regexp
	}{
		{"small", small, 0, regexp.MustCompile(`^RESULT rollout_tokens_per_s=[0-9.]+ train_tokens_per_s=[0-9.]+ generation_share=0\.\d+\n$`)},
		{"no completions", append(append([]string{}, small...), "--g", "0"), 2, nil},
		{"no new tokens", append(append([]string{}, small...), "--new", "0"), 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"minnow", "bench", "rollout"}, c.args...), &out, &errOut)
			if code != c.code {
				t.Fatalf("exit %d, want %d: %s", code, c.code, errOut.String())
			}
			if c.want != nil && !c.want.MatchString(out.String()) {
				t.Errorf("output %q does not match %v", out.String(), c.want)
			}
		})
	}
}
