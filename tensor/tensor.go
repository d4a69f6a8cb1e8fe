package tensor

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// MaxRank is the largest number of axes a tensor may have.
const MaxRank = 8

// Tensor is an n-dimensional array on a backend, with an optional gradient.
// Several tensors may view one storage with different shapes, strides and
// offsets; the storage returns to its backend when the last view is
// released. Tensors are not safe for concurrent mutation.
type Tensor struct {
	dims, strides [MaxRank]int
	rank          int
	dtype         DType
	off           int
	buf           *buffer

	requiresGrad bool
	retain       bool
	grad         *Tensor
	node         *node
}

// buffer counts the tensors that view one storage.
type buffer struct {
	s    Storage
	refs int32
}

// Error is the panic value of an op given invalid operands (a programmer
// error) or failing in its backend; Catch turns it back into an error.
type Error struct {
	Op  string
	Err error
}

// Error returns "tensor: OP: cause".
func (e *Error) Error() string { return "tensor: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause, so errors.Is(err, ErrUnsupported) works.
func (e *Error) Unwrap() error { return e.Err }

func fail(op, format string, args ...any) {
	panic(&Error{Op: op, Err: fmt.Errorf(format, args...)})
}

func check(op string, err error) {
	if err != nil {
		panic(&Error{Op: op, Err: err})
	}
}

// Catch runs f and returns the *Error it panicked with, if any, so callers
// that prefer errors to panics (a training loop, a server) can recover from
// a failed op; other panics pass through.
func Catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(*Error); ok {
				err = e
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// alloc returns a new contiguous tensor with undefined contents.
func alloc(be Backend, dt DType, shape []int) *Tensor {
	// One allocation holds the header and its reference count.
	tb := &struct {
		t Tensor
		b buffer
	}{t: Tensor{dtype: dt}}
	t := &tb.t
	t.setShape(shape)
	s, err := be.Alloc(dt, t.Len())
	check("alloc", err)
	tb.b = buffer{s: s, refs: 1}
	t.buf = &tb.b
	return t
}

func (t *Tensor) setShape(shape []int) {
	if len(shape) > MaxRank {
		fail("shape", "rank %d exceeds MaxRank %d", len(shape), MaxRank)
	}
	t.rank = len(shape)
	stride := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] < 0 {
			fail("shape", "negative dimension in %v", shape)
		}
		t.dims[i] = shape[i]
		t.strides[i] = stride
		stride *= shape[i]
	}
}

// Empty returns a contiguous tensor of the given shape on be with undefined
// contents; it panics with *Error when memory is exhausted.
func Empty(be Backend, dt DType, shape ...int) *Tensor { return alloc(be, dt, shape) }

// Full returns a tensor of the given shape on be filled with v.
func Full(be Backend, dt DType, v float64, shape ...int) *Tensor {
	t := alloc(be, dt, shape)
	check("full", be.Fill(t.ref(), t.Len(), v))
	return t
}

// Zeros returns a float32 tensor of zeros on the default backend.
func Zeros(shape ...int) *Tensor { return Full(Default(), Float32, 0, shape...) }

// Ones returns a float32 tensor of ones on the default backend.
func Ones(shape ...int) *Tensor { return Full(Default(), Float32, 1, shape...) }

// From returns a tensor on be holding a copy of data ([]float32, []float64,
// []int32, or []uint16 bits with dt BFloat16 or Float16) with the given
// shape; with no shape it is 1-D. It panics with *Error when the length does
// not match the shape.
func From(be Backend, dt DType, data any, shape ...int) *Tensor {
	n := hostLen(data)
	if len(shape) == 0 {
		shape = []int{n}
	}
	t := alloc(be, dt, shape)
	if t.Len() != n {
		fail("from", "%d values for shape %v", n, shape)
	}
	if hostDType(data, dt) != dt {
		// Convert on the host side through float64 for simplicity; this
		// path only runs when loading data, never per step.
		tmp := alloc(be, hostDType(data, dt), shape)
		check("from", be.Write(tmp.ref(), data))
		copyInto(t, tmp, false)
		tmp.Release()
		return t
	}
	check("from", be.Write(t.ref(), data))
	return t
}

