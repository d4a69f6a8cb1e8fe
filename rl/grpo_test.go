package rl

import (
	"math"
	"testing"

	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

func mustGRPO(t *testing.T, c GRPOConfig) GRPOConfig {
	t.Helper()
	c, err := c.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestGroupAdvantagesSanity checks METHODS §1's sanity numbers: rewards
// [1, 0, 0, 1] have mean 0.5 and std 0.5774, so A = ±0.8659.
func TestGroupAdvantagesSanity(t *testing.T) {
	adv, err := GroupAdvantages([]float64{1, 0, 0, 1}, 4, ScaleGroup, 1e-4)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.8659, -0.8659, -0.8659, 0.8659}
	for i := range want {
		if !near(adv[i], want[i], 5e-5) {
			t.Errorf("A[%d] = %.6f, want %.4f", i, adv[i], want[i])
		}
	}
}

func TestGroupAdvantagesModes(t *testing.T) {
	r := []float64{1, 0, 0, 1, 3, 3, 3, 5}
	// Group 2: mean 3.5, std 1 (Bessel). Batch std over all 8 values.
	var mu, ss float64
	for _, x := range r {
		mu += x
	}
	mu /= 8
	for _, x := range r {
		ss += (x - mu) * (x - mu)
	}
	bstd := math.Sqrt(ss / 7)
	tests := []struct {
		scale string
		want  []float64
	}{
		{ScaleNone, []float64{0.5, -0.5, -0.5, 0.5, -0.5, -0.5, -0.5, 1.5}},
		{ScaleGroup, []float64{0.5 / (math.Sqrt(1.0/3) + 1e-4), -0.5 / (math.Sqrt(1.0/3) + 1e-4), -0.5 / (math.Sqrt(1.0/3) + 1e-4), 0.5 / (math.Sqrt(1.0/3) + 1e-4),
			-0.5 / (1 + 1e-4), -0.5 / (1 + 1e-4), -0.5 / (1 + 1e-4), 1.5 / (1 + 1e-4)}},
		{ScaleBatch, []float64{0.5 / (bstd + 1e-4), -0.5 / (bstd + 1e-4), -0.5 / (bstd + 1e-4), 0.5 / (bstd + 1e-4),
			-0.5 / (bstd + 1e-4), -0.5 / (bstd + 1e-4), -0.5 / (bstd + 1e-4), 1.5 / (bstd + 1e-4)}},
	}
	for _, tc := range tests {
		adv, err := GroupAdvantages(r, 4, tc.scale, 1e-4)
		if err != nil {
			t.Fatal(err)
		}
		for i := range adv {
			if !near(adv[i], tc.want[i], 1e-12) {
				t.Errorf("%s: A[%d] = %v, want %v", tc.scale, i, adv[i], tc.want[i])
			}
		}
	}
}

func TestGroupAdvantagesNaNAndErrors(t *testing.T) {
	// An unscorable completion is out of the mean and gets advantage 0.
	adv, err := GroupAdvantages([]float64{1, math.NaN(), 0}, 3, ScaleNone, 1e-4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 0, -0.5}; adv[0] != want[0] || adv[1] != want[1] || adv[2] != want[2] {
		t.Errorf("advantages %v, want %v", adv, want)
	}
	// Equal rewards give zero advantages, not NaN.
	adv, _ = GroupAdvantages([]float64{2, 2}, 2, ScaleGroup, 1e-4)
	if adv[0] != 0 || adv[1] != 0 {
		t.Errorf("equal rewards: %v", adv)
	}
	if _, err := GroupAdvantages([]float64{1, 2, 3}, 2, ScaleGroup, 1e-4); err == nil {
		t.Error("3 rewards in groups of 2: no error")
	}
	if _, err := GroupAdvantages([]float64{1, 2}, 2, "rank", 1e-4); err == nil {
		t.Error("unknown scale: no error")
	}
}

// oneToken returns the GRPO loss of a single token with ratio rho and
// advantage a, plus the given reference log-prob gap.
func oneToken(t *testing.T, cfg GRPOConfig, rho, a, lp, ref float64) (float64, GRPOStats) {
	t.Helper()
	in := GRPOInput{
		LogProbs:    tensor.FromFloat64([]float64{lp}, 1, 1),
		OldLogProbs: tensor.FromFloat64([]float64{lp - math.Log(rho)}, 1, 1),
		Mask:        []float32{1},
		Advantages:  []float64{a},
	}
	if cfg.Beta != 0 {
		in.RefLogProbs = tensor.FromFloat64([]float64{ref}, 1, 1)
	}
	loss, st, err := GRPOLoss(cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	return loss.Item(), st
}

// TestGRPOSurrogateSanity reproduces METHODS §1's per-token numbers.
func TestGRPOSurrogateSanity(t *testing.T) {
	A := 0.5 / (math.Sqrt(1.0/3) + 1e-4)
	cfg := mustGRPO(t, GRPOConfig{EpsilonLow: 0.2, EpsilonHigh: 0.28, LossType: LossBNPO})
	tests := []struct {
		name      string
		rho, a    float64
		want      float64
		low, high float64
	}{
		{"clip-high", 1.3, A, -1.108, 0, 1},
		{"clip-low", 0.7, -A, 0.693, 1, 0},
		{"inside", 1.1, A, -1.1 * A, 0, 0},
		{"A>0 low ratio keeps rho", 0.5, A, -0.5 * A, 0, 0},
		{"A<0 high ratio keeps rho", 1.5, -A, 1.5 * A, 0, 0},
	}
	for _, tc := range tests {
		got, st := oneToken(t, cfg, tc.rho, tc.a, -1, 0)
		if !near(got, tc.want, 5e-4) {
			t.Errorf("%s: loss %.5f, want %.4f", tc.name, got, tc.want)
		}
		if st.ClipLow != tc.low || st.ClipHigh != tc.high || st.ClipRegion != tc.low+tc.high {
			t.Errorf("%s: clip stats %+v", tc.name, st)
		}
	}
	// The exact values behind the rounded ones.
	if got, _ := oneToken(t, cfg, 1.3, A, -1, 0); !near(got, -1.28*A, 1e-12) {
		t.Errorf("clip-high exact: %v, want %v", got, -1.28*A)
	}
	if got, _ := oneToken(t, cfg, 0.7, -A, -1, 0); !near(got, 0.8*A, 1e-12) {
		t.Errorf("clip-low exact: %v, want %v", got, 0.8*A)
	}
}

// TestGRPOK3Sanity: k3 with logp_theta = -1.5 and logp_ref = -2.0 is 0.1065.
func TestGRPOK3Sanity(t *testing.T) {
	cfg := mustGRPO(t, GRPOConfig{Beta: 1, LossType: LossBNPO})
	got, st := oneToken(t, cfg, 1, 0, -1.5, -2.0)
	if !near(got, 0.1065, 5e-5) || !near(st.KL, 0.1065, 5e-5) {
		t.Errorf("k3 loss %.5f, KL stat %.5f, want 0.1065", got, st.KL)
	}
	cfg.Beta = 0.04
	if got, _ := oneToken(t, cfg, 1, 0, -1.5, -2.0); !near(got, 0.04*(math.Exp(-0.5)-0.5), 1e-12) {
		t.Errorf("beta 0.04: %v", got)
	}
}

// TestGRPOAggregationSanity: sequences of lengths 2 and 4 with per-token
// loss 1 on the first and 0 on the second give grpo 0.5, bnpo and dapo
// 2/6, and dr_grpo with L_max = 8 2/16 (METHODS §1). The grid is wider
// than both so that padding must be masked.
func TestGRPOAggregationSanity(t *testing.T) {
	const T = 5
	mask, err := CompletionMask([]int{2, 4}, nil, T, false)
	if err != nil {
		t.Fatal(err)
	}
	lp := make([]float64, 2*T)
	for i := range lp {
		lp[i] = -0.1 * float64(i+1)
	}
	tests := []struct {
		loss  string
		accum int
		want  float64
	}{
		{LossGRPO, 1, 0.5},
		{LossBNPO, 1, 2.0 / 6},
		{LossDAPO, 1, 2.0 / 6},
		{LossDrGRPO, 1, 0.125},
		// Gradient accumulation divides every type but dapo.
		{LossGRPO, 2, 0.25},
		{LossBNPO, 2, 1.0 / 6},
		{LossDrGRPO, 2, 0.0625},
		{LossDAPO, 2, 2.0 / 6},
	}
	for _, tc := range tests {
		cfg := mustGRPO(t, GRPOConfig{LossType: tc.loss, MaxCompletionLength: 8})
		x := tensor.FromFloat64(lp, 2, T)
		// rho = 1 and A = -1 make each active token's loss exactly 1.
		loss, st, err := GRPOLoss(cfg, GRPOInput{LogProbs: x, Mask: mask, Advantages: []float64{-1, 0}, AccumSteps: tc.accum})
		if err != nil {
			t.Fatal(err)
		}
		if !near(loss.Item(), tc.want, 1e-12) {
			t.Errorf("%s accum %d: loss %v, want %v", tc.loss, tc.accum, loss.Item(), tc.want)
		}
		if st.Tokens != 6 {
			t.Errorf("%s: %d active tokens, want 6", tc.loss, st.Tokens)
		}
	}
	// dapo with a global count from other micro-batches.
	cfg := mustGRPO(t, GRPOConfig{LossType: LossDAPO})
	loss, _, _ := GRPOLoss(cfg, GRPOInput{LogProbs: tensor.FromFloat64(lp, 2, T), Mask: mask, Advantages: []float64{-1, 0}, GlobalTokens: 20})
	if !near(loss.Item(), 0.1, 1e-12) {
		t.Errorf("dapo global 20: %v, want 0.1", loss.Item())
	}
}

// TestGRPOPolicyGradient: at rho = 1 (mu = 1) the loss's gradient w.r.t.
// each active log-prob is -A times the token's weight, the policy
// gradient, though the loss's value does not depend on A's sign.
func TestGRPOPolicyGradient(t *testing.T) {
	const T = 3
	mask, _ := CompletionMask([]int{3, 1}, nil, T, false)
	x := tensor.FromFloat64([]float64{-1, -2, -3, -0.5, -0.7, -0.9}, 2, T).SetRequiresGrad(true)
	cfg := mustGRPO(t, GRPOConfig{LossType: LossGRPO})
	loss, _, err := GRPOLoss(cfg, GRPOInput{LogProbs: x, Mask: mask, Advantages: []float64{0.7, -1.3}})
	if err != nil {
		t.Fatal(err)
	}
	loss.Backward()
	want := []float64{-0.7 / 6, -0.7 / 6, -0.7 / 6, 1.3 / 2, 0, 0}
	for i, g := range x.Grad().Float64s() {
		if !near(g, want[i], 1e-12) {
			t.Errorf("grad[%d] = %v, want %v", i, g, want[i])
		}
	}
}

// TestGRPOGradCheck checks the whole loss, from logits through the
// per-token log-probs, ratio, clip and k3, against finite differences for
// every loss type, with ratios on both sides of both clip bounds.
func TestGRPOGradCheck(t *testing.T) {
	const B, T, V = 4, 3, 5
	be := tensor.Default()
	logits := tensor.Randn(be, tensor.Float64, tensor.NewRNG(11), 1, B, T, V)
	targets := []int32{1, 4, 2, 0, 3, 3, 2, 2, 0, 1, 4, 4}
	tg := tensor.FromInt32(targets, B, T)
	var lp0 []float64
	tensor.NoGrad(func() {
		pt, _ := tensor.CrossEntropy(logits, tg)
		lp0 = pt.Neg().Float64s()
	})
	// Old log-probs put the ratios at these values.
	rhos := []float64{0.5, 0.9, 1.1, 1.5, 1.35, 0.75, 1, 0.6, 1.2, 0.95, 1.4, 0.7}
	old := make([]float64, B*T)
	ref := make([]float64, B*T)
	for i := range old {
		old[i] = lp0[i] - math.Log(rhos[i])
		ref[i] = lp0[i] + 0.3*math.Sin(float64(i))
	}
	mask, _ := CompletionMask([]int{3, 2, 3, 1}, []bool{false, false, true, false}, T, true)
	adv := []float64{0.8, -0.6, 1.2, -1.1}
	for _, lt := range []string{LossGRPO, LossBNPO, LossDrGRPO, LossDAPO} {
		cfg := mustGRPO(t, GRPOConfig{LossType: lt, Beta: 0.1, EpsilonLow: 0.2, EpsilonHigh: 0.28, MaxCompletionLength: 4})
		f := func(in []*tensor.Tensor) *tensor.Tensor {
			pt, _ := tensor.CrossEntropy(in[0], in[1])
			loss, _, err := GRPOLoss(cfg, GRPOInput{LogProbs: pt.Neg(), OldLogProbs: in[2], RefLogProbs: in[3], Mask: mask, Advantages: adv})
			if err != nil {
				t.Fatal(err)
			}
			return loss
		}
		gradcheck.Check(t, "grpo/"+lt, f, logits.Detach().SetRequiresGrad(true), tg,
			tensor.FromFloat64(old, B, T), tensor.FromFloat64(ref, B, T))
	}
}

func TestGRPOLossErrors(t *testing.T) {
	cfg := mustGRPO(t, GRPOConfig{})
	x := tensor.FromFloat64([]float64{-1, -2}, 1, 2)
	tests := []struct {
		name string
		cfg  GRPOConfig
		in   GRPOInput
	}{
		{"nil log-probs", cfg, GRPOInput{}},
		{"mask length", cfg, GRPOInput{LogProbs: x, Mask: []float32{1}, Advantages: []float64{1}}},
		{"advantages", cfg, GRPOInput{LogProbs: x, Mask: []float32{1, 1}, Advantages: []float64{1, 2}}},
		{"old shape", cfg, GRPOInput{LogProbs: x, OldLogProbs: tensor.FromFloat64([]float64{1, 2}, 2, 1), Mask: []float32{1, 1}, Advantages: []float64{1}}},
		{"beta without ref", GRPOConfig{Beta: 0.1, LossType: LossDAPO}, GRPOInput{LogProbs: x, Mask: []float32{1, 1}, Advantages: []float64{1}}},
	}
	for _, tc := range tests {
		if _, _, err := GRPOLoss(tc.cfg, tc.in); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestGRPOConfigDefaultsAndErrors(t *testing.T) {
	c := mustGRPO(t, GRPOConfig{})
	if c.NumGenerations != 8 || c.ScaleRewards != ScaleGroup || c.EpsilonLow != 0.2 || c.EpsilonHigh != 0.2 ||
		c.NumIterations != 1 || c.LossType != LossDAPO || c.MaxCompletionLength != 512 || c.Beta != 0 || c.StdEpsilon != 1e-4 {
		t.Errorf("defaults: %+v", c)
	}
	bad := []GRPOConfig{
		{NumGenerations: 1},
		{ScaleRewards: "rank"},
		{LossType: "ppo"},
		{EpsilonLow: 1.5},
		{EpsilonHigh: -1},
		{Beta: -0.1},
		{Beta: math.NaN()},
		{NumIterations: -1},
		{MaxCompletionLength: -3},
		{MaxResampleRounds: -1},
	}
	for _, b := range bad {
		if _, err := b.WithDefaults(); err == nil {
			t.Errorf("%+v: no error", b)
		}
	}
}

func TestCompletionMaskAndZeroStd(t *testing.T) {
	m, err := CompletionMask([]int{1, 3, 2}, []bool{false, true, false}, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 0, 0, 0, 0, 0, 1, 1, 0}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("mask %v, want %v", m, want)
		}
	}
	m, _ = CompletionMask([]int{1, 3, 2}, []bool{false, true, false}, 3, false)
	if m[3]+m[4]+m[5] != 3 {
		t.Errorf("truncated row masked without mask_truncated_completions: %v", m)
	}
	if _, err := CompletionMask([]int{4}, nil, 3, false); err == nil {
		t.Error("length past the grid: no error")
	}
	z := ZeroStdGroups([]float64{1, 1, 0, 1, 0.5, 0.5}, 2)
	if !z[0] || z[1] || !z[2] {
		t.Errorf("zero-std groups %v", z)
	}
}
