// Package cpu is minnow's CPU backend: host memory, matrix products through
// OpenBLAS (cgo) or a pure-Go BLAS when built without cgo or with the
// noopenblas tag, and element-wise, normalisation, softmax and attention
// kernels split across a fixed pool of worker goroutines.
//
// Importing the package registers the backend as "cpu", which
// tensor.Default returns unless another backend is chosen. Kernels compute
// in float32 and float64; bfloat16 and float16 are storage types that Copy
// converts. Storage released by the tensor layer returns to an exact-size
// pool, so a training step whose shapes repeat allocates no new buffers
// after the first step.
//
// Results are deterministic for a given thread count: work is split into
// the same chunks every time and reductions combine partial results in a
// fixed order.
package cpu
