package tensor

// broadcastShapes returns the NumPy-style broadcast of two shapes.
func broadcastShapes(op string, a, b []int) []int {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			fail(op, "shapes %v and %v do not broadcast", a, b)
		}
	}
	return out
}

// broadcastStrides returns t's strides aligned to shape, 0 on broadcast axes.
func broadcastStrides(t *Tensor, shape []int) []int {
	s := make([]int, len(shape))
	for i := range shape {
		j := t.rank - len(shape) + i
		if j >= 0 && t.dims[j] != 1 {
			s[i] = t.strides[j]
		}
	}
	return s
}

func sameOperands(op string, ts ...*Tensor) {
	for _, t := range ts[1:] {
		if t.dtype != ts[0].dtype {
			fail(op, "dtypes %s and %s differ", ts[0].dtype, t.dtype)
		}
		if t.Backend() != ts[0].Backend() {
			fail(op, "operands on backends %s and %s; move one with To", ts[0].Backend().Name(), t.Backend().Name())
		}
	}
}

// binaryInto computes out = a op b with broadcasting into an existing
// contiguous out, recording nothing.
func binaryInto(out *Tensor, op BinaryOp, a, b *Tensor) {
	shape := out.Shape()
	check("binary", out.Backend().Binary(&BinaryArgs{
		Op: op, Shape: shape, Out: out.ref(), A: a.ref(), B: b.ref(),
		AStrides: broadcastStrides(a, shape), BStrides: broadcastStrides(b, shape),
	}))
}

// binaryRaw computes a op b with broadcasting into a new tensor.
func binaryRaw(op BinaryOp, a, b *Tensor) *Tensor {
	out := alloc(a.Backend(), a.dtype, broadcastShapes("binary", a.Shape(), b.Shape()))
	binaryInto(out, op, a, b)
	return out
}

func binary(name string, op BinaryOp, a, b *Tensor) *Tensor {
	sameOperands(name, a, b)
	out := binaryRaw(op, a, b)
	if !needGrad(a, b) {
		return out
	}
	record(out, name, func(g *Tensor) {
		if a.requiresGrad {
			var da *Tensor
			switch op {
			case Add, Sub:
				da = g.share()
			case Mul:
				da = binaryRaw(Mul, g, b)
			case Div:
				da = binaryRaw(Div, g, b)
			}
			addGrad(a, sumTo(da, a.Shape()))
		}
		if b.requiresGrad {
			var db *Tensor
			switch op {
			case Add:
				db = g.share()
			case Sub:
				db = unaryRaw(Neg, 0, g)
			case Mul:
				db = binaryRaw(Mul, g, a)
			case Div: // d(a/b)/db = -out/b
				t := binaryRaw(Mul, g, out)
				db = binaryRaw(Div, t, b)
				t.Release()
				unaryInPlace(Neg, db)
			}
			addGrad(b, sumTo(db, b.Shape()))
		}
	}, a, b)
	return out
}

// Add returns a + b with broadcasting. Shapes: [...a], [...b] ->
// broadcast([...a], [...b]).
func (a *Tensor) Add(b *Tensor) *Tensor { return binary("add", Add, a, b) }

// Sub returns a - b with broadcasting, shaped as Add.
func (a *Tensor) Sub(b *Tensor) *Tensor { return binary("sub", Sub, a, b) }

// Mul returns a * b elementwise with broadcasting, shaped as Add.
func (a *Tensor) Mul(b *Tensor) *Tensor { return binary("mul", Mul, a, b) }

// Div returns a / b elementwise with broadcasting, shaped as Add.
func (a *Tensor) Div(b *Tensor) *Tensor { return binary("div", Div, a, b) }

