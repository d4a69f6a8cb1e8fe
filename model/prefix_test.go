package model

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// tokenEmbeddings returns the rows of m's token embedding for ids as
// [len(ids), width], a prefix that must act exactly as those tokens do.
func tokenEmbeddings(m Model, ids []int32) *tensor.Tensor {
	for _, p := range m.Params() {
		if p.Name == "token_embd.weight" {
			var out *tensor.Tensor
			tensor.NoGrad(func() { out = tensor.Embedding(p.Tensor, idsOf(ids, len(ids))).Contiguous() })
			return out
		}
	}
	panic("no token embedding")
}

// TestForwardPrefix checks that a prefix made of token embeddings gives
// the logits those tokens give when they are fed as ids, shared or per
// row, and that a prefix of the wrong shape panics.
func TestForwardPrefix(t *testing.T) {
	head, ids := []int32{3, 8, 1}, []int32{1, 4, 0, 10, 7, 2, 2, 9}
	for _, name := range names() {
		m := build(t, tiny()[name], tensor.Float32, 3)
		pre := tokenEmbeddings(m, head)
		var full []int32
		for r := range 2 {
			full = append(append(full, head...), ids[r*4:(r+1)*4]...)
		}
		want := m.Forward(idsOf(full, 2, 7), ForwardOptions{})
		wantLast := want.Slice(1, 3, 7).Contiguous().Float32s()
		perRow := tensor.Concat(0, pre.Unsqueeze(0), pre.Unsqueeze(0))
		for what, p := range map[string]*tensor.Tensor{"shared": pre, "per-row": perRow} {
			got := m.Forward(idsOf(ids, 2, 4), ForwardOptions{Prefix: p})
			if s := got.Shape(); !slices.Equal(s, []int{2, 4, 11}) {
				t.Fatalf("%s %s: logits %v", name, what, s)
			}
			for i, v := range got.Float32s() {
				if math.Abs(float64(v-wantLast[i])) > 1e-5 {
					t.Fatalf("%s %s: logit %d is %v, as tokens %v", name, what, i, v, wantLast[i])
				}
			}
		}
		bad := tensor.Full(be, tensor.Float32, 0, 2, 5)
		if err := tensor.Catch(func() { m.Forward(idsOf(ids, 2, 4), ForwardOptions{Prefix: bad}) }); err == nil {
			t.Errorf("%s: a prefix of width 5 was accepted", name)
		}
	}
}

// TestPrefixGradient checks that a prefix that requires grad receives a
// gradient through a loss while the frozen parameters receive none.
func TestPrefixGradient(t *testing.T) {
	for _, name := range names() {
		m := build(t, tiny()[name], tensor.Float32, 3)
		for _, p := range m.Params() {
			p.Tensor.SetRequiresGrad(false)
		}
		pre := tensor.Randn(be, tensor.Float32, tensor.NewRNG(1), 0.5, 2, 8).SetRequiresGrad(true)
		x := idsOf([]int32{1, 4, 0, 10, 7, 2}, 2, 3)
		_, loss := tensor.CrossEntropy(m.Forward(x, ForwardOptions{Prefix: pre}), x)
		loss.Backward()
		if g := pre.Grad(); g == nil || tensor.SumSquares(g) == 0 {
			t.Errorf("%s: the prefix got no gradient", name)
		}
		for _, p := range m.Params() {
			if p.Tensor.Grad() != nil {
				t.Errorf("%s: frozen %s got a gradient", name, p.Name)
			}
		}
	}
}

// TestGeneratePrefix checks that generating after a prefix of token
// embeddings gives the tokens and log-probs of generating after those
// tokens written into every prompt, with padded batches, rows finishing
// at different steps (so caches are compacted) and chunked prefill.
func TestGeneratePrefix(t *testing.T) {
	head := []int32{6, 2}
	for _, budget := range []int{prefillBudget, 1} {
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
			setKnobs(t, budget, parallelSampling)
			for name, m := range genModels(t) {
				var long [][]int32
				for _, p := range genPrompts {
					long = append(long, append(slices.Clone(head), p...))
				}
				for _, stops := range [][]int32{{3, 8}, {5}, {1, 2}, {}} {
					cfg := GenerateConfig{MaxNewTokens: 6, StopTokens: stops}
					want := generate(t, m, nil, long, cfg)
					cfg.Prefix = tokenEmbeddings(m, head)
					got := generate(t, m, nil, genPrompts, cfg)
					comparePrefixed(t, fmt.Sprintf("%s stops %v", name, stops), got, want)
				}
			}
		})
	}
}

// comparePrefixed checks that completions got and want have the same
// tokens and finish reasons and log-probs within 1e-5.
func comparePrefixed(t *testing.T, name string, got, want []Completion) {
	t.Helper()
	for i := range got {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].FinishReason != want[i].FinishReason {
			t.Errorf("%s prompt %d: %v (%s) after the prefix, %v (%s) after the tokens", name, i,
				got[i].Tokens, got[i].FinishReason, want[i].Tokens, want[i].FinishReason)
			continue
		}
		for s := range got[i].LogProbs {
			if d := math.Abs(float64(got[i].LogProbs[s] - want[i].LogProbs[s])); d > 1e-5 {
				t.Errorf("%s prompt %d token %d: log-probs differ by %g", name, i, s, d)
			}
		}
	}
}
