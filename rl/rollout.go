package rl

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// LogitProcessor adjusts next-token logits during a rollout, for
// interventions such as ThinkingTemperature and BudgetForcing.
type LogitProcessor interface {
	// Process changes, in place, the raw logits of the next token of
	// completion row, which has generated the given tokens so far.
	Process(row int, generated []int32, logits []float32)
}

// SamplingConfig says how rollouts sample.
type SamplingConfig struct {
	// Temperature divides the logits; 0 means 1, since GRPO needs
	// diverse groups.
	Temperature float64 `yaml:"temperature"`
	// TopP keeps the smallest set of likeliest tokens holding TopP of the
	// probability; 0 and 1 keep all.
	TopP float64 `yaml:"top_p"`
	// TopK keeps the TopK likeliest tokens; 0 keeps all.
	TopK int `yaml:"top_k"`
	// StopStrings end a completion when its text contains one.
	StopStrings []string `yaml:"stop_strings"`
	// StopTokens end a completion and stay its last token; nil means the
	// tokenizer's EOS and EOT, and an empty list none.
	StopTokens Defaultable[int32] `yaml:"stop_tokens,omitempty"`
	// Seed is the run's sampling seed, mixed into every completion's key.
	Seed uint64 `yaml:"seed"`
}

// Rollout holds n = len(prompts)·G completions, G consecutive per prompt.
type Rollout struct {
	// Prompts holds each completion's prompt ids (shared, not copied).
	Prompts [][]int32
	// Completions are the sampled ids; a stop token is kept as the last.
	Completions [][]int32
	// LogProbs are the sampled tokens' log-probs under the policy's raw
	// distribution (temperature 1, no filter or processor), which
	// CompletionLogProbs reproduces; they are GRPO's old log-probs.
	LogProbs [][]float32
	// Texts are the decoded completions, without a final stop token and
	// cut before a stop string.
	Texts []string
	// Truncated marks completions that reached the length limit without
	// stopping.
	Truncated []bool
}

// SampleKey returns a random stream key for the seed and the coordinates
// of a draw, such as (step, prompt id, completion index), so that a run
// resumed at a step samples exactly what the uninterrupted run would have,
// whatever else shares its batch.
func SampleKey(seed uint64, coords ...uint64) uint64 {
	k := splitmix64(seed)
	for _, c := range coords {
		k = splitmix64(k ^ splitmix64(c+0x632be59bd9b4e019))
	}
	return k
}

// splitmix64 is the SplitMix64 finaliser, a bijection that spreads every
// input bit over the output.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Generate samples G completions of up to maxNew tokens for each prompt.
// promptIDs identify the prompts in the data set; completion j of prompt i
// draws from the stream SampleKey(cfg.Seed, step, promptIDs[i], j). tok
// may be nil without stop strings. Without a processor it runs
// model.Generate; with one, a batched decode loop of its own over the KV
// cache that calls the processor on every row's raw logits before
// sampling. It returns an error when the lengths disagree, G or maxNew is
// not positive, or generation fails.
func Generate(m model.Model, tok tokenizer.Tokenizer, prompts [][]int32, promptIDs []uint64, step, G, maxNew int, cfg SamplingConfig, proc LogitProcessor) (Rollout, error) {
	if len(promptIDs) != len(prompts) {
		return Rollout{}, fmt.Errorf("rl: rollout: %d prompt ids for %d prompts", len(promptIDs), len(prompts))
	}
	if G < 1 || maxNew < 1 {
		return Rollout{}, fmt.Errorf("rl: rollout: need G and max length positive, have %d and %d", G, maxNew)
	}
	if cfg.Temperature == 0 {
		cfg.Temperature = 1
	}
	rows := make([][]int32, 0, len(prompts)*G)
	keys := make([]uint64, 0, len(prompts)*G)
	for i, p := range prompts {
		for j := range G {
			rows = append(rows, p)
			keys = append(keys, SampleKey(cfg.Seed, uint64(step), promptIDs[i], uint64(j)))
		}
	}
	r := Rollout{Prompts: rows}
	if proc == nil {
		out, err := model.Generate(m, tok, rows, model.GenerateConfig{MaxNewTokens: maxNew, Temperature: cfg.Temperature,
			TopP: cfg.TopP, TopK: cfg.TopK, StopTokens: cfg.StopTokens, StopStrings: cfg.StopStrings, Seeds: keys})
		if err != nil {
			return Rollout{}, fmt.Errorf("rl: rollout: %w", err)
		}
		for _, c := range out {
			r.Completions = append(r.Completions, c.Tokens)
			r.LogProbs = append(r.LogProbs, c.LogProbs)
			r.Texts = append(r.Texts, c.Text)
			r.Truncated = append(r.Truncated, c.FinishReason == model.FinishLength)
		}
		return r, nil
	}
	d := &decoder{m: m, tok: tok, cfg: cfg, proc: proc, keys: keys, maxNew: maxNew}
	if err := d.run(rows, &r); err != nil {
		return Rollout{}, fmt.Errorf("rl: rollout: %w", err)
	}
	return r, nil
}

