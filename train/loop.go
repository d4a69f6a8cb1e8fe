package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/tensor"
)

// Model is what Loop trains: model.Model satisfies it. Package train
// cannot name model.Model itself, because package model's own tests train
// through this package, which would make an import cycle.
type Model interface {
	// Loss returns the mean cross-entropy of the model's logits for ids
	// against targets, both i32 [B, T], skipping IgnoreIndex targets; it
	// panics with *tensor.Error on invalid input.
	Loss(ids, targets *tensor.Tensor) *tensor.Tensor
}

// Weight is a named parameter as checkpoints store it. A caller builds
// the list from model.Model.Params (Name and Tensor of each NamedParam).
type Weight struct {
	Name   string
	Tensor *tensor.Tensor
}

// Objective turns a batch into the scalar loss to minimise, so that one
// loop serves pretraining, fine-tuning and any later objective.
type Objective interface {
	// Loss returns the scalar loss of m on b, recorded for Backward. It
	// returns an error when the model or the batch is unusable, such as
	// an op panicking with *tensor.Error.
	Loss(m Model, b Batch) (*tensor.Tensor, error)
}

// NextToken is the next-token cross-entropy objective of pretraining and
// supervised fine-tuning: Model.Loss on the batch's ids and targets, with
// IgnoreIndex masking prompt or padding tokens.
type NextToken struct{}

// Loss returns m.Loss(b.IDs, b.Targets). It returns the *tensor.Error the
// model panicked with, such as for an id outside the vocabulary.
func (NextToken) Loss(m Model, b Batch) (*tensor.Tensor, error) {
	var loss *tensor.Tensor
	err := tensor.Catch(func() { loss = m.Loss(b.IDs, b.Targets) })
	return loss, err
}

// LoopConfig says how Loop trains. Zero values mean: one micro-batch per
// step, no clipping, a constant learning rate of the optimizer's LR, no
// evaluation, no checkpoints and no metrics.
type LoopConfig struct {
	// Steps is the optimizer update at which training ends; a resumed
	// optimizer continues from its StepCount up to Steps.
	Steps int
	// GradAccum is the number of micro-batches per update (0 means 1).
	GradAccum int
	// ClipNorm is the global gradient norm clipped to; 0 turns it off.
	ClipNorm float64
	// Schedule gives each update's learning rate; nil means the
	// optimizer's Config.LR throughout.
	Schedule Schedule
	// EvalEvery evaluates Eval after every EvalEvery-th update (0: never).
	EvalEvery int
	// Eval is the held-out source; every evaluation starts from where it
	// stood when Loop began, so that evaluations are comparable.
	Eval Batches
	// EvalBatches caps each evaluation; 0 means until Eval returns
	// io.EOF, so an endless source needs a cap.
	EvalBatches int
	// CheckpointEvery saves after every CheckpointEvery-th update (0:
	// only at the end and on cancellation) into CheckpointDir.
	CheckpointEvery int
	// CheckpointDir is the run directory; empty disables checkpoints.
	CheckpointDir string
	// Keep is how many checkpoints the directory keeps (0: all).
	Keep int
	// Metrics receives one JSON object per update; nil discards them.
	Metrics io.Writer
	// Weights names the model's parameters for checkpoints. Every
	// parameter of the optimizer must be among them, since its moments
	// are saved under the parameter's name.
	Weights []Weight
	// Arch and ModelConfig (config.json bytes) are stored in checkpoints
	// so that a checkpoint alone can rebuild the model.
	Arch        string
	ModelConfig []byte
	// Tokenizer and Recipe (the resolved recipe's bytes) are stored in
	// checkpoints too, so that a checkpoint records how it was made.
	Tokenizer string
	Recipe    []byte
}

// Result is where a Loop call ended.
type Result struct {
	// Step is the optimizer's update count at the end.
	Step int
	// Loss is the last update's training loss (mean over micro-batches).
	Loss float64
	// EvalLoss is the last evaluation's mean loss; 0 when none ran.
	EvalLoss float64
	// Checkpoint is the path of the last checkpoint saved, if any.
	Checkpoint string
}

