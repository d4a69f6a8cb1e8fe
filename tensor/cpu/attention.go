package cpu

import (
	"fmt"
	"math"
	"sync"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu/internal/vec"
)

// Fused scaled-dot-product attention.
//
// The work is cut into tiles: a tile is a set of query rows that read the
// same key/value head and go through BLAS together. Normally a tile is up to
// attnRows consecutive positions of one query head, and with Causal it only
// multiplies against the keys up to its last row's diagonal, which skips
// most of the masked upper triangle. When a group has more query heads than
// there are query rows (decoding one token with grouped heads), a tile is
// instead all the heads of one group at one position, so K and V are read
// once per group rather than once per head.
//
// The forward pass runs tiles in parallel; the backward pass runs one
// (batch, key/value head) pair per task, so each task owns its slices of DK
// and DV and sums the query heads of its group in a fixed order: the result
// does not depend on the thread count. Scores are never kept between the
// passes: the backward pass recomputes them and rebuilds the probabilities
// from the saved log-sum-exp.

// attnRows is the number of query positions in a tile along one head.
const attnRows = 64

// attnPlan holds the dimensions of one call and how it is tiled.
type attnPlan struct {
	b, tq, tk, hq, hkv, d, rep int
	qs, kvs                    int // row strides of Q (O, DQ, DO) and of K, V (DK, DV)
	kvBatch, maskBatch         int
	off                        int
	causal                     bool
	scale                      float64
	byHead                     bool // tiles run along the positions of one head
	nblk                       int  // tiles per head when byHead
	tiles                      int  // tiles per (batch, key/value head)
	maxRows                    int
}

// attnTile is a set of m query rows: row r sits at position i0+r*di in head
// h0+r*dh, and its elements start at q+r*ld in Q, O, DQ and DO.
type attnTile struct {
	m, q, ld int
	i0, di   int
	h0, dh   int
	kEnd     int // keys seen by the tile's last row; later keys are skipped
}

func newAttnPlan(a *tensor.AttentionArgs) *attnPlan {
	p := &attnPlan{
		b: a.B, tq: a.Tq, tk: a.Tk, hq: a.Hq, hkv: a.Hkv, d: a.D, rep: a.Hq / a.Hkv,
		qs: a.Hq * a.D, kvs: a.Hkv * a.D, kvBatch: a.KVBatchStride, maskBatch: a.MaskBatchStride,
		off: a.QOffset, causal: a.Causal, scale: a.Scale,
	}
	p.byHead = p.rep <= p.tq
	if p.byHead {
		p.nblk = (p.tq + attnRows - 1) / attnRows
		p.tiles = p.rep * p.nblk
		p.maxRows = min(attnRows, p.tq)
	} else {
		p.tiles = p.tq
		p.maxRows = p.rep
	}
	return p
}

// limit returns how many keys query position i sees.
func (p *attnPlan) limit(i int) int {
	if !p.causal {
		return p.tk
	}
	return min(p.tk, max(0, p.off+i+1))
}

// tile returns tile t of key/value head g in batch item bi.
func (p *attnPlan) tile(bi, g, t int) attnTile {
	if p.byHead {
		h := g*p.rep + t/p.nblk
		i0 := (t % p.nblk) * attnRows
		m := min(attnRows, p.tq-i0)
		return attnTile{m: m, q: (bi*p.tq+i0)*p.qs + h*p.d, ld: p.qs, i0: i0, di: 1, h0: h, kEnd: p.limit(i0 + m - 1)}
	}
	h0 := g * p.rep
	return attnTile{m: p.rep, q: (bi*p.tq+t)*p.qs + h0*p.d, ld: p.d, i0: t, h0: h0, dh: 1, kEnd: p.limit(t)}
}

// maskRow returns the mask row of position i in batch item bi, or nil.
func maskRow[T float](p *attnPlan, mask []T, bi, i int) []T {
	if mask == nil {
		return nil
	}
	o := bi*p.maskBatch + i*p.tk
	return mask[o : o+p.tk]
}

// Attention computes O = softmax(Scale*Q·Kᵀ + Mask)·V per query head, with
// the causal limit and grouped key/value heads of tensor.AttentionArgs, and
// saves the log-sum-exp of each row in LSE when present. A row that sees no
// key (all masked with -Inf) gives zeros and an LSE of -Inf.
func (b *Backend) Attention(a *tensor.AttentionArgs) error {
	dt, err := attnValidate(a, false)
	if err != nil {
		return err
	}
	p := newAttnPlan(a)
	switch dt {
	case tensor.Float32:
		attnForward(b, p, sliceOf[float32](a.Q), sliceOf[float32](a.K), sliceOf[float32](a.V),
			sliceOf[float32](a.Mask), sliceOf[float32](a.O), sliceOf[float32](a.LSE))
	case tensor.Float64:
		attnForward(b, p, sliceOf[float64](a.Q), sliceOf[float64](a.K), sliceOf[float64](a.V),
			sliceOf[float64](a.Mask), sliceOf[float64](a.O), sliceOf[float64](a.LSE))
	}
	return nil
}

