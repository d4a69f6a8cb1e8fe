package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/minnowml/minnow/tensor"
)

// Block layouts as ggml-common.h defines them. Q8_0 is a float16 scale
// followed by 32 signed bytes; Q4_0 a float16 scale followed by 16 bytes
// whose low nibbles hold elements 0..15 and high nibbles elements 16..31,
// each stored with an offset of 8. Q5_0 is Q4_0 with a fifth bit per
// value, bit j of a little-endian uint32 after the scale holding element
// j's, and an offset of 16. Q6_K is a super-block of 256 elements
// in 16 sub-blocks of 16, each with a signed 8-bit scale, holding 6-bit
// values with an offset of 32: their low 4 bits in ql (128 bytes), their
// high 2 bits in qh (64 bytes), then the 16 scales and a float16 factor
// d. Each half of 128 elements uses 64 bytes of ql and 32 of qh: for l <
// 32, ql[l] holds elements l (low nibble) and l+64 (high), ql[l+32]
// elements l+32 and l+96, and qh[l] the high bits of l, l+32, l+64 and
// l+96 in its bit pairs 0, 2, 4 and 6. Q4_K is a super-block of 256 in
// 8 sub-blocks of 32, each value d·sc·q − dmin·m with q in 0..15 and a
// 6-bit scale sc and min m per sub-block: float16 d and dmin, 12 bytes
// packing the 8 scales and 8 mins (see q4KScaleMin), and 128 bytes of
// values, where each group of 64 holds sub-block 2g in the low nibbles of
// its 32 bytes and sub-block 2g+1 in the high ones.
const (
	qk8_0 = 32
	qk4_0 = 32
	qk5_0 = 32
)

// blockCodecs quantize one block of each block type Encode writes
// (values in GGUF order to the block's bytes) and dequantize one as
// ggml's dequantize_row_* does.
var blockCodecs = map[GGMLType]struct {
	encode func(dst []byte, x []float32)
	decode func(y []float32, blk []byte)
}{
	Q8_0: {quantizeQ8_0, dequantizeQ8_0},
	Q5_0: {quantizeQ5_0, dequantizeQ5_0},
	Q4_0: {quantizeQ4_0, dequantizeQ4_0},
	Q6_K: {quantizeQ6K, dequantizeQ6K},
	Q4_K: {quantizeQ4K, dequantizeQ4K},
}

// blockShape returns the values and bytes of one block of t, a type of
// the package's table.
func blockShape(t GGMLType) (values, bytes int) {
	tr := ggmlTypes[t]
	return int(tr.blockSize), int(tr.blockBytes)
}

// encodableTypes lists the types Encode and Decode handle, for messages.
const encodableTypes = "F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q6_K, Q4_K"

// Encodable reports whether Encode and Decode handle the type: F32, F16,
// BF16, Q8_0, Q5_0, Q4_0, Q6_K and Q4_K.
func (t GGMLType) Encodable() bool {
	_, block := blockCodecs[t]
	return block || t == F32 || t == F16 || t == BF16
}

// Encode converts src, a tensor's elements in GGUF order (innermost
// dimension fastest), to the raw bytes of type t exactly as ggml's
// reference quantizers (quantize_row_*_ref) and its float16 and bfloat16
// conversions produce them: F16 and BF16 round to nearest even, Q8_0,
// Q5_0 and Q4_0 quantize each block of 32 as the package documentation of
// those constants describes. Q6_K and Q4_K are our own quantizers of ggml's
// layouts (see quantizeQ6K and quantizeQ4K), so their bytes may differ
// from llama.cpp's for the same values. It returns an error when t is not
// Encodable or, for a block type, len(src) is not a multiple of its block
// size (32, or 256 for the k-quants).
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
	}
	if c, ok := blockCodecs[t]; ok {
		n, size := blockShape(t)
		if len(src)%n != 0 {
			return nil, fmt.Errorf("gguf: %s needs a multiple of %d values, got %d", t, n, len(src))
		}
		out := make([]byte, len(src)/n*size)
		eachBlock(len(src)/n, func(b int) { c.encode(out[b*size:(b+1)*size], src[b*n:(b+1)*n]) })
		return out, nil
	}
	return nil, fmt.Errorf("gguf: cannot encode tensor type %s (supported: %s)", t, encodableTypes)
}

