package nn

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/minnowml/minnow/tensor"
)

// DefaultStd is the standard deviation of the normal initialisation of
// weights and embeddings when a configuration leaves it 0; it is the
// initializer_range of GPT-2, Llama and Qwen2.
const DefaultStd = 0.02

// fail panics with *tensor.Error, the panic value of an invalid operand, so
// that tensor.Catch recovers layer mistakes as it recovers op mistakes.
func fail(op, format string, args ...any) {
	panic(&tensor.Error{Op: op, Err: fmt.Errorf(format, args...)})
}

// checkDType rejects dtypes that cannot hold weights.
func checkDType(layer string, dt tensor.DType) error {
	switch dt {
	case tensor.Float32, tensor.Float64, tensor.BFloat16, tensor.Float16:
		return nil
	}
	return fmt.Errorf("nn: %s: dtype %s cannot hold weights (want f32, f64, bf16 or f16)", layer, dt)
}

// checkInit validates what a layer with random weights needs and resolves
// the standard deviation.
func checkInit(layer string, be tensor.Backend, dt tensor.DType, rng *rand.Rand, std float64) (float64, error) {
	if be == nil {
		return 0, fmt.Errorf("nn: %s: %w", layer, errNoBackend)
	}
	if rng == nil {
		return 0, fmt.Errorf("nn: %s: nil random source", layer)
	}
	if err := checkDType(layer, dt); err != nil {
		return 0, err
	}
	if !(std >= 0) {
		return 0, fmt.Errorf("nn: %s: standard deviation %g is negative or NaN", layer, std)
	}
	if std == 0 {
		std = DefaultStd
	}
	return std, nil
}

func param(t *tensor.Tensor) *tensor.Tensor { return t.SetRequiresGrad(true) }

// LinearConfig sizes a Linear layer.
type LinearConfig struct {
	// In and Out are the input and output features.
	In, Out int
	// Bias adds a bias vector of Out elements, initialised to 0.
	Bias bool
	// Std is the standard deviation of the weight's normal initialisation;
	// 0 means DefaultStd.
	Std float64
}

// Linear is an affine map y = x·Wᵀ + b with W stored [out, in].
type Linear struct {
	// Weight is [out, in].
	Weight *tensor.Tensor `gguf:"weight"`
	// Bias is [out], or nil for none.
	Bias *tensor.Tensor `gguf:"bias"`
	// Adapter, when set, adds its Delta to every output, as a LoRA adapter
	// does; its parameters are its own, not the layer's, so Params and
	// checkpoints of the model never list them.
	Adapter Adapter `gguf:"-"`
}

// Adapter is a learned correction attached to a Linear layer.
type Adapter interface {
	// Delta returns the term added to the layer's output for input x
	// [..., in], shaped [..., out], or nil to add nothing (an adapter that
	// is switched off or merged into the weight). The result must be a
	// fresh tensor, such as an op's output: the layer releases it once
	// added. It panics with *tensor.Error on invalid operands, as ops do.
	Delta(x *tensor.Tensor) *tensor.Tensor
}

// NewLinear returns a Linear layer on be with weights of dtype dt drawn
// from rng. It returns an error when a size is not positive, Std is
// negative, be or rng is nil, or dt cannot hold weights.
func NewLinear(be tensor.Backend, dt tensor.DType, rng *rand.Rand, cfg LinearConfig) (*Linear, error) {
	std, err := checkInit("linear", be, dt, rng, cfg.Std)
	if err != nil {
		return nil, err
	}
	if cfg.In <= 0 || cfg.Out <= 0 {
		return nil, fmt.Errorf("nn: linear: sizes in %d and out %d must be positive", cfg.In, cfg.Out)
	}
	l := &Linear{Weight: param(tensor.Randn(be, dt, rng, std, cfg.Out, cfg.In))}
	if cfg.Bias {
		l.Bias = param(tensor.Full(be, dt, 0, cfg.Out))
	}
	return l, nil
}

// Forward returns x·Wᵀ + b, plus the adapter's delta when one is set.
// The weight's transposed view is read in place by MatMul, so no copy of
// W is made. Shapes: x [..., in] with at least two axes -> [..., out]. It panics with *tensor.Error when x's last axis is not
// in, x has fewer than two axes, or dtypes or backends differ.
func (l *Linear) Forward(x *tensor.Tensor) *tensor.Tensor {
	y := x.MatMul(l.Weight.Transpose(0, 1))
	if l.Bias != nil {
		y = y.Add(l.Bias)
	}
	if l.Adapter != nil {
		if d := l.Adapter.Delta(x); d != nil {
			sum := y.Add(d)
			// The sum's backward hands its gradient to both addends without
			// reading their values, so their memory can go back to the pool
			// now instead of at Backward: an adapted layer then holds one
			// output of its size, as a plain one does, not three.
			y.Release()
			d.Release()
			y = sum
		}
	}
	return y
}

// EmbeddingConfig sizes an Embedding table.
type EmbeddingConfig struct {
	// Num is the number of rows (the vocabulary or context size), Dim the
	// features per row.
	Num, Dim int
	// Std is the standard deviation of the normal initialisation; 0 means
	// DefaultStd.
	Std float64
}

// Embedding is a lookup table of learned vectors.
type Embedding struct {
	// Weight is [num, dim].
	Weight *tensor.Tensor `gguf:"weight"`
}

// NewEmbedding returns an Embedding table on be with values of dtype dt
// drawn from rng. It returns an error when a size is not positive, Std is
// negative, be or rng is nil, or dt cannot hold weights.
func NewEmbedding(be tensor.Backend, dt tensor.DType, rng *rand.Rand, cfg EmbeddingConfig) (*Embedding, error) {
	std, err := checkInit("embedding", be, dt, rng, cfg.Std)
	if err != nil {
		return nil, err
	}
	if cfg.Num <= 0 || cfg.Dim <= 0 {
		return nil, fmt.Errorf("nn: embedding: sizes num %d and dim %d must be positive", cfg.Num, cfg.Dim)
	}
	return &Embedding{Weight: param(tensor.Randn(be, dt, rng, std, cfg.Num, cfg.Dim))}, nil
}

// Forward returns the rows selected by ids. Shapes: ids [...] (i32) ->
// [..., dim]. It panics with *tensor.Error when ids is not i32 or an id is
// outside [0, num).
func (e *Embedding) Forward(ids *tensor.Tensor) *tensor.Tensor {
	return tensor.Embedding(e.Weight, ids)
}

// errNoBackend is shared by the constructors that take no random source.
var errNoBackend = errors.New("nil backend")
