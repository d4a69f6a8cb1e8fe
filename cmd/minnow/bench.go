package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/bench"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

func benchCmd() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure performance",
		Subcommands: []*cli.Command{tokenizeBenchCmd(), trainBenchCmd(), generateBenchCmd(), {
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

// smolFlags are the size overrides of the SmolLM-135M-shaped benchmarks,
// so that tests can run a tiny model through the same command.
func smolFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "layers", Value: bench.SmolLM135M.NumHiddenLayers, Usage: "blocks (fewer for a quick check)"},
		&cli.IntFlag{Name: "vocab", Value: bench.SmolLM135M.VocabSize, Usage: "vocabulary size (smaller for a quick check)"},
	}
}

// smolConfig returns the SmolLM-135M-shaped config with the command's
// overrides, or a usage error when they are out of range.
func smolConfig(c *cli.Context) (model.Config, error) {
	if c.Int("layers") < 1 || c.Int("vocab") < 2 {
		return model.Config{}, usageErr{errors.New("--layers must be positive and --vocab at least 2")}
	}
	cfg := bench.SmolLM135M
	cfg.NumHiddenLayers, cfg.VocabSize = c.Int("layers"), c.Int("vocab")
	return cfg, nil
}

func trainBenchCmd() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "training steps of a SmolLM-135M-shaped llama with random weights (batch 1 x 256 tokens)",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "steps", Value: 5, Usage: "timed training steps (the median counts)"},
			&cli.IntFlag{Name: "warmup", Value: 1, Usage: "untimed steps first"},
			&cli.IntFlag{Name: "batch", Value: 1},
			&cli.IntFlag{Name: "seq", Value: 256},
		}, smolFlags()...),
		Action: func(c *cli.Context) error {
			if c.Int("steps") < 1 || c.Int("batch") < 1 || c.Int("seq") < 1 || c.Int("warmup") < 0 {
				return usageErr{errors.New("--steps, --batch and --seq must be positive and --warmup not negative")}
			}
			cfg, err := smolConfig(c)
			if err != nil {
				return err
			}
			res, err := bench.TrainBench(backend(c), cfg, c.Int("batch"), c.Int("seq"), c.Int("warmup"), c.Int("steps"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, res.Line())
			return nil
		},
	}
}

func generateBenchCmd() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "greedy prefill and decode speed of a SmolLM-135M-shaped llama with random weights, one RESULT line per batch size",
		Flags: append([]cli.Flag{
			&cli.IntSliceFlag{Name: "batch", Value: cli.NewIntSlice(1, 16), Usage: "batch sizes, one RESULT line each"},
			&cli.IntFlag{Name: "prompt", Value: 128, Usage: "prompt tokens per row"},
			&cli.IntFlag{Name: "new", Value: 32, Usage: "generated tokens per row (at least 2)"},
			&cli.IntFlag{Name: "reps", Value: 2, Usage: "timed runs of each kind (the median counts)"},
		}, smolFlags()...),
		Action: func(c *cli.Context) error {
			batches := c.IntSlice("batch")
			if len(batches) == 0 || c.Int("prompt") < 1 || c.Int("new") < 2 || c.Int("reps") < 1 {
				return usageErr{errors.New("--prompt and --reps must be positive, --new at least 2, and --batch given")}
			}
			for _, b := range batches {
				if b < 1 {
					return usageErr{fmt.Errorf("--batch %d is not positive", b)}
				}
			}
			cfg, err := smolConfig(c)
			if err != nil {
				return err
			}
			be := backend(c)
			for _, b := range batches {
				res, err := bench.GenerateBench(be, cfg, b, c.Int("prompt"), c.Int("new"), c.Int("reps"))
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, res.Line())
			}
			return nil
		},
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
