//go:build !purego

#include "textflag.h"

// func adamwF32(p, grad, m, v *float32, n int, k *[9]float32)
// k: gradScale, b1, 1-b1, b2, 1-b2, c2, eps, lr*c1, lr*wd. n is a multiple of 8.
// m = b1*m + (1-b1)*g', v = b2*v + (1-b2)*g'^2 with g' = g*gradScale,
// p -= lr*c1*m/(sqrt(v*c2)+eps) + lr*wd*p.
TEXT ·adamwF32(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), AX
	MOVQ grad+8(FP), BX
	MOVQ m+16(FP), CX
	MOVQ v+24(FP), DX
	MOVQ n+32(FP), SI
	MOVQ k+40(FP), R8
	VBROADCASTSS 0(R8), Y8
	VBROADCASTSS 4(R8), Y9
	VBROADCASTSS 8(R8), Y10
	VBROADCASTSS 12(R8), Y11
	VBROADCASTSS 16(R8), Y12
	VBROADCASTSS 20(R8), Y13
	VBROADCASTSS 24(R8), Y14
	VBROADCASTSS 28(R8), Y7
	VBROADCASTSS 32(R8), Y15
	SHRQ $3, SI
	JZ done
loop:
	VMOVUPS (BX), Y0
	VMULPS Y8, Y0, Y0
	VMULPS (CX), Y9, Y1
	VFMADD231PS Y0, Y10, Y1
	VMOVUPS Y1, (CX)
	VMULPS Y0, Y0, Y0
	VMULPS (DX), Y11, Y2
	VFMADD231PS Y0, Y12, Y2
	VMOVUPS Y2, (DX)
	VMULPS Y13, Y2, Y2
	VSQRTPS Y2, Y2
	VADDPS Y14, Y2, Y2
	VMULPS Y7, Y1, Y1
	VDIVPS Y2, Y1, Y1
	VMOVUPS (AX), Y3
	VMULPS Y15, Y3, Y4
	VADDPS Y4, Y1, Y1
	VSUBPS Y1, Y3, Y3
	VMOVUPS Y3, (AX)
	ADDQ $32, AX
	ADDQ $32, BX
	ADDQ $32, CX
	ADDQ $32, DX
	DECQ SI
	JNZ loop
done:
	VZEROUPPER
	RET