// Metric is one line of LoopConfig.Metrics. Tokens counts the non-ignored
// targets trained on since Loop began; EvalLoss and EvalPerplexity appear
// only after an evaluation.
type Metric struct {
	Step           int      `json:"step"`
	Loss           float64  `json:"loss"`
	LR             float64  `json:"lr"`
	GradNorm       float64  `json:"grad_norm"`
	Tokens         int64    `json:"tokens"`
	TokensPerS     float64  `json:"tokens_per_s"`
	EvalLoss       *float64 `json:"eval_loss,omitempty"`
	EvalPerplexity *float64 `json:"eval_perplexity,omitempty"`
}

// OptimizerName is the name checkpoints give AdamW's state.
const OptimizerName = "adamw"

// loop is the state of one Loop call.
type loop struct {
	m      Model
	opt    *AdamW
	obj    Objective
	data   Batches
	cfg    LoopConfig
	dir    *checkpoint.Dir
	names  []string // weight names, in cfg.Weights order
	tens   []*tensor.Tensor
	onames []string // names of the optimizer's parameters, in its order
	evalAt []byte   // the eval source's starting cursor
	saved  int      // step of the last checkpoint, -1 for none
	tokens int64    // targets trained on since Loop began
	res    Result
}

// Loop trains m with opt on data until the optimizer has made cfg.Steps
// updates. Each update accumulates GradAccum micro-batches' gradients,
// clips them by global norm and applies lr = Schedule.LR(StepCount+1);
// micro-batches are averaged through AdamW's gradient scale, so the loss
// tensors keep their own values.
//
// A NaN or infinite loss or gradient norm stops the run before the update
// with an error naming the step; the last checkpoint saved stays the
// newest. When ctx is cancelled, Loop finishes the update under way,
// saves a checkpoint at that step boundary (Resume continues it exactly)
// and returns ctx's error wrapped. It also returns errors from the
// configuration, the data, the objective, the backend and saving.
func Loop(ctx context.Context, m Model, opt *AdamW, obj Objective, data Batches, cfg LoopConfig) (Result, error) {
	l, err := newLoop(m, opt, obj, data, cfg)
	if err != nil {
		return Result{Step: opt.StepCount()}, err
	}
	for l.opt.StepCount() < l.cfg.Steps {
		if ctx.Err() != nil {
			return l.stop(fmt.Errorf("train: stopped at step %d: %w", l.opt.StepCount(), ctx.Err()))
		}
		if err := l.step(); err != nil {
			l.zeroGrads()
			return l.res, err
		}
		step := l.opt.StepCount()
		if l.cfg.CheckpointEvery > 0 && step%l.cfg.CheckpointEvery == 0 {
			if err := l.save(); err != nil {
				return l.res, err
			}
		}
	}
	return l.stop(nil)
}

// newLoop validates cfg and prepares a loop.
func newLoop(m Model, opt *AdamW, obj Objective, data Batches, cfg LoopConfig) (*loop, error) {
	if m == nil || opt == nil || obj == nil || data == nil {
		return nil, errors.New("train: Loop needs a model, an optimizer, an objective and data")
	}
	if cfg.GradAccum == 0 {
		cfg.GradAccum = 1
	}
	switch {
	case cfg.Steps < 0, cfg.GradAccum < 0, cfg.EvalEvery < 0, cfg.EvalBatches < 0, cfg.CheckpointEvery < 0, cfg.Keep < 0:
		return nil, fmt.Errorf("train: negative loop setting in steps %d, grad accum %d, eval every %d, eval batches %d, checkpoint every %d, keep %d",
			cfg.Steps, cfg.GradAccum, cfg.EvalEvery, cfg.EvalBatches, cfg.CheckpointEvery, cfg.Keep)
	case !(cfg.ClipNorm >= 0):
		return nil, fmt.Errorf("train: clip norm %v", cfg.ClipNorm)
	case cfg.EvalEvery > 0 && cfg.Eval == nil:
		return nil, errors.New("train: EvalEvery is set but Eval is nil")
	}
	l := &loop{m: m, opt: opt, obj: obj, data: data, cfg: cfg, saved: -1}
	l.res.Step = opt.StepCount()
	if cfg.Schedule == nil {
		l.cfg.Schedule = constantLR(opt.Config.LR)
	}
	if cfg.CheckpointDir != "" {
		var err error
		if l.names, l.tens, l.onames, err = checkpointNames(cfg.Weights, opt); err != nil {
			return nil, err
		}
		if l.dir, err = checkpoint.OpenDir(cfg.CheckpointDir, cfg.Keep); err != nil {
			return nil, err
		}
	}
	if cfg.Eval != nil {
		var err error
		if l.evalAt, err = cfg.Eval.Cursor(); err != nil {
			return nil, fmt.Errorf("train: eval cursor: %w", err)
		}
	}
	return l, nil
}

