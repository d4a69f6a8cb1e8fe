package model

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/tensor"
)

// GenerateConfig controls Generate.
type GenerateConfig struct {
	// MaxNewTokens is the most tokens to generate per prompt; it must be
	// positive. The model's context (max_position_embeddings) may cut a
	// completion shorter: prompt and completion together never exceed it.
	MaxNewTokens int
	// Temperature divides the logits before sampling; 0 means greedy
	// decoding (the most likely token, the lowest id on ties), which
	// ignores TopK, TopP, MinP and the seeds.
	Temperature float64
	// TopK keeps the TopK most likely tokens; 0 keeps all.
	TopK int
	// TopP keeps the shortest run of most likely tokens whose probability
	// reaches TopP (nucleus sampling); 0 and 1 keep all.
	TopP float64
	// MinP keeps the tokens at least MinP times as likely as the most
	// likely one; 0 keeps all.
	MinP float64
	// StopTokens end a completion when sampled; the stop token is kept as
	// the completion's last token. nil means the tokenizer's EOS and EOT
	// (none without a tokenizer); an empty, non-nil slice means none.
	StopTokens []int32
	// StopStrings end a completion when its decoded text contains one of
	// them; they need a tokenizer.
	StopStrings []string
	// Seed selects the random streams: prompt i draws from a stream keyed
	// by Seed and i (see Generate).
	Seed uint64
	// Seeds, when not nil, holds one stream key per prompt and replaces
	// the key derived from Seed and the prompt's index, so that a sample
	// keeps its randomness however prompts are batched or ordered (an RL
	// run resumed with other batches, say).
	Seeds []uint64
	// Prefix, when set, holds P soft-prompt embeddings [P, width] in the
	// model's dtype that every prompt continues: they are prefilled into
	// the KV caches before the prompt tokens at positions 0..P-1, and the
	// prompt's tokens follow at positions P and on (see
	// ForwardOptions.Prefix). They count towards the model's context.
	Prefix *tensor.Tensor
}

// The finish reasons of a Completion.
const (
	// FinishStop means a stop token or stop string ended the completion.
	FinishStop = "stop"
	// FinishLength means MaxNewTokens or the model's context did.
	FinishLength = "length"
)

// Completion is what Generate produced for one prompt.
type Completion struct {
	// Tokens are the generated ids, without the prompt; a stop token that
	// ended the completion is the last one, and so is the token that
	// completed a stop string.
	Tokens []int32
	// LogProbs holds, for each token, its log-probability under the
	// model's own distribution: log_softmax(logits)[token] of the raw
	// logits, at temperature 1 and before any top-k, top-p or min-p
	// filter. This is the policy log-probability that GRPO and PPO ratios
	// need, and what a forward pass over prompt and completion reproduces.
	LogProbs []float32
	// SampleLogProbs holds, for each token, its log-probability under the
	// distribution it was actually drawn from: logits divided by the
	// temperature, filtered and renormalised. It is 0 for greedy decoding,
	// which picks its token with certainty.
	SampleLogProbs []float32
	// Text is the decoded completion when Generate has a tokenizer: a
	// final stop token is left out, and the text is cut before a stop
	// string (so it may end inside the last token's text).
	Text string
	// FinishReason is FinishStop or FinishLength.
	FinishReason string
	// Truncated reports that the model's context, not MaxNewTokens, ended
	// the completion (FinishReason is then FinishLength).
	Truncated bool
}

// Tuning knobs, variables so that tests can reach every path with tiny
// models.
var (
	// prefillBudget bounds the logits one prefill chunk produces
	// (elements), since Forward computes them at every position and only
	// the last is used.
	prefillBudget = 1 << 24
	// parallelSampling is the batch·vocabulary size from which rows are
	// sampled on several cores: host-side sampling costs O(vocabulary)
	// per row.
	parallelSampling = 1 << 15
)

// Prefixed is a Model that puts fixed embeddings before every input, as
// a soft prompt does. Generate runs the model inside with the embeddings
// as GenerateConfig.Prefix, so that the KV cache and the padding of a
// batch account for them.
type Prefixed interface {
	Model
	// Unprefixed returns the model inside and the embeddings [P, width]
	// it puts first.
	Unprefixed() (Model, *tensor.Tensor)
}

