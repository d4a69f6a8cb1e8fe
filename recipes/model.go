package recipes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/model"
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
	cfg := m.Config()
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
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
		return fmt.Errorf("save model %s: %w", path, err)
	}
	return checkpoint.Save(path, &checkpoint.Checkpoint{Arch: cfg.ModelType, Config: cj, Tensors: weights,
		Tokenizer: tokenizerFile, Metadata: metadata})
}

// modelFileIn returns dir's ModelFile when dir is a directory holding one.
func modelFileIn(dir string) (string, bool) {
	p := filepath.Join(dir, ModelFile)
	st, err := os.Stat(p)
	return p, err == nil && st.Mode().IsRegular()
}
