package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/minnowml/minnow/internal/atomicfile"
)

// Tensor is one tensor for Write: its description and its raw bytes,
// given either in memory (Data) or by a function that streams them
// (WriteData), so that a large model need not be held in memory twice.
type Tensor struct {
	Name string
	// Dims is the shape in GGUF order, innermost first.
	Dims []uint64
	Type GGMLType
	// Data holds the raw bytes, exactly the size Dims and Type imply.
	Data []byte
	// WriteData, used when Data is nil, must write exactly the tensor's
	// byte size to w and return nil, or return an error.
	WriteData func(w io.Writer) error
}

// Write writes a GGUF version 3 file: header, metadata in the order given,
// tensor descriptions, padding to the alignment, then each tensor's data,
// each padded to the alignment. The alignment is general.alignment from md
// (a uint32 power of two) or DefaultAlignment. Each value's Go type decides
// its GGUF type (uint32 becomes TypeUint32, []string an array of strings,
// and so on; see KV). Write checks everything it can before writing a byte
// and returns an error naming the key or tensor for an empty, over-long or
// duplicate key or name, a value of an unsupported Go type (such as int,
// whose width is ambiguous), a bad alignment, an unknown tensor type, a
// shape the type cannot hold, or data of the wrong length; it also returns
// w's errors and those of WriteData functions.
func Write(w io.Writer, md Metadata, tensors []Tensor) error {
	align, err := alignmentOf(md)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(md))
	for _, kv := range md {
		if kv.Key == "" {
			return errors.New("gguf: metadata key is empty")
		}
		if len(kv.Key) > maxKeyLen {
			return fmt.Errorf("gguf: metadata key %.40q... is %d bytes, over the limit of %d", kv.Key, len(kv.Key), maxKeyLen)
		}
		if seen[kv.Key] {
			return fmt.Errorf("gguf: duplicate metadata key %q", kv.Key)
		}
		seen[kv.Key] = true
		if err := checkValue(kv.Value); err != nil {
			return fmt.Errorf("gguf: metadata key %q: %w", kv.Key, err)
		}
	}
	infos, err := layout(tensors, uint64(align))
	if err != nil {
		return err
	}

	e := &encoder{w: bufio.NewWriterSize(w, 1<<16)}
	e.bytes([]byte(magic))
	e.u32(Version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(md)))
	for _, kv := range md {
		e.str(kv.Key)
		e.value(kv.Value)
	}
	for _, t := range infos {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	e.pad(int64(align))
	for i, t := range tensors {
		if e.err != nil {
			break
		}
		start := e.n
		if t.Data != nil {
			e.bytes(t.Data)
		} else if t.WriteData != nil {
			if err := t.WriteData(e); err != nil {
				return fmt.Errorf("gguf: writing tensor %q: %w", t.Name, err)
			}
			if e.err == nil && uint64(e.n-start) != infos[i].Size {
				return fmt.Errorf("gguf: tensor %q: WriteData wrote %d bytes, want %d", t.Name, e.n-start, infos[i].Size)
			}
		}
		e.pad(int64(align))
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// alignmentOf returns the alignment md asks for, with an error when
// general.alignment is not a uint32 power of two.
func alignmentOf(md Metadata) (uint32, error) {
	v, ok := md.Get(KeyAlignment)
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := v.(uint32)
	if !ok {
		return 0, fmt.Errorf("gguf: metadata key %q holds %T, not uint32", KeyAlignment, v)
	}
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("gguf: metadata key %q = %d is not a power of two", KeyAlignment, a)
	}
	if a > MaxAlignment {
		return 0, fmt.Errorf("gguf: metadata key %q = %d is over the limit of %d", KeyAlignment, a, MaxAlignment)
	}
	return a, nil
}

// layout validates the tensors and assigns each an aligned offset in the
// data section, packing them in the order given as llama.cpp expects.
func layout(tensors []Tensor, align uint64) ([]TensorInfo, error) {
	infos := make([]TensorInfo, len(tensors))
	seen := make(map[string]bool, len(tensors))
	var off uint64
	for i, t := range tensors {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("gguf: tensor %d has an empty name", i)
		case len(t.Name) > maxNameLen:
			return nil, fmt.Errorf("gguf: tensor name %q is %d bytes, over llama.cpp's limit of %d", t.Name, len(t.Name), maxNameLen)
		case seen[t.Name]:
			return nil, fmt.Errorf("gguf: duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		size, err := t.Type.byteSize(t.Dims)
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		switch {
		case t.Data != nil && t.WriteData != nil:
			return nil, fmt.Errorf("gguf: tensor %q sets both Data and WriteData", t.Name)
		case t.Data != nil && uint64(len(t.Data)) != size:
			return nil, fmt.Errorf("gguf: tensor %q has %d bytes of data, want %d for %s %v", t.Name, len(t.Data), size, t.Type, t.Dims)
		case t.Data == nil && t.WriteData == nil && size != 0:
			return nil, fmt.Errorf("gguf: tensor %q has no data (set Data or WriteData)", t.Name)
		}
		infos[i] = TensorInfo{Name: t.Name, Dims: t.Dims, Type: t.Type, Offset: off, Size: size}
		padded := (size + align - 1) / align * align
		if padded < size || off+padded < off || off+padded > 1<<63-1 {
			return nil, fmt.Errorf("gguf: tensor %q: data section overflows", t.Name)
		}
		off += padded
	}
	return infos, nil
}

// checkValue returns an error when v's Go type has no GGUF encoding or a
// string or array is too long for a reader to accept.
func checkValue(v any) error {
	if _, _, ok := typeOf(v); !ok {
		return fmt.Errorf("unsupported Go type %T", v)
	}
	switch x := v.(type) {
	case string:
		if len(x) > maxStringLen {
			return fmt.Errorf("string of %d bytes is over the limit of %d", len(x), maxStringLen)
		}
	case []string:
		for i, s := range x {
			if len(s) > maxStringLen {
				return fmt.Errorf("element %d: string of %d bytes is over the limit of %d", i, len(s), maxStringLen)
			}
		}
	}
	if n := arrayLen(v); n > maxArrayLen {
		return fmt.Errorf("array of %d elements is over the limit of %d", n, maxArrayLen)
	}
	return nil
}

// typeOf returns the GGUF type of v and, for arrays, the element type.
func typeOf(v any) (t, elem Type, ok bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, 0, true
	case int8:
		return TypeInt8, 0, true
	case uint16:
		return TypeUint16, 0, true
	case int16:
		return TypeInt16, 0, true
	case uint32:
		return TypeUint32, 0, true
	case int32:
		return TypeInt32, 0, true
	case float32:
		return TypeFloat32, 0, true
	case bool:
		return TypeBool, 0, true
	case string:
		return TypeString, 0, true
	case uint64:
		return TypeUint64, 0, true
	case int64:
		return TypeInt64, 0, true
	case float64:
		return TypeFloat64, 0, true
	case []uint8:
		return TypeArray, TypeUint8, true
	case []int8:
		return TypeArray, TypeInt8, true
	case []uint16:
		return TypeArray, TypeUint16, true
	case []int16:
		return TypeArray, TypeInt16, true
	case []uint32:
		return TypeArray, TypeUint32, true
	case []int32:
		return TypeArray, TypeInt32, true
	case []float32:
		return TypeArray, TypeFloat32, true
	case []bool:
		return TypeArray, TypeBool, true
	case []string:
		return TypeArray, TypeString, true
	case []uint64:
		return TypeArray, TypeUint64, true
	case []int64:
		return TypeArray, TypeInt64, true
	case []float64:
		return TypeArray, TypeFloat64, true
	}
	return 0, 0, false
}

func arrayLen(v any) int {
	switch x := v.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	}
	return 0
}

