package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// TestMain lets the test binary stand in for minnow when the LoRA
// benchmark re-executes itself for each mode.
func TestMain(m *testing.M) {
	if os.Getenv(loraBenchEnv) == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchLoRA runs the LoRA benchmark on a one-block model: each mode in
// this process, then the whole command with its two child processes, and
// checks the lines, that LoRA trains far fewer values and the usage
// errors.
func TestBenchLoRA(t *testing.T) {
	small := []string{"--layers", "1", "--vocab", "64", "--seq", "8", "--steps", "1", "--warmup", "0", "--r", "2"}
	cases := []struct {
		name string
		args []string
		code int
		want *regexp.Regexp
	}{
		{"full", append([]string{"--mode", "full"}, small...), 0, regexp.MustCompile(`^MODE mode=full step_ms=[0-9.]+ peak_rss_mb=[0-9.]+ trainable=\d+ `)},
		{"lora", append([]string{"--mode", "lora"}, small...), 0, regexp.MustCompile(`^MODE mode=lora step_ms=[0-9.]+ peak_rss_mb=[0-9.]+ trainable=\d+ `)},
		{"both", small, 0, regexp.MustCompile(`^RESULT full_peak_rss_mb=[0-9.]+ lora_peak_rss_mb=[0-9.]+ rss_ratio=[0-9.]+ full_step_ms=[0-9.]+ lora_step_ms=[0-9.]+\n$`)},
		{"bad mode", append([]string{"--mode", "half"}, small...), 2, nil},
		{"bad rank", []string{"--r", "0"}, 2, nil},
	}
	trainable := map[string]int{}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(append([]string{"minnow", "bench", "lora"}, c.args...), &out, &errOut)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d; stderr %s", c.name, code, c.code, errOut.String())
			continue
		}
		if c.want != nil && !c.want.MatchString(out.String()) {
			t.Errorf("%s: output %q", c.name, out.String())
		}
		if c.code == 0 && c.name != "both" {
			r, err := parseModeLine(out.String())
			if err != nil {
				t.Fatal(err)
			}
			trainable[c.name] = r.Trainable
		}
	}
	if f, l := trainable["full"], trainable["lora"]; !(l > 0 && l*5 < f) {
		t.Errorf("lora trains %d values, full %d", l, f)
	}
}
