package gguf

import (
	"fmt"
	"math/bits"
)

// GGMLType is the storage type of a tensor, numbered as llama.cpp's ggml
// library numbers them in enum ggml_type; the numbers are what GGUF files
// store, so they must never be renumbered.
type GGMLType uint32

// The tensor types. The gaps (4, 5, 31-33, 36-38) are types llama.cpp has
// removed; files using them cannot be read.
const (
	F32     GGMLType = 0
	F16     GGMLType = 1
	Q4_0    GGMLType = 2
	Q4_1    GGMLType = 3
	Q5_0    GGMLType = 6
	Q5_1    GGMLType = 7
	Q8_0    GGMLType = 8
	Q8_1    GGMLType = 9
	Q2_K    GGMLType = 10
	Q3_K    GGMLType = 11
	Q4_K    GGMLType = 12
	Q5_K    GGMLType = 13
	Q6_K    GGMLType = 14
	Q8_K    GGMLType = 15
	IQ2_XXS GGMLType = 16
	IQ2_XS  GGMLType = 17
	IQ3_XXS GGMLType = 18
	IQ1_S   GGMLType = 19
	IQ4_NL  GGMLType = 20
	IQ3_S   GGMLType = 21
	IQ2_S   GGMLType = 22
	IQ4_XS  GGMLType = 23
	I8      GGMLType = 24
	I16     GGMLType = 25
	I32     GGMLType = 26
	I64     GGMLType = 27
	F64     GGMLType = 28
	IQ1_M   GGMLType = 29
	BF16    GGMLType = 30
	TQ1_0   GGMLType = 34
	TQ2_0   GGMLType = 35
	MXFP4   GGMLType = 39
	NVFP4   GGMLType = 40
	Q1_0    GGMLType = 41
)

// typeTraits describes one tensor type's layout: elements per block and
// bytes per block, as ggml's block structs (ggml-common.h) define them.
type typeTraits struct {
	name       string
	blockSize  uint64
	blockBytes uint64
}

// superBlock is ggml's QK_K, the element count of a k-quant block.
const superBlock = 256

var ggmlTypes = map[GGMLType]typeTraits{
	F32:     {"F32", 1, 4},
	F16:     {"F16", 1, 2},
	Q4_0:    {"Q4_0", 32, 2 + 16},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	Q8_0:    {"Q8_0", 32, 2 + 32},
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32},
	Q2_K:    {"Q2_K", superBlock, 16 + 64 + 2 + 2},
	Q3_K:    {"Q3_K", superBlock, 32 + 64 + 12 + 2},
	Q4_K:    {"Q4_K", superBlock, 2 + 2 + 12 + 128},
	Q5_K:    {"Q5_K", superBlock, 2 + 2 + 12 + 32 + 128},
	Q6_K:    {"Q6_K", superBlock, 128 + 64 + 16 + 2},
	Q8_K:    {"Q8_K", superBlock, 4 + 256 + 32},
	IQ2_XXS: {"IQ2_XXS", superBlock, 2 + 64},
	IQ2_XS:  {"IQ2_XS", superBlock, 2 + 64 + 8},
	IQ3_XXS: {"IQ3_XXS", superBlock, 2 + 96},
	IQ1_S:   {"IQ1_S", superBlock, 2 + 32 + 16},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	IQ3_S:   {"IQ3_S", superBlock, 2 + 64 + 8 + 32 + 4},
	IQ2_S:   {"IQ2_S", superBlock, 2 + 64 + 8 + 8},
	IQ4_XS:  {"IQ4_XS", superBlock, 2 + 2 + 4 + 128},
	I8:      {"I8", 1, 1},
	I16:     {"I16", 1, 2},
	I32:     {"I32", 1, 4},
	I64:     {"I64", 1, 8},
	F64:     {"F64", 1, 8},
	IQ1_M:   {"IQ1_M", superBlock, 32 + 16 + 8},
	BF16:    {"BF16", 1, 2},
	TQ1_0:   {"TQ1_0", superBlock, 48 + 4 + 2},
	TQ2_0:   {"TQ2_0", superBlock, 64 + 2},
	MXFP4:   {"MXFP4", 32, 1 + 16},
	NVFP4:   {"NVFP4", 64, 4 + 32},
	Q1_0:    {"Q1_0", 128, 2 + 16},
}

