package vec

import (
	"fmt"
	"sync"
	"unsafe"
)

// Sgemm follows the GotoBLAS/BLIS arrangement. C is computed in MR x NR
// register tiles by a micro-kernel that runs over up to KC steps of k. The
// operands are first copied ("packed") so that the kernel reads both
// contiguously:
//
//   - a KC x NC block of op(B) is packed once per (jc, pc) into NR-wide
//     slivers, each KC rows of NR floats. A sliver is reused, from L1 or L2,
//     by every MR-row tile of the current A block;
//   - an MC x KC block of op(A) is packed into MR-tall slivers, each KC
//     columns of MR floats, scaled by alpha. The block stays in L2 while the
//     kernel walks across the B slivers.
//
// Edges are zero-padded in the packed copies, so the kernel always computes a
// full tile; tiles that stick out of C are computed into a scratch tile and
// only their valid part is merged into C.
type gemmKernel struct {
	name               string
	mr, nr, kc, mc, nc int
	// asm selects the assembly micro-kernel (sgemmKernel12x32 or
	// sgemmKernel6x16 by the tile) and the AVX2 packing routines; without
	// it the portable 6x16 microKernelGo runs. The kernels are called
	// directly rather than through a func field, which would make the
	// scratch tile escape.
	asm bool
}

var (
	// gemmAVX512 holds the 12x32 tile in 24 ZMM accumulators (KC*NR*4 =
	// 32 KiB B slivers, streamed from L2 at 128 bytes per 24 cycles).
	gemmAVX512 = &gemmKernel{"avx512", 12, 32, 256, 144, 3072, true}
	// gemmAVX2 holds the 6x16 tile in 12 YMM accumulators (16 KiB B
	// slivers in L1).
	gemmAVX2 = &gemmKernel{"avx2", 6, 16, 256, 144, 3072, true}
	// gemmGo is the portable fallback.
	gemmGo = &gemmKernel{"go", 6, 16, 256, 96, 3072, false}
)

// maxTile is the largest mr*nr, the size of the scratch tile for edges.
const maxTile = 12 * 32

// sgemmKern is the kernel Sgemm uses: the widest the CPU supports. Tests
// switch it to check the others.
var sgemmKern = bestKernel()

func bestKernel() *gemmKernel {
	switch {
	case hasAVX512:
		return gemmAVX512
	case hasSIMD:
		return gemmAVX2
	}
	return gemmGo
}

// SgemmKernel names the micro-kernel Sgemm uses on this machine: "avx512",
// "avx2" or "go".
func SgemmKernel() string { return sgemmKern.name }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, where op(X) is X or its transpose: op(A) is m x k, op(B) is k x n
// and C is m x n, with leading dimensions (row strides) lda, ldb and ldc. With
// beta == 0 the previous contents of C are ignored (NaN included); with k == 0
// or alpha == 0, C = beta*C and A and B are not read.
//
// It runs on the calling goroutine and is safe for concurrent use on disjoint
// parts of C. It uses an AVX-512 or AVX2+FMA micro-kernel where the CPU has
// one; elsewhere a portable Go kernel computes the same blocked product.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("vec: Sgemm: negative dimension (m=%d n=%d k=%d)", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	checkMatrix("C", m, n, c, ldc)
	if k == 0 || alpha == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	if transA {
		checkMatrix("A", k, m, a, lda)
	} else {
		checkMatrix("A", m, k, a, lda)
	}
	if transB {
		checkMatrix("B", n, k, b, ldb)
	} else {
		checkMatrix("B", k, n, b, ldb)
	}
	g := sgemmKern

	// Even out the blocks so a dimension just over a block size is not
	// left with a sliver of a last block.
	kcStep := ceilDiv(k, ceilDiv(k, g.kc))
	mcStep := roundUp(ceilDiv(m, ceilDiv(m, g.mc)), g.mr)
	ncStep := roundUp(ceilDiv(n, ceilDiv(n, g.nc)), g.nr)

	bufs := sgemmPool.Get().(*sgemmBufs)
	ap := aligned(&bufs.a, mcStep*kcStep)
	bp := aligned(&bufs.b, ncStep*kcStep)

	for jc := 0; jc < n; jc += ncStep {
		nc := min(ncStep, n-jc)
		for pc := 0; pc < k; pc += kcStep {
			kc := min(kcStep, k-pc)
			g.packB(transB, b, ldb, pc, jc, kc, nc, bp)
			// Later k blocks accumulate onto what the first one left.
			bt := beta
			if pc > 0 {
				bt = 1
			}
			for ic := 0; ic < m; ic += mcStep {
				mc := min(mcStep, m-ic)
				g.packA(transA, a, lda, ic, pc, mc, kc, alpha, ap)
				g.macroKernel(mc, nc, kc, ap, bp, bt, c[ic*ldc+jc:], ldc)
			}
		}
	}
	sgemmPool.Put(bufs)
}

