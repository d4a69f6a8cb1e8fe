package rl

import (
	"fmt"
	"math"
)

// The reward kinds of RewardConfig.
const (
	RewardAnswerMatch  = "answer_match"
	RewardFormat       = "format"
	RewardSoftOverlong = "soft_overlong"
	RewardTLDR         = "tldr"
	RewardTLDRLength   = "tldr_length"
	RewardExternal     = "external"
)

// RewardConfig describes one weighted reward of a recipe; only the
// section of its kind is read.
type RewardConfig struct {
	// Kind is answer_match, format, soft_overlong, tldr (correctness by
	// answer_match and length together), tldr_length (the length term
	// alone) or external.
	Kind string `yaml:"kind"`
	// Weight multiplies the reward in the sum; nil means 1.
	Weight      *float64          `yaml:"weight"`
	AnswerMatch AnswerMatchConfig `yaml:"answer_match"`
	Format      FormatConfig      `yaml:"format"`
	Overlong    OverlongConfig    `yaml:"soft_overlong"`
	External    ExternalConfig    `yaml:"external"`
}

// BuildRewards turns reward configs into Rewards. tldr holds the levels
// the tldr kinds need and may be nil otherwise. It returns an error naming
// the reward's index for an unknown kind, a non-finite weight, a tldr kind
// without a TLDR config, or an invalid section.
func BuildRewards(cfgs []RewardConfig, tldr *TLDRConfig) (Rewards, error) {
	if len(cfgs) == 0 {
		return nil, fmt.Errorf("rl: no rewards configured")
	}
	var rs Rewards
	for i, c := range cfgs {
		w := 1.0
		if c.Weight != nil {
			w = *c.Weight
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("rl: rewards[%d]: weight %v is not finite", i, w)
		}
		var r Reward
		var err error
		switch c.Kind {
		case RewardAnswerMatch:
			r, err = NewAnswerMatch(c.AnswerMatch)
		case RewardFormat:
			r, err = NewFormat(c.Format)
		case RewardSoftOverlong:
			r, err = NewSoftOverlong(c.Overlong)
		case RewardTLDR, RewardTLDRLength:
			if tldr == nil {
				return nil, fmt.Errorf("rl: rewards[%d]: kind %s needs the tldr levels", i, c.Kind)
			}
			var correct Reward
			if c.Kind == RewardTLDR {
				if correct, err = NewAnswerMatch(c.AnswerMatch); err != nil {
					break
				}
			}
			r, err = NewTLDRReward(*tldr, correct)
		case RewardExternal:
			r, err = NewExternal(c.External)
		default:
			return nil, fmt.Errorf("rl: rewards[%d]: unknown kind %q (want answer_match, format, soft_overlong, tldr, tldr_length or external)", i, c.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("rl: rewards[%d] (%s): %w", i, c.Kind, err)
		}
		rs = append(rs, WeightedReward{Reward: r, Weight: w})
	}
	return rs, nil
}

// Defaultable is a list whose nil value asks for a default and whose
// empty value means none. With omitempty in its YAML tag, nil is left out
// of a written recipe and an empty list stays [], so a run's resolved
// recipe.yaml reads back the same: a plain slice is written as [] either
// way, and a resumed run read its default as none (its completions then
// never stopped).
type Defaultable[T any] []T

// IsZero reports whether l is nil, for YAML's omitempty.
func (l Defaultable[T]) IsZero() bool { return l == nil }
