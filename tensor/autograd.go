package tensor

import (
	"sync"
	"sync/atomic"
)

// node records how a tensor was computed, so Backward can send its gradient
// to the inputs.
type node struct {
	op       string
	out      *Tensor
	inputs   []*Tensor
	backward func(g *Tensor)
	mark     uint32
	// strided marks view ops whose backward accepts a non-contiguous
	// gradient, so a transposed gradient passes through without a copy.
	strided bool
}

var (
	noGradDepth atomic.Int32
	markGen     atomic.Uint32
)

// NoGrad runs f with gradient recording off, for sampling, evaluation and
// reference models: ops then keep no graph and save nothing. The mode is
// process-wide, so do not train in another goroutine meanwhile.
func NoGrad(f func()) {
	noGradDepth.Add(1)
	defer noGradDepth.Add(-1)
	f()
}

// GradEnabled reports whether ops currently record gradients.
func GradEnabled() bool { return noGradDepth.Load() == 0 }

// needGrad reports whether an op over these inputs must be recorded.
func needGrad(ins ...*Tensor) bool {
	if noGradDepth.Load() != 0 {
		return false
	}
	for _, t := range ins {
		if t != nil && t.requiresGrad {
			return true
		}
	}
	return false
}

// record attaches a backward function to out. The function receives the
// contiguous gradient of out and must pass gradients to the inputs with
// addGrad.
func record(out *Tensor, op string, backward func(g *Tensor), inputs ...*Tensor) {
	out.requiresGrad = true
	out.node = &node{op: op, out: out, inputs: inputs, backward: backward}
}

// addGrad adds g, a tensor of t's shape, to t's gradient and consumes g's
// reference. The first gradient is adopted without a copy; a shared
// gradient buffer is never written in place. Gradients are kept contiguous
// except on the outputs of view ops that accept strided ones.
func addGrad(t *Tensor, g *Tensor) {
	if !t.requiresGrad {
		g.Release()
		return
	}
	if t.grad == nil {
		if !g.IsContiguous() && (t.node == nil || !t.node.strided) {
			c := alloc(g.Backend(), g.dtype, g.Shape())
			copyInto(c, g, false)
			g.Release()
			g = c
		}
		t.grad = g
		return
	}
	acc := t.grad
	if acc.buf.refs == 1 && acc.IsContiguous() {
		binaryInto(acc, Add, acc, g)
	} else {
		sum := alloc(acc.Backend(), acc.dtype, acc.Shape())
		binaryInto(sum, Add, acc, g)
		acc.Release()
		t.grad = sum
	}
	g.Release()
}

// gradTarget returns t's gradient as a contiguous buffer that a backward
// kernel may add into in place: the existing one when nothing else shares
// it, else a private copy, or zeros when t has none yet. Kernels that
// accumulate (embedding scatter-add) use it to skip a zeroed temporary and
// the addition that would follow.
func gradTarget(t *Tensor) *Tensor {
	g := t.grad
	switch {
	case g == nil:
		t.grad = Full(t.Backend(), t.dtype, 0, t.Shape()...)
	case g.buf.refs > 1 || !g.IsContiguous():
		c := alloc(g.Backend(), g.dtype, g.Shape())
		copyInto(c, g, false)
		g.Release()
		t.grad = c
	}
	return t.grad
}

// share returns a new reference to g for handing the same gradient to an
// input (as the gradient of an addition does).
func (g *Tensor) share() *Tensor { return g.view() }

var topoPool = sync.Pool{New: func() any { s := make([]*node, 0, 256); return &s }}

// Backward computes the gradient of root (a one-element tensor, such as a
// loss) with respect to every tensor that requires grad and led to it,
// adding into the Grad of leaves. It then frees the graph: intermediate
// tensors and their gradients are released unless retained, and root keeps
// its value. It panics with *Error when root does not require grad or has
// more than one element.
func (root *Tensor) Backward() {
	if root.Len() != 1 {
		fail("backward", "root has shape %v; Backward needs one element (use BackwardWith for others)", root.Shape())
	}
	root.BackwardWith(Full(root.Backend(), root.dtype, 1, root.Shape()...))
}

// BackwardWith is Backward seeded with the gradient seed (root's shape),
// whose reference it consumes.
func (root *Tensor) BackwardWith(seed *Tensor) {
	if !root.requiresGrad {
		fail("backward", "root does not require grad: no parameter led to it, or it was computed under NoGrad")
	}
	if root.node == nil {
		addGrad(root, seed)
		return
	}
	order := topoPool.Get().(*[]*node)
	nodes := topoSort(root.node, (*order)[:0])
	// The root keeps its value; its seed gradient goes back to the pool
	// unless the caller retained the root.
	kept := root.retain
	root.retain = true
	defer func() {
		if !kept {
			root.retain = false
			root.ZeroGrad()
		}
	}()
	addGrad(root, seed)
	noGradDepth.Add(1)
	defer noGradDepth.Add(-1)
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		out := n.out
		if g := out.grad; g != nil && n.backward != nil {
			if !g.IsContiguous() && !n.strided {
				out.grad = alloc(g.Backend(), g.dtype, g.Shape())
				copyInto(out.grad, g, false)
				g.Release()
				g = out.grad
			}
			n.backward(g)
		}
		n.backward = nil
		n.inputs = nil
		if !out.retain {
			out.ZeroGrad()
			out.Release()
		}
		out.node = nil
		nodes[i] = nil
	}
	*order = nodes[:0]
	topoPool.Put(order)
}

// topoSort appends the nodes reachable from n to order, producers before
// consumers, using an explicit stack so deep graphs cannot overflow.
func topoSort(n *node, order []*node) []*node {
	gen := markGen.Add(1)
	type frame struct {
		n *node
		i int
	}
	stack := []frame{{n, 0}}
	n.mark = gen
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.i < len(top.n.inputs) {
			in := top.n.inputs[top.i]
			top.i++
			if in != nil && in.node != nil && in.node.mark != gen {
				in.node.mark = gen
				stack = append(stack, frame{in.node, 0})
			}
			continue
		}
		order = append(order, top.n)
		stack = stack[:len(stack)-1]
	}
	return order
}
