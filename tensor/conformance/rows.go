package conformance

import (
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// This file covers the row kernels: Softmax, CrossEntropy, Norm, RoPE,
// Gather and ScatterAdd, with their gradients.

// logSumExp returns log(sum(exp(x))) computed stably.
func logSumExp(x []float64) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

// softmaxRef is the oracle of Softmax.
func softmaxRef(log bool, rows, cols int, x []float64) []float64 {
	y := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		lse := logSumExp(row)
		for c, v := range row {
			if log {
				y[r*cols+c] = v - lse
			} else {
				y[r*cols+c] = math.Exp(v - lse)
			}
		}
	}
	return y
}

// softmaxGradRef is the oracle of SoftmaxGrad: for softmax
// dx = y*(dy - sum(dy*y)), for log-softmax dx = dy - exp(y)*sum(dy).
func softmaxGradRef(log bool, rows, cols int, y, dy []float64) []float64 {
	dx := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		ys, ds := y[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
		var s float64
		for c := range ys {
			if log {
				s += ds[c]
			} else {
				s += ds[c] * ys[c]
			}
		}
		for c := range ys {
			if log {
				dx[r*cols+c] = ds[c] - math.Exp(ys[c])*s
			} else {
				dx[r*cols+c] = ys[c] * (ds[c] - s)
			}
		}
	}
	return dx
}

type rowSpec struct {
	name       string
	rows, cols int
	shift, std float64 // logits are normal(shift, std)
}

var softmaxSpecs = []rowSpec{
	{"small", 4, 7, 0, 1},
	{"one-col", 3, 1, 0, 1},
	{"shifted", 5, 33, 60, 3},
	{"peaked", 4, 50, 0, 30},
	{"wide", 3, 1000, -20, 2},
	{"many-rows", 64, 513, 0, 2},
}

func softmaxName(log bool, s rowSpec) string {
	if log {
		return "log-" + s.name
	}
	return s.name
}

func softmaxCases() []kcase {
	var cases []kcase
	for _, log := range []bool{false, true} {
		for _, s := range softmaxSpecs {
			log, s := log, s
			cases = append(cases, kcase{name: softmaxName(log, s), run: func(h *harness) {
				x := h.normal(s.rows*s.cols, s.shift, s.std)
				xb, yb := h.in(x), h.out(len(x))
				h.call("Softmax", h.be.Softmax(&tensor.SoftmaxArgs{Log: log, Rows: s.rows, Cols: s.cols, X: xb.ref(), Y: yb.ref()}))
				h.check(fmt.Sprintf("Softmax(log %v) of %d×%d", log, s.rows, s.cols), yb, softmaxRef(log, s.rows, s.cols, x), tolSoft)
			}})
		}
	}
	return cases
}

func softmaxGradCases() []kcase {
	var cases []kcase
	for _, log := range []bool{false, true} {
		for _, s := range softmaxSpecs {
			log, s := log, s
			cases = append(cases, kcase{name: softmaxName(log, s), run: func(h *harness) {
				x := h.normal(s.rows*s.cols, s.shift, s.std)
				y := softmaxRef(log, s.rows, s.cols, x)
				dy := h.normal(len(x), 0, 1)
				// SoftmaxGrad reads only Y and DY, as the tensor layer
				// passes them.
				yb, dyb, dxb := h.in(y), h.in(dy), h.out(len(x))
				h.call("SoftmaxGrad", h.be.SoftmaxGrad(&tensor.SoftmaxArgs{Log: log, Rows: s.rows, Cols: s.cols,
					Y: yb.ref(), DX: dxb.ref(), DY: dyb.ref()}))
				h.check(fmt.Sprintf("SoftmaxGrad(log %v) of %d×%d", log, s.rows, s.cols), dxb, softmaxGradRef(log, s.rows, s.cols, y, dy), tolSoft)
			}})
		}
	}
	return cases
}

// ceRef is the oracle of CrossEntropy: per-row loss and log-sum-exp.
func ceRef(rows, cols int, logits []float64, targets []int) (loss, lse []float64) {
	loss, lse = make([]float64, rows), make([]float64, rows)
	for r := 0; r < rows; r++ {
		row := logits[r*cols : (r+1)*cols]
		lse[r] = logSumExp(row)
		if t := targets[r]; t >= 0 && t < cols {
			loss[r] = lse[r] - row[t]
		}
	}
	return loss, lse
}

