package conformance

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// This file covers Reduce, ReduceGrad, SumSquares and AdamW.

type reduceSpec struct {
	op              tensor.ReduceOp
	outer, n, inner int
	ties, negative  bool // small integers (many ties); all negative
}

func (s reduceSpec) values(h *harness) []float64 {
	total := s.outer * s.n * s.inner
	var x []float64
	switch {
	case s.ties:
		x = make([]float64, total)
		for i, v := range h.intsIn(total, -2, 3) {
			x[i] = float64(v)
		}
	case s.negative:
		x = h.uniform(total, -100, -1)
	default:
		x = h.normal(total, 0, 2)
	}
	return x
}

// reduceRef is the oracle of Reduce; argmax holds, for max, the index of
// the first maximal element of each output.
func reduceRef(s reduceSpec, x []float64) (y []float64, argmax []int) {
	y = make([]float64, s.outer*s.inner)
	argmax = make([]int, s.outer*s.inner)
	for o := 0; o < s.outer; o++ {
		for i := 0; i < s.inner; i++ {
			acc, at := 0.0, -1
			if s.op == tensor.ReduceMax {
				acc = math.Inf(-1)
			}
			for j := 0; j < s.n; j++ {
				idx := (o*s.n+j)*s.inner + i
				v := x[idx]
				if s.op == tensor.ReduceSum {
					acc += v
				} else if v > acc {
					acc, at = v, idx
				}
			}
			y[o*s.inner+i] = acc
			argmax[o*s.inner+i] = at
		}
	}
	return y, argmax
}

func (s reduceSpec) tol() tol {
	if s.op == tensor.ReduceMax {
		return exact
	}
	return tolStd
}

type namedReduce struct {
	name string
	s    reduceSpec
}

func reduceSpecs() []namedReduce {
	sum, mx := tensor.ReduceSum, tensor.ReduceMax
	return []namedReduce{
		{"sum-inner1", reduceSpec{op: sum, outer: 7, n: 13, inner: 1}},
		{"sum-inner4", reduceSpec{op: sum, outer: 3, n: 5, inner: 4}},
		{"sum-n1", reduceSpec{op: sum, outer: 4, n: 1, inner: 6}},
		{"sum-outer1-wide", reduceSpec{op: sum, outer: 1, n: 50, inner: 1000}},
		{"sum-many-rows", reduceSpec{op: sum, outer: 500, n: 300, inner: 1}},
		{"sum-all", reduceSpec{op: sum, outer: 1, n: 10007, inner: 1}},
		{"sum-3d-large", reduceSpec{op: sum, outer: 16, n: 31, inner: 129}},
		{"max-inner1", reduceSpec{op: mx, outer: 7, n: 13, inner: 1}},
		{"max-inner1-ties", reduceSpec{op: mx, outer: 9, n: 11, inner: 1, ties: true}},
		{"max-inner4-ties", reduceSpec{op: mx, outer: 3, n: 7, inner: 4, ties: true}},
		{"max-negative", reduceSpec{op: mx, outer: 5, n: 6, inner: 3, negative: true}},
		{"max-n1", reduceSpec{op: mx, outer: 4, n: 1, inner: 5}},
		{"max-many-rows", reduceSpec{op: mx, outer: 500, n: 300, inner: 1, ties: true}},
		{"max-wide-ties", reduceSpec{op: mx, outer: 2, n: 40, inner: 1000, ties: true}},
	}
}

func reduceCases() []kcase {
	var cases []kcase
	for _, nr := range reduceSpecs() {
		s := nr.s
		cases = append(cases, kcase{name: nr.name, run: func(h *harness) {
			x := s.values(h)
			xb := h.in(x)
			yb := h.out(s.outer * s.inner)
			want, _ := reduceRef(s, x)
			h.call("Reduce", h.be.Reduce(&tensor.ReduceArgs{Op: s.op, Outer: s.outer, N: s.n, Inner: s.inner, X: xb.ref(), Y: yb.ref()}))
			h.check(fmt.Sprintf("Reduce %+v", s), yb, want, s.tol())
		}})
	}
	return cases
}

func reduceGradCases() []kcase {
	var cases []kcase
	for _, nr := range reduceSpecs() {
		s := nr.s
		cases = append(cases, kcase{name: nr.name, run: func(h *harness) {
			x := s.values(h)
			y, argmax := reduceRef(s, x)
			dy := h.normal(len(y), 0, 1)
			xb, yb, dyb := h.in(x), h.in(y), h.in(dy)
			dxb := h.out(len(x))
			want := make([]float64, len(x))
			for o := 0; o < s.outer; o++ {
				for j := 0; j < s.n; j++ {
					for i := 0; i < s.inner; i++ {
						idx := (o*s.n+j)*s.inner + i
						g := dy[o*s.inner+i]
						if s.op == tensor.ReduceMax && argmax[o*s.inner+i] != idx {
							g = 0
						}
						want[idx] = g
					}
				}
			}
			h.call("ReduceGrad", h.be.ReduceGrad(&tensor.ReduceArgs{Op: s.op, Outer: s.outer, N: s.n, Inner: s.inner,
				X: xb.ref(), Y: yb.ref(), DX: dxb.ref(), DY: dyb.ref()}))
			h.check(fmt.Sprintf("ReduceGrad %+v (max goes to the first maximal element)", s), dxb, want, exact)
		}})
	}
	return cases
}

