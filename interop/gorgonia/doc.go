// Package gorgonia moves data between minnow tensors and gorgonia.org/tensor
// *Dense values, so that code built on gorgonia can feed minnow models and
// read their weights or outputs back.
//
// ToDense copies a minnow tensor into a new *Dense and FromDense copies a
// *Dense, including a transposed or sliced view, into a new minnow tensor.
// Neither result shares memory with its source. The element types map as
// follows:
//
//	minnow Float32  <-> gorgonia Float32
//	minnow Float64  <-> gorgonia Float64
//	minnow Int32    <-> gorgonia Int32
//	minnow BFloat16  -> gorgonia Float32 (exact widening)
//	minnow Float16   -> gorgonia Float32 (exact widening)
//
// gorgonia.org/tensor has no 16-bit float type, so the 16-bit minnow types
// become Float32 and come back as Float32; cast the result with
// (*tensor.Tensor).Cast to store it as BFloat16 again. Every other gorgonia
// type (Int, Int64, Bool, Complex128 and so on) is refused with
// ErrUnsupportedDType rather than converted silently. A rank-0 minnow tensor
// maps to a scalar *Dense and back.
//
// The package is a separate Go module (github.com/minnowml/minnow/interop/gorgonia)
// so that gorgonia and its dependencies never enter the core module's
// dependency graph: minnow has its own autodiff and backends, and only
// programs that import this package pay for gorgonia. The module's go.mod
// also pins go4.org/unsafe/assume-no-moving-gc to a 2023 version, without
// which any binary linking gorgonia.org/tensor v0.9.24 panics at start-up
// under Go 1.26.
package gorgonia
