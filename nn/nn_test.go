package nn_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/tensor/gradcheck"
)

var be = cpu.New(2)

// mk returns v, panicking (which fails the test) on a constructor error.
func mk[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func randn(seed uint64, dt tensor.DType, std float64, shape ...int) *tensor.Tensor {
	return tensor.Randn(be, dt, tensor.NewRNG(seed), std, shape...)
}

func ids(vals []int32, shape ...int) *tensor.Tensor {
	return tensor.From(be, tensor.Int32, vals, shape...)
}

func TestForwardShapes(t *testing.T) {
	dt := tensor.Float32
	r := tensor.NewRNG(1)
	x := randn(2, dt, 1, 2, 3, 8)
	rope := &nn.RoPEConfig{Theta: 10000}
	cases := []struct {
		name string
		fwd  func() *tensor.Tensor
		want []int
	}{
		{"linear", func() *tensor.Tensor {
			return mk(nn.NewLinear(be, dt, r, nn.LinearConfig{In: 8, Out: 5, Bias: true})).Forward(x)
		}, []int{2, 3, 5}},
		{"linear-2d", func() *tensor.Tensor {
			return mk(nn.NewLinear(be, dt, r, nn.LinearConfig{In: 8, Out: 4})).Forward(x.Reshape(6, 8))
		}, []int{6, 4}},
		{"embedding", func() *tensor.Tensor {
			return mk(nn.NewEmbedding(be, dt, r, nn.EmbeddingConfig{Num: 11, Dim: 8})).Forward(ids([]int32{0, 10, 3, 4, 5, 6}, 2, 3))
		}, []int{2, 3, 8}},
		{"rmsnorm", func() *tensor.Tensor { return mk(nn.NewRMSNorm(be, dt, 8, 1e-6)).Forward(x) }, []int{2, 3, 8}},
		{"layernorm", func() *tensor.Tensor { return mk(nn.NewLayerNorm(be, dt, 8, 1e-5, true)).Forward(x) }, []int{2, 3, 8}},
		{"swiglu", func() *tensor.Tensor {
			return mk(nn.NewSwiGLU(be, dt, r, nn.MLPConfig{Dim: 8, Hidden: 12})).Forward(x)
		}, []int{2, 3, 8}},
		{"gelu-mlp", func() *tensor.Tensor {
			return mk(nn.NewGELUMLP(be, dt, r, nn.MLPConfig{Dim: 8, Hidden: 32, Bias: true})).Forward(x)
		}, []int{2, 3, 8}},
		{"attention-gqa-rope", func() *tensor.Tensor {
			a := mk(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8, Heads: 4, KVHeads: 2, RoPE: rope}))
			return a.Forward(x, nn.AttentionOptions{})
		}, []int{2, 3, 8}},
		{"attention-head-dim", func() *tensor.Tensor {
			a := mk(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8, Heads: 3, KVHeads: 1, HeadDim: 6, QKVBias: true, RoPE: rope}))
			return a.Forward(x, nn.AttentionOptions{})
		}, []int{2, 3, 8}},
		{"attention-fused", func() *tensor.Tensor {
			a := mk(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8, Heads: 2, Fused: true, QKVBias: true, OutBias: true}))
			return a.Forward(x, nn.AttentionOptions{})
		}, []int{2, 3, 8}},
	}
	for _, c := range cases {
		var got []int
		if err := tensor.Catch(func() { got = c.fwd().Shape() }); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: shape %v, want %v", c.name, got, c.want)
		}
	}
}

