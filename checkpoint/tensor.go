package checkpoint

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/minnowml/minnow/tensor"
)

// littleEndian reports whether the host stores numbers as the file does,
// in which case tensor data moves between file and memory with a plain
// copy, or none.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// element is a Go type that holds one stored element: uint16 holds the
// bits of bf16 and f16.
type element interface {
	float32 | float64 | int32 | uint16
}

// FromTensor returns t's name, dtype, shape and contents as a NamedTensor,
// reading t from its backend (a strided view is read in row-major order).
// A 16-bit tensor is read through float32, which is exact, so every value
// keeps its bits except NaNs: an f16 NaN becomes the canonical quiet NaN
// and a signalling bf16 NaN becomes quiet. Like t's own readers it panics
// with *tensor.Error when t was released.
func FromTensor(name string, t *tensor.Tensor) NamedTensor {
	nt := NamedTensor{Name: name, DType: t.DType(), Shape: slices.Clone(t.Shape())}
	switch t.DType() {
	case tensor.Float32:
		nt.Data = leBytes(t.Float32s())
	case tensor.Float64:
		nt.Data = leBytes(t.Float64s())
	case tensor.Int32:
		nt.Data = leBytes(t.Int32s())
	case tensor.BFloat16, tensor.Float16:
		// The tensor API reads no raw 16-bit bits, but widening to float32
		// is exact and rounding an exact value back returns its bits.
		f := t.Float32s()
		u := make([]uint16, len(f))
		narrow := tensor.F16FromFloat32
		if t.DType() == tensor.BFloat16 {
			narrow = tensor.BF16FromFloat32
		}
		for i, v := range f {
			u[i] = narrow(v)
		}
		nt.Data = leBytes(u)
	}
	return nt
}

// Tensor returns a new tensor on be holding the tensor's data with its
// dtype and shape. It returns an error when be is nil, the dtype is
// unknown, the shape is invalid, the data length does not match, or the
// backend fails (for example when it does not store the dtype).
func (nt NamedTensor) Tensor(be tensor.Backend) (*tensor.Tensor, error) {
	if be == nil {
		return nil, fmt.Errorf("checkpoint: tensor %q: nil backend", nt.Name)
	}
	if err := nt.check(); err != nil {
		return nil, fmt.Errorf("checkpoint: tensor %q: %w", nt.Name, err)
	}
	var host any
	switch nt.DType {
	case tensor.Float32:
		host = hostSlice[float32](nt.Data)
	case tensor.Float64:
		host = hostSlice[float64](nt.Data)
	case tensor.Int32:
		host = hostSlice[int32](nt.Data)
	default: // bf16 and f16, as check allows no other dtype
		host = hostSlice[uint16](nt.Data)
	}
	var t *tensor.Tensor
	err := tensor.Catch(func() {
		if len(nt.Shape) == 0 {
			// From makes a shapeless tensor 1-D; a scalar is a reshape of
			// that.
			v := tensor.From(be, nt.DType, host, 1)
			t = v.Reshape()
			v.Release()
			return
		}
		t = tensor.From(be, nt.DType, host, nt.Shape...)
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: tensor %q: %w", nt.Name, err)
	}
	return t, nil
}

// hostSlice returns the little-endian bytes b as a []T. On a little-endian
// host with b aligned for T, as Load's data is, it is a view of b with no
// copy; otherwise it is a copy.
func hostSlice[T element](b []byte) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	n := len(b) / size
	if n == 0 {
		return []T{}
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if littleEndian && uintptr(p)%unsafe.Alignof(z) == 0 {
		return unsafe.Slice((*T)(p), n)
	}
	out := make([]T, n)
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), n*size), b)
		return out
	}
	if _, err := binary.Decode(b, binary.LittleEndian, out); err != nil {
		// Unreachable: out holds exactly len(b) bytes of fixed-size values.
		panic(err)
	}
	return out
}

// leBytes returns s as little-endian bytes, reusing s's memory on a
// little-endian host; s must not be used afterwards.
func leBytes[T element](s []T) []byte {
	var z T
	size := int(unsafe.Sizeof(z))
	if len(s) == 0 {
		return []byte{}
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*size)
	}
	b, err := binary.Append(make([]byte, 0, len(s)*size), binary.LittleEndian, s)
	if err != nil {
		// Unreachable: s is a slice of fixed-size values.
		panic(err)
	}
	return b
}

// FromTensors returns ts as NamedTensors named prefix+names[i], in order:
// the way an optimizer's per-parameter state ("adamw.m/" plus each
// parameter's name) or a model's weights (prefix "") are handed over. It
// returns an error when the lists differ in length or a tensor is nil, and
// panics as FromTensor does on a released tensor.
func FromTensors(prefix string, names []string, ts []*tensor.Tensor) ([]NamedTensor, error) {
	if len(names) != len(ts) {
		return nil, fmt.Errorf("checkpoint: %d names for %d tensors", len(names), len(ts))
	}
	out := make([]NamedTensor, len(ts))
	for i, t := range ts {
		if t == nil {
			return nil, fmt.Errorf("checkpoint: tensor %q is nil", prefix+names[i])
		}
		out[i] = FromTensor(prefix+names[i], t)
	}
	return out, nil
}

// Tensors returns, on be, the tensors of list named prefix+names[i], in
// the order of names: the inverse of FromTensors. It returns an error when
// one is missing, when list holds a tensor whose name starts with prefix
// but is not among them (as a checkpoint of another model would), or when
// Tensor fails; on error it releases the tensors it made.
func Tensors(be tensor.Backend, list []NamedTensor, prefix string, names []string) ([]*tensor.Tensor, error) {
	byName := make(map[string]NamedTensor, len(list))
	for _, nt := range list {
		if strings.HasPrefix(nt.Name, prefix) {
			byName[nt.Name] = nt
		}
	}
	out := make([]*tensor.Tensor, 0, len(names))
	fail := func(err error) ([]*tensor.Tensor, error) {
		for _, t := range out {
			t.Release()
		}
		return nil, err
	}
	for _, n := range names {
		nt, ok := byName[prefix+n]
		if !ok {
			return fail(fmt.Errorf("checkpoint: no tensor %q", prefix+n))
		}
		delete(byName, prefix+n)
		t, err := nt.Tensor(be)
		if err != nil {
			return fail(err)
		}
		out = append(out, t)
	}
	if len(byName) > 0 {
		extra := sortedKeys(byName)
		return fail(fmt.Errorf("checkpoint: %d unexpected tensor(s) named %q*, such as %q", len(extra), prefix, extra[0]))
	}
	return out, nil
}
