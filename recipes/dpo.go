package recipes

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/minnowml/minnow/rl"
)

// RefLogpsFile caches a DPO run's reference log-probs of its pairs.
const RefLogpsFile = "dpo_ref_logps.json"

// DPOPairSpec says how a dpo run builds its preference pairs: the
// starting model samples Generations completions of each prompt, the
// rewards score them, and in each group whose scores differ the best
// (the shortest among equals, so concise wins) is chosen over the worst
// (rl.PairsFromGroups). The held-out prompts of eval: give the held-out
// pairs the same way.
type DPOPairSpec struct {
	// Prompts caps the training prompts sampled; 0 means all of them.
	Prompts int `yaml:"prompts"`
	// Generations is the completions sampled per prompt (8).
	Generations int `yaml:"generations"`
	// MaxCompletionLength caps each completion (128).
	MaxCompletionLength int `yaml:"max_completion_length"`
	// Sampling says how completions are sampled; a zero seed means the
	// recipe's.
	Sampling rl.SamplingConfig `yaml:"sampling"`
	// Concise keeps only the pairs whose chosen completion is shorter
	// than the rejected one (rl.ConcisePairs), for training and held out.
	Concise bool `yaml:"concise"`
}

// DPOSection is the dpo: section: DPO (METHODS §4) on pairs the starting
// model's own samples give, with the reference log-probs computed once
// (by the LoRA-disabled model under a lora: section, else the starting
// model) and cached in the run directory. Its keys:
//
//	dpo:
//	  loss: {beta: 0.1, label_smoothing: 0}
//	  pairs: {generations: 8, max_completion_length: 96, sampling: {temperature: 0.8}, concise: true}
//	  rewards: [{kind: answer_match}]
//	  eval: {prompts: 200}
type DPOSection struct {
	// Loss holds the loss and its hyperparameters (rl.DPOConfig).
	Loss rl.DPOConfig `yaml:"loss"`
	// Pairs says how the pairs are built.
	Pairs DPOPairSpec `yaml:"pairs"`
	// Rewards score the sampled completions.
	Rewards []rl.RewardConfig `yaml:"rewards"`
	// Eval gives the held-out prompts, whose pairs measure the preference
	// accuracy at the start and end, with greedy accuracy and length.
	Eval RLEvalSpec `yaml:"eval"`
}

type dpoMethod struct{}

func init() { Register(dpoMethod{}) }

func (dpoMethod) Name() string { return MethodDPO }

func (dpoMethod) Description() string {
	return "DPO on pairs of the starting model's own samples, scored by rewards (METHODS §4)"
}

func (dpoMethod) Section() string { return MethodDPO }

func (dpoMethod) NewConfig() any {
	return &DPOSection{Pairs: DPOPairSpec{Generations: 8, MaxCompletionLength: 128,
		Sampling: rl.SamplingConfig{Temperature: 1}}, Eval: RLEvalSpec{Prompts: 100}}
}

func (dpoMethod) Validate(r *Recipe) error {
	c := r.MethodConfig.(*DPOSection)
	if err := validateRLData(r); err != nil {
		return err
	}
	if _, err := c.Loss.WithDefaults(); err != nil {
		return fmt.Errorf("dpo.loss: %s", strings.TrimPrefix(err.Error(), "rl: dpo: "))
	}
	switch p := c.Pairs; {
	case p.Prompts < 0:
		return rangeErr("dpo.pairs.prompts", p.Prompts, "0 (all) or more")
	case p.Generations < 2:
		return rangeErr("dpo.pairs.generations", p.Generations, "2 or more")
	case p.MaxCompletionLength < 1:
		return rangeErr("dpo.pairs.max_completion_length", p.MaxCompletionLength, "1 or more")
	case p.Sampling.Temperature < 0 || p.Sampling.TopP < 0 || p.Sampling.TopP > 1 || p.Sampling.TopK < 0:
		return rangeErr("dpo.pairs.sampling", fmt.Sprintf("temperature %v, top_p %v, top_k %d", p.Sampling.Temperature, p.Sampling.TopP, p.Sampling.TopK),
			"temperature >= 0, top_p in [0, 1], top_k >= 0")
	}
	if len(c.Rewards) > 0 {
		if _, err := rl.BuildRewards(c.Rewards, nil); err != nil {
			return fmt.Errorf("dpo.rewards: %s", strings.TrimPrefix(err.Error(), "rl: "))
		}
	}
	return c.Eval.validate("dpo.eval")
}

