package tensor

// copyInto copies (or with acc, adds) src into dst elementwise, both of
// the same shape, converting dtypes; it records nothing.
func copyInto(dst, src *Tensor, acc bool) {
	check("copy", dst.Backend().Copy(&CopyArgs{
		Shape: dst.Shape(), Dst: dst.ref(), Src: src.ref(),
		DstStrides: dst.Strides(), SrcStrides: src.Strides(), Accumulate: acc,
	}))
}

// Contiguous returns t when it is already dense row-major, else a dense
// copy. Shapes: [...] -> [...].
func (t *Tensor) Contiguous() *Tensor {
	if t.IsContiguous() {
		return t
	}
	out := alloc(t.Backend(), t.dtype, t.Shape())
	copyInto(out, t, false)
	if needGrad(t) {
		record(out, "contiguous", func(g *Tensor) { addGrad(t, g.share()) }, t)
	}
	return out
}

// Cast returns t converted to dtype dt (t itself when it already has it).
// Gradients flow back converted to t's dtype. Shapes: [...] -> [...].
func (t *Tensor) Cast(dt DType) *Tensor {
	if t.dtype == dt {
		return t
	}
	out := alloc(t.Backend(), dt, t.Shape())
	copyInto(out, t, false)
	if needGrad(t) {
		record(out, "cast", func(g *Tensor) {
			dx := alloc(t.Backend(), t.dtype, t.Shape())
			copyInto(dx, g, false)
			addGrad(t, dx)
		}, t)
	}
	return out
}

// To returns a copy of t on backend be (t itself when already there). It
// goes through host memory, so it is for setup and fallbacks, not per-step
// work; the copy takes no part in gradients.
func (t *Tensor) To(be Backend) *Tensor {
	if t.Backend() == be {
		return t
	}
	c := t.hostCopy(t.dtype)
	var host any
	switch t.dtype {
	case Float32:
		host = make([]float32, c.Len())
	case Float64:
		host = make([]float64, c.Len())
	case Int32:
		host = make([]int32, c.Len())
	default:
		host = make([]uint16, c.Len())
	}
	check("to", c.Backend().Read(host, c.ref()))
	if c != t {
		c.Release()
	}
	return From(be, t.dtype, host, t.Shape()...)
}

// viewOf returns a view of t with new dims, strides and offset, recording a
// backward that maps the gradient through back.
func (t *Tensor) viewOf(op string, shape, strides []int, off int, back func(g *Tensor) *Tensor) *Tensor {
	v := t.view()
	v.rank = len(shape)
	copy(v.dims[:], shape)
	copy(v.strides[:], strides)
	v.off = off
	if needGrad(t) {
		record(v, op, func(g *Tensor) { addGrad(t, back(g)) }, t)
		v.node.strided = op == "permute"
	}
	return v
}

// Reshape returns t with a new shape of the same length; one dimension may
// be -1 and is inferred. It is a view when t is contiguous, else a copy.
// Shapes: [...] -> shape.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	var dims [MaxRank]int
	if len(shape) > MaxRank {
		fail("reshape", "rank %d exceeds %d", len(shape), MaxRank)
	}
	infer, n := -1, 1
	for i, d := range shape {
		if d == -1 {
			if infer >= 0 {
				fail("reshape", "more than one -1 in %v", shape)
			}
			infer = i
			continue
		}
		dims[i] = d
		n *= d
	}
	if infer >= 0 {
		if n == 0 || t.Len()%n != 0 {
			fail("reshape", "cannot infer -1 in %v from %d elements", shape, t.Len())
		}
		dims[infer] = t.Len() / n
		n *= dims[infer]
	}
	if n != t.Len() {
		fail("reshape", "shape %v has %d elements, tensor %v has %d", shape, n, t.Shape(), t.Len())
	}
	src := t.Contiguous()
	var strides [MaxRank]int
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= dims[i]
	}
	orig := append([]int(nil), src.Shape()...)
	v := src.viewOf("reshape", dims[:len(shape)], strides[:len(shape)], src.off, func(g *Tensor) *Tensor {
		return g.share().reshapeGrad(orig)
	})
	releaseCopy(src, t)
	return v
}

// releaseCopy drops an op's hold on the contiguous copy c it made of t, once
// nothing but the op's result needs it: the result (a view) keeps its own
// reference, and a recorded graph keeps the copy's node, whose storage
// Backward frees. It lets the pool reclaim such copies under NoGrad too.
func releaseCopy(c, t *Tensor) {
	if c != t && c.node == nil {
		c.Release()
	}
}

// reshapeGrad relabels a contiguous gradient with a new shape in place.
func (g *Tensor) reshapeGrad(shape []int) *Tensor {
	g.setShape(shape)
	return g
}

