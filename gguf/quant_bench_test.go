package gguf

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkEncode times Encode on 1M Gaussian values per type, the cost
// of quantizing one 1024×1024 matrix at export.
func BenchmarkEncode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 1<<20)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, typ := range []GGMLType{F16, Q8_0, Q5_0, Q4_0, Q6_K, Q4_K} {
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				if _, err := Encode(typ, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
