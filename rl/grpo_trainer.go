package rl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// Prompt is one training prompt of an RL data set.
type Prompt struct {
	// ID identifies the prompt for seeding; a data set's index will do.
	ID uint64
	// Text is the prompt as rewards see it, IDs as the model does.
	Text string
	IDs  []int32
	// Columns are the prompt's other fields, such as "answer".
	Columns map[string]string
}

// GRPOTrainerConfig configures GRPOTrainer.
type GRPOTrainerConfig struct {
	GRPO     GRPOConfig     `yaml:"grpo"`
	Sampling SamplingConfig `yaml:"sampling"`
	// PromptsPerStep is the number of groups each optimizer step trains on
	// (8).
	PromptsPerStep int `yaml:"prompts_per_step"`
	// MicroBatch is the most completions per forward and backward pass; 0
	// means all of them at once.
	MicroBatch int `yaml:"micro_batch"`
	// ClipNorm clips the global gradient norm; 0 means no clipping.
	ClipNorm float64 `yaml:"clip_norm"`
	// AccuracyReward names the reward whose mean is logged as accuracy;
	// "" means "answer_match".
	AccuracyReward string `yaml:"accuracy_reward"`
	// SampleEvery logs a few completions every that many steps; 0 never.
	SampleEvery int `yaml:"sample_every"`
}

// GRPOTrainer runs GRPO steps: rollouts, rewards, advantages, the loss
// over num_iterations passes, and AdamW updates.
type GRPOTrainer struct {
	Policy model.Model
	// Tok decodes completions for rewards and stop strings.
	Tok tokenizer.Tokenizer
	Opt *train.AdamW
	// Schedule gives the learning rate of each step; nil means the
	// optimizer's LR.
	Schedule train.Schedule
	Rewards  Rewards
	// Ref is the frozen reference, needed when beta is not 0.
	Ref Reference
	// Prompts is the data set, drawn in a seeded order per epoch.
	Prompts []Prompt
	// Processor, when set, intervenes in every rollout.
	Processor LogitProcessor
	// Condition, when set, rewrites each prompt drawn at a step before it
	// is sampled, as TLDRConfig.Conditioner does to add a length level.
	Condition func(step int, p Prompt) (Prompt, error)
	// Metrics receives one JSON line per step when not nil.
	Metrics io.Writer
	Config  GRPOTrainerConfig
}

// GRPOMetric is one step's metrics line.
type GRPOMetric struct {
	Step              int                `json:"step"`
	Loss              float64            `json:"loss"`
	LR                float64            `json:"lr"`
	GradNorm          float64            `json:"grad_norm"`
	Reward            float64            `json:"reward"`
	RewardStd         float64            `json:"reward_std"`
	Rewards           map[string]float64 `json:"rewards"`
	RewardStds        map[string]float64 `json:"reward_stds"`
	Accuracy          *float64           `json:"accuracy,omitempty"`
	FracRewardZeroStd float64            `json:"frac_reward_zero_std"`
	KL                float64            `json:"kl"`
	ClipRatioLow      float64            `json:"clip_ratio_low"`
	ClipRatioHigh     float64            `json:"clip_ratio_high"`
	ClipRatioRegion   float64            `json:"clip_ratio_region"`
	Entropy           float64            `json:"entropy"`
	LengthMean        float64            `json:"completion_length_mean"`
	LengthMin         int                `json:"completion_length_min"`
	LengthMax         int                `json:"completion_length_max"`
	TruncatedFrac     float64            `json:"truncated_frac"`
	Groups            int                `json:"groups"`
	ResampleRounds    int                `json:"resample_rounds"`
	Tokens            int                `json:"tokens"`
	TokensPerS        float64            `json:"tokens_per_s"`
	GenerationS       float64            `json:"generation_s"`
	StepS             float64            `json:"step_s"`
	Samples           []string           `json:"samples,omitempty"`
}

// group is one prompt's G scored completions.
type group struct {
	prompt Prompt
	roll   Rollout // G completions
	total  []float64
	each   map[string][]float64
}

