package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/internal/atomicfile"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/tensor"
)

func importCmd() *cli.Command {
	outUsage := "run directory to create: a step-0 checkpoint, config.json and tokenizer.gguf"
	return &cli.Command{
		Name:  "import",
		Usage: "turn a Hugging Face or llama2.c checkpoint into a minnow run directory",
		Subcommands: []*cli.Command{
			{
				Name:      "hf",
				Usage:     "import a Hugging Face folder (config.json, safetensors, tokenizer.json) of a Llama-family or Qwen2 model",
				ArgsUsage: "DIR",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "out", Usage: outUsage}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 || c.String("out") == "" {
						return usageErr{errors.New("usage: minnow import hf DIR --out RUN")}
					}
					dir := c.Args().First()
					return importInto(c, c.String("out"), "hf:"+dir, func(be tensor.Backend) (model.Model, *tokenizer.Vocab, error) {
						return convert.ImportHF(dir, be, tensor.Float32)
					})
				},
			},
			{
				Name:  "llama2c",
				Usage: "import a llama2.c checkpoint (version 0) and its tokenizer.bin",
				Flags: []cli.Flag{&cli.StringFlag{Name: "out", Required: true, Usage: outUsage},
					&cli.StringFlag{Name: "checkpoint", Required: true, Usage: "the llama2.c model .bin"},
					&cli.StringFlag{Name: "tokenizer", Required: true, Usage: "the llama2.c tokenizer .bin"},
				},
				Action: func(c *cli.Context) error {
					ck, tok := c.String("checkpoint"), c.String("tokenizer")
					return importInto(c, c.String("out"), "llama2c:"+ck, func(be tensor.Backend) (model.Model, *tokenizer.Vocab, error) {
						return convert.ImportLlama2C(ck, tok, be, tensor.Float32)
					})
				},
			},
		},
	}
}

// importInto runs load and writes what it returns as a run directory.
// Import errors are the user's input (a bad file or folder), so they are
// usage errors.
func importInto(c *cli.Context, out, source string, load func(tensor.Backend) (model.Model, *tokenizer.Vocab, error)) error {
	m, v, err := load(backend(c))
	if err != nil {
		return usageErr{err}
	}
	if err := writeRun(out, source, m, v); err != nil {
		return err
	}
	cfg := m.Config()
	n := 0
	for _, p := range m.Params() {
		n += p.Tensor.Len()
	}
	fmt.Fprintf(c.App.Writer, "imported %s: %s, %d layers, width %d, %d parameters -> %s\n",
		source, cfg.ModelType, cfg.NumHiddenLayers, cfg.HiddenSize, n, out)
	if v == nil {
		fmt.Fprintf(c.App.ErrWriter, "warning: %s has no tokenizer; %s holds no %s\n", source, out, recipes.TokenizerFile)
	}
	return nil
}

// writeRun writes m as the step-0 checkpoint of the run directory out, as
// train.Loop writes one (Arch, config.json bytes, tokenizer file name and
// weights by GGUF name), with config.json and the vocabulary as
// tokenizer.gguf beside it, so that `minnow generate --run out`, recipes'
// model.checkpoint and GGUF export read it. It refuses a directory that
// already holds checkpoints, which an import would silently rewind.
func writeRun(out, source string, m model.Model, v *tokenizer.Vocab) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	d, err := checkpoint.OpenDir(out, 0)
	if err != nil {
		return err
	}
	if steps, err := d.Steps(); err != nil {
		return err
	} else if len(steps) > 0 {
		return usageErr{fmt.Errorf("%s already holds checkpoints; import into a new directory", out)}
	}
	tokFile := ""
	if v != nil {
		tokFile = recipes.TokenizerFile
		if err := gguf.WriteFile(filepath.Join(out, tokFile), v.GGUFMetadata(), nil); err != nil {
			return err
		}
	}
	cj, err := json.MarshalIndent(m.Config(), "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(out, recipes.ConfigFile), 0o644, func(w io.Writer) error {
		_, err := w.Write(append(cj, '\n'))
		return err
	}); err != nil {
		return err
	}
	return recipes.SaveModel(d.StepPath(0), m, tokFile, map[string]string{"imported_from": source})
}
