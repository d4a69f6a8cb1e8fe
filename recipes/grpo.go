package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/rl"
)

// The RL method names.
const (
	MethodGRPO = "grpo"
	MethodTLDR = "tldr"
	MethodDPO  = "dpo"
)

// GRPOSection is the grpo: section of a recipe (and, with Length, the
// tldr: section): GRPO (METHODS §1) on the prompts of data.arith or
// data.jsonl, data.batch of them (each with its group of completions) per
// update, with prompt and completion within data.seq tokens, and the
// learning rate, optimizer, clipping, steps and checkpoints of train:. Its
// keys:
//
//	grpo:
//	  loss: {num_generations: 8, loss_type: dapo, beta: 0, max_completion_length: 96}
//	  sampling: {temperature: 0.7, seed: 1}
//	  rewards: [{kind: answer_match}]
//	  eval: {prompts: 200}
type GRPOSection struct {
	// Loss holds GRPO's hyperparameters (rl.GRPOConfig; zero values mean
	// TRL's defaults).
	Loss rl.GRPOConfig `yaml:"loss"`
	// Sampling says how rollouts sample; a zero seed means the recipe's.
	Sampling rl.SamplingConfig `yaml:"sampling"`
	// MicroBatch bounds the completions per forward and backward pass; 0
	// means all at once.
	MicroBatch int `yaml:"micro_batch"`
	// Rewards are summed with their weights; each is logged on its own.
	Rewards []rl.RewardConfig `yaml:"rewards"`
	// AccuracyReward names the reward logged as accuracy (answer_match).
	AccuracyReward string `yaml:"accuracy_reward"`
	// SampleEvery logs two completions every that many steps; 0 never.
	SampleEvery int `yaml:"sample_every"`
	// Eval is the held-out evaluation at the start and the end.
	Eval RLEvalSpec `yaml:"eval"`
	// Length holds TLDR's levels, reward form and prompt template (method
	// tldr only).
	Length *rl.TLDRConfig `yaml:"length,omitempty"`
	// ThinkingTemperatures, for method tldr, evaluates temperature scaling
	// of the end-of-thinking token at the end of the run at each of these
	// temperatures (METHODS §2), one line of metrics each.
	ThinkingTemperatures []float64 `yaml:"thinking_temperatures,omitempty"`
	// ThinkingBudgets, for method tldr, evaluates s1's budget forcing, the
	// baseline temperature scaling is compared with, at the end of the
	// run: the end-of-thinking token is forced after each of these many
	// tokens, one line of metrics each.
	ThinkingBudgets []int `yaml:"thinking_budgets,omitempty"`
	// BudgetClose is the text forced at a thinking budget; its tokens must
	// include EndOfThinking's first (default: EndOfThinking). "\n####"
	// puts the arithmetic answer marker on a line of its own, as the
	// model writes it.
	BudgetClose string `yaml:"budget_close,omitempty"`
	// EndOfThinking is the text whose first token ends the thinking phase
	// for temperature scaling and budget forcing ("####", where arithmetic
	// answers begin).
	EndOfThinking string `yaml:"end_of_thinking,omitempty"`
}

// grpoMethod is GRPO with verifiable rewards; with tldr set it is TLDR:
// GRPO on level-conditioned prompts with the length-regularised reward.
type grpoMethod struct{ tldr bool }

func init() {
	Register(grpoMethod{})
	Register(grpoMethod{tldr: true})
}

func (g grpoMethod) Name() string {
	if g.tldr {
		return MethodTLDR
	}
	return MethodGRPO
}

func (g grpoMethod) Description() string {
	if g.tldr {
		return "TLDR: GRPO with length levels in the prompt and a length-regularised reward (METHODS §2)"
	}
	return "GRPO with verifiable rewards on data.arith or data.jsonl prompts (METHODS §1)"
}

func (g grpoMethod) Section() string { return g.Name() }

