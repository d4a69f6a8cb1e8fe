package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/tensor"
)

// genPrompts are prompts of different lengths for the tiny models, so
// batches need padding.
var genPrompts = [][]int32{{1, 4, 0}, {10, 7, 3, 3, 9}, {2}, {5, 6}}

// genModels returns a tiny model of each family; the GPT-2 context of 16
// leaves room for the prompts above and 8 new tokens.
func genModels(t *testing.T) map[string]Model {
	t.Helper()
	ms := map[string]Model{}
	for _, name := range names() {
		ms[name] = build(t, tiny()[name], tensor.Float32, 7)
	}
	return ms
}

func generate(t *testing.T, m Model, tok tokenizer.Tokenizer, prompts [][]int32, cfg GenerateConfig) []Completion {
	t.Helper()
	out, err := Generate(m, tok, prompts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(prompts) {
		t.Fatalf("%d completions for %d prompts", len(out), len(prompts))
	}
	return out
}

// lastLogits returns the logits after seq from one full forward pass
// without caches.
func lastLogits(m Model, seq []int32) []float32 {
	var out []float32
	tensor.NoGrad(func() {
		l := m.Forward(idsOf(seq, 1, len(seq)), ForwardOptions{})
		V := l.Dim(2)
		out = l.Float32s()[(len(seq)-1)*V:]
	})
	return out
}

func logSoftmax(x []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = max(mx, float64(v))
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - mx - math.Log(s)
	}
	return out
}

// checkAgainstFull re-runs the model without caches on the prompt and
// every prefix of the completion and checks that each token's log-prob is
// the full pass's log-softmax and that pick accepts the token given the
// full pass's log-probs.
func checkAgainstFull(t *testing.T, name string, m Model, prompt []int32, c Completion, pick func(lp []float64, tok int32) error) {
	t.Helper()
	if len(c.LogProbs) != len(c.Tokens) || len(c.SampleLogProbs) != len(c.Tokens) {
		t.Fatalf("%s: %d tokens, %d log-probs, %d sample log-probs", name, len(c.Tokens), len(c.LogProbs), len(c.SampleLogProbs))
	}
	seq := slices.Clone(prompt)
	for s, tok := range c.Tokens {
		lp := logSoftmax(lastLogits(m, seq))
		if d := math.Abs(float64(c.LogProbs[s]) - lp[tok]); d > 1e-5 {
			t.Errorf("%s: prompt %v token %d: log-prob %g, full pass %g", name, prompt, s, c.LogProbs[s], lp[tok])
		}
		if err := pick(lp, tok); err != nil {
			t.Errorf("%s: prompt %v token %d: %v", name, prompt, s, err)
		}
		seq = append(seq, tok)
	}
}

// argmaxPick accepts a token whose log-prob is the largest up to the
// rounding that separates cached from full passes.
func argmaxPick(lp []float64, tok int32) error {
	if best := slices.Max(lp); lp[tok] < best-1e-5 {
		return fmt.Errorf("token %d has log-prob %g, the best is %g", tok, lp[tok], best)
	}
	return nil
}

// setKnobs sets the tuning knobs for one test and restores them after.
func setKnobs(t *testing.T, budget, parallel int) {
	t.Helper()
	b, p := prefillBudget, parallelSampling
	prefillBudget, parallelSampling = budget, parallel
	t.Cleanup(func() { prefillBudget, parallelSampling = b, p })
}

func TestGenerateGreedyMatchesFullForward(t *testing.T) {
	for _, knobs := range []struct{ budget, parallel int }{
		{prefillBudget, parallelSampling},
		// Prefill one column at a time, and two columns of 4 prompts of 11
		// logits at a time; sample on several cores.
		{1, 0},
		{2 * 4 * 11, 0},
	} {
		t.Run(fmt.Sprintf("budget=%d,parallel=%d", knobs.budget, knobs.parallel), func(t *testing.T) {
			setKnobs(t, knobs.budget, knobs.parallel)
			testGreedyMatchesFullForward(t)
		})
	}
}

