package gorgonia

import (
	"errors"
	"fmt"

	"github.com/minnowml/minnow/tensor"
	gt "gorgonia.org/tensor"
)

// ErrUnsupportedDType is returned, wrapped, by ToDense and FromDense when
// an element type has no counterpart on the other side; test for it with
// errors.Is.
var ErrUnsupportedDType = errors.New("unsupported dtype")

// ToDense copies t into a new *gt.Dense of the same shape: Float32, Float64
// and Int32 keep their type, BFloat16 and Float16 widen exactly to Float32,
// and a rank-0 tensor becomes a scalar Dense. A non-contiguous view is
// copied in row-major order. It returns an error for a nil tensor, an error
// wrapping the *tensor.Error raised when t cannot be read (for example
// after Release), and an error wrapping ErrUnsupportedDType for any other
// dtype.
func ToDense(t *tensor.Tensor) (*gt.Dense, error) {
	if t == nil {
		return nil, errors.New("gorgonia: ToDense: nil tensor")
	}
	shape := append([]int(nil), t.Shape()...)
	var (
		d   *gt.Dense
		err error
	)
	caught := tensor.Catch(func() {
		switch t.DType() {
		case tensor.Float32, tensor.BFloat16, tensor.Float16:
			d = newDense(gt.Float32, t.Float32s(), shape)
		case tensor.Float64:
			d = newDense(gt.Float64, t.Float64s(), shape)
		case tensor.Int32:
			d = newDense(gt.Int32, t.Int32s(), shape)
		default:
			err = fmt.Errorf("gorgonia: ToDense: minnow %s: %w", t.DType(), ErrUnsupportedDType)
		}
	})
	if caught != nil {
		return nil, fmt.Errorf("gorgonia: ToDense: %w", caught)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// newDense wraps data, which it takes ownership of, in a Dense of the given
// shape and dtype.
func newDense[T float32 | float64 | int32](dt gt.Dtype, data []T, shape []int) *gt.Dense {
	switch {
	case len(shape) == 0:
		return gt.New(gt.FromScalar(data[0]))
	case len(data) == 0:
		// gorgonia cannot take an empty backing slice; a shape alone
		// gives a Dense with no elements.
		return gt.New(gt.Of(dt), gt.WithShape(shape...))
	}
	return gt.New(gt.WithShape(shape...), gt.WithBacking(data))
}

// FromDense copies d into a new tensor on be with the same shape: gorgonia
// Float32, Float64 and Int32 become minnow Float32, Float64 and Int32, and a
// scalar Dense becomes a rank-0 tensor. A transposed or sliced view is read
// through its strides, so the result holds the elements in the view's
// logical row-major order. It returns an error for a nil backend or Dense,
// a masked Dense, a view whose strides reach outside its data, or a rank
// above tensor.MaxRank; an error wrapping ErrUnsupportedDType for any other
// gorgonia dtype; and an error wrapping the *tensor.Error raised when be
// cannot allocate or write the tensor.
func FromDense(be tensor.Backend, d *gt.Dense) (*tensor.Tensor, error) {
	if be == nil {
		return nil, errors.New("gorgonia: FromDense: nil backend")
	}
	if d == nil {
		return nil, errors.New("gorgonia: FromDense: nil Dense")
	}
	// IsMasked also holds for a Dense without elements, mask or not.
	if d.IsMasked() && len(d.Mask()) > 0 {
		return nil, errors.New("gorgonia: FromDense: masked Dense (minnow tensors have no mask)")
	}
	if r := d.Dims(); r > tensor.MaxRank {
		return nil, fmt.Errorf("gorgonia: FromDense: rank %d exceeds tensor.MaxRank %d", r, tensor.MaxRank)
	}
	switch d.Dtype() {
	case gt.Float32:
		return fromDense[float32](be, tensor.Float32, d)
	case gt.Float64:
		return fromDense[float64](be, tensor.Float64, d)
	case gt.Int32:
		return fromDense[int32](be, tensor.Int32, d)
	}
	return nil, fmt.Errorf("gorgonia: FromDense: gorgonia %s: %w", d.Dtype(), ErrUnsupportedDType)
}

func fromDense[T float32 | float64 | int32](be tensor.Backend, dt tensor.DType, d *gt.Dense) (*tensor.Tensor, error) {
	shape := append([]int(nil), d.Shape()...)
	var vals []T
	switch {
	case d.IsScalar():
		// Data returns the value itself, not a slice, for a scalar.
		v, ok := d.Data().(T)
		if !ok {
			return nil, fmt.Errorf("gorgonia: FromDense: scalar holds %T, not %s", d.Data(), d.Dtype())
		}
		vals = []T{v}
	case d.Shape().TotalSize() == 0:
		// Data panics on a Dense without elements.
		vals = []T{}
	default:
		data, ok := d.Data().([]T)
		if !ok {
			return nil, fmt.Errorf("gorgonia: FromDense: data is %T, not []%s", d.Data(), d.Dtype())
		}
		var err error
		if vals, err = gather(data, shape, d.Strides()); err != nil {
			return nil, fmt.Errorf("gorgonia: FromDense: %w", err)
		}
	}
	var t *tensor.Tensor
	err := tensor.Catch(func() {
		if len(shape) == 0 {
			// From treats an empty shape as 1-D; Full builds rank 0, and
			// float64 holds every float32, float64 and int32 exactly.
			t = tensor.Full(be, dt, float64(vals[0]))
			return
		}
		t = tensor.From(be, dt, vals, shape...)
	})
	if err != nil {
		return nil, fmt.Errorf("gorgonia: FromDense: %w", err)
	}
	return t, nil
}

// gather returns the elements of the strided array (shape, strides) over
// data in row-major order. gorgonia describes a view, whether transposed by
// T or cut by Slice, by the view's shape and strides over a backing array
// that starts at the view's first element; the backing itself is left in
// its original order until Transpose or Materialize moves it.
func gather[T any](data []T, shape, strides []int) ([]T, error) {
	if len(strides) != len(shape) {
		return nil, fmt.Errorf("%d strides for shape %v", len(strides), shape)
	}
	n, last, contiguous, want := 1, 0, true, 1
	for i := len(shape) - 1; i >= 0; i-- {
		n *= shape[i]
		if shape[i] > 1 {
			if strides[i] < 0 {
				return nil, fmt.Errorf("negative strides %v", strides)
			}
			last += (shape[i] - 1) * strides[i]
			if strides[i] != want {
				contiguous = false
			}
		}
		want *= shape[i]
	}
	out := make([]T, n)
	if n == 0 {
		return out, nil
	}
	if last >= len(data) {
		return nil, fmt.Errorf("view of shape %v and strides %v reaches element %d of %d", shape, strides, last, len(data))
	}
	if contiguous {
		copy(out, data[:n])
		return out, nil
	}
	idx := make([]int, len(shape))
	off := 0
	for k := range out {
		out[k] = data[off]
		// Advance the index like an odometer, last axis fastest.
		for a := len(shape) - 1; a >= 0; a-- {
			idx[a]++
			off += strides[a]
			if idx[a] < shape[a] {
				break
			}
			off -= idx[a] * strides[a]
			idx[a] = 0
		}
	}
	return out, nil
}