func (g grpoMethod) NewConfig() any {
	c := &GRPOSection{Loss: rl.GRPOConfig{NumGenerations: 8, MaxCompletionLength: 128},
		Sampling: rl.SamplingConfig{Temperature: 1}, AccuracyReward: "answer_match",
		Eval: RLEvalSpec{Prompts: 100}, EndOfThinking: "####"}
	if g.tldr {
		c.Length = &rl.TLDRConfig{Levels: []rl.TLDRLevel{
			{Name: "short", Budget: 32, Lambda: 0.5}, {Name: "medium", Budget: 64, Lambda: 0.5}, {Name: "long", Budget: 128, Lambda: 0.5}}}
	}
	return c
}

func (g grpoMethod) Validate(r *Recipe) error {
	c := r.MethodConfig.(*GRPOSection)
	s := g.Section()
	if err := validateRLData(r); err != nil {
		return err
	}
	if _, err := c.Loss.WithDefaults(); err != nil {
		return fmt.Errorf("%s.loss: %s", s, strings.TrimPrefix(err.Error(), "rl: grpo: "))
	}
	if c.Sampling.Temperature < 0 || c.Sampling.TopP < 0 || c.Sampling.TopP > 1 || c.Sampling.TopK < 0 {
		return rangeErr(s+".sampling", fmt.Sprintf("temperature %v, top_p %v, top_k %d", c.Sampling.Temperature, c.Sampling.TopP, c.Sampling.TopK),
			"temperature >= 0, top_p in [0, 1], top_k >= 0")
	}
	switch {
	case c.MicroBatch < 0:
		return rangeErr(s+".micro_batch", c.MicroBatch, "0 (all at once) or more")
	case c.SampleEvery < 0:
		return rangeErr(s+".sample_every", c.SampleEvery, "0 (never) or more")
	case !g.tldr && c.Length != nil:
		return fmt.Errorf("%s.length: length levels belong to method tldr", s)
	case !g.tldr && len(c.ThinkingTemperatures) > 0:
		return fmt.Errorf("%s.thinking_temperatures: temperature scaling is evaluated by method tldr", s)
	case !g.tldr && len(c.ThinkingBudgets) > 0:
		return fmt.Errorf("%s.thinking_budgets: budget forcing is evaluated by method tldr", s)
	case !g.tldr && c.BudgetClose != "":
		return fmt.Errorf("%s.budget_close: budget forcing is evaluated by method tldr", s)
	case g.tldr && c.Length == nil:
		return fmt.Errorf("%s.length: method tldr needs length levels", s)
	}
	for i, t := range c.ThinkingTemperatures {
		if !(t > 0) {
			return rangeErr(fmt.Sprintf("%s.thinking_temperatures[%d]", s, i), t, "a positive temperature")
		}
	}
	for i, b := range c.ThinkingBudgets {
		if b < 1 {
			return rangeErr(fmt.Sprintf("%s.thinking_budgets[%d]", s, i), b, "1 token or more")
		}
	}
	if len(c.ThinkingTemperatures)+len(c.ThinkingBudgets) > 0 && c.EndOfThinking == "" {
		return fmt.Errorf("%s.end_of_thinking: temperature scaling and budget forcing need the text that ends thinking", s)
	}
	var tl *rl.TLDRConfig
	if c.Length != nil {
		lc, err := c.Length.WithDefaults()
		if err != nil {
			return fmt.Errorf("%s.length: %s", s, strings.TrimPrefix(err.Error(), "rl: tldr: "))
		}
		tl = &lc
	}
	if _, err := rl.BuildRewards(c.Rewards, tl); err != nil {
		return fmt.Errorf("%s.rewards: %s", s, strings.TrimPrefix(err.Error(), "rl: "))
	}
	return c.Eval.validate(s + ".eval")
}