func testGreedyMatchesFullForward(t *testing.T) {
	for name, m := range genModels(t) {
		out := generate(t, m, nil, genPrompts, GenerateConfig{MaxNewTokens: 8, StopTokens: []int32{}})
		for i, c := range out {
			if len(c.Tokens) != 8 || c.FinishReason != FinishLength || c.Truncated {
				t.Errorf("%s: prompt %d: %d tokens, finish %q, truncated %v; want 8, length, false", name, i, len(c.Tokens), c.FinishReason, c.Truncated)
			}
			for s, lp := range c.SampleLogProbs {
				if lp != 0 {
					t.Errorf("%s: prompt %d token %d: greedy sample log-prob %g, want 0", name, i, s, lp)
				}
			}
			checkAgainstFull(t, name, m, genPrompts[i], c, argmaxPick)
		}
	}
}

func TestGenerateSampledLogProbs(t *testing.T) {
	cfg := GenerateConfig{MaxNewTokens: 8, Temperature: 1.3, TopK: 5, TopP: 0.9, StopTokens: []int32{}, Seed: 3}
	for name, m := range genModels(t) {
		for i, c := range generate(t, m, nil, genPrompts, cfg) {
			checkAgainstFull(t, name, m, genPrompts[i], c, func(lp []float64, tok int32) error {
				// Top-k 5: at most 4 tokens may beat the sampled one.
				above := 0
				for _, v := range lp {
					if v > lp[tok]+1e-5 {
						above++
					}
				}
				if above >= 5 {
					return fmt.Errorf("token %d is outside the top 5 (%d tokens are more likely)", tok, above)
				}
				return nil
			})
			for s, lp := range c.SampleLogProbs {
				if !(lp <= 0) || lp < c.LogProbs[s]-1 {
					// Filtering only raises a kept token's probability;
					// temperature 1.3 can lower it, but not by a factor e
					// on these logits.
					t.Errorf("%s: prompt %d token %d: sample log-prob %g, policy %g", name, i, s, lp, c.LogProbs[s])
				}
			}
		}
	}
}

// TestGenerateBatchIndependence checks that a prompt's completion does not
// depend on the rest of the batch: its neighbours' lengths (padding), when
// they finish (cache compaction) and, with per-prompt seeds, its place.
func TestGenerateBatchIndependence(t *testing.T) {
	for _, parallel := range []int{parallelSampling, 0} {
		t.Run(fmt.Sprintf("parallel=%d", parallel), func(t *testing.T) {
			setKnobs(t, prefillBudget, parallel)
			testBatchIndependence(t)
		})
	}
}

func testBatchIndependence(t *testing.T) {
	seeds := []uint64{11, 22, 33, 44}
	for name, m := range genModels(t) {
		for _, temp := range []float64{0, 1.5} {
			// A stop token that some rows emit makes rows finish at
			// different steps.
			cfg := GenerateConfig{MaxNewTokens: 8, Temperature: temp, StopTokens: []int32{3, 8}, Seeds: seeds}
			all := generate(t, m, nil, genPrompts, cfg)
			rev := slices.Clone(genPrompts)
			slices.Reverse(rev)
			cfg.Seeds = slices.Clone(seeds)
			slices.Reverse(cfg.Seeds)
			back := generate(t, m, nil, rev, cfg)
			for i := range genPrompts {
				cfg.Seeds = seeds[i : i+1]
				alone := generate(t, m, nil, genPrompts[i:i+1], cfg)[0]
				for what, c := range map[string]Completion{"batched": all[i], "reversed": back[len(back)-1-i]} {
					if !slices.Equal(c.Tokens, alone.Tokens) || c.FinishReason != alone.FinishReason {
						t.Errorf("%s T=%g prompt %d: %s %v (%s), alone %v (%s)", name, temp, i, what, c.Tokens, c.FinishReason, alone.Tokens, alone.FinishReason)
						continue
					}
					for s := range c.LogProbs {
						if d := math.Abs(float64(c.LogProbs[s] - alone.LogProbs[s])); d > 1e-5 {
							t.Errorf("%s T=%g prompt %d token %d: %s log-prob differs from alone by %g", name, temp, i, s, what, d)
						}
					}
				}
			}
		}
	}
}

