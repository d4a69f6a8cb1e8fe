package checkpoint

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"

	"github.com/minnowml/minnow/tensor"
)

// Magic is the format name every checkpoint file starts with, stored as a
// MessagePack string.
const Magic = "minnow.checkpoint"

// Version is the format version Save writes and the newest Load reads.
const Version = 1

// Alignment is the boundary, in bytes from the start of the file, at which
// every tensor's data starts: a cache line, and a multiple of every
// dtype's size, so the data can be used in place.
const Alignment = 64

// MaxTensorBytes is the largest data block of one tensor, the limit of a
// MessagePack bin (4 GiB); a 2B-parameter model's largest matrix is well
// below it.
const MaxTensorBytes = math.MaxUint32

// Layout of the fixed-width preamble and trailer; see the package
// documentation.
const (
	offVersion    = int64(1 + len(Magic))
	offFileSize   = offVersion + 5
	offHeaderSize = offFileSize + 9
	preambleSize  = offHeaderSize + 5
	trailerSize   = 5
)

// MessagePack codes the fixed-width fields use.
const (
	codeUint32 = 0xce
	codeUint64 = 0xcf
	codeBin8   = 0xc4
	codeBin16  = 0xc5
	codeBin32  = 0xc6
)

// magicBytes is Magic encoded as a MessagePack fixstr.
var magicBytes = append([]byte{0xa0 | byte(len(Magic))}, Magic...)

// castagnoli is the CRC-32C table; crc32 uses the CPU's CRC instructions
// for it on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The kinds of *FormatError, for errors.Is.
var (
	// ErrNotCheckpoint means the file is not a minnow checkpoint at all.
	ErrNotCheckpoint = errors.New("not a minnow checkpoint")
	// ErrVersion means the file is a checkpoint of a format version this
	// build cannot read.
	ErrVersion = errors.New("unsupported checkpoint version")
	// ErrCorrupt means the file is a checkpoint that is truncated, damaged
	// (its checksum fails) or malformed.
	ErrCorrupt = errors.New("corrupt checkpoint")
)

// FormatError reports a file that Load or Verify rejected: Kind is
// ErrNotCheckpoint, ErrVersion or ErrCorrupt, Detail says what is wrong,
// and Offset is the byte where it was found, or -1 when no single byte is
// to blame.
type FormatError struct {
	Path   string
	Offset int64
	Kind   error
	Detail string
}

// Error returns "checkpoint: PATH: KIND: DETAIL (at byte N)".
func (e *FormatError) Error() string {
	s := fmt.Sprintf("checkpoint: %s: %v: %s", e.Path, e.Kind, e.Detail)
	if e.Offset >= 0 {
		s += fmt.Sprintf(" (at byte %d)", e.Offset)
	}
	return s
}

// Unwrap returns Kind, so errors.Is(err, ErrCorrupt) works.
func (e *FormatError) Unwrap() error { return e.Kind }

func formatErr(path string, off int64, kind error, format string, args ...any) *FormatError {
	return &FormatError{Path: path, Offset: off, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// dtypes lists the dtypes a checkpoint stores, which are all of tensor's.
var dtypes = []tensor.DType{tensor.Float32, tensor.Float64, tensor.BFloat16, tensor.Float16, tensor.Int32}

// parseDType returns the dtype whose short name is s.
func parseDType(s string) (tensor.DType, bool) {
	for _, dt := range dtypes {
		if dt.String() == s {
			return dt, true
		}
	}
	return 0, false
}

func knownDType(dt tensor.DType) bool {
	_, ok := parseDType(dt.String())
	return ok
}

// dataSize returns the byte length of a tensor of dtype dt and the given
// shape, or an error when the dtype is unknown, the rank exceeds
// tensor.MaxRank, a dimension is negative, or the size overflows or
// exceeds MaxTensorBytes.
func dataSize(dt tensor.DType, shape []int) (int64, error) {
	if !knownDType(dt) {
		return 0, fmt.Errorf("unknown dtype %v", dt)
	}
	if len(shape) > tensor.MaxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), tensor.MaxRank)
	}
	n := uint64(dt.Size())
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n = lo
	}
	if n > MaxTensorBytes {
		return 0, fmt.Errorf("shape %v of %s is %d bytes, over the %d-byte limit of one tensor", shape, dt, n, uint64(MaxTensorBytes))
	}
	return int64(n), nil
}

// binHeaderSize returns the length of the MessagePack bin header the
// encoder writes before n bytes.
func binHeaderSize(n int64) int64 {
	switch {
	case n < 256:
		return 2
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

// padding returns how many zero bytes the padding bin at pos holds so that
// the data of a size-byte tensor after it starts at a multiple of
// Alignment.
func padding(pos, size int64) int64 {
	end := pos + 2 + binHeaderSize(size)
	return (Alignment - end%Alignment) % Alignment
}
