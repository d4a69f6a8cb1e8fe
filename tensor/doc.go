// Package tensor is minnow's autodiff core: n-dimensional tensors on a
// pluggable compute backend, and reverse-mode gradients over the ops a
// transformer needs.
//
// # Tensors and backends
//
// A Tensor is a shape, strides, an offset and a dtype over Storage owned by
// a Backend. Reshape (of dense data), Transpose, Permute, Slice and
// Unsqueeze return views that share storage; ops make a dense copy only
// when a kernel needs one, and MatMul reads transposed views in place as
// transposed BLAS operands. Float32 is the training type, Float64 serves
// gradient checks, BFloat16 and Float16 are storage types, and Int32 holds
// ids, targets and positions.
//
// The Backend interface is written for a GPU: kernels take device
// references (Ref) and sizes, never host slices, and only Read and Sync
// wait for results, so memory stays on the device between ops. A backend
// that lacks a kernel or dtype returns an error wrapping ErrUnsupported,
// which the caller can catch and route to another backend. The CPU backend
// (package tensor/cpu) registers itself as "cpu" when imported and is the
// default; package tensor/conformance checks any backend against a float64
// oracle.
//
// # Gradients
//
// Setting RequiresGrad on a leaf (a parameter) makes every op that uses it
// record a node with its backward function. Backward on a scalar walks the
// recorded graph in reverse topological order, adds gradients into the
// leaves' Grad (accumulating across calls until ZeroGrad) and frees the
// graph: intermediates, their gradients and saved statistics return to the
// backend's pool, so steps with repeating shapes reuse the same buffers.
// Retain keeps an intermediate and its gradient. NoGrad runs code without
// recording anything, for sampling, evaluation and reference models.
//
// # Errors
//
// Ops panic with *Error on invalid operands (wrong shapes, dtypes or
// backends), which is a programmer error, and when a backend fails; Catch
// turns such a panic back into an error for code that must not crash, such
// as a training loop. Using a tensor after it was released or freed by
// Backward panics with a message that says so.
package tensor
