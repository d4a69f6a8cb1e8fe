// Package conformance checks an implementation of tensor.Backend against
// naive float64 reference code (the oracle) written in this package.
//
// A backend's test calls Run:
//
//	func TestConformance(t *testing.T) { conformance.Run(t, mybackend.New()) }
//
// Run drives the backend only through the tensor.Backend interface: it
// allocates storage with Alloc, fills it with Write, builds the *Args of
// each kernel by hand, reads results back with Read and compares them with
// the oracle. Nothing in it knows about a particular backend, so the CPU
// backend and a GPU backend are held to the same contract.
//
// The suite is organised as subtests named Group/case/dtype, for example
// Gemm/odd-tn/f32 or Attention/gqa-causal/f64. Every case runs for Float32
// and Float64 unless it concerns storage types (Alloc, Write, Read, Fill,
// Copy), which run for every dtype. Results are compared normwise:
// max|got-want| / max|want| must stay under a tolerance of about 1e-5 for
// Float32 and 1e-12 for Float64, looser where the kernel is justified in
// losing more (transcendental functions, softmax, attention). Inputs are
// rounded to the dtype under test before the oracle sees them, so only the
// kernel's own arithmetic counts.
//
// Every operand lives at an odd offset inside a larger storage whose guard
// elements hold NaN (or a sentinel for Int32); a kernel that writes outside
// its operand, or reads padding it should skip, is reported. Outputs that a
// kernel must overwrite start as NaN, so an element it forgets shows up.
//
// A backend may lack an op or a dtype: the Backend contract lets it return an
// error wrapping tensor.ErrUnsupported. Such a case is skipped with a log
// line naming the op, so `go test -v` lists what a backend does not run yet.
// Any other error, a panic, or a numeric mismatch fails the case.
package conformance
