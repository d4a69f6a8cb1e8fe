package tensor

// mat describes the last two axes of a tensor as a BLAS operand: rows×cols
// stored either row-major (trans false) or column-major (trans true) with
// leading dimension ld, repeated batch times stride apart.
type mat struct {
	ref         Ref
	rows, cols  int
	trans       bool
	ld          int
	batch       int
	batchStride int
}

// asMat describes t as a batch of matrices without copying, or reports false
// when its strides do not allow it.
func asMat(t *Tensor) (mat, bool) {
	r := t.rank
	m := mat{ref: t.ref(), rows: t.dims[r-2], cols: t.dims[r-1], batch: 1}
	rs, cs := t.strides[r-2], t.strides[r-1]
	// BLAS needs a leading dimension of at least the stored row length;
	// anything else (overlapping rows) goes through a copy.
	switch {
	case cs == 1 || m.cols == 1:
		m.ld = max(m.cols, 1)
		if m.rows > 1 {
			if rs < m.cols {
				return m, false
			}
			m.ld = rs
		}
	case rs == 1 || m.rows == 1:
		m.trans = true
		m.ld = max(m.rows, 1)
		if m.cols > 1 {
			if cs < m.rows {
				return m, false
			}
			m.ld = cs
		}
	default:
		return m, false
	}
	// The batch axes must collapse into one stride.
	stride := -1
	for i := r - 3; i >= 0; i-- {
		if t.dims[i] == 1 {
			continue
		}
		if stride == -1 {
			stride = t.strides[i]
		} else if t.strides[i] != stride*m.batch {
			return m, false
		}
		m.batch *= t.dims[i]
	}
	if stride > 0 {
		m.batchStride = stride
	}
	return m, true
}

func matOf(t *Tensor) (*Tensor, mat) {
	if m, ok := asMat(t); ok {
		return t, m
	}
	c := t.Contiguous()
	m, _ := asMat(c)
	return c, m
}

// MatMul returns the matrix product a·b over the last two axes. Shapes:
// [..., M, K] · [..., K, N] -> [..., M, N]; the leading (batch) axes must
// match, or one side may be 2-D and is then shared by every batch item.
// Transposed views (such as w.Transpose(0, 1)) are read in place as
// transposed BLAS operands, so x.MatMul(w.Transpose(0, 1)) is a linear layer
// with w stored [out, in] and costs no copy.
func (a *Tensor) MatMul(b *Tensor) *Tensor {
	sameOperands("matmul", a, b)
	if a.rank < 2 || b.rank < 2 {
		fail("matmul", "operands need rank >= 2, got %v and %v", a.Shape(), b.Shape())
	}
	M, K, N := a.dims[a.rank-2], a.dims[a.rank-1], b.dims[b.rank-1]
	if b.dims[b.rank-2] != K {
		fail("matmul", "inner dimensions differ: %v · %v", a.Shape(), b.Shape())
	}
	var batchShape []int
	switch {
	case a.rank == 2:
		batchShape = b.Shape()[:b.rank-2]
	case b.rank == 2:
		batchShape = a.Shape()[:a.rank-2]
	default:
		if !equalShape(a.Shape()[:a.rank-2], b.Shape()[:b.rank-2]) {
			fail("matmul", "batch axes differ: %v · %v", a.Shape(), b.Shape())
		}
		batchShape = a.Shape()[:a.rank-2]
	}
	shape := append(append([]int(nil), batchShape...), M, N)
	out := alloc(a.Backend(), a.dtype, shape)
	ac, am := matOf(a)
	bc, bm := matOf(b)
	cBatch := 1
	for _, d := range batchShape {
		cBatch *= d
	}
	gemm(out.ref(), cBatch, am, bm, M, N, K)
	if !needGrad(ac, bc) { // the backward of either side reads the other
		releaseCopy(ac, a)
		releaseCopy(bc, b)
	}
	if needGrad(ac, bc) {
		record(out, "matmul", func(g *Tensor) {
			gm, _ := asMat(g)
			// A transposed operand (a transposed view of a weight) gets its
			// gradient computed in its storage layout and handed over as a
			// transposed view, so no transpose copy is ever made.
			if ac.requiresGrad {
				if am.trans { // dAᵀ = B · dCᵀ
					dat := alloc(g.Backend(), g.dtype, swapLast(ac.Shape()))
					gemm(dat.ref(), am.batch, bm, gm.t(), K, M, N)
					addGrad(ac, dat.transposeLast())
				} else { // dA = dC · Bᵀ
					da := alloc(g.Backend(), g.dtype, ac.Shape())
					gemm(da.ref(), am.batch, gm, bm.t(), M, K, N)
					addGrad(ac, da)
				}
			}
			if bc.requiresGrad {
				if bm.trans { // dBᵀ = dCᵀ · A
					dbt := alloc(g.Backend(), g.dtype, swapLast(bc.Shape()))
					gemm(dbt.ref(), bm.batch, gm.t(), am, N, K, M)
					addGrad(bc, dbt.transposeLast())
				} else { // dB = Aᵀ · dC
					db := alloc(g.Backend(), g.dtype, bc.Shape())
					gemm(db.ref(), bm.batch, am.t(), gm, K, N, M)
					addGrad(bc, db)
				}
			}
		}, ac, bc)
	}
	return out
}

