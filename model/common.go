package model

import (
	"fmt"
	"maps"
	"slices"

	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
)

// base holds what every model keeps besides its parameters.
type base struct {
	cfg Config
	be  tensor.Backend
	dt  tensor.DType
	pos nn.PositionCache
}

// fail panics with *tensor.Error, as tensor ops do for invalid operands.
func fail(format string, args ...any) {
	panic(&tensor.Error{Op: "model.forward", Err: fmt.Errorf(format, args...)})
}

// config returns a copy of the config that the caller may modify.
func (b *base) config() Config {
	c := b.cfg
	c.Architectures = slices.Clone(c.Architectures)
	c.EOSTokenID = slices.Clone(c.EOSTokenID)
	c.Extra = maps.Clone(c.Extra)
	if c.BOSTokenID != nil {
		id := *c.BOSTokenID
		c.BOSTokenID = &id
	}
	if c.RopeScaling != nil {
		s := *c.RopeScaling
		c.RopeScaling = &s
	}
	return c
}

func (b *base) newCaches(batch, maxLen int) []*tensor.KVCache {
	cs := make([]*tensor.KVCache, b.cfg.NumHiddenLayers)
	for i := range cs {
		cs[i] = tensor.NewKVCache(b.be, b.dt, batch, maxLen, b.cfg.KVHeads(), b.cfg.HeadSize())
	}
	return cs
}

// inputs checks ids and the options and returns the positions [B, P+T],
// with P the prefix length (see ForwardOptions.Prefix): the given ones, or
// 0..P+T-1 per row offset by the cached tokens.
func (b *base) inputs(ids *tensor.Tensor, opt ForwardOptions) (pos *tensor.Tensor, prefix int) {
	if ids.Rank() != 2 || ids.DType() != tensor.Int32 {
		fail("ids must be an i32 tensor [B, T], got %s %v", ids.DType(), ids.Shape())
	}
	B, T := ids.Dim(0), ids.Dim(1)
	if p := opt.Prefix; p != nil {
		s := p.Shape()
		ok := (len(s) == 2 || len(s) == 3 && s[0] == B) && s[len(s)-1] == b.cfg.HiddenSize && p.DType() == b.dt
		if !ok {
			fail("prefix must be %s [P, %d] or [%d, P, %d], got %s %v", b.dt, b.cfg.HiddenSize, B, b.cfg.HiddenSize, p.DType(), s)
		}
		prefix = s[len(s)-2]
		T += prefix
	}
	if opt.Caches != nil && len(opt.Caches) != b.cfg.NumHiddenLayers {
		fail("%d KV caches for %d layers", len(opt.Caches), b.cfg.NumHiddenLayers)
	}
	pos = opt.Positions
	if pos == nil {
		start := 0
		if len(opt.Caches) > 0 {
			start = opt.Caches[0].Len()
		}
		return b.pos.Get(ids.Backend(), B, T, start), prefix
	}
	if pos.DType() != tensor.Int32 || pos.Len() != B*T {
		fail("positions must be i32 with %d elements for ids %v and a prefix of %d, got %s %v", B*T, ids.Shape(), prefix, pos.DType(), pos.Shape())
	}
	if pos.Rank() != 2 || pos.Dim(0) != B {
		pos = pos.Reshape(B, T)
	}
	return pos, prefix
}

// withPrefix returns the token embeddings x [B, T, C] with the prefix
// embeddings [P, C] or [B, P, C] before them, or x itself without a
// prefix.
func withPrefix(x, prefix *tensor.Tensor) *tensor.Tensor {
	if prefix == nil {
		return x
	}
	if prefix.Rank() == 3 {
		return tensor.Concat(1, prefix, x)
	}
	// One shared prefix: every row gets the same [1, P, C] view, and
	// Concat's backward sums the rows' gradients into it.
	row := prefix.Unsqueeze(0)
	parts := make([]*tensor.Tensor, 0, x.Dim(0)+1)
	for range x.Dim(0) {
		parts = append(parts, row)
	}
	return tensor.Concat(1, tensor.Concat(0, parts...), x)
}

// dropPrefix returns the hidden states of the token columns, leaving out
// the first p.
func dropPrefix(x *tensor.Tensor, p int) *tensor.Tensor {
	if p == 0 {
		return x
	}
	return x.Slice(1, p, x.Dim(1))
}

// cacheAt returns layer i's cache, or nil without caches.
func cacheAt(cs []*tensor.KVCache, i int) *tensor.KVCache {
	if cs == nil {
		return nil
	}
	return cs[i]
}

// lmHead projects the final hidden states to logits, through the output
// layer or, tied, the token embedding read as a transposed view.
func lmHead(x *tensor.Tensor, out *nn.Linear, embed *nn.Embedding) *tensor.Tensor {
	if out != nil {
		return out.Forward(x)
	}
	return x.MatMul(embed.Weight.Transpose(0, 1))
}

// meanLoss returns the mean cross-entropy of logits against targets.
func meanLoss(logits, targets *tensor.Tensor) *tensor.Tensor {
	_, mean := tensor.CrossEntropy(logits, targets)
	return mean
}
