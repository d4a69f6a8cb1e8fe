package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/minnowml/minnow/tensor"
)

// MaxHeaderSize is the largest JSON header Open accepts, 100 MiB as in the
// reference implementation: real headers are kilobytes to a few megabytes,
// and the bound keeps a hostile length from causing a huge allocation.
const MaxHeaderSize = 100 << 20

// TensorInfo describes one tensor of a file as its header does.
type TensorInfo struct {
	// Name is the tensor's name, such as "model.norm.weight".
	Name string
	// DType is the element type as the file spells it: "F32", "F16",
	// "BF16", "F64", "I32", "I64", ...
	DType string
	// Shape is the tensor's shape; empty for a scalar.
	Shape []int
	// Offsets are the tensor's begin and end byte offsets in the data
	// section, which starts right after the header.
	Offsets [2]int64
}

// dtypeSizes gives the element size in bytes of every dtype the format
// defines; Open accepts all of them, Tensor converts only some.
var dtypeSizes = map[string]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// File is one open .safetensors file, memory-mapped: tensors are read
// from the mapping when asked for. A File is safe for concurrent reads
// until Close.
type File struct {
	path   string
	data   []byte // the tensor data section, a slice of the mapping
	unmap  func() error
	infos  map[string]TensorInfo
	names  []string
	meta   map[string]string
	closed bool
}

// Open maps the safetensors file at path and validates its header. It
// returns an error naming the file (and the tensor, where one is at fault)
// when the file cannot be read, is shorter than its header length says, has
// a header over MaxHeaderSize or of invalid JSON, repeats a name, or has a
// tensor with an unknown dtype, a negative dimension, offsets outside the
// data or overlapping another tensor's, or a byte length other than its
// dtype size times its element count.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	size := st.Size()
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("safetensors: %s: file of %d bytes is too short for the header length", path, size)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: %s: header length %d is over the limit of %d bytes", path, n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("safetensors: %s: header length %d runs past the end of the file (%d bytes)", path, n, size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	m, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	file := &File{path: path, data: m[8+n:], unmap: unmap}
	if err := file.parseHeader(m[8 : 8+n]); err != nil {
		unmap()
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return file, nil
}

// entry is one tensor's header record.
type entry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// parseHeader decodes and validates the JSON header against the data
// section's length.
func (f *File) parseHeader(hdr []byte) error {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("header is not a JSON object")
	}
	f.infos = map[string]TensorInfo{}
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("header: %w", err)
		}
		name, _ := tok.(string)
		if name == "__metadata__" {
			if seenMeta {
				return errors.New("header repeats __metadata__")
			}
			seenMeta = true
			if err := dec.Decode(&f.meta); err != nil {
				return fmt.Errorf("header: __metadata__ is not a map of strings: %w", err)
			}
			continue
		}
		if _, dup := f.infos[name]; dup {
			return fmt.Errorf("header repeats tensor %q", name)
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		info, err := f.check(name, e)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		f.infos[name] = info
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return errors.New("header: unterminated JSON object")
	}
	// Trailing bytes may only be the padding writers add.
	if rest := bytes.TrimRight(hdr[dec.InputOffset():], " \t\r\n\x00"); len(rest) > 0 {
		return errors.New("header: bytes after the JSON object")
	}
	f.names = make([]string, 0, len(f.infos))
	for name := range f.infos {
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f.checkOverlap()
}

// check validates one header record against the data section.
func (f *File) check(name string, e entry) (TensorInfo, error) {
	info := TensorInfo{Name: name, DType: e.DType}
	size, ok := dtypeSizes[e.DType]
	if !ok {
		return info, fmt.Errorf("unknown dtype %q", e.DType)
	}
	if e.Shape == nil {
		return info, errors.New("no shape")
	}
	if len(e.Offsets) != 2 {
		return info, fmt.Errorf("data_offsets has %d values, want 2", len(e.Offsets))
	}
	limit := int64(len(f.data)) / size // the most elements that can fit
	elems := int64(1)
	info.Shape = make([]int, len(e.Shape))
	for i, d := range e.Shape {
		if d < 0 || int64(int(d)) != d {
			return info, fmt.Errorf("dimension %d is %d", i, d)
		}
		if d > 0 && elems > limit/d {
			return info, fmt.Errorf("shape %v does not fit in the %d bytes of data", e.Shape, len(f.data))
		}
		elems *= d
		info.Shape[i] = int(d)
	}
	begin, end := e.Offsets[0], e.Offsets[1]
	if begin < 0 || end < begin || end > int64(len(f.data)) {
		return info, fmt.Errorf("data_offsets [%d, %d] are outside the %d bytes of data", begin, end, len(f.data))
	}
	if end-begin != elems*size {
		return info, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, but %s %v needs %d", begin, end, end-begin, e.DType, e.Shape, elems*size)
	}
	info.Offsets = [2]int64{begin, end}
	return info, nil
}