// FromFloat32 returns a float32 tensor on the default backend holding a copy
// of data with the given shape.
func FromFloat32(data []float32, shape ...int) *Tensor {
	return From(Default(), Float32, data, shape...)
}

// FromFloat64 returns a float64 tensor on the default backend holding a copy
// of data with the given shape.
func FromFloat64(data []float64, shape ...int) *Tensor {
	return From(Default(), Float64, data, shape...)
}

// FromInt32 returns an int32 tensor (ids, targets, positions) on the default
// backend holding a copy of data with the given shape.
func FromInt32(data []int32, shape ...int) *Tensor {
	return From(Default(), Int32, data, shape...)
}

// Randn returns a tensor of normal samples with the given standard
// deviation, drawn from rng in index order so a seed fixes the values.
func Randn(be Backend, dt DType, rng *rand.Rand, std float64, shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * std
	}
	return From(be, dt, v, shape...)
}

// Uniform returns a tensor of samples uniform in [lo, hi) drawn from rng in
// index order.
func Uniform(be Backend, dt DType, rng *rand.Rand, lo, hi float64, shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float64()
	}
	return From(be, dt, v, shape...)
}

// NewRNG returns a deterministic random source for the given seed.
func NewRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func hostLen(data any) int {
	switch d := data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int32:
		return len(d)
	case []uint16:
		return len(d)
	}
	fail("from", "unsupported host slice %T", data)
	return 0
}

func hostDType(data any, want DType) DType {
	switch data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []int32:
		return Int32
	}
	if want == BFloat16 || want == Float16 {
		return want
	}
	fail("from", "[]uint16 data needs dtype bf16 or f16, not %s", want)
	return 0
}

// Backend returns the backend that owns the tensor's storage.
func (t *Tensor) Backend() Backend { return t.storage().Backend() }

func (t *Tensor) storage() Storage {
	if t.buf == nil || t.buf.s == nil {
		fail("use", "tensor %v was released (intermediates are freed by Backward; call Retain before it to keep one)", t.Shape())
	}
	return t.buf.s
}

func (t *Tensor) ref() Ref { return Ref{S: t.storage(), Off: t.off} }

// DType returns the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Rank returns the number of axes.
func (t *Tensor) Rank() int { return t.rank }

// Shape returns the dimensions; the slice aliases the tensor and must not be
// modified.
func (t *Tensor) Shape() []int { return t.dims[:t.rank:t.rank] }

// Strides returns the element strides of each axis; the slice aliases the
// tensor and must not be modified.
func (t *Tensor) Strides() []int { return t.strides[:t.rank:t.rank] }

// Dim returns the size of axis i; a negative i counts from the end.
func (t *Tensor) Dim(i int) int { return t.dims[t.axis(i)] }

// Len returns the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for i := 0; i < t.rank; i++ {
		n *= t.dims[i]
	}
	return n
}

func (t *Tensor) axis(i int) int {
	if i < 0 {
		i += t.rank
	}
	if i < 0 || i >= t.rank {
		fail("axis", "axis out of range for shape %v", t.Shape())
	}
	return i
}

// IsContiguous reports whether the elements are dense in row-major order.
func (t *Tensor) IsContiguous() bool {
	stride := 1
	for i := t.rank - 1; i >= 0; i-- {
		if t.dims[i] != 1 && t.strides[i] != stride {
			return false
		}
		stride *= t.dims[i]
	}
	return true
}

// RequiresGrad reports whether gradients flow to this tensor.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// SetRequiresGrad marks a leaf tensor (a parameter) as one whose gradient
// Backward accumulates into Grad, and returns it.
func (t *Tensor) SetRequiresGrad(on bool) *Tensor {
	if t.node != nil {
		fail("requires-grad", "only leaf tensors can change requires-grad")
	}
	t.requiresGrad = on
	return t
}

// Grad returns the accumulated gradient, or nil before any Backward.
func (t *Tensor) Grad() *Tensor { return t.grad }

