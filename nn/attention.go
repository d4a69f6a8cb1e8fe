package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/minnowml/minnow/tensor"
)

// AttentionConfig configures an Attention layer.
type AttentionConfig struct {
	// Dim is the model width (the features of the input and output).
	Dim int
	// Heads is the number of query heads, KVHeads the number of key/value
	// heads, which must divide Heads (grouped-query attention); 0 means
	// Heads (multi-head attention).
	Heads, KVHeads int
	// HeadDim is the features per head; 0 means Dim/Heads, which must then
	// divide evenly.
	HeadDim int
	// QKVBias gives the query, key and value projections biases (Qwen2,
	// GPT-2); OutBias gives the output projection one (GPT-2).
	QKVBias, OutBias bool
	// Fused computes queries, keys and values with one projection whose
	// rows hold q, then k, then v, as GPT-2 and llama.cpp's attn_qkv store
	// them; otherwise there are three projections attn_q, attn_k, attn_v.
	Fused bool
	// RoPE, when set, rotates queries and keys by their positions; nil
	// means no rotary embedding (GPT-2 learns absolute positions instead).
	RoPE *RoPEConfig
	// NonCausal lets every query see every key, as an encoder would;
	// decoders leave it false so a token sees only itself and its past.
	NonCausal bool
	// Std is the standard deviation of the projections' initialisation; 0
	// means DefaultStd. OutStd, when not 0, replaces it for the output
	// projection (GPT-2's residual scaling).
	Std, OutStd float64
}

// Attention is multi-head self-attention with grouped key/value heads,
// optional rotary position embedding and an optional KV cache. Exactly one
// of QKV (fused) and the trio Q, K, V is set.
type Attention struct {
	// Q, K and V project to queries [heads·headDim] and keys and values
	// [kvHeads·headDim]; nil when fused.
	Q *Linear `gguf:"attn_q"`
	K *Linear `gguf:"attn_k"`
	V *Linear `gguf:"attn_v"`
	// QKV projects to queries, keys and values at once (rows q, then k,
	// then v); nil unless fused.
	QKV *Linear `gguf:"attn_qkv"`
	// O projects the heads' outputs back to the model width.
	O *Linear `gguf:"attn_output"`

	cfg   AttentionConfig // resolved: KVHeads and HeadDim set
	freqs []float64       // rotary inverse frequencies, nil without RoPE
	// invFreq holds freqs on the device in the dtype last used; it is a
	// constant, not a parameter.
	invFreq *tensor.Tensor
	pos     PositionCache
}

// NewAttention returns an Attention layer on be with weights of dtype dt
// drawn from rng in the order q, k, v (or the fused qkv), output. It returns
// an error when a size is not positive, Heads is not a multiple of KVHeads,
// Dim does not split into heads, the rotary configuration is invalid, a
// standard deviation is negative, be or rng is nil, or dt cannot hold
// weights.
func NewAttention(be tensor.Backend, dt tensor.DType, rng *rand.Rand, cfg AttentionConfig) (*Attention, error) {
	if cfg.Dim <= 0 || cfg.Heads <= 0 || cfg.KVHeads < 0 || cfg.HeadDim < 0 {
		return nil, fmt.Errorf("nn: attention: dim %d, heads %d, kv heads %d and head dim %d must be positive (0 for defaults)", cfg.Dim, cfg.Heads, cfg.KVHeads, cfg.HeadDim)
	}
	if cfg.KVHeads == 0 {
		cfg.KVHeads = cfg.Heads
	}
	if cfg.Heads%cfg.KVHeads != 0 {
		return nil, fmt.Errorf("nn: attention: %d query heads are not a multiple of %d key/value heads", cfg.Heads, cfg.KVHeads)
	}
	if cfg.HeadDim == 0 {
		if cfg.Dim%cfg.Heads != 0 {
			return nil, fmt.Errorf("nn: attention: dim %d does not split into %d heads", cfg.Dim, cfg.Heads)
		}
		cfg.HeadDim = cfg.Dim / cfg.Heads
	}
	if !(cfg.OutStd >= 0) {
		return nil, fmt.Errorf("nn: attention: output standard deviation %g is negative or NaN", cfg.OutStd)
	}
	a := &Attention{}
	if cfg.RoPE != nil {
		r := *cfg.RoPE
		if r.Scaling != nil {
			s := *r.Scaling
			r.Scaling = &s
		}
		cfg.RoPE = &r
		f, err := r.InvFreq(cfg.HeadDim)
		if err != nil {
			return nil, err
		}
		a.freqs = f
	}
	a.cfg = cfg
	H, KV, D := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	lin := func(in, out int, bias bool, std float64) (*Linear, error) {
		return NewLinear(be, dt, rng, LinearConfig{In: in, Out: out, Bias: bias, Std: std})
	}
	var err error
	if cfg.Fused {
		if a.QKV, err = lin(cfg.Dim, (H+2*KV)*D, cfg.QKVBias, cfg.Std); err != nil {
			return nil, err
		}
	} else {
		if a.Q, err = lin(cfg.Dim, H*D, cfg.QKVBias, cfg.Std); err != nil {
			return nil, err
		}
		if a.K, err = lin(cfg.Dim, KV*D, cfg.QKVBias, cfg.Std); err != nil {
			return nil, err
		}
		if a.V, err = lin(cfg.Dim, KV*D, cfg.QKVBias, cfg.Std); err != nil {
			return nil, err
		}
	}
	outStd := cfg.OutStd
	if outStd == 0 {
		outStd = cfg.Std
	}
	if a.O, err = lin(H*D, cfg.Dim, cfg.OutBias, outStd); err != nil {
		return nil, err
	}
	return a, nil
}