// validate checks the trainer and returns its config with defaults.
func (t *GRPOTrainer) validate() (GRPOTrainerConfig, error) {
	c := t.Config
	g, err := c.GRPO.WithDefaults()
	if err != nil {
		return c, err
	}
	c.GRPO = g
	if c.PromptsPerStep == 0 {
		c.PromptsPerStep = 8
	}
	if c.AccuracyReward == "" {
		c.AccuracyReward = "answer_match"
	}
	switch {
	case t.Policy == nil || t.Opt == nil:
		return c, errors.New("rl: grpo trainer: needs a policy and an optimizer")
	case len(t.Prompts) == 0:
		return c, errors.New("rl: grpo trainer: no prompts")
	case len(t.Rewards) == 0:
		return c, errors.New("rl: grpo trainer: no rewards")
	case c.GRPO.Beta != 0 && t.Ref == nil:
		return c, errors.New("rl: grpo trainer: beta is not 0 but there is no reference")
	case c.PromptsPerStep < 1 || c.MicroBatch < 0:
		return c, fmt.Errorf("rl: grpo trainer: prompts_per_step %d and micro_batch %d", c.PromptsPerStep, c.MicroBatch)
	}
	return c, nil
}

// promptAt returns the prompt of draw i of step (1-based), from a seeded
// permutation per epoch, so that a resumed run draws the same prompts.
func (t *GRPOTrainer) promptAt(step, i, per int) Prompt {
	n := len(t.Prompts)
	k := (step-1)*per + i
	epoch, at := k/n, k%n
	return t.Prompts[permute(n, SampleKey(t.Config.Sampling.Seed, 0x9e37, uint64(epoch)))[at]]
}