// validateRLData checks that the recipe names prompts the RL methods read.
func validateRLData(r *Recipe) error {
	d := r.Data
	switch {
	case len(d.JSONL) == 0 && d.Arith == nil:
		return errors.New("data.jsonl: list JSONL files of prompt records (with an answer column for answer_match), or generate them with data.arith")
	case len(d.Text) > 0:
		return fmt.Errorf("data.text: method %s reads prompts from data.jsonl or data.arith, not text", r.Method)
	case r.Tokenizer.Train != nil:
		return fmt.Errorf("tokenizer.train: method %s trains a trained model with its own tokenizer; give model.checkpoint", r.Method)
	case r.Model.Checkpoint == "":
		return fmt.Errorf("model.checkpoint: method %s starts from a trained model (an SFT run directory, say)", r.Method)
	}
	return nil
}

// rlRun is what the RL methods share once the model is built.
type rlRun struct {
	e       *Env
	tok     tokenizer.Tokenizer
	m       model.Model
	cfg     model.Config
	cfgJSON []byte
}

// newRLRun loads the tokenizer and the model.
func (e *Env) newRLRun() (*rlRun, error) {
	tok, err := e.Tokenizer()
	if err != nil {
		return nil, err
	}
	m, cfg, js, err := e.Model(len(tok.Vocab().Tokens))
	if err != nil {
		return nil, err
	}
	return &rlRun{e: e, tok: tok, m: m, cfg: cfg, cfgJSON: js}, nil
}

// stops adds the blank line that ends an arithmetic answer to the
// sampling's stop strings, as Sample does.
func (r *rlRun) stops(s rl.SamplingConfig) rl.SamplingConfig {
	if r.e.Recipe.Data.Arith != nil {
		s.StopStrings = append(append([]string{}, s.StopStrings...), "\n\n")
	}
	if s.Seed == 0 {
		s.Seed = r.e.Recipe.Seed
	}
	return s
}

// evaluate scores greedy completions of prompts (with proc, sampled) and
// logs them at step under prefix (such as "eval_" or "eval_short_"),
// returning the result.
func (r *rlRun) evaluate(ctx context.Context, step int, prefix string, prompts []rl.Prompt, rewards rl.Rewards, accuracy string, maxNew int, s rl.SamplingConfig, proc rl.LogitProcessor) (rl.EvalResult, error) {
	res, err := rl.Evaluate(ctx, r.m, r.tok, prompts, rewards, maxNew, s, proc)
	if err != nil {
		return res, err
	}
	line := map[string]any{"step": step, prefix + "reward": res.Reward, prefix + "completion_length_mean": res.Length,
		prefix + "truncated_frac": res.Truncated}
	if a, ok := res.Each[accuracy]; ok {
		line[prefix+"accuracy"] = a
	}
	return res, r.e.writeMetric(line)
}

// levelPrompts returns prompts conditioned on level l, with the level in
// their column for TLDRReward.
func levelPrompts(c rl.TLDRConfig, l rl.TLDRLevel, ps []rl.Prompt, enc func(string) []int32) []rl.Prompt {
	out := make([]rl.Prompt, len(ps))
	for i, p := range ps {
		q := p
		q.Text = c.Condition(p.Text, l)
		q.IDs = enc(q.Text)
		q.Columns = map[string]string{c.LevelColumn: l.Name}
		for k, v := range p.Columns {
			q.Columns[k] = v
		}
		out[i] = q
	}
	return out
}

