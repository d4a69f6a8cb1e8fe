package rl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// TLDR (METHODS §2) trains one model to think at several lengths: the
// prompt names a level, each level has a token budget, and the reward
// trades correctness against length relative to that budget. The paper's
// method section could not be checked, so the level tag, the reward's form
// and its weights are ours and all configurable.

// The TLDR reward forms.
const (
	// TLDRPenalty is R = correct - lambda·min(1, L/B).
	TLDRPenalty = "penalty"
	// TLDRGate is R = correct·1[L <= B].
	TLDRGate = "gate"
	// TLDRTarget is R = correct·(1 - lambda·min(1, |L-B|/B)): B is the
	// level's target length rather than a ceiling, so a long level is
	// held long as a short one is held short (under the penalty form a
	// level with a small lambda has no reason to differ, and a small
	// model shortens every level alike). Only right answers earn the
	// length term: group normalisation would otherwise turn the small
	// length differences of an all-wrong group into full-sized
	// advantages, and the policy collapses to empty answers.
	TLDRTarget = "target"
)

// TLDRLevel is one length level.
type TLDRLevel struct {
	// Name is what the prompt says, e.g. "short".
	Name string `yaml:"name"`
	// Budget is B, the level's completion length in tokens.
	Budget int `yaml:"budget"`
	// Lambda weighs the length term of the penalty and target forms.
	Lambda float64 `yaml:"lambda"`
}

// TLDRConfig configures TLDR's level conditioning and reward.
type TLDRConfig struct {
	// Levels are the length levels, shortest budget first, sampled
	// uniformly per prompt.
	Levels []TLDRLevel `yaml:"levels"`
	// Form is "penalty" (the default), "gate" or "target".
	Form string `yaml:"form"`
	// PromptTemplate conditions a prompt on its level: "{level}" becomes
	// the level's name and "{prompt}" the prompt. "" means
	// "Think {level}.\n{prompt}".
	PromptTemplate string `yaml:"prompt_template"`
	// LevelColumn is the dataset column that carries each completion's
	// level to the reward; "" means "level".
	LevelColumn string `yaml:"level_column"`
}

// WithDefaults returns c with its zero fields set to their defaults. It
// returns an error when there are no levels, a level is unnamed, named
// twice or has no positive budget, lambda is negative, or the form or
// template is unknown.
func (c TLDRConfig) WithDefaults() (TLDRConfig, error) {
	if c.Form == "" {
		c.Form = TLDRPenalty
	}
	if c.PromptTemplate == "" {
		c.PromptTemplate = "Think {level}.\n{prompt}"
	}
	if c.LevelColumn == "" {
		c.LevelColumn = "level"
	}
	if len(c.Levels) == 0 {
		return c, errors.New("rl: tldr: no levels")
	}
	if c.Form != TLDRPenalty && c.Form != TLDRGate && c.Form != TLDRTarget {
		return c, fmt.Errorf("rl: tldr: unknown form %q (want penalty, gate or target)", c.Form)
	}
	if !strings.Contains(c.PromptTemplate, "{prompt}") || !strings.Contains(c.PromptTemplate, "{level}") {
		return c, fmt.Errorf("rl: tldr: prompt_template %q must contain {level} and {prompt}", c.PromptTemplate)
	}
	seen := map[string]bool{}
	for _, l := range c.Levels {
		switch {
		case l.Name == "":
			return c, errors.New("rl: tldr: a level has no name")
		case seen[l.Name]:
			return c, fmt.Errorf("rl: tldr: level %q appears twice", l.Name)
		case l.Budget <= 0:
			return c, fmt.Errorf("rl: tldr: level %q: budget %d must be positive", l.Name, l.Budget)
		case !(l.Lambda >= 0) || math.IsInf(l.Lambda, 0):
			return c, fmt.Errorf("rl: tldr: level %q: lambda %v must be finite and not negative", l.Name, l.Lambda)
		}
		seen[l.Name] = true
	}
	return c, nil
}

// Level returns the level named name and whether there is one.
func (c TLDRConfig) Level(name string) (TLDRLevel, bool) {
	for _, l := range c.Levels {
		if l.Name == name {
			return l, true
		}
	}
	return TLDRLevel{}, false
}

// SampleLevel picks a level uniformly from a random stream key (see
// SampleKey), so that a resumed run picks the same level for the same
// prompt and step. c must have levels (WithDefaults checks that).
func (c TLDRConfig) SampleLevel(key uint64) TLDRLevel {
	return c.Levels[splitmix64(key)%uint64(len(c.Levels))]
}

// Condition returns prompt with the level written into it by the template.
func (c TLDRConfig) Condition(prompt string, level TLDRLevel) string {
	return strings.NewReplacer("{level}", level.Name, "{prompt}", prompt).Replace(c.PromptTemplate)
}

