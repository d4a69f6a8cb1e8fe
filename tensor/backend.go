package tensor

import (
	"errors"
	"fmt"
	"sync"
)

// ErrUnsupported is returned, wrapped, by a backend that lacks a kernel or a
// dtype for it; the caller may run the op on another backend instead.
var ErrUnsupported = errors.New("not supported by this backend")

// Storage is a block of memory owned by a backend: host memory for the CPU,
// device memory for a GPU. Its contents are only reachable through the
// backend's methods, so nothing forces a device-to-host copy per op.
type Storage interface {
	// Backend returns the backend that owns the storage.
	Backend() Backend
	// DType returns the element type.
	DType() DType
	// Len returns the number of elements.
	Len() int
}

// Ref points at element Off of storage S; kernels address operands through
// it so that views share storage without copies.
type Ref struct {
	S   Storage
	Off int
}

// Backend runs kernels on memory it owns. All kernel methods are
// asynchronous in spirit: a GPU backend may queue them and only Read and Sync
// wait. Each returns an error wrapping ErrUnsupported when it lacks the op or
// dtype, and other errors for failures such as exhausted memory. Operands of
// one call share a dtype unless the method says otherwise. Shapes in the
// comments use row-major order; "contiguous" means dense row-major.
type Backend interface {
	// Name returns a short identifier such as "cpu".
	Name() string
	// Describe returns a one-line account of the backend: its BLAS, threads
	// and device.
	Describe() string
	// Alloc returns storage for n elements of dt with undefined contents; it
	// returns an error when memory is exhausted or dt is not stored.
	Alloc(dt DType, n int) (Storage, error)
	// Free returns storage to the backend (its pool) for reuse; the storage
	// must not be used afterwards.
	Free(s Storage)
	// Write copies a host slice ([]float32, []float64, []uint16 for the 16-bit
	// types, []int32) to dst; it returns an error on a type or length mismatch.
	Write(dst Ref, src any) error
	// Read copies from src into a host slice of the storage's element type,
	// waiting for queued work; it returns an error on a type or length
	// mismatch.
	Read(dst any, src Ref) error
	// Sync waits for queued work to finish and reports the first failure.
	Sync() error

	// Fill sets n elements from dst to v.
	Fill(dst Ref, n int, v float64) error
	// Copy copies, casts (any dtype pair) or accumulates a strided array.
	Copy(a *CopyArgs) error
	// Gemm computes a batch of matrix products.
	Gemm(a *GemmArgs) error
	// Binary computes an element-wise op with broadcasting.
	Binary(a *BinaryArgs) error
	// Unary computes an element-wise function of one operand.
	Unary(a *UnaryArgs) error
	// UnaryGrad computes the gradient of Unary.
	UnaryGrad(a *UnaryArgs) error
	// Reduce reduces the middle axis of an [outer, n, inner] array.
	Reduce(a *ReduceArgs) error
	// ReduceGrad computes the gradient of Reduce.
	ReduceGrad(a *ReduceArgs) error
	// Softmax computes softmax or log-softmax over rows.
	Softmax(a *SoftmaxArgs) error
	// SoftmaxGrad computes the gradient of Softmax.
	SoftmaxGrad(a *SoftmaxArgs) error
	// CrossEntropy computes per-row losses from logits and target ids.
	CrossEntropy(a *CrossEntropyArgs) error
	// CrossEntropyGrad computes the gradient of CrossEntropy for the logits.
	CrossEntropyGrad(a *CrossEntropyArgs) error
	// Norm computes RMSNorm or LayerNorm over rows.
	Norm(a *NormArgs) error
	// NormGrad computes the gradient of Norm.
	NormGrad(a *NormArgs) error
	// RoPE applies (or, with Inverse, undoes) rotary position embedding.
	RoPE(a *RoPEArgs) error
	// Gather copies rows of a table selected by ids (embedding lookup).
	Gather(a *GatherArgs) error
	// ScatterAdd adds rows into a table at ids (embedding gradient).
	ScatterAdd(a *GatherArgs) error
	// SwiGLU computes silu(gate) * up.
	SwiGLU(a *SwiGLUArgs) error
	// SwiGLUGrad computes the gradients of SwiGLU.
	SwiGLUGrad(a *SwiGLUArgs) error
	// Dropout multiplies by a seeded keep mask scaled by 1/(1-P).
	Dropout(a *DropoutArgs) error
	// Attention computes fused scaled-dot-product attention.
	Attention(a *AttentionArgs) error
	// AttentionGrad computes the gradients of Attention.
	AttentionGrad(a *AttentionArgs) error
	// AdamW applies one fused AdamW update.
	AdamW(a *AdamWArgs) error
	// SumSquares adds the sum of squares of n elements of X to the scalar at
	// Out (used for global gradient norms without a host sync per tensor).
	SumSquares(out, x Ref, n int) error
}