// Transpose swaps axes a and b (negative counts from the end) as a view.
// Shapes: [..., a, ..., b, ...] -> [..., b, ..., a, ...].
func (t *Tensor) Transpose(a, b int) *Tensor {
	perm := make([]int, t.rank)
	for i := range perm {
		perm[i] = i
	}
	a, b = t.axis(a), t.axis(b)
	perm[a], perm[b] = perm[b], perm[a]
	return t.Permute(perm...)
}

// Permute reorders the axes as a view: axis i of the result is axis perm[i]
// of t. Shapes: [d0, d1, ...] -> [d[perm[0]], d[perm[1]], ...].
func (t *Tensor) Permute(perm ...int) *Tensor {
	if len(perm) != t.rank {
		fail("permute", "permutation %v for rank %d", perm, t.rank)
	}
	var seen [MaxRank]bool
	var dims, strides [MaxRank]int
	inv := make([]int, t.rank)
	for i, p := range perm {
		if p < 0 || p >= t.rank || seen[p] {
			fail("permute", "invalid permutation %v", perm)
		}
		seen[p] = true
		dims[i], strides[i] = t.dims[p], t.strides[p]
		inv[p] = i
	}
	return t.viewOf("permute", dims[:t.rank], strides[:t.rank], t.off, func(g *Tensor) *Tensor {
		p := g.Permute(inv...)
		c := p.Contiguous()
		if c != p {
			p.Release()
		}
		return c
	})
}

// Slice returns elements [start, end) of axis as a view. Shapes:
// [..., n, ...] -> [..., end-start, ...].
func (t *Tensor) Slice(axis, start, end int) *Tensor {
	ax := t.axis(axis)
	if start < 0 || end > t.dims[ax] || start > end {
		fail("slice", "range [%d, %d) out of axis %d of size %d", start, end, ax, t.dims[ax])
	}
	dims := t.dims
	dims[ax] = end - start
	off := t.off + start*t.strides[ax]
	shape := append([]int(nil), t.Shape()...)
	return t.viewOf("slice", dims[:t.rank], t.strides[:t.rank], off, func(g *Tensor) *Tensor {
		dx := Full(g.Backend(), g.dtype, 0, shape...)
		v := dx.Slice(ax, start, end)
		copyInto(v, g, false)
		v.Release()
		return dx
	})
}

// Concat joins tensors of equal shape but along axis, in order. Shapes:
// [..., n_i, ...] -> [..., sum n_i, ...].
func Concat(axis int, ts ...*Tensor) *Tensor {
	if len(ts) == 0 {
		fail("concat", "no tensors")
	}
	ax := ts[0].axis(axis)
	shape := append([]int(nil), ts[0].Shape()...)
	total := 0
	for _, t := range ts {
		if t.rank != ts[0].rank || t.dtype != ts[0].dtype {
			fail("concat", "mixed ranks or dtypes: %v %s and %v %s", ts[0].Shape(), ts[0].dtype, t.Shape(), t.dtype)
		}
		for i := 0; i < t.rank; i++ {
			if i != ax && t.dims[i] != shape[i] {
				fail("concat", "shapes %v and %v differ off axis %d", ts[0].Shape(), t.Shape(), ax)
			}
		}
		total += t.dims[ax]
	}
	shape[ax] = total
	out := alloc(ts[0].Backend(), ts[0].dtype, shape)
	at := 0
	for _, t := range ts {
		dst := out.Slice(ax, at, at+t.dims[ax])
		copyInto(dst, t, false)
		dst.Release()
		at += t.dims[ax]
	}
	if needGrad(ts...) {
		parts := append([]*Tensor(nil), ts...)
		record(out, "concat", func(g *Tensor) {
			at := 0
			for _, t := range parts {
				if t.requiresGrad {
					s := g.Slice(ax, at, at+t.dims[ax])
					dx := alloc(g.Backend(), g.dtype, t.Shape())
					copyInto(dx, s, false)
					s.Release()
					addGrad(t, dx)
				}
				at += t.dims[ax]
			}
		}, parts...)
	}
	return out
}

// CopyFrom overwrites t's elements with src's (same shape; dtypes may
// differ and are converted), in place and outside the graph: it is for
// loading weights into existing parameters, not for computing. It panics
// with *Error when the shapes differ or the tensors are on different
// backends.
func (t *Tensor) CopyFrom(src *Tensor) {
	if !equalShape(t.Shape(), src.Shape()) {
		fail("copy-from", "source %v for destination %v", src.Shape(), t.Shape())
	}
	if t.Backend() != src.Backend() {
		fail("copy-from", "source on %s, destination on %s; move it with To", src.Backend().Name(), t.Backend().Name())
	}
	copyInto(t, src, false)
}
