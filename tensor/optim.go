package tensor

// AdamWUpdate applies one fused AdamW step in place to param, using grad
// and the moment buffers m and v (all contiguous, of param's shape and
// dtype); the hyper-parameters come from args, whose operand fields it
// fills. It panics with *Error on mismatched operands or a backend failure.
func AdamWUpdate(param, grad, m, v *Tensor, args *AdamWArgs) {
	for _, t := range []*Tensor{grad, m, v} {
		if !equalShape(t.Shape(), param.Shape()) || !t.IsContiguous() || !param.IsContiguous() {
			fail("adamw", "operand %v does not match parameter %v or is not contiguous", t.Shape(), param.Shape())
		}
	}
	sameOperands("adamw", param, grad, m, v)
	args.N = param.Len()
	args.Param, args.Grad, args.M, args.V = param.ref(), grad.ref(), m.ref(), v.ref()
	check("adamw", param.Backend().AdamW(args))
}

// SumSquares returns the sum of the squares of every element of ts,
// accumulated on the device in float64 where the backend can and read back
// once. It panics with *Error when the tensors are on different backends or
// not contiguous.
func SumSquares(ts ...*Tensor) float64 {
	if len(ts) == 0 {
		return 0
	}
	be := ts[0].Backend()
	acc := Full(be, Float64, 0, 1)
	defer acc.Release()
	for _, t := range ts {
		if t.Backend() != be || !t.IsContiguous() {
			fail("sum-squares", "tensor %v is on another backend or not contiguous", t.Shape())
		}
		check("sum-squares", be.SumSquares(acc.ref(), t.ref(), t.Len()))
	}
	return acc.Float64s()[0]
}