// CopyArgs describes Dst[idx] = Src[idx] (or += with Accumulate) for every
// index of Shape, with each side addressed through its own element strides.
// The dtypes may differ; the value is converted.
type CopyArgs struct {
	Shape                  []int
	Dst, Src               Ref
	DstStrides, SrcStrides []int
	Accumulate             bool
}

// GemmArgs describes, for b in [0, Batch):
// C[b] = Alpha*op(A[b])*op(B[b]) + Beta*C[b], with op(A) of shape [M, K],
// op(B) of shape [K, N] and C[b] of shape [M, N], all row-major with leading
// dimensions LDA, LDB, LDC; op transposes when TransA or TransB is set, so A
// is stored [K, M] then. Batch matrices start StrideA, StrideB, StrideC
// elements apart (a zero stride reuses one matrix). Beta 0 ignores C's
// previous contents, NaNs included.
type GemmArgs struct {
	TransA, TransB            bool
	M, N, K                   int
	Alpha, Beta               float64
	A, B, C                   Ref
	LDA, LDB, LDC             int
	Batch                     int
	StrideA, StrideB, StrideC int
}

// BinaryOp names an element-wise binary operation.
type BinaryOp uint8

// The binary operations.
const (
	Add BinaryOp = iota
	Sub
	Mul
	Div
)

// BinaryArgs describes Out[idx] = A[idx] op B[idx] over Shape, with Out
// contiguous and A and B addressed through strides in which broadcast axes
// have stride 0.
type BinaryArgs struct {
	Op                 BinaryOp
	Shape              []int
	Out, A, B          Ref
	AStrides, BStrides []int
}

// UnaryOp names an element-wise function.
type UnaryOp uint8

// The unary functions. Alpha parameterises Scale (y = Alpha*x), AddScalar
// (y = x + Alpha) and Pow (y = x^Alpha). GELU is the tanh approximation.
const (
	Neg UnaryOp = iota
	Scale
	AddScalar
	Exp
	Log
	Sqrt
	Rsqrt
	Square
	Pow
	Tanh
	Sigmoid
	ReLU
	SiLU
	GELU
)

// UnaryArgs describes Y = f(X) over N contiguous elements. For UnaryGrad,
// DX = DY * f'(X) (or += with Accumulate); both X and Y are given so a kernel
// can use whichever is cheaper.
type UnaryArgs struct {
	Op         UnaryOp
	N          int
	Alpha      float64
	X, Y       Ref
	DX, DY     Ref
	Accumulate bool
}

// ReduceOp names a reduction.
type ReduceOp uint8

// The reductions.
const (
	ReduceSum ReduceOp = iota
	ReduceMax
)

// ReduceArgs describes Y[o, i] = reduce over j of X[o, j, i] for a contiguous
// X of shape [Outer, N, Inner] and Y of shape [Outer, Inner]. ReduceGrad sets
// DX (shape of X) from DY (shape of Y): a broadcast for sums, and for max the
// gradient goes to the first position holding the maximum.
type ReduceArgs struct {
	Op              ReduceOp
	Outer, N, Inner int
	X, Y, DX, DY    Ref
}