// Conditioner returns a function for GRPOTrainer.Condition that samples
// a level for each prompt and step (from seed, the step and the prompt's
// ID, so a resumed run repeats it), writes it into the prompt's text,
// re-encodes the text with encode, and records the level in the prompt's
// LevelColumn for TLDRReward. All G completions of a prompt share its
// level, so group normalisation compares like with like. It returns an
// error from WithDefaults, or when encode is nil.
func (c TLDRConfig) Conditioner(seed uint64, encode func(text string) []int32) (func(step int, p Prompt) (Prompt, error), error) {
	c, err := c.WithDefaults()
	if err != nil {
		return nil, err
	}
	if encode == nil {
		return nil, errors.New("rl: tldr: no encoder for conditioned prompts")
	}
	return func(step int, p Prompt) (Prompt, error) {
		lv := c.SampleLevel(SampleKey(seed, 0x71d7, uint64(step), p.ID))
		out := p
		out.Text = c.Condition(p.Text, lv)
		out.IDs = encode(out.Text)
		if len(out.IDs) == 0 {
			return Prompt{}, fmt.Errorf("rl: tldr: prompt %d encodes to no tokens", p.ID)
		}
		out.Columns = make(map[string]string, len(p.Columns)+1)
		for k, v := range p.Columns {
			out.Columns[k] = v
		}
		out.Columns[c.LevelColumn] = lv.Name
		return out, nil
	}, nil
}

// TLDRReward is TLDR's length-regularised reward. With a correctness
// reward it is the whole TLDR reward in any form; without one it is the
// penalty form's length term -lambda·min(1, L/B) alone, to be summed with
// a correctness reward in Rewards.
type TLDRReward struct {
	cfg     TLDRConfig
	correct Reward
}

// NewTLDRReward returns the reward for cfg (after WithDefaults) with an
// optional correctness reward. It returns WithDefaults' errors, or an
// error for the gate form without a correctness reward.
func NewTLDRReward(cfg TLDRConfig, correct Reward) (*TLDRReward, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if (c.Form == TLDRGate || c.Form == TLDRTarget) && correct == nil {
		return nil, fmt.Errorf("rl: tldr: the %s form needs a correctness reward", c.Form)
	}
	return &TLDRReward{cfg: c, correct: correct}, nil
}

// Name returns "tldr", or "tldr_length" for the length term alone.
func (r *TLDRReward) Name() string {
	if r.correct == nil {
		return "tldr_length"
	}
	return "tldr"
}

// Score returns each completion's TLDR reward, measuring length in
// completion tokens. It returns an error when the batch has no ids or no
// level column, a level is unknown, or the correctness reward fails.
func (r *TLDRReward) Score(ctx context.Context, b RewardBatch) ([]float64, error) {
	if b.CompletionIDs == nil {
		return nil, errors.New("the batch has no completion ids to measure")
	}
	levels, err := b.column(r.Name(), r.cfg.LevelColumn)
	if err != nil {
		return nil, err
	}
	correct := make([]float64, b.Len())
	if r.correct != nil {
		if correct, err = r.correct.Score(ctx, b); err != nil {
			return nil, fmt.Errorf("%s: %w", r.correct.Name(), err)
		}
		if err := checkScores(r.correct.Name(), correct, b.Len()); err != nil {
			return nil, err
		}
	}
	out := make([]float64, b.Len())
	for i, name := range levels {
		lv, ok := r.cfg.Level(name)
		if !ok {
			return nil, fmt.Errorf("completion %d has unknown level %q", i, name)
		}
		L := float64(len(b.CompletionIDs[i]))
		switch r.cfg.Form {
		case TLDRPenalty:
			out[i] = correct[i] - lv.Lambda*math.Min(1, L/float64(lv.Budget))
		case TLDRGate:
			if L <= float64(lv.Budget) {
				out[i] = correct[i]
			}
		case TLDRTarget:
			out[i] = correct[i] * (1 - lv.Lambda*math.Min(1, math.Abs(L-float64(lv.Budget))/float64(lv.Budget)))
		}
	}
	return out, nil
}

// thinking reports whether a completion that has generated the given
// tokens is in its thinking phase, and how many thinking tokens it has
// produced. Thinking starts after startID, or at the completion's start
// when startID is negative (a prompt that ends with the opening tag), and
// ends at the first endID after it.
func thinking(generated []int32, startID, endID int32) (n int, active bool) {
	i := 0
	if startID >= 0 {
		for i < len(generated) && generated[i] != startID {
			i++
		}
		if i == len(generated) {
			return 0, false
		}
		i++
	}
	for j := i; j < len(generated); j++ {
		if generated[j] == endID {
			return j - i, false
		}
	}
	return len(generated) - i, true
}

