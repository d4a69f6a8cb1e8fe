package tensor

import "math"

// AttentionOptions configures Attention.
type AttentionOptions struct {
	// Causal lets query row i see only the keys at or before its absolute
	// position Tk-Tq+i.
	Causal bool
	// Scale multiplies the scores q·k; 0 means 1/sqrt(D).
	Scale float64
	// Mask, when set, is added to the scaled scores before the softmax:
	// [B, Tq, Tk], or [Tq, Tk] (or [1, Tq, Tk]) shared by every batch item.
	// Use 0 where a query may attend and -Inf (or a large negative number
	// such as -1e9) where it may not; a block-diagonal mask keeps packed
	// documents apart. It may have another dtype than q (it is converted) and
	// receives no gradient.
	Mask *Tensor
}

// Attention returns fused scaled-dot-product attention,
// softmax(Scale·q·kᵀ + Mask)·v per query head, with grouped key/value heads:
// query head h reads key/value head h/(Hq/Hkv), so Hkv = Hq is multi-head,
// Hkv = 1 multi-query attention. The query offset is Tk-Tq: 0 in training,
// the number of cached tokens before q when decoding from a KVCache, where
// with Causal query row i sees keys j <= Tk-Tq+i. A query row that sees no
// key (its mask row all -Inf) gives zeros. The T×T probabilities are not
// kept for the gradient; only a log-sum-exp per row is saved, and only when
// a gradient is needed. Gradients flow to q, k and v.
//
// Shapes: q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D] -> [B, Tq, Hq, D], with
// Tk >= Tq and Hq a multiple of Hkv. k and v are read in place when their
// last three axes are dense rows (a view of a KVCache, whose batch items are
// further apart, qualifies); otherwise they are copied.
//
// It panics with *Error when the ranks or shapes disagree, Hq is not a
// multiple of Hkv, Tk < Tq, the operands differ in dtype or backend, or the
// backend cannot run the kernel (ErrUnsupported, for instance for bf16 on
// the CPU).
func Attention(q, k, v *Tensor, opt AttentionOptions) *Tensor {
	const op = "attention"
	sameOperands(op, q, k, v)
	if q.rank != 4 || k.rank != 4 || v.rank != 4 {
		fail(op, "q, k, v need rank 4 ([B, T, H, D]), got %v, %v, %v", q.Shape(), k.Shape(), v.Shape())
	}
	B, Tq, Hq, D := q.dims[0], q.dims[1], q.dims[2], q.dims[3]
	Tk, Hkv := k.dims[1], k.dims[2]
	if k.dims[0] != B || k.dims[3] != D || !equalShape(k.Shape(), v.Shape()) {
		fail(op, "q %v, k %v and v %v do not match: k and v need [B, Tk, Hkv, D] with q's B and D", q.Shape(), k.Shape(), v.Shape())
	}
	if Hkv == 0 || Hq%Hkv != 0 {
		fail(op, "%d query heads are not a multiple of %d key/value heads", Hq, Hkv)
	}
	if Tk < Tq {
		fail(op, "%d keys for %d queries: Tk must be at least Tq", Tk, Tq)
	}
	be, dt := q.Backend(), q.dtype
	scale := opt.Scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(max(D, 1)))
	}

	var mask *Tensor
	ownMask, maskStride := false, 0
	if m := opt.Mask; m != nil {
		if m.Backend() != be {
			fail(op, "mask on backend %s, q on %s", m.Backend().Name(), be.Name())
		}
		switch {
		case m.rank == 2 && m.dims[0] == Tq && m.dims[1] == Tk:
		case m.rank == 3 && (m.dims[0] == B || m.dims[0] == 1) && m.dims[1] == Tq && m.dims[2] == Tk:
		default:
			fail(op, "mask %v for q %v and k %v: want [B, Tq, Tk] = [%d, %d, %d] or [Tq, Tk]", m.Shape(), q.Shape(), k.Shape(), B, Tq, Tk)
		}
		mask = m
		if m.dtype != dt || !denseRows(m, m.rank-2) {
			mask = alloc(be, dt, m.Shape())
			copyInto(mask, m, false)
			ownMask = true
		}
		if mask.rank == 3 && mask.dims[0] > 1 {
			maskStride = mask.strides[0]
		}
	}

	qc := q.Contiguous()
	kc, vc, kvStride := kvOperands(k, v)
	grad := needGrad(q, k, v)
	out := alloc(be, dt, q.Shape())
	var lse *Tensor
	if grad {
		lse = alloc(be, dt, []int{B, Hq, Tq})
	}
	args := func() AttentionArgs {
		a := AttentionArgs{B: B, Tq: Tq, Tk: Tk, Hq: Hq, Hkv: Hkv, D: D,
			KVBatchStride: kvStride, QOffset: Tk - Tq, Causal: opt.Causal, Scale: scale,
			MaskBatchStride: maskStride, Q: qc.ref(), K: kc.ref(), V: vc.ref(), O: out.ref()}
		if mask != nil {
			a.Mask = mask.ref()
		}
		if lse != nil {
			a.LSE = lse.ref()
		}
		return a
	}
	fwd := args()
	check(op, be.Attention(&fwd))

	// Copies made here that are not graph nodes are released by this op.
	tidy := func() {
		for _, c := range [...]struct{ copy, orig *Tensor }{{qc, q}, {kc, k}, {vc, v}} {
			if c.copy != c.orig && !c.copy.requiresGrad {
				c.copy.Release()
			}
		}
		if ownMask {
			mask.Release()
		}
	}
	if !grad {
		tidy()
		return out
	}
	record(out, op, func(g *Tensor) {
		dq := alloc(be, dt, qc.Shape())
		dk := alloc(be, dt, []int{B, Tk, Hkv, D})
		dv := alloc(be, dt, []int{B, Tk, Hkv, D})
		a := args()
		a.DO, a.DQ, a.DK, a.DV = g.ref(), dq.ref(), dk.ref(), dv.ref()
		check(op, be.AttentionGrad(&a))
		lse.Release()
		addGrad(qc, dq)
		addGrad(kc, dk)
		addGrad(vc, dv)
		tidy()
	}, qc, kc, vc, mask) // the mask only for ordering: Backward must not free it before this runs
	return out
}