// quantizeQ6K quantizes one super-block of 256 values. Each sub-block of
// 16 gets the scale, among candidates around the one that maps its value
// of largest magnitude to -32, that fits its values best in least
// squares; the 16 scales are then stored as 8-bit multiples of d, which
// maps the largest of them to -128, and the values are rounded again
// against the stored scales.
func quantizeQ6K(dst []byte, x []float32) {
	var scales [superBlock / 16]float32
	for j := range scales {
		scales[j] = fitScale(x[16*j:16*j+16], -32, 31)
	}
	maxAbs, maxScale := signedMax(scales[:])
	clear(dst)
	ql, qh, sc := dst[:128], dst[128:192], dst[192:208]
	if maxAbs == 0 {
		return // all zero: with d = 0 every value decodes to 0
	}
	d := maxScale / -128
	binary.LittleEndian.PutUint16(dst[208:], tensor.F16FromFloat32(d))
	d = tensor.F16ToFloat32(binary.LittleEndian.Uint16(dst[208:]))
	for j, s := range scales {
		q := max(-128, min(127, math.Round(float64(s/d))))
		sc[j] = byte(int8(q))
	}
	for i, v := range x {
		step := d * float32(int8(sc[i/16]))
		q := 0
		if step != 0 {
			q = int(max(-32, min(31, math.Round(float64(v/step)))))
		}
		u := byte(q + 32)
		half, l := i/128, i%128
		// l = 32·k + r: k picks the nibble (k = 0, 1 low; 2, 3 high) and
		// the ql offset (k = 0, 2 at r; 1, 3 at r+32), and the qh bit pair.
		k, r := l/32, l%32
		qlIdx := 64*half + r + 32*(k%2)
		ql[qlIdx] |= (u & 0x0f) << (4 * (k / 2))
		qh[32*half+r] |= (u >> 4) << (2 * k)
	}
}

// fitScale returns the scale s for which rounding x/s into [lo, hi] fits
// x best in least squares, among candidates near the one that maps the
// value of largest magnitude to lo (the wider side of the range), and 0
// when x is all zero. For each candidate's integers l the best scale is
// Σlx/Σl², whose squared error Σx² − (Σlx)²/Σl² is least where
// (Σlx)²/Σl² is largest.
func fitScale(x []float32, lo, hi int) float32 {
	amax, vmax := signedMax(x)
	if amax == 0 {
		return 0
	}
	best, bestFit := float32(0), -1.0
	for k := -10; k <= 10; k++ {
		inv := (float64(lo) + 0.1*float64(k)) / float64(vmax)
		var sumLX, sumLL float64
		for _, v := range x {
			l := max(float64(lo), min(float64(hi), math.Round(inv*float64(v))))
			sumLX += l * float64(v)
			sumLL += l * l
		}
		if sumLL > 0 && sumLX*sumLX/sumLL > bestFit {
			best, bestFit = float32(sumLX/sumLL), sumLX*sumLX/sumLL
		}
	}
	return best
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
	id := putSignedScale(dst, x, 8)
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

// signedMax returns the largest magnitude in x and the (first) value
// that has it, with its sign.
func signedMax(x []float32) (amax, vmax float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, vmax = a, v
		}
	}
	return amax, vmax
}

// putSignedScale writes to dst, as float16, the scale d of Q4_0 and Q5_0
// (levels 8 and 16) that maps x's value of largest magnitude, with its
// sign, to -levels, and returns 1/d (0 for an all-zero block), computed
// in float32 as ggml does.
func putSignedScale(dst []byte, x []float32, levels float32) (id float32) {
	_, vmax := signedMax(x)
	d := vmax / -levels
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, tensor.F16FromFloat32(d))
	return id
}

// eachBlock calls f for blocks 0..n-1, in contiguous runs on up to
// GOMAXPROCS goroutines, at least 64 blocks each: the k-quants' fitted
// scales cost over ten times a legacy block's quantization, which at
// export is minutes for a 1B model on one core.
func eachBlock(n int, f func(b int)) {
	workers := min(runtime.GOMAXPROCS(0), max(1, n/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := n * w / workers; b < n*(w+1)/workers; b++ {
				f(b)
			}
		})
	}
	wg.Wait()
}

