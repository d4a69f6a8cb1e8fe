package conformance

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// attnSpec is one attention call; kvExtra widens KVBatchStride beyond
// Tk*Hkv*D (a KV cache with room for more positions), and maskGap
// separates the per-batch masks (maskShared broadcasts one mask).
type attnSpec struct {
	name                  string
	b, tq, tk, hq, hkv, d int
	qOffset               int
	causal                bool
	scale                 float64
	mask, maskShared      bool
	maskGap, kvExtra      int
	noLSE                 bool
}

var attnSpecs = []attnSpec{
	{name: "basic", b: 2, tq: 5, tk: 5, hq: 2, hkv: 2, d: 8, scale: 0.35},
	{name: "causal", b: 2, tq: 6, tk: 6, hq: 2, hkv: 2, d: 8, causal: true, scale: 0.35},
	{name: "gqa-causal", b: 2, tq: 5, tk: 5, hq: 4, hkv: 2, d: 6, causal: true, scale: 0.4},
	{name: "mqa", b: 1, tq: 4, tk: 7, hq: 3, hkv: 1, d: 5, scale: 0.5},
	{name: "mask", b: 2, tq: 4, tk: 6, hq: 2, hkv: 1, d: 4, scale: 0.5, mask: true, maskGap: 3},
	{name: "mask-shared", b: 3, tq: 4, tk: 4, hq: 2, hkv: 2, d: 4, scale: 0.5, mask: true, maskShared: true},
	{name: "mask-causal-gqa", b: 2, tq: 5, tk: 5, hq: 4, hkv: 2, d: 4, causal: true, scale: 0.3, mask: true},
	{name: "decode-offset", b: 2, tq: 2, tk: 7, hq: 2, hkv: 2, d: 8, qOffset: 5, causal: true, scale: 0.35},
	{name: "decode-one-gqa", b: 2, tq: 1, tk: 9, hq: 4, hkv: 1, d: 8, qOffset: 8, causal: true, scale: 0.35},
	{name: "kv-cache-stride", b: 3, tq: 3, tk: 6, hq: 4, hkv: 2, d: 4, qOffset: 3, causal: true, scale: 0.5, kvExtra: 29},
	{name: "kv-cache-stride-mask", b: 2, tq: 3, tk: 5, hq: 2, hkv: 2, d: 4, qOffset: 2, causal: true, scale: 0.5, kvExtra: 8, mask: true, maskGap: 1},
	{name: "no-lse", b: 1, tq: 4, tk: 4, hq: 2, hkv: 2, d: 4, causal: true, scale: 0.5, noLSE: true},
	{name: "long", b: 2, tq: 80, tk: 80, hq: 4, hkv: 2, d: 16, causal: true, scale: 0.25},
	{name: "long-not-causal", b: 1, tq: 70, tk: 90, hq: 2, hkv: 1, d: 12, scale: 0.3},
}

// attnData holds the inputs of a case, laid out as the Backend reads them.
type attnData struct {
	q, k, v, mask, do    []float64
	kvStride, maskStride int
	qb, kb, vb, mb       *buf
}

func (s attnSpec) rep() int { return s.hq / s.hkv }

// kvIndex returns the element of K or V at batch bi, position j, head g,
// feature e, for a batch stride st.
func (s attnSpec) kvIndex(st, bi, j, g, e int) int { return bi*st + (j*s.hkv+g)*s.d + e }

// qIndex returns the element of Q, O, DQ or DO.
func (s attnSpec) qIndex(bi, i, hh, e int) int { return ((bi*s.tq+i)*s.hq+hh)*s.d + e }

// visible reports whether query row i sees key j.
func (s attnSpec) visible(i, j int) bool { return !s.causal || j <= s.qOffset+i }

// scores returns the scaled, masked scores of query (bi, i, hh) over the
// visible keys and their log-sum-exp; invisible keys get -Inf.
func (s attnSpec) scores(d *attnData, bi, i, hh int) (sc []float64, lse float64) {
	g := hh / s.rep()
	sc = make([]float64, s.tk)
	var vis []float64
	for j := 0; j < s.tk; j++ {
		if !s.visible(i, j) {
			sc[j] = math.Inf(-1)
			continue
		}
		var dotp float64
		for e := 0; e < s.d; e++ {
			dotp += d.q[s.qIndex(bi, i, hh, e)] * d.k[s.kvIndex(d.kvStride, bi, j, g, e)]
		}
		sc[j] = s.scale * dotp
		if s.mask {
			sc[j] += d.mask[bi*d.maskStride+i*s.tk+j]
		}
		vis = append(vis, sc[j])
	}
	return sc, logSumExp(vis)
}

// attnRef is the oracle of Attention.
func attnRef(s attnSpec, d *attnData) (o, lse []float64) {
	o = make([]float64, s.b*s.tq*s.hq*s.d)
	lse = make([]float64, s.b*s.hq*s.tq)
	for bi := 0; bi < s.b; bi++ {
		for hh := 0; hh < s.hq; hh++ {
			g := hh / s.rep()
			for i := 0; i < s.tq; i++ {
				sc, l := s.scores(d, bi, i, hh)
				lse[(bi*s.hq+hh)*s.tq+i] = l
				for j := 0; j < s.tk; j++ {
					p := math.Exp(sc[j] - l)
					if p == 0 {
						continue
					}
					for e := 0; e < s.d; e++ {
						o[s.qIndex(bi, i, hh, e)] += p * d.v[s.kvIndex(d.kvStride, bi, j, g, e)]
					}
				}
			}
		}
	}
	return o, lse
}

