package recipes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// Files a run directory holds besides checkpoints.
const (
	RecipeFile    = "recipe.yaml"
	TokenizerFile = "tokenizer.gguf"
	ConfigFile    = "config.json"
	MetricsFile   = "metrics.jsonl"
	ShardDir      = "shards"
)

// Summary is how a Run ended.
type Summary struct {
	// RunDir is the run directory.
	RunDir string
	// Method is the method that ran.
	Method string
	// StartStep is the step the run resumed at (0 for a fresh run).
	StartStep int
	// Steps is the step the run ended at.
	Steps int
	// Loss is the last training loss; EvalLoss the last evaluation's (0
	// when none ran).
	Loss, EvalLoss float64
	// Tokens counts the targets trained on in this call.
	Tokens int64
	// Elapsed is the wall time of the training loop.
	Elapsed time.Duration
	// Checkpoint is the last checkpoint saved.
	Checkpoint string
	// ArithAccuracy is the share of held-out arithmetic problems answered
	// right (see SampleSpec), nil when none were scored.
	ArithAccuracy *float64
	// Extra holds further results by label, such as the file an export
	// extension wrote; summaries list them.
	Extra map[string]string
}

// Run carries out r on be with its method (see Method): it creates the
// run directory (r.Out, else a new runs/<name>-<timestamp>, which it
// stores in r.Out and links as runs/<name>-latest), saves the resolved
// recipe, hands the method an Env, runs the recipe's Finisher extensions
// when the method succeeded, and writes summary.md. progress, when not
// nil, sees every update the method logs. Cancelling ctx saves a
// checkpoint and returns the context's error with the summary so far. It
// returns an error for an unknown method, when the run directory cannot
// be written, or the method's or an extension's error.
func Run(ctx context.Context, be tensor.Backend, r *Recipe, progress func(Progress)) (Summary, error) {
	meth, err := Lookup(r.Method)
	if err != nil {
		return Summary{}, err
	}
	fresh := r.Out == ""
	if fresh {
		// Two runs started within a second must not share a directory,
		// since the second would resume the first.
		base := NewRunDir("runs", r.Name, time.Now())
		r.Out = base
		for i := 2; fileExists(r.Out); i++ {
			r.Out = fmt.Sprintf("%s-%d", base, i)
		}
	}
	dir := r.Out
	sum := &Summary{RunDir: dir, Method: meth.Name()}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return *sum, err
	}
	if fresh {
		linkLatest(dir, r.Name)
	}
	rb, err := r.Marshal()
	if err != nil {
		return *sum, err
	}
	if err := writeFile(dir, RecipeFile, rb); err != nil {
		return *sum, err
	}
	mf, err := os.OpenFile(filepath.Join(dir, MetricsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return *sum, err
	}
	defer mf.Close()
	e := &Env{Backend: be, Recipe: r, Dir: dir, RecipeYAML: rb, sum: sum,
		metrics: &metricTap{w: mf, progress: progress, sum: sum}}
	s, err := meth.Run(ctx, e)
	s.RunDir, s.Method = dir, meth.Name()
	if err == nil {
		err = e.finish(ctx, &s)
	}
	if werr := writeSummary(r, s, err); werr != nil && err == nil {
		err = werr
	}
	return s, err
}