// ceGradRef is the oracle of CrossEntropyGrad.
func ceGradRef(rows, cols int, logits []float64, targets []int, lse, dloss []float64) []float64 {
	d := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		t := targets[r]
		if t < 0 || t >= cols {
			continue
		}
		for c := 0; c < cols; c++ {
			p := math.Exp(logits[r*cols+c] - lse[r])
			if c == t {
				p--
			}
			d[r*cols+c] = p * dloss[r]
		}
	}
	return d
}

type ceSpec struct {
	rowSpec
	targets func(h *harness, rows, cols int) []int
}

// mixedTargets returns random targets with ignored ones (-100 and cols,
// both outside [0, cols)) and the extreme classes mixed in.
func mixedTargets(h *harness, rows, cols int) []int {
	t := h.intsIn(rows, 0, cols)
	special := []int{-100, 0, cols - 1, cols, -1}
	for i := range t {
		if i%3 == 1 {
			t[i] = special[(i/3)%len(special)]
		}
	}
	return t
}

var ceSpecs = []ceSpec{
	{rowSpec{"small", 6, 11, 0, 1}, mixedTargets},
	{rowSpec{"no-ignored", 5, 9, 0, 2}, func(h *harness, rows, cols int) []int { return h.intsIn(rows, 0, cols) }},
	{rowSpec{"all-ignored", 3, 8, 0, 1}, func(h *harness, rows, cols int) []int { return []int{-100, -100, -100} }},
	{rowSpec{"one-col", 4, 1, 0, 1}, func(h *harness, rows, cols int) []int { return []int{0, 0, -100, 0} }},
	{rowSpec{"wide-shifted", 33, 2000, 50, 3}, mixedTargets},
}

func crossEntropyCases() []kcase {
	var cases []kcase
	for _, s := range ceSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			logits := h.normal(s.rows*s.cols, s.shift, s.std)
			targets := s.targets(h, s.rows, s.cols)
			lb, tb := h.in(logits), h.ids(targets)
			lossb, lseb := h.out(s.rows), h.out(s.rows)
			loss, lse := ceRef(s.rows, s.cols, logits, targets)
			h.call("CrossEntropy", h.be.CrossEntropy(&tensor.CrossEntropyArgs{Rows: s.rows, Cols: s.cols,
				Logits: lb.ref(), Targets: tb.ref(), Loss: lossb.ref(), LSE: lseb.ref()}))
			h.check(fmt.Sprintf("Loss of %d×%d, targets %v", s.rows, s.cols, short(targets)), lossb, loss, tolSoft)
			h.check(fmt.Sprintf("LSE of %d×%d", s.rows, s.cols), lseb, lse, tolSoft)
		}})
	}
	return cases
}

func crossEntropyGradCases() []kcase {
	var cases []kcase
	for _, s := range ceSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			logits := h.normal(s.rows*s.cols, s.shift, s.std)
			targets := s.targets(h, s.rows, s.cols)
			lb, tb := h.in(logits), h.ids(targets)
			_, lse := ceRef(s.rows, s.cols, logits, targets)
			dloss := h.normal(s.rows, 0, 1)
			lseb, dlb, dxb := h.in(lse), h.in(dloss), h.out(len(logits))
			h.call("CrossEntropyGrad", h.be.CrossEntropyGrad(&tensor.CrossEntropyArgs{Rows: s.rows, Cols: s.cols,
				Logits: lb.ref(), Targets: tb.ref(), LSE: lseb.ref(), DLogits: dxb.ref(), DLoss: dlb.ref()}))
			h.check(fmt.Sprintf("DLogits of %d×%d, targets %v", s.rows, s.cols, short(targets)), dxb,
				ceGradRef(s.rows, s.cols, logits, targets, lse, dloss), tolSoft)
		}})
	}
	return cases
}

// short abbreviates a long slice for messages.
func short(v []int) string {
	if len(v) <= 12 {
		return fmt.Sprint(v)
	}
	return fmt.Sprint(v[:12]) + "..."
}