// constantLR is the schedule of a nil LoopConfig.Schedule.
type constantLR float64

func (c constantLR) LR(int) float64 { return float64(c) }

// checkpointNames returns the weights' names and tensors and the names of
// the optimizer's parameters. It returns an error for a nil or duplicate
// weight, or an optimizer parameter that is not a weight.
func checkpointNames(ws []Weight, opt *AdamW) (names []string, ts []*tensor.Tensor, onames []string, err error) {
	byTensor := make(map[*tensor.Tensor]string, len(ws))
	seen := make(map[string]bool, len(ws))
	for i, w := range ws {
		if w.Name == "" || w.Tensor == nil || seen[w.Name] {
			return nil, nil, nil, fmt.Errorf("train: weight %d (%q) is unnamed, nil or a duplicate", i, w.Name)
		}
		seen[w.Name] = true
		byTensor[w.Tensor] = w.Name
		names = append(names, w.Name)
		ts = append(ts, w.Tensor)
	}
	for i, p := range opt.Params() {
		n, ok := byTensor[p]
		if !ok {
			return nil, nil, nil, fmt.Errorf("train: optimizer parameter %d %v is not among the %d named weights", i, p.Shape(), len(ws))
		}
		onames = append(onames, n)
	}
	return names, ts, onames, nil
}

// step runs one update: micro-batches, clipping, the optimizer step,
// evaluation and the metrics line.
func (l *loop) step() error {
	start := time.Now()
	step := l.opt.StepCount() + 1
	var sum float64
	var tokens int64
	for i := range l.cfg.GradAccum {
		v, n, err := l.micro(step, i)
		if err != nil {
			return err
		}
		sum += v
		tokens += int64(n)
	}
	scale := 1 / float64(l.cfg.GradAccum)
	// The accumulated gradient is the sum over micro-batches; the mean's
	// norm is that norm times scale.
	norm := GradNorm(l.opt.Params()) * scale
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return fmt.Errorf("train: step %d: gradient norm is %v; stopped before the update", step, norm)
	}
	lr := l.cfg.Schedule.LR(step)
	if err := l.opt.Step(lr, scale*ClipScale(norm, l.cfg.ClipNorm)); err != nil {
		return fmt.Errorf("train: step %d: %w", step, err)
	}
	loss := sum * scale
	l.res.Step, l.res.Loss = step, loss
	secs := time.Since(start).Seconds()
	l.tokens += tokens
	met := Metric{Step: step, Loss: loss, LR: lr, GradNorm: norm, Tokens: l.tokens}
	if secs > 0 {
		met.TokensPerS = float64(tokens) / secs
	}
	if l.cfg.EvalEvery > 0 && step%l.cfg.EvalEvery == 0 {
		ev, err := l.evaluate()
		if err != nil {
			return fmt.Errorf("train: step %d: evaluation: %w", step, err)
		}
		ppl := math.Exp(ev)
		l.res.EvalLoss = ev
		met.EvalLoss, met.EvalPerplexity = &ev, &ppl
	}
	if l.cfg.Metrics != nil {
		line, err := json.Marshal(met)
		if err != nil {
			// A NaN cannot reach here, as it stops the step above.
			return fmt.Errorf("train: step %d: metrics: %w", step, err)
		}
		if _, err := l.cfg.Metrics.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("train: step %d: writing metrics: %w", step, err)
		}
	}
	return nil
}

// zeroGrads drops the gradients of a step that failed part way, so that
// they do not leak into a later update.
func (l *loop) zeroGrads() {
	for _, p := range l.opt.Params() {
		p.ZeroGrad()
	}
}

