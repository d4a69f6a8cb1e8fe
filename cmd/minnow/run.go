package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/recipes"
)

// setFlag is --set, shared by run and validate.
var setFlag = &cli.StringSliceFlag{Name: "set", Usage: "override a recipe value: key.path=value, the value read as YAML (repeatable), such as --set train.steps=100"}

func runCmd() *cli.Command {
	return &cli.Command{
		Name:    "run",
		Aliases: []string{"train"},
		Usage:   "run a recipe (a file or a built-in name); --resume continues a run directory",
		Description: "Runs the recipe's method and writes a run directory (default runs/<name>-<timestamp>/) holding\n" +
			"recipe.yaml (the recipe after --set), metrics.jsonl, checkpoints and summary.md. Ctrl-C saves a\n" +
			"checkpoint; `minnow run --resume DIR` (or running a recipe whose out: holds checkpoints) continues.",
		ArgsUsage: "RECIPE | --resume RUNDIR",
		Flags: []cli.Flag{
			setFlag,
			&cli.StringFlag{Name: "resume", Usage: "continue the run in `RUNDIR` from its last checkpoint, with its recipe.yaml"},
			&cli.StringFlag{Name: "out", Usage: "run directory (the same as --set out=DIR)"},
			&cli.IntFlag{Name: "every", Value: 10, Usage: "without a terminal, print progress every N steps"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the run directory"},
			&cli.BoolFlag{Name: "json", Usage: "print each update's metrics, then the summary, as JSON lines"},
		},
		Action: func(c *cli.Context) error {
			if c.Int("every") <= 0 {
				return usageErr{fmt.Errorf("--every %d: want a positive step count", c.Int("every"))}
			}
			if c.Bool("quiet") && c.Bool("json") {
				return usageErr{errors.New("--quiet and --json exclude each other")}
			}
			r, err := loadRecipe(c)
			if err != nil {
				return err
			}
			// Ctrl-C cancels the loop, which saves a checkpoint at the step
			// boundary, so the run can be resumed.
			ctx, stop := interruptContext()
			defer stop()
			w := c.App.Writer
			p := &progress{w: w, every: c.Int("every"), total: r.Train.Steps, began: time.Now(), first: -1,
				tty: isTerminal(w), quiet: c.Bool("quiet"), json: c.Bool("json")}
			sum, err := recipes.Run(ctx, backend(c), r, p.update)
			interrupted := errors.Is(err, context.Canceled)
			if err != nil && !interrupted {
				hint := "fix the cause and run it again"
				if _, cerr := recipes.LoadCheckpoint(sum.RunDir); cerr == nil {
					hint = "the run directory keeps the last good checkpoint; fix the cause and continue with `minnow run --resume " + sum.RunDir + "`"
				}
				if sum.RunDir == "" {
					return hinted{fmt.Errorf("run failed: %w", err), hint}
				}
				return hinted{fmt.Errorf("run %s failed: %w", sum.RunDir, err), hint}
			}
			switch {
			case p.json:
				err = json.NewEncoder(w).Encode(summaryJSON(sum, interrupted))
			case p.quiet:
				_, err = fmt.Fprintln(w, sum.RunDir)
			default:
				p.finish()
				err = summaryTable(c, sum)
			}
			if err == nil && interrupted {
				// Not a success, so that `minnow run a && minnow run b`
				// stops; 130 is the shell's code for death by Ctrl-C.
				err = exitCode{exitInterrupted, hinted{fmt.Errorf("interrupted at step %d; a checkpoint is saved", sum.Steps),
					"continue with `minnow run --resume " + sum.RunDir + "`"}}
			}
			return err
		},
	}
}

// interruptContext returns the context a run stops on: Ctrl-C. Tests
// replace it to interrupt a run at a chosen point.
var interruptContext = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// loadRecipe loads the recipe a run or validate command names: RECIPE (a
// file or built-in name) or --resume RUNDIR, with --set and --out applied.
func loadRecipe(c *cli.Context) (*recipes.Recipe, error) {
	var sets []recipes.Override
	for _, s := range c.StringSlice("set") {
		o, err := recipes.ParseOverride(s)
		if err != nil {
			return nil, usageErr{err}
		}
		sets = append(sets, o)
	}
	resume := ""
	if c.Command.Name == "run" {
		if resume = c.String("resume"); resume != "" {
			resume = resolveRun(resume)
		}
		if out := c.String("out"); out != "" {
			sets = append(sets, recipes.Override{Path: "out", Value: fmt.Sprintf("%q", out)})
		}
	}
	src := c.Args().First()
	switch {
	case resume != "" && c.NArg() > 0:
		return nil, usageErr{errors.New("give a RECIPE or --resume RUNDIR, not both")}
	case resume != "":
		src = filepath.Join(resume, recipes.RecipeFile)
		if _, err := os.Stat(src); err != nil {
			return nil, hinted{usageErr{fmt.Errorf("--resume %s: no %s there", resume, recipes.RecipeFile)}, "give a directory `minnow run` made; `minnow runs ls` lists them"}
		}
		sets = append(sets, recipes.Override{Path: "out", Value: fmt.Sprintf("%q", resume)})
	case c.NArg() != 1:
		return nil, hinted{usageErr{fmt.Errorf("%s takes one RECIPE (a YAML file or a built-in name)", c.Command.Name)}, "`minnow recipes ls` lists the built-in recipes"}
	}
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		return nil, hinted{usageErr{fmt.Errorf("%s is a directory, not a recipe", src)},
			fmt.Sprintf("to continue a run, use `minnow run --resume %s`; its recipe is %s", src, filepath.Join(src, recipes.RecipeFile))}
	}
	r, err := recipes.LoadOrBuiltin(src, sets...)
	if err != nil {
		hint := "fix the recipe, or override the value with --set KEY=VALUE; `minnow validate RECIPE` checks without running"
		var fe *recipes.FileError
		switch {
		case errors.As(err, &fe) && strings.HasSuffix(fe.File, recipes.LatestSuffix):
			name := strings.TrimSuffix(filepath.Base(fe.File), recipes.LatestSuffix)
			hint = fmt.Sprintf("run `minnow run %s` first to make it, or point at a run with --set %s=RUNDIR", name, fe.Key)
		case errors.As(err, &fe):
			hint = fmt.Sprintf("create the file, or point at another with --set %s=PATH", fe.Key)
		case errors.Is(err, recipes.ErrNoRecipe):
			hint = "give a recipe file, or a built-in name from `minnow recipes ls`"
		}
		return nil, hinted{usageErr{err}, hint}
	}
	return r, nil
}