// normRef is the oracle of Norm: Y, and the saved Mean (LayerNorm) and
// RStd = 1/sqrt(var + eps), with the biased variance (or the mean square
// for RMSNorm).
func normRef(layer bool, rows, cols int, eps float64, x, w, b []float64) (y, mean, rstd []float64) {
	y, mean, rstd = make([]float64, rows*cols), make([]float64, rows), make([]float64, rows)
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		var mu float64
		if layer {
			for _, v := range row {
				mu += v
			}
			mu /= float64(cols)
		}
		var ms float64
		for _, v := range row {
			ms += (v - mu) * (v - mu)
		}
		ms /= float64(cols)
		rs := 1 / math.Sqrt(ms+eps)
		mean[r], rstd[r] = mu, rs
		for c, v := range row {
			o := (v - mu) * rs * w[c]
			if b != nil {
				o += b[c]
			}
			y[r*cols+c] = o
		}
	}
	return y, mean, rstd
}

// normGradRef is the oracle of NormGrad given the saved statistics:
// xhat = (x-mean)*rstd, dxhat = dy*w,
// dx = rstd*(dxhat - mean(dxhat) [LayerNorm only] - xhat*mean(dxhat*xhat)),
// dw = sum over rows of dy*xhat, db = sum over rows of dy.
func normGradRef(layer bool, rows, cols int, x, w, mean, rstd, dy []float64) (dx, dw, db []float64) {
	dx, dw, db = make([]float64, rows*cols), make([]float64, cols), make([]float64, cols)
	xhat, dxhat := make([]float64, cols), make([]float64, cols)
	for r := 0; r < rows; r++ {
		var mu float64
		if layer {
			mu = mean[r]
		}
		var sumD, sumDX float64
		for c := 0; c < cols; c++ {
			xhat[c] = (x[r*cols+c] - mu) * rstd[r]
			dxhat[c] = dy[r*cols+c] * w[c]
			sumD += dxhat[c]
			sumDX += dxhat[c] * xhat[c]
			dw[c] += dy[r*cols+c] * xhat[c]
			db[c] += dy[r*cols+c]
		}
		n := float64(cols)
		for c := 0; c < cols; c++ {
			g := dxhat[c] - xhat[c]*sumDX/n
			if layer {
				g -= sumD / n
			}
			dx[r*cols+c] = rstd[r] * g
		}
	}
	return dx, dw, db
}

type normSpec struct {
	name         string
	layer, bias  bool
	rows, cols   int
	eps, shift   float64
	noDW, noDB   bool // NormGrad without a weight / bias gradient
	accumulate   bool // NormGrad accumulates into DW and DB
	gradOnlyCase bool // the case only makes sense for NormGrad
}

var normSpecs = []normSpec{
	{name: "rms", rows: 5, cols: 8, eps: 1e-5},
	{name: "rms-one-col", rows: 4, cols: 1, eps: 0.25}, // a small eps makes the gradient all cancellation
	{name: "rms-big-eps", rows: 3, cols: 16, eps: 0.5},
	{name: "rms-wide", rows: 64, cols: 257, eps: 1e-6},
	{name: "layer", layer: true, rows: 5, cols: 8, eps: 1e-5},
	{name: "layer-bias", layer: true, bias: true, rows: 6, cols: 12, eps: 1e-5},
	{name: "layer-bias-wide", layer: true, bias: true, rows: 64, cols: 257, eps: 1e-5},
	{name: "layer-offset", layer: true, bias: true, rows: 7, cols: 64, eps: 1e-5, shift: 30},
	{name: "rms-no-dw", rows: 5, cols: 8, eps: 1e-5, noDW: true, gradOnlyCase: true},
	{name: "rms-accumulate", rows: 5, cols: 8, eps: 1e-5, accumulate: true, gradOnlyCase: true},
	{name: "layer-bias-accumulate", layer: true, bias: true, rows: 9, cols: 10, eps: 1e-5, accumulate: true, gradOnlyCase: true},
	{name: "layer-bias-no-dw", layer: true, bias: true, rows: 5, cols: 6, eps: 1e-5, noDW: true, gradOnlyCase: true},
	{name: "layer-bias-no-db", layer: true, bias: true, rows: 5, cols: 6, eps: 1e-5, noDB: true, gradOnlyCase: true},
	{name: "layer-no-dw-db", layer: true, rows: 5, cols: 6, eps: 1e-5, noDW: true, noDB: true, gradOnlyCase: true},
}

func (s normSpec) inputs(h *harness) (x, w, b []float64) {
	x = h.normal(s.rows*s.cols, s.shift, 1.5)
	w = h.normal(s.cols, 1, 0.3)
	if s.bias {
		b = h.normal(s.cols, 0, 0.5)
	}
	return x, w, b
}