// quantizeQ5_0 is ggml's quantize_row_q5_0_ref for one block: as Q4_0,
// the value of largest magnitude, with its sign, maps to -16, and values
// truncate after adding 16.5 and clamp at 31; the fifth bits go to qh.
func quantizeQ5_0(dst []byte, x []float32) {
	id := putSignedScale(dst, x, 16)
	q := func(v float32) uint32 {
		return uint32(min(int8(float32(float32(v*id)+16.5)), 31))
	}
	var qh uint32
	for j := range qk5_0 / 2 {
		lo, hi := q(x[j]), q(x[qk5_0/2+j])
		dst[6+j] = byte(lo&0x0f) | byte(hi&0x0f)<<4
		qh |= (lo>>4)<<j | (hi>>4)<<(j+qk5_0/2)
	}
	binary.LittleEndian.PutUint32(dst[2:], qh)
}

// Decode converts n elements of type t from src, raw tensor bytes, to
// float32 as ggml's dequantize_row_* and float conversions do. It returns
// an error when t is not Encodable, n is negative or not a multiple of
// the block size, or src is not exactly the size n elements take.
func Decode(t GGMLType, src []byte, n int) ([]float32, error) {
	if !t.Encodable() {
		return nil, fmt.Errorf("gguf: cannot decode tensor type %s (supported: %s)", t, encodableTypes)
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
	default:
		c := blockCodecs[t]
		bn, bb := blockShape(t)
		for b := range n / bn {
			c.decode(out[b*bn:(b+1)*bn], src[b*bb:(b+1)*bb])
		}
	}
	return out, nil
}

// q4KScaleMin returns sub-block j's 6-bit scale and min from Q4_K's 12
// packed bytes: for j < 4 the low 6 bits of bytes j and j+4; for j >= 4
// byte j+4 holds the low 4 bits of both (scale low nibble, min high) and
// the top 2 bits of bytes j-4 and j hold their high 2 bits.
func q4KScaleMin(p []byte, j int) (sc, m byte) {
	if j < 4 {
		return p[j] & 63, p[j+4] & 63
	}
	return p[j+4]&0x0f | (p[j-4]>>6)<<4, p[j+4]>>4 | (p[j]>>6)<<4
}

// putQ4KScaleMin stores sub-block j's 6-bit scale and min as q4KScaleMin
// reads them; p must start zeroed.
func putQ4KScaleMin(p []byte, j int, sc, m byte) {
	if j < 4 {
		p[j] |= sc
		p[j+4] |= m
		return
	}
	p[j+4] = sc&0x0f | (m&0x0f)<<4
	p[j-4] |= (sc >> 4) << 6
	p[j] |= (m >> 4) << 6
}

// quantizeQ4K quantizes one super-block of 256 values. Each sub-block of
// 32 gets the scale and min (x ≈ scale·q − min, q in 0..15, min >= 0)
// that fit it best in least squares (fitAffine); the 8 scales and 8 mins
// are then stored as 6-bit multiples of d and dmin, which map the largest
// of each to 63, and the values are rounded again against the stored
// pairs.
func quantizeQ4K(dst []byte, x []float32) {
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := range scales {
		scales[j], mins[j] = fitAffine(x[32*j:32*j+32], 15)
		maxScale, maxMin = max(maxScale, scales[j]), max(maxMin, mins[j])
	}
	clear(dst)
	binary.LittleEndian.PutUint16(dst, tensor.F16FromFloat32(maxScale/63))
	binary.LittleEndian.PutUint16(dst[2:], tensor.F16FromFloat32(maxMin/63))
	d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(dst))
	dmin := tensor.F16ToFloat32(binary.LittleEndian.Uint16(dst[2:]))
	packed, qs := dst[4:16], dst[16:]
	six := func(v, unit float32) byte {
		if unit == 0 {
			return 0
		}
		return byte(max(0, min(63, math.Round(float64(v/unit)))))
	}
	for j := range scales {
		sc, m := six(scales[j], d), six(mins[j], dmin)
		putQ4KScaleMin(packed, j, sc, m)
		step, off := d*float32(sc), dmin*float32(m)
		for l, v := range x[32*j : 32*j+32] {
			q := byte(0)
			if step != 0 {
				q = byte(max(0, min(15, math.Round(float64((v+off)/step)))))
			}
			qs[32*(j/2)+l] |= q << (4 * (j % 2))
		}
	}
}

