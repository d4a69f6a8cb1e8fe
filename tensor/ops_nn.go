package tensor

import "math"

// This file holds the neural-network ops that run a fused kernel over rows:
// softmax, cross-entropy, normalisation, rotary embedding, embedding
// lookup, SwiGLU and dropout.

// floatOperands fails unless every tensor has a compute dtype (Float32 or
// Float64) and they share x's dtype and backend.
func floatOperands(op string, ts ...*Tensor) {
	if !ts[0].dtype.IsCompute() {
		fail(op, "dtype %s is not a compute type (f32 or f64)", ts[0].dtype)
	}
	sameOperands(op, ts...)
}

// indexOperand fails unless t holds Int32 indices on x's backend.
func indexOperand(op, what string, x, t *Tensor) {
	if t.dtype != Int32 {
		fail(op, "%s must be i32, not %s", what, t.dtype)
	}
	if t.Backend() != x.Backend() {
		fail(op, "%s on backend %s, operand on %s; move one with To", what, t.Backend().Name(), x.Backend().Name())
	}
}

// rowsCols splits a tensor of rank >= 1 into rows of its last axis.
func rowsCols(op string, x *Tensor) (rows, cols int) {
	if x.rank == 0 {
		fail(op, "needs at least one axis, got a scalar")
	}
	rows = 1
	for i := 0; i < x.rank-1; i++ {
		rows *= x.dims[i]
	}
	return rows, x.dims[x.rank-1]
}

func (t *Tensor) softmax(name string, log bool) *Tensor {
	floatOperands(name, t)
	rows, cols := rowsCols(name, t)
	x := t.Contiguous()
	y := alloc(x.Backend(), x.dtype, x.Shape())
	check(name, x.Backend().Softmax(&SoftmaxArgs{Log: log, Rows: rows, Cols: cols, X: x.ref(), Y: y.ref()}))
	if needGrad(x) {
		record(y, name, func(g *Tensor) {
			dx := alloc(x.Backend(), x.dtype, x.Shape())
			check(name, x.Backend().SoftmaxGrad(&SoftmaxArgs{Log: log, Rows: rows, Cols: cols,
				Y: y.ref(), DX: dx.ref(), DY: g.ref()}))
			addGrad(x, dx)
		}, x)
	}
	return y
}

// Softmax returns exp(x) normalised to sum 1 over the last axis. Shapes:
// [..., C] -> [..., C]. It panics with *Error for a scalar or a non-float
// dtype.
func (t *Tensor) Softmax() *Tensor { return t.softmax("softmax", false) }

// LogSoftmax returns the logarithm of Softmax, computed stably as
// x - logsumexp(x) over the last axis. Shapes: [..., C] -> [..., C]. It
// panics with *Error for a scalar or a non-float dtype.
func (t *Tensor) LogSoftmax() *Tensor { return t.softmax("log-softmax", true) }

// CrossEntropy returns the loss of each row of logits against its target
// class, logsumexp(logits) - logits[target], and their mean over the targets
// that count. A target outside [0, V) (conventionally -100) is ignored: its
// loss is 0 and it does not count. The mean is 0 when no target counts; the
// count is read on the host from targets. Gradients flow to logits through
// both outputs. Shapes: logits [..., V] (f32 or f64), targets [...] (i32) ->
// perToken [...], mean []. It panics with *Error when targets is not i32 or
// its shape is not the leading shape of logits.
func CrossEntropy(logits, targets *Tensor) (perToken, mean *Tensor) {
	const op = "cross-entropy"
	floatOperands(op, logits)
	indexOperand(op, "targets", logits, targets)
	rows, cols := rowsCols(op, logits)
	lead := logits.Shape()[:logits.rank-1]
	if !equalShape(targets.Shape(), lead) {
		fail(op, "targets of shape %v for logits of shape %v (want %v)", targets.Shape(), logits.Shape(), lead)
	}
	x := logits.Contiguous()
	tg := targets.Contiguous()
	be := x.Backend()
	loss := alloc(be, x.dtype, lead)
	lse := alloc(be, x.dtype, []int{rows})
	check(op, be.CrossEntropy(&CrossEntropyArgs{Rows: rows, Cols: cols,
		Logits: x.ref(), Targets: tg.ref(), Loss: loss.ref(), LSE: lse.ref()}))
	if needGrad(x) {
		record(loss, op, func(g *Tensor) {
			dx := alloc(be, x.dtype, x.Shape())
			check(op, be.CrossEntropyGrad(&CrossEntropyArgs{Rows: rows, Cols: cols,
				Logits: x.ref(), Targets: tg.ref(), LSE: lse.ref(), DLogits: dx.ref(), DLoss: g.ref()}))
			addGrad(x, dx)
			lse.Release()
		}, x)
	} else {
		lse.Release()
	}
	count := 0
	for _, t := range tg.Int32s() {
		if t >= 0 && int(t) < cols {
			count++
		}
	}
	scale := 0.0
	if count > 0 {
		scale = 1 / float64(count)
	}
	return loss, loss.Sum().Scale(scale)
}