func TestGenerateSeeds(t *testing.T) {
	m := genModels(t)["llama"]
	base := GenerateConfig{MaxNewTokens: 10, Temperature: 2, StopTokens: []int32{}, Seed: 5}
	tokens := func(cfg GenerateConfig, prompts [][]int32) [][]int32 {
		var out [][]int32
		for _, c := range generate(t, m, nil, prompts, cfg) {
			out = append(out, c.Tokens)
		}
		return out
	}
	first := tokens(base, genPrompts)
	if again := tokens(base, genPrompts); !reflect.DeepEqual(first, again) {
		t.Errorf("same seed: %v, then %v", first, again)
	}
	other := base
	other.Seed = 6
	if diff := tokens(other, genPrompts); reflect.DeepEqual(first, diff) {
		t.Errorf("seeds 5 and 6 both gave %v", first)
	}
	// Prompt 0 keeps its samples when its neighbours change.
	if mixed := tokens(base, [][]int32{genPrompts[0], {9, 9, 9, 9, 9, 9}}); !slices.Equal(mixed[0], first[0]) {
		t.Errorf("prompt 0 gave %v beside other prompts, %v before", mixed[0], first[0])
	}
	// A repeated prompt draws independent samples, as GRPO groups need.
	if rep := tokens(base, [][]int32{genPrompts[0], genPrompts[0]}); slices.Equal(rep[0], rep[1]) {
		t.Errorf("a repeated prompt gave the same sample twice: %v", rep[0])
	}
}

// TestGenerateFiltersToGreedy checks that filters keeping one token give
// greedy decoding, with a sample log-prob of 0.
func TestGenerateFiltersToGreedy(t *testing.T) {
	cases := []struct {
		name string
		cfg  GenerateConfig
	}{
		{"top-k=1", GenerateConfig{Temperature: 1, TopK: 1}},
		{"top-p tiny", GenerateConfig{Temperature: 0.7, TopP: 1e-9}},
		{"min-p=1", GenerateConfig{Temperature: 3, MinP: 1}},
	}
	for name, m := range genModels(t) {
		greedy := generate(t, m, nil, genPrompts, GenerateConfig{MaxNewTokens: 6, StopTokens: []int32{}})
		for _, c := range cases {
			c.cfg.MaxNewTokens, c.cfg.StopTokens, c.cfg.Seed = 6, []int32{}, 9
			for i, got := range generate(t, m, nil, genPrompts, c.cfg) {
				if !slices.Equal(got.Tokens, greedy[i].Tokens) {
					t.Errorf("%s %s prompt %d: %v, greedy %v", name, c.name, i, got.Tokens, greedy[i].Tokens)
				}
				for s, lp := range got.SampleLogProbs {
					if lp != 0 {
						t.Errorf("%s %s prompt %d token %d: sample log-prob %g, want 0", name, c.name, i, s, lp)
					}
				}
			}
		}
	}
}

// TestRandomStreams pins the documented derivation of the uniform numbers
// that drive sampling, so a resumed RL run draws what it drew before. The
// values come from an independent Python implementation of SplitMix64
// and of math/rand/v2's PCG (128-bit LCG with DXSM output).
func TestRandomStreams(t *testing.T) {
	cases := []struct {
		seed    uint64
		i, step int
		want    float64
	}{
		{0, 0, 0, 0.005956464375636905},
		{5, 0, 0, 0.22048692954337756},
		{5, 1, 0, 0.13969830254729265},
		{5, 0, 1, 0.21701677479950066},
		{5, 3, 7, 0.28919246671105514},
	}
	for _, c := range cases {
		if got := uniform(rowKey(c.seed, nil, c.i), c.step); got != c.want {
			t.Errorf("seed %d, prompt %d, step %d: u = %v, want %v", c.seed, c.i, c.step, got, c.want)
		}
		// A per-prompt seed is the stream key itself.
		k := rowKey(c.seed, nil, c.i)
		if got := uniform(rowKey(99, []uint64{1, 2, 3, k}, 3), c.step); got != c.want {
			t.Errorf("Seeds[3] = %d, step %d: u = %v, want %v", k, c.step, got, c.want)
		}
	}
}

// fakeTok decodes each id to a fixed piece of text; pieces of several
// characters let stop strings end inside a token.
type fakeTok struct {
	pieces []string
	vocab  tokenizer.Vocab
}

func newFakeTok(eos, eot int32) *fakeTok {
	p := []string{"ab", "c", "de", "f ", "gh", "i", "jk", "l\n", "m", "no", "p"}
	return &fakeTok{pieces: p, vocab: tokenizer.Vocab{Model: tokenizer.ModelBPE, Tokens: p, BOS: -1, EOS: eos, UNK: -1, PAD: -1, EOT: eot}}
}