// attnGradRef is the oracle of AttentionGrad: with P the probabilities,
// dP = dO·Vᵀ, dS = P∘(dP - rowsum(dO∘O)), dQ = Scale·dS·K, dK = Scale·dSᵀ·Q
// and dV = Pᵀ·dO, summed over the query heads of each key/value head. DK
// and DV are contiguous [B, Tk, Hkv, D].
func attnGradRef(s attnSpec, d *attnData) (dq, dk, dv []float64) {
	dq = make([]float64, s.b*s.tq*s.hq*s.d)
	dk = make([]float64, s.b*s.tk*s.hkv*s.d)
	dv = make([]float64, s.b*s.tk*s.hkv*s.d)
	dense := s.tk * s.hkv * s.d
	for bi := 0; bi < s.b; bi++ {
		for hh := 0; hh < s.hq; hh++ {
			g := hh / s.rep()
			for i := 0; i < s.tq; i++ {
				sc, l := s.scores(d, bi, i, hh)
				p := make([]float64, s.tk)
				dp := make([]float64, s.tk)
				var sum float64
				for j := 0; j < s.tk; j++ {
					p[j] = math.Exp(sc[j] - l)
					for e := 0; e < s.d; e++ {
						dp[j] += d.do[s.qIndex(bi, i, hh, e)] * d.v[s.kvIndex(d.kvStride, bi, j, g, e)]
					}
					sum += p[j] * dp[j]
				}
				for j := 0; j < s.tk; j++ {
					ds := p[j] * (dp[j] - sum)
					for e := 0; e < s.d; e++ {
						qi := s.qIndex(bi, i, hh, e)
						ki := s.kvIndex(dense, bi, j, g, e)
						dq[qi] += s.scale * ds * d.k[s.kvIndex(d.kvStride, bi, j, g, e)]
						dk[ki] += s.scale * ds * d.q[qi]
						dv[ki] += p[j] * d.do[qi]
					}
				}
			}
		}
	}
	return dq, dk, dv
}

// attnSetup draws the inputs of s and writes Q, K, V and Mask.
func attnSetup(h *harness, s attnSpec) *attnData {
	d := &attnData{}
	d.q = h.normal(s.b*s.tq*s.hq*s.d, 0, 1)
	dense := s.tk * s.hkv * s.d
	d.kvStride = dense + s.kvExtra
	kv := func() []float64 {
		// Unused cache slots hold NaN: the kernel must not read them.
		v := filled((s.b-1)*d.kvStride+dense, math.NaN())
		for bi := 0; bi < s.b; bi++ {
			copy(v[bi*d.kvStride:], h.normal(dense, 0, 1))
		}
		return v
	}
	d.k, d.v = kv(), kv()
	d.qb, d.kb, d.vb = h.in(d.q), h.in(d.k), h.in(d.v)
	if s.mask {
		per := s.tq * s.tk
		if !s.maskShared {
			d.maskStride = per + s.maskGap
		}
		d.mask = filled((s.b-1)*d.maskStride+per, math.NaN())
		for bi := 0; bi < s.b; bi++ {
			if s.maskShared && bi > 0 {
				break
			}
			m := h.uniform(per, -2, 0)
			for i := range m {
				// Block some pairs outright, but never a whole row.
				if i%s.tk != 0 && h.rng.IntN(4) == 0 {
					m[i] = -1e4
				}
			}
			copy(d.mask[bi*d.maskStride:], m)
		}
		d.mb = h.in(d.mask)
	}
	return d
}

func (s attnSpec) args(d *attnData) tensor.AttentionArgs {
	a := tensor.AttentionArgs{B: s.b, Tq: s.tq, Tk: s.tk, Hq: s.hq, Hkv: s.hkv, D: s.d,
		KVBatchStride: d.kvStride, QOffset: s.qOffset, Causal: s.causal, Scale: s.scale,
		MaskBatchStride: d.maskStride, Q: d.qb.ref(), K: d.kb.ref(), V: d.vb.ref()}
	if d.mb != nil {
		a.Mask = d.mb.ref()
	}
	return a
}

func attentionCases() []kcase {
	var cases []kcase
	for _, s := range attnSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			d := attnSetup(h, s)
			o, lse := attnRef(s, d)
			a := s.args(d)
			ob := h.out(len(o))
			a.O = ob.ref()
			var lb *buf
			if !s.noLSE {
				lb = h.out(len(lse))
				a.LSE = lb.ref()
			}
			h.call("Attention", h.be.Attention(&a))
			what := fmt.Sprintf("Attention %+v", s)
			h.check(what+": O", ob, o, tolSoft)
			if lb != nil {
				h.check(what+": LSE", lb, lse, tolSoft)
			}
		}})
	}
	return cases
}

func attentionGradCases() []kcase {
	var cases []kcase
	for _, s := range attnSpecs {
		if s.noLSE {
			continue
		}
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			d := attnSetup(h, s)
			o, lse := attnRef(s, d)
			d.do = h.normal(len(o), 0, 1)
			a := s.args(d)
			// O and LSE as the forward pass saved them, rounded to the
			// dtype; the oracle recomputes them exactly.
			a.O, a.LSE, a.DO = h.in(o).ref(), h.in(lse).ref(), h.in(d.do).ref()
			dq, dk, dv := attnGradRef(s, d)
			dqb, dkb, dvb := h.out(len(dq)), h.out(len(dk)), h.out(len(dv))
			a.DQ, a.DK, a.DV = dqb.ref(), dkb.ref(), dvb.ref()
			h.call("AttentionGrad", h.be.AttentionGrad(&a))
			what := fmt.Sprintf("AttentionGrad %+v", s)
			h.check(what+": DQ", dqb, dq, tolSoft)
			h.check(what+": DK", dkb, dk, tolSoft)
			h.check(what+": DV", dvb, dv, tolSoft)
		}})
	}
	return cases
}
