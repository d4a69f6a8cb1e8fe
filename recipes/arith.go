package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/rl"
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
	// Verbose pads worked solutions with redundant lines, each present
	// with this probability (data.ArithConfig.Verbose): reasoning that
	// length-regularised RL can shorten without losing accuracy.
	Verbose float64 `yaml:"verbose,omitempty"`
	// VerboseWhole pads a whole solution (with probability Verbose) or
	// none of it (data.ArithConfig.VerboseWhole).
	VerboseWhole bool `yaml:"verbose_whole,omitempty"`
	// Levels names TLDR's length levels. When set, a LevelFraction of
	// the training prompts (pretraining text and SFT examples) names one,
	// drawn uniformly, through LevelTemplate, so that a later TLDR run
	// finds its tags familiar; they say nothing about length unless
	// LevelVerbose is set.
	Levels []string `yaml:"levels,omitempty"`
	// LevelTemplate writes a level into a prompt, as tldr.prompt_template
	// does ("" means TLDR's default, "Think {level}.\n{prompt}").
	LevelTemplate string `yaml:"level_template,omitempty"`
	// LevelFraction is the fraction of prompts that name a level (0
	// means all); the rest stay plain, as GRPO and DPO ask them.
	LevelFraction float64 `yaml:"level_fraction,omitempty"`
	// LevelVerbose, with VerboseWhole, gives each level (in Levels'
	// order) its own chance that a solution whose prompt names it is
	// padded, so that the tags hint at length; nil means Verbose for
	// every prompt.
	LevelVerbose []float64 `yaml:"level_verbose,omitempty"`
}

// maxArithN bounds data.arith.n so that a typo cannot fill the disk.
const maxArithN = 10_000_000

// config returns the generator config.
func (a *ArithSpec) config() data.ArithConfig {
	ops := make([]data.ArithOp, len(a.Ops))
	for i, o := range a.Ops {
		ops[i] = data.ArithOp(o)
	}
	return data.ArithConfig{Ops: ops, MinDigits: a.MinDigits, MaxDigits: a.MaxDigits, Operands: a.Operands, Verbose: a.Verbose, VerboseWhole: a.VerboseWhole}
}

// levels returns the TLDR config that writes a.Levels into prompts, and
// whether there are levels. It returns WithDefaults' errors.
func (a *ArithSpec) levels() (rl.TLDRConfig, bool, error) {
	if len(a.Levels) == 0 {
		return rl.TLDRConfig{}, false, nil
	}
	c := rl.TLDRConfig{PromptTemplate: a.LevelTemplate}
	for _, name := range a.Levels {
		// The budget only passes validation: SFT has no reward.
		c.Levels = append(c.Levels, rl.TLDRLevel{Name: name, Budget: 1})
	}
	c, err := c.WithDefaults()
	return c, true, err
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
	if !(a.LevelFraction >= 0 && a.LevelFraction <= 1) {
		return rangeErr("data.arith.level_fraction", a.LevelFraction, "0 to 1")
	}
	if _, _, err := a.levels(); err != nil {
		return fmt.Errorf("data.arith.levels: %s", strings.TrimPrefix(err.Error(), "rl: tldr: "))
	}
	if len(a.LevelVerbose) > 0 {
		if len(a.LevelVerbose) != len(a.Levels) || !a.VerboseWhole {
			return rangeErr("data.arith.level_verbose", fmt.Sprint(a.LevelVerbose),
				fmt.Sprintf("one probability per level (%d) and verbose_whole: true", len(a.Levels)))
		}
		for i, v := range a.LevelVerbose {
			if !(v >= 0 && v <= 1) {
				return rangeErr(fmt.Sprintf("data.arith.level_verbose[%d]", i), v, "0 to 1")
			}
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

// arithExamples returns data.arith's problems and the training prompt
// of each: ArithPrompt, with a level written into
// data.arith.level_fraction of them when data.arith.levels is set, and
// those problems padded at their level's data.arith.level_verbose rate
// when it is set. The levels are drawn from the seed of the problems, so a
// rerun writes the same prompts. It returns nil without data.arith, and
// an error when the spec is invalid.
func (e *Env) arithExamples() ([]string, []data.Problem, error) {
	ps, err := e.ArithProblems()
	if err != nil || ps == nil {
		return nil, nil, err
	}
	a := e.Recipe.Data.Arith
	c, ok, err := a.levels()
	if err != nil {
		return nil, nil, err
	}
	frac := a.LevelFraction
	if frac == 0 {
		frac = 1
	}
	seed := e.arithSeed()
	// Padding has a random stream of its own, so the problems with all
	// their lines and with none are the same problems.
	var padded, plain []data.Problem
	if len(a.LevelVerbose) > 0 {
		cfg := a.config()
		cfg.Verbose = 1
		if padded, err = data.GenerateArith(cfg, seed, a.N); err != nil {
			return nil, nil, err
		}
		cfg.Verbose = 0
		if plain, err = data.GenerateArith(cfg, seed, a.N); err != nil {
			return nil, nil, err
		}
	}
	unit := func(key uint64) float64 { return float64(key>>11) / (1 << 53) }
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = ArithPrompt(p.Question)
		if !ok || unit(rl.SampleKey(seed, 0x1e7e1, uint64(i))) >= frac {
			continue
		}
		lv := c.SampleLevel(rl.SampleKey(seed, 0x1e7e2, uint64(i)))
		out[i] = c.Condition(out[i], lv)
		if padded == nil {
			continue
		}
		ps[i] = plain[i]
		if unit(rl.SampleKey(seed, 0x1e7e3, uint64(i))) < a.LevelVerbose[slices.Index(a.Levels, lv.Name)] {
			ps[i] = padded[i]
		}
	}
	return out, ps, nil
}

// arithSeed is the seed of data.arith's problems.
func (e *Env) arithSeed() uint64 {
	if s := e.Recipe.Data.Arith.Seed; s != 0 {
		return s
	}
	return e.Recipe.Seed
}

// ArithProblems returns the problems data.arith describes, or nil when
// the recipe has none. It returns an error when the spec is invalid.
func (e *Env) ArithProblems() ([]data.Problem, error) {
	a := e.Recipe.Data.Arith
	if a == nil {
		return nil, nil
	}
	ps, err := data.GenerateArith(a.config(), e.arithSeed(), a.N)
	if err != nil {
		return nil, fmt.Errorf("data.arith: %w", err)
	}
	return ps, nil
}

// TextFiles returns the text files to pretrain on: data.text, or the
// data.arith problems written to the run directory as arith.txt. It
// returns an error when they cannot be generated or written.
func (e *Env) TextFiles() ([]string, error) {
	prompts, ps, err := e.arithExamples()
	if err != nil || ps == nil {
		return e.Recipe.Data.Text, err
	}
	var b strings.Builder
	for i, p := range ps {
		b.WriteString(prompts[i])
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
	prompts, ps, err := e.arithExamples()
	if err != nil || ps == nil {
		return e.Recipe.Data.JSONL, err
	}
	exs := make([]data.PromptCompletion, len(ps))
	for i, p := range ps {
		exs[i] = data.PromptCompletion{Prompt: prompts[i], Completion: p.Target()}
	}
	path := filepath.Join(e.Dir, "arith.jsonl")
	return []string{path}, data.WriteJSONLFile(path, exs)
}
