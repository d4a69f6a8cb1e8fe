package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/train"
)

func trainCmd() *cli.Command {
	return &cli.Command{
		Name:      "train",
		Usage:     "run a pretraining recipe; running it again resumes from the run directory",
		ArgsUsage: "RECIPE.yaml",
		Flags:     []cli.Flag{&cli.IntFlag{Name: "every", Value: 10, Usage: "print progress every N steps"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr{errors.New("train takes one RECIPE.yaml")}
			}
			if c.Int("every") <= 0 {
				return usageErr{fmt.Errorf("--every %d: want a positive step count", c.Int("every"))}
			}
			r, err := recipes.LoadOrBuiltin(c.Args().First())
			if err != nil {
				return usageErr{err}
			}
			// Ctrl-C cancels the loop, which saves a checkpoint at the step
			// boundary, so the same command resumes.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			w := c.App.Writer
			every, began, total := c.Int("every"), time.Now(), r.Train.Steps
			// A terminal gets a bar redrawn in place every step; logs and
			// CI get plain lines every --every steps.
			tty := isTerminal(w)
			first := -1
			progress := func(m train.Metric) {
				if first < 0 {
					first = m.Step - 1
				}
				if !tty && m.Step%every != 0 && m.Step != total && m.EvalLoss == nil {
					return
				}
				eta := "?"
				if done := m.Step - first; done > 0 {
					eta = (time.Since(began) / time.Duration(done) * time.Duration(total-m.Step)).Round(time.Second).String()
				}
				line := fmt.Sprintf("step %d/%d loss %.4f lr %.3g tok/s %.0f ETA %s", m.Step, total, m.Loss, m.LR, m.TokensPerS, eta)
				if m.EvalLoss != nil {
					line += fmt.Sprintf(" eval_loss %.4f", *m.EvalLoss)
				}
				if !tty {
					fmt.Fprintln(w, line)
					return
				}
				// Keep eval results and the last step on screen; redraw the rest.
				end := "\r"
				if m.EvalLoss != nil || m.Step == total {
					end = "\n"
				}
				fmt.Fprintf(w, "\r\033[K%s %s%s", progressBar(m.Step, total, 24), line, end)
			}
			sum, err := recipes.Run(ctx, backend(c), r, progress)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			if errors.Is(err, context.Canceled) {
				fmt.Fprintf(w, "interrupted at step %d; run the same command to resume\n", sum.Steps)
			}
			return summaryTable(c, sum)
		},
	}
}

// summaryTable prints the run's summary.
func summaryTable(c *cli.Context, s recipes.Summary) error {
	t := tablewriter.NewWriter(c.App.Writer)
	t.Header("metric", "value")
	eval, ppl := "-", "-"
	if s.EvalLoss != 0 {
		eval, ppl = strconv.FormatFloat(s.EvalLoss, 'f', 4, 64), strconv.FormatFloat(math.Exp(s.EvalLoss), 'f', 2, 64)
	}
	rows := [][]string{
		{"train loss", strconv.FormatFloat(s.Loss, 'f', 4, 64)},
		{"eval loss", eval},
		{"eval perplexity", ppl},
		{"steps", fmt.Sprintf("%d (from %d)", s.Steps, s.StartStep)},
		{"tokens", strconv.FormatInt(s.Tokens, 10)},
		{"time", s.Elapsed.Round(time.Millisecond).String()},
		{"run dir", s.RunDir},
	}
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}

func generateCmd() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "sample a completion of --prompt from a trained run",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "run directory (its newest checkpoint and tokenizer.gguf)"},
			&cli.StringFlag{Name: "checkpoint", Usage: "checkpoint file (tokenizer.gguf is looked for beside it)"},
			&cli.StringFlag{Name: "prompt", Required: true},
			&cli.IntFlag{Name: "max-new", Value: 64, Usage: "most tokens to generate"},
			&cli.Float64Flag{Name: "temperature", Value: 0.8, Usage: "0 means greedy"},
			&cli.Float64Flag{Name: "top-p", Value: 0.95},
			&cli.Uint64Flag{Name: "seed", Value: 1},
		},
		Action: func(c *cli.Context) error {
			run, ck := c.String("run"), c.String("checkpoint")
			if (run == "") == (ck == "") {
				return usageErr{errors.New("give exactly one of --run DIR or --checkpoint FILE")}
			}
			if c.Int("max-new") <= 0 || c.Float64("temperature") < 0 || c.Float64("top-p") < 0 || c.Float64("top-p") > 1 {
				return usageErr{errors.New("--max-new must be positive, --temperature >= 0 and --top-p in [0, 1]")}
			}
			src, tokDir := run, run
			if ck != "" {
				src, tokDir = ck, filepath.Dir(ck)
			}
			cp, err := recipes.LoadCheckpoint(src)
			if err != nil {
				return usageErr{err}
			}
			tok, err := tokenizer.Load(filepath.Join(tokDir, recipes.TokenizerFile))
			if err != nil {
				return usageErr{err}
			}
			m, _, err := recipes.LoadModel(backend(c), cp)
			if err != nil {
				return err
			}
			prompt := tok.Encode(c.String("prompt"), tokenizer.EncodeOptions{})
			if len(prompt) == 0 {
				return usageErr{errors.New("--prompt encodes to no tokens")}
			}
			out, err := model.Generate(m, tok, [][]int32{prompt}, model.GenerateConfig{MaxNewTokens: c.Int("max-new"),
				Temperature: c.Float64("temperature"), TopP: c.Float64("top-p"), Seed: c.Uint64("seed")})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, c.String("prompt")+out[0].Text)
			return nil
		},
	}
}

// isTerminal reports whether w is a character device such as a terminal,
// where progress is redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws done of total as a bar of width cells.
func progressBar(done, total, width int) string {
	filled := 0
	if total > 0 {
		filled = min(width, max(0, done*width/total))
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}