// fitAffine returns scale >= 0 and offset >= 0 for which x (at most 32
// values) ≈ scale·q − offset with q = round((x+offset)/scale) in 0..top
// fits x best in least squares: from ranges shrunk by a few factors, it
// alternates rounding q and the least-squares line through (q, x), its
// intercept held at or below 0.
func fitAffine(x []float32, top int) (scale, offset float32) {
	lo, hi := float64(x[0]), float64(x[0])
	for _, v := range x {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	lo = math.Min(lo, 0)
	if hi <= lo {
		return 0, float32(-lo)
	}
	n, t := float64(len(x)), float64(top)
	bestErr := math.Inf(1)
	var buf [32]float64 // x is a Q4_K sub-block: no allocation per call
	q := buf[:len(x)]
	for _, shrink := range []float64{1, 0.95, 0.9, 0.85} {
		a, b := (hi-lo)*shrink/t, lo // x ≈ a·q + b
		for range 4 {
			var sq, sx, sqq, sqx float64
			for i, v := range x {
				q[i] = math.Max(0, math.Min(t, math.Round((float64(v)-b)/a)))
				sq += q[i]
				sx += float64(v)
				sqq += q[i] * q[i]
				sqx += q[i] * float64(v)
			}
			var e float64
			for i, v := range x {
				r := float64(v) - (a*q[i] + b)
				e += r * r
			}
			if e < bestErr {
				bestErr, scale, offset = e, float32(a), float32(-b)
			}
			det := n*sqq - sq*sq
			if det == 0 {
				break
			}
			na := (n*sqx - sq*sx) / det
			nb := (sx - na*sq) / n
			if nb > 0 { // the min must not be negative: refit through 0
				nb, na = 0, sqx/sqq
			}
			if !(na > 0) {
				break
			}
			a, b = na, nb
		}
	}
	return scale, offset
}

// dequantizeQ8_0 decodes one Q8_0 block: d times each signed byte.
func dequantizeQ8_0(y []float32, blk []byte) {
	d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk))
	for j := range qk8_0 {
		y[j] = float32(int8(blk[2+j])) * d
	}
}

// dequantizeQ4_0 decodes one Q4_0 block: d times each nibble less 8.
func dequantizeQ4_0(y []float32, blk []byte) {
	d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk))
	for j := range qk4_0 / 2 {
		q := blk[2+j]
		y[j] = float32(int(q&0x0f)-8) * d
		y[qk4_0/2+j] = float32(int(q>>4)-8) * d
	}
}

// dequantizeQ5_0 decodes one Q5_0 block: d times each nibble with its
// fifth bit from qh, less 16.
func dequantizeQ5_0(y []float32, blk []byte) {
	d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk))
	qh := binary.LittleEndian.Uint32(blk[2:])
	for j := range qk5_0 / 2 {
		q := blk[6+j]
		lo := int(q&0x0f) | int(qh>>j&1)<<4
		hi := int(q>>4) | int(qh>>(j+qk5_0/2)&1)<<4
		y[j] = float32(lo-16) * d
		y[qk5_0/2+j] = float32(hi-16) * d
	}
}

// dequantizeQ4K decodes one Q4_K super-block: per sub-block j,
// d·sc_j·q − dmin·m_j.
func dequantizeQ4K(y []float32, blk []byte) {
	d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk))
	dmin := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk[2:]))
	packed, qs := blk[4:16], blk[16:]
	for j := range 8 {
		sc, m := q4KScaleMin(packed, j)
		scale, offset := d*float32(sc), dmin*float32(m)
		for l, q := range qs[32*(j/2) : 32*(j/2)+32] {
			y[32*j+l] = scale*float32(q>>(4*(j%2))&0x0f) - offset
		}
	}
}

// dequantizeQ6K decodes one Q6_K super-block: d·sc·(q − 32) with the
// 16-value sub-block's scale sc, q's bits gathered from ql and qh as the
// package documentation describes.
func dequantizeQ6K(y []float32, blk []byte) {
	ql, qh, sc := blk[:128], blk[128:192], blk[192:208]
	d := tensor.F16ToFloat32(binary.LittleEndian.Uint16(blk[208:]))
	for half := range 2 {
		for r := range 32 {
			h := qh[32*half+r]
			lo, hi := ql[64*half+r], ql[64*half+r+32]
			vals := [4]int{
				int(lo&0x0f) | int(h&3)<<4,
				int(hi&0x0f) | int(h>>2&3)<<4,
				int(lo>>4) | int(h>>4&3)<<4,
				int(hi>>4) | int(h>>6&3)<<4,
			}
			for k, v := range vals {
				i := 128*half + 32*k + r
				y[i] = d * float32(int8(sc[i/16])) * float32(v-32)
			}
		}
	}
}