func sumSquaresCases() []kcase {
	run := func(n int) func(h *harness) {
		return func(h *harness) {
			x := h.normal(n, 0, 1.5)
			xb := h.in(x)
			ob := h.in([]float64{2.5})
			var ss float64
			for _, v := range x {
				ss += v * v
			}
			h.call("SumSquares", h.be.SumSquares(ob.ref(), xb.ref(), n))
			h.check(fmt.Sprintf("2.5 + sum of %d squares", n), ob, []float64{2.5 + ss}, tolStd)
			// A second call adds again.
			h.call("SumSquares", h.be.SumSquares(ob.ref(), xb.ref(), n))
			h.check(fmt.Sprintf("2.5 + twice the sum of %d squares", n), ob, []float64{2.5 + 2*ss}, tolStd)
		}
	}
	return []kcase{
		{name: "small", run: run(7)},
		{name: "one", run: run(1)},
		{name: "large", run: run(40000)},
		{name: "empty", run: run(0)},
		{name: "f64-out", dts: []tensor.DType{tensor.Float32}, run: func(h *harness) {
			// tensor.SumSquares accumulates float32 tensors into a float64
			// scalar; a backend may sum in float32 before adding.
			x := h.normal(30001, 0, 1)
			xb := h.in(x)
			ob := h.newBuf(tensor.Float64, []float64{1.25})
			ss := 1.25
			for _, v := range x {
				ss += v * v
			}
			h.call("SumSquares", h.be.SumSquares(ob.ref(), xb.ref(), len(x)))
			h.check("float64 sum of float32 squares", ob, []float64{ss}, tol{1e-5, 1e-5})
		}},
		{name: "prefix", run: func(h *harness) {
			// Only the first n elements count.
			x := h.normal(100, 0, 1)
			xb := h.in(x)
			ob := h.in([]float64{0})
			var ss float64
			for _, v := range x[:60] {
				ss += v * v
			}
			h.call("SumSquares", h.be.SumSquares(ob.ref(), xb.ref(), 60))
			h.check("sum of the first 60 squares of 100", ob, []float64{ss}, tolStd)
		}},
	}
}

// adamwSpec is a run of AdamW steps.
type adamwSpec struct {
	n, steps                int
	lr, b1, b2, eps, wd, gs float64
	stateDT                 tensor.DType // dtype of M and V when hasStateDT
	hasStateDT              bool
}

func adamwCases() []kcase {
	return []kcase{
		{name: "decay-scaled", run: func(h *harness) {
			runAdamW(h, adamwSpec{n: 1000, steps: 3, lr: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, gs: 0.5})
		}},
		{name: "plain", run: func(h *harness) {
			runAdamW(h, adamwSpec{n: 257, steps: 4, lr: 1e-2, b1: 0.8, b2: 0.95, eps: 1e-6, gs: 1})
		}},
		{name: "large", run: func(h *harness) {
			runAdamW(h, adamwSpec{n: 20001, steps: 2, lr: 3e-3, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.01, gs: 2})
		}},
		{name: "large-eps", run: func(h *harness) {
			runAdamW(h, adamwSpec{n: 300, steps: 3, lr: 0.1, b1: 0.9, b2: 0.999, eps: 0.5, wd: 0.05, gs: 1})
		}},
		{name: "f32-state", dts: []tensor.DType{tensor.Float64}, run: func(h *harness) {
			// "M and V are float32 (or float64 with float64 parameters)":
			// float64 parameters with float32 moments must work or report
			// ErrUnsupported.
			runAdamW(h, adamwSpec{n: 100, steps: 2, lr: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, gs: 1,
				stateDT: tensor.Float32, hasStateDT: true})
		}},
	}
}

func runAdamW(h *harness, s adamwSpec) {
	sdt := h.dt
	if s.hasStateDT {
		sdt = s.stateDT
	}
	p := h.normal(s.n, 0, 1)
	m := h.normal(s.n, 0, 0.1)
	v := h.uniform(s.n, 0, 0.01)
	pb := h.in(p)
	mb, vb := h.newBuf(sdt, m), h.newBuf(sdt, v)
	for step := 1; step <= s.steps; step++ {
		g := h.normal(s.n, 0, 1)
		gb := h.in(g)
		c1 := 1 - math.Pow(s.b1, float64(step))
		c2 := 1 - math.Pow(s.b2, float64(step))
		for i := range p {
			gi := g[i] * s.gs
			m[i] = s.b1*m[i] + (1-s.b1)*gi
			v[i] = s.b2*v[i] + (1-s.b2)*gi*gi
			mhat, vhat := m[i]/c1, v[i]/c2
			p[i] -= s.lr * (mhat/(math.Sqrt(vhat)+s.eps) + s.wd*p[i])
		}
		h.call("AdamW", h.be.AdamW(&tensor.AdamWArgs{N: s.n, Param: pb.ref(), Grad: gb.ref(), M: mb.ref(), V: vb.ref(),
			LR: s.lr, Beta1: s.b1, Beta2: s.b2, Eps: s.eps, WeightDecay: s.wd, GradScale: s.gs, Step: step}))
		what := fmt.Sprintf("step %d of %+v", step, s)
		ptl := tolStd
		if sdt != h.dt {
			// float32 moments round the update at 1e-7 relative.
			ptl = tol{1e-5, 1e-6}
		}
		h.check("Param after "+what, pb, p, ptl)
		h.check("M after "+what, mb, m, tolStd)
		h.check("V after "+what, vb, v, tolStd)
		// Carry on from what the backend stored, so rounding does not
		// accumulate between the oracle and the backend.
		p, m, v = h.get(pb), h.get(mb), h.get(vb)
	}
}