func (f *fakeTok) Encode(string, tokenizer.EncodeOptions) []int32 { return nil }

func (f *fakeTok) Decode(ids []int32, _ tokenizer.DecodeOptions) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(f.pieces[id])
	}
	return b.String()
}

func (f *fakeTok) Vocab() *tokenizer.Vocab { return &f.vocab }

func TestGenerateStopTokens(t *testing.T) {
	for name, m := range genModels(t) {
		prompt := genPrompts[1:2]
		ref := generate(t, m, nil, prompt, GenerateConfig{MaxNewTokens: 8, Temperature: 2, Seed: 1, StopTokens: []int32{}})[0]
		stop := ref.Tokens[3]
		at := slices.Index(ref.Tokens, stop)
		want := ref.Tokens[:at+1]
		tok := newFakeTok(-1, -1)
		cases := []struct {
			what string
			tok  tokenizer.Tokenizer
			cfg  GenerateConfig
		}{
			{"StopTokens", tok, GenerateConfig{StopTokens: []int32{stop}}},
			{"StopTokens without tokenizer", nil, GenerateConfig{StopTokens: []int32{stop}}},
			{"vocab EOS", newFakeTok(stop, -1), GenerateConfig{}},
			{"vocab EOT", newFakeTok(-1, stop), GenerateConfig{}},
		}
		for _, c := range cases {
			c.cfg.MaxNewTokens, c.cfg.Temperature, c.cfg.Seed = 8, 2, 1
			got := generate(t, m, c.tok, prompt, c.cfg)[0]
			wantText := ""
			if c.tok != nil {
				wantText = tok.Decode(want[:at], tokenizer.DecodeOptions{})
			}
			if !slices.Equal(got.Tokens, want) || got.FinishReason != FinishStop || got.Text != wantText || len(got.LogProbs) != len(want) {
				t.Errorf("%s %s: %v %q (%s), want %v %q (stop)", name, c.what, got.Tokens, got.Text, got.FinishReason, want, wantText)
			}
		}
		// Without a tokenizer and without stop tokens nothing stops early.
		got := generate(t, m, nil, prompt, GenerateConfig{MaxNewTokens: 8, Temperature: 2, Seed: 1})[0]
		if !slices.Equal(got.Tokens, ref.Tokens) || got.FinishReason != FinishLength || got.Text != "" {
			t.Errorf("%s no stops: %v %q (%s), want %v (length)", name, got.Tokens, got.Text, got.FinishReason, ref.Tokens)
		}
	}
}

func TestGenerateStopStrings(t *testing.T) {
	tok := newFakeTok(-1, -1)
	for name, m := range genModels(t) {
		prompt := genPrompts[:1]
		cfg := GenerateConfig{MaxNewTokens: 8, Temperature: 2, Seed: 4, StopTokens: []int32{}}
		ref := generate(t, m, tok, prompt, cfg)[0]
		if ref.Text != tok.Decode(ref.Tokens, tokenizer.DecodeOptions{}) {
			t.Fatalf("%s: text %q of %v", name, ref.Text, ref.Tokens)
		}
		// Stop strings spanning the boundary of tokens 2 and 3 (and thus
		// possibly cutting a token), one token's text, and one absent.
		p2, p3 := tok.pieces[ref.Tokens[2]], tok.pieces[ref.Tokens[3]]
		for _, stops := range [][]string{
			{p2[len(p2)-1:] + p3[:1]},
			{p3},
			{"zz", p3, p2},
			{"zz"},
		} {
			// The expected cut: the first prefix of the completion whose
			// text holds a stop string, at that string's earliest place.
			want, wantText, reason := ref.Tokens, ref.Text, FinishLength
			for s := range ref.Tokens {
				text := tok.Decode(ref.Tokens[:s+1], tokenizer.DecodeOptions{})
				if at := firstStop(text, stops); at >= 0 {
					want, wantText, reason = ref.Tokens[:s+1], text[:at], FinishStop
					break
				}
			}
			c := cfg
			c.StopStrings = stops
			got := generate(t, m, tok, prompt, c)[0]
			if !slices.Equal(got.Tokens, want) || got.Text != wantText || got.FinishReason != reason {
				t.Errorf("%s stops %q: %v %q (%s), want %v %q (%s)", name, stops, got.Tokens, got.Text, got.FinishReason, want, wantText, reason)
			}
		}
	}
}