// sgemmBufs holds one caller's packing buffers; they are reused through
// sgemmPool so steady-state calls do not allocate.
type sgemmBufs struct{ a, b []float32 }

var sgemmPool = sync.Pool{New: func() any { return new(sgemmBufs) }}

// aligned returns n floats of *buf starting on a 64-byte boundary, growing
// the buffer first if it is too small.
func aligned(buf *[]float32, n int) []float32 {
	const pad = 16 // floats in 64 bytes
	if cap(*buf) < n+pad {
		*buf = make([]float32, n+pad)
	}
	s := (*buf)[:cap(*buf)]
	off := int(-uintptr(unsafe.Pointer(&s[0]))&63) / 4
	return s[off : off+n]
}

// packB copies the kc x nc block of op(B) at row pc, column jc into bp as
// NR-wide slivers: sliver s holds rows 0..kc-1, each the NR columns
// jc+s*NR.. (zero beyond nc).
func (g *gemmKernel) packB(trans bool, b []float32, ldb, pc, jc, kc, nc int, bp []float32) {
	nr := g.nr
	full := nc - nc%nr
	if !trans {
		// op(B)[p][j] = b[p*ldb+j]: walk each row of the block once,
		// dealing its NR-wide pieces out to the slivers.
		for p := 0; p < kc; p++ {
			src := b[(pc+p)*ldb+jc : (pc+p)*ldb+jc+nc]
			switch nr {
			case 16:
				for j0 := 0; j0 < full; j0 += 16 {
					*(*[16]float32)(bp[j0*kc+p*16:]) = *(*[16]float32)(src[j0:])
				}
			case 32:
				for j0 := 0; j0 < full; j0 += 32 {
					*(*[32]float32)(bp[j0*kc+p*32:]) = *(*[32]float32)(src[j0:])
				}
			default:
				for j0 := 0; j0 < full; j0 += nr {
					copy(bp[j0*kc+p*nr:j0*kc+p*nr+nr], src[j0:j0+nr])
				}
			}
			if full < nc {
				d := bp[full*kc+p*nr : full*kc+p*nr+nr]
				copy(d, src[full:])
				clear(d[nc-full:])
			}
		}
		return
	}
	// op(B)[p][j] = b[j*ldb+p]: column j of op(B) is row j of b.
	for j0 := 0; j0 < nc; j0 += nr {
		w := min(nr, nc-j0)
		dst := bp[j0*kc : (j0+nr)*kc]
		p0 := 0
		if g.asm && w == nr && kc >= 8 {
			// 8x8-block transposes of eight rows of b at a time. The
			// slice expression checks that the last row reaches.
			p0 = kc &^ 7
			s := b[(jc+j0)*ldb+pc : (jc+j0+nr-1)*ldb+pc+p0]
			for r := 0; r < nr; r += 8 {
				sgemmPackT8(p0, &s[r*ldb], ldb, &dst[r], nr)
			}
		}
		for jj := 0; jj < w; jj++ {
			src := b[(jc+j0+jj)*ldb+pc:]
			src = src[p0:kc]
			for p, v := range src {
				dst[(p0+p)*nr+jj] = v
			}
		}
		if w < nr {
			for p := 0; p < kc; p++ {
				clear(dst[p*nr+w : p*nr+nr])
			}
		}
	}
}

