package nn

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// RoPEConfig configures rotary position embedding in an attention layer.
type RoPEConfig struct {
	// Theta is the frequency base (rope_theta); 0 means 10000.
	Theta float64
	// Dim is the number of features of each head that rotate (the rest pass
	// through); 0 means the whole head. It must be even.
	Dim int
	// HalfSplit pairs feature i with i+Dim/2 ("rotate half", as Hugging Face
	// and llama.cpp's NeoX mode rotate, and as Qwen2 is stored); otherwise
	// adjacent features (2i, 2i+1) pair up, as Meta's Llama code and
	// llama.cpp's normal mode rotate. The two describe the same model once
	// the rows of the q and k projections are permuted accordingly, which is
	// what llama.cpp's converter does for Llama.
	HalfSplit bool
	// Scaling, when set, stretches the frequencies for longer contexts.
	Scaling *RoPEScaling
}

// RoPEScaling describes a frequency scaling of rotary embedding, as
// config.json's rope_scaling does.
type RoPEScaling struct {
	// Type is "linear" (every frequency divided by Factor) or "llama3"
	// (Llama 3.1's scheme: low frequencies divided by Factor, high ones kept,
	// a smooth blend between).
	Type string
	// Factor divides the frequencies it applies to.
	Factor float64
	// LowFreqFactor and HighFreqFactor bound the blended band (llama3).
	LowFreqFactor, HighFreqFactor float64
	// OriginalContext is the context length of pretraining (llama3's
	// original_max_position_embeddings).
	OriginalContext int
}

// InvFreq returns the inverse frequencies of the rotary pairs for heads of
// headDim features: theta^(-2i/dim) for i < dim/2, with Scaling applied. It
// returns an error when the rotary dimension is odd, not positive or above
// headDim, theta is negative, or the scaling is unknown or inconsistent.
func (c RoPEConfig) InvFreq(headDim int) ([]float64, error) {
	dim := c.Dim
	if dim == 0 {
		dim = headDim
	}
	if dim <= 0 || dim%2 != 0 || dim > headDim {
		return nil, fmt.Errorf("nn: rope: rotary dimension %d must be positive, even and at most the head dimension %d", dim, headDim)
	}
	theta := c.Theta
	if theta == 0 {
		theta = 10000
	}
	if !(theta > 0) || math.IsInf(theta, 0) {
		return nil, fmt.Errorf("nn: rope: theta %g must be positive and finite", c.Theta)
	}
	f := make([]float64, dim/2)
	for i := range f {
		f[i] = math.Pow(theta, -float64(2*i)/float64(dim))
	}
	if c.Scaling == nil {
		return f, nil
	}
	return c.Scaling.apply(f)
}

func (s *RoPEScaling) apply(f []float64) ([]float64, error) {
	if !(s.Factor > 0) {
		return nil, fmt.Errorf("nn: rope: scaling factor %g must be positive", s.Factor)
	}
	switch s.Type {
	case "linear":
		for i := range f {
			f[i] /= s.Factor
		}
	case "llama3":
		lo, hi := s.LowFreqFactor, s.HighFreqFactor
		if !(lo > 0 && hi > lo) || s.OriginalContext <= 0 {
			return nil, fmt.Errorf("nn: rope: llama3 scaling needs 0 < low_freq_factor < high_freq_factor and a positive original context, got %g, %g, %d", lo, hi, s.OriginalContext)
		}
		ctx := float64(s.OriginalContext)
		// Wavelengths longer than ctx/lo rotate too slowly to be seen whole
		// in pretraining, so they are stretched; those shorter than ctx/hi
		// are kept; the band between blends linearly in ctx/wavelength.
		loWave, hiWave := ctx/lo, ctx/hi
		for i, inv := range f {
			wave := 2 * math.Pi / inv
			switch {
			case wave < hiWave:
			case wave > loWave:
				f[i] = inv / s.Factor
			default:
				smooth := (ctx/wave - lo) / (hi - lo)
				f[i] = (1-smooth)*inv/s.Factor + smooth*inv
			}
		}
	default:
		return nil, fmt.Errorf("nn: rope: unsupported scaling type %q (supported: linear, llama3)", s.Type)
	}
	return f, nil
}

