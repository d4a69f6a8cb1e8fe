package rl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/minnowml/minnow/data"
)

// RewardBatch is what a reward scores: n completions, each with the prompt
// it continues and the dataset row it came from. Every slice and every
// column holds exactly n entries, so a prompt sampled G times appears G
// times.
type RewardBatch struct {
	Prompts       []string
	Completions   []string
	CompletionIDs [][]int32
	// Columns are the dataset's other fields ("answer", "level", ...),
	// one value per completion.
	Columns map[string][]string
}

// Len returns the number of completions in b.
func (b RewardBatch) Len() int { return len(b.Completions) }

// Validate returns an error when the prompts, ids or a column do not hold
// one entry per completion.
func (b RewardBatch) Validate() error {
	n := len(b.Completions)
	if len(b.Prompts) != n {
		return fmt.Errorf("rl: reward batch has %d prompts for %d completions", len(b.Prompts), n)
	}
	if b.CompletionIDs != nil && len(b.CompletionIDs) != n {
		return fmt.Errorf("rl: reward batch has %d id lists for %d completions", len(b.CompletionIDs), n)
	}
	for k, col := range b.Columns {
		if len(col) != n {
			return fmt.Errorf("rl: reward batch column %q has %d values for %d completions", k, len(col), n)
		}
	}
	return nil
}

// column returns the named column of b, or an error naming the reward that
// wanted it.
func (b RewardBatch) column(reward, name string) ([]string, error) {
	col, ok := b.Columns[name]
	if !ok {
		return nil, fmt.Errorf("rl: reward %s: the dataset has no column %q", reward, name)
	}
	return col, nil
}

// Reward scores completions. Score returns one finite float per completion
// of b, or an error.
type Reward interface {
	// Name identifies the reward in logs and error messages.
	Name() string
	// Score returns one reward per completion of b, in order, or an error.
	Score(ctx context.Context, b RewardBatch) ([]float64, error)
}

// WeightedReward is one term of a Rewards sum.
type WeightedReward struct {
	Reward Reward
	Weight float64
}

// Rewards is a weighted sum of rewards, each of which is also logged on its
// own.
type Rewards []WeightedReward

// Scores are the rewards of a batch: the weighted total and each term
// before weighting, keyed by the term's name.
type Scores struct {
	Total []float64
	Each  map[string][]float64
	// Names lists the terms in the order of the Rewards they came from, so
	// that logs stay in a stable order.
	Names []string
}

// Score scores b with every reward and sums them with their weights. It
// returns an error when b is inconsistent, two rewards share a name, a
// reward fails, or a reward returns the wrong number of values, a NaN or an
// infinity; the error names the reward and, for a bad value, the
// completion.
func (rs Rewards) Score(ctx context.Context, b RewardBatch) (Scores, error) {
	if err := b.Validate(); err != nil {
		return Scores{}, err
	}
	if len(rs) == 0 {
		return Scores{}, errors.New("rl: no rewards to score with")
	}
	n := b.Len()
	s := Scores{Total: make([]float64, n), Each: map[string][]float64{}}
	for _, wr := range rs {
		if wr.Reward == nil {
			return Scores{}, errors.New("rl: nil reward")
		}
		name := wr.Reward.Name()
		if _, dup := s.Each[name]; dup {
			return Scores{}, fmt.Errorf("rl: two rewards are named %q; logs would mix them", name)
		}
		if math.IsNaN(wr.Weight) || math.IsInf(wr.Weight, 0) {
			return Scores{}, fmt.Errorf("rl: reward %s: weight %v is not finite", name, wr.Weight)
		}
		vals, err := wr.Reward.Score(ctx, b)
		if err != nil {
			return Scores{}, fmt.Errorf("rl: reward %s: %w", name, err)
		}
		if err := checkScores(name, vals, n); err != nil {
			return Scores{}, err
		}
		s.Each[name] = vals
		s.Names = append(s.Names, name)
		for i, v := range vals {
			s.Total[i] += wr.Weight * v
		}
	}
	return s, nil
}

// checkScores rejects a reward's output unless it is n finite values: a
// silent broadcast or a NaN would corrupt every advantage of its group.
func checkScores(name string, vals []float64, n int) error {
	if len(vals) != n {
		return fmt.Errorf("rl: reward %s returned %d values for %d completions", name, len(vals), n)
	}
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("rl: reward %s returned %v for completion %d", name, v, i)
		}
	}
	return nil
}

