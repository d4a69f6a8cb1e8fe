package nn

import (
	"fmt"

	"github.com/minnowml/minnow/tensor"
)

// checkNorm validates a norm layer's configuration.
func checkNorm(layer string, be tensor.Backend, dt tensor.DType, dim int, eps float64) error {
	if be == nil {
		return fmt.Errorf("nn: %s: %w", layer, errNoBackend)
	}
	if err := checkDType(layer, dt); err != nil {
		return err
	}
	if dim <= 0 {
		return fmt.Errorf("nn: %s: dim %d must be positive", layer, dim)
	}
	if !(eps >= 0) {
		return fmt.Errorf("nn: %s: eps %g is negative or NaN", layer, eps)
	}
	return nil
}

// RMSNorm scales each feature vector to unit root mean square and then by
// a learned gain, as Llama and Qwen2 normalise.
type RMSNorm struct {
	// Weight is the gain [dim], initialised to 1.
	Weight *tensor.Tensor `gguf:"weight"`
	// Eps is added to the mean square (rms_norm_eps).
	Eps float64
}

// NewRMSNorm returns an RMSNorm over dim features on be with a gain of
// dtype dt. It returns an error when dim is not positive, eps is negative,
// be is nil or dt cannot hold weights.
func NewRMSNorm(be tensor.Backend, dt tensor.DType, dim int, eps float64) (*RMSNorm, error) {
	if err := checkNorm("rmsnorm", be, dt, dim, eps); err != nil {
		return nil, err
	}
	return &RMSNorm{Weight: param(tensor.Full(be, dt, 1, dim)), Eps: eps}, nil
}

// Forward returns x / sqrt(mean(x²) + Eps) * Weight over the last axis.
// Shapes: x [..., dim] -> [..., dim]. It panics with *tensor.Error when the
// last axis is not dim or dtypes or backends differ.
func (n *RMSNorm) Forward(x *tensor.Tensor) *tensor.Tensor { return x.RMSNorm(n.Weight, n.Eps) }

// LayerNorm centres and scales each feature vector, then applies a learned
// gain and bias, as GPT-2 normalises.
type LayerNorm struct {
	// Weight is the gain [dim], initialised to 1.
	Weight *tensor.Tensor `gguf:"weight"`
	// Bias is [dim], initialised to 0, or nil for none.
	Bias *tensor.Tensor `gguf:"bias"`
	// Eps is added to the variance (layer_norm_epsilon).
	Eps float64
}

// NewLayerNorm returns a LayerNorm over dim features on be with parameters
// of dtype dt, with a bias when bias is set. It returns an error when dim is
// not positive, eps is negative, be is nil or dt cannot hold weights.
func NewLayerNorm(be tensor.Backend, dt tensor.DType, dim int, eps float64, bias bool) (*LayerNorm, error) {
	if err := checkNorm("layernorm", be, dt, dim, eps); err != nil {
		return nil, err
	}
	n := &LayerNorm{Weight: param(tensor.Full(be, dt, 1, dim)), Eps: eps}
	if bias {
		n.Bias = param(tensor.Full(be, dt, 0, dim))
	}
	return n, nil
}

// Forward returns (x - mean) / sqrt(var + Eps) * Weight + Bias over the
// last axis. Shapes: x [..., dim] -> [..., dim]. It panics with
// *tensor.Error when the last axis is not dim or dtypes or backends differ.
func (n *LayerNorm) Forward(x *tensor.Tensor) *tensor.Tensor {
	return x.LayerNorm(n.Weight, n.Bias, n.Eps)
}
