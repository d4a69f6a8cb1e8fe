package rl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ExternalConfig configures External, a reward computed by another program.
type ExternalConfig struct {
	// Name identifies the reward in logs; "" means "external".
	Name string `yaml:"name"`
	// Command is the program and its arguments, run without a shell.
	Command []string `yaml:"command"`
	// Dir is the working directory of the command; "" means the current
	// one.
	Dir string `yaml:"dir"`
	// TimeoutS bounds each scoring call in seconds; 0 means no limit
	// beyond the caller's context.
	TimeoutS float64 `yaml:"timeout_s"`
}

// External is a reward computed by a command, so that users can score in
// any language. For each batch the command is started once; it reads one
// JSON object per completion on stdin, with the keys "prompt",
// "completion", "completion_ids" and every dataset column, and must write
// exactly one number per line on stdout, in order, then exit with status 0.
type External struct {
	cfg ExternalConfig
}

// NewExternal returns an External reward. It returns an error when the
// command is empty or the timeout is negative.
func NewExternal(cfg ExternalConfig) (*External, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("rl: external reward: empty command")
	}
	if cfg.TimeoutS < 0 {
		return nil, fmt.Errorf("rl: external reward: negative timeout_s %v", cfg.TimeoutS)
	}
	if cfg.Name == "" {
		cfg.Name = "external"
	}
	return &External{cfg: cfg}, nil
}

// Name returns the configured name, "external" by default.
func (e *External) Name() string { return e.cfg.Name }

// Score runs the command over b. It returns an error when the command
// cannot start, exits with a failure (the error quotes the end of its
// stderr), times out, writes a line that is not a number, or writes more or
// fewer lines than there are completions.
func (e *External) Score(ctx context.Context, b RewardBatch) ([]float64, error) {
	if e.cfg.TimeoutS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(e.cfg.TimeoutS*float64(time.Second)))
		defer cancel()
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for i := range b.Completions {
		row := map[string]any{"prompt": b.Prompts[i], "completion": b.Completions[i]}
		if b.CompletionIDs != nil {
			row["completion_ids"] = b.CompletionIDs[i]
		}
		for k, col := range b.Columns {
			if _, clash := row[k]; !clash {
				row[k] = col[i]
			}
		}
		if err := enc.Encode(row); err != nil {
			return nil, fmt.Errorf("encoding completion %d: %w", i, err)
		}
	}
	cmd := exec.CommandContext(ctx, e.cfg.Command[0], e.cfg.Command[1:]...)
	cmd.Dir = e.cfg.Dir
	// A killed command's children may hold its pipes open; stop waiting
	// for them soon after.
	cmd.WaitDelay = 500 * time.Millisecond
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("command %q: %w", strings.Join(e.cfg.Command, " "), ctx.Err())
		}
		return nil, fmt.Errorf("command %q failed: %w%s", strings.Join(e.cfg.Command, " "), err, stderrTail(stderr.Bytes()))
	}
	var out []float64
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("command %q: stdout line %d is %q, not a number", strings.Join(e.cfg.Command, " "), line, truncate(text, 80))
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("command %q: reading stdout: %w", strings.Join(e.cfg.Command, " "), err)
	}
	if len(out) != b.Len() {
		return nil, fmt.Errorf("command %q wrote %d numbers for %d completions", strings.Join(e.cfg.Command, " "), len(out), b.Len())
	}
	return out, nil
}

// stderrTail quotes the last lines of a failed command's stderr, where its
// reason usually is.
func stderrTail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	return "; stderr: " + s
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