func TestGenerateLength(t *testing.T) {
	m := genModels(t)["gpt2"] // a context of 16
	long := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2}
	out := generate(t, m, nil, [][]int32{long, {4}, long[:10]}, GenerateConfig{MaxNewTokens: 5, StopTokens: []int32{}})
	for i, want := range []struct {
		n         int
		truncated bool
	}{{3, true}, {5, false}, {5, false}} {
		c := out[i]
		if len(c.Tokens) != want.n || c.FinishReason != FinishLength || c.Truncated != want.truncated {
			t.Errorf("prompt %d: %d tokens (%s, truncated %v), want %d (length, truncated %v)", i, len(c.Tokens), c.FinishReason, c.Truncated, want.n, want.truncated)
		}
	}
	checkAgainstFull(t, "gpt2", m, long, out[0], argmaxPick)
	if out, err := Generate(m, nil, nil, GenerateConfig{MaxNewTokens: 1}); err != nil || len(out) != 0 {
		t.Errorf("no prompts: %v, %v; want no completions and no error", out, err)
	}
}

func TestGenerateErrors(t *testing.T) {
	ms := genModels(t)
	m := ms["llama"]
	ok := GenerateConfig{MaxNewTokens: 4}
	with := func(f func(*GenerateConfig)) GenerateConfig {
		c := ok
		f(&c)
		return c
	}
	cases := []struct {
		name    string
		m       Model
		tok     tokenizer.Tokenizer
		prompts [][]int32
		cfg     GenerateConfig
		want    string
	}{
		{"nil model", nil, nil, genPrompts, ok, "nil model"},
		{"empty prompt", m, nil, [][]int32{{1}, {}}, ok, "prompt 1 is empty"},
		{"id range", m, nil, [][]int32{{1, 11}}, ok, "outside the vocabulary"},
		{"negative id", m, nil, [][]int32{{-1}}, ok, "outside the vocabulary"},
		{"context", ms["gpt2"], nil, [][]int32{make([]int32, 16)}, ok, "no room in the context of 16"},
		{"max new tokens", m, nil, genPrompts, GenerateConfig{}, "MaxNewTokens"},
		{"negative temperature", m, nil, genPrompts, with(func(c *GenerateConfig) { c.Temperature = -1 }), "Temperature"},
		{"NaN temperature", m, nil, genPrompts, with(func(c *GenerateConfig) { c.Temperature = math.NaN() }), "Temperature"},
		{"infinite temperature", m, nil, genPrompts, with(func(c *GenerateConfig) { c.Temperature = math.Inf(1) }), "Temperature"},
		{"negative top-k", m, nil, genPrompts, with(func(c *GenerateConfig) { c.TopK = -1 }), "TopK"},
		{"top-p above 1", m, nil, genPrompts, with(func(c *GenerateConfig) { c.TopP = 1.5 }), "TopP"},
		{"negative top-p", m, nil, genPrompts, with(func(c *GenerateConfig) { c.TopP = -0.1 }), "TopP"},
		{"NaN top-p", m, nil, genPrompts, with(func(c *GenerateConfig) { c.TopP = math.NaN() }), "TopP"},
		{"min-p above 1", m, nil, genPrompts, with(func(c *GenerateConfig) { c.MinP = 2 }), "MinP"},
		{"negative min-p", m, nil, genPrompts, with(func(c *GenerateConfig) { c.MinP = -1 }), "MinP"},
		{"stop token range", m, nil, genPrompts, with(func(c *GenerateConfig) { c.StopTokens = []int32{11} }), "stop token 11"},
		{"stop strings without tokenizer", m, nil, genPrompts, with(func(c *GenerateConfig) { c.StopStrings = []string{"x"} }), "need a tokenizer"},
		{"empty stop string", m, newFakeTok(-1, -1), genPrompts, with(func(c *GenerateConfig) { c.StopStrings = []string{"x", ""} }), "stop string 1 is empty"},
		{"seeds", m, nil, genPrompts, with(func(c *GenerateConfig) { c.Seeds = []uint64{1} }), "1 Seeds for 4 prompts"},
	}
	for _, c := range cases {
		out, err := Generate(c.m, c.tok, c.prompts, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || out != nil {
			t.Errorf("%s: %v, %v; want no completions and an error containing %q", c.name, out, err, c.want)
		}
	}
}

// probsOf returns normalised probabilities.
func probsOf(w ...float64) []float64 {
	s := 0.0
	for _, v := range w {
		s += v
	}
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = v / s
	}
	return out
}