// pairs samples and scores completions of ps and returns their pairs;
// step keys the sampling so training and held-out draws differ.
func (r *rlRun) pairs(ctx context.Context, c DPOSection, rewards rl.Rewards, ps []rl.Prompt, step int) ([]rl.Pair, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	s := r.stops(c.Pairs.Sampling)
	G := c.Pairs.Generations
	var out []rl.Pair
	// Chunks bound the memory of one generation call.
	const chunk = 32
	for lo := 0; lo < len(ps); lo += chunk {
		part := ps[lo:min(lo+chunk, len(ps))]
		ids := make([][]int32, len(part))
		pids := make([]uint64, len(part))
		rb := rl.RewardBatch{Columns: map[string][]string{}}
		for i, p := range part {
			ids[i], pids[i] = p.IDs, p.ID
			for range G {
				rb.Prompts = append(rb.Prompts, p.Text)
				for k, v := range p.Columns {
					rb.Columns[k] = append(rb.Columns[k], v)
				}
			}
		}
		roll, err := rl.Generate(r.m, r.tok, ids, pids, step, G, c.Pairs.MaxCompletionLength, s, nil)
		if err != nil {
			return nil, fmt.Errorf("dpo: sampling pairs: %w", err)
		}
		rb.Completions, rb.CompletionIDs = roll.Texts, roll.Completions
		sc, err := rewards.Score(ctx, rb)
		if err != nil {
			return nil, fmt.Errorf("dpo: scoring pairs: %w", err)
		}
		got, err := rl.PairsFromGroups(roll, sc.Total, G)
		if err != nil {
			return nil, err
		}
		if c.Pairs.Concise {
			got = rl.ConcisePairs(got)
		}
		out = append(out, got...)
	}
	return out, nil
}

