package rl

import (
	"errors"
	"fmt"
	"math"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// LogProbs are the per-token log-probabilities of B completions, each
// continuing its prompt, on a grid of T columns (T the longest
// completion): column t of row b is completion b's token t.
type LogProbs struct {
	// Values is [B, T]; it is in the autograd graph when computed with
	// gradients enabled, and 0 past each completion's end.
	Values *tensor.Tensor
	// Entropy, when asked for, holds the entropy of the model's
	// next-token distribution at each grid cell, row-major [B, T].
	Entropy []float64
	// T is the grid's width.
	T int
}

// LogProbOptions controls CompletionLogProbs.
type LogProbOptions struct {
	// Temperature divides the logits first, so that the log-probs are
	// those of the tempered distribution (TRL's GRPO computes them so); 0
	// means 1.
	Temperature float64
	// Entropy asks for the per-token entropies too.
	Entropy bool
}

// CompletionLogProbs runs m once over every prompt followed by its
// completion and returns log pi(completion token | prefix) per token, the
// quantity GRPO's ratio and DPO's sequence log-probs are built from.
// Prompts are left-padded to a common length with an attention mask that
// hides the padding and positions that start at 0 at each prompt's first
// token, so each row is computed as it would be alone, as model.Generate
// does. Gradients flow to m's parameters unless the caller runs it under
// tensor.NoGrad. It returns an error when the slices differ in length, a
// prompt is empty, the temperature is negative, the sequences exceed the model's context, or the forward
// pass fails.
func CompletionLogProbs(m model.Model, prompts, completions [][]int32, opt LogProbOptions) (LogProbs, error) {
	if m == nil {
		return LogProbs{}, errors.New("rl: log-probs: nil model")
	}
	if opt.Temperature < 0 || math.IsNaN(opt.Temperature) || math.IsInf(opt.Temperature, 0) {
		return LogProbs{}, fmt.Errorf("rl: log-probs: temperature %v", opt.Temperature)
	}
	if len(prompts) != len(completions) || len(prompts) == 0 {
		return LogProbs{}, fmt.Errorf("rl: log-probs: %d prompts for %d completions", len(prompts), len(completions))
	}
	B := len(prompts)
	P, T := 0, 1
	for b := range B {
		if len(prompts[b]) == 0 {
			return LogProbs{}, fmt.Errorf("rl: log-probs: prompt %d is empty", b)
		}
		P = max(P, len(prompts[b]))
		T = max(T, len(completions[b]))
	}
	L := P + T - 1 // the last completion token predicts nothing we need
	if ctx := m.Config().MaxPositionEmbeddings; ctx > 0 && L > ctx {
		return LogProbs{}, fmt.Errorf("rl: log-probs: %d prompt and %d completion tokens exceed the context of %d", P, T, ctx)
	}
	ids := make([]int32, B*L)
	pos := make([]int32, B*L)
	targets := make([]int32, B*T)
	pads := make([]int, B)
	for b := range B {
		pad := P - len(prompts[b])
		pads[b] = pad
		row := ids[b*L : (b+1)*L]
		copy(row[pad:P], prompts[b])
		for j := P; j < L && j-P < len(completions[b]); j++ {
			row[j] = completions[b][j-P]
		}
		for j := range L {
			pos[b*L+j] = int32(max(0, j-pad))
		}
		for t := range T {
			targets[b*T+t] = -100
			if t < len(completions[b]) {
				targets[b*T+t] = completions[b][t]
			}
		}
	}
	be := m.Params()[0].Tensor.Backend()
	var out LogProbs
	err := tensor.Catch(func() {
		fo := model.ForwardOptions{Positions: tensor.From(be, tensor.Int32, pos, B, L), Mask: padMask(be, pads, L)}
		logits := m.Forward(tensor.From(be, tensor.Int32, ids, B, L), fo)
		sl := logits.Slice(1, P-1, P-1+T)
		if t := opt.Temperature; t != 0 && t != 1 {
			sl = sl.Scale(1 / t)
		}
		perTok, _ := tensor.CrossEntropy(sl, tensor.From(be, tensor.Int32, targets, B, T))
		out = LogProbs{Values: perTok.Neg(), T: T}
		if opt.Entropy {
			tensor.NoGrad(func() {
				ls := sl.Detach().LogSoftmax()
				out.Entropy = ls.Exp().Mul(ls).Sum(2).Neg().Float64s()
			})
		}
	})
	if err != nil {
		return LogProbs{}, fmt.Errorf("rl: log-probs: %w", err)
	}
	return out, nil
}

// padMask returns the attention mask [B, L, L] that hides each row's left
// padding, or nil when no row is padded. A padding query keeps its own key
// so that no row is fully masked; its output is never read.
func padMask(be tensor.Backend, pads []int, L int) *tensor.Tensor {
	padded := false
	for _, p := range pads {
		padded = padded || p > 0
	}
	if !padded {
		return nil
	}
	inf := float32(math.Inf(-1))
	m := make([]float32, len(pads)*L*L)
	for b, p := range pads {
		for q := range L {
			row := m[(b*L+q)*L : (b*L+q+1)*L]
			for k := range min(p, L) {
				if k != q {
					row[k] = inf
				}
			}
		}
	}
	return tensor.From(be, tensor.Float32, m, len(pads), L, L)
}

// Reference gives the per-token log-probs of a frozen reference policy, for
// GRPO's KL term and DPO. A separate frozen model serves through
// ModelReference; a LoRA policy with its adapters switched off serves
// through a ReferenceFunc, without a second copy of the weights.
type Reference interface {
	// RefLogProbs returns the [B, T] log-probs of the completions at the
	// given temperature (0 means 1), laid out as CompletionLogProbs lays
	// them out, outside the autograd graph, or an error.
	RefLogProbs(prompts, completions [][]int32, temperature float64) (*tensor.Tensor, error)
}

// ReferenceFunc adapts a function to Reference.
type ReferenceFunc func(prompts, completions [][]int32, temperature float64) (*tensor.Tensor, error)

// RefLogProbs calls f; it returns f's error.
func (f ReferenceFunc) RefLogProbs(prompts, completions [][]int32, temperature float64) (*tensor.Tensor, error) {
	return f(prompts, completions, temperature)
}

// ModelReference is a frozen model used as the reference.
type ModelReference struct {
	Model model.Model
}

// RefLogProbs runs the model without gradients; it returns
// CompletionLogProbs' errors.
func (r ModelReference) RefLogProbs(prompts, completions [][]int32, temperature float64) (*tensor.Tensor, error) {
	var lp LogProbs
	var err error
	tensor.NoGrad(func() {
		lp, err = CompletionLogProbs(r.Model, prompts, completions, LogProbOptions{Temperature: temperature})
	})
	if err != nil {
		return nil, err
	}
	return lp.Values, nil
}

// Switch is what a LoRA adapter (lora.Adapter) offers the reference: a
// switch that makes the model compute its frozen base.
type Switch interface {
	Enabled() bool
	// SetEnabled switches the adapter; it returns an error when it cannot.
	SetEnabled(on bool) error
}

// AdapterOffReference serves the frozen base under a policy's adapter as
// the reference, by switching the adapter off for the pass, so that RL
// and DPO need no second copy of the weights.
type AdapterOffReference struct {
	Policy  model.Model
	Adapter Switch
}

// RefLogProbs runs the policy without gradients with its adapter off, and
// restores the adapter's state. It returns the adapter's errors and
// CompletionLogProbs'.
func (r AdapterOffReference) RefLogProbs(prompts, completions [][]int32, temperature float64) (out *tensor.Tensor, err error) {
	was := r.Adapter.Enabled()
	if err := r.Adapter.SetEnabled(false); err != nil {
		return nil, fmt.Errorf("rl: reference: %w", err)
	}
	defer func() {
		if rerr := r.Adapter.SetEnabled(was); rerr != nil && err == nil {
			out, err = nil, fmt.Errorf("rl: reference: restoring the adapter: %w", rerr)
		}
	}()
	return ModelReference{Model: r.Policy}.RefLogProbs(prompts, completions, temperature)
}
