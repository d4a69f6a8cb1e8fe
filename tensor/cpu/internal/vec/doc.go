// Package vec holds the CPU backend's hand-written SIMD kernels (AVX2 with
// FMA on amd64, plus an AVX-512 SGEMM micro-kernel where the CPU has it)
// behind plain Go signatures, with a portable fallback where the
// instructions are missing. Sgemm is the float32 matrix product the backend
// uses when it is built without OpenBLAS. The package is separate from
// package cpu because a cgo package cannot contain Go assembly.
package vec