// norm runs RMSNorm (b nil, layer false) or LayerNorm over the last axis.
func (t *Tensor) norm(op string, layer bool, w, b *Tensor, eps float64) *Tensor {
	if w == nil {
		fail(op, "nil weight")
	}
	ops := []*Tensor{t, w}
	if b != nil {
		ops = append(ops, b)
	}
	floatOperands(op, ops...)
	rows, cols := rowsCols(op, t)
	for _, p := range ops[1:] {
		if p.rank != 1 || p.dims[0] != cols {
			fail(op, "weight or bias of shape %v for input of shape %v (want [%d])", p.Shape(), t.Shape(), cols)
		}
	}
	if !(eps >= 0) {
		fail(op, "eps %g is negative or NaN", eps)
	}
	x, wc := t.Contiguous(), w.Contiguous()
	var bc *Tensor
	var bref Ref
	if b != nil {
		bc = b.Contiguous()
		bref = bc.ref()
	}
	be := x.Backend()
	y := alloc(be, x.dtype, x.Shape())
	rstd := alloc(be, x.dtype, []int{rows})
	var mean *Tensor
	var mref Ref
	if layer {
		mean = alloc(be, x.dtype, []int{rows})
		mref = mean.ref()
	}
	check(op, be.Norm(&NormArgs{Layer: layer, Rows: rows, Cols: cols, Eps: eps,
		X: x.ref(), W: wc.ref(), B: bref, Y: y.ref(), Mean: mref, RStd: rstd.ref()}))
	if !needGrad(x, wc, bc) {
		rstd.Release()
		if mean != nil {
			mean.Release()
		}
		return y
	}
	inputs := []*Tensor{x, wc}
	if bc != nil {
		inputs = append(inputs, bc)
	}
	record(y, op, func(g *Tensor) {
		a := &NormArgs{Layer: layer, Rows: rows, Cols: cols, Eps: eps,
			X: x.ref(), W: wc.ref(), DY: g.ref(), RStd: rstd.ref()}
		if mean != nil {
			a.Mean = mean.ref()
		}
		dx := alloc(be, x.dtype, x.Shape())
		a.DX = dx.ref()
		var dw, db *Tensor
		if wc.requiresGrad {
			dw = alloc(be, x.dtype, []int{cols})
			a.DW = dw.ref()
		}
		if bc != nil && bc.requiresGrad {
			db = alloc(be, x.dtype, []int{cols})
			a.DB = db.ref()
		}
		check(op, be.NormGrad(a))
		addGrad(x, dx)
		if dw != nil {
			addGrad(wc, dw)
		}
		if db != nil {
			addGrad(bc, db)
		}
		rstd.Release()
		if mean != nil {
			mean.Release()
		}
	}, inputs...)
	return y
}

// RMSNorm returns x / sqrt(mean(x²) + eps) * w over the last axis, with the
// statistics in float64. Shapes: x [..., C], w [C] -> [..., C]. It panics
// with *Error when w is nil or not [C], dtypes or backends differ, or eps is
// negative.
func (t *Tensor) RMSNorm(w *Tensor, eps float64) *Tensor {
	return t.norm("rmsnorm", false, w, nil, eps)
}