// sumTo reduces a contiguous gradient g over broadcast axes to shape,
// consuming g's reference.
func sumTo(g *Tensor, shape []int) *Tensor {
	if equalShape(g.Shape(), shape) {
		return g
	}
	lead := g.rank - len(shape)
	cur := g
	// Reduce from the last axis down so earlier axis numbers stay valid.
	for ax := g.rank - 1; ax >= 0; ax-- {
		if ax < lead || (shape[ax-lead] == 1 && cur.dims[ax] != 1) {
			next := reduceRaw(ReduceSum, cur, ax, true)
			cur.Release()
			cur = next
		}
	}
	return cur.reshapeGrad(shape)
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func outerInner(t *Tensor, ax int) (outer, n, inner int) {
	outer, inner = 1, 1
	for i := 0; i < ax; i++ {
		outer *= t.dims[i]
	}
	for i := ax + 1; i < t.rank; i++ {
		inner *= t.dims[i]
	}
	return outer, t.dims[ax], inner
}

// reduceRaw reduces axis ax of a contiguous t; keep leaves it as size 1.
func reduceRaw(op ReduceOp, t *Tensor, ax int, keep bool) *Tensor {
	outer, n, inner := outerInner(t, ax)
	shape := append([]int(nil), t.Shape()...)
	if keep {
		shape[ax] = 1
	} else {
		shape = append(shape[:ax], shape[ax+1:]...)
	}
	out := alloc(t.Backend(), t.dtype, shape)
	check("reduce", t.Backend().Reduce(&ReduceArgs{Op: op, Outer: outer, N: n, Inner: inner, X: t.ref(), Y: out.ref()}))
	return out
}

func (t *Tensor) reduce(name string, op ReduceOp, axes []int) *Tensor {
	if len(axes) == 0 {
		axes = make([]int, t.rank)
		for i := range axes {
			axes[i] = i
		}
	}
	var mark [MaxRank]bool
	for _, a := range axes {
		mark[t.axis(a)] = true
	}
	cur := t
	for ax := t.rank - 1; ax >= 0; ax-- {
		if mark[ax] {
			cur = cur.reduce1(name, op, ax)
		}
	}
	return cur
}

func (t *Tensor) reduce1(name string, op ReduceOp, ax int) *Tensor {
	x := t.Contiguous()
	out := reduceRaw(op, x, ax, false)
	releaseCopy(x, t)
	if needGrad(x) {
		outer, n, inner := outerInner(x, ax)
		record(out, name, func(g *Tensor) {
			dx := alloc(x.Backend(), x.dtype, x.Shape())
			check(name, x.Backend().ReduceGrad(&ReduceArgs{Op: op, Outer: outer, N: n, Inner: inner,
				X: x.ref(), Y: out.ref(), DX: dx.ref(), DY: g.ref()}))
			addGrad(x, dx)
		}, x)
	}
	return out
}

// Sum adds over the given axes (all when none), removing them. Shapes:
// [d0, d1, ...] -> the shape without the reduced axes ([] for all).
func (t *Tensor) Sum(axes ...int) *Tensor { return t.reduce("sum", ReduceSum, axes) }

// Max takes the maximum over the given axes (all when none), removing them;
// the gradient goes to the first maximal element. Shapes as Sum.
func (t *Tensor) Max(axes ...int) *Tensor { return t.reduce("max", ReduceMax, axes) }

// Mean averages over the given axes (all when none), removing them. Shapes
// as Sum.
func (t *Tensor) Mean(axes ...int) *Tensor {
	n := t.Len()
	s := t.Sum(axes...)
	if s.Len() > 0 {
		n /= s.Len()
	}
	return s.Scale(1 / float64(max(n, 1)))
}

// Unsqueeze inserts an axis of size 1 at position ax (0..rank) as a view.
// Shapes: [...] -> [..., 1, ...].
func (t *Tensor) Unsqueeze(ax int) *Tensor {
	if ax < 0 {
		ax += t.rank + 1
	}
	if ax < 0 || ax > t.rank {
		fail("unsqueeze", "axis %d for rank %d", ax, t.rank)
	}
	shape := append([]int(nil), t.Shape()...)
	shape = append(shape[:ax], append([]int{1}, shape[ax:]...)...)
	return t.Reshape(shape...)
}

// unaryRaw applies f to a contiguous copy-free input into a new tensor.
func unaryRaw(op UnaryOp, alpha float64, x *Tensor) *Tensor {
	y := alloc(x.Backend(), x.dtype, x.Shape())
	check("unary", x.Backend().Unary(&UnaryArgs{Op: op, N: x.Len(), Alpha: alpha, X: x.ref(), Y: y.ref()}))
	return y
}

// unaryInPlace applies f to a contiguous tensor in place, recording nothing.
func unaryInPlace(op UnaryOp, x *Tensor) {
	check("unary", x.Backend().Unary(&UnaryArgs{Op: op, N: x.Len(), X: x.ref(), Y: x.ref()}))
}

func (t *Tensor) unary(name string, op UnaryOp, alpha float64) *Tensor {
	x := t.Contiguous()
	y := unaryRaw(op, alpha, x)
	releaseCopy(x, t)
	if needGrad(x) {
		record(y, name, func(g *Tensor) {
			dx := alloc(x.Backend(), x.dtype, x.Shape())
			check(name, x.Backend().UnaryGrad(&UnaryArgs{Op: op, N: x.Len(), Alpha: alpha,
				X: x.ref(), Y: y.ref(), DX: dx.ref(), DY: g.ref()}))
			addGrad(x, dx)
		}, x)
	}
	return y
}

// Neg returns -t. Shapes: [...] -> [...], as for every unary op.
func (t *Tensor) Neg() *Tensor { return t.unary("neg", Neg, 0) }

// Scale returns alpha * t.
func (t *Tensor) Scale(alpha float64) *Tensor { return t.unary("scale", Scale, alpha) }

// AddScalar returns t + alpha.
func (t *Tensor) AddScalar(alpha float64) *Tensor { return t.unary("add-scalar", AddScalar, alpha) }

// Exp returns e^t.
func (t *Tensor) Exp() *Tensor { return t.unary("exp", Exp, 0) }

// Log returns the natural logarithm of t.
func (t *Tensor) Log() *Tensor { return t.unary("log", Log, 0) }

// Sqrt returns the square root of t.
func (t *Tensor) Sqrt() *Tensor { return t.unary("sqrt", Sqrt, 0) }

// Rsqrt returns 1/sqrt(t).
func (t *Tensor) Rsqrt() *Tensor { return t.unary("rsqrt", Rsqrt, 0) }

// Square returns t².
func (t *Tensor) Square() *Tensor { return t.unary("square", Square, 0) }

// Pow returns t^p.
func (t *Tensor) Pow(p float64) *Tensor { return t.unary("pow", Pow, p) }

// Tanh returns the hyperbolic tangent of t.
func (t *Tensor) Tanh() *Tensor { return t.unary("tanh", Tanh, 0) }

// Sigmoid returns 1/(1+e^-t).
func (t *Tensor) Sigmoid() *Tensor { return t.unary("sigmoid", Sigmoid, 0) }

// ReLU returns max(t, 0).
func (t *Tensor) ReLU() *Tensor { return t.unary("relu", ReLU, 0) }

// SiLU returns t*sigmoid(t).
func (t *Tensor) SiLU() *Tensor { return t.unary("silu", SiLU, 0) }

// GELU returns the tanh approximation of GELU used by GPT-2:
// 0.5*t*(1+tanh(sqrt(2/pi)*(t+0.044715*t³))).
func (t *Tensor) GELU() *Tensor { return t.unary("gelu", GELU, 0) }