// Generate continues each prompt with up to cfg.MaxNewTokens tokens from m
// and returns one Completion per prompt, in order.
//
// All prompts decode together as one batch through per-layer KV caches, so
// each step feeds one token per unfinished prompt and reads the cached
// context instead of recomputing it. Prompts of different lengths are
// left-padded to the longest, with an attention mask that hides the
// padding and positions that start at 0 at each prompt's first token, so
// every prompt is computed as it would be alone (up to floating-point
// rounding). When prompts finish, the caches are compacted to the
// unfinished ones, which then stop paying for the finished.
//
// Sampling follows the config: greedy at temperature 0, else temperature,
// then top-k, then top-p, then min-p, each filter applied to the
// renormalised survivors of the one before. The draw of prompt i's token
// number t (from 0) is driven by one uniform number u = top 53 bits of the
// first output of PCG(k_i, t) / 2^53, with stream key k_i = Seeds[i], or
// without Seeds k_i = splitmix64(Seed ^ splitmix64(i)); the token is the
// first candidate, in rank order (by probability, ties by id) when a
// filter ran and by id otherwise, whose cumulative probability exceeds u.
// A completion's randomness therefore depends on its seed, prompt and
// index only, not on the rest of the batch (whose padding can still move
// the logits by rounding), and repeating a prompt G times (as GRPO does)
// gives G independent samples.
//
// tok may be nil when cfg has no stop strings; with it, completions carry
// their Text and StopTokens defaults to its vocabulary's EOS and EOT.
// Generation runs under tensor.NoGrad, which is process-wide: do not train
// in another goroutine meanwhile.
//
// It returns an error when m is nil, a config value is out of range
// (MaxNewTokens not positive; Temperature, TopP or MinP negative, above 1
// where that applies, or NaN; TopK negative; a stop token outside the
// vocabulary; an empty stop string, or stop strings without a tokenizer;
// Seeds not one per prompt; a Prefix not [P, width], or one given for a
// Prefixed model), a prompt is empty, holds an id outside the vocabulary
// or leaves no room in the model's context (counting the prefix), the
// model's forward pass fails (the *tensor.Error it panicked with), or its
// logits are not finite.
func Generate(m Model, tok tokenizer.Tokenizer, prompts [][]int32, cfg GenerateConfig) ([]Completion, error) {
	if m == nil {
		return nil, errors.New("model: generate: nil model")
	}
	if pm, ok := m.(Prefixed); ok {
		if cfg.Prefix != nil {
			return nil, errors.New("model: generate: a Prefixed model brings its own prefix; GenerateConfig.Prefix must be nil")
		}
		m, cfg.Prefix = pm.Unprefixed()
	}
	mc := m.Config()
	if err := cfg.validate(mc.VocabSize, tok, len(prompts)); err != nil {
		return nil, fmt.Errorf("model: generate: %w", err)
	}
	ps := m.Params()
	if len(ps) == 0 {
		return nil, errors.New("model: generate: the model has no parameters to tell its backend")
	}
	g := &generator{m: m, tok: tok, cfg: cfg, vocab: mc.VocabSize, stops: map[int32]bool{},
		be: ps[0].Tensor.Backend(), kvHeads: mc.KVHeads(), headDim: mc.HeadSize()}
	if p := cfg.Prefix; p != nil {
		if p.Rank() != 2 || p.Dim(1) != mc.HiddenSize || p.Dim(0) == 0 {
			return nil, fmt.Errorf("model: generate: prefix of shape %v, want [P, %d] with P positive", p.Shape(), mc.HiddenSize)
		}
		g.prefix = p.Dim(0)
	}
	for _, id := range stopTokens(cfg, tok) {
		g.stops[id] = true
	}
	out := make([]Completion, len(prompts))
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("model: generate: prompt %d is empty", i)
		}
		for j, id := range p {
			if id < 0 || int(id) >= mc.VocabSize {
				return nil, fmt.Errorf("model: generate: prompt %d: token %d is id %d, outside the vocabulary of %d", i, j, id, mc.VocabSize)
			}
		}
		limit := cfg.MaxNewTokens
		if ctx := mc.MaxPositionEmbeddings; ctx > 0 {
			if n := len(p) + g.prefix; n >= ctx {
				return nil, fmt.Errorf("model: generate: prompt %d has %d tokens (with a prefix of %d), leaving no room in the context of %d", i, n, g.prefix, ctx)
			}
			limit = min(limit, ctx-len(p)-g.prefix)
		}
		g.rows = append(g.rows, &genRow{index: i, prompt: p, limit: limit, key: rowKey(cfg.Seed, cfg.Seeds, i), out: &out[i]})
	}
	if len(prompts) == 0 {
		return out, nil
	}
	var err error
	tensor.NoGrad(func() {
		if perr := tensor.Catch(func() { err = g.run() }); perr != nil {
			err = perr
		}
	})
	g.release()
	if err != nil {
		return nil, fmt.Errorf("model: generate: %w", err)
	}
	return out, nil
}