// LayerNorm returns (x - mean(x)) / sqrt(var(x) + eps) * w + b over the last
// axis, with the biased variance as PyTorch computes it; b may be nil for no
// bias. Shapes: x [..., C], w [C], b [C] -> [..., C]. It panics with *Error
// when w is nil, w or b is not [C], dtypes or backends differ, or eps is
// negative.
func (t *Tensor) LayerNorm(w, b *Tensor, eps float64) *Tensor {
	return t.norm("layernorm", true, w, b, eps)
}

// RoPE applies rotary position embedding to x, whose last two axes are heads
// and head features: row r (one per position of the leading axes) turns
// feature pair i of every head by the angle pos[r]*invFreq[i]. The first
// rotDim = 2*len(invFreq) features rotate and the rest pass through. With
// halfSplit false the pairs are adjacent features (2i, 2i+1), as in
// llama.cpp and Meta's Llama; with halfSplit true they are (i, i+rotDim/2),
// as in Hugging Face transformers. The gradient flows to x only; invFreq is
// a constant. Shapes: x [..., H, D], pos (i32) with one entry per row
// (product of x's leading axes), invFreq [rotDim/2] with rotDim <= D ->
// [..., H, D]. It panics with *Error when pos is not i32 of that length,
// invFreq is not 1-D with x's dtype, or rotDim exceeds D.
func (t *Tensor) RoPE(pos, invFreq *Tensor, halfSplit bool) *Tensor {
	const op = "rope"
	floatOperands(op, t, invFreq)
	indexOperand(op, "positions", t, pos)
	if t.rank < 2 {
		fail(op, "input of shape %v needs [..., heads, head dim]", t.Shape())
	}
	heads, hd := t.dims[t.rank-2], t.dims[t.rank-1]
	rows := 1
	for i := 0; i < t.rank-2; i++ {
		rows *= t.dims[i]
	}
	if pos.Len() != rows {
		fail(op, "%d positions for input of shape %v (want %d)", pos.Len(), t.Shape(), rows)
	}
	if invFreq.rank != 1 || 2*invFreq.dims[0] > hd {
		fail(op, "inverse frequencies of shape %v for head dim %d (want [n] with 2n <= %d)", invFreq.Shape(), hd, hd)
	}
	x, p, f := t.Contiguous(), pos.Contiguous(), invFreq.Contiguous()
	be := x.Backend()
	args := RoPEArgs{Rows: rows, Heads: heads, HeadDim: hd, RotDim: 2 * f.dims[0], HalfSplit: halfSplit,
		Pos: p.ref(), InvFreq: f.ref()}
	y := alloc(be, x.dtype, x.Shape())
	fwd := args
	fwd.X, fwd.Y = x.ref(), y.ref()
	check(op, be.RoPE(&fwd))
	if needGrad(x) {
		record(y, op, func(g *Tensor) {
			dx := alloc(be, x.dtype, x.Shape())
			back := args
			back.Inverse = true
			back.X, back.Y = g.ref(), dx.ref()
			check(op, be.RoPE(&back))
			addGrad(x, dx)
		}, x)
	}
	return y
}

// RoPEFreqs returns the inverse frequencies for RoPE on backend be with
// dtype dt: invFreq[i] = theta^(-2i/rotDim) for i < rotDim/2. Shapes: ->
// [rotDim/2]. It panics with *Error when rotDim is not positive and even,
// theta is not positive, or dt is not f32 or f64.
func RoPEFreqs(be Backend, dt DType, rotDim int, theta float64) *Tensor {
	if rotDim <= 0 || rotDim%2 != 0 {
		fail("rope-freqs", "rotary dimension %d is not positive and even", rotDim)
	}
	if !(theta > 0) {
		fail("rope-freqs", "theta %g is not positive", theta)
	}
	if !dt.IsCompute() {
		fail("rope-freqs", "dtype %s is not a compute type (f32 or f64)", dt)
	}
	f := make([]float64, rotDim/2)
	for i := range f {
		f[i] = math.Pow(theta, -float64(2*i)/float64(rotDim))
	}
	return From(be, dt, f, len(f))
}

