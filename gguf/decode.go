package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// FormatError reports a malformed or truncated GGUF file: what is wrong and
// the byte offset at which the offending item starts.
type FormatError struct {
	// Offset is the byte offset in the file of the item that is wrong.
	Offset int64
	// Msg says what is wrong.
	Msg string
	// Err is the underlying cause, if any: io.ErrUnexpectedEOF for a file
	// that ends early, or the reader's own error.
	Err error
}

// Error returns the message with its offset.
func (e *FormatError) Error() string {
	return fmt.Sprintf("gguf: byte %d: %s", e.Offset, e.Msg)
}

// Unwrap returns the underlying cause, so errors.Is(err,
// io.ErrUnexpectedEOF) recognises truncation.
func (e *FormatError) Unwrap() error { return e.Err }

// Limits on what a file may declare. Every count is also checked against
// the bytes left in the file before anything is allocated; these caps
// only bound what an honest but huge file could ask for.
const (
	// maxKeyLen is the GGUF specification's limit on key length.
	maxKeyLen = 1<<16 - 1
	// maxStringLen and maxArrayLen match llama.cpp's GGUF_MAX_STRING_LENGTH
	// and GGUF_MAX_ARRAY_ELEMENTS.
	maxStringLen = 1 << 30
	maxArrayLen  = 1 << 30
	// maxNameLen is one less than ggml's GGML_MAX_NAME, which counts the
	// terminating NUL; llama.cpp rejects longer tensor names.
	maxNameLen = 63
	// smallRead is the largest string read in one allocation; longer
	// strings grow as their bytes arrive, so a reader whose declared size
	// overstates its content cannot force a large allocation.
	smallRead = 1 << 16
	// initialCap caps the capacity reserved for an array up front, for the
	// same reason.
	initialCap = 1 << 12
)

// decoder reads little-endian GGUF items sequentially, tracking the offset
// and refusing to read past the declared size.
type decoder struct {
	br      *bufio.Reader
	off     int64
	size    int64
	scratch [8]byte
}

func newDecoder(r io.ReaderAt, size int64) *decoder {
	return &decoder{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}
}

func (d *decoder) remaining() int64 { return d.size - d.off }

