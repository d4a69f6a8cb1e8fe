package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/minnowml/minnow/tensor"
)

// The file names transformers gives a checkpoint's weights.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// Model is a checkpoint folder's weights, in one file or in shards listed
// by an index, read as if they were one file.
type Model struct {
	dir    string
	files  []*File
	owner  map[string]*File // tensor name -> the file holding it
	names  []string
	closed bool
}

// OpenModel opens the weights of the checkpoint folder dir:
// model.safetensors.index.json and the shards its weight_map names when
// the index exists, else model.safetensors. It returns an error naming the
// file at fault when neither exists, the index is not valid JSON or names
// a shard outside dir, a shard cannot be opened (see Open), a tensor the
// index lists is not in its shard, or two shards hold the same tensor.
func OpenModel(dir string) (*Model, error) {
	m := &Model{dir: dir, owner: map[string]*File{}}
	idxPath := filepath.Join(dir, IndexFile)
	raw, err := os.ReadFile(idxPath)
	switch {
	case err == nil:
		if err := m.openShards(idxPath, raw); err != nil {
			m.Close()
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
		f, err := Open(filepath.Join(dir, SingleFile))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("safetensors: %s has neither %s nor %s", dir, SingleFile, IndexFile)
			}
			return nil, err
		}
		m.files = []*File{f}
		for _, name := range f.names {
			m.owner[name] = f
		}
	default:
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	m.names = make([]string, 0, len(m.owner))
	for name := range m.owner {
		m.names = append(m.names, name)
	}
	sort.Strings(m.names)
	return m, nil
}

// openShards opens the shards an index lists.
func (m *Model) openShards(idxPath string, raw []byte) error {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return fmt.Errorf("safetensors: %s: %w", idxPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return fmt.Errorf("safetensors: %s: weight_map is missing or empty", idxPath)
	}
	shards := map[string]*File{}
	var order []string
	for _, s := range idx.WeightMap {
		if _, seen := shards[s]; !seen {
			shards[s] = nil
			order = append(order, s)
		}
	}
	sort.Strings(order) // opened in a fixed order, so errors are repeatable
	for _, shard := range order {
		// A shard is a file beside the index, never a path elsewhere.
		if shard == "" || filepath.Base(shard) != shard || shard == "." || shard == ".." {
			return fmt.Errorf("safetensors: %s: shard name %q is not a file name", idxPath, shard)
		}
		f, err := Open(filepath.Join(m.dir, shard))
		if err != nil {
			return err
		}
		shards[shard] = f
		m.files = append(m.files, f)
		for _, name := range f.names {
			if prev, dup := m.owner[name]; dup {
				return fmt.Errorf("safetensors: tensor %q is in both %s and %s", name, prev.path, f.path)
			}
			m.owner[name] = f
		}
	}
	for name, shard := range idx.WeightMap {
		if _, ok := shards[shard].infos[name]; !ok {
			return fmt.Errorf("safetensors: %s: tensor %q is not in %s, where the index puts it", idxPath, name, shard)
		}
	}
	return nil
}

// Close unmaps every file and returns the first error.
func (m *Model) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, f := range m.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Dir returns the folder the model was opened from.
func (m *Model) Dir() string { return m.dir }

// Names returns every tensor name across the files, sorted.
func (m *Model) Names() []string { return slices.Clone(m.names) }

// Info returns the header record of the tensor called name and whether
// the model has one; its offsets are within the file holding it.
func (m *Model) Info(name string) (TensorInfo, bool) {
	f, ok := m.owner[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Tensor returns the tensor called name converted to dt on be, as
// File.Tensor does. It returns an error naming the tensor when no file
// holds it, and File.Tensor's errors.
func (m *Model) Tensor(be tensor.Backend, dt tensor.DType, name string) (*tensor.Tensor, error) {
	f, ok := m.owner[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", m.dir, name)
	}
	return f.Tensor(be, dt, name)
}