// swapLast returns shape with its last two dimensions swapped.
func swapLast(shape []int) []int {
	s := append([]int(nil), shape...)
	s[len(s)-1], s[len(s)-2] = s[len(s)-2], s[len(s)-1]
	return s
}

// transposeLast relabels t as its transpose over the last two axes, in
// place and without a graph: t becomes a strided view of the same storage.
func (t *Tensor) transposeLast() *Tensor {
	r := t.rank
	t.dims[r-1], t.dims[r-2] = t.dims[r-2], t.dims[r-1]
	t.strides[r-1], t.strides[r-2] = t.strides[r-2], t.strides[r-1]
	return t
}

// t returns the transpose of m as an operand.
func (m mat) t() mat {
	m.rows, m.cols = m.cols, m.rows
	m.trans = !m.trans
	return m
}

// gemm writes C = A·B into a contiguous C holding cBatch matrices of
// [M, N]. Operands with batch 1 are shared across the batch. When C is
// shared but the operands are batched (the weight gradient of a linear layer
// applied to a batch), the products are summed over the batch: as one
// product with a longer inner dimension when the layout allows, else by
// accumulation.
func gemm(c Ref, cBatch int, a, b mat, M, N, K int) {
	be := c.S.Backend()
	batch := max(a.batch, b.batch)
	args := GemmArgs{TransA: a.trans, TransB: b.trans, M: M, N: N, K: K, Alpha: 1,
		A: a.ref, B: b.ref, C: c, LDA: a.ld, LDB: b.ld, LDC: N, Batch: 1}
	if a.batch > 1 {
		args.StrideA = a.batchStride
	}
	if b.batch > 1 {
		args.StrideB = b.batchStride
	}
	switch {
	case batch == 1:
	case cBatch == batch:
		args.Batch, args.StrideC = batch, M*N
		if b.batch == 1 && !a.trans && a.batchStride == M*a.ld {
			args.M, args.Batch = M*batch, 1 // [batch*M, K]·[K, N]: one tall product
		}
	case a.batch == batch && b.batch == batch && a.trans && a.batchStride == K*a.ld && !b.trans && b.batchStride == K*b.ld:
		args.K = K * batch // the summed axis runs through the batch contiguously
	default:
		for i := 0; i < batch; i++ {
			one := args
			one.A.Off += i * args.StrideA
			one.B.Off += i * args.StrideB
			if i > 0 {
				one.Beta = 1
			}
			check("matmul", be.Gemm(&one))
		}
		return
	}
	check("matmul", be.Gemm(&args))
}
