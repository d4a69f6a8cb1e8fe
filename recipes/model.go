package recipes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/convert"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/safetensors"
	"github.com/minnowml/minnow/tensor"
)

// ModelFile is the checkpoint of a whole model that a run writes when its
// step checkpoints hold only part of it (a LoRA run's adapters): the base
// with the adapters merged. LoadCheckpoint prefers it, so generate,
// export and a later recipe's model.checkpoint read the finished model.
const ModelFile = "model.ckpt"

// SaveModel writes every parameter of m, its config and the name of the
// tokenizer file beside it (empty for none) to path as a checkpoint that
// LoadCheckpoint and LoadModel read back, with metadata as its notes. It
// returns an error when a tensor cannot be read or the file cannot be
// written; the write is atomic.
func SaveModel(path string, m model.Model, tokenizerFile string, metadata map[string]string) error {
	c, err := modelCheckpoint(m)
	if err != nil {
		return fmt.Errorf("save model %s: %w", path, err)
	}
	c.Tokenizer, c.Metadata = tokenizerFile, metadata
	return checkpoint.Save(path, c)
}

// modelCheckpoint copies m's config and parameters into a checkpoint.
func modelCheckpoint(m model.Model) (*checkpoint.Checkpoint, error) {
	cfg := m.Config()
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	ps := m.Params()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	var weights []checkpoint.NamedTensor
	if cerr := tensor.Catch(func() { weights, err = checkpoint.FromTensors("", names, model.Tensors(ps)) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return &checkpoint.Checkpoint{Arch: cfg.ModelType, Config: cj, Tensors: weights}, nil
}

// modelFileIn returns dir's ModelFile when dir is a directory holding one.
func modelFileIn(dir string) (string, bool) {
	p := filepath.Join(dir, ModelFile)
	st, err := os.Stat(p)
	return p, err == nil && st.Mode().IsRegular()
}

// isHFDir reports whether dir is a Hugging Face checkpoint folder: a
// config.json with model.safetensors or its sharded index.
func isHFDir(dir string) bool {
	if !fileExists(filepath.Join(dir, convert.HFConfigFile)) {
		return false
	}
	return fileExists(filepath.Join(dir, safetensors.SingleFile)) || fileExists(filepath.Join(dir, safetensors.IndexFile))
}

func isGGUF(path string) bool { return strings.EqualFold(filepath.Ext(path), ".gguf") }

// importCheckpoint reads a Hugging Face folder or a GGUF file as a
// checkpoint held in memory, so that model.checkpoint takes either as it
// takes a run. ok is false when path is neither.
func importCheckpoint(path string) (c *checkpoint.Checkpoint, ok bool, err error) {
	var m model.Model
	switch {
	case isGGUF(path):
		m, _, err = convert.ImportGGUF(path, tensor.Default())
	case isHFDir(path):
		m, _, err = convert.ImportHF(path, tensor.Default(), tensor.Float32)
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	defer func() {
		for _, p := range m.Params() {
			p.Tensor.Release()
		}
	}()
	c, err = modelCheckpoint(m)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	c.Metadata = map[string]string{"imported_from": path}
	return c, true, nil
}
