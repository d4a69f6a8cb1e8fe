package tensor_test

import (
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

var be = cpu.New(2)

// param returns a float64 leaf of normal samples that requires grad.
func param(seed uint64, shape ...int) *tensor.Tensor {
	return tensor.Randn(be, tensor.Float64, tensor.NewRNG(seed), 1, shape...).SetRequiresGrad(true)
}

// positive returns a float64 leaf with values in [0.5, 2).
func positive(seed uint64, shape ...int) *tensor.Tensor {
	return tensor.Uniform(be, tensor.Float64, tensor.NewRNG(seed), 0.5, 2, shape...).SetRequiresGrad(true)
}

type gradCase struct {
	name string
	f    gradcheck.Func
	in   []*tensor.Tensor
}

func runCases(t *testing.T, cases []gradCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { gradcheck.Check(t, c.name, c.f, c.in...) })
	}
}

func TestGradElementwise(t *testing.T) {
	un := func(f func(x *tensor.Tensor) *tensor.Tensor) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0]) }
	}
	bin := func(f func(a, b *tensor.Tensor) *tensor.Tensor) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0], in[1]) }
	}
	runCases(t, []gradCase{
		{"add", bin((*tensor.Tensor).Add), []*tensor.Tensor{param(1, 3, 4), param(2, 3, 4)}},
		{"add-broadcast-row", bin((*tensor.Tensor).Add), []*tensor.Tensor{param(1, 2, 3, 4), param(2, 4)}},
		{"sub-broadcast-col", bin((*tensor.Tensor).Sub), []*tensor.Tensor{param(1, 3, 4), param(2, 3, 1)}},
		{"mul-broadcast-both", bin((*tensor.Tensor).Mul), []*tensor.Tensor{param(1, 3, 1), param(2, 1, 4)}},
		{"div", bin((*tensor.Tensor).Div), []*tensor.Tensor{param(1, 3, 4), positive(2, 3, 4)}},
		{"div-broadcast", bin((*tensor.Tensor).Div), []*tensor.Tensor{param(1, 2, 3), positive(2, 3)}},
		{"neg", un((*tensor.Tensor).Neg), []*tensor.Tensor{param(1, 5)}},
		{"scale", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Scale(-1.5) }), []*tensor.Tensor{param(1, 5)}},
		{"add-scalar", un(func(x *tensor.Tensor) *tensor.Tensor { return x.AddScalar(2) }), []*tensor.Tensor{param(1, 5)}},
		{"exp", un((*tensor.Tensor).Exp), []*tensor.Tensor{param(1, 3, 5)}},
		{"log", un((*tensor.Tensor).Log), []*tensor.Tensor{positive(1, 3, 5)}},
		{"sqrt", un((*tensor.Tensor).Sqrt), []*tensor.Tensor{positive(1, 3, 5)}},
		{"rsqrt", un((*tensor.Tensor).Rsqrt), []*tensor.Tensor{positive(1, 3, 5)}},
		{"square", un((*tensor.Tensor).Square), []*tensor.Tensor{param(1, 3, 5)}},
		{"pow", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Pow(1.5) }), []*tensor.Tensor{positive(1, 7)}},
		{"tanh", un((*tensor.Tensor).Tanh), []*tensor.Tensor{param(1, 3, 5)}},
		{"sigmoid", un((*tensor.Tensor).Sigmoid), []*tensor.Tensor{param(1, 3, 5)}},
		{"relu", un((*tensor.Tensor).ReLU), []*tensor.Tensor{param(1, 3, 5)}},
		{"silu", un((*tensor.Tensor).SiLU), []*tensor.Tensor{param(1, 3, 5)}},
		{"gelu", un((*tensor.Tensor).GELU), []*tensor.Tensor{param(1, 3, 5)}},
		{"chain-reuse", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Mul(x).Add(x.Exp()) }), []*tensor.Tensor{param(1, 2, 3)}},
	})
}