// progress prints a run's updates: a bar redrawn in place on a terminal,
// a plain line every `every` steps (and at evaluations and the end)
// otherwise, JSON lines with --json, nothing with --quiet.
type progress struct {
	w                io.Writer
	every, total     int
	began            time.Time
	first            int
	tty, quiet, json bool
	open             bool // a bar line is on screen without its newline
}

// progressExtras are the metrics besides the loss that progress lines
// show when a method logs them, with their labels.
var progressExtras = []struct{ key, label string }{
	{"reward", "reward"}, {"accuracy", "acc"}, {"completion_length_mean", "len"}, {"kl", "kl"},
}

func (p *progress) update(u recipes.Progress) {
	switch {
	case p.quiet:
		return
	case p.json:
		fmt.Fprintf(p.w, "%s\n", u.Line)
		return
	}
	m := u.Metric
	if p.first < 0 {
		p.first = m.Step - 1
	}
	if !p.tty && m.Step%p.every != 0 && m.Step != p.total && m.EvalLoss == nil {
		return
	}
	eta := "?"
	if done := m.Step - p.first; done > 0 {
		eta = (time.Since(p.began) / time.Duration(done) * time.Duration(max(0, p.total-m.Step))).Round(time.Second).String()
	}
	line := fmt.Sprintf("step %d/%d loss %.4f lr %.3g tok/s %.0f ETA %s", m.Step, p.total, m.Loss, m.LR, m.TokensPerS, eta)
	for _, x := range progressExtras {
		if v, ok := u.Values[x.key]; ok {
			line += fmt.Sprintf(" %s %.4g", x.label, v)
		}
	}
	if m.EvalLoss != nil {
		line += fmt.Sprintf(" eval_loss %.4f", *m.EvalLoss)
	}
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	// Keep eval results and the last step on screen; redraw the rest.
	end := "\r"
	if m.EvalLoss != nil || m.Step == p.total {
		end = "\n"
	}
	p.open = end == "\r"
	fmt.Fprintf(p.w, "\r\033[K%s %s%s", progressBar(m.Step, p.total, 24), line, end)
}

// finish ends a bar line left open by an interruption.
func (p *progress) finish() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// summaryJSON is the last line of --json output.
func summaryJSON(s recipes.Summary, interrupted bool) map[string]any {
	status := "finished"
	if interrupted {
		status = "interrupted"
	}
	out := map[string]any{"summary": true, "status": status, "run_dir": s.RunDir, "method": s.Method,
		"start_step": s.StartStep, "step": s.Steps, "loss": s.Loss, "tokens": s.Tokens,
		"elapsed_s": s.Elapsed.Seconds(), "checkpoint": s.Checkpoint}
	if s.EvalLoss != 0 {
		out["eval_loss"] = s.EvalLoss
	}
	if s.ArithAccuracy != nil {
		out["arith_accuracy"] = *s.ArithAccuracy
	}
	if len(s.Extra) > 0 {
		out["extra"] = s.Extra
	}
	return out
}

func validateCmd() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a recipe without running it: keys, types, ranges and files",
		ArgsUsage: "RECIPE",
		Flags:     []cli.Flag{setFlag},
		Action: func(c *cli.Context) error {
			r, err := loadRecipe(c)
			if err != nil {
				return err
			}
			method := r.Method
			if method == "" {
				method = recipes.MethodPretrain
			}
			out := r.Out
			if out == "" {
				out = recipes.NewRunDir("runs", r.Name, time.Now())
				out = strings.TrimSuffix(out, filepath.Base(out)) + r.Name + "-<timestamp>"
			}
			fmt.Fprintf(c.App.Writer, "%s: ok (method %s, %d steps, run directory %s)\n", c.Args().First(), method, r.Train.Steps, out)
			return nil
		},
	}
}
