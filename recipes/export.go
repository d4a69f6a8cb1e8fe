package recipes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/data/tokenizer"
)

// ExportSpec is the export: section: after the method finishes, the run's
// model (merged with its LoRA adapters, if any) is written as a GGUF file
// that llama.cpp and ollama load.
type ExportSpec struct {
	// GGUF is the tensor type: f32, f16 (the default), bf16, q8_0 or q4_0.
	GGUF string `yaml:"gguf"`
	// File is the output path; empty means model-<type>.gguf in the run
	// directory, and a relative path is taken in the run directory.
	File string `yaml:"file,omitempty"`
	// Name is general.name in the file; empty means the recipe's name.
	Name string `yaml:"name,omitempty"`
}

type exportExt struct{}

func init() { RegisterExtension(exportExt{}) }

func (exportExt) Section() string { return "export" }

func (exportExt) NewConfig() any { return &ExportSpec{GGUF: "f16"} }

func (exportExt) Validate(_ *Recipe, cfg any) error {
	if _, err := convert.ParseGGUFType(cfg.(*ExportSpec).GGUF); err != nil {
		return rangeErr("export.gguf", cfg.(*ExportSpec).GGUF, "f32, f16, bf16, q8_0 or q4_0")
	}
	return nil
}

// Finish exports the finished model: the run directory's ModelFile when a
// LoRA run wrote one, else its newest checkpoint. The chat template the
// data rendered with goes into the file by name, which llama.cpp's chat
// handling recognises.
func (exportExt) Finish(_ context.Context, e *Env, cfg any, s *Summary) error {
	spec := cfg.(*ExportSpec)
	typ, err := convert.ParseGGUFType(spec.GGUF)
	if err != nil {
		return err
	}
	c, err := LoadCheckpoint(e.Dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	m, _, err := LoadModel(e.Backend, c)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	v, err := tokenizer.LoadVocab(filepath.Join(e.Dir, TokenizerFile))
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	file := spec.File
	if file == "" {
		file = fmt.Sprintf("model-%s.gguf", spec.GGUF)
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(e.Dir, file)
	}
	name := spec.Name
	if name == "" {
		name = e.Recipe.Name
	}
	opt := convert.GGUFOptions{Type: typ, Name: name, ChatTemplate: e.Recipe.Data.ChatTemplate}
	if err := convert.ExportGGUFFile(file, m, v, opt); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	s.Extra["gguf"] = fmt.Sprintf("%s (%s, %.1f MiB)", file, spec.GGUF, float64(st.Size())/(1<<20))
	return nil
}
