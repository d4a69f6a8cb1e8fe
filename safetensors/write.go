package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/minnowml/minnow/internal/atomicfile"
	"github.com/minnowml/minnow/tensor"
)

// Named is a tensor with the name Write stores it under.
type Named struct {
	Name   string
	Tensor *tensor.Tensor
}

// fileDType names a tensor dtype as the format does.
func fileDType(dt tensor.DType) (string, bool) {
	switch dt {
	case tensor.Float32:
		return "F32", true
	case tensor.Float64:
		return "F64", true
	case tensor.BFloat16:
		return "BF16", true
	case tensor.Float16:
		return "F16", true
	case tensor.Int32:
		return "I32", true
	}
	return "", false
}

// Write stores ts in a safetensors file at path, each tensor in its own
// dtype and in the order given, with metadata as the header's
// __metadata__ (left out when empty). The header is padded with spaces to
// a multiple of 8 bytes so that the data is aligned for its elements. The
// file is written atomically: on error nothing is left at path. It returns
// an error for an empty, repeated or reserved name, a nil tensor, a dtype
// the format cannot hold, or a failure to write.
func Write(path string, ts []Named, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, nt := range ts {
		switch {
		case nt.Name == "" || nt.Name == "__metadata__":
			return fmt.Errorf("safetensors: %s: invalid tensor name %q", path, nt.Name)
		case nt.Tensor == nil:
			return fmt.Errorf("safetensors: %s: tensor %q is nil", path, nt.Name)
		}
		if _, dup := header[nt.Name]; dup {
			return fmt.Errorf("safetensors: %s: tensor %q given twice", path, nt.Name)
		}
		dt, ok := fileDType(nt.Tensor.DType())
		if !ok {
			return fmt.Errorf("safetensors: %s: tensor %q: dtype %s has no safetensors name", path, nt.Name, nt.Tensor.DType())
		}
		n := int64(nt.Tensor.Len() * nt.Tensor.DType().Size())
		shape := nt.Tensor.Shape()
		if shape == nil {
			shape = []int{} // a scalar's shape is [], not null
		}
		header[nt.Name] = map[string]any{"dtype": dt, "shape": shape, "data_offsets": [2]int64{off, off + n}}
		off += n
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if pad := (8 - len(hdr)%8) % 8; pad > 0 {
		hdr = append(hdr, bytes.Repeat([]byte{' '}, pad)...)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
		// bufio keeps the first write error and Flush returns it.
		bw.Write(lenBuf[:])
		bw.Write(hdr)
		for _, nt := range ts {
			var err error
			if terr := tensor.Catch(func() { err = writeData(bw, nt.Tensor) }); terr != nil {
				return fmt.Errorf("safetensors: %s: tensor %q: %w", path, nt.Name, terr)
			}
			if err != nil {
				return fmt.Errorf("safetensors: %s: tensor %q: %w", path, nt.Name, err)
			}
		}
		return bw.Flush()
	})
}

// writeData writes t's elements in row-major order as little-endian bytes.
func writeData(w *bufio.Writer, t *tensor.Tensor) error {
	var b []byte
	switch t.DType() {
	case tensor.Float32:
		for _, v := range t.Float32s() {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case tensor.Float64:
		for _, v := range t.Float64s() {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	case tensor.Int32:
		for _, v := range t.Int32s() {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	case tensor.BFloat16, tensor.Float16:
		// The tensor API reads no raw 16-bit bits, but widening to float32
		// is exact and rounding an exact value back returns its bits.
		narrow := tensor.F16FromFloat32
		if t.DType() == tensor.BFloat16 {
			narrow = tensor.BF16FromFloat32
		}
		for _, v := range t.Float32s() {
			b = binary.LittleEndian.AppendUint16(b, narrow(v))
		}
	}
	_, err := w.Write(b)
	return err
}
