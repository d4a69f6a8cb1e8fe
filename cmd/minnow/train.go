package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
)

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
	if s.ArithAccuracy != nil {
		rows = append(rows, []string{"arith accuracy", strconv.FormatFloat(100**s.ArithAccuracy, 'f', 1, 64) + "%"})
	}
	for _, k := range slices.Sorted(maps.Keys(s.Extra)) {
		rows = append(rows, []string{k, s.Extra[k]})
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
			&cli.StringFlag{Name: "run", Usage: "run directory, or its name under runs/ (its newest checkpoint and tokenizer.gguf, and its soft prompt when it trained one)"},
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
			src := resolveRun(run)
			if ck != "" {
				src = ck
			}
			m, v, err := recipes.LoadWithVocab(backend(c), src)
			if err != nil {
				return usageErr{err}
			}
			tok, err := tokenizer.New(v)
			if err != nil {
				return usageErr{err}
			}
			// A prompt-tuning run's soft prompt goes before the input.
			if m, err = recipes.WithSoftPrompt(src, m, tok); err != nil {
				return usageErr{err}
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