// String returns the type's name as llama.cpp spells it in upper case
// ("F32", "Q4_K"), or "GGMLType(n)" for a number it does not know.
func (t GGMLType) String() string {
	if tr, ok := ggmlTypes[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// Known reports whether the type is one this package can size.
func (t GGMLType) Known() bool {
	_, ok := ggmlTypes[t]
	return ok
}

// BlockSize returns the number of elements one block of the type holds
// (1 for plain types such as F32); it returns an error for an unknown type.
func (t GGMLType) BlockSize() (uint64, error) {
	tr, ok := ggmlTypes[t]
	if !ok {
		return 0, fmt.Errorf("gguf: unknown tensor type %d", uint32(t))
	}
	return tr.blockSize, nil
}

// BlockBytes returns the size in bytes of one block of the type; it
// returns an error for an unknown type.
func (t GGMLType) BlockBytes() (uint64, error) {
	tr, ok := ggmlTypes[t]
	if !ok {
		return 0, fmt.Errorf("gguf: unknown tensor type %d", uint32(t))
	}
	return tr.blockBytes, nil
}

// maxDims is ggml's GGML_MAX_DIMS: llama.cpp rejects tensors with more.
const maxDims = 4

// ByteSize returns the size in bytes of a tensor of this type with the
// given dimensions (GGUF order, innermost first; no dimensions means a
// scalar). It returns an error for an unknown type, more than four
// dimensions, an innermost dimension that is not a multiple of the block
// size, or an element or byte count that overflows int64.
func (t GGMLType) ByteSize(dims []uint64) (uint64, error) {
	n, err := t.byteSize(dims)
	if err != nil {
		return 0, fmt.Errorf("gguf: %w", err)
	}
	return n, nil
}

// byteSize is ByteSize with errors left unprefixed, for callers that name
// the tensor themselves.
func (t GGMLType) byteSize(dims []uint64) (uint64, error) {
	tr, ok := ggmlTypes[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if len(dims) > maxDims {
		return 0, fmt.Errorf("%d dimensions, at most %d allowed", len(dims), maxDims)
	}
	n, err := elementCount(dims)
	if err != nil {
		return 0, err
	}
	inner := uint64(1)
	if len(dims) > 0 {
		inner = dims[0]
	}
	if inner%tr.blockSize != 0 {
		return 0, fmt.Errorf("innermost dimension %d of a %s tensor is not a multiple of its block size %d",
			inner, tr.name, tr.blockSize)
	}
	hi, lo := bits.Mul64(n/tr.blockSize, tr.blockBytes)
	if hi != 0 || lo > 1<<63-1 {
		return 0, fmt.Errorf("%s tensor of shape %v is too large: its byte size overflows", tr.name, dims)
	}
	return lo, nil
}

// elementCount returns the product of dims, or an error when it (or any
// dimension) does not fit in an int64, the limit llama.cpp applies.
func elementCount(dims []uint64) (uint64, error) {
	for _, d := range dims {
		if d > 1<<63-1 {
			return 0, fmt.Errorf("dimension %d does not fit in int64", d)
		}
	}
	// An empty tensor is valid whatever its other dimensions, as in ggml,
	// so a zero short-circuits the overflow check.
	for _, d := range dims {
		if d == 0 {
			return 0, nil
		}
	}
	n := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > 1<<63-1 {
			return 0, fmt.Errorf("shape %v has more elements than fit in int64", dims)
		}
		n = lo
	}
	return n, nil
}