// packA copies alpha times the mc x kc block of op(A) at row ic, column pc
// into ap as MR-tall slivers: sliver s holds columns 0..kc-1, each the MR
// rows ic+s*MR.. (zero beyond mc).
func (g *gemmKernel) packA(trans bool, a []float32, lda, ic, pc, mc, kc int, alpha float32, ap []float32) {
	mr := g.mr
	if trans {
		// op(A)[i][p] = a[p*lda+i]: walk each row p of a once, dealing
		// its MR-wide pieces out to the slivers (like packB without
		// transposition), scaled by alpha.
		full := mc - mc%mr
		for p := 0; p < kc; p++ {
			src := a[(pc+p)*lda+ic : (pc+p)*lda+ic+mc]
			switch mr {
			case 6:
				for i0 := 0; i0 < full; i0 += 6 {
					s := (*[6]float32)(src[i0:])
					d := (*[6]float32)(ap[i0*kc+p*6:])
					d[0], d[1], d[2] = alpha*s[0], alpha*s[1], alpha*s[2]
					d[3], d[4], d[5] = alpha*s[3], alpha*s[4], alpha*s[5]
				}
			case 12:
				for i0 := 0; i0 < full; i0 += 12 {
					s := (*[12]float32)(src[i0:])
					d := (*[12]float32)(ap[i0*kc+p*12:])
					d[0], d[1], d[2] = alpha*s[0], alpha*s[1], alpha*s[2]
					d[3], d[4], d[5] = alpha*s[3], alpha*s[4], alpha*s[5]
					d[6], d[7], d[8] = alpha*s[6], alpha*s[7], alpha*s[8]
					d[9], d[10], d[11] = alpha*s[9], alpha*s[10], alpha*s[11]
				}
			default:
				for i0 := 0; i0 < full; i0 += mr {
					d := ap[i0*kc+p*mr : i0*kc+p*mr+mr]
					for i, v := range src[i0 : i0+mr] {
						d[i] = alpha * v
					}
				}
			}
			if full < mc {
				d := ap[full*kc+p*mr : full*kc+p*mr+mr]
				for i, v := range src[full:] {
					d[i] = alpha * v
				}
				clear(d[mc-full:])
			}
		}
		return
	}
	for i0 := 0; i0 < mc; i0 += mr {
		h := min(mr, mc-i0)
		dst := ap[i0*kc : (i0+mr)*kc]
		// op(A)[i][p] = a[i*lda+p]: each row of the sliver is contiguous.
		p0 := 0
		if g.asm && h == mr && mr%6 == 0 && kc >= 8 {
			// Six rows and eight columns at a time in assembly.
			p0 = kc &^ 7
			base := (ic+i0)*lda + pc
			s := a[base : base+(mr-1)*lda+p0]
			for r := 0; r < mr; r += 6 {
				sgemmPackA6(p0, &s[r*lda], lda, &dst[r], mr, alpha)
			}
		}
		if p0 == kc {
			continue
		}
		for ii := 0; ii < mr; ii++ {
			if ii >= h {
				for p := p0; p < kc; p++ {
					dst[p*mr+ii] = 0
				}
				continue
			}
			src := a[(ic+i0+ii)*lda+pc:]
			src = src[p0:kc]
			for p, v := range src {
				dst[(p0+p)*mr+ii] = alpha * v
			}
		}
	}
}

// macroKernel computes C[0:mc][0:nc] = beta*C + Ap·Bp from packed blocks.
func (g *gemmKernel) macroKernel(mc, nc, kc int, ap, bp []float32, beta float32, c []float32, ldc int) {
	mr, nr := g.mr, g.nr
	var tile [maxTile]float32
	for j0 := 0; j0 < nc; j0 += nr {
		w := min(nr, nc-j0)
		bs := bp[j0*kc : (j0+nr)*kc]
		for i0 := 0; i0 < mc; i0 += mr {
			h := min(mr, mc-i0)
			as := ap[i0*kc : (i0+mr)*kc]
			if h == mr && w == nr {
				// The whole tile lies in C: the slice checks that
				// all of it exists.
				off := i0*ldc + j0
				g.micro(kc, as, bs, c[off:off+(mr-1)*ldc+nr], ldc, beta)
				continue
			}
			g.micro(kc, as, bs, tile[:mr*nr], nr, 0)
			for i := 0; i < h; i++ {
				row := c[(i0+i)*ldc+j0 : (i0+i)*ldc+j0+w]
				t := tile[i*nr : i*nr+w]
				if beta == 0 {
					copy(row, t)
					continue
				}
				for j, v := range t {
					row[j] = beta*row[j] + v
				}
			}
		}
	}
}