func normCases() []kcase {
	var cases []kcase
	for _, s := range normSpecs {
		if s.gradOnlyCase {
			continue
		}
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			x, w, b := s.inputs(h)
			xb, wb := h.in(x), h.in(w)
			args := tensor.NormArgs{Layer: s.layer, Rows: s.rows, Cols: s.cols, Eps: s.eps, X: xb.ref(), W: wb.ref()}
			if b != nil {
				args.B = h.in(b).ref()
			}
			yb, rb := h.out(len(x)), h.out(s.rows)
			args.Y, args.RStd = yb.ref(), rb.ref()
			var mb *buf
			if s.layer {
				mb = h.out(s.rows)
				args.Mean = mb.ref()
			}
			y, mean, rstd := normRef(s.layer, s.rows, s.cols, s.eps, x, w, b)
			h.call("Norm", h.be.Norm(&args))
			what := fmt.Sprintf("Norm(layer %v, bias %v) of %d×%d", s.layer, s.bias, s.rows, s.cols)
			h.check(what+": Y", yb, y, tolStd)
			h.check(what+": RStd", rb, rstd, tolStd)
			if mb != nil {
				h.check(what+": Mean", mb, mean, tolStd)
			}
		}})
	}
	return cases
}

func normGradCases() []kcase {
	var cases []kcase
	for _, s := range normSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			x, w, _ := s.inputs(h)
			_, mean, rstd := normRef(s.layer, s.rows, s.cols, s.eps, quantized(h.dt, x), quantized(h.dt, w), nil)
			dy := h.normal(len(x), 0, 1)
			// NormGrad gets what the tensor layer passes: X, W, the saved
			// statistics and DY, but neither Y nor B.
			xb, wb, dyb, rb := h.in(x), h.in(w), h.in(dy), h.in(rstd)
			args := tensor.NormArgs{Layer: s.layer, Rows: s.rows, Cols: s.cols, Eps: s.eps,
				X: xb.ref(), W: wb.ref(), DY: dyb.ref(), RStd: rb.ref()}
			if s.layer {
				args.Mean = h.in(mean).ref()
			}
			dx, dw, db := normGradRef(s.layer, s.rows, s.cols, x, w, mean, rstd, dy)
			dxb := h.out(len(x))
			args.DX = dxb.ref()
			var dwb, dbb *buf
			initial := func() *buf {
				if s.accumulate {
					return h.in(h.normal(s.cols, 0, 1))
				}
				return h.out(s.cols)
			}
			if !s.noDW {
				dwb = initial()
				args.DW = dwb.ref()
			}
			if s.bias && !s.noDB {
				dbb = initial()
				args.DB = dbb.ref()
			}
			var dw0, db0 []float64
			if s.accumulate {
				if dwb != nil {
					dw0 = h.get(dwb)
				}
				if dbb != nil {
					db0 = h.get(dbb)
				}
			}
			args.Accumulate = s.accumulate
			h.call("NormGrad", h.be.NormGrad(&args))
			what := fmt.Sprintf("NormGrad(layer %v, accumulate %v) of %d×%d", s.layer, s.accumulate, s.rows, s.cols)
			h.check(what+": DX", dxb, dx, tolStd)
			if dwb != nil {
				h.check(what+": DW", dwb, addTo(dw0, dw), tolStd)
			}
			if dbb != nil {
				h.check(what+": DB", dbb, addTo(db0, db), tolStd)
			}
		}})
	}
	return cases
}

// quantized returns a copy of v rounded to dt.
func quantized(dt tensor.DType, v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = quantize(dt, x)
	}
	return out
}

// addTo returns base + d elementwise, or d when base is nil.
func addTo(base, d []float64) []float64 {
	if base == nil {
		return d
	}
	out := make([]float64, len(d))
	for i := range d {
		out[i] = base[i] + d[i]
	}
	return out
}

type ropeSpec struct {
	name                         string
	rows, heads, headDim, rotDim int
	half, inverse, inPlace       bool
	maxPos                       int
}