// Embedding returns the rows of table selected by ids; the backward adds
// each row's gradient into table's gradient at its id (in place, summing
// over repeated ids, so a tied embedding's two gradients share one buffer). Shapes: table [V, C], ids [...] (i32) -> [..., C]. It
// panics with *Error when table is not 2-D and f32 or f64, ids is not i32,
// or an id lies outside [0, V).
func Embedding(table, ids *Tensor) *Tensor {
	const op = "embedding"
	floatOperands(op, table)
	indexOperand(op, "ids", table, ids)
	if table.rank != 2 {
		fail(op, "table of shape %v is not [V, C]", table.Shape())
	}
	if ids.rank >= MaxRank {
		fail(op, "ids of rank %d leave no room for the feature axis", ids.rank)
	}
	vocab, cols := table.dims[0], table.dims[1]
	tb, id := table.Contiguous(), ids.Contiguous()
	be := tb.Backend()
	shape := append(append([]int(nil), id.Shape()...), cols)
	out := alloc(be, tb.dtype, shape)
	args := GatherArgs{Rows: id.Len(), Cols: cols, TableRows: vocab, Ids: id.ref()}
	fwd := args
	fwd.Table, fwd.Out = tb.ref(), out.ref()
	if err := be.Gather(&fwd); err != nil {
		out.Release()
		check(op, err)
	}
	if needGrad(tb) {
		record(out, op, func(g *Tensor) {
			back := args
			back.DTable, back.DOut = gradTarget(tb).ref(), g.ref()
			check(op, be.ScatterAdd(&back))
		}, tb)
	}
	return out
}

// SwiGLU returns silu(gate) * up elementwise, the gated activation of
// Llama-style MLPs. Shapes: gate [...], up [...] (equal) -> [...]. It panics
// with *Error when the shapes, dtypes or backends differ or the dtype is not
// f32 or f64.
func SwiGLU(gate, up *Tensor) *Tensor {
	const op = "swiglu"
	floatOperands(op, gate, up)
	if !equalShape(gate.Shape(), up.Shape()) {
		fail(op, "gate of shape %v and up of shape %v differ", gate.Shape(), up.Shape())
	}
	g, u := gate.Contiguous(), up.Contiguous()
	be := g.Backend()
	n := g.Len()
	out := alloc(be, g.dtype, g.Shape())
	check(op, be.SwiGLU(&SwiGLUArgs{N: n, Gate: g.ref(), Up: u.ref(), Out: out.ref()}))
	if needGrad(g, u) {
		record(out, op, func(d *Tensor) {
			dg := alloc(be, g.dtype, g.Shape())
			du := alloc(be, u.dtype, u.Shape())
			check(op, be.SwiGLUGrad(&SwiGLUArgs{N: n, Gate: g.ref(), Up: u.ref(),
				DGate: dg.ref(), DUp: du.ref(), DOut: d.ref()}))
			addGrad(g, dg)
			addGrad(u, du)
		}, g, u)
	}
	return out
}

// Dropout zeroes each element with probability p and scales the survivors
// by 1/(1-p); it returns t itself when p is 0. The keep mask is a pure
// function of seed and the element's index, so the same seed gives the
// same mask on any thread count and the backward pass reapplies it to the
// gradient without storing it; pass a new seed each step. Shapes: [...] ->
// [...]. It panics with *Error when p is outside [0, 1] or the dtype is not
// f32 or f64.
func (t *Tensor) Dropout(p float64, seed uint64) *Tensor {
	const op = "dropout"
	if !(p >= 0 && p <= 1) {
		fail(op, "probability %g outside [0, 1]", p)
	}
	if p == 0 {
		return t
	}
	floatOperands(op, t)
	x := t.Contiguous()
	be := x.Backend()
	n := x.Len()
	y := alloc(be, x.dtype, x.Shape())
	check(op, be.Dropout(&DropoutArgs{N: n, P: p, Seed: seed, X: x.ref(), Y: y.ref()}))
	if needGrad(x) {
		record(y, op, func(g *Tensor) {
			dx := alloc(be, x.dtype, x.Shape())
			check(op, be.Dropout(&DropoutArgs{N: n, P: p, Seed: seed, X: g.ref(), Y: dx.ref()}))
			addGrad(x, dx)
		}, x)
	}
	return y
}