// micro runs micro-batch i of update step: its loss and backward pass. It
// returns the loss value and the batch's target count.
func (l *loop) micro(step, i int) (float64, int, error) {
	b, err := l.data.Next()
	if err != nil {
		return 0, 0, fmt.Errorf("train: step %d: data: %w", step, err)
	}
	defer b.Release()
	loss, err := l.obj.Loss(l.m, b)
	if err != nil {
		return 0, 0, fmt.Errorf("train: step %d: loss: %w", step, err)
	}
	var v float64
	err = tensor.Catch(func() {
		v = loss.Item()
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			loss.Backward()
		}
	})
	// Backward keeps the root's value for reading, so release it here.
	loss.Release()
	if err != nil {
		return 0, 0, fmt.Errorf("train: step %d: backward: %w", step, err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, 0, fmt.Errorf("train: step %d: loss of micro-batch %d is %v; stopped before the update%s",
			step, i, v, l.lastSaved())
	}
	n := 0
	if err := tensor.Catch(func() { n = b.Tokens() }); err != nil {
		return 0, 0, fmt.Errorf("train: step %d: %w", step, err)
	}
	return v, n, nil
}

// lastSaved names the newest checkpoint for an error message.
func (l *loop) lastSaved() string {
	if l.saved < 0 {
		return ""
	}
	return fmt.Sprintf(", last checkpoint is of step %d", l.saved)
}

// evaluate rewinds the eval source and returns its mean loss.
func (l *loop) evaluate() (float64, error) {
	if err := l.cfg.Eval.Seek(l.evalAt); err != nil {
		return 0, err
	}
	return Evaluate(l.m, l.obj, l.cfg.Eval, l.cfg.EvalBatches)
}

// Evaluate returns the token-weighted mean loss of obj over the next
// maxBatches batches of src (all until io.EOF when maxBatches is 0),
// computed without recording gradients; math.Exp of it is the perplexity.
// It returns an error from the source, from the objective, when the loss
// is not finite, or when the batches hold no target.
func Evaluate(m Model, obj Objective, src Batches, maxBatches int) (float64, error) {
	var sum float64
	var tokens int
	for i := 0; maxBatches == 0 || i < maxBatches; i++ {
		b, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		v, n, err := evalBatch(m, obj, b)
		b.Release()
		if err != nil {
			return 0, err
		}
		sum += v * float64(n)
		tokens += n
	}
	if tokens == 0 {
		return 0, errors.New("train: evaluation saw no target tokens")
	}
	mean := sum / float64(tokens)
	if math.IsNaN(mean) || math.IsInf(mean, 0) {
		return 0, fmt.Errorf("train: evaluation loss is %v", mean)
	}
	return mean, nil
}

// evalBatch returns one batch's mean loss and target count.
func evalBatch(m Model, obj Objective, b Batch) (float64, int, error) {
	var loss *tensor.Tensor
	var lerr error
	var v float64
	n := 0
	err := tensor.Catch(func() {
		tensor.NoGrad(func() { loss, lerr = obj.Loss(m, b) })
		if lerr == nil {
			v = loss.Item()
			loss.Release()
			n = b.Tokens()
		}
	})
	return v, n, errors.Join(err, lerr)
}

// stop ends the run: it saves a checkpoint at the current step unless one
// was just saved, and returns cause joined with any error of saving.
func (l *loop) stop(cause error) (Result, error) {
	if l.dir != nil && l.saved != l.opt.StepCount() {
		if err := l.save(); err != nil {
			return l.res, errors.Join(cause, err)
		}
	}
	return l.res, cause
}

// save writes a checkpoint of the current step.
func (l *loop) save() error {
	c, err := l.checkpoint()
	if err != nil {
		return err
	}
	path, err := l.dir.Save(c)
	if path != "" {
		l.saved, l.res.Checkpoint = l.opt.StepCount(), path
	}
	if err != nil {
		return fmt.Errorf("train: step %d: %w", l.opt.StepCount(), err)
	}
	return nil
}

