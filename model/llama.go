package model

import (
	"fmt"

	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
)

// Llama is a Llama-family decoder: token embedding, pre-norm blocks of
// RMSNorm, grouped-query attention with rotary embedding and a SwiGLU MLP,
// a final RMSNorm and an output layer that may be tied to the embedding.
// It serves Llama 2 and 3, Mistral-style Llama, SmolLM, TinyLlama and
// Qwen2, whose q, k and v projections carry biases and whose rotary
// embedding rotates halves.
type Llama struct {
	// Embed is the token embedding [vocab, width].
	Embed *nn.Embedding `gguf:"token_embd"`
	// Blocks are the transformer layers, "blk.N" in GGUF.
	Blocks []*LlamaBlock `gguf:"blk"`
	// Norm is the final RMSNorm.
	Norm *nn.RMSNorm `gguf:"output_norm"`
	// Output is nil when the embeddings are tied.
	Output *nn.Linear `gguf:"output"`

	b base
}

// LlamaBlock is one transformer block of a Llama-family model.
type LlamaBlock struct {
	// AttnNorm normalises the attention's input.
	AttnNorm *nn.RMSNorm `gguf:"attn_norm"`
	// Attn is the attention (attn_q, attn_k, attn_v, attn_output).
	Attn *nn.Attention `gguf:",inline"`
	// FFNNorm normalises the MLP's input.
	FFNNorm *nn.RMSNorm `gguf:"ffn_norm"`
	// MLP is the SwiGLU block (ffn_gate, ffn_up, ffn_down).
	MLP *nn.SwiGLU `gguf:",inline"`
}

func llamaDefaults() Config {
	bos := 1
	return Config{RMSNormEps: 1e-6, RopeTheta: 10000, InitializerRange: 0.02, HiddenAct: "silu",
		MaxPositionEmbeddings: 2048, BOSTokenID: &bos, EOSTokenID: TokenIDs{2}}
}

func mistralDefaults() Config {
	c := llamaDefaults()
	c.MaxPositionEmbeddings = 4096 * 32
	c.SlidingWindow = 4096
	return c
}

func qwen2Defaults() Config {
	return Config{RMSNormEps: 1e-6, RopeTheta: 10000, InitializerRange: 0.02, HiddenAct: "silu",
		MaxPositionEmbeddings: 32768, SlidingWindow: 4096}
}

// ropeConfig returns the rotary embedding cfg describes, rotating halves
// for Qwen2 and adjacent pairs otherwise (see the package documentation).
func ropeConfig(cfg Config, halfSplit bool) (nn.RoPEConfig, error) {
	r := nn.RoPEConfig{Theta: cfg.RopeTheta, HalfSplit: halfSplit}
	hd := cfg.HeadSize()
	if f := cfg.PartialRotaryFactor; f > 0 && f < 1 {
		r.Dim = int(float64(hd) * f)
	}
	switch k := cfg.RopeScaling.Kind(); k {
	case "", "default":
	case "linear", "llama3":
		s := cfg.RopeScaling
		r.Scaling = &nn.RoPEScaling{Type: k, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
			HighFreqFactor: s.HighFreqFactor, OriginalContext: s.OriginalMaxPositionEmbeddings}
	default:
		return r, fmt.Errorf("key %q: unsupported rope type %q (supported: default, linear, llama3)", "rope_scaling", k)
	}
	if _, err := r.InvFreq(hd); err != nil {
		return r, fmt.Errorf("keys %q, %q, %q and %q: %w", "rope_theta", "rope_scaling", "partial_rotary_factor", "head_dim", err)
	}
	return r, nil
}

// checkLlama returns the Llama family's config check; Qwen2's sliding
// window only counts when use_sliding_window is set.
func checkLlama(qwen2 bool) func(Config) error {
	return func(c Config) error {
		if c.IntermediateSize <= 0 {
			return fmt.Errorf("key %q is missing or not positive (%d)", "intermediate_size", c.IntermediateSize)
		}
		if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
			return fmt.Errorf("key %q: activation %q is not supported by the Llama family (want silu)", "hidden_act", c.HiddenAct)
		}
		if _, err := ropeConfig(c, qwen2); err != nil {
			return err
		}
		if w := c.SlidingWindow; w > 0 && w < c.MaxPositionEmbeddings && (!qwen2 || c.UseSlidingWindow) {
			return fmt.Errorf("key %q (%d) is below max_position_embeddings (%d): sliding-window attention is not supported; set it to null or to the context length",
				"sliding_window", w, c.MaxPositionEmbeddings)
		}
		return nil
	}
}