// decoder is the rollout loop used when a logit processor is set, since
// model.Generate has no hook for one. Finished rows keep riding along in
// the batch (their tokens are ignored) to keep the loop simple.
type decoder struct {
	m      model.Model
	tok    tokenizer.Tokenizer
	cfg    SamplingConfig
	proc   LogitProcessor
	keys   []uint64
	maxNew int
	cur    *Rollout // the rollout being built, whose rows processors see
}

// run decodes every prompt into r: a left-padded prefill through the KV
// caches, then one token per row and step until every row has finished.
func (d *decoder) run(prompts [][]int32, r *Rollout) error {
	d.cur = r
	mc := d.m.Config()
	V := mc.VocabSize
	B := len(prompts)
	stops := map[int32]bool{}
	stopIDs := d.cfg.StopTokens
	if stopIDs == nil && d.tok != nil {
		if v := d.tok.Vocab(); v != nil {
			stopIDs = []int32{v.EOS, v.EOT}
		}
	}
	for _, id := range stopIDs {
		if id >= 0 {
			stops[id] = true
		}
	}
	if len(d.cfg.StopStrings) > 0 && d.tok == nil {
		return errors.New("stop strings need a tokenizer")
	}
	P := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return fmt.Errorf("prompt %d is empty", i)
		}
		P = max(P, len(p))
	}
	maxNew := d.maxNew
	if ctx := mc.MaxPositionEmbeddings; ctx > 0 {
		if P >= ctx {
			return fmt.Errorf("prompts of %d tokens leave no room in the context of %d", P, ctx)
		}
		maxNew = min(maxNew, ctx-P)
	}
	r.Completions = make([][]int32, B)
	r.LogProbs = make([][]float32, B)
	r.Texts = make([]string, B)
	r.Truncated = make([]bool, B)
	done := make([]bool, B)
	pads := make([]int, B)
	ids := make([]int32, B*P)
	pos := make([]int32, B*P)
	for b, p := range prompts {
		pads[b] = P - len(p)
		copy(ids[b*P+pads[b]:], p)
		for j := range P {
			pos[b*P+j] = int32(max(0, j-pads[b]))
		}
	}
	be := d.m.Params()[0].Tensor.Backend()
	var err error
	tensor.NoGrad(func() {
		err = tensor.Catch(func() {
			caches := d.m.NewCaches(B, P+maxNew)
			defer func() {
				for _, c := range caches {
					c.Release()
				}
			}()
			logits := d.m.Forward(tensor.From(be, tensor.Int32, ids, B, P), model.ForwardOptions{
				Positions: tensor.From(be, tensor.Int32, pos, B, P), Mask: padMask(be, pads, P), Caches: caches})
			last := logits.Slice(1, P-1, P).Float32s()
			for t := 0; ; t++ {
				next := make([]int32, B)
				for b := range B {
					if done[b] {
						continue
					}
					tokID, lp, serr := d.sample(b, t, last[b*V:(b+1)*V])
					if serr != nil {
						err = fmt.Errorf("completion %d, token %d: %w", b, t, serr)
						return
					}
					next[b] = tokID
					done[b] = d.accept(b, tokID, lp, stops, maxNew, r)
				}
				if allTrue(done) {
					return
				}
				Tk := P + t + 1
				npos := make([]int32, B)
				for b := range B {
					npos[b] = int32(len(prompts[b]) + t)
				}
				logits = d.m.Forward(tensor.From(be, tensor.Int32, next, B, 1), model.ForwardOptions{
					Positions: tensor.From(be, tensor.Int32, npos, B, 1), Mask: stepMask(be, pads, Tk), Caches: caches})
				last = logits.Float32s()
			}
		})
	})
	return err
}

