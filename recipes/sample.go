package recipes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
)

// SamplesFile holds the completions a run samples at its end.
const SamplesFile = "samples.jsonl"

// SampleSpec asks for completions of the trained model at the end of a
// run, written to samples.jsonl. With Arith, held-out arithmetic problems
// are answered and scored, and the accuracy becomes the metric
// arith_accuracy.
type SampleSpec struct {
	// Prompts are completed as they are.
	Prompts []string `yaml:"prompts,omitempty"`
	// Arith is the number of fresh data.arith problems (drawn with
	// another seed) to answer and score; it needs data.arith.
	Arith int `yaml:"arith,omitempty"`
	// MaxNewTokens caps each completion (0 means 64).
	MaxNewTokens int `yaml:"max_new_tokens,omitempty"`
	// Temperature 0 (the default) decodes greedily.
	Temperature float64 `yaml:"temperature,omitempty"`
	// Stop lists strings that end a completion besides the tokenizer's
	// end-of-text; arithmetic prompts also stop at a blank line.
	Stop []string `yaml:"stop,omitempty"`
}

// arithHeldOutSeed offsets the problem seed so that scored problems are
// drawn from another stream than the training ones.
const arithHeldOutSeed = 1_000_003

func (s *SampleSpec) validate(r *Recipe) error {
	switch {
	case s.Arith < 0 || s.Arith > 10000:
		return rangeErr("sample.arith", s.Arith, "0 to 10000 problems")
	case s.Arith > 0 && r.Data.Arith == nil:
		return rangeErr("sample.arith", s.Arith, "0 unless data.arith generates the data")
	case s.MaxNewTokens < 0:
		return rangeErr("sample.max_new_tokens", s.MaxNewTokens, "0 (meaning 64) or more")
	case s.Temperature < 0:
		return rangeErr("sample.temperature", s.Temperature, "0 (greedy) or more")
	}
	return nil
}

// sampleRecord is one line of samples.jsonl.
type sampleRecord struct {
	Prompt  string `json:"prompt"`
	Output  string `json:"output"`
	Answer  string `json:"answer,omitempty"`
	Correct *bool  `json:"correct,omitempty"`
}

// Sample completes the recipe's sample: prompts with m, writes them to
// samples.jsonl, and logs arith_accuracy at step to metrics.jsonl when
// arithmetic problems were scored. It does nothing without a sample:
// section. It returns an error when generation or writing fails.
func (e *Env) Sample(m model.Model, tok tokenizer.Tokenizer, step int) error {
	s := e.Recipe.Sample
	if s == nil {
		return nil
	}
	var recs []sampleRecord
	var probs []data.Problem
	for _, p := range s.Prompts {
		recs = append(recs, sampleRecord{Prompt: p})
	}
	stop := s.Stop
	if s.Arith > 0 && e.Recipe.Data.Arith != nil {
		a := *e.Recipe.Data.Arith
		if a.Seed == 0 {
			a.Seed = e.Recipe.Seed
		}
		ps, err := data.GenerateArith(a.config(), a.Seed+arithHeldOutSeed, s.Arith)
		if err != nil {
			return fmt.Errorf("sample.arith: %w", err)
		}
		probs = ps
		for _, p := range ps {
			recs = append(recs, sampleRecord{Prompt: ArithPrompt(p.Question), Answer: p.Answer})
		}
		stop = append(append([]string{}, stop...), "\n\n")
	}
	if len(recs) == 0 {
		return nil
	}
	v := tok.Vocab()
	prompts := make([][]int32, len(recs))
	for i, r := range recs {
		var ids []int32
		if v.AddBOS && v.BOS >= 0 {
			ids = append(ids, v.BOS)
		}
		prompts[i] = append(ids, tok.Encode(r.Prompt, tokenizer.EncodeOptions{})...)
	}
	maxNew := s.MaxNewTokens
	if maxNew == 0 {
		maxNew = 64
	}
	outs, err := model.Generate(m, tok, prompts, model.GenerateConfig{MaxNewTokens: maxNew,
		Temperature: s.Temperature, StopStrings: stop, Seed: e.Recipe.Seed})
	if err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	f, err := os.Create(filepath.Join(e.Dir, SamplesFile))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	right := 0
	for i := range recs {
		recs[i].Output = outs[i].Text
		if j := i - len(s.Prompts); j >= 0 {
			ok := probs[j].Correct(outs[i].Text)
			recs[i].Correct = &ok
			if ok {
				right++
			}
		}
		if err := enc.Encode(recs[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if len(probs) > 0 {
		acc := float64(right) / float64(len(probs))
		e.sum.ArithAccuracy = &acc
		line, _ := json.Marshal(map[string]any{"step": step, "arith_accuracy": acc})
		if _, err := e.metrics.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return nil
}