// SoftmaxArgs describes Y = softmax(X) (or log-softmax with Log) over each
// of Rows contiguous rows of Cols elements; SoftmaxGrad sets DX from Y and
// DY.
type SoftmaxArgs struct {
	Log        bool
	Rows, Cols int
	X, Y       Ref
	DX, DY     Ref
}

// CrossEntropyArgs describes, for each of Rows rows of Logits [Rows, Cols]
// and Targets (Int32 [Rows]), Loss[r] = logsumexp(Logits[r]) -
// Logits[r, Targets[r]], and LSE[r] = logsumexp(Logits[r]) saved for the
// gradient. A target outside [0, Cols) (conventionally -100) is ignored: its
// loss is 0. CrossEntropyGrad sets DLogits[r] = (softmax(Logits[r]) -
// onehot(Targets[r])) * DLoss[r], zero on ignored rows.
type CrossEntropyArgs struct {
	Rows, Cols      int
	Logits, Targets Ref
	Loss, LSE       Ref
	DLogits, DLoss  Ref
}

// NormArgs describes RMSNorm (Y = X / rms(X) * W) or, with Layer,
// LayerNorm (Y = (X - mean) / std * W + B) over each of Rows contiguous
// rows of Cols elements, with Eps added to the variance. W and B are [Cols];
// B may be absent (nil storage). Mean (LayerNorm only) and RStd are [Rows]
// and saved by Norm for NormGrad, which sets DX and, when present, DW and DB
// (accumulating into DW and DB when Accumulate is set).
type NormArgs struct {
	Layer          bool
	Rows, Cols     int
	Eps            float64
	X, W, B, Y     Ref
	Mean, RStd     Ref
	DX, DW, DB, DY Ref
	Accumulate     bool
}

// RoPEArgs describes rotary position embedding on X of shape
// [Rows, Heads, HeadDim] (Rows = batch*time), writing Y of the same shape
// (Y may equal X). Each row r has the position Pos[r] (Int32 [Rows]); pair i
// of the first RotDim features turns by angle Pos[r]*InvFreq[i] (InvFreq has
// RotDim/2 elements of X's dtype). Pairs are adjacent features (2i, 2i+1),
// as llama.cpp and Meta's code rotate, or with HalfSplit the features i and
// i+RotDim/2, as Hugging Face rotates. Inverse turns by the negative angle,
// which is the gradient.
type RoPEArgs struct {
	Rows, Heads, HeadDim, RotDim int
	HalfSplit, Inverse           bool
	X, Y, Pos, InvFreq           Ref
}

// GatherArgs describes Out[r] = Table[Ids[r]] for Rows ids (Int32) into a
// table of rows of Cols elements; ScatterAdd adds DOut[r] into
// DTable[Ids[r]]. An id outside [0, TableRows) is an error.
type GatherArgs struct {
	Rows, Cols, TableRows int
	Table, Ids, Out       Ref
	DTable, DOut          Ref
}

// SwiGLUArgs describes Out = silu(Gate) * Up over N contiguous elements;
// SwiGLUGrad sets DGate and DUp from DOut.
type SwiGLUArgs struct {
	N                int
	Gate, Up, Out    Ref
	DGate, DUp, DOut Ref
}

// DropoutArgs describes Y = X * keep / (1-P), where keep for element i is a
// pure function of (Seed, i), so the gradient reruns it on DY with the same
// seed and no mask is stored.
type DropoutArgs struct {
	N    int
	P    float64
	Seed uint64
	X, Y Ref
}