// checkOverlap returns an error when two tensors share bytes, which a
// well-formed file never does and a crafted one could use to alias data.
func (f *File) checkOverlap() error {
	byBegin := slices.Clone(f.names)
	sort.Slice(byBegin, func(i, j int) bool {
		a, b := f.infos[byBegin[i]].Offsets, f.infos[byBegin[j]].Offsets
		return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
	})
	for i := 1; i < len(byBegin); i++ {
		prev, cur := f.infos[byBegin[i-1]], f.infos[byBegin[i]]
		if cur.Offsets[0] < prev.Offsets[1] {
			return fmt.Errorf("tensor %q overlaps tensor %q", cur.Name, prev.Name)
		}
	}
	return nil
}

// Close unmaps the file; tensors already read stay valid. It returns the
// unmapping's error, and nil when the file is already closed.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	return f.unmap()
}

// Path returns the path the file was opened from.
func (f *File) Path() string { return f.path }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info returns the header record of the tensor called name and whether
// the file has one.
func (f *File) Info(name string) (TensorInfo, bool) {
	info, ok := f.infos[name]
	info.Shape = slices.Clone(info.Shape)
	return info, ok
}

// Metadata returns a copy of the header's __metadata__ map, empty when
// the file has none.
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.meta))
	for k, v := range f.meta {
		m[k] = v
	}
	return m
}

// Tensor returns a new tensor on be with dtype dt holding the tensor
// called name, converted from the file's dtype: F32, F16, BF16 and F64
// convert to any floating dt (narrowing rounds to nearest even; F64 to a
// 16-bit type rounds through F32), and I32 and I64 to Int32. It returns an
// error naming the file and tensor when there is no such tensor, the file
// is closed, the conversion is not one of those, an I64 value does not fit
// in 32 bits, or the backend fails.
func (f *File) Tensor(be tensor.Backend, dt tensor.DType, name string) (*tensor.Tensor, error) {
	if f.closed {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: file is closed", f.path, name)
	}
	info, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	t, err := toTensor(be, dt, info, f.data[info.Offsets[0]:info.Offsets[1]])
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	return t, nil
}

// toTensor converts raw, the little-endian bytes of info, to a tensor.
func toTensor(be tensor.Backend, dt tensor.DType, info TensorInfo, raw []byte) (*tensor.Tensor, error) {
	if be == nil {
		return nil, errors.New("nil backend")
	}
	host, err := hostData(dt, info.DType, raw)
	if err != nil {
		return nil, err
	}
	var t *tensor.Tensor
	err = tensor.Catch(func() {
		if len(info.Shape) == 0 {
			// From makes a shapeless tensor 1-D; a scalar is a reshape.
			v := tensor.From(be, dt, host, 1)
			t = v.Reshape()
			v.Release()
			return
		}
		t = tensor.From(be, dt, host, info.Shape...)
	})
	return t, err
}

// hostData decodes raw of file dtype src into the host slice tensor.From
// takes for dt.
func hostData(dt tensor.DType, src string, raw []byte) (any, error) {
	switch dt {
	case tensor.Int32:
		switch src {
		case "I32":
			out := make([]int32, len(raw)/4)
			for i := range out {
				out[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			return out, nil
		case "I64":
			out := make([]int32, len(raw)/8)
			for i := range out {
				v := int64(binary.LittleEndian.Uint64(raw[8*i:]))
				if v < math.MinInt32 || v > math.MaxInt32 {
					return nil, fmt.Errorf("I64 value %d at element %d does not fit in i32", v, i)
				}
				out[i] = int32(v)
			}
			return out, nil
		}
	case tensor.Float64:
		if src == "F64" {
			out := make([]float64, len(raw)/8)
			for i := range out {
				out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return out, nil
		}
		if f, ok := float32s(src, raw); ok {
			out := make([]float64, len(f))
			for i, v := range f {
				out[i] = float64(v)
			}
			return out, nil
		}
	case tensor.Float32:
		if f, ok := float32s(src, raw); ok {
			return f, nil
		}
	case tensor.BFloat16, tensor.Float16:
		if (src == "BF16") == (dt == tensor.BFloat16) && (src == "BF16" || src == "F16") {
			out := make([]uint16, len(raw)/2)
			for i := range out {
				out[i] = binary.LittleEndian.Uint16(raw[2*i:])
			}
			return out, nil
		}
		if f, ok := float32s(src, raw); ok {
			narrow := tensor.F16FromFloat32
			if dt == tensor.BFloat16 {
				narrow = tensor.BF16FromFloat32
			}
			out := make([]uint16, len(f))
			for i, v := range f {
				out[i] = narrow(v)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("cannot convert %s to %s", src, dt)
}

// float32s decodes a floating dtype to float32, reporting false for any
// other dtype. F16 and BF16 widen exactly.
func float32s(src string, raw []byte) ([]float32, bool) {
	var out []float32
	switch src {
	case "F32":
		out = make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "F64":
		out = make([]float32, len(raw)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case "F16", "BF16":
		widen := tensor.F16ToFloat32
		if src == "BF16" {
			widen = tensor.BF16ToFloat32
		}
		out = make([]float32, len(raw)/2)
		for i := range out {
			out[i] = widen(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	default:
		return nil, false
	}
	return out, true
}
