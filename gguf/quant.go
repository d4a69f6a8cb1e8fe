package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/minnowml/minnow/tensor"
)

// Block layouts as ggml-common.h defines them. Q8_0 is a float16 scale
// followed by 32 signed bytes; Q4_0 a float16 scale followed by 16 bytes
// whose low nibbles hold elements 0..15 and high nibbles elements 16..31,
// each stored with an offset of 8.
const (
	qk8_0 = 32
	qk4_0 = 32
)

// Encodable reports whether Encode and Decode handle the type: F32, F16,
// BF16, Q8_0 and Q4_0.
func (t GGMLType) Encodable() bool {
	switch t {
	case F32, F16, BF16, Q8_0, Q4_0:
		return true
	}
	return false
}

// Encode converts src, a tensor's elements in GGUF order (innermost
// dimension fastest), to the raw bytes of type t exactly as ggml's
// reference quantizers (quantize_row_*_ref) and its float16 and bfloat16
// conversions produce them: F16 and BF16 round to nearest even, Q8_0 and
// Q4_0 quantize each block of 32 as the package documentation of those
// constants describes. It returns an error when t is not Encodable or,
// for a block type, len(src) is not a multiple of 32.
func Encode(t GGMLType, src []float32) ([]byte, error) {
	switch t {
	case F32:
		out := make([]byte, 4*len(src))
		for i, x := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out, nil
	case F16, BF16:
		conv := tensor.F16FromFloat32
		if t == BF16 {
			conv = tensor.BF16FromFloat32
		}
		out := make([]byte, 2*len(src))
		for i, x := range src {
			binary.LittleEndian.PutUint16(out[2*i:], conv(x))
		}
		return out, nil
	case Q8_0:
		if len(src)%qk8_0 != 0 {
			return nil, fmt.Errorf("gguf: Q8_0 needs a multiple of %d values, got %d", qk8_0, len(src))
		}
		out := make([]byte, len(src)/qk8_0*(2+qk8_0))
		for b := range len(src) / qk8_0 {
			quantizeQ8_0(out[b*(2+qk8_0):(b+1)*(2+qk8_0)], src[b*qk8_0:(b+1)*qk8_0])
		}
		return out, nil
	case Q4_0:
		if len(src)%qk4_0 != 0 {
			return nil, fmt.Errorf("gguf: Q4_0 needs a multiple of %d values, got %d", qk4_0, len(src))
		}
		out := make([]byte, len(src)/qk4_0*(2+qk4_0/2))
		for b := range len(src) / qk4_0 {
			quantizeQ4_0(out[b*(2+qk4_0/2):(b+1)*(2+qk4_0/2)], src[b*qk4_0:(b+1)*qk4_0])
		}
		return out, nil
	}
	return nil, fmt.Errorf("gguf: cannot encode tensor type %s (supported: F32, F16, BF16, Q8_0, Q4_0)", t)
}

// quantizeQ8_0 is ggml's quantize_row_q8_0_ref for one block: the scale
// maps the largest magnitude to 127 and each value rounds half away from
// zero, as C's roundf does.
func quantizeQ8_0(dst []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, tensor.F16FromFloat32(d))
	for j, v := range x {
		dst[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
	}
}

// quantizeQ4_0 is ggml's quantize_row_q4_0_ref for one block: the scale
// maps the value of largest magnitude, with its sign, to -8, so that the
// asymmetric range -8..7 covers it exactly; values then truncate toward
// zero after adding 8.5 (rounding to nearest) and clamp at 15.
func quantizeQ4_0(dst []byte, x []float32) {
	var amax, vmax float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, vmax = a, v
		}
	}
	d := vmax / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, tensor.F16FromFloat32(d))
	nib := func(v float32) byte {
		// The conversion truncates as C's (int8_t) cast does; the sum is
		// rounded to float32 first so no fused multiply-add changes it.
		q := int8(float32(float32(v*id) + 8.5))
		return byte(min(q, 15))
	}
	for j := range qk4_0 / 2 {
		dst[2+j] = nib(x[j]) | nib(x[qk4_0/2+j])<<4
	}
}

// Decode converts n elements of type t from src, raw tensor bytes, to
// float32 as ggml's dequantize_row_* and float conversions do. It returns
// an error when t is not Encodable, n is negative or not a multiple of
// the block size, or src is not exactly the size n elements take.
func Decode(t GGMLType, src []byte, n int) ([]float32, error) {
	if !t.Encodable() {
		return nil, fmt.Errorf("gguf: cannot decode tensor type %s (supported: F32, F16, BF16, Q8_0, Q4_0)", t)
	}
	if n < 0 {
		return nil, fmt.Errorf("gguf: negative element count %d", n)
	}
	size, err := t.ByteSize([]uint64{uint64(n)})
	if err != nil {
		return nil, err
	}
	if uint64(len(src)) != size {
		return nil, fmt.Errorf("gguf: %d %s elements take %d bytes, got %d", n, t, size, len(src))
	}
	out := make([]float32, n)
	switch t {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = tensor.F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = tensor.BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q8_0:
		for b := range n / qk8_0 {
			blk := src[b*(2+qk8_0):]
			d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk))
			for j := range qk8_0 {
				out[b*qk8_0+j] = float32(int8(blk[2+j])) * d
			}
		}
	case Q4_0:
		for b := range n / qk4_0 {
			blk := src[b*(2+qk4_0/2):]
			d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk))
			for j := range qk4_0 / 2 {
				q := blk[2+j]
				out[b*qk4_0+j] = float32(int(q&0x0f)-8) * d
				out[b*qk4_0+qk4_0/2+j] = float32(int(q>>4)-8) * d
			}
		}
	}
	return out, nil
}
