//go:build !amd64 || purego

package vec

const hasAVX512 = false

func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, beta float32) { panic("vec: no SIMD") }

func sgemmKernel12x32(kc int, a, b, c *float32, ldc int, beta float32) { panic("vec: no SIMD") }

func sgemmPackA6(n int, src *float32, lda int, dst *float32, ldd int, alpha float32) {
	panic("vec: no SIMD")
}

func sgemmPackT8(n int, src *float32, ld int, dst *float32, ldd int) { panic("vec: no SIMD") }