// PositionCache keeps the default position tensors (offset, offset+1, ...
// in every row) that a forward pass builds, so a training step whose shapes
// repeat reuses one tensor instead of allocating a new one each step. The
// tensors are never released (a recorded graph may still read them); a
// full cache is simply dropped for the garbage collector. The zero value is
// ready to use; it is not safe for concurrent use.
type PositionCache struct {
	m map[posKey]*tensor.Tensor
}

type posKey struct {
	be          tensor.Backend
	b, t, start int
}

// maxCachedPositions bounds the cache; decoding adds one entry per token.
const maxCachedPositions = 256

// Get returns an i32 tensor [b, t] on be whose every row is start, start+1,
// ..., start+t-1. The caller must not modify or release it. It panics with
// *tensor.Error when b or t is negative.
func (c *PositionCache) Get(be tensor.Backend, b, t, start int) *tensor.Tensor {
	k := posKey{be, b, t, start}
	if p, ok := c.m[k]; ok {
		return p
	}
	if b < 0 || t < 0 {
		fail("nn.positions", "negative size [%d, %d]", b, t)
	}
	if c.m == nil || len(c.m) >= maxCachedPositions {
		c.m = map[posKey]*tensor.Tensor{}
	}
	v := make([]int32, b*t)
	for i := range v {
		v[i] = int32(start + i%max(t, 1))
	}
	p := tensor.From(be, tensor.Int32, v, b, t)
	c.m[k] = p
	return p
}

// DocumentMask returns what attention needs to train on rows that pack
// several documents each: an additive mask [B, T, T] of dtype dt that is 0
// where query and key lie in the same document and -Inf elsewhere, and
// positions [B, T] (i32) that restart at 0 with each document. docLens[b]
// lists the document lengths of row b in order; every row must add up to
// the same T. Use both with causal attention, which keeps each document
// from seeing its own future. It returns an error when there are no rows,
// rows differ in length, a length is not positive, be is nil or dt is not
// a floating-point type.
func DocumentMask(be tensor.Backend, dt tensor.DType, docLens [][]int) (mask, positions *tensor.Tensor, err error) {
	if be == nil {
		return nil, nil, fmt.Errorf("nn: document mask: %w", errNoBackend)
	}
	if err := checkDType("document mask", dt); err != nil {
		return nil, nil, err
	}
	if len(docLens) == 0 {
		return nil, nil, fmt.Errorf("nn: document mask: no rows")
	}
	T := -1
	for b, lens := range docLens {
		n := 0
		for _, l := range lens {
			if l <= 0 {
				return nil, nil, fmt.Errorf("nn: document mask: row %d has a document of length %d", b, l)
			}
			n += l
		}
		if T >= 0 && n != T {
			return nil, nil, fmt.Errorf("nn: document mask: row %d holds %d tokens, row 0 holds %d", b, n, T)
		}
		T = n
	}
	if T == 0 {
		return nil, nil, fmt.Errorf("nn: document mask: rows are empty")
	}
	B := len(docLens)
	m := make([]float64, 0, B*T*T)
	pos := make([]int32, 0, B*T)
	doc := make([]int, T)
	for _, lens := range docLens {
		at := 0
		for d, l := range lens {
			for i := range l {
				doc[at] = d
				pos = append(pos, int32(i))
				at++
			}
		}
		for i := range T {
			for j := range T {
				if doc[i] == doc[j] {
					m = append(m, 0)
				} else {
					m = append(m, math.Inf(-1))
				}
			}
		}
	}
	return tensor.From(be, dt, m, B, T, T), tensor.From(be, tensor.Int32, pos, B, T), nil
}