// AnswerMatchConfig configures AnswerMatch.
type AnswerMatchConfig struct {
	// Column holds the reference answers; "" means "answer". A reference
	// in GSM8K form ("... #### 18") is reduced to its final answer.
	Column string `yaml:"column"`
	// Extract lists, in order, the ways to find a completion's answer:
	// "gsm8k" (after the last "####"), "boxed" (the last \boxed{...}) and
	// "last_number"; the first that finds one wins. nil means all three in
	// that order.
	Extract Defaultable[string] `yaml:"extract,omitempty"`
	// Tolerance is the absolute difference under which two numeric answers
	// are equal; 0 means exact equality of the parsed numbers.
	Tolerance float64 `yaml:"tolerance"`
}

// AnswerMatch rewards 1 when a completion's extracted answer equals the
// reference and 0 otherwise, including when no answer can be found.
type AnswerMatch struct {
	cfg AnswerMatchConfig
}

// The answer extractors of AnswerMatchConfig.Extract.
const (
	ExtractGSM8K      = "gsm8k"
	ExtractBoxed      = "boxed"
	ExtractLastNumber = "last_number"
)

// NewAnswerMatch returns an AnswerMatch reward. It returns an error for an
// unknown extractor, an empty (not nil) list of them, which could find no
// answer, or a negative or non-finite tolerance.
func NewAnswerMatch(cfg AnswerMatchConfig) (*AnswerMatch, error) {
	if cfg.Column == "" {
		cfg.Column = "answer"
	}
	switch {
	case cfg.Extract == nil:
		cfg.Extract = []string{ExtractGSM8K, ExtractBoxed, ExtractLastNumber}
	case len(cfg.Extract) == 0:
		return nil, errors.New("rl: answer_match: extract is an empty list; leave it out for all three extractors")
	}
	for _, e := range cfg.Extract {
		switch e {
		case ExtractGSM8K, ExtractBoxed, ExtractLastNumber:
		default:
			return nil, fmt.Errorf("rl: answer_match: unknown extractor %q (want gsm8k, boxed or last_number)", e)
		}
	}
	if cfg.Tolerance < 0 || math.IsNaN(cfg.Tolerance) || math.IsInf(cfg.Tolerance, 0) {
		return nil, fmt.Errorf("rl: answer_match: tolerance %v must be finite and not negative", cfg.Tolerance)
	}
	return &AnswerMatch{cfg: cfg}, nil
}

// Name returns "answer_match".
func (a *AnswerMatch) Name() string { return "answer_match" }

// Score returns 1 or 0 per completion; it returns an error when the
// reference column is missing.
func (a *AnswerMatch) Score(_ context.Context, b RewardBatch) ([]float64, error) {
	refs, err := b.column(a.Name(), a.cfg.Column)
	if err != nil {
		return nil, err
	}
	out := make([]float64, b.Len())
	for i, c := range b.Completions {
		ref := refs[i]
		if r, ok := data.ExtractAnswer(ref); ok {
			ref = r
		}
		got, ok := ExtractAnswer(c, a.cfg.Extract)
		if ok && AnswersEqual(got, ref, a.cfg.Tolerance) {
			out[i] = 1
		}
	}
	return out, nil
}

var (
	numberRE = regexp.MustCompile(`-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+`)
	boxedRE  = regexp.MustCompile(`\\boxed\{`)
)

// ExtractAnswer finds the answer in text with the extractors in order (see
// AnswerMatchConfig.Extract) and reports whether one found it. Unknown
// extractor names find nothing.
func ExtractAnswer(text string, extractors []string) (string, bool) {
	for _, e := range extractors {
		switch e {
		case ExtractGSM8K:
			if a, ok := data.ExtractAnswer(text); ok {
				// "#### 18 dollars": the number, not the words after it.
				if _, err := strconv.ParseFloat(cleanNumber(a), 64); err != nil {
					if m := numberRE.FindString(a); m != "" {
						a = m
					}
				}
				return a, true
			}
		case ExtractBoxed:
			if a, ok := lastBoxed(text); ok {
				return a, true
			}
		case ExtractLastNumber:
			if locs := numberRE.FindAllStringIndex(text, -1); len(locs) > 0 {
				lo, hi := locs[len(locs)-1][0], locs[len(locs)-1][1]
				// In "5-3" the '-' is an operator, not a sign.
				if text[lo] == '-' && lo > 0 && isWordByte(text[lo-1]) {
					lo++
				}
				return cleanNumber(text[lo:hi]), true
			}
		}
	}
	return "", false
}

// isWordByte reports whether c is an ASCII letter, digit or closing
// bracket, after which a '-' is a binary minus.
func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == ')' || c == ']'
}

// lastBoxed returns the contents of the last \boxed{...}, matching braces
// so that \boxed{\frac{1}{2}} keeps its inner braces.
func lastBoxed(text string) (string, bool) {
	locs := boxedRE.FindAllStringIndex(text, -1)
	for k := len(locs) - 1; k >= 0; k-- {
		start := locs[k][1]
		depth := 1
		for j := start; j < len(text); j++ {
			switch text[j] {
			case '{':
				depth++
			case '}':
				depth--
			}
			if depth == 0 {
				a := data.NormalizeAnswer(text[start:j])
				return a, a != ""
			}
		}
	}
	return "", false
}