func (dpoMethod) Run(ctx context.Context, e *Env) (Summary, error) {
	c := *e.Recipe.MethodConfig.(*DPOSection)
	r, err := e.newRLRun()
	if err != nil {
		return *e.sum, err
	}
	rcfg := c.Rewards
	if len(rcfg) == 0 {
		rcfg = []rl.RewardConfig{{Kind: rl.RewardAnswerMatch}}
	}
	rewards, err := rl.BuildRewards(rcfg, nil)
	if err != nil {
		return *e.sum, fmt.Errorf("dpo.rewards: %w", err)
	}
	loss, err := c.Loss.WithDefaults()
	if err != nil {
		return *e.sum, err
	}
	trainP, heldP, err := e.rlPrompts(r.tok, c.Eval.Prompts)
	if err != nil {
		return *e.sum, err
	}
	if c.Pairs.MaxCompletionLength, err = fitCompletion(r.cfg, e.Recipe.Data.Seq, append(trainP, heldP...), 0, c.Pairs.MaxCompletionLength); err != nil {
		return *e.sum, err
	}
	if c.Pairs.Prompts > 0 && c.Pairs.Prompts < len(trainP) {
		trainP = trainP[:c.Pairs.Prompts]
	}
	// The pairs and the reference log-probs come from the starting model,
	// before any checkpoint is loaded, so a resumed run rebuilds exactly
	// the pairs it trained on, and finds their log-probs in the cache.
	key, err := rl.ModelKey(r.m)
	if err != nil {
		return *e.sum, err
	}
	trainPairs, err := r.pairs(ctx, c, rewards, trainP, 1)
	if err != nil {
		return *e.sum, err
	}
	if len(trainPairs) == 0 {
		return *e.sum, fmt.Errorf("dpo: the starting model's samples of %d prompts gave no pair whose rewards differ", len(trainP))
	}
	heldPairs, err := r.pairs(ctx, c, rewards, heldP, 2)
	if err != nil {
		return *e.sum, err
	}
	var ref rl.Reference = rl.ModelReference{Model: r.m}
	if ad := e.Adapter(); ad != nil {
		ref = rl.AdapterOffReference{Policy: r.m, Adapter: ad}
	}
	refTrain, err := rl.LoadOrComputeRefLogps(filepath.Join(e.Dir, RefLogpsFile), rl.PairsKey(trainPairs, key), ref, trainPairs, 16)
	if err != nil {
		return *e.sum, err
	}
	var refHeld rl.RefLogps
	if len(heldPairs) > 0 {
		if refHeld, err = rl.LoadOrComputeRefLogps("", "", ref, heldPairs, 16); err != nil {
			return *e.sum, err
		}
	}
	e.extra("preference pairs", fmt.Sprintf("%d for training from %d prompts, %d held out from %d", len(trainPairs), len(trainP), len(heldPairs), len(heldP)))
	st, start, err := e.newRLState(r.m, r.cfg, r.cfgJSON)
	if err != nil {
		return *e.sum, err
	}
	am, _ := rl.NewAnswerMatch(rl.AnswerMatchConfig{})
	evalRewards := rl.Rewards{{Reward: am, Weight: 1}}
	maxEval := c.Eval.MaxNewTokens
	if maxEval == 0 || maxEval > c.Pairs.MaxCompletionLength {
		maxEval = c.Pairs.MaxCompletionLength
	}
	evalAll := func(step int, when string) error {
		if len(heldP) == 0 {
			return nil
		}
		line := map[string]any{"step": step}
		if len(heldPairs) > 0 {
			l, ds, err := rl.EvaluateDPO(r.m, loss, heldPairs, refHeld, 16)
			if err != nil {
				return err
			}
			line["eval_dpo_loss"], line["eval_preference_accuracy"], line["eval_rewards_margin"] = l, ds.Accuracy, ds.Margin
			e.extra("held-out preference accuracy, "+when, fmt.Sprintf("%.3f (loss %.3f, margin %.3f)", ds.Accuracy, l, ds.Margin))
		}
		if err := e.writeMetric(line); err != nil {
			return err
		}
		if e.Recipe.Data.Arith == nil {
			return nil
		}
		res, err := r.evaluate(ctx, step, "eval_", heldP, evalRewards, "answer_match", maxEval, r.stops(rl.SamplingConfig{}), nil)
		if err != nil {
			return err
		}
		e.extra("held-out accuracy, "+when, fmt.Sprintf("%.3f (mean length %.1f tokens)", res.Each["answer_match"], res.Length))
		return nil
	}
	if start == 0 {
		if err := evalAll(0, "start"); err != nil {
			return *e.sum, err
		}
	}
	seed := c.Pairs.Sampling.Seed
	if seed == 0 {
		seed = e.Recipe.Seed
	}
	tr := &rl.DPOTrainer{Policy: r.m, Opt: st.opt, Schedule: st.sched, Pairs: trainPairs, Ref: refTrain,
		Metrics: e.metrics, Config: rl.DPOTrainerConfig{DPO: loss, BatchPairs: e.Recipe.Data.Batch,
			ClipNorm: e.Recipe.Train.ClipNorm, Seed: seed}}
	last, _, err := st.loop(ctx, start, func(step int) (float64, error) {
		met, err := tr.Step(step)
		return met.Loss, err
	}, func(step int) error { return evalAll(step, "") })
	if err != nil {
		return *e.sum, err
	}
	if err := evalAll(last, "end"); err != nil {
		return *e.sum, err
	}
	return *e.sum, e.Sample(r.m, r.tok, last)
}
