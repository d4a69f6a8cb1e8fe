//go:build !amd64 || purego

package vec

import "math"

const hasSIMD = false

func expSumF32(x *float32, n int, shift float32) float64 { panic("vec: no SIMD") }

func expScaleF32(dst, x *float32, n int, shift, scale float32) float64 { panic("vec: no SIMD") }

func roundEven(x float32) float32 { return float32(math.RoundToEven(float64(x))) }

func pow2(n int32) float32 { return math.Float32frombits(uint32(n+127) << 23) }

func adamwF32(p, grad, m, v *float32, n int, k *[9]float32) { panic("vec: no SIMD") }

func geluF32(dst, x *float32, n int) { panic("vec: no SIMD") }

func geluGradF32(dx, x, dy *float32, n int) { panic("vec: no SIMD") }

func sumSquaresF32(x *float32, n int) float64 { panic("vec: no SIMD") }
