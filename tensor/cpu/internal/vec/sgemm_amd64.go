//go:build !purego

package vec

import "golang.org/x/sys/cpu"

// hasAVX512 reports AVX-512F with the OS saving the ZMM state (cpu checks
// XCR0), on top of the AVX2+FMA the packing routines use.
var hasAVX512 = hasSIMD && cpu.X86.HasAVX512F

// sgemmKernel6x16 sets the 6x16 tile at c (rows ldc floats apart) to
// beta*c + a·b over kc >= 1 steps of packed slivers (see sgemm.go); with
// beta == 0 the tile is not read. AVX2+FMA.
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, beta float32)

// sgemmKernel12x32 is sgemmKernel6x16 for a 12x32 tile. AVX-512F.
//
//go:noescape
func sgemmKernel12x32(kc int, a, b, c *float32, ldc int, beta float32)

// sgemmPackA6 sets dst[p*ldd+i] = alpha*src[i*lda+p] for i < 6 and p < n, n
// a positive multiple of 8. AVX2.
//
//go:noescape
func sgemmPackA6(n int, src *float32, lda int, dst *float32, ldd int, alpha float32)

// sgemmPackT8 sets dst[p*ldd+j] = src[j*ld+p] for j < 8 and p < n, n a
// positive multiple of 8. AVX2.
//
//go:noescape
func sgemmPackT8(n int, src *float32, ld int, dst *float32, ldd int)