var ropeSpecs = []ropeSpec{
	{name: "adjacent", rows: 5, heads: 3, headDim: 8, rotDim: 8, maxPos: 40},
	{name: "half-split", rows: 5, heads: 3, headDim: 8, rotDim: 8, half: true, maxPos: 40},
	{name: "adjacent-partial", rows: 4, heads: 2, headDim: 8, rotDim: 4, maxPos: 40},
	{name: "half-split-partial", rows: 4, heads: 2, headDim: 6, rotDim: 4, half: true, maxPos: 40},
	{name: "adjacent-inverse", rows: 5, heads: 3, headDim: 8, rotDim: 8, inverse: true, maxPos: 40},
	{name: "half-split-inverse-partial", rows: 5, heads: 2, headDim: 10, rotDim: 6, half: true, inverse: true, maxPos: 40},
	{name: "in-place", rows: 6, heads: 2, headDim: 8, rotDim: 8, inPlace: true, maxPos: 40},
	{name: "in-place-half-split", rows: 6, heads: 2, headDim: 8, rotDim: 6, half: true, inPlace: true, maxPos: 40},
	{name: "many-rows", rows: 256, heads: 4, headDim: 32, rotDim: 32, maxPos: 50},
	{name: "many-rows-half-split", rows: 256, heads: 4, headDim: 32, rotDim: 16, half: true, maxPos: 50},
}

// ropeRef is the oracle of RoPE: it rotates pair i of every head of row r
// by pos[r]*invFreq[i] (negated with inverse).
func ropeRef(s ropeSpec, x []float64, pos []int, inv []float64) []float64 {
	y := append([]float64(nil), x...)
	half := s.rotDim / 2
	for r := 0; r < s.rows; r++ {
		for hd := 0; hd < s.heads; hd++ {
			base := (r*s.heads + hd) * s.headDim
			for i := 0; i < half; i++ {
				a, b := base+2*i, base+2*i+1
				if s.half {
					a, b = base+i, base+i+half
				}
				th := float64(pos[r]) * inv[i]
				if s.inverse {
					th = -th
				}
				sn, cs := math.Sincos(th)
				y[a] = x[a]*cs - x[b]*sn
				y[b] = x[a]*sn + x[b]*cs
			}
		}
	}
	return y
}

func ropeCases() []kcase {
	var cases []kcase
	for _, s := range ropeSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			x := h.normal(s.rows*s.heads*s.headDim, 0, 1)
			pos := h.intsIn(s.rows, 0, s.maxPos+1)
			pos[0] = 0 // position 0 is the identity
			inv := make([]float64, s.rotDim/2)
			for i := range inv {
				inv[i] = math.Pow(10000, -float64(2*i)/float64(s.rotDim))
			}
			inv[len(inv)-1] *= 1.37 // an arbitrary table, not just theta powers
			xb, pb, fb := h.in(x), h.ids(pos), h.in(inv)
			yb := xb
			if !s.inPlace {
				yb = h.out(len(x))
			}
			want := ropeRef(s, x, pos, inv)
			h.call("RoPE", h.be.RoPE(&tensor.RoPEArgs{Rows: s.rows, Heads: s.heads, HeadDim: s.headDim, RotDim: s.rotDim,
				HalfSplit: s.half, Inverse: s.inverse, X: xb.ref(), Y: yb.ref(), Pos: pb.ref(), InvFreq: fb.ref()}))
			h.check(fmt.Sprintf("RoPE %+v, positions %v", s, short(pos)), yb, want, tolRoPE)
		}})
	}
	cases = append(cases, kcase{name: "round-trip", run: func(h *harness) {
		// Inverse undoes the rotation.
		s := ropeSpec{rows: 7, heads: 2, headDim: 12, rotDim: 8, half: true}
		x := h.normal(s.rows*s.heads*s.headDim, 0, 1)
		pos := h.intsIn(s.rows, 0, 30)
		inv := []float64{1, 0.3, 0.1, 0.01}
		xb, pb, fb, yb, zb := h.in(x), h.ids(pos), h.in(inv), h.out(len(x)), h.out(len(x))
		args := tensor.RoPEArgs{Rows: s.rows, Heads: s.heads, HeadDim: s.headDim, RotDim: s.rotDim, HalfSplit: true,
			X: xb.ref(), Y: yb.ref(), Pos: pb.ref(), InvFreq: fb.ref()}
		h.call("RoPE", h.be.RoPE(&args))
		args.X, args.Y, args.Inverse = yb.ref(), zb.ref(), true
		h.call("RoPE", h.be.RoPE(&args))
		h.check("RoPE then inverse RoPE", zb, x, tolRoPE)
	}})
	return cases
}

type gatherSpec struct {
	name                  string
	rows, cols, tableRows int
	ids                   func(h *harness, rows, tableRows int) []int
}

