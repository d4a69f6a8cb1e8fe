//go:build !purego

#include "textflag.h"

// The SGEMM micro-kernel: a 6x16 tile of C held in twelve YMM accumulators,
// row r in Y(2r) (columns 0-7) and Y(2r+1) (columns 8-15). Each step over k
// loads one 16-wide row of the packed B sliver into Y12/Y13 and broadcasts
// the six packed A values of that column in turn (Y14/Y15 alternate so two
// broadcasts can be in flight), for twelve fused multiply-adds.
//
// Packed layouts (see sgemm.go): the A sliver holds kc groups of 6 floats
// (column p of the 6 rows, alpha already applied), the B sliver kc groups of
// 16 floats (row p of the 16 columns), both contiguous.

// One k step. boff is the byte offset of the B row in BX, aoff that of the
// A column in AX.
#define STEP(aoff, boff) \
	VMOVUPS boff(BX), Y12 \
	VMOVUPS boff+32(BX), Y13 \
	VBROADCASTSS aoff(AX), Y14 \
	VFMADD231PS Y12, Y14, Y0 \
	VFMADD231PS Y13, Y14, Y1 \
	VBROADCASTSS aoff+4(AX), Y15 \
	VFMADD231PS Y12, Y15, Y2 \
	VFMADD231PS Y13, Y15, Y3 \
	VBROADCASTSS aoff+8(AX), Y14 \
	VFMADD231PS Y12, Y14, Y4 \
	VFMADD231PS Y13, Y14, Y5 \
	VBROADCASTSS aoff+12(AX), Y15 \
	VFMADD231PS Y12, Y15, Y6 \
	VFMADD231PS Y13, Y15, Y7 \
	VBROADCASTSS aoff+16(AX), Y14 \
	VFMADD231PS Y12, Y14, Y8 \
	VFMADD231PS Y13, Y14, Y9 \
	VBROADCASTSS aoff+20(AX), Y15 \
	VFMADD231PS Y12, Y15, Y10 \
	VFMADD231PS Y13, Y15, Y11

// Row store with beta == 0: C row = accumulators.
#define STORE0(lo, hi) \
	VMOVUPS lo, (DI) \
	VMOVUPS hi, 32(DI) \
	ADDQ DX, DI

// Row store with beta != 0: C row = beta*C row + accumulators (beta in Y12).
#define STOREB(lo, hi) \
	VFMADD231PS (DI), Y12, lo \
	VFMADD231PS 32(DI), Y12, hi \
	VMOVUPS lo, (DI) \
	VMOVUPS hi, 32(DI) \
	ADDQ DX, DI

// func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, beta float32)
// C[0:6][0:16] (rows ldc floats apart) = beta*C + A·B over kc steps of the
// packed slivers a and b; with beta == 0 C is only written, never read.
// kc must be at least 1.
TEXT ·sgemmKernel6x16(SB), NOSPLIT, $0-44
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), DX
	SHLQ $2, DX

	// Start fetching the C tile while the products run.
	MOVQ DI, SI
	PREFETCHT0 (SI)
	PREFETCHT0 60(SI)
	ADDQ DX, SI
	PREFETCHT0 (SI)
	PREFETCHT0 60(SI)
	ADDQ DX, SI
	PREFETCHT0 (SI)
	PREFETCHT0 60(SI)
	ADDQ DX, SI
	PREFETCHT0 (SI)
	PREFETCHT0 60(SI)
	ADDQ DX, SI
	PREFETCHT0 (SI)
	PREFETCHT0 60(SI)
	ADDQ DX, SI
	PREFETCHT0 (SI)
	PREFETCHT0 60(SI)

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	MOVQ CX, R8
	SHRQ $2, R8
	JZ ktail

