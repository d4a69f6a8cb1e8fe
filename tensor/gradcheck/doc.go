// Package gradcheck verifies gradients against float64 central finite
// differences, and float32 kernels against float64 ones. Every op in minnow
// is tested through it; layers and models may use it too.
package gradcheck