// errAt builds a FormatError for the item starting at off.
func errAt(off int64, cause error, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// need checks that n more bytes exist before the caller reads or allocates
// anything for them.
func (d *decoder) need(n uint64, what string) error {
	if n > uint64(d.remaining()) {
		return errAt(d.off, io.ErrUnexpectedEOF, "%s needs %d bytes but only %d remain in the file", what, n, d.remaining())
	}
	return nil
}

// fill reads exactly len(p) bytes, which need has already allowed.
func (d *decoder) fill(p []byte, what string) error {
	n, err := io.ReadFull(d.br, p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return errAt(d.off+int64(n), err, "reading %s: %v", what, err)
	}
	d.off += int64(n)
	return nil
}

func (d *decoder) fixed(n int, what string) ([]byte, error) {
	if err := d.need(uint64(n), what); err != nil {
		return nil, err
	}
	b := d.scratch[:n]
	if err := d.fill(b, what); err != nil {
		return nil, err
	}
	return b, nil
}

func (d *decoder) u8(what string) (uint8, error) {
	b, err := d.fixed(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) u16(what string) (uint16, error) {
	b, err := d.fixed(2, what)
	if err != nil {
		return 0, err
	}
	return uint16(b[0]) | uint16(b[1])<<8, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.fixed(4, what)
	if err != nil {
		return 0, err
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	b, err := d.fixed(8, what)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// str reads a GGUF string (u64 length, then bytes), refusing lengths over
// limit or past the end of the file.
func (d *decoder) str(what string, limit uint64) (string, error) {
	start := d.off
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", errAt(start, nil, "%s length %d exceeds the limit of %d bytes", what, n, limit)
	}
	if err := d.need(n, what); err != nil {
		return "", err
	}
	if n <= smallRead {
		b := make([]byte, n)
		if err := d.fill(b, what); err != nil {
			return "", err
		}
		return string(b), nil
	}
	var sb strings.Builder
	got, err := io.CopyN(&sb, d.br, int64(n))
	d.off += got
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", errAt(d.off, err, "reading %s: %v", what, err)
	}
	return sb.String(), nil
}

// scalarSize returns the encoded size of a scalar type, or 0 for string,
// array and unknown tags.
func scalarSize(t Type) uint64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// value decodes one metadata value of type t; what names it in errors.
func (d *decoder) value(t Type, what string) (any, error) {
	switch t {
	case TypeUint8:
		return d.u8(what)
	case TypeInt8:
		v, err := d.u8(what)
		return int8(v), err
	case TypeUint16:
		return d.u16(what)
	case TypeInt16:
		v, err := d.u16(what)
		return int16(v), err
	case TypeUint32:
		return d.u32(what)
	case TypeInt32:
		v, err := d.u32(what)
		return int32(v), err
	case TypeFloat32:
		v, err := d.u32(what)
		return math.Float32frombits(v), err
	case TypeBool:
		// Any nonzero byte is true, as llama.cpp reads it.
		v, err := d.u8(what)
		return v != 0, err
	case TypeString:
		return d.str(what, maxStringLen)
	case TypeUint64:
		return d.u64(what)
	case TypeInt64:
		v, err := d.u64(what)
		return int64(v), err
	case TypeFloat64:
		v, err := d.u64(what)
		return math.Float64frombits(v), err
	case TypeArray:
		return d.array(what)
	}
	return nil, errAt(d.off-4, nil, "%s has unknown value type %d", what, uint32(t))
}

// array decodes an array value: element type, count, then the elements,
// after checking the count against the bytes that remain.
func (d *decoder) array(what string) (any, error) {
	start := d.off
	et32, err := d.u32(what + " element type")
	if err != nil {
		return nil, err
	}
	et := Type(et32)
	n, err := d.u64(what + " element count")
	if err != nil {
		return nil, err
	}
	minSize := scalarSize(et)
	switch {
	case et == TypeString:
		minSize = 8
	case et == TypeArray:
		return nil, errAt(start, nil, "%s is an array of arrays, which this reader does not support", what)
	case minSize == 0:
		return nil, errAt(start, nil, "%s is an array of unknown value type %d", what, et32)
	}
	if n > maxArrayLen {
		return nil, errAt(start, nil, "%s declares %d elements, over the limit of %d", what, n, maxArrayLen)
	}
	if n > uint64(d.remaining())/minSize {
		return nil, errAt(start, io.ErrUnexpectedEOF, "%s declares %d elements of at least %d bytes but only %d bytes remain",
			what, n, minSize, d.remaining())
	}
	switch et {
	case TypeUint8:
		return readArray(d, n, what, d.u8)
	case TypeInt8:
		return readArray(d, n, what, func(w string) (int8, error) { v, err := d.u8(w); return int8(v), err })
	case TypeUint16:
		return readArray(d, n, what, d.u16)
	case TypeInt16:
		return readArray(d, n, what, func(w string) (int16, error) { v, err := d.u16(w); return int16(v), err })
	case TypeUint32:
		return readArray(d, n, what, d.u32)
	case TypeInt32:
		return readArray(d, n, what, func(w string) (int32, error) { v, err := d.u32(w); return int32(v), err })
	case TypeFloat32:
		return readArray(d, n, what, func(w string) (float32, error) {
			v, err := d.u32(w)
			return math.Float32frombits(v), err
		})
	case TypeBool:
		return readArray(d, n, what, func(w string) (bool, error) { v, err := d.u8(w); return v != 0, err })
	case TypeString:
		return readArray(d, n, what, func(w string) (string, error) { return d.str(w, maxStringLen) })
	case TypeUint64:
		return readArray(d, n, what, d.u64)
	case TypeInt64:
		return readArray(d, n, what, func(w string) (int64, error) { v, err := d.u64(w); return int64(v), err })
	default: // TypeFloat64; the others were rejected above.
		return readArray(d, n, what, func(w string) (float64, error) {
			v, err := d.u64(w)
			return math.Float64frombits(v), err
		})
	}
}

// readArray reads n elements with elem. The element description is built
// only when an element fails, since arrays of 100k+ tokens are common.
func readArray[T any](d *decoder, n uint64, what string, elem func(string) (T, error)) ([]T, error) {
	out := make([]T, 0, min(n, initialCap))
	for i := uint64(0); i < n; i++ {
		v, err := elem("element data")
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				fe.Msg = fmt.Sprintf("%s, element %d: %s", what, i, fe.Msg)
			}
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