// validate checks the config against a vocabulary of V tokens and n
// prompts.
func (c GenerateConfig) validate(V int, tok tokenizer.Tokenizer, n int) error {
	switch {
	case c.MaxNewTokens <= 0:
		return fmt.Errorf("MaxNewTokens is %d, want a positive number", c.MaxNewTokens)
	case !(c.Temperature >= 0) || math.IsInf(c.Temperature, 1):
		return fmt.Errorf("Temperature is %g, want a finite number >= 0 (0 for greedy)", c.Temperature)
	case c.TopK < 0:
		return fmt.Errorf("TopK is %d, want >= 0 (0 for no limit)", c.TopK)
	case !(c.TopP >= 0 && c.TopP <= 1):
		return fmt.Errorf("TopP is %g, want a number in (0, 1] (0 for no limit)", c.TopP)
	case !(c.MinP >= 0 && c.MinP <= 1):
		return fmt.Errorf("MinP is %g, want a number in [0, 1]", c.MinP)
	case c.Seeds != nil && len(c.Seeds) != n:
		return fmt.Errorf("%d Seeds for %d prompts", len(c.Seeds), n)
	case len(c.StopStrings) > 0 && tok == nil:
		return errors.New("StopStrings need a tokenizer")
	}
	for _, id := range c.StopTokens {
		if id < 0 || int(id) >= V {
			return fmt.Errorf("stop token %d is outside the vocabulary of %d", id, V)
		}
	}
	for i, s := range c.StopStrings {
		if s == "" {
			return fmt.Errorf("stop string %d is empty", i)
		}
	}
	return nil
}

