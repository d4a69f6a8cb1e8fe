package rl

import (
	"context"
	"errors"
	"fmt"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
)

// EvalResult is what Evaluate measures over held-out prompts.
type EvalResult struct {
	// Reward is the mean total reward; Each the mean of each reward.
	Reward float64            `json:"reward"`
	Each   map[string]float64 `json:"rewards"`
	// Length is the mean completion length in tokens, the stop token
	// included.
	Length float64 `json:"completion_length_mean"`
	// Truncated is the fraction of completions that hit the length limit.
	Truncated float64 `json:"truncated_frac"`
}

// Evaluate decodes one greedy completion per prompt (temperature 0 through
// model.Generate, or sampled through proc when one is given, which the
// decoder needs) and scores them with rewards. Held-out accuracy is the
// mean of an answer_match reward. It returns an error when there are no
// prompts, generation fails or a reward does.
func Evaluate(ctx context.Context, m model.Model, tok tokenizer.Tokenizer, prompts []Prompt, rewards Rewards, maxNew int, cfg SamplingConfig, proc LogitProcessor) (EvalResult, error) {
	if len(prompts) == 0 {
		return EvalResult{}, errors.New("rl: evaluate: no prompts")
	}
	ids := make([][]int32, len(prompts))
	pids := make([]uint64, len(prompts))
	for i, p := range prompts {
		ids[i], pids[i] = p.IDs, p.ID
	}
	var r Rollout
	if proc == nil {
		out, err := model.Generate(m, tok, ids, model.GenerateConfig{MaxNewTokens: maxNew, StopTokens: cfg.StopTokens, StopStrings: cfg.StopStrings})
		if err != nil {
			return EvalResult{}, fmt.Errorf("rl: evaluate: %w", err)
		}
		for _, c := range out {
			r.Completions = append(r.Completions, c.Tokens)
			r.Texts = append(r.Texts, c.Text)
			r.Truncated = append(r.Truncated, c.FinishReason == model.FinishLength)
		}
	} else {
		var err error
		if r, err = Generate(m, tok, ids, pids, 0, 1, maxNew, cfg, proc); err != nil {
			return EvalResult{}, fmt.Errorf("rl: evaluate: %w", err)
		}
	}
	rb := RewardBatch{Completions: r.Texts, CompletionIDs: r.Completions, Columns: map[string][]string{}}
	for _, p := range prompts {
		rb.Prompts = append(rb.Prompts, p.Text)
		for k, v := range p.Columns {
			rb.Columns[k] = append(rb.Columns[k], v)
		}
	}
	sc, err := rewards.Score(ctx, rb)
	if err != nil {
		return EvalResult{}, fmt.Errorf("rl: evaluate: %w", err)
	}
	res := EvalResult{Each: map[string]float64{}}
	n := float64(len(prompts))
	res.Reward, _ = meanStd(sc.Total)
	for k, v := range sc.Each {
		res.Each[k], _ = meanStd(v)
	}
	for i, c := range r.Completions {
		res.Length += float64(len(c)) / n
		if r.Truncated[i] {
			res.Truncated += 1 / n
		}
	}
	return res, nil
}