kloop4:
	PREFETCHT0 512(BX)
	STEP(0, 0)
	STEP(24, 64)
	PREFETCHT0 576(BX)
	STEP(48, 128)
	STEP(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	DECQ R8
	JNZ kloop4

ktail:
	ANDQ $3, CX
	JZ kdone

kloop1:
	STEP(0, 0)
	ADDQ $24, AX
	ADDQ $64, BX
	DECQ CX
	JNZ kloop1

kdone:
	// beta == 0 (exactly, not NaN) takes the store-only path.
	VMOVSS beta+40(FP), X12
	VXORPS X13, X13, X13
	VUCOMISS X13, X12
	JNE scaled
	JPS scaled
	STORE0(Y0, Y1)
	STORE0(Y2, Y3)
	STORE0(Y4, Y5)
	STORE0(Y6, Y7)
	STORE0(Y8, Y9)
	STORE0(Y10, Y11)
	VZEROUPPER
	RET

scaled:
	VBROADCASTSS X12, Y12
	STOREB(Y0, Y1)
	STOREB(Y2, Y3)
	STOREB(Y4, Y5)
	STOREB(Y6, Y7)
	STOREB(Y8, Y9)
	STOREB(Y10, Y11)
	VZEROUPPER
	RET

// func sgemmPackA6(n int, src *float32, lda int, dst *float32, ldd int, alpha float32)
// Packs six rows of A (row-major, lda floats apart) into an A sliver with
// ldd floats per column: dst[p*ldd+i] = alpha*src[i*lda+p] for i < 6 and
// p < n, n a positive multiple of 8. Each step loads eight columns of the
// six rows, scales them and transposes them with unpack/shuffle: rows 0-3 of
// a column come out as one 128-bit lane, rows 4-5 as a 64-bit half.
TEXT ·sgemmPackA6(SB), NOSPLIT, $0-44
	MOVQ n+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lda+16(FP), DX
	MOVQ dst+24(FP), DI
	MOVQ ldd+32(FP), AX
	VBROADCASTSS alpha+40(FP), Y15
	SHLQ $2, DX
	SHLQ $2, AX
	LEAQ (SI)(DX*2), R8
	ADDQ DX, R8
	SHRQ $3, CX

packa:
	// Source rows 0-5 are SI, SI+lda, SI+2lda, R8, SI+4lda, R8+2lda.
	VMULPS (SI), Y15, Y0
	VMULPS (SI)(DX*1), Y15, Y1
	VMULPS (SI)(DX*2), Y15, Y2
	VMULPS (R8), Y15, Y3
	VMULPS (SI)(DX*4), Y15, Y4
	VMULPS (R8)(DX*2), Y15, Y5
	VUNPCKLPS Y1, Y0, Y6
	VUNPCKHPS Y1, Y0, Y7
	VUNPCKLPS Y3, Y2, Y8
	VUNPCKHPS Y3, Y2, Y9
	VUNPCKLPS Y5, Y4, Y10
	VUNPCKHPS Y5, Y4, Y11
	VSHUFPS $0x44, Y8, Y6, Y0
	VSHUFPS $0xEE, Y8, Y6, Y1
	VSHUFPS $0x44, Y9, Y7, Y2
	VSHUFPS $0xEE, Y9, Y7, Y3

	// Destination columns 0-7 are DI + c*ldd: R10 = DI+3ldd, R9 = DI+4ldd.
	LEAQ (DI)(AX*2), R10
	ADDQ AX, R10
	LEAQ (DI)(AX*4), R9
	VMOVUPS X0, (DI)
	VMOVLPS X10, 16(DI)
	VMOVUPS X1, (DI)(AX*1)
	VMOVHPS X10, 16(DI)(AX*1)
	VMOVUPS X2, (DI)(AX*2)
	VMOVLPS X11, 16(DI)(AX*2)
	VMOVUPS X3, (R10)
	VMOVHPS X11, 16(R10)
	VEXTRACTF128 $1, Y10, X10
	VEXTRACTF128 $1, Y11, X11
	VEXTRACTF128 $1, Y0, (R9)
	VMOVLPS X10, 16(R9)
	VEXTRACTF128 $1, Y1, (R10)(AX*2)
	VMOVHPS X10, 16(R10)(AX*2)
	VEXTRACTF128 $1, Y2, (R9)(AX*2)
	VMOVLPS X11, 16(R9)(AX*2)
	VEXTRACTF128 $1, Y3, (R10)(AX*4)
	VMOVHPS X11, 16(R10)(AX*4)

	ADDQ $32, SI
	ADDQ $32, R8
	LEAQ (DI)(AX*8), DI
	DECQ CX
	JNZ packa
	VZEROUPPER
	RET

// func sgemmPackT8(n int, src *float32, ld int, dst *float32, ldd int)
// Transposes eight rows of src (ld floats apart) into eight columns of a B
// sliver with ldd floats per row: dst[p*ldd+j] = src[j*ld+p] for j < 8 and
// p < n, n a positive multiple of 8. Each step is an 8x8 transpose: unpack
// pairs of rows, shuffle them into 4-row columns per 128-bit lane, then join
// the lanes.
TEXT ·sgemmPackT8(SB), NOSPLIT, $0-40
	MOVQ n+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ dst+24(FP), DI
	MOVQ ldd+32(FP), AX
	SHLQ $2, DX
	SHLQ $2, AX
	LEAQ (SI)(DX*2), R8
	ADDQ DX, R8
	LEAQ (SI)(DX*4), R9
	LEAQ (R9)(DX*2), R10
	ADDQ DX, R10
	SHRQ $3, CX

packt:
	// Source rows 0-7 are SI, SI+ld, SI+2ld, R8, R9, R9+ld, R9+2ld, R10.
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(DX*1), Y1
	VMOVUPS (SI)(DX*2), Y2
	VMOVUPS (R8), Y3
	VMOVUPS (R9), Y4
	VMOVUPS (R9)(DX*1), Y5
	VMOVUPS (R9)(DX*2), Y6
	VMOVUPS (R10), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	// Destination rows 0-7 are DI + p*ldd: BX = DI+3ldd, R11 = DI+4ldd.
	LEAQ (DI)(AX*2), BX
	ADDQ AX, BX
	LEAQ (DI)(AX*4), R11
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(AX*1)
	VMOVUPS Y10, (DI)(AX*2)
	VMOVUPS Y11, (BX)
	VMOVUPS Y12, (R11)
	VMOVUPS Y13, (BX)(AX*2)
	VMOVUPS Y14, (R11)(AX*2)
	VMOVUPS Y15, (BX)(AX*4)

	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	LEAQ (DI)(AX*8), DI
	DECQ CX
	JNZ packt
	VZEROUPPER
	RET

// The AVX-512 micro-kernel: a 12x32 tile of C in 24 ZMM accumulators, row r
// in Z(2r) (columns 0-15) and Z(2r+1) (columns 16-31). Each k step loads the
// 32-wide B row into Z24/Z25 and broadcasts the twelve A values in turn
// through Z26-Z29, for 24 fused multiply-adds. The A sliver holds 12 floats
// per step, the B sliver 32.
#define STEP12(aoff, boff) \
	VMOVUPS boff(BX), Z24 \
	VMOVUPS boff+64(BX), Z25 \
	VBROADCASTSS aoff(AX), Z26 \
	VFMADD231PS Z24, Z26, Z0 \
	VFMADD231PS Z25, Z26, Z1 \
	VBROADCASTSS aoff+4(AX), Z27 \
	VFMADD231PS Z24, Z27, Z2 \
	VFMADD231PS Z25, Z27, Z3 \
	VBROADCASTSS aoff+8(AX), Z28 \
	VFMADD231PS Z24, Z28, Z4 \
	VFMADD231PS Z25, Z28, Z5 \
	VBROADCASTSS aoff+12(AX), Z29 \
	VFMADD231PS Z24, Z29, Z6 \
	VFMADD231PS Z25, Z29, Z7 \
	VBROADCASTSS aoff+16(AX), Z26 \
	VFMADD231PS Z24, Z26, Z8 \
	VFMADD231PS Z25, Z26, Z9 \
	VBROADCASTSS aoff+20(AX), Z27 \
	VFMADD231PS Z24, Z27, Z10 \
	VFMADD231PS Z25, Z27, Z11 \
	VBROADCASTSS aoff+24(AX), Z28 \
	VFMADD231PS Z24, Z28, Z12 \
	VFMADD231PS Z25, Z28, Z13 \
	VBROADCASTSS aoff+28(AX), Z29 \
	VFMADD231PS Z24, Z29, Z14 \
	VFMADD231PS Z25, Z29, Z15 \
	VBROADCASTSS aoff+32(AX), Z26 \
	VFMADD231PS Z24, Z26, Z16 \
	VFMADD231PS Z25, Z26, Z17 \
	VBROADCASTSS aoff+36(AX), Z27 \
	VFMADD231PS Z24, Z27, Z18 \
	VFMADD231PS Z25, Z27, Z19 \
	VBROADCASTSS aoff+40(AX), Z28 \
	VFMADD231PS Z24, Z28, Z20 \
	VFMADD231PS Z25, Z28, Z21 \
	VBROADCASTSS aoff+44(AX), Z29 \
	VFMADD231PS Z24, Z29, Z22 \
	VFMADD231PS Z25, Z29, Z23

#define ZSTORE0(lo, hi) \
	VMOVUPS lo, (DI) \
	VMOVUPS hi, 64(DI) \
	ADDQ DX, DI

#define ZSTOREB(lo, hi) \
	VFMADD231PS (DI), Z30, lo \
	VFMADD231PS 64(DI), Z30, hi \
	VMOVUPS lo, (DI) \
	VMOVUPS hi, 64(DI) \
	ADDQ DX, DI

// func sgemmKernel12x32(kc int, a, b, c *float32, ldc int, beta float32)
// C[0:12][0:32] (rows ldc floats apart) = beta*C + A·B over kc steps of the
// packed slivers a and b; with beta == 0 C is only written, never read.
// kc must be at least 1. Needs AVX-512F.
TEXT ·sgemmKernel12x32(SB), NOSPLIT, $0-44
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), DX
	SHLQ $2, DX

	// Start fetching the C tile (two lines per row) while the products
	// run.
	MOVQ DI, SI
	MOVQ $12, R8