// stopTokens returns the configured stop tokens or the tokenizer's.
func stopTokens(cfg GenerateConfig, tok tokenizer.Tokenizer) []int32 {
	if cfg.StopTokens != nil || tok == nil {
		return cfg.StopTokens
	}
	var ids []int32
	if v := tok.Vocab(); v != nil {
		for _, id := range []int32{v.EOS, v.EOT} {
			if id >= 0 {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// genRow is one prompt's generation state.
type genRow struct {
	index  int
	prompt []int32
	// limit is the most tokens this prompt may generate.
	limit int
	// pad is the number of padding columns before the prompt's first
	// token, which follow the generator's prefix columns.
	pad int
	key uint64
	out *Completion
}

// generator carries one Generate call.
type generator struct {
	m     Model
	tok   tokenizer.Tokenizer
	cfg   GenerateConfig
	vocab int
	stops map[int32]bool
	// rows are the unfinished prompts in the order of the caches' batch.
	rows     []*genRow
	caches   []*tensor.KVCache
	samplers []*sampler
	// be is the model's backend; kvHeads and headDim shape its caches.
	be               tensor.Backend
	kvHeads, headDim int
	// prefix is the number of soft-prompt columns at the start of every
	// row's cache, before its padding.
	prefix int
}

// run prefills every prompt and then decodes until all are finished.
func (g *generator) run() error {
	L, longest := 0, 0
	for _, r := range g.rows {
		L = max(L, len(r.prompt))
		longest = max(longest, r.limit)
	}
	for _, r := range g.rows {
		r.pad = L - len(r.prompt)
	}
	// The last token is sampled but never fed, hence the -1.
	g.caches = g.m.NewCaches(len(g.rows), g.prefix+L+longest-1)
	logits, err := g.prefill(L)
	for err == nil {
		if err = g.step(logits); err != nil || len(g.rows) == 0 {
			break
		}
		logits, err = g.decode()
	}
	return err
}

// release frees the caches.
func (g *generator) release() {
	for _, c := range g.caches {
		c.Release()
	}
	g.caches = nil
}

// prefill feeds the left-padded prompts (L columns) in chunks and returns
// the logits at the last column, one row of the vocabulary per prompt.
// Chunks bound the memory of the logits Forward computes at every column.
func (g *generator) prefill(L int) ([][]float32, error) {
	B := len(g.rows)
	chunk := min(L, max(1, prefillBudget/(B*g.vocab)))
	var logits [][]float32
	for lo := 0; lo < L; lo += chunk {
		hi := min(lo+chunk, L)
		T := hi - lo
		// The first chunk carries the prefix, P more columns at positions
		// 0..P-1, and the prompts' positions start after it.
		P := 0
		if lo == 0 {
			P = g.prefix
		}
		ids, pos := make([]int32, B*T), make([]int32, B*(P+T))
		for b, r := range g.rows {
			for c := range P {
				pos[b*(P+T)+c] = int32(c)
			}
			for c := lo; c < hi; c++ {
				// Padding feeds id 0 at position 0, valid for every model;
				// the mask keeps it out of the real tokens' attention.
				if j := c - r.pad; j >= 0 {
					ids[b*T+c-lo], pos[b*(P+T)+P+c-lo] = r.prompt[j], int32(g.prefix+j)
				}
			}
		}
		var err error
		if logits, err = g.forward(ids, pos, T, P); err != nil {
			return nil, err
		}
	}
	return logits, nil
}

// decode feeds every unfinished row's newest token and returns the next
// logits.
func (g *generator) decode() ([][]float32, error) {
	n := g.caches[0].Len()
	ids, pos := make([]int32, len(g.rows)), make([]int32, len(g.rows))
	for b, r := range g.rows {
		ids[b] = r.out.Tokens[len(r.out.Tokens)-1]
		// Cache column n holds position n - pad, the prefix columns before
		// the padding included.
		pos[b] = int32(n - r.pad)
	}
	return g.forward(ids, pos, 1, 0)
}

// forward runs the model on ids [B, T], after P prefix columns when P is
// not 0, with positions [B, P+T] after the cached columns and returns each
// row's logits at the last new column.
func (g *generator) forward(ids, pos []int32, T, P int) ([][]float32, error) {
	B := len(g.rows)
	opt := ForwardOptions{Caches: g.caches, Positions: tensor.From(g.be, tensor.Int32, pos, B, P+T),
		Mask: g.padMask(P+T, g.caches[0].Len()+P+T)}
	if P > 0 {
		opt.Prefix = g.cfg.Prefix
	}
	x := tensor.From(g.be, tensor.Int32, ids, B, T)
	out := g.m.Forward(x, opt)
	defer func() {
		for _, t := range []*tensor.Tensor{out, x, opt.Positions, opt.Mask} {
			if t != nil {
				t.Release()
			}
		}
	}()
	if s := out.Shape(); len(s) != 3 || s[0] != B || s[1] != T || s[2] != g.vocab {
		return nil, fmt.Errorf("logits of shape %v for ids [%d, %d] and a vocabulary of %d", s, B, T, g.vocab)
	}
	last := out.Slice(1, T-1, T)
	flat := last.Float32s()
	last.Release()
	rows := make([][]float32, B)
	for b := range rows {
		rows[b] = flat[b*g.vocab : (b+1)*g.vocab]
	}
	return rows, nil
}

// padMask returns the attention mask [B, T, Tk] that hides each row's
// padding columns from every query, or nil when no row is padded. Causal
// masking is Attention's own.
func (g *generator) padMask(T, Tk int) *tensor.Tensor {
	padded := false
	for _, r := range g.rows {
		padded = padded || r.pad > 0
	}
	if !padded {
		return nil
	}
	B := len(g.rows)
	m := make([]float32, B*T*Tk)
	inf := float32(math.Inf(-1))
	for b, r := range g.rows {
		for t := range T {
			row := m[(b*T+t)*Tk:]
			// A chunk of prefill can end before the padding does.
			for j := g.prefix; j < min(g.prefix+r.pad, Tk); j++ {
				row[j] = inf
			}
		}
	}
	return tensor.From(g.be, tensor.Float32, m, B, T, Tk)
}

// step samples every unfinished row's next token from its logits, finishes
// the rows that stop or reach their limit, and compacts the caches to the
// rest.
func (g *generator) step(logits [][]float32) error {
	B := len(g.rows)
	workers := 1
	if B > 1 && B*g.vocab >= parallelSampling {
		workers = min(B, runtime.GOMAXPROCS(0))
	}
	for len(g.samplers) < workers {
		g.samplers = append(g.samplers, newSampler(g.cfg))
	}
	done, errs := make([]bool, B), make([]error, B)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := w; b < B; b += workers {
				done[b], errs[b] = g.advance(g.samplers[w], g.rows[b], logits[b])
			}
		})
	}
	wg.Wait()
	var keep []int
	for b := range B {
		if errs[b] != nil {
			return errs[b]
		}
		if !done[b] {
			keep = append(keep, b)
		}
	}
	switch {
	case len(keep) == 0:
		g.rows = nil
	case len(keep) < B:
		g.compact(keep)
	}
	return nil
}

// advance appends the token drawn from logits to r's completion and
// reports whether r is finished.
func (g *generator) advance(s *sampler, r *genRow, logits []float32) (bool, error) {
	c := r.out
	u := 0.0
	if g.cfg.Temperature > 0 {
		u = uniform(r.key, len(c.Tokens))
	}
	d, err := s.sample(logits, u)
	if err != nil {
		return false, fmt.Errorf("prompt %d, new token %d: %w", r.index, len(c.Tokens), err)
	}
	c.Tokens = append(c.Tokens, d.tok)
	c.LogProbs = append(c.LogProbs, float32(d.policy))
	c.SampleLogProbs = append(c.SampleLogProbs, float32(d.sample))
	if g.stops[d.tok] {
		c.FinishReason = FinishStop
		c.Text = g.decodeText(c.Tokens[:len(c.Tokens)-1])
		return true, nil
	}
	if len(g.cfg.StopStrings) > 0 {
		// The whole completion is decoded each time because a token's text
		// can depend on its neighbours (a UTF-8 character split across
		// byte tokens, SentencePiece's leading space).
		text := g.tok.Decode(c.Tokens, tokenizer.DecodeOptions{})
		if at := firstStop(text, g.cfg.StopStrings); at >= 0 {
			c.FinishReason = FinishStop
			c.Text = text[:at]
			return true, nil
		}
	}
	if len(c.Tokens) >= r.limit {
		c.FinishReason = FinishLength
		c.Truncated = r.limit < g.cfg.MaxNewTokens
		c.Text = g.decodeText(c.Tokens)
		return true, nil
	}
	return false, nil
}

// firstStop returns the byte offset of the earliest stop string in text,
// or -1.
func firstStop(text string, stops []string) int {
	at := -1
	for _, s := range stops {
		if i := strings.Index(text, s); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	return at
}

// decodeText returns the text of ids, or "" without a tokenizer.
func (g *generator) decodeText(ids []int32) string {
	if g.tok == nil {
		return ""
	}
	return g.tok.Decode(ids, tokenizer.DecodeOptions{})
}

// compact replaces the caches with ones holding only the rows at the
// batch indices keep, dropping the padding columns that every kept row
// has, so finished rows cost nothing from here on. The copy is exact, so
// the kept rows continue as if nothing had happened; it reads a cache's
// contents through the views that appending zero tokens returns, the only
// read access KVCache offers.
func (g *generator) compact(keep []int) {
	start, need := math.MaxInt, 0
	for _, b := range keep {
		r := g.rows[b]
		start = min(start, r.pad)
		// Each further token needs its predecessor fed first.
		need = max(need, r.limit-len(r.out.Tokens))
	}
	n := g.caches[0].Len()
	fresh := g.m.NewCaches(len(keep), n-start+need)
	none := tensor.Empty(g.be, tensor.Float32, len(g.rows), 0, g.kvHeads, g.headDim)
	for i, c := range g.caches {
		ks, vs := c.Append(none, none)
		k, v := pickRows(ks, keep, g.prefix, start), pickRows(vs, keep, g.prefix, start)
		fresh[i].Append(k, v)
		for _, t := range []*tensor.Tensor{k, v, ks, vs} {
			t.Release()
		}
		c.Release()
	}
	none.Release()
	g.caches = fresh
	rows := make([]*genRow, len(keep))
	for j, b := range keep {
		rows[j] = g.rows[b]
		rows[j].pad -= start
	}
	g.rows = rows
}

// pickRows returns the batch rows keep (ascending) of t [B, n, H, D]
// without the start columns after the first prefix ones, as a view when
// that leaves one contiguous block and as a copy otherwise.
func pickRows(t *tensor.Tensor, keep []int, prefix, start int) *tensor.Tensor {
	var cols *tensor.Tensor
	switch n := t.Dim(1); {
	case start == 0 || prefix == 0:
		cols = t.Slice(1, start, n)
	default:
		head, tail := t.Slice(1, 0, prefix), t.Slice(1, prefix+start, n)
		cols = tensor.Concat(1, head, tail)
		head.Release()
		tail.Release()
	}
	var parts []*tensor.Tensor
	for i := 0; i < len(keep); {
		j := i + 1
		for j < len(keep) && keep[j] == keep[j-1]+1 {
			j++
		}
		parts = append(parts, cols.Slice(0, keep[i], keep[j-1]+1))
		i = j
	}
	cols.Release()
	if len(parts) == 1 {
		return parts[0]
	}
	out := tensor.Concat(0, parts...)
	for _, p := range parts {
		p.Release()
	}
	return out
}
