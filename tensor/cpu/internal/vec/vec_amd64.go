//go:build !purego

package vec

import (
	"math"

	"golang.org/x/sys/cpu"
)

var hasSIMD = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func expSumF32(x *float32, n int, shift float32) float64

//go:noescape
func expScaleF32(dst, x *float32, n int, shift, scale float32) float64

func roundEven(x float32) float32 { return float32(math.RoundToEven(float64(x))) }

func pow2(n int32) float32 { return math.Float32frombits(uint32(n+127) << 23) }

//go:noescape
func adamwF32(p, grad, m, v *float32, n int, k *[9]float32)

//go:noescape
func geluF32(dst, x *float32, n int)

//go:noescape
func geluGradF32(dx, x, dy *float32, n int)

//go:noescape
func sumSquaresF32(x *float32, n int) float64