// denseRows reports whether the axes from ax on are dense row-major, so that
// only the axes before ax may have other strides.
func denseRows(t *Tensor, ax int) bool {
	stride := 1
	for i := t.rank - 1; i >= ax; i-- {
		if t.dims[i] != 1 && t.strides[i] != stride {
			return false
		}
		stride *= t.dims[i]
	}
	return true
}

// kvOperands returns k and v in a form the kernel reads, [B, Tk, Hkv, D]
// with dense rows of Hkv*D and one batch stride shared by both, together
// with that stride: the tensors themselves when they allow it (a KVCache
// view does), else contiguous copies.
func kvOperands(k, v *Tensor) (kc, vc *Tensor, stride int) {
	batchStride := func(t *Tensor) (int, bool) {
		if !denseRows(t, 1) {
			return 0, false
		}
		if t.dims[0] == 1 {
			return 0, true
		}
		return t.strides[0], t.strides[0] >= 0
	}
	dense := 0
	if k.dims[0] > 1 {
		dense = k.dims[1] * k.dims[2] * k.dims[3]
	}
	kc, vc = k, v
	ks, okK := batchStride(k)
	vs, okV := batchStride(v)
	if !okK {
		kc, ks = k.Contiguous(), dense
	}
	if !okV {
		vc, vs = v.Contiguous(), dense
	}
	if ks != vs {
		if ks != dense {
			kc, ks = kc.Contiguous(), dense
		}
		if vs != dense {
			vc = vc.Contiguous()
		}
	}
	return kc, vc, ks
}