// writeFile writes b to dir/name.
func writeFile(dir, name string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// Progress is one training update as Run reports it: the train.Metric
// fields, every numeric field of the metrics line by name (a method's
// own, such as reward, included), and the line itself.
type Progress struct {
	train.Metric
	// Values holds the line's numbers; nested objects are flattened as
	// rewards.correct.
	Values MetricRow
	// Line is the JSON object as metrics.jsonl holds it, without the
	// newline.
	Line []byte
}

// metricTap writes each metric line to w and hands updates to progress,
// which is how Run follows a method without a callback of its own.
type metricTap struct {
	w        io.Writer
	progress func(Progress)
	sum      *Summary
}

func (t *metricTap) Write(p []byte) (int, error) {
	row, err := parseMetricLine(p)
	// A loss tells training updates from other lines, such as the
	// accuracy Sample logs, which progress does not show.
	if _, isUpdate := row["loss"]; err == nil && isUpdate {
		var m train.Metric
		json.Unmarshal(p, &m) // row parsed, so this cannot fail on syntax; mistyped fields stay zero
		t.sum.Tokens = m.Tokens
		if m.EvalLoss != nil {
			t.sum.EvalLoss = *m.EvalLoss
		}
		if t.progress != nil {
			t.progress(Progress{Metric: m, Values: row, Line: bytes.TrimRight(p, "\n")})
		}
	}
	return t.w.Write(p)
}

// tokenizer returns the run's tokenizer and writes it to the run directory.
// A vocabulary already trained there is reused so that a resumed run
// keeps its token ids.
func (r *Recipe) tokenizer(e *Env) (tokenizer.Tokenizer, error) {
	path := filepath.Join(e.Dir, TokenizerFile)
	var v *tokenizer.Vocab
	var err error
	switch {
	case r.Tokenizer.Train != nil && fileExists(path):
		// Reuse the vocabulary trained by an earlier run, so ids stay put;
		// the file is already in place.
		if v, err = tokenizer.LoadVocab(path); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		return tokenizer.New(v)
	case r.Tokenizer.Train != nil:
		texts, terr := e.TextFiles()
		if terr != nil {
			return nil, terr
		}
		tt := r.Tokenizer.Train
		v, err = tokenizer.TrainFiles(tokenizer.TrainConfig{VocabSize: tt.VocabSize, Special: tt.Special,
			Pre: tt.Pre, MinFrequency: tt.MinFrequency}, texts...)
	default:
		v, err = tokenizer.LoadVocab(r.TokenizerPath())
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if err := gguf.WriteFile(path, v.GGUFMetadata(), nil); err != nil {
		return nil, err
	}
	return tokenizer.New(v)
}

// TokenizerPath is the tokenizer file the run loads: tokenizer.path, else
// with model.checkpoint the tokenizer.gguf of that run (the tokenizer
// files of a Hugging Face folder, the vocabulary of a GGUF file), else ""
// (the tokenizer is trained).
func (r *Recipe) TokenizerPath() string {
	switch {
	case r.Tokenizer.Path != "":
		return r.Tokenizer.Path
	case r.Tokenizer.Train != nil || r.Model.Checkpoint == "":
		return ""
	}
	return CheckpointTokenizer(r.Model.Checkpoint)
}

// CheckpointTokenizer returns the tokenizer file that goes with a model
// path as LoadCheckpoint reads it: the tokenizer.gguf of a run directory
// or beside a checkpoint file, the tokenizer files of a Hugging Face
// folder (tokenizer.LoadVocab reads the folder), or a GGUF file itself.
func CheckpointTokenizer(path string) string {
	if isGGUF(path) {
		return path // the vocabulary is in the file
	}
	dir := path
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	if p := filepath.Join(dir, TokenizerFile); fileExists(p) || !isHFDir(dir) {
		return p
	}
	return dir // tokenizer.json, tokenizer.model or vocab.json with merges.txt
}

// modelConfig resolves the model's config, and for model.checkpoint the
// checkpoint whose weights the model starts from. vocab is the
// tokenizer's size, which an inline config may leave out.
func (r *Recipe) modelConfig(vocab int) (model.Config, *checkpoint.Checkpoint, error) {
	m := r.Model
	var cfg model.Config
	var init *checkpoint.Checkpoint
	var err error
	switch {
	case m.Config != "":
		cfg, err = model.LoadConfig(m.Config)
	case m.Checkpoint != "":
		init, err = LoadCheckpoint(m.Checkpoint)
		if err == nil {
			cfg, err = model.ParseConfig(init.Config)
		}
	default:
		cfg = m.Resolved
		if cfg.VocabSize == 0 {
			cfg.VocabSize = vocab
		}
	}
	if err != nil {
		return cfg, nil, fmt.Errorf("model: %w", err)
	}
	if cfg.VocabSize < vocab {
		return cfg, nil, fmt.Errorf("model: vocab_size %d is smaller than the tokenizer's %d tokens", cfg.VocabSize, vocab)
	}
	return cfg, init, nil
}

// LoadCheckpoint loads a checkpoint file, or for a run directory its
// ModelFile when it has one, else its newest usable checkpoint. A Hugging
// Face checkpoint folder (config.json and safetensors) or a GGUF file is
// imported (package convert) into a checkpoint held in memory. It returns
// an error when there is none or it cannot be read.
func LoadCheckpoint(path string) (*checkpoint.Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if p, ok := modelFileIn(path); ok {
		return checkpoint.Load(p)
	}
	if c, ok, err := importCheckpoint(path); ok {
		return c, err
	}
	if st.IsDir() {
		d, err := checkpoint.OpenDir(path, 0)
		if err != nil {
			return nil, err
		}
		p, _, ok, err := d.Latest()
		if !ok {
			if err == nil {
				err = fmt.Errorf("%s holds no checkpoint", path)
			}
			return nil, err
		}
		path = p
	}
	return checkpoint.Load(path)
}

// LoadModel rebuilds the model a checkpoint stores (its config) on be and
// loads its weights. It returns an error when the config or a weight does
// not fit.
func LoadModel(be tensor.Backend, c *checkpoint.Checkpoint) (model.Model, model.Config, error) {
	cfg, err := model.ParseConfig(c.Config)
	if err != nil {
		return nil, cfg, fmt.Errorf("checkpoint config: %w", err)
	}
	m, err := model.New(cfg, be, tensor.Float32, 0)
	if err != nil {
		return nil, cfg, err
	}
	return m, cfg, copyWeights(be, c, m)
}

// copyWeights copies the checkpoint's weights into m's parameters by name.
func copyWeights(be tensor.Backend, c *checkpoint.Checkpoint, m model.Model) error {
	for _, p := range m.Params() {
		nt, ok := checkpoint.Find(c.Tensors, p.Name)
		if !ok {
			if _, adapter := checkpoint.Find(c.Tensors, p.Name+".lora_a"); adapter {
				return fmt.Errorf("the checkpoint holds only LoRA adapters, not weight %s: a LoRA run writes the whole model as %s when it finishes", p.Name, ModelFile)
			}
			return fmt.Errorf("weight %s is missing from the checkpoint", p.Name)
		}
		t, err := nt.Tensor(be)
		if err != nil {
			return fmt.Errorf("weight %s: %w", p.Name, err)
		}
		err = tensor.Catch(func() { p.Tensor.CopyFrom(t) })
		t.Release()
		if err != nil {
			return fmt.Errorf("weight %s: %w", p.Name, err)
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