func (g grpoMethod) Run(ctx context.Context, e *Env) (Summary, error) {
	c := *e.Recipe.MethodConfig.(*GRPOSection)
	r, err := e.newRLRun()
	if err != nil {
		return *e.sum, err
	}
	var tl *rl.TLDRConfig
	if c.Length != nil {
		lc, err := c.Length.WithDefaults()
		if err != nil {
			return *e.sum, err
		}
		tl = &lc
	}
	rewards, err := rl.BuildRewards(c.Rewards, tl)
	if err != nil {
		return *e.sum, fmt.Errorf("%s.rewards: %w", g.Section(), err)
	}
	// Encoded now, so that a bad text fails before training, not after.
	end, closeIDs, err := c.thinkingIDs(r.tok, g.Section())
	if err != nil {
		return *e.sum, err
	}
	trainP, heldP, err := e.rlPrompts(r.tok, c.Eval.Prompts)
	if err != nil {
		return *e.sum, err
	}
	loss, err := c.Loss.WithDefaults()
	if err != nil {
		return *e.sum, err
	}
	// A level tag lengthens every prompt by the template's tokens.
	extra := 0
	if tl != nil {
		for _, l := range tl.Levels {
			extra = max(extra, len(r.tok.Encode(tl.Condition("", l), tokenizer.EncodeOptions{}))+1)
		}
	}
	if loss.MaxCompletionLength, err = fitCompletion(r.cfg, e.Recipe.Data.Seq, append(trainP, heldP...), extra, loss.MaxCompletionLength); err != nil {
		return *e.sum, err
	}
	var ref rl.Reference
	if loss.Beta != 0 {
		if ref, err = e.rlReference(r.m, r.cfg); err != nil {
			return *e.sum, err
		}
	}
	st, start, err := e.newRLState(r.m, r.cfg, r.cfgJSON)
	if err != nil {
		return *e.sum, err
	}
	sampling := r.stops(c.Sampling)
	maxEval := c.Eval.MaxNewTokens
	if maxEval == 0 || maxEval > loss.MaxCompletionLength {
		maxEval = loss.MaxCompletionLength
	}
	enc := promptEncoder(r.tok)
	// evalAll logs the held-out evaluation: plain prompts, and for tldr
	// each level's conditioned prompts.
	evalAll := func(step int, when string) error {
		if len(heldP) == 0 {
			return nil
		}
		evalRewards := rewards
		if tl != nil {
			// Unconditioned prompts carry no level, so score them by
			// correctness alone.
			am, _ := rl.NewAnswerMatch(rl.AnswerMatchConfig{})
			evalRewards = rl.Rewards{{Reward: am, Weight: 1}}
		}
		res, err := r.evaluate(ctx, step, "eval_", heldP, evalRewards, c.AccuracyReward, maxEval, sampling, nil)
		if err != nil {
			return err
		}
		e.extra("held-out accuracy, "+when, fmt.Sprintf("%.3f (mean length %.1f tokens)", res.Each[c.AccuracyReward], res.Length))
		if tl == nil {
			return nil
		}
		for _, l := range tl.Levels {
			ps := levelPrompts(*tl, l, heldP, enc)
			res, err := r.evaluate(ctx, step, "eval_"+l.Name+"_", ps, evalRewards, "answer_match", maxEval, sampling, nil)
			if err != nil {
				return err
			}
			am := res.Each["answer_match"]
			e.extra("held-out "+l.Name+", "+when, fmt.Sprintf("accuracy %.3f, mean length %.1f tokens", am, res.Length))
		}
		return nil
	}
	if start == 0 {
		if err := evalAll(0, "start"); err != nil {
			return *e.sum, err
		}
	}
	tr := &rl.GRPOTrainer{Policy: r.m, Tok: r.tok, Opt: st.opt, Schedule: st.sched, Rewards: rewards, Ref: ref,
		Prompts: trainP, Metrics: e.metrics, Config: rl.GRPOTrainerConfig{GRPO: loss, Sampling: sampling,
			PromptsPerStep: e.Recipe.Data.Batch, MicroBatch: c.MicroBatch, ClipNorm: e.Recipe.Train.ClipNorm,
			AccuracyReward: c.AccuracyReward, SampleEvery: c.SampleEvery}}
	if tl != nil {
		if tr.Condition, err = tl.Conditioner(sampling.Seed, enc); err != nil {
			return *e.sum, err
		}
	}
	last, _, err := st.loop(ctx, start, func(step int) (float64, error) {
		met, err := tr.Step(ctx, step)
		return met.Loss, err
	}, func(step int) error { return evalAll(step, "") })
	if err != nil {
		return *e.sum, err
	}
	if err := evalAll(last, "end"); err != nil {
		return *e.sum, err
	}
	if err := r.thinkingControls(ctx, c, last, heldP, maxEval, sampling, end, closeIDs); err != nil {
		return *e.sum, err
	}
	return *e.sum, e.Sample(r.m, r.tok, last)
}

