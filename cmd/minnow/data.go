package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
)

func tokenizerCmd() *cli.Command {
	tokFlag := &cli.StringFlag{Name: "tokenizer", Aliases: []string{"t"}, Required: true,
		Usage: "a .gguf file, tokenizer.json, tokenizer.model, llama2.c tokenizer .bin, or a directory holding one"}
	return &cli.Command{
		Name:  "tokenizer",
		Usage: "encode, decode and train tokenizers",
		Subcommands: []*cli.Command{
			{
				Name:      "encode",
				Usage:     "print the token ids of TEXT (or of standard input)",
				ArgsUsage: "[TEXT]",
				Flags: []cli.Flag{tokFlag,
					&cli.BoolFlag{Name: "special", Usage: "add BOS/EOS and parse special-token text"}},
				Action: func(c *cli.Context) error {
					tok, err := loadTokenizer(c)
					if err != nil {
						return err
					}
					text, err := argOrStdin(c)
					if err != nil {
						return err
					}
					sp := c.Bool("special")
					ids := tok.Encode(text, tokenizer.EncodeOptions{AddSpecial: sp, ParseSpecial: sp})
					parts := make([]string, len(ids))
					for i, id := range ids {
						parts[i] = strconv.Itoa(int(id))
					}
					fmt.Fprintln(c.App.Writer, strings.Join(parts, " "))
					return nil
				},
			},
			{
				Name:      "decode",
				Usage:     "print the text of token IDS",
				ArgsUsage: "ID...",
				Flags:     []cli.Flag{tokFlag, &cli.BoolFlag{Name: "skip-special", Usage: "leave special tokens out"}},
				Action: func(c *cli.Context) error {
					tok, err := loadTokenizer(c)
					if err != nil {
						return err
					}
					n := len(tok.Vocab().Tokens)
					var ids []int32
					for _, a := range c.Args().Slice() {
						for _, f := range strings.Fields(a) {
							v, err := strconv.Atoi(f)
							if err != nil || v < 0 || v >= n {
								return usageErr{fmt.Errorf("token id %q is not an integer in [0, %d)", f, n)}
							}
							ids = append(ids, int32(v))
						}
					}
					fmt.Fprintln(c.App.Writer, tok.Decode(ids, tokenizer.DecodeOptions{SkipSpecial: c.Bool("skip-special")}))
					return nil
				},
			},
			{
				Name:      "train",
				Usage:     "train a byte-level BPE vocabulary on text FILES and write it as a vocabulary-only GGUF file",
				ArgsUsage: "FILE...",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "vocab-size", Value: 8192, Usage: "tokens wanted, counting 256 byte tokens and the specials"},
					&cli.StringSliceFlag{Name: "special", Value: cli.NewStringSlice("<|endoftext|>"), Usage: "special tokens (repeatable)"},
					&cli.StringFlag{Name: "pre", Value: "gpt-2", Usage: "pre-tokenizer: gpt-2, llama-bpe, qwen2 or smollm"},
					&cli.IntFlag{Name: "min-frequency", Value: 2, Usage: "stop when no pair occurs this often"},
					&cli.StringFlag{Name: "out", Required: true, Usage: "the .gguf file to write"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usageErr{errors.New("name at least one text FILE to train on")}
					}
					v, err := tokenizer.TrainFiles(tokenizer.TrainConfig{
						VocabSize: c.Int("vocab-size"), Special: c.StringSlice("special"),
						Pre: c.String("pre"), MinFrequency: c.Int("min-frequency"),
					}, c.Args().Slice()...)
					if err != nil {
						return usageErr{err}
					}
					if err := gguf.WriteFile(c.String("out"), v.GGUFMetadata(), nil); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "wrote %s: %d tokens, %d merges\n", c.String("out"), len(v.Tokens), len(v.Merges))
					return nil
				},
			},
		},
	}
}

func dataCmd() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "generate and inspect datasets",
		Subcommands: []*cli.Command{{
			Name:  "arith",
			Usage: "write seeded arithmetic problems with worked steps and a final '#### answer' as JSONL",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "n", Value: 1000, Usage: "number of problems"},
				&cli.Uint64Flag{Name: "seed", Value: 1},
				&cli.StringSliceFlag{Name: "ops", Value: cli.NewStringSlice("+"), Usage: "operations among +, - and *, repeated or comma-separated"},
				&cli.IntFlag{Name: "min-digits", Value: 1},
				&cli.IntFlag{Name: "max-digits", Value: 3, Usage: "difficulty: the most digits an operand has"},
				&cli.IntFlag{Name: "operands", Value: 2, Usage: "terms of an addition"},
				&cli.Float64Flag{Name: "verbose", Usage: "pad worked solutions with redundant lines, each with this probability (0 to 1)"},
				&cli.BoolFlag{Name: "verbose-whole", Usage: "with --verbose, pad a whole solution with that probability, or none of it"},
				&cli.StringFlag{Name: "out", Usage: "JSONL file to write (default: standard output)"},
			},
			Action: func(c *cli.Context) error {
				var ops []data.ArithOp
				// The app keeps commas in slice flags (for --set's YAML lists),
				// so --ops +,- is split here.
				for _, o := range c.StringSlice("ops") {
					for _, op := range strings.Split(o, ",") {
						ops = append(ops, data.ArithOp(op))
					}
				}
				probs, err := data.GenerateArith(data.ArithConfig{Ops: ops, MinDigits: c.Int("min-digits"),
					MaxDigits: c.Int("max-digits"), Operands: c.Int("operands"), Verbose: c.Float64("verbose"), VerboseWhole: c.Bool("verbose-whole")}, c.Uint64("seed"), c.Int("n"))
				if err != nil {
					return usageErr{err}
				}
				if out := c.String("out"); out != "" {
					return data.WriteJSONLFile(out, probs)
				}
				return data.WriteJSONL(c.App.Writer, probs)
			},
		}},
	}
}

func loadTokenizer(c *cli.Context) (tokenizer.Tokenizer, error) {
	tok, err := tokenizer.Load(c.String("tokenizer"))
	if err != nil {
		return nil, usageErr{err}
	}
	return tok, nil
}

// argOrStdin returns the first argument, or all of standard input when
// there is none.
func argOrStdin(c *cli.Context) (string, error) {
	if c.NArg() > 0 {
		return strings.Join(c.Args().Slice(), " "), nil
	}
	b, err := io.ReadAll(os.Stdin)
	return string(b), err
}