var gatherSpecs = []gatherSpec{
	{"repeated-ids", 6, 5, 10, func(h *harness, rows, tableRows int) []int { return []int{3, 0, 9, 3, 3, 7} }},
	{"one-col", 5, 1, 4, func(h *harness, rows, tableRows int) []int { return []int{1, 1, 0, 3, 1} }},
	{"large", 2000, 64, 50, func(h *harness, rows, tableRows int) []int { return h.intsIn(rows, 0, tableRows) }},
	{"hot-rows", 4000, 16, 5, func(h *harness, rows, tableRows int) []int { return h.intsIn(rows, 0, tableRows) }},
}

func gatherCases() []kcase {
	var cases []kcase
	for _, s := range gatherSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			table := h.normal(s.tableRows*s.cols, 0, 1)
			ids := s.ids(h, s.rows, s.tableRows)
			tb, ib, ob := h.in(table), h.ids(ids), h.out(s.rows*s.cols)
			want := make([]float64, 0, s.rows*s.cols)
			for _, id := range ids {
				want = append(want, table[id*s.cols:(id+1)*s.cols]...)
			}
			h.call("Gather", h.be.Gather(&tensor.GatherArgs{Rows: s.rows, Cols: s.cols, TableRows: s.tableRows,
				Table: tb.ref(), Ids: ib.ref(), Out: ob.ref()}))
			h.check(fmt.Sprintf("Gather of ids %v", short(ids)), ob, want, exact)
		}})
	}
	for _, bad := range []int{10, -1, 1 << 30} {
		bad := bad
		cases = append(cases, kcase{name: fmt.Sprintf("bad-id-%d", bad), run: func(h *harness) {
			table := h.normal(10*4, 0, 1)
			tb, ob := h.in(table), h.out(3*4)
			good := tensor.GatherArgs{Rows: 3, Cols: 4, TableRows: 10, Table: tb.ref(), Ids: h.ids([]int{1, 2, 9}).ref(), Out: ob.ref()}
			h.call("Gather", h.be.Gather(&good))
			badArgs := good
			badArgs.Ids = h.ids([]int{1, bad, 2}).ref()
			expectError(h, "Gather", bad, h.be.Gather(&badArgs))
		}})
	}
	return cases
}

// expectError checks that a call with an out-of-range id failed, either
// at once or, for a backend that queues work, at the next Sync.
func expectError(h *harness, op string, bad int, err error) {
	h.Helper()
	if err == nil {
		err = h.be.Sync()
	}
	if err == nil {
		h.Errorf("%s with id %d outside the table returned no error", op, bad)
	}
}

func scatterAddCases() []kcase {
	var cases []kcase
	for _, s := range gatherSpecs {
		s := s
		cases = append(cases, kcase{name: s.name, run: func(h *harness) {
			dtable := h.normal(s.tableRows*s.cols, 0, 1)
			dout := h.normal(s.rows*s.cols, 0, 1)
			ids := s.ids(h, s.rows, s.tableRows)
			dtb, dob, ib := h.in(dtable), h.in(dout), h.ids(ids)
			want := append([]float64(nil), dtable...)
			for r, id := range ids {
				for c := 0; c < s.cols; c++ {
					want[id*s.cols+c] += dout[r*s.cols+c]
				}
			}
			h.call("ScatterAdd", h.be.ScatterAdd(&tensor.GatherArgs{Rows: s.rows, Cols: s.cols, TableRows: s.tableRows,
				Ids: ib.ref(), DTable: dtb.ref(), DOut: dob.ref()}))
			h.check(fmt.Sprintf("ScatterAdd of ids %v", short(ids)), dtb, want, tolStd)
		}})
	}
	for _, bad := range []int{10, -1} {
		bad := bad
		cases = append(cases, kcase{name: fmt.Sprintf("bad-id-%d", bad), run: func(h *harness) {
			dtb, dob := h.in(filled(10*4, 0)), h.in(h.normal(3*4, 0, 1))
			good := tensor.GatherArgs{Rows: 3, Cols: 4, TableRows: 10, Ids: h.ids([]int{1, 2, 9}).ref(), DTable: dtb.ref(), DOut: dob.ref()}
			h.call("ScatterAdd", h.be.ScatterAdd(&good))
			badArgs := good
			badArgs.Ids = h.ids([]int{1, 2, bad}).ref()
			expectError(h, "ScatterAdd", bad, h.be.ScatterAdd(&badArgs))
		}})
	}
	return cases
}
