package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minnowml/minnow/data"
)

// ArithSpec generates the arithmetic task (data.GenerateArith) as the
// run's data, so that a recipe needs no files: pretraining reads the
// problems as text, SFT as prompt/completion examples.
type ArithSpec struct {
	// N is the number of problems.
	N int `yaml:"n"`
	// Seed seeds the problems; 0 means the recipe's seed.
	Seed uint64 `yaml:"seed,omitempty"`
	// Ops are the operations drawn from: "+", "-" and "*" (default +).
	Ops []string `yaml:"ops,omitempty"`
	// MinDigits and MaxDigits bound each operand's digits (default 1..3).
	MinDigits int `yaml:"min_digits,omitempty"`
	MaxDigits int `yaml:"max_digits,omitempty"`
	// Operands is the number of terms of an addition (default 2).
	Operands int `yaml:"operands,omitempty"`
}

// maxArithN bounds data.arith.n so that a typo cannot fill the disk.
const maxArithN = 10_000_000

// config returns the generator config.
func (a *ArithSpec) config() data.ArithConfig {
	ops := make([]data.ArithOp, len(a.Ops))
	for i, o := range a.Ops {
		ops[i] = data.ArithOp(o)
	}
	return data.ArithConfig{Ops: ops, MinDigits: a.MinDigits, MaxDigits: a.MaxDigits, Operands: a.Operands}
}

// validate checks the spec's ranges.
func (a *ArithSpec) validate() error {
	if a.N < 1 || a.N > maxArithN {
		return rangeErr("data.arith.n", a.N, fmt.Sprintf("1 to %d problems", maxArithN))
	}
	for i, o := range a.Ops {
		if o != "+" && o != "-" && o != "*" {
			return rangeErr(fmt.Sprintf("data.arith.ops[%d]", i), fmt.Sprintf("%q", o), `"+", "-" or "*"`)
		}
	}
	if _, err := data.NewArith(a.config(), 1); err != nil {
		msg := strings.TrimPrefix(err.Error(), "data: ")
		return fmt.Errorf("data.arith: %s (allowed: 1 <= min_digits <= max_digits <= %d, 2 to 100 operands)", msg, data.MaxArithDigits)
	}
	return nil
}

// ArithPrompt is the prompt an arithmetic question is asked with, in
// pretraining text and SFT examples alike, so that what pretraining
// learns carries over.
func ArithPrompt(question string) string { return question + "\n" }

// ArithProblems returns the problems data.arith describes, or nil when
// the recipe has none. It returns an error when the spec is invalid.
func (e *Env) ArithProblems() ([]data.Problem, error) {
	a := e.Recipe.Data.Arith
	if a == nil {
		return nil, nil
	}
	seed := a.Seed
	if seed == 0 {
		seed = e.Recipe.Seed
	}
	ps, err := data.GenerateArith(a.config(), seed, a.N)
	if err != nil {
		return nil, fmt.Errorf("data.arith: %w", err)
	}
	return ps, nil
}

// TextFiles returns the text files to pretrain on: data.text, or the
// data.arith problems written to the run directory as arith.txt. It
// returns an error when they cannot be generated or written.
func (e *Env) TextFiles() ([]string, error) {
	ps, err := e.ArithProblems()
	if err != nil || ps == nil {
		return e.Recipe.Data.Text, err
	}
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(ArithPrompt(p.Question))
		b.WriteString(p.Target())
		b.WriteString("\n\n")
	}
	path := filepath.Join(e.Dir, "arith.txt")
	return []string{path}, os.WriteFile(path, []byte(b.String()), 0o644)
}

// JSONLFiles returns the example files to fine-tune on: data.jsonl, or
// the data.arith problems written to the run directory as arith.jsonl
// prompt/completion records. It returns an error when they cannot be
// generated or written.
func (e *Env) JSONLFiles() ([]string, error) {
	ps, err := e.ArithProblems()
	if err != nil || ps == nil {
		return e.Recipe.Data.JSONL, err
	}
	exs := make([]data.PromptCompletion, len(ps))
	for i, p := range ps {
		exs[i] = data.PromptCompletion{Prompt: ArithPrompt(p.Question), Completion: p.Target()}
	}
	path := filepath.Join(e.Dir, "arith.jsonl")
	return []string{path}, data.WriteJSONLFile(path, exs)
}