// micro runs the micro-kernel on one tile.
func (g *gemmKernel) micro(kc int, a, b, c []float32, ldc int, beta float32) {
	switch {
	case !g.asm:
		microKernelGo(kc, a, b, c, ldc, beta)
	case g.mr == 12:
		sgemmKernel12x32(kc, &a[0], &b[0], &c[0], ldc, beta)
	default:
		sgemmKernel6x16(kc, &a[0], &b[0], &c[0], ldc, beta)
	}
}

// microKernelGo is the portable micro-kernel: the 6x16 tile is computed as
// four 6x4 column strips so each strip's 24 sums can live in registers.
func microKernelGo(kc int, a, b, c []float32, ldc int, beta float32) {
	a = a[:kc*6]
	b = b[:kc*16]
	for j := 0; j < 16; j += 4 {
		var s00, s01, s02, s03 float32
		var s10, s11, s12, s13 float32
		var s20, s21, s22, s23 float32
		var s30, s31, s32, s33 float32
		var s40, s41, s42, s43 float32
		var s50, s51, s52, s53 float32
		for p := 0; p < kc; p++ {
			bv := (*[4]float32)(b[p*16+j:])
			av := (*[6]float32)(a[p*6:])
			b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
			x := av[0]
			s00 += x * b0
			s01 += x * b1
			s02 += x * b2
			s03 += x * b3
			x = av[1]
			s10 += x * b0
			s11 += x * b1
			s12 += x * b2
			s13 += x * b3
			x = av[2]
			s20 += x * b0
			s21 += x * b1
			s22 += x * b2
			s23 += x * b3
			x = av[3]
			s30 += x * b0
			s31 += x * b1
			s32 += x * b2
			s33 += x * b3
			x = av[4]
			s40 += x * b0
			s41 += x * b1
			s42 += x * b2
			s43 += x * b3
			x = av[5]
			s50 += x * b0
			s51 += x * b1
			s52 += x * b2
			s53 += x * b3
		}
		storeStrip(c[j:], beta, s00, s01, s02, s03)
		storeStrip(c[ldc+j:], beta, s10, s11, s12, s13)
		storeStrip(c[2*ldc+j:], beta, s20, s21, s22, s23)
		storeStrip(c[3*ldc+j:], beta, s30, s31, s32, s33)
		storeStrip(c[4*ldc+j:], beta, s40, s41, s42, s43)
		storeStrip(c[5*ldc+j:], beta, s50, s51, s52, s53)
	}
}

// storeStrip sets c[0:4] = beta*c + s, without reading c when beta == 0.
func storeStrip(c []float32, beta, s0, s1, s2, s3 float32) {
	d := (*[4]float32)(c)
	if beta == 0 {
		d[0], d[1], d[2], d[3] = s0, s1, s2, s3
		return
	}
	d[0] = beta*d[0] + s0
	d[1] = beta*d[1] + s1
	d[2] = beta*d[2] + s2
	d[3] = beta*d[3] + s3
}

// scaleMatrix sets C = beta*C; beta == 0 writes zeros without reading C.
func scaleMatrix(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// checkMatrix panics unless x holds a rows x cols row-major matrix with
// leading dimension ld.
func checkMatrix(name string, rows, cols int, x []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("vec: Sgemm: leading dimension of %s is %d, want at least %d", name, ld, max(1, cols)))
	}
	if rows > 0 && cols > 0 && len(x) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("vec: Sgemm: %s has %d elements, a %dx%d matrix with stride %d needs %d",
			name, len(x), rows, cols, ld, (rows-1)*ld+cols))
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