// Config returns the layer's configuration with defaults resolved: KVHeads
// and HeadDim are set.
func (a *Attention) Config() AttentionConfig {
	c := a.cfg
	if c.RoPE != nil {
		r := *c.RoPE
		c.RoPE = &r
	}
	return c
}

// AttentionOptions carries the per-call inputs of Attention.Forward.
type AttentionOptions struct {
	// Positions (i32, B·T elements, usually [B, T]) are the positions RoPE
	// rotates by; nil means 0..T-1 in every row, continuing from the cache
	// length when Cache is set. Packed documents pass positions that restart
	// with each document (see DocumentMask).
	Positions *tensor.Tensor
	// Mask is added to the attention scores: [B, T, Tk] or [T, Tk], 0 where
	// a query may look and -Inf where it may not, with Tk the cached plus
	// new tokens. It works together with causal masking.
	Mask *tensor.Tensor
	// Cache, when set, receives this call's keys and values, and attention
	// reads every cached token: the call decodes T new tokens after
	// Cache.Len() earlier ones. Decode under tensor.NoGrad.
	Cache *tensor.KVCache
}

// Forward returns self-attention over x: project to queries, keys and
// values, rotate queries and keys by position (with RoPE), append keys and
// values to the cache (when given), attend causally with GQA and the
// optional mask, and project back. Shapes: x [B, T, dim] -> [B, T, dim]. It
// panics with *tensor.Error when x is not [B, T, dim], the positions, mask
// or cache do not fit, or dtypes or backends differ.
func (a *Attention) Forward(x *tensor.Tensor, opt AttentionOptions) *tensor.Tensor {
	c := a.cfg
	if x.Rank() != 3 || x.Dim(2) != c.Dim {
		fail("nn.attention", "input of shape %v, want [B, T, %d]", x.Shape(), c.Dim)
	}
	B, T := x.Dim(0), x.Dim(1)
	H, KV, D := c.Heads, c.KVHeads, c.HeadDim
	var q, k, v *tensor.Tensor
	if a.QKV != nil {
		// Slices of the fused projection; Reshape makes each dense, which
		// RoPE and attention need anyway.
		qkv := a.QKV.Forward(x)
		q = qkv.Slice(2, 0, H*D)
		k = qkv.Slice(2, H*D, (H+KV)*D)
		v = qkv.Slice(2, (H+KV)*D, (H+2*KV)*D)
	} else {
		q, k, v = a.Q.Forward(x), a.K.Forward(x), a.V.Forward(x)
	}
	q, k, v = q.Reshape(B, T, H, D), k.Reshape(B, T, KV, D), v.Reshape(B, T, KV, D)
	if a.freqs != nil {
		pos := opt.Positions
		if pos == nil {
			start := 0
			if opt.Cache != nil {
				start = opt.Cache.Len()
			}
			pos = a.pos.Get(x.Backend(), B, T, start)
		}
		f := a.frequencies(x)
		q = q.RoPE(pos, f, c.RoPE.HalfSplit)
		k = k.RoPE(pos, f, c.RoPE.HalfSplit)
	}
	cached := false
	if opt.Cache != nil {
		k, v = opt.Cache.Append(k, v)
		cached = true
	}
	o := tensor.Attention(q, k, v, tensor.AttentionOptions{Causal: !c.NonCausal, Mask: opt.Mask})
	if cached && !o.RequiresGrad() {
		// The views of the cache hold its memory; without a graph that reads
		// them they can go, so KVCache.Release frees the memory.
		k.Release()
		v.Release()
	}
	return a.O.Forward(o.Reshape(B, T, H*D))
}

// frequencies returns the inverse frequencies on x's backend in x's dtype,
// rebuilding them when either changed (a float64 gradient check followed by
// a float32 run).
func (a *Attention) frequencies(x *tensor.Tensor) *tensor.Tensor {
	f := a.invFreq
	if f == nil || f.DType() != x.DType() || f.Backend() != x.Backend() {
		// The previous tensor is left to the garbage collector: a recorded
		// graph may still read it.
		f = tensor.From(x.Backend(), x.DType(), a.freqs)
		a.invFreq = f
	}
	return f
}