// accept appends a sampled token to completion b and reports whether the
// completion is finished.
func (d *decoder) accept(b int, id int32, lp float64, stops map[int32]bool, maxNew int, r *Rollout) bool {
	r.Completions[b] = append(r.Completions[b], id)
	r.LogProbs[b] = append(r.LogProbs[b], float32(lp))
	c := r.Completions[b]
	if stops[id] {
		r.Texts[b] = d.decode(c[:len(c)-1])
		return true
	}
	if len(d.cfg.StopStrings) > 0 {
		text := d.tok.Decode(c, tokenizer.DecodeOptions{})
		at := -1
		for _, s := range d.cfg.StopStrings {
			if i := strings.Index(text, s); i >= 0 && (at < 0 || i < at) {
				at = i
			}
		}
		if at >= 0 {
			r.Texts[b] = text[:at]
			return true
		}
	}
	if len(c) >= maxNew {
		r.Texts[b] = d.decode(c)
		r.Truncated[b] = true
		return true
	}
	return false
}

// decode returns the text of ids, or "" without a tokenizer.
func (d *decoder) decode(ids []int32) string {
	if d.tok == nil {
		return ""
	}
	return d.tok.Decode(ids, tokenizer.DecodeOptions{})
}

// sample draws row b's token number t from raw logits x, after the
// processor, and returns it with its raw log-prob.
func (d *decoder) sample(b, t int, x []float32) (int32, float64, error) {
	raw := logSumExp(x)
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 0, 0, errors.New("logits define no distribution")
	}
	orig := append([]float32(nil), x...)
	d.proc.Process(b, d.cur.Completions[b], x)
	// Weights at the temperature, relative to the maximum for stability.
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	if math.IsInf(mx, -1) || math.IsNaN(mx) {
		return 0, 0, errors.New("the processor left no token possible")
	}
	type cand struct {
		id int32
		w  float64
	}
	cs := make([]cand, 0, len(x))
	total := 0.0
	for i, v := range x {
		w := math.Exp((float64(v) - mx) / d.cfg.Temperature)
		if w > 0 {
			cs = append(cs, cand{int32(i), w})
			total += w
		}
	}
	if d.cfg.TopK > 0 || (d.cfg.TopP > 0 && d.cfg.TopP < 1) {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].w > cs[j].w })
		if d.cfg.TopK > 0 && len(cs) > d.cfg.TopK {
			cs = cs[:d.cfg.TopK]
		}
		if d.cfg.TopP > 0 && d.cfg.TopP < 1 {
			sum := 0.0
			for _, c := range cs {
				sum += c.w
			}
			acc := 0.0
			for i, c := range cs {
				acc += c.w
				if acc >= d.cfg.TopP*sum {
					cs = cs[:i+1]
					break
				}
			}
		}
		total = 0
		for _, c := range cs {
			total += c.w
		}
	}
	u := float64(rand.NewPCG(d.keys[b], uint64(t)).Uint64()>>11) / (1 << 53) * total
	pick := cs[len(cs)-1].id
	acc := 0.0
	for _, c := range cs {
		acc += c.w
		if u < acc {
			pick = c.id
			break
		}
	}
	return pick, float64(orig[pick]) - raw, nil
}

// stepMask returns the attention mask [B, 1, Tk] of one decoding step,
// hiding each row's left padding, or nil when no row is padded.
func stepMask(be tensor.Backend, pads []int, Tk int) *tensor.Tensor {
	padded := false
	for _, p := range pads {
		padded = padded || p > 0
	}
	if !padded {
		return nil
	}
	m := make([]float32, len(pads)*Tk)
	inf := float32(math.Inf(-1))
	for b, p := range pads {
		for k := range min(p, Tk) {
			m[b*Tk+k] = inf
		}
	}
	return tensor.From(be, tensor.Float32, m, len(pads), 1, Tk)
}

// allTrue reports whether every element of xs is true.
func allTrue(xs []bool) bool {
	for _, x := range xs {
		if !x {
			return false
		}
	}
	return true
}
