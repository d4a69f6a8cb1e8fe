package gguf

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// magic is the four bytes every GGUF file starts with.
const magic = "GGUF"

// Version is the GGUF version this package writes. It reads versions 2
// and 3, which differ only in that version 3 allows big-endian files (which
// this package rejects).
const Version = 3

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// MaxAlignment is the largest alignment this package reads or writes. The
// format sets no limit, but real files use 32 to a few KiB, and a huge
// one would make every tensor carry up to that much padding.
const MaxAlignment = 1 << 20

// KeyAlignment is the metadata key that sets the data alignment; it must
// hold a uint32 power of two.
const KeyAlignment = "general.alignment"

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	// Dims is the shape in GGUF order, innermost (fastest-varying) first.
	Dims []uint64
	Type GGMLType
	// Offset is the position of the tensor's data relative to the start of
	// the data section (File.DataOffset).
	Offset uint64
	// Size is the byte size of the tensor's data, computed from Dims and
	// Type.
	Size uint64
}

// File is a GGUF file's header, metadata and tensor descriptions. Tensor
// data stays in the underlying reader until asked for.
type File struct {
	// Version is the file's GGUF version, 2 or 3.
	Version uint32
	// Metadata holds the key-value entries in file order.
	Metadata Metadata
	// Tensors describes the tensors in file order.
	Tensors []TensorInfo
	// Alignment is general.alignment, or DefaultAlignment when absent.
	Alignment uint32
	// DataOffset is the file offset of the data section.
	DataOffset int64

	r      io.ReaderAt
	size   int64
	closer io.Closer
}

// Open reads the header, metadata and tensor descriptions of the GGUF file
// at path, leaving the tensor data on disk; call Close when done. It
// returns the error from opening the file, or a *FormatError (wrapped with
// the path) when the file is malformed.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = fh
	return f, nil
}

// Close releases the file Open opened; it is a no-op for a File from Read.
// It returns the error from closing the file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Read parses a GGUF file of size bytes from r without reading its tensor
// data. It returns a *FormatError naming the problem and its byte offset
// when the file is truncated, malformed, or declares counts, lengths or
// tensor extents its size cannot hold, and a plain error for a negative
// size; size must be the true size of r's content.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative size %d", size)
	}
	d := newDecoder(r, size)
	f := &File{r: r, size: size, Alignment: DefaultAlignment}

	b, err := d.fixed(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(b) != magic {
		return nil, errAt(0, nil, "magic is %q, not %q: not a GGUF file", b, magic)
	}
	if f.Version, err = d.u32("version"); err != nil {
		return nil, err
	}
	switch {
	case f.Version == 2 || f.Version == 3:
	case f.Version&0xFFFF == 0 && f.Version != 0:
		return nil, errAt(4, nil, "version %#x looks byte-swapped: big-endian GGUF files are not supported", f.Version)
	case f.Version == 1:
		return nil, errAt(4, nil, "GGUF version 1 is not supported (only 2 and 3)")
	default:
		return nil, errAt(4, nil, "unsupported GGUF version %d (only 2 and 3)", f.Version)
	}
	nTensors, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// The smallest possible entries: a KV is a u64 length, a one-byte key, a
	// u32 tag and a one-byte value; a tensor info is a u64 length, a one-byte
	// name, a u32 dimension count, a u32 type and a u64 offset.
	const minKV, minTensor = 8 + 1 + 4 + 1, 8 + 1 + 4 + 4 + 8
	rem := uint64(d.remaining())
	if nKV > rem/minKV || nTensors > rem/minTensor || nKV*minKV+nTensors*minTensor > rem {
		return nil, errAt(8, io.ErrUnexpectedEOF, "header declares %d tensors and %d metadata entries, more than the %d remaining bytes can hold",
			nTensors, nKV, rem)
	}

	if err := f.readMetadata(d, nKV); err != nil {
		return nil, err
	}
	infoAt, err := f.readTensorInfos(d, nTensors)
	if err != nil {
		return nil, err
	}
	f.DataOffset = alignUp(d.off, int64(f.Alignment))
	if err := f.checkExtents(infoAt); err != nil {
		return nil, err
	}
	return f, nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

func (f *File) readMetadata(d *decoder, n uint64) error {
	f.Metadata = make(Metadata, 0, min(n, initialCap))
	seen := make(map[string]bool, min(n, initialCap))
	for i := uint64(0); i < n; i++ {
		at := d.off
		key, err := d.str(fmt.Sprintf("metadata key %d", i), maxKeyLen)
		if err != nil {
			return err
		}
		if key == "" {
			return errAt(at, nil, "metadata key %d is empty", i)
		}
		if seen[key] {
			return errAt(at, nil, "duplicate metadata key %q", key)
		}
		seen[key] = true
		tagAt := d.off
		tag, err := d.u32(fmt.Sprintf("type of key %q", key))
		if err != nil {
			return err
		}
		t := Type(tag)
		if scalarSize(t) == 0 && t != TypeString && t != TypeArray {
			return errAt(tagAt, nil, "key %q has unknown value type %d", key, tag)
		}
		v, err := d.value(t, fmt.Sprintf("value of key %q", key))
		if err != nil {
			return err
		}
		f.Metadata = append(f.Metadata, KV{Key: key, Value: v})
		if key == KeyAlignment {
			a, ok := v.(uint32)
			if !ok {
				return errAt(at, nil, "key %q holds %T, not uint32", key, v)
			}
			if a == 0 || a&(a-1) != 0 {
				return errAt(at, nil, "key %q = %d is not a power of two", key, a)
			}
			if a > MaxAlignment {
				return errAt(at, nil, "key %q = %d is over the limit of %d", key, a, MaxAlignment)
			}
			f.Alignment = a
		}
	}
	return nil
}

// readTensorInfos reads the tensor descriptions and returns the file offset
// of each one's offset field, for error messages.
func (f *File) readTensorInfos(d *decoder, n uint64) ([]int64, error) {
	f.Tensors = make([]TensorInfo, 0, min(n, initialCap))
	infoAt := make([]int64, 0, min(n, initialCap))
	seen := make(map[string]bool, min(n, initialCap))
	for i := uint64(0); i < n; i++ {
		at := d.off
		name, err := d.str(fmt.Sprintf("name of tensor %d", i), maxNameLen)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, errAt(at, nil, "tensor %d has an empty name", i)
		}
		if seen[name] {
			return nil, errAt(at, nil, "duplicate tensor name %q", name)
		}
		seen[name] = true
		dimsAt := d.off
		nDims, err := d.u32(fmt.Sprintf("dimension count of tensor %q", name))
		if err != nil {
			return nil, err
		}
		if nDims > maxDims {
			return nil, errAt(dimsAt, nil, "tensor %q has %d dimensions, at most %d allowed", name, nDims, maxDims)
		}
		t := TensorInfo{Name: name, Dims: make([]uint64, nDims)}
		for j := range t.Dims {
			if t.Dims[j], err = d.u64(fmt.Sprintf("dimension %d of tensor %q", j, name)); err != nil {
				return nil, err
			}
		}
		typeAt := d.off
		tt, err := d.u32(fmt.Sprintf("type of tensor %q", name))
		if err != nil {
			return nil, err
		}
		t.Type = GGMLType(tt)
		if t.Size, err = t.Type.byteSize(t.Dims); err != nil {
			return nil, errAt(typeAt, nil, "tensor %q: %v", name, err)
		}
		offAt := d.off
		if t.Offset, err = d.u64(fmt.Sprintf("data offset of tensor %q", name)); err != nil {
			return nil, err
		}
		f.Tensors = append(f.Tensors, t)
		infoAt = append(infoAt, offAt)
	}
	return infoAt, nil
}