// AttentionArgs describes fused scaled-dot-product attention with grouped
// query heads:
//
//	Q    [B, Tq, Hq, D]  contiguous
//	K, V [B, Tk, Hkv, D] rows of Hkv*D elements, batches KVBatchStride apart
//	Mask [B, Tq, Tk]     additive, optional; MaskBatchStride 0 broadcasts
//	O    [B, Tq, Hq, D]  contiguous
//	LSE  [B, Hq, Tq]     log-sum-exp of the scaled scores, saved for the
//	                     gradient (optional in Attention)
//
// Query head h uses key/value head h/(Hq/Hkv). Query row i sits at absolute
// position QOffset+i; with Causal it sees keys j <= QOffset+i, which serves
// both training (QOffset 0, Tq = Tk) and decoding from a KV cache
// (QOffset = Tk - Tq). Scale multiplies the scores (usually 1/sqrt(D)).
// AttentionGrad sets DQ [B, Tq, Hq, D] and DK, DV contiguous
// [B, Tk, Hkv, D] from DO, recomputing the probabilities from LSE.
type AttentionArgs struct {
	B, Tq, Tk, Hq, Hkv, D int
	KVBatchStride         int
	QOffset               int
	Causal                bool
	Scale                 float64
	MaskBatchStride       int
	Q, K, V, Mask, O, LSE Ref
	DQ, DK, DV, DO        Ref
}

// AdamWArgs describes one AdamW step over N parameters: with g =
// Grad*GradScale, M = Beta1*M + (1-Beta1)*g, V = Beta2*V + (1-Beta2)*g^2,
// Param -= LR*(mhat/(sqrt(vhat)+Eps) + WeightDecay*Param), where mhat and
// vhat are bias-corrected for step Step (1-based). Grad, M and V have the
// parameter's dtype; a backend may reject other combinations as
// unsupported.
type AdamWArgs struct {
	N                      int
	Param, Grad, M, V      Ref
	LR, Beta1, Beta2, Eps  float64
	WeightDecay, GradScale float64
	Step                   int
}

// MemoryStats counts a backend's storage requests, so benchmarks and tests
// can tell whether a training step reuses its buffers.
type MemoryStats struct {
	// Allocs counts requests served with new memory, AllocBytes their size.
	Allocs, AllocBytes int64
	// Reuses counts requests served from the pool.
	Reuses int64
	// PooledBytes is the memory waiting in the pool now.
	PooledBytes int64
	// Evictions counts pooled buffers dropped to keep the pool within its
	// limit.
	Evictions int64
}

// MemoryReporter is implemented by backends that count their storage
// requests.
type MemoryReporter interface {
	// MemoryStats returns the counts so far.
	MemoryStats() MemoryStats
}

var (
	registryMu sync.Mutex
	registry   = map[string]func() (Backend, error){}
	defaultBE  Backend
)

// Register makes a backend constructor available under name; backends call
// it from init. Registering a name twice panics, as it is a programmer error.
func Register(name string, open func() (Backend, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("tensor: backend registered twice: " + name)
	}
	registry[name] = open
}

// Open returns a new backend by its registered name; it returns an error
// naming the known backends when name is unknown, and the constructor's
// error when the backend cannot start (no device, no driver).
func Open(name string) (Backend, error) {
	registryMu.Lock()
	open, ok := registry[name]
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("tensor: unknown backend %q (registered: %v); import its package, e.g. github.com/minnowml/minnow/tensor/cpu", name, names)
	}
	return open()
}

// SetDefault makes be the backend of tensors created without one.
func SetDefault(be Backend) {
	registryMu.Lock()
	defaultBE = be
	registryMu.Unlock()
}

// Default returns the backend of tensors created without one: the one given
// to SetDefault, else the "cpu" backend if registered. It panics when none is
// available, which means the program forgot to import a backend package.
func Default() Backend {
	registryMu.Lock()
	be := defaultBE
	registryMu.Unlock()
	if be != nil {
		return be
	}
	b, err := Open("cpu")
	if err != nil {
		panic("tensor: no default backend: import _ \"github.com/minnowml/minnow/tensor/cpu\": " + err.Error())
	}
	SetDefault(b)
	return b
}