// ZeroGrad releases the accumulated gradient, so the next Backward starts
// from zero; the storage returns to the pool for reuse.
func (t *Tensor) ZeroGrad() {
	if t.grad != nil {
		t.grad.Release()
		t.grad = nil
	}
}

// Retain keeps an intermediate tensor and its gradient alive through
// Backward, which otherwise frees them; it returns t.
func (t *Tensor) Retain() *Tensor {
	t.retain = true
	return t
}

// Release drops this tensor's hold on its storage, returning the storage to
// the backend once no view holds it; using t afterwards panics. Releasing
// twice is harmless.
func (t *Tensor) Release() {
	if t.buf == nil {
		return
	}
	b := t.buf
	t.buf = nil
	b.refs--
	if b.refs == 0 && b.s != nil {
		b.s.Backend().Free(b.s)
		b.s = nil
	}
}

// view returns a new tensor struct sharing t's storage.
func (t *Tensor) view() *Tensor {
	t.storage()
	v := &Tensor{dims: t.dims, strides: t.strides, rank: t.rank, dtype: t.dtype, off: t.off, buf: t.buf}
	t.buf.refs++
	return v
}

// Detach returns a view of t that shares its storage but takes no part in
// gradients.
func (t *Tensor) Detach() *Tensor { return t.view() }

// Float32s returns the elements in row-major order as float32, converting
// from any dtype; it waits for queued work.
func (t *Tensor) Float32s() []float32 { return readHost[float32](t, Float32) }

// Float64s returns the elements in row-major order as float64, converting
// from any dtype; it waits for queued work.
func (t *Tensor) Float64s() []float64 { return readHost[float64](t, Float64) }

// Int32s returns the elements in row-major order as int32 (truncating
// floats); it waits for queued work.
func (t *Tensor) Int32s() []int32 { return readHost[int32](t, Int32) }

// readHost reads t into a new host slice of element type T, which must be
// dt's Go type.
func readHost[T float32 | float64 | int32](t *Tensor, dt DType) []T {
	c := t.hostCopy(dt)
	out := make([]T, c.Len())
	check("read", c.Backend().Read(out, c.ref()))
	if c != t {
		c.Release()
	}
	return out
}

// hostCopy returns t itself when it is contiguous with dtype dt, else a
// contiguous converted copy outside the graph.
func (t *Tensor) hostCopy(dt DType) *Tensor {
	if t.dtype == dt && t.IsContiguous() {
		return t
	}
	c := alloc(t.Backend(), dt, t.Shape())
	copyInto(c, t, false)
	return c
}

// Item returns the single element of a one-element tensor as float64; it
// panics with *Error for larger tensors.
func (t *Tensor) Item() float64 {
	if t.Len() != 1 {
		fail("item", "tensor of shape %v has %d elements, not 1", t.Shape(), t.Len())
	}
	return t.Float64s()[0]
}

// String formats the tensor for printing and notebooks: its dtype, shape,
// backend and up to a few values per axis.
func (t *Tensor) String() string {
	if t.buf == nil || t.buf.s == nil {
		return fmt.Sprintf("Tensor(%s %v, released)", t.dtype, t.Shape())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor(%s %v on %s", t.dtype, t.Shape(), t.Backend().Name())
	if t.requiresGrad {
		b.WriteString(", grad")
	}
	b.WriteString(")\n")
	vals := t.Float64s()
	var rec func(axis, base int)
	rec = func(axis, base int) {
		if axis == t.rank {
			fmt.Fprintf(&b, "%.5g", vals[base])
			return
		}
		n := t.dims[axis]
		inner := 1
		for i := axis + 1; i < t.rank; i++ {
			inner *= t.dims[i]
		}
		b.WriteByte('[')
		for i := 0; i < n; i++ {
			if n > 8 && i == 3 {
				b.WriteString(" ...")
				i = n - 3
			}
			if i > 0 {
				if axis == t.rank-1 {
					b.WriteByte(' ')
				} else {
					b.WriteString("\n" + strings.Repeat(" ", axis+1))
				}
			}
			rec(axis+1, base+i*inner)
		}
		b.WriteByte(']')
	}
	rec(0, 0)
	return b.String()
}
