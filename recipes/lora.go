package recipes

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
)

// Files a LoRA run writes when it finishes, besides ModelFile.
const (
	// AdapterFile holds the adapters alone in minnow's checkpoint format
	// (lora.Load reads it).
	AdapterFile = "adapter.ckpt"
	// PEFTDir holds the adapters in PEFT's layout, for the Python tools.
	PEFTDir = "peft"
)

// loraExt is the lora: section. With it, any method trains adapters on
// the chosen linear layers of a frozen model (package lora), and the
// run's step checkpoints hold only the adapters. A finished run writes
// the adapters (AdapterFile, PEFTDir) and the base with them merged
// (ModelFile), which generate and export read.
type loraExt struct{}

// loraState is what PrepareModel leaves for Finish.
type loraState struct {
	m  model.Model
	ad *lora.Adapter
}

func init() { RegisterExtension(loraExt{}) }

func (loraExt) Section() string { return "lora" }

func (loraExt) NewConfig() any { return &lora.Config{R: 16, Alpha: 32} }

func (loraExt) Validate(r *Recipe, cfg any) error {
	c := cfg.(*lora.Config)
	switch {
	case c.R <= 0:
		return rangeErr("lora.r", c.R, "a positive rank")
	case c.Alpha < 0:
		return rangeErr("lora.alpha", c.Alpha, "0 (meaning r) or more")
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return rangeErr("lora.dropout", c.Dropout, "[0, 1)")
	case c.Init != "" && c.Init != "kaiming" && c.Init != "gaussian":
		return rangeErr("lora.init", c.Init, "kaiming or gaussian")
	}
	if r.Model.Checkpoint == "" {
		return fmt.Errorf("lora: adapters train on a frozen model, so model.checkpoint must name a trained or imported one (a run directory or checkpoint file)")
	}
	return nil
}

// PrepareModel attaches the adapters, which freezes the base, and returns
// them as the parameters to train.
func (loraExt) PrepareModel(e *Env, m model.Model, cfg any) ([]model.NamedParam, error) {
	c := *cfg.(*lora.Config)
	if c.Seed == 0 {
		c.Seed = e.Recipe.Seed
	}
	ad, err := lora.Apply(m, c)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	e.setExt("lora", &loraState{m: m, ad: ad})
	return ad.Params(), nil
}

// Finish writes the adapters in both formats and the merged model.
func (loraExt) Finish(_ context.Context, e *Env, _ any, s *Summary) error {
	st, ok := e.ext["lora"].(*loraState)
	if !ok {
		return fmt.Errorf("lora: the method never built the model, so there are no adapters to save")
	}
	base := e.Recipe.Model.Checkpoint
	if err := st.ad.Save(filepath.Join(e.Dir, AdapterFile), map[string]string{"base": base}); err != nil {
		return err
	}
	if err := st.ad.SavePEFT(filepath.Join(e.Dir, PEFTDir), st.m, lora.PEFTOptions{BaseModel: base}); err != nil {
		return err
	}
	if err := st.ad.Merge(); err != nil {
		return fmt.Errorf("lora: merge: %w", err)
	}
	if err := SaveModel(filepath.Join(e.Dir, ModelFile), st.m, TokenizerFile, map[string]string{"lora_base": base}); err != nil {
		return err
	}
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	s.Extra["lora adapters"] = fmt.Sprintf("%d parameters: %s, %s/", st.ad.NumParams(), AdapterFile, PEFTDir)
	s.Extra["merged model"] = ModelFile
	return nil
}