// checkpoint gathers the weights, the optimizer state and the data cursor.
func (l *loop) checkpoint() (*checkpoint.Checkpoint, error) {
	step, mom, vel := l.opt.State()
	cursor, err := l.data.Cursor()
	if err != nil {
		return nil, fmt.Errorf("train: data cursor: %w", err)
	}
	c := &checkpoint.Checkpoint{
		Arch: l.cfg.Arch, Config: l.cfg.ModelConfig, Step: int64(step), Cursor: cursor,
		Tokenizer: l.cfg.Tokenizer, Recipe: l.cfg.Recipe,
		Optimizer: checkpoint.OptimizerState{Name: OptimizerName, Step: int64(step)},
		Metadata:  map[string]string{"loss": strconv.FormatFloat(l.res.Loss, 'g', -1, 64)},
	}
	err = tensor.Catch(func() {
		var ms, vs []checkpoint.NamedTensor
		if c.Tensors, err = checkpoint.FromTensors("", l.names, l.tens); err != nil {
			return
		}
		if ms, err = checkpoint.FromTensors(OptimizerName+".m/", l.onames, mom); err != nil {
			return
		}
		if vs, err = checkpoint.FromTensors(OptimizerName+".v/", l.onames, vel); err != nil {
			return
		}
		c.Optimizer.Tensors = append(ms, vs...)
	})
	if err != nil {
		return nil, fmt.Errorf("train: checkpoint of step %d: %w", step, err)
	}
	return c, nil
}

// Resume loads the newest usable checkpoint of the run directory dir into
// existing tensors: the weights' values (copied into each Weight's
// tensor), opt's moments and update count, and data's cursor (data may be
// nil). It returns the checkpoint's step, or 0 and no error when dir holds
// no checkpoint, so a fresh run and a resumed one start alike. When it had
// to pass over damaged newer files it resumes and also returns the
// *checkpoint.SkippedError as a warning. It returns an error when the
// directory cannot be read or holds only damaged files, or when the
// checkpoint does not fit: a weight missing or of another shape, an
// unknown weight, another optimizer's state, or a cursor data rejects.
func Resume(dir string, weights []Weight, opt *AdamW, data Batches) (step int, err error) {
	names, ts, onames, err := checkpointNames(weights, opt)
	if err != nil {
		return 0, err
	}
	d, err := checkpoint.OpenDir(dir, 0)
	if err != nil {
		return 0, err
	}
	path, _, ok, warn := d.Latest()
	if !ok {
		return 0, warn
	}
	c, err := checkpoint.Load(path)
	if err != nil {
		return 0, err
	}
	if err := loadWeights(c.Tensors, names, ts); err != nil {
		return 0, fmt.Errorf("train: resuming from %s: %w", path, err)
	}
	if err := loadOptimizer(c.Optimizer, onames, opt); err != nil {
		return 0, fmt.Errorf("train: resuming from %s: %w", path, err)
	}
	if data != nil {
		if err := data.Seek(c.Cursor); err != nil {
			return 0, fmt.Errorf("train: resuming from %s: %w", path, err)
		}
	}
	return int(c.Step), warn
}

// loadWeights copies the stored tensors into ts, by name.
func loadWeights(list []checkpoint.NamedTensor, names []string, ts []*tensor.Tensor) error {
	if len(list) != len(names) {
		return fmt.Errorf("checkpoint has %d weights, the model %d", len(list), len(names))
	}
	for i, name := range names {
		nt, ok := checkpoint.Find(list, name)
		if !ok {
			return fmt.Errorf("checkpoint has no weight %q", name)
		}
		src, err := nt.Tensor(ts[i].Backend())
		if err != nil {
			return err
		}
		err = tensor.Catch(func() { ts[i].CopyFrom(src) })
		src.Release()
		if err != nil {
			return fmt.Errorf("weight %q: %w", name, err)
		}
	}
	return nil
}

// loadOptimizer restores AdamW's moments and update count.
func loadOptimizer(st checkpoint.OptimizerState, names []string, opt *AdamW) error {
	if st.Name != OptimizerName {
		return fmt.Errorf("optimizer state is %q, not %q", st.Name, OptimizerName)
	}
	ps := opt.Params()
	if len(ps) == 0 {
		return opt.SetState(int(st.Step), nil, nil)
	}
	be := ps[0].Backend()
	ms, err := checkpoint.Tensors(be, st.Tensors, OptimizerName+".m/", names)
	if err != nil {
		return err
	}
	defer releaseAll(ms)
	vs, err := checkpoint.Tensors(be, st.Tensors, OptimizerName+".v/", names)
	if err != nil {
		return err
	}
	defer releaseAll(vs)
	if len(st.Tensors) != len(ms)+len(vs) {
		return fmt.Errorf("optimizer state has %d tensors, want %d", len(st.Tensors), len(ms)+len(vs))
	}
	return opt.SetState(int(st.Step), ms, vs)
}

func releaseAll(ts []*tensor.Tensor) {
	for _, t := range ts {
		t.Release()
	}
}