// encoder writes little-endian GGUF items, counting bytes and keeping the
// first error so that callers check once at the end.
type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

// Write lets WriteData functions stream tensor bytes through the encoder.
func (e *encoder) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	e.err = err
	return n, err
}

func (e *encoder) bytes(p []byte) { _, _ = e.Write(p) }

func (e *encoder) u8(v uint8) { e.buf[0] = v; e.bytes(e.buf[:1]) }

func (e *encoder) u16(v uint16) {
	e.buf[0], e.buf[1] = byte(v), byte(v>>8)
	e.bytes(e.buf[:2])
}

func (e *encoder) u32(v uint32) {
	for i := range 4 {
		e.buf[i] = byte(v >> (8 * i))
	}
	e.bytes(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	for i := range 8 {
		e.buf[i] = byte(v >> (8 * i))
	}
	e.bytes(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
		e.n += int64(len(s))
	}
}

func (e *encoder) bool(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

var zeros [4096]byte

// pad writes zeros up to the next multiple of align.
func (e *encoder) pad(align int64) {
	for e.n%align != 0 && e.err == nil {
		e.bytes(zeros[:min(align-e.n%align, int64(len(zeros)))])
	}
}

// value writes a type tag and value; checkValue has vetted the type.
func (e *encoder) value(v any) {
	t, elem, _ := typeOf(v)
	e.u32(uint32(t))
	if t == TypeArray {
		e.u32(uint32(elem))
		e.u64(uint64(arrayLen(v)))
	}
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.bool(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case []uint8:
		e.bytes(x)
	case []int8:
		for _, y := range x {
			e.u8(uint8(y))
		}
	case []uint16:
		for _, y := range x {
			e.u16(y)
		}
	case []int16:
		for _, y := range x {
			e.u16(uint16(y))
		}
	case []uint32:
		for _, y := range x {
			e.u32(y)
		}
	case []int32:
		for _, y := range x {
			e.u32(uint32(y))
		}
	case []float32:
		for _, y := range x {
			e.u32(math.Float32bits(y))
		}
	case []bool:
		for _, y := range x {
			e.bool(y)
		}
	case []string:
		for _, y := range x {
			e.str(y)
		}
	case []uint64:
		for _, y := range x {
			e.u64(y)
		}
	case []int64:
		for _, y := range x {
			e.u64(uint64(y))
		}
	case []float64:
		for _, y := range x {
			e.u64(math.Float64bits(y))
		}
	}
}

// WriteFile writes a GGUF file to path atomically: it writes a temporary
// file in the same directory, syncs it, and renames it over path, so a
// reader never sees a partial file under the final name. It returns Write's
// errors and those of creating, syncing and renaming the file; on error the
// temporary file is removed and path is untouched.
func WriteFile(path string, md Metadata, tensors []Tensor) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return Write(w, md, tensors) })
}
