package recipes

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/internal/atomicfile"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// ExportSpec is the export: section: after the method finishes, the run's
// model (merged with its LoRA adapters, if any) is written as a GGUF file
// that llama.cpp and ollama load.
type ExportSpec struct {
	// GGUF is the tensor type: f32, f16 (the default), bf16, q8_0, q6_k,
	// q5_0, q4_k or q4_0.
	GGUF string `yaml:"gguf"`
	// File is the output path; empty means model-<type>.gguf in the run
	// directory, and a relative path is taken in the run directory.
	File string `yaml:"file,omitempty"`
	// Name is general.name in the file; empty means the recipe's name.
	Name string `yaml:"name,omitempty"`
	// Adapter, in a recipe with lora:, also writes the adapters alone as a
	// llama.cpp LoRA file, adapter.gguf (F32, or F16 and BF16 when GGUF
	// names one of them), to load beside the base model's GGUF file.
	Adapter bool `yaml:"adapter,omitempty"`
}

// AdapterGGUFFile is the llama.cpp adapter file export.adapter writes.
const AdapterGGUFFile = "adapter.gguf"

type exportExt struct{}

func init() { RegisterExtension(exportExt{}) }

func (exportExt) Section() string { return "export" }

func (exportExt) NewConfig() any { return &ExportSpec{GGUF: "f16"} }

func (exportExt) Validate(r *Recipe, cfg any) error {
	spec := cfg.(*ExportSpec)
	if _, err := convert.ParseGGUFType(spec.GGUF); err != nil {
		return rangeErr("export.gguf", spec.GGUF, convert.GGUFTypeNames)
	}
	if _, lora := r.Extensions["lora"]; spec.Adapter && !lora {
		return rangeErr("export.adapter", true, "false unless the recipe trains LoRA adapters (a lora: section)")
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
	m, v, err := LoadWithVocab(e.Backend, e.Dir)
	if err == nil {
		err = convert.ExportGGUFFile(file, m, v, opt)
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	if s.Extra["gguf"], err = describeFile(file, spec.GGUF); err != nil {
		return err
	}
	if !spec.Adapter {
		return nil
	}
	st, ok := e.ext["lora"].(*loraState)
	if !ok {
		return fmt.Errorf("export.adapter: the run trained no LoRA adapters")
	}
	file = filepath.Join(e.Dir, AdapterGGUFFile)
	if err := exportAdapter(file, st, typ, name); err != nil {
		return fmt.Errorf("export.adapter: %w", err)
	}
	s.Extra["gguf adapter"], err = describeFile(file, "lora")
	return err
}

// LoadWithVocab loads the model at src (a run directory, a checkpoint
// file, or whatever else LoadCheckpoint reads) on be, with the vocabulary
// of its tokenizer (CheckpointTokenizer), as GGUF export needs them. It
// returns an error when either cannot be loaded.
func LoadWithVocab(be tensor.Backend, src string) (model.Model, *tokenizer.Vocab, error) {
	c, err := LoadCheckpoint(src)
	if err != nil {
		return nil, nil, err
	}
	v, err := tokenizer.LoadVocab(CheckpointTokenizer(src))
	if err != nil {
		return nil, nil, fmt.Errorf("the model's tokenizer: %w", err)
	}
	m, _, err := LoadModel(be, c)
	return m, v, err
}

// exportAdapter writes the adapters of st as a llama.cpp LoRA file, in
// typ when it is a float type and F32 otherwise.
func exportAdapter(path string, st *loraState, typ gguf.GGMLType, name string) error {
	arch, err := convert.GGUFArch(st.m.Config().ModelType)
	if err != nil {
		return err
	}
	alpha, ts, err := st.ad.Export()
	if err != nil {
		return err
	}
	if typ != gguf.F16 && typ != gguf.BF16 {
		typ = gguf.F32
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return convert.ExportLoRAGGUF(w, arch, float32(alpha), ts, convert.LoRAOptions{Name: name + "-lora", Type: typ})
	})
}

// describeFile returns "path (what, size)" for a summary.
func describeFile(path, what string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (%s, %.1f MiB)", path, what, float64(st.Size())/(1<<20)), nil
}
