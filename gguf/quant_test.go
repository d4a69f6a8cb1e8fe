package gguf

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestEncodeKnownBlocks checks whole blocks against bytes worked out by
// hand from ggml's reference quantizers.
func TestEncodeKnownBlocks(t *testing.T) {
	// One block: -2 first, then 31 ones.
	block := make([]float32, 32)
	for i := range block {
		block[i] = 1
	}
	block[0] = -2
	q4 := []byte{0x00, 0x34, 0xc0} // d = -2/-8 = 0.25 (f16 0x3400)
	for range 15 {
		q4 = append(q4, 0xcc) // 1/0.25+8.5 = 12.5 -> 12 in both nibbles
	}
	// Q5_0: d = -2/-16 = 0.125 (f16 0x3000); -2 -> 0.5 -> 0, and each 1
	// -> 8+16.5 -> 24 = 0b11000: low nibble 8, fifth bit set for elements
	// 1..31.
	q5 := append([]byte{0x00, 0x30, 0xfe, 0xff, 0xff, 0xff, 0x80}, bytes.Repeat([]byte{0x88}, 15)...)
	q8 := []byte{0x08, 0x24, 0x81} // d = 2/127 (f16 0x2408); -2 -> -127
	for range 31 {
		q8 = append(q8, 0x40) // 63.5 rounds away from zero to 64
	}
	// Q6_K, 256 ones: every sub-block's scale is -1/32 (1 -> -32, exact),
	// d = (-1/32)/-128 = 2^-12 (f16 0x0c00), the scales -128 and every
	// stored value -32+32 = 0.
	ones := make([]float32, 256)
	for i := range ones {
		ones[i] = 1
	}
	q6 := append(append(make([]byte, 192), bytes.Repeat([]byte{0x80}, 16)...), 0x00, 0x0c)
	// Q4_K, each sub-block j of 32 holding 0..15 and then 0..15 again,
	// times j+1: its scale is j+1 and its min 0 (exact), so d = 8/63
	// (f16 0x3010 = 0.126953), dmin = 0, the 6-bit scales round((j+1)/d)
	// = 8, 16, 24, 32 (31.5073), 39, 47, 55, 63, and every value q stays
	// itself.
	ramp := make([]float32, 256)
	for i := range ramp {
		ramp[i] = float32((i%32)%16) * float32(i/32+1)
	}
	q4k := []byte{0x10, 0x30, 0x00, 0x00}
	// Scales 0..3 whole in bytes 0..3 with the top bits of scales 4..7
	// (39, 47, 55, 63 >> 4 = 2, 2, 3, 3) above them; mins 0..3 in bytes
	// 4..7 with the mins' top bits (0); bytes 8..11 the low nibbles of
	// scales 4..7 (7, 15, 7, 15) and of their mins (0).
	q4k = append(q4k, 8|2<<6, 16|2<<6, 24|3<<6, 32|3<<6, 0, 0, 0, 0, 7, 15, 7, 15)
	for range 4 {
		for l := range 32 {
			q4k = append(q4k, byte(l%16)|byte(l%16)<<4)
		}
	}
	cases := []struct {
		name string
		typ  GGMLType
		in   []float32
		want []byte
	}{
		{"q4_0", Q4_0, block, q4},
		{"q5_0", Q5_0, block, q5},
		{"q6_k", Q6_K, ones, q6},
		{"q6_k-zero", Q6_K, make([]float32, 256), make([]byte, 210)},
		{"q4_k", Q4_K, ramp, q4k},
		{"q4_k-zero", Q4_K, make([]float32, 256), make([]byte, 144)},
		{"q8_0", Q8_0, block, q8},
		// 0/-8 is -0 in C as in Go, so ggml stores the scale as f16 -0.
		{"q4_0-zero", Q4_0, make([]float32, 32), append([]byte{0, 0x80}, bytes.Repeat([]byte{0x88}, 16)...)},
		{"q8_0-zero", Q8_0, make([]float32, 32), make([]byte, 34)},
		{"f16", F16, []float32{1, -2, 65504, 1.0 / 3}, []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x55, 0x35}},
		// 1+2^-8 is a tie between bf16 1 and 1+2^-7: even wins (1).
		{"bf16", BF16, []float32{1, -2, 1 + 1.0/256, 1 + 3.0/256}, []byte{0x80, 0x3f, 0x00, 0xc0, 0x80, 0x3f, 0x82, 0x3f}},
		{"f32", F32, []float32{1, -2}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}},
	}
	for _, c := range cases {
		got, err := Encode(c.typ, c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: got % x, want % x", c.name, got, c.want)
		}
	}
}

