package recipes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
)

// SoftPromptFile is the soft prompt a run with a soft_prompt: section
// writes when it finishes (lora.LoadSoftPrompt reads it; `minnow generate`
// uses it from the run directory).
const SoftPromptFile = "soft_prompt.ckpt"

// softPromptExt is the soft_prompt: section: prompt tuning. The model
// named by model.checkpoint stays frozen and only P virtual-token
// embeddings before every input train (lora.SoftPrompt); step checkpoints
// hold only them. A finished run writes the prompt (SoftPromptFile) and
// the unchanged base (ModelFile), which `minnow generate` reads together.
type softPromptExt struct{}

func init() { RegisterExtension(softPromptExt{}) }

func (softPromptExt) Section() string { return "soft_prompt" }

func (softPromptExt) NewConfig() any { return &lora.PromptConfig{Tokens: 20, Init: lora.PromptRandom} }

func (softPromptExt) Validate(r *Recipe, cfg any) error {
	c := cfg.(*lora.PromptConfig)
	switch {
	case c.Init != lora.PromptRandom && c.Init != lora.PromptVocab && c.Init != lora.PromptText:
		return rangeErr("soft_prompt.init", c.Init, "random, vocab or text")
	case c.Init == lora.PromptText && c.Text == "":
		return rangeErr("soft_prompt.text", `""`, "the text whose token embeddings start the prompt (init: text)")
	case c.Tokens < 0 || c.Tokens == 0 && c.Init != lora.PromptText:
		return rangeErr("soft_prompt.tokens", c.Tokens, "a positive number of virtual tokens (0 only with init: text, meaning the text's)")
	case !(c.Std >= 0):
		return rangeErr("soft_prompt.std", c.Std, "0 (the model's initializer_range) or more")
	}
	if m := r.Method; m != "" && m != MethodSFT && m != MethodPretrain {
		return fmt.Errorf("soft_prompt: prompt tuning runs with method sft or pretrain, not %q", r.Method)
	}
	if _, ok := r.Extensions["lora"]; ok {
		return errors.New("soft_prompt: train either a soft prompt or LoRA adapters in one run, not both (drop the lora: or the soft_prompt: section)")
	}
	if _, ok := r.Extensions["export"]; ok {
		return errors.New("export: llama.cpp cannot read a soft prompt from a GGUF file, so a soft_prompt: run has no export (generate with `minnow generate --run`)")
	}
	if r.Model.Checkpoint == "" {
		return errors.New("soft_prompt: a soft prompt trains on a frozen model, so model.checkpoint must name a trained or imported one (a run directory or checkpoint file)")
	}
	return nil
}

// softPromptState is what WrapModel leaves for Finish.
type softPromptState struct {
	base   model.Model
	prompt *lora.SoftPrompt
}

// WrapModel freezes m and returns it behind a new soft prompt, whose
// embeddings are the one parameter to train.
func (softPromptExt) WrapModel(e *Env, m model.Model, cfg any) (model.Model, []model.NamedParam, error) {
	c := *cfg.(*lora.PromptConfig)
	if c.Seed == 0 {
		c.Seed = e.Recipe.Seed
	}
	tok, err := e.Tokenizer()
	if err != nil {
		return nil, nil, err
	}
	p, err := lora.NewSoftPrompt(m, tok, c)
	if err != nil {
		return nil, nil, fmt.Errorf("soft_prompt: %w", err)
	}
	e.setExt("soft_prompt", &softPromptState{base: m, prompt: p})
	return p.Wrap(m), p.Params(), nil
}

// Finish writes the trained prompt and the base model beside it.
func (softPromptExt) Finish(_ context.Context, e *Env, _ any, s *Summary) error {
	st, ok := e.ext["soft_prompt"].(*softPromptState)
	if !ok {
		return errors.New("soft_prompt: the method never built the model, so there is no prompt to save")
	}
	if err := st.prompt.Save(filepath.Join(e.Dir, SoftPromptFile)); err != nil {
		return err
	}
	meta := map[string]string{"soft_prompt": SoftPromptFile, "base": e.Recipe.Model.Checkpoint}
	if err := SaveModel(filepath.Join(e.Dir, ModelFile), st.base, TokenizerFile, meta); err != nil {
		return err
	}
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	s.Extra["soft prompt"] = fmt.Sprintf("%d virtual tokens, %d parameters: %s (the frozen base: %s)",
		st.prompt.Len(), st.prompt.Embeddings.Len(), SoftPromptFile, ModelFile)
	return nil
}

// WithSoftPrompt returns m behind the soft prompt that the run directory
// dir holds (SoftPromptFile), or m itself when dir is not a run directory
// with one. It returns lora.LoadSoftPrompt's errors, such as a prompt
// trained for other weights or another tokenizer.
func WithSoftPrompt(dir string, m model.Model, tok tokenizer.Tokenizer) (model.Model, error) {
	path, ok := SoftPromptIn(dir)
	if !ok {
		return m, nil
	}
	p, err := lora.LoadSoftPrompt(path, m, tok)
	if err != nil {
		return nil, err
	}
	return p.Wrap(m), nil
}

// SoftPromptIn returns the path of the soft prompt a run directory dir
// holds (SoftPromptFile) and whether it holds one; a file is not a run
// directory and holds none.
func SoftPromptIn(dir string) (string, bool) {
	path := filepath.Join(dir, SoftPromptFile)
	_, err := os.Stat(path)
	return path, err == nil
}
