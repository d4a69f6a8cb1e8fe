package recipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// Method is a training method a recipe names with method: (pretrain, sft,
// and later grpo, tldr, dpo, distill). The core of a run (parsing,
// validation, the run directory, recipe.yaml, metrics.jsonl, summary.md)
// is shared; a Method adds its own config section and its training.
// Settings that several methods share, such as LoRA adapters or an
// export, are an Extension instead.
type Method interface {
	// Name is the value of the recipe's method: key.
	Name() string
	// Description is one line for listings.
	Description() string
	// Section is the top-level recipe key holding the method's own
	// settings (such as "grpo" or "dpo"), or "" for a method that has
	// none. It must not collide with a core key, another method's or an
	// extension's.
	Section() string
	// NewConfig returns a pointer to the section's settings with their
	// defaults filled in; the recipe's section is decoded over it, with
	// unknown keys rejected by the struct's yaml tags. It is called only
	// when Section is not "".
	NewConfig() any
	// Validate checks the recipe for this method: the data sources it
	// needs and its section (r.MethodConfig, the NewConfig pointer). It
	// returns an error naming the key path, the value and what is
	// allowed. Files and the core sections are checked before it runs.
	Validate(r *Recipe) error
	// Run trains, reading the recipe and writing into e.Dir, and returns
	// how the run ended. Cancelling ctx should save a checkpoint and
	// return the context's error with the summary so far.
	Run(ctx context.Context, e *Env) (Summary, error)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Method{}
)

// Register adds m to the methods recipes can name. Call it from an init
// function. It panics, as a programming error, when m's name is empty or
// taken, or its section collides with a core recipe key or another
// method's section.
func Register(m Method) {
	registryMu.Lock()
	defer registryMu.Unlock()
	name := m.Name()
	if name == "" {
		panic("recipes: Register: a method needs a name")
	}
	if _, dup := registry[name]; dup {
		panic("recipes: Register: method " + name + " is registered twice")
	}
	if s := m.Section(); s != "" {
		checkSectionFree("method "+name, s)
		if m.NewConfig() == nil {
			panic("recipes: Register: method " + name + " has a section but NewConfig returns nil")
		}
	}
	registry[name] = m
}

// checkSectionFree panics when section s, wanted by who, is a core
// recipe key or a registered method's or extension's section. The
// caller holds registryMu.
func checkSectionFree(who, s string) {
	for i := range recipeType.NumField() {
		if tag, _, _ := strings.Cut(recipeType.Field(i).Tag.Get("yaml"), ","); tag == s {
			panic("recipes: " + who + ": section " + s + " is a core recipe key")
		}
	}
	for _, o := range registry {
		if o.Section() == s {
			panic("recipes: " + who + ": section " + s + " is method " + o.Name() + "'s")
		}
	}
	if _, taken := extensions[s]; taken {
		panic("recipes: " + who + ": section " + s + " is an extension's")
	}
}

// Lookup returns the method registered as name ("" means pretrain). It
// returns an error listing the registered methods when there is none.
func Lookup(name string) (Method, error) {
	if name == "" {
		name = MethodPretrain
	}
	registryMu.RLock()
	m, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, rangeErr("method", fmt.Sprintf("%q", name), methodList())
	}
	return m, nil
}

// Methods returns the registered methods sorted by name.
func Methods() []Method {
	registryMu.RLock()
	defer registryMu.RUnlock()
	ms := make([]Method, 0, len(registry))
	for _, m := range registry {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name() < ms[j].Name() })
	return ms
}

func methodList() string {
	var s string
	for i, m := range Methods() {
		if i > 0 {
			s += ", "
		}
		s += m.Name()
	}
	return s
}

// Env is what a Method's Run works with: the recipe, the run directory,
// the backend, and helpers for the steps most methods share.
type Env struct {
	// Backend runs the tensors.
	Backend tensor.Backend
	// Recipe is the validated recipe; Recipe.MethodConfig holds the
	// method's section.
	Recipe *Recipe
	// Dir is the run directory, already created.
	Dir string
	// RecipeYAML is the resolved recipe as saved to recipe.yaml;
	// checkpoints record it.
	RecipeYAML []byte

	metrics   io.Writer
	sum       *Summary
	tok       tokenizer.Tokenizer
	trainable []model.NamedParam // chosen by a ModelPreparer extension
	ext       map[string]any     // state an extension keeps from preparing to finishing, by section
}

// Metrics returns the writer of metrics.jsonl. Each write must be one
// JSON object per line; objects with train.Metric's fields also reach the
// run's progress callback, and any other numeric field (such as reward)
// is kept for `minnow runs ls` and `minnow plot`.
func (e *Env) Metrics() io.Writer { return e.metrics }

// Tokenizer returns the run's tokenizer (see TokenizerSpec) and writes it
// to the run directory as tokenizer.gguf; a vocabulary trained by an
// earlier run in the directory is reused so ids stay put. It returns an
// error when the tokenizer cannot be loaded, trained or written.
func (e *Env) Tokenizer() (tokenizer.Tokenizer, error) {
	if e.tok != nil {
		return e.tok, nil
	}
	tok, err := e.Recipe.tokenizer(e)
	if err == nil {
		e.tok = tok
	}
	return tok, err
}