func TestGradReduceAndViews(t *testing.T) {
	un := func(f func(x *tensor.Tensor) *tensor.Tensor) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0]) }
	}
	runCases(t, []gradCase{
		{"sum-all", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Sum() }), []*tensor.Tensor{param(1, 3, 4)}},
		{"sum-axis0", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Sum(0) }), []*tensor.Tensor{param(1, 3, 4, 2)}},
		{"sum-axes", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Sum(0, 2) }), []*tensor.Tensor{param(1, 3, 4, 2)}},
		{"mean-last", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Mean(-1) }), []*tensor.Tensor{param(1, 3, 4)}},
		{"max-last", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Max(-1) }), []*tensor.Tensor{param(1, 3, 5)}},
		{"max-middle", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Max(1) }), []*tensor.Tensor{param(1, 2, 5, 3)}},
		{"reshape", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Reshape(4, -1).Exp() }), []*tensor.Tensor{param(1, 2, 3, 2)}},
		{"transpose", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Transpose(0, 2).Contiguous() }), []*tensor.Tensor{param(1, 2, 3, 4)}},
		{"permute-reshape", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Permute(2, 0, 1).Reshape(4, 6) }), []*tensor.Tensor{param(1, 2, 3, 4)}},
		{"slice", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Slice(1, 1, 3).Square() }), []*tensor.Tensor{param(1, 2, 4, 3)}},
		{"slices-overlap", un(func(x *tensor.Tensor) *tensor.Tensor {
			return x.Slice(0, 0, 2).Mul(x.Slice(0, 1, 3))
		}), []*tensor.Tensor{param(1, 3, 4)}},
		{"unsqueeze", un(func(x *tensor.Tensor) *tensor.Tensor { return x.Unsqueeze(1).Add(x.Unsqueeze(0)) }), []*tensor.Tensor{param(1, 3)}},
		{"concat", func(in []*tensor.Tensor) *tensor.Tensor { return tensor.Concat(1, in[0], in[1].Exp(), in[0]) },
			[]*tensor.Tensor{param(1, 2, 3), param(2, 2, 2)}},
	})
}

func TestGradMatMul(t *testing.T) {
	mm := func(f func(a, b *tensor.Tensor) *tensor.Tensor) gradcheck.Func {
		return func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0], in[1]) }
	}
	plain := mm((*tensor.Tensor).MatMul)
	runCases(t, []gradCase{
		{"2d", plain, []*tensor.Tensor{param(1, 3, 4), param(2, 4, 5)}},
		{"transB-view", mm(func(a, b *tensor.Tensor) *tensor.Tensor { return a.MatMul(b.Transpose(0, 1)) }),
			[]*tensor.Tensor{param(1, 3, 4), param(2, 5, 4)}},
		{"transA-view", mm(func(a, b *tensor.Tensor) *tensor.Tensor { return a.Transpose(0, 1).MatMul(b) }),
			[]*tensor.Tensor{param(1, 4, 3), param(2, 4, 5)}},
		{"batched", plain, []*tensor.Tensor{param(1, 2, 3, 4), param(2, 2, 4, 5)}},
		{"batched-shared-weight", plain, []*tensor.Tensor{param(1, 2, 3, 3, 4), param(2, 4, 5)}},
		{"batched-shared-weight-T", mm(func(a, b *tensor.Tensor) *tensor.Tensor { return a.MatMul(b.Transpose(0, 1)) }),
			[]*tensor.Tensor{param(1, 2, 3, 4), param(2, 5, 4)}},
		{"shared-left", plain, []*tensor.Tensor{param(1, 3, 4), param(2, 2, 4, 5)}},
		{"batched-transposed-both", mm(func(a, b *tensor.Tensor) *tensor.Tensor {
			return a.Transpose(1, 2).MatMul(b.Transpose(1, 2))
		}), []*tensor.Tensor{param(1, 2, 4, 3), param(2, 2, 5, 4)}},
		{"permuted-heads", mm(func(a, b *tensor.Tensor) *tensor.Tensor {
			// [B, T, H, D] read as [B, H, T, D] through strides alone
			return a.Permute(0, 2, 1, 3).MatMul(b)
		}), []*tensor.Tensor{param(1, 2, 3, 2, 4), param(2, 2, 2, 4, 3)}},
	})
}

// TestMatMulCopyKeptForGradient: when only one operand needs a gradient, the
// contiguous copy made of the other (here batch axes that cannot collapse
// into one stride) must stay alive for the backward pass.
func TestMatMulCopyKeptForGradient(t *testing.T) {
	a := tensor.Randn(be, tensor.Float64, tensor.NewRNG(1), 1, 2, 2, 3, 4).Permute(1, 0, 2, 3)
	b := param(2, 2, 2, 4, 5)
	loss := a.MatMul(b).Sum()
	// Take a buffer of the copy's size from the pool and scribble on it: if
	// the copy had been released, this is its storage.
	junk := tensor.Full(be, tensor.Float64, 1e6, 2, 2, 3, 4)
	loss.Backward()
	junk.Release()
	ah := a.Float64s() // logical order: A[batch][m][k], batch = 4, m = 3, k = 4
	got := b.Grad().Float64s()
	// dB[batch] = A[batch]ᵀ · ones: entry (k, n) is the sum over m of A[m][k].
	for bi := 0; bi < 4; bi++ {
		for k := 0; k < 4; k++ {
			var s float64
			for m := 0; m < 3; m++ {
				s += ah[bi*12+m*4+k]
			}
			for n := 0; n < 5; n++ {
				if d := got[bi*20+k*5+n] - s; d > 1e-12 || d < -1e-12 {
					t.Fatalf("dB[%d][%d][%d] = %v, want %v", bi, k, n, got[bi*20+k*5+n], s)
				}
			}
		}
	}
}