func TestConstructorErrors(t *testing.T) {
	dt := tensor.Float32
	r := tensor.NewRNG(1)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"linear-size", second(nn.NewLinear(be, dt, r, nn.LinearConfig{In: 0, Out: 3})), "must be positive"},
		{"linear-rng", second(nn.NewLinear(be, dt, nil, nn.LinearConfig{In: 2, Out: 3})), "nil random source"},
		{"linear-backend", second(nn.NewLinear(nil, dt, r, nn.LinearConfig{In: 2, Out: 3})), "nil backend"},
		{"linear-dtype", second(nn.NewLinear(be, tensor.Int32, r, nn.LinearConfig{In: 2, Out: 3})), "cannot hold weights"},
		{"linear-std", second(nn.NewLinear(be, dt, r, nn.LinearConfig{In: 2, Out: 3, Std: -1})), "negative"},
		{"embedding-size", second(nn.NewEmbedding(be, dt, r, nn.EmbeddingConfig{Num: 3})), "must be positive"},
		{"rmsnorm-dim", second(nn.NewRMSNorm(be, dt, 0, 1e-5)), "must be positive"},
		{"rmsnorm-eps", second(nn.NewRMSNorm(be, dt, 4, -1)), "eps"},
		{"layernorm-eps", second(nn.NewLayerNorm(be, dt, 4, math.NaN(), true)), "eps"},
		{"layernorm-backend", second(nn.NewLayerNorm(nil, dt, 4, 1e-5, true)), "nil backend"},
		{"swiglu-hidden", second(nn.NewSwiGLU(be, dt, r, nn.MLPConfig{Dim: 4})), "must be positive"},
		{"gelu-outstd", second(nn.NewGELUMLP(be, dt, r, nn.MLPConfig{Dim: 4, Hidden: 8, OutStd: -2})), "negative"},
		{"attention-groups", second(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8, Heads: 4, KVHeads: 3})), "not a multiple"},
		{"attention-split", second(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 10, Heads: 4})), "does not split"},
		{"attention-heads", second(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8})), "must be positive"},
		{"attention-rope-odd", second(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 6, Heads: 2, RoPE: &nn.RoPEConfig{}})), "even"},
		{"attention-rope-dim", second(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8, Heads: 2, RoPE: &nn.RoPEConfig{Dim: 6}})), "at most the head dimension"},
		{"attention-rope-scaling", second(nn.NewAttention(be, dt, r, nn.AttentionConfig{Dim: 8, Heads: 2,
			RoPE: &nn.RoPEConfig{Scaling: &nn.RoPEScaling{Type: "yarn", Factor: 2}}})), "unsupported scaling type"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// slots returns the parameter fields of linear layers, skipping absent
// biases.
func slots(ls ...*nn.Linear) []**tensor.Tensor {
	var s []**tensor.Tensor
	for _, l := range ls {
		if l == nil {
			continue
		}
		s = append(s, &l.Weight)
		if l.Bias != nil {
			s = append(s, &l.Bias)
		}
	}
	return s
}

// checkLayer gradient-checks fwd with respect to x and the parameters in
// ps, whose fields it points at gradcheck's inputs on every call; extra
// inputs (masks, positions) take no gradient.
func checkLayer(t *testing.T, name string, x *tensor.Tensor, ps []**tensor.Tensor, extra []*tensor.Tensor,
	fwd func(x *tensor.Tensor, extra []*tensor.Tensor) *tensor.Tensor) {
	t.Helper()
	in := []*tensor.Tensor{x}
	for _, p := range ps {
		in = append(in, *p)
	}
	in = append(in, extra...)
	gradcheck.Check(t, name, func(in []*tensor.Tensor) *tensor.Tensor {
		for i, p := range ps {
			*p = in[1+i]
		}
		return fwd(in[0], in[1+len(ps):])
	}, in...)
}

func TestGradSimpleLayers(t *testing.T) {
	dt := tensor.Float64
	r := tensor.NewRNG(3)
	x := func() *tensor.Tensor { return randn(4, dt, 1, 2, 3, 5).SetRequiresGrad(true) }
	lin := mk(nn.NewLinear(be, dt, r, nn.LinearConfig{In: 5, Out: 4, Bias: true, Std: 0.5}))
	checkLayer(t, "linear", x(), slots(lin), nil, func(x *tensor.Tensor, _ []*tensor.Tensor) *tensor.Tensor { return lin.Forward(x) })

	noBias := mk(nn.NewLinear(be, dt, r, nn.LinearConfig{In: 5, Out: 3, Std: 0.5}))
	checkLayer(t, "linear-no-bias", x(), slots(noBias), nil, func(x *tensor.Tensor, _ []*tensor.Tensor) *tensor.Tensor { return noBias.Forward(x) })

	emb := mk(nn.NewEmbedding(be, dt, r, nn.EmbeddingConfig{Num: 6, Dim: 3, Std: 1}))
	gradcheck.Check(t, "embedding", func(in []*tensor.Tensor) *tensor.Tensor {
		emb.Weight = in[0]
		return emb.Forward(in[1])
	}, emb.Weight, ids([]int32{0, 5, 5, 2}, 2, 2))

	rms := mk(nn.NewRMSNorm(be, dt, 5, 1e-6))
	rms.Weight = randn(5, dt, 1, 5).SetRequiresGrad(true)
	checkLayer(t, "rmsnorm", x(), []**tensor.Tensor{&rms.Weight}, nil, func(x *tensor.Tensor, _ []*tensor.Tensor) *tensor.Tensor { return rms.Forward(x) })

	ln := mk(nn.NewLayerNorm(be, dt, 5, 1e-5, true))
	ln.Weight = randn(6, dt, 1, 5).SetRequiresGrad(true)
	checkLayer(t, "layernorm", x(), []**tensor.Tensor{&ln.Weight, &ln.Bias}, nil, func(x *tensor.Tensor, _ []*tensor.Tensor) *tensor.Tensor { return ln.Forward(x) })

	sw := mk(nn.NewSwiGLU(be, dt, r, nn.MLPConfig{Dim: 5, Hidden: 7, Std: 0.5}))
	checkLayer(t, "swiglu", x(), slots(sw.Gate, sw.Up, sw.Down), nil, func(x *tensor.Tensor, _ []*tensor.Tensor) *tensor.Tensor { return sw.Forward(x) })

	ge := mk(nn.NewGELUMLP(be, dt, r, nn.MLPConfig{Dim: 5, Hidden: 8, Bias: true, Std: 0.5, OutStd: 0.3}))
	checkLayer(t, "gelu-mlp", x(), slots(ge.FC, ge.Proj), nil, func(x *tensor.Tensor, _ []*tensor.Tensor) *tensor.Tensor { return ge.Forward(x) })
}

func TestGradAttention(t *testing.T) {
	dt := tensor.Float64
	docMask, docPos, err := nn.DocumentMask(be, dt, [][]int{{2, 3}, {4, 1}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		cfg      nn.AttentionConfig
		mask     bool // pass the packed-document mask and positions
		position bool // pass explicit positions without a mask
	}{
		{"gqa-adjacent", nn.AttentionConfig{Dim: 8, Heads: 2, KVHeads: 1, RoPE: &nn.RoPEConfig{Theta: 100}}, false, false},
		{"gqa-half-split", nn.AttentionConfig{Dim: 8, Heads: 2, KVHeads: 1, RoPE: &nn.RoPEConfig{Theta: 100, HalfSplit: true}}, false, false},
		{"gqa-adjacent-mask", nn.AttentionConfig{Dim: 8, Heads: 2, KVHeads: 1, RoPE: &nn.RoPEConfig{Theta: 100}}, true, false},
		{"gqa-half-split-mask-qkv-bias", nn.AttentionConfig{Dim: 8, Heads: 4, KVHeads: 2, QKVBias: true,
			RoPE: &nn.RoPEConfig{Theta: 100, HalfSplit: true}}, true, false},
		{"partial-rotary-llama3", nn.AttentionConfig{Dim: 12, Heads: 2, KVHeads: 1, RoPE: &nn.RoPEConfig{Theta: 50, Dim: 4,
			Scaling: &nn.RoPEScaling{Type: "llama3", Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 16}}}, false, true},
		{"fused-bias-no-rope", nn.AttentionConfig{Dim: 8, Heads: 2, Fused: true, QKVBias: true, OutBias: true, OutStd: 0.2}, true, false},
	}
	for i, c := range cases {
		c.cfg.Std = 0.5
		a := mk(nn.NewAttention(be, dt, tensor.NewRNG(uint64(10+i)), c.cfg))
		x := randn(uint64(20+i), dt, 1, 2, 5, c.cfg.Dim).SetRequiresGrad(true)
		var extra []*tensor.Tensor
		switch {
		case c.mask:
			extra = []*tensor.Tensor{docMask, docPos}
		case c.position:
			extra = []*tensor.Tensor{ids([]int32{3, 4, 5, 6, 7, 0, 1, 2, 3, 9}, 2, 5)}
		}
		checkLayer(t, c.name, x, slots(a.Q, a.K, a.V, a.QKV, a.O), extra, func(x *tensor.Tensor, extra []*tensor.Tensor) *tensor.Tensor {
			var opt nn.AttentionOptions
			switch len(extra) {
			case 2:
				opt.Mask, opt.Positions = extra[0], extra[1]
			case 1:
				opt.Positions = extra[0]
			}
			return a.Forward(x, opt)
		})
	}
}

// maxDiff returns the largest absolute difference of two equal-length
// slices, or +Inf when the lengths differ.
func maxDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func TestFusedMatchesSeparate(t *testing.T) {
	dt := tensor.Float64
	cfg := nn.AttentionConfig{Dim: 8, Heads: 4, KVHeads: 2, QKVBias: true, Std: 0.5, RoPE: &nn.RoPEConfig{}}
	sep := mk(nn.NewAttention(be, dt, tensor.NewRNG(1), cfg))
	cfg.Fused = true
	fused := mk(nn.NewAttention(be, dt, tensor.NewRNG(2), cfg))
	fused.QKV.Weight = tensor.Concat(0, sep.Q.Weight, sep.K.Weight, sep.V.Weight)
	fused.QKV.Bias = tensor.Concat(0, sep.Q.Bias, sep.K.Bias, sep.V.Bias)
	fused.O = sep.O
	x := randn(3, dt, 1, 2, 4, 8)
	if d := maxDiff(sep.Forward(x, nn.AttentionOptions{}).Float64s(), fused.Forward(x, nn.AttentionOptions{}).Float64s()); d > 1e-12 {
		t.Errorf("fused projection differs from separate ones by %g", d)
	}
}

// TestRoPEConventionsAgree checks that the adjacent-pair and rotate-half
// conventions describe the same layer once the rows of the q and k
// projections are permuted within each head (adjacent row 2i is half row
// i, adjacent row 2i+1 is half row i+D/2), which is the permutation a
// Hugging Face Llama checkpoint needs to run with adjacent pairs.
func TestRoPEConventionsAgree(t *testing.T) {
	dt := tensor.Float64
	const dim, heads, kvHeads = 12, 2, 1
	half := mk(nn.NewAttention(be, dt, tensor.NewRNG(5), nn.AttentionConfig{Dim: dim, Heads: heads, KVHeads: kvHeads, Std: 0.5,
		RoPE: &nn.RoPEConfig{Theta: 30, HalfSplit: true}}))
	adj := mk(nn.NewAttention(be, dt, tensor.NewRNG(6), nn.AttentionConfig{Dim: dim, Heads: heads, KVHeads: kvHeads, Std: 0.5,
		RoPE: &nn.RoPEConfig{Theta: 30}}))
	D := dim / heads
	permute := func(w *tensor.Tensor, h int) *tensor.Tensor {
		src := w.Float64s()
		cols := w.Dim(1)
		dst := make([]float64, len(src))
		for hh := range h {
			for i := range D / 2 {
				copy(dst[(hh*D+2*i)*cols:][:cols], src[(hh*D+i)*cols:][:cols])
				copy(dst[(hh*D+2*i+1)*cols:][:cols], src[(hh*D+i+D/2)*cols:][:cols])
			}
		}
		return tensor.From(be, dt, dst, w.Shape()...)
	}
	adj.Q.Weight = permute(half.Q.Weight, heads)
	adj.K.Weight = permute(half.K.Weight, kvHeads)
	adj.V, adj.O = half.V, half.O
	x := randn(7, dt, 1, 2, 5, dim)
	pos := ids([]int32{0, 1, 2, 3, 4, 7, 8, 9, 10, 11}, 2, 5)
	a := half.Forward(x, nn.AttentionOptions{Positions: pos}).Float64s()
	b := adj.Forward(x, nn.AttentionOptions{Positions: pos}).Float64s()
	if d := maxDiff(a, b); d > 1e-12 {
		t.Errorf("conventions differ by %g after permuting q and k rows", d)
	}
	// Without the permutation they must differ, or the test proves nothing.
	adj.Q.Weight, adj.K.Weight = half.Q.Weight, half.K.Weight
	if d := maxDiff(a, adj.Forward(x, nn.AttentionOptions{Positions: pos}).Float64s()); d < 1e-6 {
		t.Errorf("conventions agree without the permutation (difference %g)", d)
	}
}

// TestAttentionCache checks that decoding with a KV cache, a prefill and
// then one token at a time, gives the outputs of one full pass.
func TestAttentionCache(t *testing.T) {
	for _, fused := range []bool{false, true} {
		dt := tensor.Float32
		a := mk(nn.NewAttention(be, dt, tensor.NewRNG(9), nn.AttentionConfig{Dim: 8, Heads: 4, KVHeads: 2, Fused: fused, Std: 0.3,
			RoPE: &nn.RoPEConfig{HalfSplit: fused}}))
		const B, T, prefill = 2, 6, 3
		x := randn(10, dt, 1, B, T, 8)
		var full []float32
		tensor.NoGrad(func() {
			full = a.Forward(x, nn.AttentionOptions{}).Float32s()
			cache := tensor.NewKVCache(be, dt, B, T, 2, 2)
			defer cache.Release()
			steps := []int{0, prefill}
			for i := prefill + 1; i <= T; i++ {
				steps = append(steps, i)
			}
			for s := 1; s < len(steps); s++ {
				lo, hi := steps[s-1], steps[s]
				got := a.Forward(x.Slice(1, lo, hi), nn.AttentionOptions{Cache: cache}).Float32s()
				for b := range B {
					for i := range (hi - lo) * 8 {
						want := full[b*T*8+lo*8+i]
						if g := got[b*(hi-lo)*8+i]; math.Abs(float64(g-want)) > 1e-5 {
							t.Fatalf("fused=%v tokens [%d, %d) row %d: %g, full pass %g", fused, lo, hi, b, g, want)
						}
					}
				}
			}
			if cache.Len() != T {
				t.Errorf("cache holds %d tokens, want %d", cache.Len(), T)
			}
		})
	}
}

func TestInvFreq(t *testing.T) {
	// Llama 3.2's rope_scaling: the fastest pair is kept, the slowest is
	// divided by the factor.
	cfg := nn.RoPEConfig{Theta: 500000, Scaling: &nn.RoPEScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}}
	f, err := cfg.InvFreq(64)
	if err != nil {
		t.Fatal(err)
	}
	plain := mk(nn.RoPEConfig{Theta: 500000}.InvFreq(64))
	if len(f) != 32 || f[0] != 1 || plain[0] != 1 {
		t.Fatalf("first frequency %v, want 1 of 32", f[:1])
	}
	if want := plain[31] / 32; math.Abs(f[31]-want) > 1e-18 {
		t.Errorf("slowest frequency %g, want %g", f[31], want)
	}
	for i := range f {
		if f[i] > plain[i] || f[i] < plain[i]/32*(1-1e-12) {
			t.Errorf("frequency %d = %g outside [%g, %g]", i, f[i], plain[i]/32, plain[i])
		}
		if i > 0 && f[i] >= f[i-1] {
			t.Errorf("frequencies not decreasing at %d", i)
		}
	}
	lin := mk(nn.RoPEConfig{Dim: 4, Scaling: &nn.RoPEScaling{Type: "linear", Factor: 2}}.InvFreq(8))
	if want := []float64{0.5, 0.005}; maxDiff(lin, want) > 1e-15 {
		t.Errorf("linear scaling %v, want %v", lin, want)
	}
	for _, bad := range []nn.RoPEConfig{
		{Theta: -1},
		{Dim: 3},
		{Scaling: &nn.RoPEScaling{Type: "linear"}},
		{Scaling: &nn.RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalContext: 10}},
	} {
		if _, err := bad.InvFreq(8); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestDocumentMask(t *testing.T) {
	mask, pos, err := nn.DocumentMask(be, tensor.Float32, [][]int{{2, 1}, {3}})
	if err != nil {
		t.Fatal(err)
	}
	inf := math.Inf(-1)
	want := []float64{
		0, 0, inf, 0, 0, inf, inf, inf, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	if got := mask.Float64s(); !slices.Equal(got, want) || !slices.Equal(mask.Shape(), []int{2, 3, 3}) {
		t.Errorf("mask %v %v, want [2 3 3] %v", mask.Shape(), got, want)
	}
	if got := pos.Int32s(); !slices.Equal(got, []int32{0, 1, 0, 0, 1, 2}) {
		t.Errorf("positions %v", got)
	}
	for _, bad := range [][][]int{nil, {{2}, {3}}, {{0, 2}}, {{}}} {
		if _, _, err := nn.DocumentMask(be, tensor.Float32, bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestPositionCache(t *testing.T) {
	var c nn.PositionCache
	p := c.Get(be, 2, 3, 4)
	if got := p.Int32s(); !slices.Equal(got, []int32{4, 5, 6, 4, 5, 6}) {
		t.Errorf("positions %v", got)
	}
	if c.Get(be, 2, 3, 4) != p {
		t.Error("same shape and start gave a new tensor")
	}
	if c.Get(be, 2, 3, 5) == p {
		t.Error("another start reused the tensor")
	}
}

func TestForwardPanicsWithTensorError(t *testing.T) {
	a := mk(nn.NewAttention(be, tensor.Float32, tensor.NewRNG(1), nn.AttentionConfig{Dim: 8, Heads: 2}))
	err := tensor.Catch(func() { a.Forward(randn(1, tensor.Float32, 1, 2, 8), nn.AttentionOptions{}) })
	var te *tensor.Error
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "want [B, T, 8]") {
		t.Errorf("error %v, want a *tensor.Error about the input shape", err)
	}
}

// scaledInput is an Adapter adding k·x (for a square layer), or nothing
// when off.
type scaledInput struct {
	k  float64
	on bool
}

func (s *scaledInput) Delta(x *tensor.Tensor) *tensor.Tensor {
	if !s.on {
		return nil
	}
	return x.Scale(s.k)
}

// TestLinearAdapter checks that an adapter's delta is added to the output,
// that a nil delta leaves it exactly as without an adapter, and that the
// adapter stays out of the layer's parameters.
func TestLinearAdapter(t *testing.T) {
	l := mk(nn.NewLinear(be, tensor.Float64, tensor.NewRNG(3), nn.LinearConfig{In: 4, Out: 4, Bias: true}))
	x := randn(4, tensor.Float64, 1, 2, 4)
	plain := l.Forward(x).Float64s()
	xs := x.Float64s()
	cases := []struct {
		name string
		ad   *scaledInput
		want func(i int) float64
	}{
		{"off", &scaledInput{k: 2, on: false}, func(i int) float64 { return plain[i] }},
		{"on", &scaledInput{k: 2, on: true}, func(i int) float64 { return plain[i] + 2*xs[i] }},
		{"negative", &scaledInput{k: -0.5, on: true}, func(i int) float64 { return plain[i] - 0.5*xs[i] }},
	}
	for _, c := range cases {
		l.Adapter = c.ad
		got := l.Forward(x).Float64s()
		for i := range got {
			if math.Abs(got[i]-c.want(i)) > 1e-12 {
				t.Fatalf("%s: output %d is %v, want %v", c.name, i, got[i], c.want(i))
			}
		}
	}
	l.Adapter = nil
	if got := l.Forward(x).Float64s(); !slices.Equal(got, plain) {
		t.Errorf("without the adapter the output changed: %v, want %v", got, plain)
	}
}