// AttentionGrad sets DQ, DK and DV from DO, recomputing the scores and
// rebuilding the probabilities from LSE (or, when LSE is absent, from the
// scores alone). It uses O for the row terms rowsum(DO∘O) when present and
// derives them from the probabilities otherwise. DK and DV are written in
// full, zeros included.
func (b *Backend) AttentionGrad(a *tensor.AttentionArgs) error {
	dt, err := attnValidate(a, true)
	if err != nil {
		return err
	}
	p := newAttnPlan(a)
	switch dt {
	case tensor.Float32:
		attnBackward(b, p, sliceOf[float32](a.Q), sliceOf[float32](a.K), sliceOf[float32](a.V),
			sliceOf[float32](a.Mask), sliceOf[float32](a.O), sliceOf[float32](a.LSE),
			sliceOf[float32](a.DQ), sliceOf[float32](a.DK), sliceOf[float32](a.DV), sliceOf[float32](a.DO))
	case tensor.Float64:
		attnBackward(b, p, sliceOf[float64](a.Q), sliceOf[float64](a.K), sliceOf[float64](a.V),
			sliceOf[float64](a.Mask), sliceOf[float64](a.O), sliceOf[float64](a.LSE),
			sliceOf[float64](a.DQ), sliceOf[float64](a.DK), sliceOf[float64](a.DV), sliceOf[float64](a.DO))
	}
	return nil
}

// attnValidate checks the dimensions, dtypes and operand lengths, so that a
// bad call returns an error instead of reading outside its storage (BLAS
// does not check bounds).
func attnValidate(a *tensor.AttentionArgs, grad bool) (tensor.DType, error) {
	if a.B < 0 || a.Tq < 0 || a.Tk < 0 || a.Hq < 0 || a.D < 0 || a.Hkv <= 0 {
		return 0, fmt.Errorf("cpu: attention: invalid dimensions B=%d Tq=%d Tk=%d Hq=%d Hkv=%d D=%d", a.B, a.Tq, a.Tk, a.Hq, a.Hkv, a.D)
	}
	if a.Hq%a.Hkv != 0 {
		return 0, fmt.Errorf("cpu: attention: %d query heads are not a multiple of %d key/value heads", a.Hq, a.Hkv)
	}
	if a.KVBatchStride < 0 || a.MaskBatchStride < 0 {
		return 0, fmt.Errorf("cpu: attention: negative batch stride")
	}
	if !present(a.Q) {
		return 0, fmt.Errorf("cpu: attention: Q is absent")
	}
	dt := st(a.Q).dt
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return 0, unsupported("attention", dt)
	}
	qLen := a.B * a.Tq * a.Hq * a.D
	kvLen := 0
	if a.B > 0 && a.Tk > 0 {
		kvLen = (a.B-1)*a.KVBatchStride + a.Tk*a.Hkv*a.D
	}
	maskLen := 0
	if a.B > 0 && a.Tq > 0 {
		maskLen = (a.B-1)*a.MaskBatchStride + a.Tq*a.Tk
	}
	type operand struct {
		name     string
		r        tensor.Ref
		n        int
		optional bool
	}
	ops := []operand{
		{"Q", a.Q, qLen, false}, {"K", a.K, kvLen, false}, {"V", a.V, kvLen, false},
		{"Mask", a.Mask, maskLen, true}, {"LSE", a.LSE, a.B * a.Hq * a.Tq, true},
	}
	if grad {
		dense := a.B * a.Tk * a.Hkv * a.D
		ops = append(ops, operand{"O", a.O, qLen, true}, operand{"DO", a.DO, qLen, false},
			operand{"DQ", a.DQ, qLen, false}, operand{"DK", a.DK, dense, false}, operand{"DV", a.DV, dense, false})
	} else {
		ops = append(ops, operand{"O", a.O, qLen, false})
	}
	for _, o := range ops {
		if !present(o.r) {
			if o.optional {
				continue
			}
			return 0, fmt.Errorf("cpu: attention: %s is absent", o.name)
		}
		s, ok := o.r.S.(*Storage)
		if !ok {
			return 0, fmt.Errorf("cpu: attention: %s is not CPU storage", o.name)
		}
		if s.dt != dt {
			return 0, fmt.Errorf("cpu: attention: %s is %s, Q is %s", o.name, s.dt, dt)
		}
		if o.r.Off < 0 || s.Len()-o.r.Off < o.n {
			return 0, fmt.Errorf("cpu: attention: %s needs %d elements from offset %d, storage has %d", o.name, o.n, o.r.Off, s.Len())
		}
	}
	return dt, nil
}

