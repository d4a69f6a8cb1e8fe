package rl

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minnowml/minnow/data"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// arithSetup is a tiny Llama and tokenizer for the arithmetic task, with
// train and held-out problems.
type arithSetup struct {
	m           model.Model
	tok         tokenizer.Tokenizer
	train, held []data.Problem
	eos         int32
}

func arithPrompt(p data.Problem) string     { return p.Question + "\n" }
func arithCompletion(p data.Problem) string { return p.Solution + "\n#### " + p.Answer }

func newArith(t *testing.T, cfg data.ArithConfig) *arithSetup {
	t.Helper()
	probs, err := data.GenerateArith(cfg, 1, 700)
	if err != nil {
		t.Fatal(err)
	}
	var corpus strings.Builder
	for _, p := range probs {
		corpus.WriteString(arithPrompt(p) + arithCompletion(p) + "\n")
	}
	v, err := tokenizer.Train(strings.NewReader(corpus.String()), tokenizer.TrainConfig{VocabSize: 300, Special: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.Config{ModelType: "llama", VocabSize: len(v.Tokens), HiddenSize: 64,
		IntermediateSize: 128, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		MaxPositionEmbeddings: 96, TieWordEmbeddings: true}, tensor.Default(), tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &arithSetup{m: m, tok: tok, train: probs[:500], held: probs[500:], eos: v.EOS}
}

func (a *arithSetup) encode(s string) []int32 { return a.tok.Encode(s, tokenizer.EncodeOptions{}) }

// sft trains on worked solutions with the completion log-likelihood.
func (a *arithSetup) sft(t *testing.T, steps, batch int, lr float64) {
	opt := adamFor(t, a.m, lr)
	for s := range steps {
		var ps, cs [][]int32
		n := 0
		for i := range batch {
			p := a.train[(s*batch+i)%len(a.train)]
			ps = append(ps, a.encode(arithPrompt(p)))
			c := append(a.encode(arithCompletion(p)), a.eos)
			cs = append(cs, c)
			n += len(c)
		}
		lp, err := CompletionLogProbs(a.m, ps, cs, LogProbOptions{})
		if err != nil {
			t.Fatal(err)
		}
		loss := lp.Values.Sum().Scale(-1 / float64(n))
		loss.Backward()
		if err := opt.Step(lr, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// sftWeights caches the weights after sftArith's training, so that each
// test that starts from the SFT model pays for it once.
var sftWeights [][]float32

// sftArith returns the arithmetic setup with a model supervised on worked
// solutions until it is right about a quarter of the time.
func sftArith(t *testing.T) *arithSetup {
	t.Helper()
	a := newArith(t, data.ArithConfig{MinDigits: 1, MaxDigits: 2})
	if sftWeights == nil {
		a.sft(t, 350, 16, 3e-3)
		for _, p := range a.m.Params() {
			sftWeights = append(sftWeights, p.Tensor.Float32s())
		}
		return a
	}
	for i, p := range a.m.Params() {
		p.Tensor.CopyFrom(tensor.From(p.Tensor.Backend(), p.Tensor.DType(), sftWeights[i], p.Tensor.Shape()...))
	}
	return a
}

// accuracy is the greedy held-out accuracy (a "#### N" answer equal to
// the reference) and mean completion length, through Evaluate.
func (a *arithSetup) accuracy(t *testing.T) (float64, float64) {
	t.Helper()
	am, err := NewAnswerMatch(AnswerMatchConfig{Extract: []string{ExtractGSM8K}})
	if err != nil {
		t.Fatal(err)
	}
	var ps []Prompt
	for i, p := range a.held {
		ps = append(ps, Prompt{ID: uint64(i), Text: arithPrompt(p), IDs: a.encode(arithPrompt(p)), Columns: map[string]string{"answer": p.Answer}})
	}
	res, err := Evaluate(context.Background(), a.m, a.tok, ps, Rewards{{Reward: am, Weight: 1}}, 48, SamplingConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Each["answer_match"] != res.Reward {
		t.Fatalf("evaluation: total %v, answer_match %v", res.Reward, res.Each["answer_match"])
	}
	return res.Reward, res.Length
}

// TestGRPOArithRaisesAccuracy is the short version of the issue's
// demonstration: a tiny Llama trained from scratch on worked solutions of
// the arithmetic task (1- and 2-digit additions) until it is right about a
// quarter of the time, then trained with GRPO on the answer-match reward,
// gains held-out greedy accuracy and sampled reward within 80 steps.
func TestGRPOArithRaisesAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("about 20 s of training")
	}
	start := time.Now()
	a := sftArith(t)
	acc0, len0 := a.accuracy(t)
	am, err := NewAnswerMatch(AnswerMatchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var prompts []Prompt
	for i, p := range a.train {
		prompts = append(prompts, Prompt{ID: uint64(i), Text: arithPrompt(p), IDs: a.encode(arithPrompt(p)),
			Columns: map[string]string{"answer": p.Answer}})
	}
	tr := &GRPOTrainer{Policy: a.m, Tok: a.tok, Opt: adamFor(t, a.m, 1e-4), Rewards: Rewards{{Reward: am, Weight: 1}},
		Prompts: prompts, Config: GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 8, MaxCompletionLength: 40},
			Sampling: SamplingConfig{Seed: 1, Temperature: 0.6}, PromptsPerStep: 8, ClipNorm: 1}}
	const steps, window = 80, 20
	var first, last float64
	for s := 1; s <= steps; s++ {
		met, err := tr.Step(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if s <= window {
			first += met.Reward / window
		}
		if s > steps-window {
			last += met.Reward / window
		}
	}
	acc, l := a.accuracy(t)
	t.Logf("held-out accuracy %.3f -> %.3f (length %.1f -> %.1f); sampled reward %.3f -> %.3f; %v",
		acc0, acc, len0, l, first, last, time.Since(start).Round(time.Second))
	if !(acc >= acc0+0.05) || !(last > first+0.03) {
		t.Errorf("GRPO did not raise accuracy (%.3f -> %.3f) and reward (%.3f -> %.3f) enough", acc0, acc, first, last)
	}
}

// TestDPOArithPreferences: DPO on pairs built from the SFT model's own
// samples of the task (correct and concise over wrong) learns to prefer
// the right answer on held-out pairs of unseen problems.
func TestDPOArithPreferences(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s of training")
	}
	start := time.Now()
	a := sftArith(t)
	am, err := NewAnswerMatch(AnswerMatchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pairsOf := func(probs []data.Problem, step int) []Pair {
		var ps [][]int32
		var ids []uint64
		for i, p := range probs {
			ps = append(ps, a.encode(arithPrompt(p)))
			ids = append(ids, uint64(i))
		}
		const G = 8
		r, err := Generate(a.m, a.tok, ps, ids, step, G, 40, SamplingConfig{Seed: 3, Temperature: 0.8}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rb := RewardBatch{Completions: r.Texts, CompletionIDs: r.Completions, Prompts: make([]string, len(r.Texts)), Columns: map[string][]string{}}
		for _, p := range probs {
			for range G {
				rb.Columns["answer"] = append(rb.Columns["answer"], p.Answer)
			}
		}
		sc, err := Rewards{{Reward: am, Weight: 1}}.Score(context.Background(), rb)
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := PairsFromGroups(r, sc.Total, G)
		if err != nil {
			t.Fatal(err)
		}
		return pairs
	}
	trainPairs, heldPairs := pairsOf(a.train, 1), pairsOf(a.held, 2)
	loss, st := trainDPO(t, a.m, trainPairs, heldPairs, 60)
	acc, l := a.accuracy(t)
	t.Logf("%d train and %d held-out pairs; held-out loss %.3f, preference accuracy %.3f, margin %.3f; greedy accuracy %.3f, length %.1f; %v",
		len(trainPairs), len(heldPairs), loss, st.Accuracy, st.Margin, acc, l, time.Since(start).Round(time.Second))
	// The demonstration asks for 90%; this short run on the
	// model's own samples reaches 69% to 80% depending on the thread
	// count, and the bar guards against regressions: a model that did not
	// learn the preference sits near 50%, the reference itself at 0 (no
	// margin).
	if !(st.Accuracy >= 0.62) || !(loss < math.Ln2) {
		t.Errorf("held-out preference accuracy %.3f, loss %.3f; want at least 0.62 and below log 2", st.Accuracy, loss)
	}
}

// TestRolloutStopStrings: with a real tokenizer, a stop string ends a
// completion on both rollout paths, its text is cut before the string,
// and the two paths agree.
func TestRolloutStopStrings(t *testing.T) {
	a := newArith(t, data.ArithConfig{MinDigits: 1, MaxDigits: 2})
	var ps [][]int32
	for _, p := range a.held[:4] {
		ps = append(ps, a.encode(arithPrompt(p)))
	}
	cfg := SamplingConfig{Seed: 4, StopStrings: []string{"1"}}
	want, err := Generate(a.m, a.tok, ps, []uint64{0, 1, 2, 3}, 0, 3, 30, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(a.m, a.tok, ps, []uint64{0, 1, 2, 3}, 0, 3, 30, cfg, &noop{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := 0
	for i := range want.Texts {
		if !slices.Equal(got.Completions[i], want.Completions[i]) || got.Texts[i] != want.Texts[i] || got.Truncated[i] != want.Truncated[i] {
			t.Errorf("completion %d: decoder %q %v, generate %q %v", i, got.Texts[i], got.Completions[i], want.Texts[i], want.Completions[i])
		}
		if strings.Contains(got.Texts[i], "1") {
			t.Errorf("completion %d text %q holds the stop string", i, got.Texts[i])
		}
		if full := a.tok.Decode(got.Completions[i], tokenizer.DecodeOptions{}); strings.Contains(full, "1") {
			stopped++
			if got.Truncated[i] || !strings.HasPrefix(full, got.Texts[i]+"1") {
				t.Errorf("completion %d: text %q is not the decoded %q cut at the stop string", i, got.Texts[i], full)
			}
		}
	}
	if stopped == 0 {
		t.Error("no completion met the stop string; the test checks nothing")
	}
}

// trainDPO trains m with DPO (β 0.1, lr 1e-4, 8 pairs per update) on
// train for steps updates, against m's own log-probs before training, and
// returns the held-out loss and statistics.
func trainDPO(t *testing.T, m model.Model, train, held []Pair, steps int) (float64, DPOStats) {
	t.Helper()
	ref := ModelReference{Model: m}
	trRef, err := LoadOrComputeRefLogps("", "", ref, train, 16)
	if err != nil {
		t.Fatal(err)
	}
	evRef, err := LoadOrComputeRefLogps("", "", ref, held, 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DPOConfig{Beta: 0.1}
	tr := &DPOTrainer{Policy: m, Opt: adamFor(t, m, 1e-4), Pairs: train, Ref: trRef,
		Config: DPOTrainerConfig{DPO: cfg, BatchPairs: 8, ClipNorm: 1, Seed: 1}}
	for s := 1; s <= steps; s++ {
		if _, err := tr.Step(s); err != nil {
			t.Fatal(err)
		}
	}
	loss, st, err := EvaluateDPO(m, cfg, held, evRef, 16)
	if err != nil {
		t.Fatal(err)
	}
	return loss, st
}
