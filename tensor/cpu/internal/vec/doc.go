// Package vec holds the CPU backend's hand-written SIMD kernels (AVX2 with
// FMA on amd64) behind plain Go signatures, with a portable fallback where
// the instructions are missing. It is separate from package cpu because a
// cgo package cannot contain Go assembly.
package vec