cprefetch:
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	PREFETCHT0 124(SI)
	ADDQ DX, SI
	DECQ R8
	JNZ cprefetch

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

	MOVQ CX, R8
	SHRQ $2, R8
	JZ ztail

zloop4:
	PREFETCHT0 1024(BX)
	STEP12(0, 0)
	PREFETCHT0 1088(BX)
	STEP12(48, 128)
	PREFETCHT0 1152(BX)
	STEP12(96, 256)
	PREFETCHT0 1216(BX)
	STEP12(144, 384)
	ADDQ $192, AX
	ADDQ $512, BX
	DECQ R8
	JNZ zloop4

ztail:
	ANDQ $3, CX
	JZ zdone

zloop1:
	STEP12(0, 0)
	ADDQ $48, AX
	ADDQ $128, BX
	DECQ CX
	JNZ zloop1

zdone:
	// beta == +0 or -0 takes the store-only path (NaN does not).
	MOVL beta+40(FP), R8
	ANDL $0x7fffffff, R8
	JNZ zscaled
	ZSTORE0(Z0, Z1)
	ZSTORE0(Z2, Z3)
	ZSTORE0(Z4, Z5)
	ZSTORE0(Z6, Z7)
	ZSTORE0(Z8, Z9)
	ZSTORE0(Z10, Z11)
	ZSTORE0(Z12, Z13)
	ZSTORE0(Z14, Z15)
	ZSTORE0(Z16, Z17)
	ZSTORE0(Z18, Z19)
	ZSTORE0(Z20, Z21)
	ZSTORE0(Z22, Z23)
	VZEROUPPER
	RET

zscaled:
	VBROADCASTSS beta+40(FP), Z30
	ZSTOREB(Z0, Z1)
	ZSTOREB(Z2, Z3)
	ZSTOREB(Z4, Z5)
	ZSTOREB(Z6, Z7)
	ZSTOREB(Z8, Z9)
	ZSTOREB(Z10, Z11)
	ZSTOREB(Z12, Z13)
	ZSTOREB(Z14, Z15)
	ZSTOREB(Z16, Z17)
	ZSTOREB(Z18, Z19)
	ZSTOREB(Z20, Z21)
	ZSTOREB(Z22, Z23)
	VZEROUPPER
	RET
