package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/minnowml/minnow/tensor"
)

// MLPConfig sizes a feed-forward block.
type MLPConfig struct {
	// Dim is the model width, Hidden the inner width (intermediate_size).
	Dim, Hidden int
	// Bias gives every projection a bias (GPT-2; Llama's mlp_bias).
	Bias bool
	// Std is the standard deviation of the projections' initialisation; 0
	// means DefaultStd. OutStd, when not 0, replaces it for the projection
	// back to Dim, which GPT-2 scales down by 1/sqrt(2·layers) so the
	// residual stream does not grow with depth.
	Std, OutStd float64
}

func (c MLPConfig) check(layer string) error {
	if c.Dim <= 0 || c.Hidden <= 0 {
		return fmt.Errorf("nn: %s: sizes dim %d and hidden %d must be positive", layer, c.Dim, c.Hidden)
	}
	if !(c.OutStd >= 0) {
		return fmt.Errorf("nn: %s: output standard deviation %g is negative or NaN", layer, c.OutStd)
	}
	return nil
}

func (c MLPConfig) outStd() float64 {
	if c.OutStd != 0 {
		return c.OutStd
	}
	return c.Std
}

// SwiGLU is the gated feed-forward block of Llama and Qwen2:
// down(silu(gate(x)) * up(x)).
type SwiGLU struct {
	// Gate and Up project dim -> hidden; Down projects hidden -> dim.
	Gate *Linear `gguf:"ffn_gate"`
	Up   *Linear `gguf:"ffn_up"`
	Down *Linear `gguf:"ffn_down"`
}

// NewSwiGLU returns a SwiGLU block on be with weights of dtype dt drawn from
// rng in the order gate, up, down. It returns an error when a size is not
// positive, a standard deviation is negative, be or rng is nil, or dt
// cannot hold weights.
func NewSwiGLU(be tensor.Backend, dt tensor.DType, rng *rand.Rand, cfg MLPConfig) (*SwiGLU, error) {
	if err := cfg.check("swiglu"); err != nil {
		return nil, err
	}
	m := &SwiGLU{}
	var err error
	if m.Gate, err = NewLinear(be, dt, rng, LinearConfig{In: cfg.Dim, Out: cfg.Hidden, Bias: cfg.Bias, Std: cfg.Std}); err != nil {
		return nil, err
	}
	if m.Up, err = NewLinear(be, dt, rng, LinearConfig{In: cfg.Dim, Out: cfg.Hidden, Bias: cfg.Bias, Std: cfg.Std}); err != nil {
		return nil, err
	}
	if m.Down, err = NewLinear(be, dt, rng, LinearConfig{In: cfg.Hidden, Out: cfg.Dim, Bias: cfg.Bias, Std: cfg.outStd()}); err != nil {
		return nil, err
	}
	return m, nil
}

// Forward returns down(silu(gate(x)) * up(x)) with the fused SwiGLU op.
// Shapes: x [..., dim] -> [..., dim]. It panics with *tensor.Error when x's
// last axis is not dim.
func (m *SwiGLU) Forward(x *tensor.Tensor) *tensor.Tensor {
	return m.Down.Forward(tensor.SwiGLU(m.Gate.Forward(x), m.Up.Forward(x)))
}

// GELUMLP is GPT-2's feed-forward block: proj(gelu(fc(x))) with the tanh
// form of GELU (Hugging Face's "gelu_new"). llama.cpp names its two
// projections ffn_up and ffn_down.
type GELUMLP struct {
	// FC projects dim -> hidden (Hugging Face's c_fc), Proj hidden -> dim
	// (c_proj).
	FC   *Linear `gguf:"ffn_up"`
	Proj *Linear `gguf:"ffn_down"`
}

// NewGELUMLP returns a GELU block on be with weights of dtype dt drawn from
// rng in the order fc, proj. It returns an error when a size is not
// positive, a standard deviation is negative, be or rng is nil, or dt
// cannot hold weights.
func NewGELUMLP(be tensor.Backend, dt tensor.DType, rng *rand.Rand, cfg MLPConfig) (*GELUMLP, error) {
	if err := cfg.check("gelu-mlp"); err != nil {
		return nil, err
	}
	m := &GELUMLP{}
	var err error
	if m.FC, err = NewLinear(be, dt, rng, LinearConfig{In: cfg.Dim, Out: cfg.Hidden, Bias: cfg.Bias, Std: cfg.Std}); err != nil {
		return nil, err
	}
	if m.Proj, err = NewLinear(be, dt, rng, LinearConfig{In: cfg.Hidden, Out: cfg.Dim, Bias: cfg.Bias, Std: cfg.outStd()}); err != nil {
		return nil, err
	}
	return m, nil
}

// Forward returns proj(gelu(fc(x))). Shapes: x [..., dim] -> [..., dim]. It
// panics with *tensor.Error when x's last axis is not dim.
func (m *GELUMLP) Forward(x *tensor.Tensor) *tensor.Tensor {
	return m.Proj.Forward(m.FC.Forward(x).GELU())
}