// permute returns a seeded permutation of 0..n-1 (Fisher-Yates).
func permute(n int, key uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		key = splitmix64(key)
		j := int(key % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// rollGroups generates and scores G completions for each prompt.
func (t *GRPOTrainer) rollGroups(ctx context.Context, c GRPOTrainerConfig, step int, prompts []Prompt) ([]group, error) {
	if t.Condition != nil {
		conditioned := make([]Prompt, len(prompts))
		for i, p := range prompts {
			q, err := t.Condition(step, p)
			if err != nil {
				return nil, err
			}
			conditioned[i] = q
		}
		prompts = conditioned
	}
	ids := make([][]int32, len(prompts))
	pids := make([]uint64, len(prompts))
	for i, p := range prompts {
		ids[i], pids[i] = p.IDs, p.ID
	}
	G := c.GRPO.NumGenerations
	r, err := Generate(t.Policy, t.Tok, ids, pids, step, G, c.GRPO.MaxCompletionLength, c.Sampling, t.Processor)
	if err != nil {
		return nil, err
	}
	rb := RewardBatch{Completions: r.Texts, CompletionIDs: r.Completions, Columns: map[string][]string{}}
	for _, p := range prompts {
		for range G {
			rb.Prompts = append(rb.Prompts, p.Text)
			for k, v := range p.Columns {
				rb.Columns[k] = append(rb.Columns[k], v)
			}
		}
	}
	sc, err := t.Rewards.Score(ctx, rb)
	if err != nil {
		return nil, err
	}
	gs := make([]group, len(prompts))
	for i, p := range prompts {
		lo, hi := i*G, (i+1)*G
		g := group{prompt: p, total: sc.Total[lo:hi], each: map[string][]float64{},
			roll: Rollout{Prompts: r.Prompts[lo:hi], Completions: r.Completions[lo:hi], LogProbs: r.LogProbs[lo:hi],
				Texts: r.Texts[lo:hi], Truncated: r.Truncated[lo:hi]}}
		for k, v := range sc.Each {
			g.each[k] = v[lo:hi]
		}
		gs[i] = g
	}
	return gs, nil
}

// Step runs GRPO update number step (1-based; a resumed run passes the
// step it resumes at, since sampling is keyed by it) and returns its
// metrics, which it also writes to Metrics. It returns an error for an
// invalid trainer, a failing rollout, reward or forward pass, a
// non-finite loss or gradient norm, or a failed metrics write.
func (t *GRPOTrainer) Step(ctx context.Context, step int) (GRPOMetric, error) {
	c, err := t.validate()
	if err != nil {
		return GRPOMetric{}, err
	}
	start := time.Now()
	per := c.PromptsPerStep
	prompts := make([]Prompt, per)
	for i := range prompts {
		prompts[i] = t.promptAt(step, i, per)
	}
	gs, err := t.rollGroups(ctx, c, step, prompts)
	if err != nil {
		return GRPOMetric{}, fmt.Errorf("rl: grpo step %d: %w", step, err)
	}
	met := GRPOMetric{Step: step}
	zero := 0
	for _, g := range gs {
		if ZeroStdGroups(g.total, len(g.total))[0] {
			zero++
		}
	}
	met.FracRewardZeroStd = float64(zero) / float64(len(gs))
	all := gs
	if c.GRPO.DynamicSampling {
		var kept []group
		keep := func(gs []group) {
			for _, g := range gs {
				if !ZeroStdGroups(g.total, len(g.total))[0] && len(kept) < per {
					kept = append(kept, g)
				}
			}
		}
		keep(gs)
		for round := 1; len(kept) < per && round <= c.GRPO.MaxResampleRounds; round++ {
			more := make([]Prompt, per-len(kept))
			for i := range more {
				k := SampleKey(c.Sampling.Seed, uint64(step), uint64(round), uint64(i))
				more[i] = t.Prompts[k%uint64(len(t.Prompts))]
			}
			// Resample rounds use their own step coordinate so that their
			// draws differ from the first round's.
			extra, err := t.rollGroups(ctx, c, step+round<<32, more)
			if err != nil {
				return GRPOMetric{}, fmt.Errorf("rl: grpo step %d: resampling: %w", step, err)
			}
			all = append(all, extra...)
			keep(extra)
			met.ResampleRounds = round
		}
		gs = kept
	}
	t.logRewards(&met, c, all)
	met.GenerationS = time.Since(start).Seconds()
	if len(gs) == 0 {
		// Nothing to learn from: every group was uniform.
		met.StepS = time.Since(start).Seconds()
		return met, t.write(met)
	}
	met.Groups = len(gs)
	if err := t.update(c, step, gs, &met); err != nil {
		return GRPOMetric{}, fmt.Errorf("rl: grpo step %d: %w", step, err)
	}
	if c.SampleEvery > 0 && step%c.SampleEvery == 0 {
		for _, g := range gs[:min(2, len(gs))] {
			met.Samples = append(met.Samples, g.prompt.Text+" => "+g.roll.Texts[0])
		}
	}
	met.StepS = time.Since(start).Seconds()
	met.TokensPerS = float64(met.Tokens) / met.StepS
	return met, t.write(met)
}

// logRewards fills the reward statistics from every generated group.
func (t *GRPOTrainer) logRewards(met *GRPOMetric, c GRPOTrainerConfig, gs []group) {
	var total []float64
	each := map[string][]float64{}
	var lens []int
	trunc := 0
	for _, g := range gs {
		total = append(total, g.total...)
		for k, v := range g.each {
			each[k] = append(each[k], v...)
		}
		for i, comp := range g.roll.Completions {
			lens = append(lens, len(comp))
			if g.roll.Truncated[i] {
				trunc++
			}
		}
	}
	met.Reward, met.RewardStd = meanStd(total)
	met.Rewards, met.RewardStds = map[string]float64{}, map[string]float64{}
	for k, v := range each {
		met.Rewards[k], met.RewardStds[k] = meanStd(v)
	}
	if a, ok := met.Rewards[c.AccuracyReward]; ok {
		met.Accuracy = &a
	}
	met.LengthMin = math.MaxInt
	s := 0
	for _, l := range lens {
		s += l
		met.LengthMin = min(met.LengthMin, l)
		met.LengthMax = max(met.LengthMax, l)
	}
	met.LengthMean = float64(s) / float64(len(lens))
	met.TruncatedFrac = float64(trunc) / float64(len(lens))
}

// meanStd returns the mean and the population std of xs.
func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	v := 0.0
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)))
}

// micro is one micro-batch of completions with its fixed inputs.
type micro struct {
	prompts, comps [][]int32
	old, ref       *tensor.Tensor
	mask           []float32
	adv            []float64
}

