package recipes

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/rl"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// RLEvalSpec sizes the held-out evaluation the RL methods run at their
// start and end: greedy completions of fresh problems, scored for
// accuracy and length.
type RLEvalSpec struct {
	// Prompts is the number of held-out prompts: fresh data.arith problems
	// (drawn with the held-out seed sample.arith uses), or the last
	// prompts of data.jsonl, which training then leaves out (at most
	// data.val_fraction of them when that is set). 0 turns the evaluation
	// off. It runs at the start, every train.eval_every steps and at the
	// end.
	Prompts int `yaml:"prompts"`
	// MaxNewTokens caps each completion; 0 means the method's maximum
	// completion length.
	MaxNewTokens int `yaml:"max_new_tokens"`
}

func (s RLEvalSpec) validate(path string) error {
	switch {
	case s.Prompts < 0 || s.Prompts > 100000:
		return rangeErr(path+".prompts", s.Prompts, "0 (off) to 100000")
	case s.MaxNewTokens < 0:
		return rangeErr(path+".max_new_tokens", s.MaxNewTokens, "0 (the completion limit) or more")
	}
	return nil
}

// Adapter returns the LoRA adapters the recipe's lora: section attached
// to the model Env.Model built, or nil when the recipe has none (or the
// model is not built yet).
func (e *Env) Adapter() *lora.Adapter {
	if st, ok := e.ext["lora"].(*loraState); ok {
		return st.ad
	}
	return nil
}

// rlPrompts reads the RL prompts of the recipe: data.arith problems, with
// their answers in the "answer" column, or data.jsonl records with a
// "prompt" field, whose other string and number fields become columns.
// With held > 0 it also returns held-out prompts: fresh arithmetic
// problems, or the last held records of the JSONL files. Prompt ids are
// the records' indices, which seed sampling.
func (e *Env) rlPrompts(tok tokenizer.Tokenizer, held int) (trainP, heldP []rl.Prompt, err error) {
	enc := promptEncoder(tok)
	if a := e.Recipe.Data.Arith; a != nil {
		ps, err := e.ArithProblems()
		if err != nil {
			return nil, nil, err
		}
		trainP = arithRLPrompts(ps, enc, 0)
		if held > 0 {
			spec := *a
			if spec.Seed == 0 {
				spec.Seed = e.Recipe.Seed
			}
			hs, err := data.GenerateArith(spec.config(), spec.Seed+arithHeldOutSeed, held)
			if err != nil {
				return nil, nil, fmt.Errorf("data.arith: %w", err)
			}
			heldP = arithRLPrompts(hs, enc, uint64(len(ps)))
		}
		return trainP, heldP, nil
	}
	var all []rl.Prompt
	for i, path := range e.Recipe.Data.JSONL {
		ps, err := readPromptFile(path, enc, uint64(len(all)))
		if err != nil {
			return nil, nil, fmt.Errorf("data.jsonl[%d]: %w", i, err)
		}
		all = append(all, ps...)
	}
	if f := e.Recipe.Data.ValFraction; f > 0 {
		n := max(1, int(f*float64(len(all))+0.5))
		if held == 0 || n < held {
			held = n
		}
	}
	if held >= len(all) {
		return nil, nil, fmt.Errorf("data.jsonl: %d prompts leave none to train on after %d held out", len(all), held)
	}
	return all[:len(all)-held], all[len(all)-held:], nil
}

// promptEncoder encodes prompt text as Sample does, with the BOS token
// when the vocabulary asks for one.
func promptEncoder(tok tokenizer.Tokenizer) func(string) []int32 {
	v := tok.Vocab()
	return func(s string) []int32 {
		var ids []int32
		if v.AddBOS && v.BOS >= 0 {
			ids = append(ids, v.BOS)
		}
		return append(ids, tok.Encode(s, tokenizer.EncodeOptions{})...)
	}
}

func arithRLPrompts(ps []data.Problem, enc func(string) []int32, first uint64) []rl.Prompt {
	out := make([]rl.Prompt, len(ps))
	for i, p := range ps {
		text := ArithPrompt(p.Question)
		out[i] = rl.Prompt{ID: first + uint64(i), Text: text, IDs: enc(text), Columns: map[string]string{"answer": p.Answer}}
	}
	return out
}

