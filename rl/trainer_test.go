package rl

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/train"
)

// tokenShare rewards the share of a completion's tokens that equal want, a
// task a tiny random model can learn in a few steps.
type tokenShare struct{ want int32 }

func (r tokenShare) Name() string { return "answer_match" }
func (r tokenShare) Score(_ context.Context, b RewardBatch) ([]float64, error) {
	out := make([]float64, b.Len())
	for i, ids := range b.CompletionIDs {
		for _, id := range ids {
			if id == r.want {
				out[i] += 1 / float64(len(ids))
			}
		}
	}
	return out, nil
}

func adamFor(t testing.TB, m model.Model, lr float64) *train.AdamW {
	t.Helper()
	var g train.ParamGroup
	for _, p := range m.Params() {
		g.Params = append(g.Params, p.Tensor)
	}
	g.NoDecay = true
	opt, err := train.NewAdamW(train.AdamWConfig{LR: lr}, g)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// TestGRPOTrainerRaisesReward: GRPO on a tiny random model raises the
// reward of a simple token-level task over 15 steps, with every loss type
// path exercised through the trainer (num_iterations 2, beta > 0 with the
// initial model as reference, micro-batches, dynamic sampling).
func TestGRPOTrainerRaisesReward(t *testing.T) {
	tests := []struct {
		name string
		grpo GRPOConfig
	}{
		{"dapo", GRPOConfig{NumGenerations: 8, MaxCompletionLength: 4, EpsilonHigh: 0.28}},
		{"grpo+kl+mu2+dynamic", GRPOConfig{NumGenerations: 8, MaxCompletionLength: 4, LossType: LossGRPO, Beta: 0.02,
			NumIterations: 2, DynamicSampling: true}},
		{"bnpo+tempered+mu2", GRPOConfig{NumGenerations: 8, MaxCompletionLength: 4, LossType: LossBNPO, Beta: 0.02,
			NumIterations: 2, TemperatureScaledLogProbs: true}},
		{"dr_grpo+scale_none", GRPOConfig{NumGenerations: 8, MaxCompletionLength: 4, LossType: LossDrGRPO,
			ScaleRewards: ScaleNone}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel(t, 16, 21)
			ref := tinyModel(t, 16, 21) // the same initial weights, frozen
			var prompts []Prompt
			for i := range 8 {
				prompts = append(prompts, Prompt{ID: uint64(i), Text: "p", IDs: []int32{int32(1 + i), int32(2 + i%3)}})
			}
			var buf bytes.Buffer
			tr := &GRPOTrainer{Policy: m, Opt: adamFor(t, m, 3e-2), Rewards: Rewards{{Reward: tokenShare{want: 5}, Weight: 1}},
				Ref: ModelReference{Model: ref}, Prompts: prompts, Metrics: &buf,
				Config: GRPOTrainerConfig{GRPO: tc.grpo, Sampling: SamplingConfig{Seed: 1, Temperature: 0.9, StopTokens: []int32{0}},
					PromptsPerStep: 4, MicroBatch: 12, ClipNorm: 1, SampleEvery: 5}}
			var first, last float64
			const steps = 15
			for s := 1; s <= steps; s++ {
				met, err := tr.Step(context.Background(), s)
				if err != nil {
					t.Fatal(err)
				}
				if s <= 3 {
					first += met.Reward / 3
				}
				if s > steps-3 {
					last += met.Reward / 3
				}
			}
			t.Logf("mean reward of the first 3 steps %.3f, of the last 3 %.3f", first, last)
			if !(last > first+0.3) {
				t.Errorf("reward went from %.3f to %.3f; want a rise of more than 0.3", first, last)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != steps {
				t.Fatalf("%d metrics lines for %d steps", len(lines), steps)
			}
			var met map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &met); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"reward", "reward_std", "rewards", "accuracy", "frac_reward_zero_std", "kl", "clip_ratio_low",
				"clip_ratio_high", "clip_ratio_region", "entropy", "completion_length_mean", "completion_length_min", "completion_length_max", "grad_norm"} {
				if _, ok := met[k]; !ok {
					t.Errorf("metrics line lacks %q: %s", k, lines[len(lines)-1])
				}
			}
			if tc.grpo.Beta != 0 && met["kl"].(float64) <= 0 {
				t.Errorf("KL against the initial model is %v after training", met["kl"])
			}
		})
	}
}