// newLlama returns the constructor of the Llama family; qwen2 selects
// Qwen2's biases and rotary convention.
func newLlama(qwen2 bool) Constructor {
	return func(cfg Config, be tensor.Backend, dt tensor.DType, seed uint64) (Model, error) {
		rope, err := ropeConfig(cfg, qwen2)
		if err != nil {
			return nil, err
		}
		rng := tensor.NewRNG(seed)
		C, std, eps := cfg.HiddenSize, cfg.InitializerRange, cfg.RMSNormEps
		qkvBias, outBias := cfg.AttentionBias, cfg.AttentionBias
		if qwen2 {
			qkvBias, outBias = true, false
		}
		m := &Llama{b: base{cfg: cfg, be: be, dt: dt}}
		if m.Embed, err = nn.NewEmbedding(be, dt, rng, nn.EmbeddingConfig{Num: cfg.VocabSize, Dim: C, Std: std}); err != nil {
			return nil, fmt.Errorf("model: token embedding: %w", err)
		}
		for i := range cfg.NumHiddenLayers {
			blk := &LlamaBlock{}
			if blk.AttnNorm, err = nn.NewRMSNorm(be, dt, C, eps); err != nil {
				return nil, fmt.Errorf("model: layer %d: %w", i, err)
			}
			if blk.Attn, err = nn.NewAttention(be, dt, rng, nn.AttentionConfig{Dim: C, Heads: cfg.NumAttentionHeads,
				KVHeads: cfg.KVHeads(), HeadDim: cfg.HeadSize(), QKVBias: qkvBias, OutBias: outBias, RoPE: &rope, Std: std}); err != nil {
				return nil, fmt.Errorf("model: layer %d: %w", i, err)
			}
			if blk.FFNNorm, err = nn.NewRMSNorm(be, dt, C, eps); err != nil {
				return nil, fmt.Errorf("model: layer %d: %w", i, err)
			}
			if blk.MLP, err = nn.NewSwiGLU(be, dt, rng, nn.MLPConfig{Dim: C, Hidden: cfg.IntermediateSize, Bias: cfg.MLPBias, Std: std}); err != nil {
				return nil, fmt.Errorf("model: layer %d: %w", i, err)
			}
			m.Blocks = append(m.Blocks, blk)
		}
		if m.Norm, err = nn.NewRMSNorm(be, dt, C, eps); err != nil {
			return nil, fmt.Errorf("model: output norm: %w", err)
		}
		if !cfg.TieWordEmbeddings {
			if m.Output, err = nn.NewLinear(be, dt, rng, nn.LinearConfig{In: C, Out: cfg.VocabSize, Std: std}); err != nil {
				return nil, fmt.Errorf("model: output: %w", err)
			}
		}
		return m, nil
	}
}

// Forward returns the logits [B, T, vocab] for ids [B, T]; see Model.
func (m *Llama) Forward(ids *tensor.Tensor, opt ForwardOptions) *tensor.Tensor {
	pos, p := m.b.inputs(ids, opt)
	x := withPrefix(m.Embed.Forward(ids), opt.Prefix)
	for i, blk := range m.Blocks {
		ao := nn.AttentionOptions{Positions: pos, Mask: opt.Mask, Cache: cacheAt(opt.Caches, i)}
		x = x.Add(blk.Attn.Forward(blk.AttnNorm.Forward(x), ao))
		x = x.Add(blk.MLP.Forward(blk.FFNNorm.Forward(x)))
	}
	return lmHead(m.Norm.Forward(dropPrefix(x, p)), m.Output, m.Embed)
}

// Loss returns the mean next-token cross-entropy of ids against targets;
// see Model.
func (m *Llama) Loss(ids, targets *tensor.Tensor) *tensor.Tensor {
	return meanLoss(m.Forward(ids, ForwardOptions{}), targets)
}

// Config returns a copy of the model's configuration.
func (m *Llama) Config() Config { return m.b.config() }

// Params returns the parameters with their GGUF names; see the package
// function Params.
func (m *Llama) Params() []NamedParam { return Params(m) }

// NewCaches returns one empty KV cache per layer; see Model.
func (m *Llama) NewCaches(batch, maxLen int) []*tensor.KVCache { return m.b.newCaches(batch, maxLen) }
