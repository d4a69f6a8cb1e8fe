package model

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
)

// GPT2 is GPT-2: token and learned position embeddings, pre-norm blocks of
// LayerNorm, multi-head attention with one fused q/k/v projection and a
// GELU MLP (every projection with a bias), a final LayerNorm and an output
// layer tied to the token embedding unless the config unties it.
type GPT2 struct {
	// Embed is the token embedding [vocab, width] (wte).
	Embed *nn.Embedding `gguf:"token_embd"`
	// Pos is the learned position embedding [n_positions, width] (wpe).
	Pos *nn.Embedding `gguf:"position_embd"`
	// Blocks are the transformer layers, "blk.N" in GGUF.
	Blocks []*GPT2Block `gguf:"blk"`
	// Norm is the final LayerNorm (ln_f).
	Norm *nn.LayerNorm `gguf:"output_norm"`
	// Output is nil when the embeddings are tied, as GPT-2's are.
	Output *nn.Linear `gguf:"output"`

	b base
}

// GPT2Block is one transformer block of GPT-2.
type GPT2Block struct {
	// AttnNorm normalises the attention's input (ln_1).
	AttnNorm *nn.LayerNorm `gguf:"attn_norm"`
	// Attn is the attention with its fused projection (attn_qkv,
	// attn_output).
	Attn *nn.Attention `gguf:",inline"`
	// FFNNorm normalises the MLP's input (ln_2).
	FFNNorm *nn.LayerNorm `gguf:"ffn_norm"`
	// MLP is the GELU block (ffn_up, ffn_down).
	MLP *nn.GELUMLP `gguf:",inline"`
}

func gpt2Defaults() Config {
	id := 50256
	return Config{LayerNormEpsilon: 1e-5, InitializerRange: 0.02, HiddenAct: "gelu_new", MaxPositionEmbeddings: 1024,
		TieWordEmbeddings: true, BOSTokenID: &id, EOSTokenID: TokenIDs{id}}
}

func checkGPT2(c Config) error {
	if c.MaxPositionEmbeddings <= 0 {
		return fmt.Errorf("key %q is missing or not positive (%d)", "n_positions", c.MaxPositionEmbeddings)
	}
	switch c.HiddenAct {
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
	default:
		return fmt.Errorf("key %q: activation %q is not supported by GPT-2 (want the tanh form: gelu_new or gelu_pytorch_tanh)", "activation_function", c.HiddenAct)
	}
	if c.NumKeyValueHeads != 0 && c.NumKeyValueHeads != c.NumAttentionHeads {
		return fmt.Errorf("key %q (%d): GPT-2 has no grouped-query attention", "num_key_value_heads", c.NumKeyValueHeads)
	}
	if c.HeadDim != 0 && c.HeadDim*c.NumAttentionHeads != c.HiddenSize {
		return fmt.Errorf("key %q (%d) must be n_embd / n_head", "head_dim", c.HeadDim)
	}
	if c.RopeScaling != nil {
		return fmt.Errorf("key %q: GPT-2 has no rotary embedding", "rope_scaling")
	}
	return nil
}

// newGPT2 builds GPT-2 initialised as transformers does: normal with
// initializer_range for matrices and both embeddings, and the output
// projections of attention and MLP (which add into the residual stream)
// with initializer_range/sqrt(2·layers).
func newGPT2(cfg Config, be tensor.Backend, dt tensor.DType, seed uint64) (Model, error) {
	rng := tensor.NewRNG(seed)
	C, std, eps := cfg.HiddenSize, cfg.InitializerRange, cfg.LayerNormEpsilon
	resid := std / math.Sqrt(2*float64(cfg.NumHiddenLayers))
	inner := cfg.IntermediateSize
	if inner == 0 {
		inner = 4 * C
	}
	m := &GPT2{b: base{cfg: cfg, be: be, dt: dt}}
	var err error
	if m.Embed, err = nn.NewEmbedding(be, dt, rng, nn.EmbeddingConfig{Num: cfg.VocabSize, Dim: C, Std: std}); err != nil {
		return nil, fmt.Errorf("model: token embedding: %w", err)
	}
	if m.Pos, err = nn.NewEmbedding(be, dt, rng, nn.EmbeddingConfig{Num: cfg.MaxPositionEmbeddings, Dim: C, Std: std}); err != nil {
		return nil, fmt.Errorf("model: position embedding: %w", err)
	}
	for i := range cfg.NumHiddenLayers {
		blk := &GPT2Block{}
		if blk.AttnNorm, err = nn.NewLayerNorm(be, dt, C, eps, true); err != nil {
			return nil, fmt.Errorf("model: layer %d: %w", i, err)
		}
		if blk.Attn, err = nn.NewAttention(be, dt, rng, nn.AttentionConfig{Dim: C, Heads: cfg.NumAttentionHeads,
			Fused: true, QKVBias: true, OutBias: true, Std: std, OutStd: resid}); err != nil {
			return nil, fmt.Errorf("model: layer %d: %w", i, err)
		}
		if blk.FFNNorm, err = nn.NewLayerNorm(be, dt, C, eps, true); err != nil {
			return nil, fmt.Errorf("model: layer %d: %w", i, err)
		}
		if blk.MLP, err = nn.NewGELUMLP(be, dt, rng, nn.MLPConfig{Dim: C, Hidden: inner, Bias: true, Std: std, OutStd: resid}); err != nil {
			return nil, fmt.Errorf("model: layer %d: %w", i, err)
		}
		m.Blocks = append(m.Blocks, blk)
	}
	if m.Norm, err = nn.NewLayerNorm(be, dt, C, eps, true); err != nil {
		return nil, fmt.Errorf("model: output norm: %w", err)
	}
	if !cfg.TieWordEmbeddings {
		if m.Output, err = nn.NewLinear(be, dt, rng, nn.LinearConfig{In: C, Out: cfg.VocabSize, Std: std}); err != nil {
			return nil, fmt.Errorf("model: output: %w", err)
		}
	}
	return m, nil
}

// Forward returns the logits [B, T, vocab] for ids [B, T]; see Model. A
// position at or beyond n_positions panics with *tensor.Error, as the
// position table has no row for it.
func (m *GPT2) Forward(ids *tensor.Tensor, opt ForwardOptions) *tensor.Tensor {
	pos, p := m.b.inputs(ids, opt)
	x := withPrefix(m.Embed.Forward(ids), opt.Prefix).Add(m.Pos.Forward(pos))
	for i, blk := range m.Blocks {
		ao := nn.AttentionOptions{Mask: opt.Mask, Cache: cacheAt(opt.Caches, i)}
		x = x.Add(blk.Attn.Forward(blk.AttnNorm.Forward(x), ao))
		x = x.Add(blk.MLP.Forward(blk.FFNNorm.Forward(x)))
	}
	return lmHead(m.Norm.Forward(dropPrefix(x, p)), m.Output, m.Embed)
}

// Loss returns the mean next-token cross-entropy of ids against targets;
// see Model.
func (m *GPT2) Loss(ids, targets *tensor.Tensor) *tensor.Tensor {
	return meanLoss(m.Forward(ids, ForwardOptions{}), targets)
}

// Config returns a copy of the model's configuration.
func (m *GPT2) Config() Config { return m.b.config() }

// Params returns the parameters with their GGUF names; see the package
// function Params.
func (m *GPT2) Params() []NamedParam { return Params(m) }

// NewCaches returns one empty KV cache per layer; see Model.
func (m *GPT2) NewCaches(batch, maxLen int) []*tensor.KVCache { return m.b.newCaches(batch, maxLen) }
