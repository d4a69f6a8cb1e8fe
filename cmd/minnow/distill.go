package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/distill"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/recipes"
	"github.com/minnowml/minnow/tensor"
)

func distillCmd() *cli.Command {
	return &cli.Command{
		Name:  "distill",
		Usage: "distillation tools: precompute a teacher's signals",
		Subcommands: []*cli.Command{{
			Name:  "cache-teacher",
			Usage: "run a teacher once over a data file and write its top-K signals for distill recipes (distill.cache_path)",
			Description: "--data is JSONL of {\"prompt\", \"completion\"} or {\"prompt\", \"chosen\", \"rejected\", \"student\"} records;\n" +
				"each response gets the teacher's top-K log-probs per token and the remainder mass,\n" +
				"and with --reference (ADPA) the reference teacher's log-probs of the same tokens.\n" +
				"The teacher's tokenizer.gguf tokenizes the records and is recorded in the cache;\n" +
				"--student checks that the student shares it.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "teacher", Required: true, Usage: "the teacher: a run directory (or its name under runs/) or a checkpoint beside a tokenizer.gguf"},
				&cli.StringFlag{Name: "reference", Usage: "ADPA's reference teacher (the SFT teacher), when --teacher is the DPO-aligned one"},
				&cli.StringFlag{Name: "student", Usage: "a student run whose tokenizer must be the teacher's"},
				&cli.StringFlag{Name: "data", Required: true, Usage: "JSONL records to compute the signals on"},
				&cli.StringFlag{Name: "out", Required: true, Usage: "the cache file to write (atomically)"},
				&cli.StringFlag{Name: "chat-template", Usage: "render records as chat with this template (default: plain prompt + response + EOS)"},
				&cli.IntFlag{Name: "top-k", Value: 50, Usage: "tokens kept per position"},
				&cli.Float64Flag{Name: "temperature", Value: 1, Usage: "the teacher's softmax temperature (a KD loss must use the same)"},
				&cli.IntFlag{Name: "batch", Value: 8, Usage: "sequences per teacher forward pass"},
			},
			Action: cacheTeacher,
		}},
	}
}

// runTokenizer loads the tokenizer of a run directory or checkpoint.
func runTokenizer(path string) (tokenizer.Tokenizer, error) {
	return tokenizer.Load(recipes.CheckpointTokenizer(path))
}

// loadRunModel loads the model of a run directory or checkpoint.
func loadRunModel(be tensor.Backend, path string) (model.Model, error) {
	ck, err := recipes.LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	m, _, err := recipes.LoadModel(be, ck)
	return m, err
}

func cacheTeacher(c *cli.Context) error {
	cfg := distill.CacheConfig{TopK: c.Int("top-k"), Temperature: c.Float64("temperature"), Batch: c.Int("batch")}
	if err := cfg.Validate(); err != nil {
		return usageErr{fmt.Errorf("--%w", err)}
	}
	teacherPath := resolveRun(c.String("teacher"))
	tok, err := runTokenizer(teacherPath)
	if err != nil {
		return usageErr{fmt.Errorf("--teacher: %w", err)}
	}
	id := distill.TokenizerID(*tok.Vocab())
	for _, flag := range []string{"reference", "student"} {
		if c.String(flag) == "" {
			continue
		}
		other, err := runTokenizer(resolveRun(c.String(flag)))
		if err != nil {
			return usageErr{fmt.Errorf("--%s: %w", flag, err)}
		}
		if distill.TokenizerID(*other.Vocab()) != id {
			return usageErr{fmt.Errorf("--%s uses another tokenizer than --teacher: teacher and student must share a tokenizer", flag)}
		}
	}
	var tmpl *tokenizer.ChatTemplate
	if name := c.String("chat-template"); name != "" {
		t, err := tokenizer.ChatTemplateByName(name)
		if err != nil {
			return usageErr{fmt.Errorf("--chat-template: %w", err)}
		}
		tmpl = &t
	}
	exs, err := distill.ReadExamples(c.String("data"))
	if err != nil {
		return usageErr{err}
	}
	be := backend(c)
	teacher, err := loadRunModel(be, teacherPath)
	if err != nil {
		return fmt.Errorf("--teacher: %w", err)
	}
	var ref model.Model
	if p := c.String("reference"); p != "" {
		if ref, err = loadRunModel(be, resolveRun(p)); err != nil {
			return fmt.Errorf("--reference: %w", err)
		}
	}
	seqs, err := distill.Tokenize(exs, tok, tmpl, teacher.Config().MaxPositionEmbeddings)
	if err != nil {
		return usageErr{err}
	}
	cache, err := distill.BuildCache(teacher, ref, *tok.Vocab(), seqs, cfg)
	if err != nil {
		return err
	}
	cache.Header.Teacher = teacherPath
	if ref != nil {
		cache.Header.RefTeacher = resolveRun(c.String("reference"))
	}
	out := c.String("out")
	if out == "" {
		return usageErr{errors.New("--out: name the cache file")}
	}
	if err := distill.Write(out, cache); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: %d sequences of %d records, top-%d, reference %v\n", out, len(seqs), len(exs), cache.Header.K, ref != nil)
	return nil
}