// sliceOf returns the elements from the ref's offset on, or nil when the ref
// is absent.
func sliceOf[T float](r tensor.Ref) []T {
	if !present(r) {
		return nil
	}
	var z T
	if _, ok := any(z).(float32); ok {
		return any(f32(r)).([]T)
	}
	return any(f64(r)).([]T)
}

var attnPool32, attnPool64 sync.Pool

// getBuf returns a scratch slice of n elements from a package-level pool,
// which keeps decoding (many small calls) free of allocations.
func getBuf[T float](n int) *[]T {
	var z T
	pool := &attnPool64
	if _, ok := any(z).(float32); ok {
		pool = &attnPool32
	}
	if v, ok := pool.Get().(*[]T); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	s := make([]T, n)
	return &s
}

func putBuf[T float](b *[]T) {
	var z T
	if _, ok := any(z).(float32); ok {
		attnPool32.Put(b)
		return
	}
	attnPool64.Put(b)
}

// gemmT computes C = alpha*op(A)*op(B) + beta*C through the single-threaded
// sgemm or dgemm; beta is 0 or 1. Empty products are handled here, since
// BLAS needs a first element to point at.
func gemmT[T float](tA, tB bool, m, n, k int, alpha float64, a []T, lda int, b []T, ldb int, beta float64, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if beta == 0 {
			for r := 0; r < m; r++ {
				clear(c[r*ldc : r*ldc+n])
			}
		}
		return
	}
	if cf, ok := asF32(c); ok {
		af, _ := asF32(a)
		bf, _ := asF32(b)
		sgemm(tA, tB, m, n, k, float32(alpha), af, lda, bf, ldb, float32(beta), cf, ldc)
		return
	}
	dgemm(tA, tB, m, n, k, alpha, asF64(a), lda, asF64(b), ldb, beta, asF64(c), ldc)
}

// exactExp reports whether T's rows use math.Exp: float64 serves gradient
// checks and references, where a fast exp's error would show; float32 rows
// take the SIMD kernels.
func exactExp[T float]() bool {
	var z T
	_, ok := any(z).(float64)
	return ok
}

// expRow adds the mask to the first lim scores of row, replaces each by
// e^(x-max), and zeroes the rest of the row. It returns the max and the sum
// of the exponentials, accumulated in float64; a row with no finite score
// becomes zeros with max -Inf and sum 0.
func expRow[T float](row []T, lim int, mask []T) (mx, sum float64) {
	live := row[:lim]
	clear(row[lim:])
	if mask != nil {
		for j, m := range mask[:lim] {
			live[j] += m
		}
	}
	top := T(math.Inf(-1))
	for _, x := range live {
		if x > top {
			top = x
		}
	}
	if math.IsInf(float64(top), -1) {
		clear(live)
		return math.Inf(-1), 0
	}
	mx = float64(top)
	if exactExp[T]() {
		for j, x := range live {
			e := math.Exp(float64(x) - mx)
			live[j] = T(e)
			sum += e
		}
		return mx, sum
	}
	f, _ := asF32(live)
	return mx, vec.ExpScale(f, f, float32(mx), 1)
}

// probRow turns the first lim scores of row into probabilities
// e^(x+mask-lse) and zeroes the rest; an LSE of -Inf (a row that saw no
// key) gives zeros.
func probRow[T float](row []T, lim int, mask []T, lse float64) {
	live := row[:lim]
	clear(row[lim:])
	if math.IsInf(lse, -1) {
		clear(live)
		return
	}
	if mask != nil {
		for j, m := range mask[:lim] {
			live[j] += m
		}
	}
	if exactExp[T]() {
		for j, x := range live {
			live[j] = T(math.Exp(float64(x) - lse))
		}
		return
	}
	f, _ := asF32(live)
	vec.ExpScale(f, f, float32(lse), 1)
}

