package recipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/data"
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
}

// Run carries out r on be: see the package documentation for what it
// writes. progress, when not nil, sees every update's metric. Cancelling
// ctx saves a checkpoint and returns the context's error with the summary
// so far. It returns an error when the tokenizer, data, model or
// checkpoint cannot be built or loaded, or training fails.
func Run(ctx context.Context, be tensor.Backend, r *Recipe, progress func(train.Metric)) (Summary, error) {
	dir := r.RunDir()
	sum := Summary{RunDir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sum, err
	}
	tok, err := r.tokenizer(dir)
	if err != nil {
		return sum, err
	}
	cfg, init, err := r.modelConfig(len(tok.Vocab().Tokens))
	if err != nil {
		return sum, err
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return sum, err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), cfgJSON, 0o644); err != nil {
		return sum, err
	}
	rb, err := r.Marshal()
	if err != nil {
		return sum, err
	}
	if err := os.WriteFile(filepath.Join(dir, RecipeFile), rb, 0o644); err != nil {
		return sum, err
	}

	var batches, eval train.Batches
	var obj train.Objective = train.NextToken{}
	if r.Method == MethodSFT {
		if batches, eval, err = r.sftBatches(be, tok); err != nil {
			return sum, err
		}
		obj = SFT{}
	} else {
		shards, err := r.shards(dir, tok)
		if err != nil {
			return sum, err
		}
		defer shards.Close()
		if batches, eval, err = r.streams(be, shards); err != nil {
			return sum, err
		}
	}

	m, err := model.New(cfg, be, tensor.Float32, r.Seed)
	if err != nil {
		return sum, fmt.Errorf("model: %w", err)
	}
	weights, opt, err := optimizer(m, r.Train.Optimizer)
	if err != nil {
		return sum, err
	}
	if init != nil {
		if err := copyWeights(be, init, m); err != nil {
			return sum, fmt.Errorf("model.checkpoint: %w", err)
		}
	}
	start, err := train.Resume(dir, weights, opt, batches)
	var skipped *checkpoint.SkippedError
	if err != nil && !(errors.As(err, &skipped) && start > 0) {
		return sum, err
	}
	sum.StartStep = start
	sched, err := r.Train.Schedule.Build(r.Train.Steps)
	if err != nil {
		return sum, fmt.Errorf("train.schedule: %w", err)
	}
	mf, err := os.OpenFile(filepath.Join(dir, MetricsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return sum, err
	}
	defer mf.Close()
	t := r.Train
	lc := train.LoopConfig{Steps: t.Steps, GradAccum: t.GradAccum, ClipNorm: t.ClipNorm, Schedule: sched,
		EvalEvery: t.EvalEvery, Eval: eval, EvalBatches: t.EvalBatches, CheckpointEvery: t.CheckpointEvery,
		CheckpointDir: dir, Keep: t.Keep, Metrics: &metricTap{w: mf, progress: progress, sum: &sum},
		Weights: weights, Arch: cfg.ModelType, ModelConfig: cfgJSON,
		Tokenizer: TokenizerFile, Recipe: rb}
	began := time.Now()
	res, err := train.Loop(ctx, m, opt, obj, batches, lc)
	sum.Elapsed = time.Since(began)
	sum.Steps, sum.Loss, sum.Checkpoint = res.Step, res.Loss, res.Checkpoint
	if res.EvalLoss != 0 {
		sum.EvalLoss = res.EvalLoss
	}
	return sum, err
}

// metricTap writes each metric line to w and hands it to progress, which
// is how Run follows the loop without a callback in train.LoopConfig.
type metricTap struct {
	w        io.Writer
	progress func(train.Metric)
	sum      *Summary
}

func (t *metricTap) Write(p []byte) (int, error) {
	var m train.Metric
	if err := json.Unmarshal(p, &m); err == nil {
		t.sum.Tokens = m.Tokens
		if m.EvalLoss != nil {
			t.sum.EvalLoss = *m.EvalLoss
		}
		if t.progress != nil {
			t.progress(m)
		}
	}
	return t.w.Write(p)
}

// tokenizer returns the run's tokenizer and writes it to the run directory.
// A vocabulary already trained there is reused so that a resumed run
// keeps its token ids.
func (r *Recipe) tokenizer(dir string) (tokenizer.Tokenizer, error) {
	path := filepath.Join(dir, TokenizerFile)
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
		tt := r.Tokenizer.Train
		v, err = tokenizer.TrainFiles(tokenizer.TrainConfig{VocabSize: tt.VocabSize, Special: tt.Special,
			Pre: tt.Pre, MinFrequency: tt.MinFrequency}, r.Data.Text...)
	default:
		v, err = tokenizer.LoadVocab(r.Tokenizer.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if err := gguf.WriteFile(path, v.GGUFMetadata(), nil); err != nil {
		return nil, err
	}
	return tokenizer.New(v)
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

// LoadCheckpoint loads a checkpoint file, or the newest usable checkpoint
// of a run directory. It returns an error when there is none or it cannot
// be read.
func LoadCheckpoint(path string) (*checkpoint.Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
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

// optimizer returns m's weights and AdamW with the usual groups: matrices
// decay, norms, biases and embeddings do not.
func optimizer(m model.Model, cfg train.AdamWConfig) ([]train.Weight, *train.AdamW, error) {
	var weights []train.Weight
	for _, p := range m.Params() {
		weights = append(weights, train.Weight{Name: p.Name, Tensor: p.Tensor})
	}
	decay, keep := model.DecaySplit(m.Params())
	opt, err := train.NewAdamW(cfg, train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	return weights, opt, err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// shards tokenizes the recipe's text into the run directory's shards (or
// reuses them) and opens them.
func (r *Recipe) shards(dir string, tok tokenizer.Tokenizer) (*data.Shards, error) {
	shardDir := filepath.Join(dir, ShardDir)
	if _, err := data.BuildShards(shardDir, r.Data.Text, tok, data.ShardOptions{}); err != nil {
		return nil, err
	}
	return data.OpenShards(shardDir)
}

// streams returns the training windows and, when the recipe evaluates, the
// held-out ones.
func (r *Recipe) streams(be tensor.Backend, shards *data.Shards) (batches, eval train.Batches, err error) {
	d := r.Data
	stream := func(part data.Part) (train.Batches, error) {
		st, err := shards.Stream(data.StreamOptions{Batch: d.Batch, Seq: d.Seq, ValFraction: d.ValFraction,
			Part: part, Shuffle: d.Shuffle && part == data.Train, Seed: r.Seed, OnePass: part == data.Validation})
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		return train.StreamBatches(st, be, d.Batch, d.Seq)
	}
	if batches, err = stream(data.Train); err != nil {
		return nil, nil, err
	}
	if r.Train.EvalEvery > 0 {
		if eval, err = stream(data.Validation); err != nil {
			return nil, nil, err
		}
	}
	return batches, eval, nil
}
