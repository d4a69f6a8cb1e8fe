package bench

import (
	"math"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// GPTConfig is the shape of the benchmark model.
type GPTConfig struct {
	Layers, Width, Heads, Vocab, Context int
}

// DefaultGPT is GPT-2's architecture at benchmark size: 4 layers, width
// 256, 4 heads and GPT-2's vocabulary of 50257.
var DefaultGPT = GPTConfig{Layers: 4, Width: 256, Heads: 4, Vocab: 50257, Context: 64}

type block struct {
	ln1w, ln1b, wq, bq, wk, bk, wv, bv, wo, bo *tensor.Tensor
	ln2w, ln2b, wfc, bfc, wproj, bproj         *tensor.Tensor
}

// GPT is a GPT-2 decoder (learned positions, pre-LayerNorm, GELU MLP, tied
// embeddings) built directly from tensor ops; weights are stored
// [out, in] as in GGUF and Hugging Face files.
type GPT struct {
	Cfg      GPTConfig
	wte, wpe *tensor.Tensor
	blocks   []block
	lnfw     *tensor.Tensor
	lnfb     *tensor.Tensor
}

// NewGPT returns a model initialised as GPT-2 is (normal 0.02, residual
// projections scaled by 1/sqrt(2*layers)) from seed.
func NewGPT(be tensor.Backend, cfg GPTConfig, seed uint64) *GPT {
	rng := tensor.NewRNG(seed)
	C := cfg.Width
	w := func(std float64, shape ...int) *tensor.Tensor {
		return tensor.Randn(be, tensor.Float32, rng, std, shape...).SetRequiresGrad(true)
	}
	c := func(v float64, shape ...int) *tensor.Tensor {
		return tensor.Full(be, tensor.Float32, v, shape...).SetRequiresGrad(true)
	}
	resid := 0.02 / math.Sqrt(2*float64(cfg.Layers))
	m := &GPT{Cfg: cfg, wte: w(0.02, cfg.Vocab, C), wpe: w(0.01, cfg.Context, C), lnfw: c(1, C), lnfb: c(0, C)}
	for range cfg.Layers {
		m.blocks = append(m.blocks, block{
			ln1w: c(1, C), ln1b: c(0, C),
			wq: w(0.02, C, C), bq: c(0, C), wk: w(0.02, C, C), bk: c(0, C), wv: w(0.02, C, C), bv: c(0, C),
			wo: w(resid, C, C), bo: c(0, C),
			ln2w: c(1, C), ln2b: c(0, C),
			wfc: w(0.02, 4*C, C), bfc: c(0, 4*C), wproj: w(resid, C, 4*C), bproj: c(0, C),
		})
	}
	return m
}

// Groups returns the parameters split for AdamW: matrices decay; norms,
// biases and embeddings do not.
func (m *GPT) Groups() []train.ParamGroup {
	var decay, keep []*tensor.Tensor
	keep = append(keep, m.wte, m.wpe, m.lnfw, m.lnfb)
	for _, b := range m.blocks {
		decay = append(decay, b.wq, b.wk, b.wv, b.wo, b.wfc, b.wproj)
		keep = append(keep, b.ln1w, b.ln1b, b.bq, b.bk, b.bv, b.bo, b.ln2w, b.ln2b, b.bfc, b.bproj)
	}
	return []train.ParamGroup{{Params: decay}, {Params: keep, NoDecay: true}}
}

// MatmulParams returns the number of weights that take part in matrix
// products (all but the position table, biases and norms), the N of the
// 6·N·tokens estimate.
func (m *GPT) MatmulParams() int {
	C := m.Cfg.Width
	return m.Cfg.Layers*12*C*C + m.Cfg.Vocab*C
}

func linear(x, w, b *tensor.Tensor) *tensor.Tensor {
	return x.MatMul(w.Transpose(0, 1)).Add(b)
}

// Loss returns the mean next-token cross-entropy of ids [B, T] against
// targets [B, T].
func (m *GPT) Loss(ids, pos, targets *tensor.Tensor) *tensor.Tensor {
	B, T := ids.Dim(0), ids.Dim(1)
	C, H := m.Cfg.Width, m.Cfg.Heads
	x := tensor.Embedding(m.wte, ids).Add(tensor.Embedding(m.wpe, pos))
	for _, b := range m.blocks {
		h := x.LayerNorm(b.ln1w, b.ln1b, 1e-5)
		q := linear(h, b.wq, b.bq).Reshape(B, T, H, C/H)
		k := linear(h, b.wk, b.bk).Reshape(B, T, H, C/H)
		v := linear(h, b.wv, b.bv).Reshape(B, T, H, C/H)
		a := tensor.Attention(q, k, v, tensor.AttentionOptions{Causal: true}).Reshape(B, T, C)
		x = x.Add(linear(a, b.wo, b.bo))
		h = x.LayerNorm(b.ln2w, b.ln2b, 1e-5)
		x = x.Add(linear(linear(h, b.wfc, b.bfc).GELU(), b.wproj, b.bproj))
	}
	x = x.LayerNorm(m.lnfw, m.lnfb, 1e-5)
	logits := x.MatMul(m.wte.Transpose(0, 1))
	_, mean := tensor.CrossEntropy(logits, targets)
	return mean
}
