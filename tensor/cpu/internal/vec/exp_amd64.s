//go:build !purego

#include "textflag.h"

// exp for 8 float32 lanes, AVX2 + FMA. With x in Y0 (already shifted):
// clamp to [-87, 88] keeping NaN, n = round(x*log2e), r = x - n*ln2 with
// ln2 split in two (c1 + c2) so r is exact, e^r by a degree-6 Taylor
// polynomial (error below 2 ulp for |r| <= ln2/2), times 2^n built in the
// exponent bits; lanes that were below -87 become exactly 0.
// Leaves the result in Y2; clobbers Y0, Y1, Y3.
#define EXP8 \
	VCMPPS $1, Y9, Y0, Y3 \
	VMINPS Y0, Y8, Y0 \
	VMAXPS Y0, Y9, Y0 \
	VMULPS log2e<>(SB), Y0, Y1 \
	VROUNDPS $0, Y1, Y1 \
	VFNMADD231PS c1<>(SB), Y1, Y0 \
	VFNMADD231PS c2<>(SB), Y1, Y0 \
	VMOVUPS p6<>(SB), Y2 \
	VFMADD213PS p5<>(SB), Y0, Y2 \
	VFMADD213PS p4<>(SB), Y0, Y2 \
	VFMADD213PS p3<>(SB), Y0, Y2 \
	VFMADD213PS p2<>(SB), Y0, Y2 \
	VFMADD213PS one<>(SB), Y0, Y2 \
	VFMADD213PS one<>(SB), Y0, Y2 \
	VCVTPS2DQ Y1, Y1 \
	VPADDD i127<>(SB), Y1, Y1 \
	VPSLLD $23, Y1, Y1 \
	VMULPS Y1, Y2, Y2 \
	VANDNPS Y2, Y3, Y2

// Adds the 8 lanes of Y2 into the float64 accumulators Y5 and Y6.
#define ACC8 \
	VCVTPS2PD X2, Y1 \
	VADDPD Y1, Y5, Y5 \
	VEXTRACTF128 $1, Y2, X1 \
	VCVTPS2PD X1, Y1 \
	VADDPD Y1, Y6, Y6

// Sums Y5 and Y6 into X5's low lane.
#define HSUM \
	VADDPD Y5, Y6, Y5 \
	VEXTRACTF128 $1, Y5, X6 \
	VADDPD X6, X5, X5 \
	VHADDPD X5, X5, X5