func logsOf(p ...float64) []float32 {
	out := make([]float32, len(p))
	for i, v := range p {
		out[i] = float32(math.Log(v))
	}
	return out
}

// TestSamplerDistribution sweeps u over [0, 1) and checks that each token
// is drawn with the filtered distribution's probability, which its sample
// log-prob must also state, while the policy log-prob stays log-softmax.
func TestSamplerDistribution(t *testing.T) {
	x := logsOf(0.1, 0.4, 0.2, 0.3)
	sq := func(v float64) float64 { return math.Sqrt(v) }
	cases := []struct {
		name string
		cfg  GenerateConfig
		x    []float32
		want []float64
	}{
		{"greedy", GenerateConfig{}, x, []float64{0, 1, 0, 0}},
		{"temperature 1", GenerateConfig{Temperature: 1}, x, []float64{0.1, 0.4, 0.2, 0.3}},
		{"temperature 2", GenerateConfig{Temperature: 2}, x, probsOf(sq(0.1), sq(0.4), sq(0.2), sq(0.3))},
		{"top-k 2", GenerateConfig{Temperature: 1, TopK: 2}, x, probsOf(0, 0.4, 0, 0.3)},
		{"top-k above vocab", GenerateConfig{Temperature: 1, TopK: 9}, x, []float64{0.1, 0.4, 0.2, 0.3}},
		{"top-p 0.5", GenerateConfig{Temperature: 1, TopP: 0.5}, x, probsOf(0, 0.4, 0, 0.3)},
		{"top-p 0.35", GenerateConfig{Temperature: 1, TopP: 0.35}, x, []float64{0, 1, 0, 0}},
		{"top-p 0.8", GenerateConfig{Temperature: 1, TopP: 0.8}, x, probsOf(0, 0.4, 0.2, 0.3)},
		{"min-p 0.6", GenerateConfig{Temperature: 1, MinP: 0.6}, x, probsOf(0, 0.4, 0, 0.3)},
		{"min-p 0.45", GenerateConfig{Temperature: 1, MinP: 0.45}, x, probsOf(0, 0.4, 0.2, 0.3)},
		// Top-p measures mass among top-k's survivors: 0.4/0.9 < 0.6.
		{"top-k then top-p", GenerateConfig{Temperature: 1, TopK: 3, TopP: 0.6}, x, probsOf(0, 0.4, 0, 0.3)},
		// Min-p after temperature 2: weights sqrt(p/0.4) >= 0.75 keep 0.3.
		{"temperature then min-p", GenerateConfig{Temperature: 2, MinP: 0.75}, x, probsOf(0, sq(0.4), 0, sq(0.3))},
		{"greedy tie", GenerateConfig{}, []float32{1, 3, 3, 0}, []float64{0, 1, 0, 0}},
		{"top-k tie", GenerateConfig{Temperature: 1, TopK: 1}, []float32{1, 3, 3, 0}, []float64{0, 1, 0, 0}},
		{"-Inf logits", GenerateConfig{Temperature: 1}, []float32{float32(math.Inf(-1)), 0, 0}, []float64{0, 0.5, 0.5}},
	}
	const N = 20000
	for _, c := range cases {
		s := newSampler(c.cfg)
		policy := logSoftmax(c.x)
		count := make([]float64, len(c.x))
		for k := range N {
			d, err := s.sample(c.x, (float64(k)+0.5)/N)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			count[d.tok]++
			if math.Abs(d.policy-policy[d.tok]) > 1e-9 {
				t.Errorf("%s: policy log-prob %g of token %d, want %g", c.name, d.policy, d.tok, policy[d.tok])
			}
			if want := math.Log(c.want[d.tok]); math.Abs(d.sample-want) > 1e-6 {
				t.Errorf("%s: sample log-prob %g of token %d, want %g", c.name, d.sample, d.tok, want)
				break
			}
		}
		for i := range count {
			if got := count[i] / N; math.Abs(got-c.want[i]) > 1e-3 {
				t.Errorf("%s: token %d drawn with frequency %.4f, want %.4f", c.name, i, got, c.want[i])
			}
		}
	}
}