// checkExtents checks that every tensor's data is aligned, lies inside the
// file and overlaps no other tensor's.
func (f *File) checkExtents(infoAt []int64) error {
	if len(f.Tensors) == 0 {
		return nil
	}
	if f.DataOffset > f.size {
		return errAt(f.size, io.ErrUnexpectedEOF, "data section starts at byte %d, past the end of the %d-byte file", f.DataOffset, f.size)
	}
	avail := uint64(f.size - f.DataOffset)
	for i, t := range f.Tensors {
		if t.Offset%uint64(f.Alignment) != 0 {
			return errAt(infoAt[i], nil, "tensor %q data offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if t.Offset > avail || t.Size > avail-t.Offset {
			return errAt(infoAt[i], io.ErrUnexpectedEOF, "tensor %q data (%d bytes at data offset %d) runs past the end of the file (%d data bytes)",
				t.Name, t.Size, t.Offset, avail)
		}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	for k := 1; k < len(order); k++ {
		prev, cur := f.Tensors[order[k-1]], f.Tensors[order[k]]
		if cur.Offset < prev.Offset+prev.Size {
			return errAt(infoAt[order[k]], nil, "tensor %q data at offset %d overlaps tensor %q (%d bytes at offset %d)",
				cur.Name, cur.Offset, prev.Name, prev.Size, prev.Offset)
		}
	}
	return nil
}

// TensorIndex returns the index in Tensors of the tensor named name, or -1.
func (f *File) TensorIndex(name string) int {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return i
		}
	}
	return -1
}

// TensorData returns a reader over the raw bytes of tensor i, which Read
// has already checked lie inside the file. It returns an error when i is
// out of range.
func (f *File) TensorData(i int) (*io.SectionReader, error) {
	if i < 0 || i >= len(f.Tensors) {
		return nil, fmt.Errorf("gguf: tensor index %d out of range [0, %d)", i, len(f.Tensors))
	}
	t := f.Tensors[i]
	return io.NewSectionReader(f.r, f.DataOffset+int64(t.Offset), int64(t.Size)), nil
}

// ReadTensor returns a copy of the raw bytes of tensor i. It returns an
// error when i is out of range or the underlying reader fails.
func (f *File) ReadTensor(i int) ([]byte, error) {
	sr, err := f.TensorData(i)
	if err != nil {
		return nil, err
	}
	b := make([]byte, sr.Size())
	if _, err := io.ReadFull(sr, b); err != nil {
		return nil, fmt.Errorf("gguf: reading tensor %q: %w", f.Tensors[i].Name, err)
	}
	return b, nil
}