// readPromptFile reads one JSONL file of prompt records. It returns an
// error naming the line of a malformed record or one without a prompt.
func readPromptFile(path string, enc func(string) []int32, first uint64) ([]rl.Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []rl.Prompt
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		prompt, ok := rec["prompt"].(string)
		if !ok || prompt == "" {
			return nil, fmt.Errorf("%s:%d: no \"prompt\" string", path, line)
		}
		cols := map[string]string{}
		for k, v := range rec {
			switch v := v.(type) {
			case string:
				cols[k] = v
			case float64:
				cols[k] = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		out = append(out, rl.Prompt{ID: first + uint64(len(out)), Text: prompt, IDs: enc(prompt), Columns: cols})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	return out, nil
}

// rlReference returns the frozen reference for m: the same model with its
// LoRA adapters off when the recipe trains adapters, so no second copy of
// the weights is needed, else a copy of m as it is now (call it before
// training or resuming). It returns an error when the copy cannot be
// built.
func (e *Env) rlReference(m model.Model, cfg model.Config) (rl.Reference, error) {
	if ad := e.Adapter(); ad != nil {
		return rl.AdapterOffReference{Policy: m, Adapter: ad}, nil
	}
	ref, err := model.New(cfg, e.Backend, tensor.Float32, e.Recipe.Seed)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	src := m.Params()
	dst := ref.Params()
	if len(src) != len(dst) {
		return nil, fmt.Errorf("reference: %d parameters for the policy's %d", len(dst), len(src))
	}
	err = tensor.Catch(func() {
		for i := range src {
			dst[i].Tensor.CopyFrom(src[i].Tensor)
			dst[i].Tensor.SetRequiresGrad(false)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	return rl.ModelReference{Model: ref}, nil
}

// rlState is an RL method's optimizer and checkpoints, in the format
// train.Loop writes, so that train.Resume reads them back and a rerun of
// the run directory continues where it stopped.
type rlState struct {
	e       *Env
	opt     *train.AdamW
	sched   train.Schedule
	weights []train.Weight
	names   []string // optimizer parameters' weight names, in the optimizer's order
	dir     *checkpoint.Dir
	arch    string
	cfgJSON []byte
	saved   int
}

// rlCursor is what an RL checkpoint stores as its data cursor: sampling
// is keyed by the step, so the step is the whole position.
type rlCursor struct {
	Step int `json:"step"`
}

// newRLState builds the optimizer and schedule from the train: section
// over the trainable parameters (the LoRA adapters, else all of m's) and
// resumes from the run directory's newest checkpoint. It returns the
// state and the step to resume after, or an error when the optimizer,
// schedule or checkpoint is unusable.
func (e *Env) newRLState(m model.Model, cfg model.Config, cfgJSON []byte) (*rlState, int, error) {
	params := e.trainable
	if params == nil {
		params = m.Params()
	}
	s := &rlState{e: e, arch: cfg.ModelType, cfgJSON: cfgJSON}
	byTensor := map[*tensor.Tensor]string{}
	for _, p := range params {
		s.weights = append(s.weights, train.Weight{Name: p.Name, Tensor: p.Tensor})
		byTensor[p.Tensor] = p.Name
	}
	t := e.Recipe.Train
	decay, keep := model.DecaySplit(params)
	opt, err := train.NewAdamW(t.Optimizer, train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		return nil, 0, fmt.Errorf("train.optimizer: %w", err)
	}
	s.opt = opt
	for _, p := range opt.Params() {
		s.names = append(s.names, byTensor[p])
	}
	if s.sched, err = t.Schedule.Build(t.Steps); err != nil {
		return nil, 0, fmt.Errorf("train.schedule: %w", err)
	}
	if s.dir, err = checkpoint.OpenDir(e.Dir, t.Keep); err != nil {
		return nil, 0, err
	}
	start, err := train.Resume(e.Dir, s.weights, opt, nil)
	var skipped *checkpoint.SkippedError
	if err != nil && !(errors.As(err, &skipped) && start > 0) {
		return nil, 0, err
	}
	s.saved = start
	e.sum.StartStep = start
	return s, start, nil
}

// save writes a checkpoint after step unless one was already written
// there. It returns an error when the checkpoint cannot be written.
func (s *rlState) save(step int, loss float64) error {
	if step == s.saved || step == 0 {
		return nil
	}
	n, mom, vel := s.opt.State()
	cursor, _ := json.Marshal(rlCursor{Step: step})
	c := &checkpoint.Checkpoint{Arch: s.arch, Config: s.cfgJSON, Step: int64(step), Cursor: cursor,
		Tokenizer: TokenizerFile, Recipe: s.e.RecipeYAML,
		Optimizer: checkpoint.OptimizerState{Name: train.OptimizerName, Step: int64(n)},
		Metadata:  map[string]string{"loss": strconv.FormatFloat(loss, 'g', -1, 64), "method": s.e.Recipe.Method}}
	names := make([]string, len(s.weights))
	ts := make([]*tensor.Tensor, len(s.weights))
	for i, w := range s.weights {
		names[i], ts[i] = w.Name, w.Tensor
	}
	var err error
	if cerr := tensor.Catch(func() {
		var ms, vs []checkpoint.NamedTensor
		if c.Tensors, err = checkpoint.FromTensors("", names, ts); err != nil {
			return
		}
		if ms, err = checkpoint.FromTensors(train.OptimizerName+".m/", s.names, mom); err != nil {
			return
		}
		if vs, err = checkpoint.FromTensors(train.OptimizerName+".v/", s.names, vel); err != nil {
			return
		}
		c.Optimizer.Tensors = append(ms, vs...)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checkpoint of step %d: %w", step, err)
	}
	path, err := s.dir.Save(c)
	if path != "" {
		s.saved = step
		s.e.sum.Checkpoint = path
	}
	return err
}

// rlLoop runs steps start+1..train.steps of one, saving a checkpoint every
// train.checkpoint_every steps, at the end, and when ctx is cancelled
// between steps (returning the context's error). one returns the step's
// loss; eval runs every train.eval_every steps before the last.
func (s *rlState) loop(ctx context.Context, start int, one func(step int) (float64, error), eval func(step int) error) (last int, loss float64, err error) {
	t := s.e.Recipe.Train
	last = start
	began := time.Now()
	defer func() { s.e.sum.Elapsed = time.Since(began) }()
	for step := start + 1; step <= t.Steps; step++ {
		if ctx.Err() != nil {
			return last, loss, errors.Join(ctx.Err(), s.save(last, loss))
		}
		l, err := one(step)
		if err != nil {
			if ctx.Err() != nil {
				// Cancelled inside the step (an external reward, say):
				// the step is dropped and the last finished one saved.
				return last, loss, errors.Join(ctx.Err(), s.save(last, loss))
			}
			// The last good checkpoint stays; a failed step saves nothing.
			return last, loss, err
		}
		loss = l
		last = step
		s.e.sum.Steps, s.e.sum.Loss = step, loss
		if t.EvalEvery > 0 && step%t.EvalEvery == 0 && step < t.Steps {
			if err := eval(step); err != nil {
				return last, loss, err
			}
		}
		if t.CheckpointEvery > 0 && step%t.CheckpointEvery == 0 {
			if err := s.save(step, loss); err != nil {
				return last, loss, err
			}
		}
	}
	return last, loss, s.save(last, loss)
}

// writeMetric writes one JSON object to metrics.jsonl.
func (e *Env) writeMetric(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = e.metrics.Write(append(b, '\n'))
	return err
}

// extra records a summary line; labels ending in ", " (an evaluation
// between the start and the end) are not recorded.
func (e *Env) extra(label, value string) {
	if strings.HasSuffix(label, ", ") {
		return
	}
	if e.sum.Extra == nil {
		e.sum.Extra = map[string]string{}
	}
	e.sum.Extra[label] = value
}

// fitCompletion returns maxNew cut so that the longest of prompts (with
// extra more tokens, such as a level tag) and its completion fit in seq
// tokens and the model's context, and an error when not even one token
// fits.
func fitCompletion(cfg model.Config, seq int, prompts []rl.Prompt, extra, maxNew int) (int, error) {
	longest := 0
	for _, p := range prompts {
		longest = max(longest, len(p.IDs))
	}
	ctx := cfg.MaxPositionEmbeddings
	if seq > 0 && (ctx <= 0 || seq < ctx) {
		ctx = seq
	}
	room := ctx - longest - extra
	if room < 1 {
		return 0, fmt.Errorf("data.seq: a prompt of %d tokens leaves no room for a completion in a context of %d", longest+extra, ctx)
	}
	return min(maxNew, room), nil
}