// KVCache holds the keys and values of the tokens decoded so far, for one
// attention layer, in preallocated memory of [batch, maxLen, kvHeads,
// headDim] per side. Append adds the newest tokens and returns views of all
// cached tokens that Attention reads in place, without copies:
//
//	keys, values := cache.Append(k, v) // k, v [B, T, Hkv, D] of the new tokens
//	out := tensor.Attention(q, keys, values, tensor.AttentionOptions{Causal: true})
//
// The cache is for decoding without gradients (run it under NoGrad): Append
// records nothing, and a gradient computed later would read whatever the
// cache then holds. It is not safe for concurrent use.
type KVCache struct {
	k, v *Tensor
	n    int
}

// NewKVCache returns an empty cache on be with room for maxLen tokens of
// batch sequences, with kvHeads heads of headDim features stored as dt. It
// panics with *Error when a size is not positive or memory is exhausted.
func NewKVCache(be Backend, dt DType, batch, maxLen, kvHeads, headDim int) *KVCache {
	if batch <= 0 || maxLen <= 0 || kvHeads <= 0 || headDim <= 0 {
		fail("kv-cache", "sizes must be positive: batch %d, maxLen %d, kvHeads %d, headDim %d", batch, maxLen, kvHeads, headDim)
	}
	shape := []int{batch, maxLen, kvHeads, headDim}
	return &KVCache{k: alloc(be, dt, shape), v: alloc(be, dt, shape)}
}

// Append copies k and v, the keys and values of T new tokens, into the
// cache after the tokens already there, converting their dtype if it
// differs, and returns views of every cached token: keys and values
// [B, Len(), Hkv, D]. The views share the cache's memory; they stay valid
// after later Appends, but Reset or Truncate followed by Append overwrites
// the rows they show. Shapes: k, v [B, T, Hkv, D] -> [B, Len(), Hkv, D]
// twice. It panics with *Error when the shapes do not match the cache, the
// tokens would overflow its capacity, k and v live on another backend, or
// the cache was released.
func (c *KVCache) Append(k, v *Tensor) (keys, values *Tensor) {
	const op = "kv-cache"
	c.live(op)
	want := c.k.Shape()
	if k.rank != 4 || !equalShape(k.Shape(), v.Shape()) || k.dims[0] != want[0] || k.dims[2] != want[2] || k.dims[3] != want[3] {
		fail(op, "append k %v and v %v to a cache of [%d, T, %d, %d]", k.Shape(), v.Shape(), want[0], want[2], want[3])
	}
	t := k.dims[1]
	if c.n+t > want[1] {
		fail(op, "appending %d tokens to %d overflows the capacity of %d", t, c.n, want[1])
	}
	be := c.k.Backend()
	if k.Backend() != be || v.Backend() != be {
		fail(op, "k and v on backends %s and %s, cache on %s", k.Backend().Name(), v.Backend().Name(), be.Name())
	}
	for _, p := range [...]struct{ dst, src *Tensor }{{c.k, k}, {c.v, v}} {
		d := p.dst.Slice(1, c.n, c.n+t)
		copyInto(d, p.src, false)
		d.Release()
	}
	c.n += t
	return c.k.Slice(1, 0, c.n), c.v.Slice(1, 0, c.n)
}

// Len returns the number of cached tokens.
func (c *KVCache) Len() int { return c.n }

// Reset empties the cache, keeping its memory for the next sequence.
func (c *KVCache) Reset() { c.n = 0 }

// Truncate rolls the cache back to its first n tokens, dropping the rest
// (a rejected speculative draft, a beam that lost). It panics with *Error
// when n is negative or above Len.
func (c *KVCache) Truncate(n int) {
	if n < 0 || n > c.n {
		fail("kv-cache", "truncate to %d tokens, cache holds %d", n, c.n)
	}
	c.n = n
}

// Release returns the cache's memory to its backend once no view returned
// by Append holds it; using the cache afterwards panics with *Error.
// Releasing twice is harmless.
func (c *KVCache) Release() {
	c.k.Release()
	c.v.Release()
	c.n = 0
}

func (c *KVCache) live(op string) {
	if c.k.buf == nil || c.v.buf == nil {
		fail(op, "the cache was released")
	}
}