// Model builds the recipe's model for a tokenizer of vocab tokens, with
// the recipe's seed, on e.Backend, loads model.checkpoint's weights when
// one is named, hands it to the recipe's ModelPreparer extensions (LoRA)
// and ModelWrapper extensions (a soft prompt), and writes config.json.
// It returns the model, its config and the config's JSON, or an error
// when the config is invalid, a weight does not fit or an extension
// fails.
func (e *Env) Model(vocab int) (model.Model, model.Config, []byte, error) {
	r := e.Recipe
	cfg, init, err := r.modelConfig(vocab)
	if err != nil {
		return nil, cfg, nil, err
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, cfg, nil, err
	}
	if err := writeFile(e.Dir, ConfigFile, js); err != nil {
		return nil, cfg, nil, err
	}
	m, err := model.New(cfg, e.Backend, tensor.Float32, r.Seed)
	if err != nil {
		return nil, cfg, nil, fmt.Errorf("model: %w", err)
	}
	if init != nil {
		if err := copyWeights(e.Backend, init, m); err != nil {
			return nil, cfg, nil, fmt.Errorf("model.checkpoint: %w", err)
		}
	}
	if m, err = e.prepareModel(m); err != nil {
		return nil, cfg, nil, err
	}
	return m, cfg, js, nil
}

// TrainJob is one train.Loop run for Env.Train.
type TrainJob struct {
	// Model is trained with Objective on Batches; Eval, when not nil, is
	// the held-out source train.eval_every uses. A model that is not a
	// model.Model (a wrapper, say) needs Trainable, and is sampled only
	// when it is one.
	Model     train.Model
	Objective train.Objective
	Batches   train.Batches
	Eval      train.Batches
	// Config is the model's config.json, stored in checkpoints.
	Config []byte
	// Arch is the model type stored in checkpoints.
	Arch string
	// Trainable are the parameters the optimizer updates and checkpoints
	// hold; nil means those a ModelPreparer extension chose (LoRA
	// adapters), else all of Model's Params().
	Trainable []model.NamedParam
}

// Train runs j with the recipe's train: section (optimizer, schedule,
// evaluation, checkpoints), resuming from the run directory's newest
// checkpoint when there is one, and logs every update to metrics.jsonl.
// After a finished loop it samples (see Sample) with the tokenizer
// e.Tokenizer returned. It returns the summary and train.Loop's error, or
// an error when the optimizer, schedule, resumption or sampling fails.
func (e *Env) Train(ctx context.Context, j TrainJob) (Summary, error) {
	sum := e.sum
	params := j.Trainable
	if params == nil {
		params = e.trainable
	}
	mm, isModel := j.Model.(model.Model)
	if params == nil {
		if !isModel {
			return *sum, fmt.Errorf("recipes: train: a %T is not a model.Model, so TrainJob.Trainable must name its parameters", j.Model)
		}
		params = mm.Params()
	}
	weights := make([]train.Weight, len(params))
	for i, p := range params {
		weights[i] = train.Weight{Name: p.Name, Tensor: p.Tensor}
	}
	t := e.Recipe.Train
	decay, keep := model.DecaySplit(params)
	opt, err := train.NewAdamW(t.Optimizer, train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		return *sum, fmt.Errorf("train.optimizer: %w", err)
	}
	start, err := train.Resume(e.Dir, weights, opt, j.Batches)
	var skipped *checkpoint.SkippedError
	if err != nil && !(errors.As(err, &skipped) && start > 0) {
		return *sum, err
	}
	sum.StartStep = start
	if start > 0 {
		// The last evaluation may predate this call (all of it, when the
		// run had finished), and the summary should still show it.
		rows, _ := ReadMetrics(e.Dir)
		for _, row := range rows {
			if v, ok := row["eval_loss"]; ok && row["step"] <= float64(start) {
				sum.EvalLoss = v
			}
		}
	}
	sched, err := t.Schedule.Build(t.Steps)
	if err != nil {
		return *sum, fmt.Errorf("train.schedule: %w", err)
	}
	lc := train.LoopConfig{Steps: t.Steps, GradAccum: t.GradAccum, ClipNorm: t.ClipNorm, Schedule: sched,
		EvalEvery: t.EvalEvery, Eval: j.Eval, EvalBatches: t.EvalBatches, CheckpointEvery: t.CheckpointEvery,
		CheckpointDir: e.Dir, Keep: t.Keep, Metrics: e.metrics,
		Weights: weights, Arch: j.Arch, ModelConfig: j.Config,
		Tokenizer: TokenizerFile, Recipe: e.RecipeYAML}
	began := time.Now()
	res, err := train.Loop(ctx, j.Model, opt, j.Objective, j.Batches, lc)
	sum.Elapsed = time.Since(began)
	sum.Steps, sum.Loss, sum.Checkpoint = res.Step, res.Loss, res.Checkpoint
	if res.EvalLoss != 0 {
		sum.EvalLoss = res.EvalLoss
	}
	if err != nil {
		return *sum, err
	}
	if e.tok != nil && isModel {
		err = e.Sample(mm, e.tok, res.Step)
	}
	return *sum, err
}