// ThinkingTemperature is TLDR's temperature scaling as a logit processor
// (METHODS §2, our form): during the thinking phase, the end-of-thinking
// token's log-probability ℓ_eot becomes ℓ_eot / Temperature and the
// distribution is renormalised, so Temperature > 1 ends thinking earlier
// and < 1 later. Working on log-probabilities keeps the result independent
// of logit offsets. After the end-of-thinking token it does nothing.
type ThinkingTemperature struct {
	// StartID opens the thinking phase; negative means the completion
	// starts inside it.
	StartID int32 `yaml:"start_id"`
	// EndID closes it (</think>).
	EndID int32 `yaml:"end_id"`
	// Temperature is T_ts; it must be positive.
	Temperature float64 `yaml:"temperature"`
}

// Process scales the end-of-thinking token in logits while the completion
// is thinking. It panics when EndID is outside logits or Temperature is
// not positive, which are programmer errors.
func (p ThinkingTemperature) Process(_ int, generated []int32, logits []float32) {
	if !(p.Temperature > 0) || int(p.EndID) >= len(logits) || p.EndID < 0 {
		panic(fmt.Sprintf("rl: thinking temperature %v with end id %d for %d logits", p.Temperature, p.EndID, len(logits)))
	}
	if _, active := thinking(generated, p.StartID, p.EndID); !active {
		return
	}
	lse := logSumExp(logits)
	if math.IsInf(lse, 0) || math.IsNaN(lse) {
		return // the sampler reports logits that define no distribution
	}
	lEOT := float64(logits[p.EndID]) - lse
	// Setting the logit to lse + ℓ'/T makes its log-prob ℓ'/T relative to
	// the others before renormalisation, which the sampler's softmax does.
	logits[p.EndID] = float32(lse + lEOT/p.Temperature)
}

// logSumExp returns log(sum(exp(x))), computed stably.
func logSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	if math.IsInf(mx, 0) {
		return mx
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

// BudgetForcing is s1's budget forcing, the baseline temperature scaling
// is compared with (METHODS §2): at MaxThinking thinking tokens it forces
// the end-of-thinking token (or the Close sequence that ends with it);
// before MinThinking it suppresses it, and when the end-of-thinking token
// is the most likely next token it forces Wait instead, one token at a
// time, to extend the thinking. It keeps per-row state, so use one value
// per generation call and not concurrently.
type BudgetForcing struct {
	// StartID opens the thinking phase (negative: the completion starts
	// in it) and EndID closes it.
	StartID int32 `yaml:"start_id"`
	EndID   int32 `yaml:"end_id"`
	// MaxThinking forces the end of thinking; 0 means no cap.
	MaxThinking int `yaml:"max_thinking"`
	// Close is the token sequence forced at MaxThinking, up to and
	// including its first EndID (EndID is added when it has none); nil
	// means EndID alone. A newline before the end token keeps a model
	// whose end marker starts a line from meeting it mid-line. Tokens the
	// completion already ends with are not repeated.
	Close []int32 `yaml:"close"`
	// MinThinking suppresses the end of thinking before it; 0 means none.
	MinThinking int `yaml:"min_thinking"`
	// Wait is the token sequence appended instead of an early end (e.g.
	// the ids of "Wait"); nil only suppresses the end.
	Wait []int32 `yaml:"wait"`

	pending map[int][]int32
}

// Process forces or suppresses tokens in logits as described on
// BudgetForcing. It panics when a forced id is outside logits, a
// programmer error.
func (p *BudgetForcing) Process(row int, generated []int32, logits []float32) {
	n, active := thinking(generated, p.StartID, p.EndID)
	if !active {
		return
	}
	if p.pending == nil {
		p.pending = map[int][]int32{}
	}
	if q := p.pending[row]; len(q) > 0 {
		p.pending[row] = q[1:]
		force(logits, q[0])
		return
	}
	switch {
	case p.MaxThinking > 0 && n >= p.MaxThinking:
		seq := p.closing(generated)
		p.pending[row] = seq[1:]
		force(logits, seq[0])
	case n < p.MinThinking:
		if len(p.Wait) > 0 && argmax(logits) == int(p.EndID) {
			p.pending[row] = p.Wait[1:]
			force(logits, p.Wait[0])
			return
		}
		logits[p.EndID] = float32(math.Inf(-1))
	}
}

// closing returns what is left to force of Close after generated.
func (p *BudgetForcing) closing(generated []int32) []int32 {
	seq := p.Close
	if i := slices.Index(seq, p.EndID); i >= 0 {
		seq = seq[:i+1]
	} else {
		seq = append(slices.Clip(seq), p.EndID)
	}
	// The longest proper prefix of seq that generated ends with is
	// already written.
	for k := len(seq) - 1; k > 0; k-- {
		if len(generated) >= k && slices.Equal(generated[len(generated)-k:], seq[:k]) {
			return seq[k:]
		}
	}
	return seq
}

// force makes id the only possible next token.
func force(logits []float32, id int32) {
	if id < 0 || int(id) >= len(logits) {
		panic(fmt.Sprintf("rl: forcing token %d with %d logits", id, len(logits)))
	}
	for i := range logits {
		logits[i] = float32(math.Inf(-1))
	}
	logits[id] = 0
}

// argmax returns the index of the largest value, the first on ties.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