// update computes advantages and runs num_iterations optimizer passes
// over the groups.
func (t *GRPOTrainer) update(c GRPOTrainerConfig, step int, gs []group, met *GRPOMetric) error {
	G := c.GRPO.NumGenerations
	var rewards []float64
	var prompts, comps [][]int32
	var logps [][]float32
	var trunc []bool
	for _, g := range gs {
		rewards = append(rewards, g.total...)
		prompts = append(prompts, g.roll.Prompts...)
		comps = append(comps, g.roll.Completions...)
		logps = append(logps, g.roll.LogProbs...)
		trunc = append(trunc, g.roll.Truncated...)
	}
	adv, err := GroupAdvantages(rewards, G, c.GRPO.ScaleRewards, c.GRPO.StdEpsilon)
	if err != nil {
		return err
	}
	n := len(comps)
	mb := c.MicroBatch
	if mb == 0 || mb > n {
		mb = n
	}
	be := t.Policy.Params()[0].Tensor.Backend()
	dt := t.Policy.Params()[0].Tensor.DType()
	lpTemp := 1.0
	if c.GRPO.TemperatureScaledLogProbs && c.Sampling.Temperature != 0 {
		lpTemp = c.Sampling.Temperature
	}
	var mbs []micro
	total := 0
	for lo := 0; lo < n; lo += mb {
		hi := min(lo+mb, n)
		T := 1
		lens := make([]int, hi-lo)
		for i := lo; i < hi; i++ {
			T = max(T, len(comps[i]))
			lens[i-lo] = len(comps[i])
		}
		mask, err := CompletionMask(lens, trunc[lo:hi], T, c.GRPO.MaskTruncatedCompletions)
		if err != nil {
			return err
		}
		for _, v := range mask {
			total += int(v)
		}
		m := micro{prompts: prompts[lo:hi], comps: comps[lo:hi], mask: mask, adv: adv[lo:hi]}
		if c.GRPO.NumIterations > 1 && lpTemp == 1 {
			old := make([]float32, (hi-lo)*T)
			for i := lo; i < hi; i++ {
				copy(old[(i-lo)*T:], logps[i])
			}
			m.old = tensor.From(be, dt, old, hi-lo, T)
		} else if c.GRPO.NumIterations > 1 {
			// The rollout recorded raw log-probs; tempered ones need a pass.
			var lp LogProbs
			tensor.NoGrad(func() {
				lp, err = CompletionLogProbs(t.Policy, m.prompts, m.comps, LogProbOptions{Temperature: lpTemp})
			})
			if err != nil {
				return err
			}
			m.old = lp.Values
		}
		if c.GRPO.Beta != 0 {
			if m.ref, err = t.Ref.RefLogProbs(m.prompts, m.comps, lpTemp); err != nil {
				return fmt.Errorf("reference: %w", err)
			}
		}
		mbs = append(mbs, m)
	}
	met.Tokens = total
	lr := t.Opt.Config.LR
	if t.Schedule != nil {
		lr = t.Schedule.LR(step)
	}
	met.LR = lr
	var entSum float64
	for it := range c.GRPO.NumIterations {
		var loss float64
		var st GRPOStats
		for _, m := range mbs {
			lp, err := CompletionLogProbs(t.Policy, m.prompts, m.comps, LogProbOptions{Temperature: lpTemp, Entropy: it == 0})
			if err != nil {
				return err
			}
			l, s, err := GRPOLoss(c.GRPO, GRPOInput{LogProbs: lp.Values, OldLogProbs: m.old, RefLogProbs: m.ref,
				Mask: m.mask, Advantages: m.adv, GlobalTokens: float64(total), AccumSteps: len(mbs)})
			if err != nil {
				return err
			}
			if err := tensor.Catch(func() { l.Backward() }); err != nil {
				return err
			}
			loss += l.Item()
			// Token-weighted sums, turned into means below.
			st.ClipLow += s.ClipLow * float64(s.Tokens)
			st.ClipHigh += s.ClipHigh * float64(s.Tokens)
			st.KL += s.KL * float64(s.Tokens)
			for i, e := range lp.Entropy {
				entSum += e * float64(m.mask[i])
			}
		}
		norm := train.GradNorm(t.Opt.Params())
		if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
			for _, p := range t.Opt.Params() {
				p.ZeroGrad()
			}
			return fmt.Errorf("loss %v, gradient norm %v; stopped before the update", loss, norm)
		}
		if err := t.Opt.Step(lr, train.ClipScale(norm, c.ClipNorm)); err != nil {
			return err
		}
		if it == 0 {
			met.Loss, met.GradNorm = loss, norm
			if total > 0 {
				tt := float64(total)
				met.ClipRatioLow, met.ClipRatioHigh = st.ClipLow/tt, st.ClipHigh/tt
				met.ClipRatioRegion = met.ClipRatioLow + met.ClipRatioHigh
				met.KL, met.Entropy = st.KL/tt, entSum/tt
			}
		}
	}
	return nil
}

// write sends met to Metrics as one JSON line.
func (t *GRPOTrainer) write(met GRPOMetric) error {
	if t.Metrics == nil {
		return nil
	}
	b, err := json.Marshal(met)
	if err != nil {
		return fmt.Errorf("rl: metrics: %w", err)
	}
	if _, err := t.Metrics.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("rl: writing metrics: %w", err)
	}
	return nil
}