// TestGRPOTrainerMasksTruncated: when every completion is truncated and
// mask_truncated_completions is on, nothing is trained on and the
// weights stay as they were.
func TestGRPOTrainerMasksTruncated(t *testing.T) {
	m := tinyModel(t, 16, 61)
	before := m.Params()[0].Tensor.Float32s()
	tr := &GRPOTrainer{Policy: m, Opt: adamFor(t, m, 1e-2), Rewards: Rewards{{Reward: tokenShare{want: 5}, Weight: 1}},
		Prompts: []Prompt{{ID: 1, IDs: []int32{1, 2}}, {ID: 2, IDs: []int32{3}}},
		Config: GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 4, MaxCompletionLength: 3, MaskTruncatedCompletions: true},
			Sampling: SamplingConfig{Seed: 1, StopTokens: []int32{}}, PromptsPerStep: 2}}
	met, err := tr.Step(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if met.Tokens != 0 || met.TruncatedFrac != 1 || met.GradNorm != 0 {
		t.Errorf("tokens %d, truncated %v, grad norm %v; want 0, 1, 0", met.Tokens, met.TruncatedFrac, met.GradNorm)
	}
	if !slices.Equal(before, m.Params()[0].Tensor.Float32s()) {
		t.Error("masked completions changed the weights")
	}
}

// flatOr gives every completion of a "flat" prompt the same reward and
// scores the rest with tokenShare.
type flatOr struct{ tokenShare }

func (r flatOr) Score(ctx context.Context, b RewardBatch) ([]float64, error) {
	out, _ := r.tokenShare.Score(ctx, b)
	for i, p := range b.Prompts {
		if p == "flat" {
			out[i] = 1
		}
	}
	return out, nil
}

// TestGRPOTrainerDynamicSampling: groups with equal rewards are dropped
// and refilled from more prompts, up to the cap of rounds.
func TestGRPOTrainerDynamicSampling(t *testing.T) {
	var prompts []Prompt
	for i := range 8 {
		text := "flat"
		if i%4 == 0 {
			text = "live"
		}
		prompts = append(prompts, Prompt{ID: uint64(i), Text: text, IDs: []int32{int32(1 + i), 2}})
	}
	for _, tc := range []struct {
		rounds  int
		dynamic bool
	}{{3, true}, {1, true}, {0, false}} {
		m := tinyModel(t, 16, 71)
		tr := &GRPOTrainer{Policy: m, Opt: adamFor(t, m, 1e-3), Rewards: Rewards{{Reward: flatOr{tokenShare{want: 5}}, Weight: 1}},
			Prompts: prompts, Config: GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 4, MaxCompletionLength: 6,
				DynamicSampling: tc.dynamic, MaxResampleRounds: tc.rounds}, Sampling: SamplingConfig{Seed: 2}, PromptsPerStep: 4}}
		met, err := tr.Step(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if met.FracRewardZeroStd == 0 {
			t.Errorf("rounds %d: no zero-std group among %d prompts, 3 in 4 flat", tc.rounds, 4)
		}
		if !tc.dynamic {
			if met.Groups != 4 || met.ResampleRounds != 0 {
				t.Errorf("without dynamic sampling: %d groups, %d rounds", met.Groups, met.ResampleRounds)
			}
			continue
		}
		if met.ResampleRounds < 1 || met.ResampleRounds > tc.rounds || met.Groups > 4 {
			t.Errorf("rounds cap %d: %d rounds, %d groups", tc.rounds, met.ResampleRounds, met.Groups)
		}
		if met.Groups < 4 && met.ResampleRounds != tc.rounds {
			t.Errorf("stopped after %d of %d rounds with only %d groups", met.ResampleRounds, tc.rounds, met.Groups)
		}
	}
}

func TestGRPOTrainerErrors(t *testing.T) {
	m := tinyModel(t, 16, 1)
	opt := adamFor(t, m, 1e-3)
	ok := Rewards{{Reward: tokenShare{want: 1}, Weight: 1}}
	ps := []Prompt{{IDs: []int32{1}}}
	bad := []*GRPOTrainer{
		{Opt: opt, Rewards: ok, Prompts: ps},
		{Policy: m, Opt: opt, Rewards: ok},
		{Policy: m, Opt: opt, Prompts: ps},
		{Policy: m, Opt: opt, Rewards: ok, Prompts: ps, Config: GRPOTrainerConfig{GRPO: GRPOConfig{Beta: 0.1}}},
		{Policy: m, Opt: opt, Rewards: ok, Prompts: ps, Config: GRPOTrainerConfig{GRPO: GRPOConfig{LossType: "x"}}},
	}
	for i, tr := range bad {
		if _, err := tr.Step(context.Background(), 1); err == nil {
			t.Errorf("trainer %d: no error", i)
		}
	}
}

