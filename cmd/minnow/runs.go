package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/recipes"
)

// headlineMetrics are shown first, in this order, under "other".
var headlineMetrics = []string{"eval_accuracy", "arith_accuracy", "eval_completion_length_mean", "reward", "preference_accuracy", "win_rate"}

// standardMetrics are the train.Metric fields runs ls shows in their own
// columns or leaves out; any other metric (reward, accuracy, ...) is
// listed under "other".
var standardMetrics = map[string]bool{"step": true, "loss": true, "lr": true, "grad_norm": true,
	"tokens": true, "tokens_per_s": true, "eval_loss": true, "eval_perplexity": true}

func runsCmd() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "list run directories",
		Subcommands: []*cli.Command{{
			Name:      "ls",
			Usage:     "list the runs under DIR (default runs) with their final metrics",
			ArgsUsage: "[DIR]",
			Action: func(c *cli.Context) error {
				if c.NArg() > 1 {
					return usageErr{fmt.Errorf("runs ls takes at most one DIR")}
				}
				root := "runs"
				if c.NArg() == 1 {
					root = c.Args().First()
				}
				list, err := recipes.ListRuns(root)
				if errors.Is(err, os.ErrNotExist) && c.NArg() == 0 {
					err, list = nil, nil // no run yet: say so below
				}
				if err != nil {
					return hinted{usageErr{err}, "give the directory that holds run directories (default runs)"}
				}
				if len(list) == 0 {
					fmt.Fprintf(c.App.Writer, "no runs under %s; start one with `minnow run RECIPE`\n", root)
					return nil
				}
				t := tablewriter.NewWriter(c.App.Writer)
				t.Header("run", "method", "step", "loss", "eval loss", "other", "updated")
				for _, r := range list {
					if err := t.Append(runRow(r)); err != nil {
						return err
					}
				}
				return t.Render()
			},
		}},
	}
}

// runRow is one line of runs ls.
func runRow(r recipes.RunInfo) []string {
	metric := func(k string) string {
		v, ok := r.Last[k]
		if !ok {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	// RL and distillation runs log dozens of metrics; the table shows the
	// headline ones and counts the rest, which metrics.jsonl and plot have.
	var other []string
	shown := map[string]bool{}
	for _, k := range headlineMetrics {
		if v, ok := r.Last[k]; ok && len(other) < 4 {
			other = append(other, k+"="+strconv.FormatFloat(v, 'g', 4, 64))
			shown[k] = true
		}
	}
	var rest []string
	for k, v := range r.Last {
		if !standardMetrics[k] && !shown[k] {
			rest = append(rest, k+"="+strconv.FormatFloat(v, 'g', 4, 64))
		}
	}
	sort.Strings(rest)
	if len(other)+len(rest) <= 4 {
		other = append(other, rest...)
	} else if len(rest) > 0 {
		other = append(other, fmt.Sprintf("+%d more", len(rest)))
	}
	updated := "-"
	if !r.Modified.IsZero() {
		updated = r.Modified.Format(time.DateTime)
	}
	step := fmt.Sprintf("%d/%d", int(r.Last["step"]), r.Steps)
	return []string{filepath.Base(r.Dir), r.Method, step, metric("loss"), metric("eval_loss"), strings.Join(other, " "), updated}
}

// resolveRun returns the run directory arg names: arg itself, or
// runs/<arg> when only that exists, so that `minnow plot arith-sft-latest`
// works from the project directory.
func resolveRun(arg string) string {
	if _, err := os.Stat(arg); arg != "" && err != nil {
		if alt := filepath.Join("runs", arg); !filepath.IsAbs(arg) {
			if _, err := os.Stat(alt); err == nil {
				return alt
			}
		}
	}
	return arg
}