func attnForward[T float](be *Backend, p *attnPlan, q, k, v, mask, o, lse []T) {
	units := p.b * p.hkv * p.tiles
	if units == 0 {
		return
	}
	cost := p.maxRows * max(p.tk, 1) * (4*p.d + 24)
	be.parallel(units, cost, func(lo, hi int) {
		sb := getBuf[T](p.maxRows * p.tk)
		defer putBuf(sb)
		inv := make([]float64, p.maxRows)
		for u := lo; u < hi; u++ {
			bi, g, t := u/(p.hkv*p.tiles), (u/p.tiles)%p.hkv, u%p.tiles
			tl := p.tile(bi, g, t)
			kv := bi*p.kvBatch + g*p.d
			n := tl.kEnd
			s := (*sb)[:tl.m*n]
			gemmT(false, true, tl.m, n, p.d, p.scale, q[tl.q:], tl.ld, k[kv:], p.kvs, 0, s, n)
			for r := 0; r < tl.m; r++ {
				i, h := tl.i0+r*tl.di, tl.h0+r*tl.dh
				mx, sum := expRow(s[r*n:(r+1)*n], min(n, p.limit(i)), maskRow(p, mask, bi, i))
				inv[r] = 0
				if sum != 0 { // NaN scores stay NaN
					inv[r] = 1 / sum
				}
				if lse != nil {
					lse[(bi*p.hq+h)*p.tq+i] = T(mx + math.Log(sum))
				}
			}
			gemmT(false, false, tl.m, p.d, n, 1, s, n, v[kv:], p.kvs, 0, o[tl.q:], tl.ld)
			for r := 0; r < tl.m; r++ {
				row := o[tl.q+r*tl.ld : tl.q+r*tl.ld+p.d]
				if inv[r] == 0 || n == 0 {
					clear(row)
					continue
				}
				for j, x := range row {
					row[j] = T(float64(x) * inv[r])
				}
			}
		}
	})
}

func attnBackward[T float](be *Backend, p *attnPlan, q, k, v, mask, o, lse, dq, dk, dv, do []T) {
	units := p.b * p.hkv
	if units == 0 {
		return
	}
	cost := max(p.tiles, 1) * p.maxRows * max(p.tk, 1) * (8*p.d + 32)
	be.parallel(units, cost, func(lo, hi int) {
		sb := getBuf[T](p.maxRows * p.tk)
		defer putBuf(sb)
		db := getBuf[T](p.maxRows * p.tk)
		defer putBuf(db)
		rowDot := make([]float64, p.maxRows)
		for u := lo; u < hi; u++ {
			bi, g := u/p.hkv, u%p.hkv
			kv := bi*p.kvBatch + g*p.d
			dkv := bi*p.tk*p.kvs + g*p.d
			for j := 0; j < p.tk; j++ {
				clear(dk[dkv+j*p.kvs : dkv+j*p.kvs+p.d])
				clear(dv[dkv+j*p.kvs : dkv+j*p.kvs+p.d])
			}
			for t := 0; t < p.tiles; t++ {
				tl := p.tile(bi, g, t)
				n := tl.kEnd
				if n == 0 {
					for r := 0; r < tl.m; r++ {
						clear(dq[tl.q+r*tl.ld : tl.q+r*tl.ld+p.d])
					}
					continue
				}
				// P, rebuilt from the scores.
				s := (*sb)[:tl.m*n]
				gemmT(false, true, tl.m, n, p.d, p.scale, q[tl.q:], tl.ld, k[kv:], p.kvs, 0, s, n)
				for r := 0; r < tl.m; r++ {
					i, h := tl.i0+r*tl.di, tl.h0+r*tl.dh
					row, lim, mrow := s[r*n:(r+1)*n], min(n, p.limit(i)), maskRow(p, mask, bi, i)
					if lse != nil {
						probRow(row, lim, mrow, float64(lse[(bi*p.hq+h)*p.tq+i]))
					} else if _, sum := expRow(row, lim, mrow); sum != 0 {
						for j, x := range row[:lim] {
							row[j] = T(float64(x) / sum)
						}
					}
					if o != nil {
						var acc float64
						od, gd := o[tl.q+r*tl.ld:tl.q+r*tl.ld+p.d], do[tl.q+r*tl.ld:tl.q+r*tl.ld+p.d]
						for j, x := range od {
							acc += float64(x) * float64(gd[j])
						}
						rowDot[r] = acc
					}
				}
				// dV += Pᵀ·dO
				gemmT(true, false, n, p.d, tl.m, 1, s, n, do[tl.q:], tl.ld, 1, dv[dkv:], p.kvs)
				// dP = dO·Vᵀ, then dS = P∘(dP - rowsum(dO∘O)) in its place.
				ds := (*db)[:tl.m*n]
				gemmT(false, true, tl.m, n, p.d, 1, do[tl.q:], tl.ld, v[kv:], p.kvs, 0, ds, n)
				for r := 0; r < tl.m; r++ {
					pr, dr := s[r*n:(r+1)*n], ds[r*n:(r+1)*n]
					c := rowDot[r]
					if o == nil {
						c = 0
						for j, x := range pr {
							c += float64(x) * float64(dr[j])
						}
					}
					for j, x := range pr {
						dr[j] = T(float64(x) * (float64(dr[j]) - c))
					}
				}
				// dQ = scale·dS·K; dK += scale·dSᵀ·Q
				gemmT(false, false, tl.m, p.d, n, p.scale, ds, n, k[kv:], p.kvs, 0, dq[tl.q:], tl.ld)
				gemmT(true, false, n, p.d, tl.m, p.scale, ds, n, q[tl.q:], tl.ld, 1, dk[dkv:], p.kvs)
			}
		}
	})
}