// thinkingIDs returns the end-of-thinking token and the tokens forced at
// a thinking budget, or nothing when the section measures neither. It
// returns an error, under section s, when a text encodes to no tokens or
// budget_close lacks the end token.
func (c GRPOSection) thinkingIDs(tok tokenizer.Tokenizer, s string) (end int32, closeIDs []int32, err error) {
	if len(c.ThinkingTemperatures)+len(c.ThinkingBudgets) == 0 {
		return 0, nil, nil
	}
	ids := tok.Encode(c.EndOfThinking, tokenizer.EncodeOptions{})
	if len(ids) == 0 {
		return 0, nil, fmt.Errorf("%s.end_of_thinking: %q encodes to no tokens", s, c.EndOfThinking)
	}
	end, closeIDs = ids[0], ids[:1]
	if c.BudgetClose != "" {
		closeIDs = tok.Encode(c.BudgetClose, tokenizer.EncodeOptions{})
		if !slices.Contains(closeIDs, end) {
			return 0, nil, fmt.Errorf("%s.budget_close: %q encodes without the first token of end_of_thinking %q", s, c.BudgetClose, c.EndOfThinking)
		}
	}
	return end, closeIDs, nil
}

// thinkingControls evaluates temperature scaling of the end-of-thinking
// token end and budget forcing (closing with closeIDs) on the held-out
// prompts (unconditioned), sampling at the rollout temperature, and logs
// each setting's accuracy and mean length.
func (r *rlRun) thinkingControls(ctx context.Context, c GRPOSection, step int, held []rl.Prompt, maxNew int, s rl.SamplingConfig, end int32, closeIDs []int32) error {
	if len(c.ThinkingTemperatures)+len(c.ThinkingBudgets) == 0 || len(held) == 0 {
		return nil
	}
	am, _ := rl.NewAnswerMatch(rl.AnswerMatchConfig{})
	rewards := rl.Rewards{{Reward: am, Weight: 1}}
	// measure evaluates under proc and logs the result under prefix, with
	// key: value naming the setting; it returns the summary's part.
	measure := func(proc rl.LogitProcessor, key string, value any, prefix, part string) (string, error) {
		res, err := rl.Evaluate(ctx, r.m, r.tok, held, rewards, maxNew, s, proc)
		if err != nil {
			return "", err
		}
		if err := r.e.writeMetric(map[string]any{"step": step, key: value,
			prefix + "_accuracy": res.Reward, prefix + "_completion_length_mean": res.Length}); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: length %.1f, accuracy %.3f", part, res.Length, res.Reward), nil
	}
	var ts, bf []string
	for _, t := range c.ThinkingTemperatures {
		p, err := measure(rl.ThinkingTemperature{StartID: -1, EndID: end, Temperature: t}, "thinking_temperature", t, "ts", fmt.Sprintf("T=%g", t))
		if err != nil {
			return err
		}
		ts = append(ts, p)
	}
	for _, b := range c.ThinkingBudgets {
		p, err := measure(&rl.BudgetForcing{StartID: -1, EndID: end, MaxThinking: b, Close: closeIDs}, "thinking_budget", b, "bf", fmt.Sprintf("B=%d", b))
		if err != nil {
			return err
		}
		bf = append(bf, p)
	}
	if len(ts) > 0 {
		r.e.extra("thinking temperature", strings.Join(ts, "; "))
	}
	if len(bf) > 0 {
		r.e.extra("budget forcing", strings.Join(bf, "; "))
	}
	return nil
}