// TestDPOTrainerLearnsPreference: DPO on pairs whose chosen completions
// repeat one token and rejected ones another raises the held-out
// preference accuracy above 90% and lowers the held-out loss below
// log 2, its value at the reference.
func TestDPOTrainerLearnsPreference(t *testing.T) {
	m := tinyModel(t, 16, 31)
	mkPairs := func(lo, hi int) []Pair {
		var ps []Pair
		for i := lo; i < hi; i++ {
			p := []int32{int32(1 + i%11), int32(2 + i%5), int32(3 + i%7)}
			n := 2 + i%3
			ch, rj := make([]int32, n), make([]int32, n)
			for j := range n {
				ch[j], rj[j] = 12, int32(13+j%2)
			}
			ps = append(ps, Pair{Prompt: p, Chosen: ch, Rejected: rj})
		}
		return ps
	}
	trainPairs, heldOut := mkPairs(0, 24), mkPairs(24, 40)
	ref := ModelReference{Model: m}
	trRef, err := LoadOrComputeRefLogps("", "", ref, trainPairs, 8)
	if err != nil {
		t.Fatal(err)
	}
	evRef, err := LoadOrComputeRefLogps("", "", ref, heldOut, 8)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DPOConfig{Beta: 0.1}
	loss0, st0, err := EvaluateDPO(m, cfg, heldOut, evRef, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !near(loss0, math.Ln2, 1e-6) || st0.Margin != 0 {
		t.Errorf("at the reference: loss %v (want log 2), margin %v", loss0, st0.Margin)
	}
	var buf bytes.Buffer
	tr := &DPOTrainer{Policy: m, Opt: adamFor(t, m, 1e-2), Pairs: trainPairs, Ref: trRef, Metrics: &buf,
		Config: DPOTrainerConfig{DPO: cfg, BatchPairs: 8, ClipNorm: 1, Seed: 4}}
	for s := 1; s <= 15; s++ {
		if _, err := tr.Step(s); err != nil {
			t.Fatal(err)
		}
	}
	loss, st, err := EvaluateDPO(m, cfg, heldOut, evRef, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out loss %.4f -> %.4f, accuracy %.3f, margin %.3f", loss0, loss, st.Accuracy, st.Margin)
	if !(st.Accuracy > 0.9) || !(loss < loss0) {
		t.Errorf("held-out accuracy %v, loss %v (from %v)", st.Accuracy, loss, loss0)
	}
	if n := strings.Count(buf.String(), "\n"); n != 15 {
		t.Errorf("%d metrics lines for 15 steps", n)
	}
}

// byteEncode is a stand-in tokenizer for tests: one id per byte.
func byteEncode(s string) []int32 {
	ids := make([]int32, len(s))
	for i := range len(s) {
		ids[i] = int32(1 + int(s[i])%15)
	}
	return ids
}

func TestTLDRConditioner(t *testing.T) {
	cond, err := TLDRConfig{Levels: testLevels}.Conditioner(3, byteEncode)
	if err != nil {
		t.Fatal(err)
	}
	p := Prompt{ID: 7, Text: "1+2?", IDs: []int32{1}, Columns: map[string]string{"answer": "3"}}
	a, err := cond(4, p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cond(4, p)
	lv := a.Columns["level"]
	if _, ok := (TLDRConfig{Levels: testLevels}).Level(lv); !ok || b.Columns["level"] != lv {
		t.Fatalf("levels %q and %q", lv, b.Columns["level"])
	}
	if a.Text != "Think "+lv+".\n1+2?" || !slices.Equal(a.IDs, byteEncode(a.Text)) || a.Columns["answer"] != "3" {
		t.Errorf("conditioned prompt %+v", a)
	}
	if _, ok := p.Columns["level"]; ok {
		t.Error("the conditioner wrote into the caller's columns")
	}
	seen := map[string]bool{}
	for step := range 30 {
		q, _ := cond(step, p)
		seen[q.Columns["level"]] = true
	}
	if len(seen) != 3 {
		t.Errorf("30 steps sampled levels %v", seen)
	}
	if _, err := (TLDRConfig{Levels: testLevels}).Conditioner(1, nil); err == nil {
		t.Error("nil encoder: no error")
	}
}

// TestGRPOTrainerTLDRShortens: GRPO with TLDR's length term alone, levels
// in the prompt, shortens the completions of a tiny model.
func TestGRPOTrainerTLDRShortens(t *testing.T) {
	m := tinyModel(t, 16, 41)
	cfg := TLDRConfig{Levels: []TLDRLevel{{Name: "s", Budget: 4, Lambda: 1}, {Name: "l", Budget: 8, Lambda: 0.5}}}
	cond, err := cfg.Conditioner(5, byteEncode)
	if err != nil {
		t.Fatal(err)
	}
	length, err := NewTLDRReward(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var prompts []Prompt
	for i := range 8 {
		prompts = append(prompts, Prompt{ID: uint64(i), Text: string(rune('a' + i))})
	}
	tr := &GRPOTrainer{Policy: m, Opt: adamFor(t, m, 3e-2), Rewards: Rewards{{Reward: length, Weight: 1}},
		Prompts: prompts, Condition: cond,
		Config: GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 8, MaxCompletionLength: 8},
			Sampling: SamplingConfig{Seed: 1, StopTokens: []int32{0}}, PromptsPerStep: 4, ClipNorm: 1}}
	var first, last float64
	for s := 1; s <= 15; s++ {
		met, err := tr.Step(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if s <= 3 {
			first += met.LengthMean / 3
		}
		if s > 12 {
			last += met.LengthMean / 3
		}
	}
	t.Logf("mean completion length %.2f -> %.2f", first, last)
	if !(last < 0.6*first) {
		t.Errorf("mean length went from %.2f to %.2f; want a cut of over 40%%", first, last)
	}
}

// TestGRPOTrainerResumesExactly: a run stopped after step 2 and resumed
// into a fresh model and optimizer holding the same weights and state
// samples and trains exactly as the uninterrupted run at steps 3 and 4.
func TestGRPOTrainerResumesExactly(t *testing.T) {
	var prompts []Prompt
	for i := range 6 {
		prompts = append(prompts, Prompt{ID: uint64(100 + i), Text: "p", IDs: []int32{int32(1 + i), 3}})
	}
	newTrainer := func() *GRPOTrainer {
		m := tinyModel(t, 16, 51)
		return &GRPOTrainer{Policy: m, Opt: adamFor(t, m, 1e-2), Rewards: Rewards{{Reward: tokenShare{want: 4}, Weight: 1}},
			Prompts: prompts, Config: GRPOTrainerConfig{GRPO: GRPOConfig{NumGenerations: 4, MaxCompletionLength: 5, NumIterations: 2},
				Sampling: SamplingConfig{Seed: 8, TopP: 0.9, StopTokens: []int32{0}}, PromptsPerStep: 4}}
	}
	full := newTrainer()
	var want []GRPOMetric
	for s := 1; s <= 4; s++ {
		met, err := full.Step(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, met)
	}
	first := newTrainer()
	for s := 1; s <= 2; s++ {
		if _, err := first.Step(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	resumed := newTrainer()
	for i, p := range resumed.Policy.Params() {
		p.Tensor.CopyFrom(first.Policy.Params()[i].Tensor)
	}
	st, mom, vel := first.Opt.State()
	if err := resumed.Opt.SetState(st, mom, vel); err != nil {
		t.Fatal(err)
	}
	for s := 3; s <= 4; s++ {
		got, err := resumed.Step(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		w := want[s-1]
		if got.Loss != w.Loss || got.Reward != w.Reward || got.LengthMean != w.LengthMean || got.GradNorm != w.GradNorm {
			t.Errorf("step %d resumed: loss %v reward %v length %v grad %v; uninterrupted: %v %v %v %v",
				s, got.Loss, got.Reward, got.LengthMean, got.GradNorm, w.Loss, w.Reward, w.LengthMean, w.GradNorm)
		}
	}
}

func TestEvaluate(t *testing.T) {
	m := tinyModel(t, 16, 81)
	ps := []Prompt{{ID: 1, IDs: []int32{1, 2}}, {ID: 2, IDs: []int32{3}}}
	rs := Rewards{{Reward: tokenShare{want: 5}, Weight: 2}}
	for _, proc := range []LogitProcessor{nil, &noop{}} {
		res, err := Evaluate(context.Background(), m, nil, ps, rs, 6, SamplingConfig{Seed: 1, StopTokens: []int32{0}}, proc)
		if err != nil {
			t.Fatal(err)
		}
		if !near(res.Reward, 2*res.Each["answer_match"], 1e-12) || res.Length <= 0 || res.Length > 6 || res.Truncated < 0 || res.Truncated > 1 {
			t.Errorf("proc %v: %+v", proc != nil, res)
		}
	}
	// Greedy decoding repeats itself.
	a, _ := Evaluate(context.Background(), m, nil, ps, rs, 6, SamplingConfig{StopTokens: []int32{0}}, nil)
	b, _ := Evaluate(context.Background(), m, nil, ps, rs, 6, SamplingConfig{StopTokens: []int32{0}}, nil)
	if a.Reward != b.Reward || a.Length != b.Length {
		t.Errorf("greedy evaluations differ: %+v, %+v", a, b)
	}
	if _, err := Evaluate(context.Background(), m, nil, nil, rs, 6, SamplingConfig{}, nil); err == nil {
		t.Error("no prompts: no error")
	}
}