// cleanNumber strips what a written number may carry but its value does
// not: thousands separators, a currency sign and a sentence's final dot.
func cleanNumber(s string) string {
	s = strings.ReplaceAll(data.NormalizeAnswer(s), "$", "")
	return strings.TrimSuffix(s, ".")
}

// AnswersEqual reports whether two answers agree: numerically within tol
// when both parse as numbers (after removing commas, "$" and a final dot),
// and as normalised strings otherwise.
func AnswersEqual(got, want string, tol float64) bool {
	g, errG := strconv.ParseFloat(cleanNumber(got), 64)
	w, errW := strconv.ParseFloat(cleanNumber(want), 64)
	if errG == nil && errW == nil {
		return math.Abs(g-w) <= tol
	}
	return data.NormalizeAnswer(got) == data.NormalizeAnswer(want)
}

// FormatConfig configures Format.
type FormatConfig struct {
	// Pattern is a Go regular expression (RE2 syntax).
	Pattern string `yaml:"pattern"`
	// FullMatch requires the pattern to match the whole completion rather
	// than some part of it.
	FullMatch bool `yaml:"full_match"`
	// Name replaces "format" in logs, so that several format rewards can
	// be told apart.
	Name string `yaml:"name"`
}

// Format rewards 1 when a completion matches a regular expression and 0
// otherwise.
type Format struct {
	re   *regexp.Regexp
	name string
}

// NewFormat returns a Format reward. It returns an error when the pattern
// is empty or does not compile.
func NewFormat(cfg FormatConfig) (*Format, error) {
	if cfg.Pattern == "" {
		return nil, errors.New("rl: format: empty pattern")
	}
	p := cfg.Pattern
	if cfg.FullMatch {
		p = `\A(?:` + p + `)\z`
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("rl: format: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name = "format"
	}
	return &Format{re: re, name: name}, nil
}

// Name returns the configured name, "format" by default.
func (f *Format) Name() string { return f.name }

// Score returns 1 or 0 per completion; it never fails.
func (f *Format) Score(_ context.Context, b RewardBatch) ([]float64, error) {
	out := make([]float64, b.Len())
	for i, c := range b.Completions {
		if f.re.MatchString(c) {
			out[i] = 1
		}
	}
	return out, nil
}

// OverlongConfig configures SoftOverlong (DAPO's soft overlong punishment,
// METHODS §1).
type OverlongConfig struct {
	// MaxLength is Lmax, the completion length in tokens past which the
	// punishment is -1; usually max_completion_length.
	MaxLength int `yaml:"max_length"`
	// Cache is Lcache, the width of the band below MaxLength over which
	// the punishment falls linearly from 0 to -1.
	Cache int `yaml:"cache"`
}

// SoftOverlong punishes completions that approach or pass a length limit.
type SoftOverlong struct {
	cfg OverlongConfig
}

// NewSoftOverlong returns a SoftOverlong reward. It returns an error unless
// 0 < Cache <= MaxLength.
func NewSoftOverlong(cfg OverlongConfig) (*SoftOverlong, error) {
	if cfg.Cache <= 0 || cfg.Cache > cfg.MaxLength {
		return nil, fmt.Errorf("rl: soft_overlong: need 0 < cache <= max_length, have cache %d, max_length %d", cfg.Cache, cfg.MaxLength)
	}
	return &SoftOverlong{cfg: cfg}, nil
}

// Name returns "soft_overlong".
func (s *SoftOverlong) Name() string { return "soft_overlong" }

// Score returns each completion's punishment from its token count; it
// returns an error when the batch carries no completion ids.
func (s *SoftOverlong) Score(_ context.Context, b RewardBatch) ([]float64, error) {
	if b.CompletionIDs == nil {
		return nil, errors.New("rl: soft_overlong: the batch has no completion ids to measure")
	}
	out := make([]float64, b.Len())
	for i, ids := range b.CompletionIDs {
		out[i] = OverlongPenalty(len(ids), s.cfg.MaxLength, s.cfg.Cache)
	}
	return out, nil
}

// OverlongPenalty is DAPO's soft overlong punishment of a completion of n
// tokens (METHODS §1): 0 up to maxLen-cache, then falling linearly to -1 at
// maxLen, and -1 beyond.
func OverlongPenalty(n, maxLen, cache int) float64 {
	start := maxLen - cache
	switch {
	case n <= start:
		return 0
	case n <= maxLen:
		return float64(start-n) / float64(cache)
	default:
		return -1
	}
}
