package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/bench"
	"github.com/minnowml/minnow/tensor"
)

func benchCmd() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure performance",
		Subcommands: []*cli.Command{tokenizeBenchCmd(), {
			Name:  "core",
			Usage: "SGEMM rate and GPT-2-shaped training steps (4 layers, width 256, vocab 50257, batch 4 x 64 tokens)",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "steps", Value: 10, Usage: "timed training steps"},
				&cli.IntFlag{Name: "warmup", Value: 3, Usage: "untimed steps first"},
				&cli.IntFlag{Name: "batch", Value: 4},
				&cli.IntFlag{Name: "seq", Value: 64},
				&cli.IntFlag{Name: "vocab", Value: bench.DefaultGPT.Vocab, Usage: "vocabulary size (smaller for a quick check)"},
				&cli.BoolFlag{Name: "quiet", Usage: "print only the RESULT line"},
			},
			Action: func(c *cli.Context) error {
				if c.Int("steps") < 1 || c.Int("batch") < 1 || c.Int("seq") < 1 || c.Int("vocab") < 2 || c.Int("warmup") < 0 {
					return usageErr{errors.New("--steps, --batch and --seq must be positive, --vocab at least 2 and --warmup not negative")}
				}
				be := backend(c)
				cfg := bench.DefaultGPT
				cfg.Context, cfg.Vocab = c.Int("seq"), c.Int("vocab")
				var progress func(string)
				out := c.App.Writer
				if !c.Bool("quiet") {
					fmt.Fprintln(out, "backend:", be.Describe())
					progress = func(s string) { fmt.Fprintln(out, s) }
				}
				var res bench.CoreResult
				err := tensor.Catch(func() {
					res = bench.Core(be, cfg, c.Int("batch"), c.Int("seq"), c.Int("warmup"), c.Int("steps"), progress)
				})
				if err != nil {
					return err
				}
				if !c.Bool("quiet") {
					fmt.Fprintf(out, "loss %.4f -> %.4f; per step: %.0f new buffers, %.0f Go heap objects (%.0f KB)\n",
						res.FirstLoss, res.LastLoss, res.AllocsPerStep, res.HeapObjectsPerStep, res.HeapBytesPerStep/1024)
				}
				fmt.Fprintln(out, res.Line())
				return nil
			},
		}},
	}
}

func tokenizeBenchCmd() *cli.Command {
	dataDir := os.Getenv("MINNOW_DATA")
	return &cli.Command{
		Name:  "tokenize",
		Usage: "GPT-2 tokenizer speed on Tiny Shakespeare, optionally against tiktoken (npm) with an id comparison",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "vocab", Value: filepath.Join(dataDir, "tokenizers/gpt2/vocab.json"), Usage: "GPT-2 vocab.json"},
			&cli.StringFlag{Name: "merges", Value: filepath.Join(dataDir, "tokenizers/gpt2/merges.txt"), Usage: "GPT-2 merges.txt"},
			&cli.StringFlag{Name: "text", Value: filepath.Join(dataDir, "text/tinyshakespeare/input.txt"), Usage: "text to encode"},
			&cli.IntFlag{Name: "reps", Value: 5, Usage: "timed passes (the median counts)"},
			&cli.BoolFlag{Name: "compare", Usage: "also run tiktoken through node and compare ids"},
			&cli.StringFlag{Name: "node-dir", Value: "tools/node", Usage: "where the npm peer is installed"},
		},
		Action: func(c *cli.Context) error {
			if c.Int("reps") < 1 {
				return usageErr{errors.New("--reps must be positive")}
			}
			v, err := tokenizer.LoadVocabMerges(c.String("vocab"), c.String("merges"))
			if err != nil {
				return usageErr{err}
			}
			if _, err := tokenizer.New(v); err != nil {
				return err
			}
			newTok := func() tokenizer.Tokenizer {
				tok, _ := tokenizer.New(v) // the same vocabulary built once above
				return tok
			}
			text, err := os.ReadFile(c.String("text"))
			if err != nil {
				return usageErr{err}
			}
			var res bench.TokenizeResult
			var ids []int32
			res.MBPerS, ids = bench.Tokenize(newTok, string(text), c.Int("reps"))
			res.Tokens = len(ids)
			if c.Bool("compare") {
				if err := bench.ComparePeer(c.String("node-dir"), c.String("text"), ids, &res); err != nil {
					return err
				}
			}
			fmt.Fprintln(c.App.Writer, res.Line())
			if res.Peer && !res.IdsIdentical {
				return fmt.Errorf("ids differ from tiktoken's from token %d on", res.FirstMismatch)
			}
			return nil
		},
	}
}