// TestEncodeRoundTrip checks that Decode(Encode(x)) stays within each
// type's error bound on random data: exact for F32, half an ulp for the
// float types, half a step for Q8_0, one step for Q4_0 and Q5_0, whose
// value of largest magnitude of the opposite sign is clamped from 8 (16)
// steps to 7 (15), and
// for Q6_K half a step of a sub-block plus the rounding of its 8-bit
// scale, which is relative to the whole super-block's largest magnitude.
func TestEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 256*8)
	for i := range x {
		x[i] = float32(rng.NormFloat64()) * float32(math.Pow(10, float64(i%5-2)))
	}
	cases := []struct {
		typ GGMLType
		// bound returns the largest error allowed for an element, given
		// the largest magnitude in its block.
		bound func(v, amax float32) float64
		// block is the span amax is taken over (32 when 0).
		block int
	}{
		{F32, func(v, amax float32) float64 { return 0 }, 0},
		{F16, func(v, amax float32) float64 { return math.Abs(float64(v))*(1.0/2048) + 3e-8 }, 0},
		{BF16, func(v, amax float32) float64 { return math.Abs(float64(v)) * (1.0 / 256) }, 0},
		// The f16 scale adds a relative error of 2^-11 on top of the step.
		{Q8_0, func(v, amax float32) float64 { return float64(amax) * (1.0/254 + 1.0/1024) }, 0},
		{Q4_0, func(v, amax float32) float64 { return float64(amax) * (1.0/8 + 1.0/1024) }, 0},
		{Q5_0, func(v, amax float32) float64 { return float64(amax) * (1.0/16 + 1.0/1024) }, 0},
		// A step is at most amax/31 (the fitted scale may exceed amax/32),
		// and the 8-bit scale is off by at most d/2 = amax/8192 per unit
		// of the value's 6-bit integer (at most 32).
		{Q6_K, func(v, amax float32) float64 { return float64(amax) * (1.0/62 + 32.0/8192 + 1.0/1024) }, 256},
		// A step is at most a sub-block's range/15 (2·amax/15, the fit
		// only narrows it), and the 6-bit scale and min are each off by at
		// most half a unit of 1/63 of the super-block's largest: over 15
		// steps and the min, 8/63 of the range (2·amax).
		{Q4_K, func(v, amax float32) float64 { return float64(amax) * (1.0/15 + 16.0/63 + 1.0/512) }, 256},
	}
	for _, c := range cases {
		enc, err := Encode(c.typ, x)
		if err != nil {
			t.Fatal(err)
		}
		if size, _ := c.typ.ByteSize([]uint64{uint64(len(x))}); uint64(len(enc)) != size {
			t.Fatalf("%s: %d bytes, want %d", c.typ, len(enc), size)
		}
		dec, err := Decode(c.typ, enc, len(x))
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		bs := c.block
		if bs == 0 {
			bs = 32
		}
		for b := 0; b < len(x); b += bs {
			var amax float32
			for _, v := range x[b : b+bs] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			for i := b; i < b+bs; i++ {
				e := math.Abs(float64(dec[i] - x[i]))
				if e > c.bound(x[i], amax) {
					t.Fatalf("%s: element %d: %g decodes to %g, error %g over the bound %g", c.typ, i, x[i], dec[i], e, c.bound(x[i], amax))
				}
				worst = max(worst, e/float64(max(amax, 1e-30)))
			}
		}
		t.Logf("%s: worst error %.3g of the block's largest magnitude", c.typ, worst)
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
	}{
		{"q8_0-partial-block", func() error { _, err := Encode(Q8_0, make([]float32, 31)); return err }},
		{"q4_0-partial-block", func() error { _, err := Encode(Q4_0, make([]float32, 33)); return err }},
		{"q5_0-partial-block", func() error { _, err := Encode(Q5_0, make([]float32, 48)); return err }},
		{"q6_k-partial-block", func() error { _, err := Encode(Q6_K, make([]float32, 128)); return err }},
		{"q4_k-partial-block", func() error { _, err := Encode(Q4_K, make([]float32, 255)); return err }},
		{"q5_k-encode", func() error { _, err := Encode(Q5_K, make([]float32, 256)); return err }},
		{"q5_k-decode", func() error { _, err := Decode(Q5_K, make([]byte, 176), 256); return err }},
		{"short", func() error { _, err := Decode(Q8_0, make([]byte, 33), 32); return err }},
		{"negative", func() error { _, err := Decode(F32, nil, -1); return err }},
	}
	for _, c := range cases {
		if c.run() == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
