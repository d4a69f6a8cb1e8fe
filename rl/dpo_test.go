package rl

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

// tinyModel returns a small random Llama for tests.
func tinyModel(t testing.TB, vocab int, seed uint64) model.Model {
	t.Helper()
	m, err := model.New(model.Config{ModelType: "llama", VocabSize: vocab, HiddenSize: 32,
		IntermediateSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		MaxPositionEmbeddings: 64, TieWordEmbeddings: true}, tensor.Default(), tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func logSigmoid(x float64) float64 { return -math.Log1p(math.Exp(-x)) }

func mustDPO(t *testing.T, c DPOConfig) DPOConfig {
	t.Helper()
	c, err := c.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDPOSanity reproduces METHODS §4: beta 0.1, policy -10 / -12,
// reference -11 / -11, so Δ = 2 and the loss is -log σ(0.2) = 0.598; and
// checks the label-smoothed, IPO and SimPO forms on the same pair.
func TestDPOSanity(t *testing.T) {
	in := DPOInput{
		Chosen: tensor.FromFloat64([]float64{-10}, 1), Rejected: tensor.FromFloat64([]float64{-12}, 1),
		RefChosen: []float64{-11}, RefRejected: []float64{-11},
		ChosenLens: []int{4}, RejectedLens: []int{5},
	}
	tests := []struct {
		name string
		cfg  DPOConfig
		want float64
		tol  float64
	}{
		{"sigmoid rounded", DPOConfig{Beta: 0.1}, 0.598, 5e-4},
		{"sigmoid exact", DPOConfig{Beta: 0.1}, -logSigmoid(0.2), 1e-12},
		{"smoothed", DPOConfig{Beta: 0.1, LabelSmoothing: 0.1}, -0.9*logSigmoid(0.2) - 0.1*logSigmoid(-0.2), 1e-12},
		// Δ_avg = (1/4) - (-1/5) = 0.45; 1/(2β) = 5.
		{"ipo", DPOConfig{Beta: 0.1, LossType: DPOIPO}, (0.45 - 5) * (0.45 - 5), 1e-12},
		// β·(-10/4) - β·(-12/5) - γ = -0.25 + 0.24 - 0.5.
		{"simpo", DPOConfig{Beta: 0.1, LossType: DPOSimPO, SimPOGamma: 0.5}, -logSigmoid(-0.25 + 0.24 - 0.5), 1e-12},
		// RPO adds α times the chosen per-token NLL, 10/4.
		{"rpo", DPOConfig{Beta: 0.1, RPOAlpha: 0.5}, -logSigmoid(0.2) + 0.5*10.0/4, 1e-12},
	}
	for _, tc := range tests {
		loss, st, err := DPOLoss(mustDPO(t, tc.cfg), in)
		if err != nil {
			t.Fatal(err)
		}
		if !near(loss.Item(), tc.want, tc.tol) {
			t.Errorf("%s: loss %.9f, want %.9f", tc.name, loss.Item(), tc.want)
		}
		if tc.cfg.LossType == "" && (!near(st.RewardChosen, 0.1, 1e-12) || !near(st.RewardRejected, -0.1, 1e-12) || st.Accuracy != 1 || !near(st.Margin, 0.2, 1e-12)) {
			t.Errorf("%s: stats %+v", tc.name, st)
		}
	}
}

// TestDPOStable: a huge margin must give a finite loss and gradient, which
// -log(sigmoid(x)) would not.
func TestDPOStable(t *testing.T) {
	c := tensor.FromFloat64([]float64{-10, -2000}, 2).SetRequiresGrad(true)
	r := tensor.FromFloat64([]float64{-2000, -10}, 2)
	loss, st, err := DPOLoss(mustDPO(t, DPOConfig{Beta: 1}), DPOInput{Chosen: c, Rejected: r, RefChosen: []float64{0, 0}, RefRejected: []float64{0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	loss.Backward()
	if !near(loss.Item(), 995, 1e-9) || st.Accuracy != 0.5 {
		t.Errorf("loss %v, accuracy %v; want 995 and 0.5", loss.Item(), st.Accuracy)
	}
	for _, g := range c.Grad().Float64s() {
		if math.IsNaN(g) || math.IsInf(g, 0) {
			t.Errorf("gradient %v", c.Grad().Float64s())
		}
	}
}

// TestDPOGradientAtReference: where training starts, policy equal to
// reference (Δ = 0), the gradient is -β·σ(0)/N on each chosen log-prob and
// the opposite on each rejected one, not the 0 a ReLU-built softplus
// would give at its kink.
func TestDPOGradientAtReference(t *testing.T) {
	for _, eps := range []float64{0, 0.2} {
		c := tensor.FromFloat64([]float64{-3, -5}, 2).SetRequiresGrad(true)
		r := tensor.FromFloat64([]float64{-4, -6}, 2).SetRequiresGrad(true)
		loss, _, err := DPOLoss(mustDPO(t, DPOConfig{Beta: 0.1, LabelSmoothing: eps}), DPOInput{Chosen: c, Rejected: r,
			RefChosen: []float64{-3, -5}, RefRejected: []float64{-4, -6}})
		if err != nil {
			t.Fatal(err)
		}
		loss.Backward()
		// Smoothing mixes -(1-eps)σ(0) and +eps·σ(0): (2eps-1)·0.5·β/N.
		want := (2*eps - 1) * 0.5 * 0.1 / 2
		for i := range 2 {
			if g := c.Grad().Float64s()[i]; !near(g, want, 1e-12) {
				t.Errorf("eps %v: dL/dchosen[%d] = %v, want %v", eps, i, g, want)
			}
			if g := r.Grad().Float64s()[i]; !near(g, -want, 1e-12) {
				t.Errorf("eps %v: dL/drejected[%d] = %v, want %v", eps, i, g, -want)
			}
		}
	}
}

func TestDPOGradCheck(t *testing.T) {
	rc := []float64{-3, -4, -2.5}
	rr := []float64{-3.5, -3, -4}
	for _, lt := range []string{DPOSigmoid, DPOIPO, DPOSimPO} {
		cfg := mustDPO(t, DPOConfig{LossType: lt, Beta: 0.5, LabelSmoothing: 0.1, RPOAlpha: 0.3})
		f := func(in []*tensor.Tensor) *tensor.Tensor {
			loss, _, err := DPOLoss(cfg, DPOInput{Chosen: in[0], Rejected: in[1], RefChosen: rc, RefRejected: rr,
				ChosenLens: []int{2, 3, 4}, RejectedLens: []int{5, 1, 2}})
			if err != nil {
				t.Fatal(err)
			}
			return loss
		}
		gradcheck.Check(t, "dpo/"+lt, f,
			tensor.FromFloat64([]float64{-2.7, -4.4, -1.9}, 3).SetRequiresGrad(true),
			tensor.FromFloat64([]float64{-3.1, -3.3, -5.2}, 3).SetRequiresGrad(true))
	}
}

func TestDPOErrors(t *testing.T) {
	x := tensor.FromFloat64([]float64{-1, -2}, 2)
	cfg := mustDPO(t, DPOConfig{})
	bad := []DPOInput{
		{},
		{Chosen: x, Rejected: tensor.FromFloat64([]float64{-1}, 1)},
		{Chosen: x, Rejected: x, RefChosen: []float64{1}, RefRejected: []float64{1, 2}},
	}
	for i, in := range bad {
		if _, _, err := DPOLoss(cfg, in); err == nil {
			t.Errorf("input %d: no error", i)
		}
	}
	ipo := mustDPO(t, DPOConfig{LossType: DPOIPO})
	if _, _, err := DPOLoss(ipo, DPOInput{Chosen: x, Rejected: x, RefChosen: []float64{1, 1}, RefRejected: []float64{1, 1}, ChosenLens: []int{1, 0}, RejectedLens: []int{1, 1}}); err == nil {
		t.Error("ipo with an empty completion: no error")
	}
	for _, c := range []DPOConfig{{LossType: "kto"}, {Beta: -1}, {LabelSmoothing: 0.5}, {RPOAlpha: -1}} {
		if _, err := c.WithDefaults(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestRefLogpsCache: the precomputed reference log-probs equal the sums of
// CompletionLogProbs, are read back from the cache without running the
// reference, and are recomputed when the key changes.
func TestRefLogpsCache(t *testing.T) {
	m := tinyModel(t, 20, 3)
	pairs := []Pair{
		{Prompt: []int32{1, 2, 3}, Chosen: []int32{4, 5}, Rejected: []int32{6}},
		{Prompt: []int32{7}, Chosen: []int32{8, 9, 10}, Rejected: []int32{11, 12}},
		{Prompt: []int32{1, 1}, Chosen: []int32{2}, Rejected: []int32{3, 4, 5, 6}},
	}
	calls := 0
	ref := ReferenceFunc(func(p, c [][]int32, temp float64) (*tensor.Tensor, error) {
		calls++
		return ModelReference{Model: m}.RefLogProbs(p, c, temp)
	})
	mk, err := ModelKey(m)
	if err != nil {
		t.Fatal(err)
	}
	key := PairsKey(pairs, mk)
	path := filepath.Join(t.TempDir(), "ref.json")
	got, err := LoadOrComputeRefLogps(path, key, ref, pairs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("%d reference calls for 3 pairs in batches of 2", calls)
	}
	// Each pair alone, unbatched, gives the same sums.
	for i, p := range pairs {
		for j, comp := range [][]int32{p.Chosen, p.Rejected} {
			lp, err := CompletionLogProbs(m, [][]int32{p.Prompt}, [][]int32{comp}, LogProbOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := lp.Values.Sum().Item()
			have := [][]float64{got.Chosen, got.Rejected}[j][i]
			if !near(have, want, 1e-4) {
				t.Errorf("pair %d/%d: cached %v, alone %v", i, j, have, want)
			}
		}
	}
	again, err := LoadOrComputeRefLogps(path, key, ref, pairs, 2)
	if err != nil || calls != 2 || again.Chosen[1] != got.Chosen[1] {
		t.Errorf("second load: err %v, calls %d", err, calls)
	}
	if _, err := LoadOrComputeRefLogps(path, PairsKey(pairs[:2], mk), ref, pairs[:2], 2); err != nil || calls != 3 {
		t.Errorf("stale key: err %v, calls %d (want a recompute)", err, calls)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrComputeRefLogps(path, key, ref, pairs, 2); err == nil {
		t.Error("corrupt cache: no error")
	}
}

func TestPairsFromGroups(t *testing.T) {
	p1, p2, p3 := []int32{1}, []int32{2}, []int32{3}
	r := Rollout{
		Prompts:     [][]int32{p1, p1, p1, p2, p2, p2, p3, p3, p3},
		Completions: [][]int32{{5, 5, 5}, {6}, {7, 7}, {1}, {2}, {3}, {8, 8}, {9}, {4, 4, 4}},
	}
	rewards := []float64{1, 1, 0, 0.5, 0.5, 0.5, 0, 1, 0}
	pairs, err := PairsFromGroups(r, rewards, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{
		{Prompt: p1, Chosen: []int32{6}, Rejected: []int32{7, 7}},    // correct and concise over wrong
		{Prompt: p3, Chosen: []int32{9}, Rejected: []int32{4, 4, 4}}, // the longest of the wrong
	}
	if len(pairs) != len(want) {
		t.Fatalf("pairs %v, want %v", pairs, want)
	}
	for i := range want {
		if !slices.Equal(pairs[i].Prompt, want[i].Prompt) || !slices.Equal(pairs[i].Chosen, want[i].Chosen) || !slices.Equal(pairs[i].Rejected, want[i].Rejected) {
			t.Errorf("pair %d: %v, want %v", i, pairs[i], want[i])
		}
	}
	if _, err := PairsFromGroups(r, rewards[:8], 3); err == nil {
		t.Error("short rewards: no error")
	}
}

func TestConcisePairs(t *testing.T) {
	pairs := []Pair{
		{Chosen: []int32{1}, Rejected: []int32{2, 2}},       // shorter: kept
		{Chosen: []int32{1, 1}, Rejected: []int32{2, 2}},    // as long: dropped
		{Chosen: []int32{1, 1, 1}, Rejected: []int32{2}},    // longer: dropped
		{Chosen: []int32{3, 3}, Rejected: []int32{4, 4, 4}}, // shorter: kept
	}
	got := ConcisePairs(pairs)
	if len(got) != 2 || got[0].Chosen[0] != 1 || got[1].Chosen[0] != 3 {
		t.Errorf("ConcisePairs = %v, want the first and the last pair", got)
	}
	if ConcisePairs(nil) != nil {
		t.Error("ConcisePairs(nil) is not nil")
	}
}