// TestSamplerNucleusLargeVocab checks top-p's thresholded sort against a
// full sort, on logits where the first threshold holds too little mass.
func TestSamplerNucleusLargeVocab(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]float32, 1000)
	for i := range random {
		random[i] = float32(rng.NormFloat64() * 3)
	}
	peaked := make([]float32, 1000)
	peaked[17] = 10
	for _, c := range []struct {
		name string
		x    []float32
		topP float64
	}{{"random", random, 0.9}, {"random narrow", random, 0.2}, {"peaked", peaked, 0.99}, {"peaked all", peaked, 0.99999}} {
		s := newSampler(GenerateConfig{Temperature: 1, TopP: c.topP})
		order := make([]int, len(c.x))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return -cmpF(c.x[a], c.x[b]) })
		p := logSoftmax(c.x)
		var want []int32
		cum := 0.0
		for _, i := range order {
			want = append(want, int32(i))
			if cum += math.Exp(p[i]); cum >= c.topP*(1-1e-12) {
				break
			}
		}
		mx := float64(slices.Max(c.x))
		got := slices.Clone(s.filter(c.x, mx))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s top-p %g: kept %d tokens %v, nucleus has %d: %v", c.name, c.topP, len(got), head(got), len(want), head(want))
		}
		// Draws stay inside the nucleus.
		for k := range 1000 {
			d, err := s.sample(c.x, (float64(k)+0.5)/1000)
			if err != nil {
				t.Fatal(err)
			}
			if _, in := slices.BinarySearch(want, d.tok); !in {
				t.Errorf("%s top-p %g: drew token %d outside the nucleus", c.name, c.topP, d.tok)
				break
			}
		}
	}
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func head(ids []int32) []int32 { return ids[:min(len(ids), 8)] }

// TestSamplerRoundingFallback checks that a target past the last
// cumulative weight (u = 1 stands in for rounding) takes the last token
// that can be drawn, never one of probability 0.
func TestSamplerRoundingFallback(t *testing.T) {
	x := []float32{0, 0, float32(math.Inf(-1))}
	d, err := newSampler(GenerateConfig{Temperature: 1}).sample(x, 1)
	if err != nil || d.tok != 1 || math.Abs(d.sample-math.Log(0.5)) > 1e-12 {
		t.Errorf("u = 1: token %d, sample log-prob %g, error %v; want token 1, log 0.5", d.tok, d.sample, err)
	}
}

func TestSamplerErrors(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, x := range [][]float32{{0, float32(math.NaN())}, {inf, 0}, {-inf, -inf}} {
		for _, temp := range []float64{0, 1} {
			if _, err := newSampler(GenerateConfig{Temperature: temp}).sample(x, 0.5); err == nil {
				t.Errorf("logits %v at temperature %g: no error", x, temp)
			}
		}
	}
}

// BenchmarkDecode measures generation with a small SmolLM-like model
// (width 192, 6 layers, 3 query and 1 key/value heads, vocabulary 8192):
// a 16-token prompt per row, then 64 sampled tokens.
func BenchmarkDecode(b *testing.B) {
	cfg := Config{ModelType: "llama", VocabSize: 8192, HiddenSize: 192, IntermediateSize: 512, NumHiddenLayers: 6,
		NumAttentionHeads: 3, NumKeyValueHeads: 1, TieWordEmbeddings: true, MaxPositionEmbeddings: 2048}
	m, err := New(cfg, be, tensor.Float32, 1)
	if err != nil {
		b.Fatal(err)
	}
	const newTokens = 64
	for _, batch := range []int{1, 8} {
		prompts := make([][]int32, batch)
		for i := range prompts {
			for j := range 16 {
				prompts[i] = append(prompts[i], int32((i*31+j*7)%cfg.VocabSize))
			}
		}
		gc := GenerateConfig{MaxNewTokens: newTokens, Temperature: 0.8, TopK: 50, TopP: 0.95, StopTokens: []int32{}}
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for b.Loop() {
				if _, err := Generate(m, nil, prompts, gc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch*newTokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