// func expSumF32(x *float32, n int, shift float32) float64
TEXT ·expSumF32(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y4
	VMOVUPS hi<>(SB), Y8
	VMOVUPS lo<>(SB), Y9
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	SHRQ $3, CX
	JZ sumdone
sumloop:
	VMOVUPS (SI), Y0
	VSUBPS Y4, Y0, Y0
	EXP8
	ACC8
	ADDQ $32, SI
	DECQ CX
	JNZ sumloop
sumdone:
	HSUM
	VZEROUPPER
	MOVSD X5, ret+24(FP)
	RET

// func expScaleF32(dst, x *float32, n int, shift, scale float32) float64
TEXT ·expScaleF32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS shift+24(FP), Y4
	VBROADCASTSS scale+28(FP), Y7
	VMOVUPS hi<>(SB), Y8
	VMOVUPS lo<>(SB), Y9
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	SHRQ $3, CX
	JZ scaledone
scaleloop:
	VMOVUPS (SI), Y0
	VSUBPS Y4, Y0, Y0
	EXP8
	ACC8
	VMULPS Y7, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ scaleloop
scaledone:
	HSUM
	VZEROUPPER
	MOVSD X5, ret+32(FP)
	RET

// For u in Y10: Y11 = p = sigmoid(2u) = e/(e+1) and Y10 = r = 1-p = 1/(e+1)
// with e = e^(2u), both without cancellation (0.5(1+tanh u) = p, 1-tanh²u =
// 4pr). EXP8's clamping keeps e finite. Clobbers Y0-Y3.
#define SIGMOID2 \
	VADDPS Y10, Y10, Y0 \
	EXP8 \
	VADDPS one<>(SB), Y2, Y3 \
	VMOVUPS one<>(SB), Y10 \
	VDIVPS Y3, Y10, Y10 \
	VMULPS Y10, Y2, Y11

// u = sqrt(2/pi)*(x + 0.044715x³) for x in Y12, into Y10.
#define GELUARG \
	VMULPS Y12, Y12, Y10 \
	VMULPS gelua<>(SB), Y10, Y10 \
	VADDPS one<>(SB), Y10, Y10 \
	VMULPS Y12, Y10, Y10 \
	VMULPS geluc<>(SB), Y10, Y10

// func geluF32(dst, x *float32, n int)
// dst = 0.5x(1 + tanh(u)) = x·sigmoid(2u). n is a multiple of 8.
TEXT ·geluF32(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVUPS hi<>(SB), Y8
	VMOVUPS lo<>(SB), Y9
	SHRQ $3, CX
	JZ geludone
geluloop:
	VMOVUPS (SI), Y12
	GELUARG
	SIGMOID2
	VMULPS Y12, Y11, Y11
	VMOVUPS Y11, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ geluloop
geludone:
	VZEROUPPER
	RET

// func geluGradF32(dx, x, dy *float32, n int)
// dx = dy * (0.5(1+t) + 0.5x(1-t²)·c(1+3·0.044715x²)), t = tanh(u), computed
// as dy·p·(1 + 2x·r·c(1+3·0.044715x²)) with p and r from SIGMOID2.
TEXT ·geluGradF32(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	VMOVUPS hi<>(SB), Y8
	VMOVUPS lo<>(SB), Y9
	SHRQ $3, CX
	JZ ggdone
ggloop:
	VMOVUPS (SI), Y12
	GELUARG
	SIGMOID2
	VMULPS Y12, Y12, Y13
	VMULPS gelu3a<>(SB), Y13, Y13
	VADDPS one<>(SB), Y13, Y13
	VMULPS geluc<>(SB), Y13, Y13
	VMULPS Y10, Y13, Y13
	VMULPS Y12, Y13, Y13
	VADDPS Y13, Y13, Y13
	VADDPS one<>(SB), Y13, Y13
	VMULPS Y11, Y13, Y13
	VMULPS (DX), Y13, Y13
	VMOVUPS Y13, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ ggloop
ggdone:
	VZEROUPPER
	RET

// func sumSquaresF32(x *float32, n int) float64
// The sum of x[i]² in float64 (two accumulators of 4 lanes). n is a
// multiple of 8.
TEXT ·sumSquaresF32(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	SHRQ $3, CX
	JZ ssdone
ssloop:
	VCVTPS2PD (SI), Y0
	VCVTPS2PD 16(SI), Y1
	VFMADD231PD Y0, Y0, Y5
	VFMADD231PD Y1, Y1, Y6
	ADDQ $32, SI
	DECQ CX
	JNZ ssloop
ssdone:
	HSUM
	VZEROUPPER
	MOVSD X5, ret+16(FP)
	RET

DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32
DATA c1<>+0(SB)/4, $0x3f318000
DATA c1<>+4(SB)/4, $0x3f318000
DATA c1<>+8(SB)/4, $0x3f318000
DATA c1<>+12(SB)/4, $0x3f318000
DATA c1<>+16(SB)/4, $0x3f318000
DATA c1<>+20(SB)/4, $0x3f318000
DATA c1<>+24(SB)/4, $0x3f318000
DATA c1<>+28(SB)/4, $0x3f318000
GLOBL c1<>(SB), RODATA|NOPTR, $32
DATA c2<>+0(SB)/4, $0xb95e8083
DATA c2<>+4(SB)/4, $0xb95e8083
DATA c2<>+8(SB)/4, $0xb95e8083
DATA c2<>+12(SB)/4, $0xb95e8083
DATA c2<>+16(SB)/4, $0xb95e8083
DATA c2<>+20(SB)/4, $0xb95e8083
DATA c2<>+24(SB)/4, $0xb95e8083
DATA c2<>+28(SB)/4, $0xb95e8083
GLOBL c2<>(SB), RODATA|NOPTR, $32
DATA p6<>+0(SB)/4, $0x3ab60b61
DATA p6<>+4(SB)/4, $0x3ab60b61
DATA p6<>+8(SB)/4, $0x3ab60b61
DATA p6<>+12(SB)/4, $0x3ab60b61
DATA p6<>+16(SB)/4, $0x3ab60b61
DATA p6<>+20(SB)/4, $0x3ab60b61
DATA p6<>+24(SB)/4, $0x3ab60b61
DATA p6<>+28(SB)/4, $0x3ab60b61
GLOBL p6<>(SB), RODATA|NOPTR, $32
DATA p5<>+0(SB)/4, $0x3c088889
DATA p5<>+4(SB)/4, $0x3c088889
DATA p5<>+8(SB)/4, $0x3c088889
DATA p5<>+12(SB)/4, $0x3c088889
DATA p5<>+16(SB)/4, $0x3c088889
DATA p5<>+20(SB)/4, $0x3c088889
DATA p5<>+24(SB)/4, $0x3c088889
DATA p5<>+28(SB)/4, $0x3c088889
GLOBL p5<>(SB), RODATA|NOPTR, $32
DATA p4<>+0(SB)/4, $0x3d2aaaab
DATA p4<>+4(SB)/4, $0x3d2aaaab
DATA p4<>+8(SB)/4, $0x3d2aaaab
DATA p4<>+12(SB)/4, $0x3d2aaaab
DATA p4<>+16(SB)/4, $0x3d2aaaab
DATA p4<>+20(SB)/4, $0x3d2aaaab
DATA p4<>+24(SB)/4, $0x3d2aaaab
DATA p4<>+28(SB)/4, $0x3d2aaaab
GLOBL p4<>(SB), RODATA|NOPTR, $32
DATA p3<>+0(SB)/4, $0x3e2aaaab
DATA p3<>+4(SB)/4, $0x3e2aaaab
DATA p3<>+8(SB)/4, $0x3e2aaaab
DATA p3<>+12(SB)/4, $0x3e2aaaab
DATA p3<>+16(SB)/4, $0x3e2aaaab
DATA p3<>+20(SB)/4, $0x3e2aaaab
DATA p3<>+24(SB)/4, $0x3e2aaaab
DATA p3<>+28(SB)/4, $0x3e2aaaab
GLOBL p3<>(SB), RODATA|NOPTR, $32
DATA p2<>+0(SB)/4, $0x3f000000
DATA p2<>+4(SB)/4, $0x3f000000
DATA p2<>+8(SB)/4, $0x3f000000
DATA p2<>+12(SB)/4, $0x3f000000
DATA p2<>+16(SB)/4, $0x3f000000
DATA p2<>+20(SB)/4, $0x3f000000
DATA p2<>+24(SB)/4, $0x3f000000
DATA p2<>+28(SB)/4, $0x3f000000
GLOBL p2<>(SB), RODATA|NOPTR, $32
DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32
DATA hi<>+0(SB)/4, $0x42b00000
DATA hi<>+4(SB)/4, $0x42b00000
DATA hi<>+8(SB)/4, $0x42b00000
DATA hi<>+12(SB)/4, $0x42b00000
DATA hi<>+16(SB)/4, $0x42b00000
DATA hi<>+20(SB)/4, $0x42b00000
DATA hi<>+24(SB)/4, $0x42b00000
DATA hi<>+28(SB)/4, $0x42b00000
GLOBL hi<>(SB), RODATA|NOPTR, $32
DATA lo<>+0(SB)/4, $0xc2ae0000
DATA lo<>+4(SB)/4, $0xc2ae0000
DATA lo<>+8(SB)/4, $0xc2ae0000
DATA lo<>+12(SB)/4, $0xc2ae0000
DATA lo<>+16(SB)/4, $0xc2ae0000
DATA lo<>+20(SB)/4, $0xc2ae0000
DATA lo<>+24(SB)/4, $0xc2ae0000
DATA lo<>+28(SB)/4, $0xc2ae0000
GLOBL lo<>(SB), RODATA|NOPTR, $32
DATA i127<>+0(SB)/4, $127
DATA i127<>+4(SB)/4, $127
DATA i127<>+8(SB)/4, $127
DATA i127<>+12(SB)/4, $127
DATA i127<>+16(SB)/4, $127
DATA i127<>+20(SB)/4, $127
DATA i127<>+24(SB)/4, $127
DATA i127<>+28(SB)/4, $127
GLOBL i127<>(SB), RODATA|NOPTR, $32
DATA geluc<>+0(SB)/4, $0x3f4c422a
DATA geluc<>+4(SB)/4, $0x3f4c422a
DATA geluc<>+8(SB)/4, $0x3f4c422a
DATA geluc<>+12(SB)/4, $0x3f4c422a
DATA geluc<>+16(SB)/4, $0x3f4c422a
DATA geluc<>+20(SB)/4, $0x3f4c422a
DATA geluc<>+24(SB)/4, $0x3f4c422a
DATA geluc<>+28(SB)/4, $0x3f4c422a
GLOBL geluc<>(SB), RODATA|NOPTR, $32
DATA gelua<>+0(SB)/4, $0x3d372713
DATA gelua<>+4(SB)/4, $0x3d372713
DATA gelua<>+8(SB)/4, $0x3d372713
DATA gelua<>+12(SB)/4, $0x3d372713
DATA gelua<>+16(SB)/4, $0x3d372713
DATA gelua<>+20(SB)/4, $0x3d372713
DATA gelua<>+24(SB)/4, $0x3d372713
DATA gelua<>+28(SB)/4, $0x3d372713
GLOBL gelua<>(SB), RODATA|NOPTR, $32
DATA gelu3a<>+0(SB)/4, $0x3e095d4f
DATA gelu3a<>+4(SB)/4, $0x3e095d4f
DATA gelu3a<>+8(SB)/4, $0x3e095d4f
DATA gelu3a<>+12(SB)/4, $0x3e095d4f
DATA gelu3a<>+16(SB)/4, $0x3e095d4f
DATA gelu3a<>+20(SB)/4, $0x3e095d4f
DATA gelu3a<>+24(SB)/4, $0x3e095d4f
DATA gelu3a<>+28(SB)/4, $0x3e095d4f
GLOBL gelu3a<>(SB), RODATA|NOPTR, $32
DATA two<>+0(SB)/4, $0x40000000
DATA two<>+4(SB)/4, $0x40000000
DATA two<>+8(SB)/4, $0x40000000
DATA two<>+12(SB)/4, $0x40000000
DATA two<>+16(SB)/4, $0x40000000
DATA two<>+20(SB)/4, $0x40000000
DATA two<>+24(SB)/4, $0x40000000
DATA two<>+28(SB)/4, $0x40000000
GLOBL two<>(SB), RODATA|NOPTR, $32
DATA half<>+0(SB)/4, $0x3f000000
DATA half<>+4(SB)/4, $0x3f000000
DATA half<>+8(SB)/4, $0x3f000000
DATA half<>+12(SB)/4, $0x3f000000
DATA half<>+16(SB)/4, $0x3f000000
DATA half<>+20(SB)/4, $0x3f000000
DATA half<>+24(SB)/4, $0x3f000000
DATA half<>+28(SB)/4, $0x3f000000
GLOBL half<>(SB), RODATA|NOPTR, $32
