package conformance

import (
	"fmt"
	"math"
	"strings"

	"github.com/minnowml/minnow/tensor"
)

// This file covers storage: Alloc, Write, Read, Free, Sync, Fill and Copy.

func memoryCases() []kcase {
	return []kcase{
		{name: "identity", single: true, run: func(h *harness) {
			if n := h.be.Name(); n == "" || strings.ContainsAny(n, " \t\n") {
				h.Errorf("Name() = %q, want a short identifier", n)
			}
			if d := h.be.Describe(); d == "" || strings.Contains(d, "\n") {
				h.Errorf("Describe() = %q, want one line", d)
			}
		}},
		{name: "round-trip", dts: allDTypes, run: memRoundTrip},
		{name: "offset", dts: allDTypes, run: memOffset},
		{name: "free-reuse", dts: allDTypes, run: memFreeReuse},
		{name: "errors", dts: allDTypes, run: memErrors},
	}
}

// randomHost returns n random bit patterns in dt's host type; float
// patterns include NaNs with payloads, which Write and Read must carry
// unchanged.
func (h *harness) randomHost(dt tensor.DType, n int) any {
	switch dt {
	case tensor.Float32:
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(h.rng.Uint32())
		}
		return v
	case tensor.Float64:
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Float64frombits(h.rng.Uint64())
		}
		return v
	case tensor.Int32:
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(h.rng.Uint32())
		}
		return v
	}
	v := make([]uint16, n)
	for i := range v {
		v[i] = uint16(h.rng.Uint32())
	}
	return v
}

// rawHost returns an empty host slice of dt's host type, as the Backend
// takes it.
func rawHost(dt tensor.DType, n int) any { return unwrap(newHost(dt, n)) }

// bits returns the bit patterns of a host slice, so that comparisons are
// exact even for NaN payloads.
func bits(host any) []uint64 {
	var out []uint64
	switch v := host.(type) {
	case []float32:
		for _, x := range v {
			out = append(out, uint64(math.Float32bits(x)))
		}
	case []float64:
		for _, x := range v {
			out = append(out, math.Float64bits(x))
		}
	case []int32:
		for _, x := range v {
			out = append(out, uint64(uint32(x)))
		}
	case []uint16:
		for _, x := range v {
			out = append(out, uint64(x))
		}
	}
	return out
}

func (h *harness) sameBits(what string, got, want any) {
	h.Helper()
	g, w := bits(got), bits(want)
	if len(g) != len(w) {
		h.Fatalf("%s: %d elements, want %d", what, len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			h.Fatalf("%s: element %d has bits %#x, want %#x", what, i, g[i], w[i])
		}
	}
}

func memRoundTrip(h *harness) {
	const n = 37
	s := h.alloc(h.dt, n)
	if s.DType() != h.dt {
		h.Errorf("storage DType() = %s, want %s", s.DType(), h.dt)
	}
	if s.Len() != n {
		h.Errorf("storage Len() = %d, want %d", s.Len(), n)
	}
	if s.Backend() != h.be {
		h.Errorf("storage Backend() is %v, not the backend that allocated it", s.Backend())
	}
	src := h.randomHost(h.dt, n)
	h.call("Write", h.be.Write(tensor.Ref{S: s}, src))
	got := rawHost(h.dt, n)
	h.call("Read", h.be.Read(got, tensor.Ref{S: s}))
	h.sameBits("Read after Write", got, src)
	// A second Write replaces the contents.
	src2 := h.randomHost(h.dt, n)
	h.call("Write", h.be.Write(tensor.Ref{S: s}, src2))
	h.call("Read", h.be.Read(got, tensor.Ref{S: s}))
	h.sameBits("Read after a second Write", got, src2)
	h.call("Sync", h.be.Sync())
}

func memOffset(h *harness) {
	const n, off, m = 40, 11, 6
	s := h.alloc(h.dt, n)
	base := h.randomHost(h.dt, n)
	h.call("Write", h.be.Write(tensor.Ref{S: s}, base))
	part := h.randomHost(h.dt, m)
	h.call("Write", h.be.Write(tensor.Ref{S: s, Off: off}, part))
	// Read the part at its offset, and everything to see the rest intact.
	gotPart := rawHost(h.dt, m)
	h.call("Read", h.be.Read(gotPart, tensor.Ref{S: s, Off: off}))
	h.sameBits("Read at the write offset", gotPart, part)
	all := rawHost(h.dt, n)
	h.call("Read", h.be.Read(all, tensor.Ref{S: s}))
	want := bits(base)
	copy(want[off:], bits(part))
	g := bits(all)
	for i := range g {
		if g[i] != want[i] {
			h.Fatalf("after writing %d elements at offset %d, element %d has bits %#x, want %#x", m, off, i, g[i], want[i])
		}
	}
	// A read that ends at the storage's end is in range.
	tail := rawHost(h.dt, 3)
	h.call("Read", h.be.Read(tail, tensor.Ref{S: s, Off: n - 3}))
	h.sameBits("Read of the last elements", tail, sliceHost(all, n-3, n))
}

func sliceHost(host any, lo, hi int) any {
	switch v := host.(type) {
	case []float32:
		return v[lo:hi]
	case []float64:
		return v[lo:hi]
	case []int32:
		return v[lo:hi]
	case []uint16:
		return v[lo:hi]
	}
	return nil
}

func memFreeReuse(h *harness) {
	// Storage that is freed and allocated again, as the tensor layer's
	// pool does every step, must behave like new storage.
	for round := 0; round < 4; round++ {
		n := 64 + round%2
		s, err := h.be.Alloc(h.dt, n)
		h.call("Alloc", err)
		src := h.randomHost(h.dt, n)
		h.call("Write", h.be.Write(tensor.Ref{S: s}, src))
		got := rawHost(h.dt, n)
		h.call("Read", h.be.Read(got, tensor.Ref{S: s}))
		h.sameBits(fmt.Sprintf("round %d", round), got, src)
		h.be.Free(s)
	}
}

func memErrors(h *harness) {
	const n = 8
	s := h.alloc(h.dt, n)
	// A host slice of another element type.
	var wrong any = make([]float64, n)
	if h.dt == tensor.Float64 {
		wrong = make([]float32, n)
	}
	if err := h.be.Write(tensor.Ref{S: s}, wrong); err == nil {
		h.Errorf("Write of %T into %s storage returned no error", wrong, h.dt)
	}
	if err := h.be.Read(wrong, tensor.Ref{S: s}); err == nil {
		h.Errorf("Read of %s storage into %T returned no error", h.dt, wrong)
	}
	// A host slice longer than the storage from the offset.
	long := rawHost(h.dt, n+1)
	if err := h.be.Write(tensor.Ref{S: s}, long); err == nil {
		h.Errorf("Write of %d elements into %d returned no error", n+1, n)
	}
	if err := h.be.Read(long, tensor.Ref{S: s}); err == nil {
		h.Errorf("Read of %d elements from %d returned no error", n+1, n)
	}
	short := rawHost(h.dt, 3)
	if err := h.be.Write(tensor.Ref{S: s, Off: n - 2}, short); err == nil {
		h.Errorf("Write of 3 elements at offset %d of %d returned no error", n-2, n)
	}
	// The storage still works.
	src := h.randomHost(h.dt, n)
	h.call("Write", h.be.Write(tensor.Ref{S: s}, src))
	got := rawHost(h.dt, n)
	h.call("Read", h.be.Read(got, tensor.Ref{S: s}))
	h.sameBits("Read after failed calls", got, src)
}

func fillCases() []kcase {
	return []kcase{
		{name: "range", dts: allDTypes, run: func(h *harness) {
			fillCheck(h, 40, 10, 20, []float64{0.1, -2.5, 0, 7})
		}},
		{name: "whole", dts: allDTypes, run: func(h *harness) { fillCheck(h, 33, 0, 33, []float64{-3}) }},
		{name: "empty", dts: allDTypes, run: func(h *harness) { fillCheck(h, 4, 2, 2, []float64{9}) }},
		{name: "large", dts: allDTypes, run: func(h *harness) { fillCheck(h, 100003, 1, 100001, []float64{0.5, 1.0 / 3}) }},
		{name: "special", dts: []tensor.DType{tensor.Float32, tensor.Float64, tensor.BFloat16, tensor.Float16}, run: func(h *harness) {
			// Infinities, NaN, f16 overflow (to Inf) and subnormals, each
			// rounded as tensor.F16FromFloat32 / BF16FromFloat32 round.
			fillCheck(h, 12, 2, 8, []float64{math.Inf(1), math.Inf(-1), math.NaN(), 70000, 1e-6, -1e-40, 65520, 1 + 1.0/2048})
		}},
	}
}

// fillCheck fills elements [lo, hi) of an operand of n elements with each
// value in turn and checks the operand.
func fillCheck(h *harness, n, lo, hi int, vals []float64) {
	init := make([]float64, n)
	for i := range init {
		init[i] = float64(i%50) - 20.25
	}
	b := h.newBuf(h.dt, init)
	want := append([]float64(nil), init...)
	for _, v := range vals {
		h.call("Fill", h.be.Fill(b.at(lo), hi-lo, v))
		for i := lo; i < hi; i++ {
			want[i] = quantize(h.dt, v)
		}
		h.check(fmt.Sprintf("Fill(%g) of [%d, %d)", v, lo, hi), b, want, exact)
	}
}

// forEach calls f with every index of shape in row-major order.
func forEach(shape []int, f func(idx []int)) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	idx := make([]int, len(shape))
	for k := 0; k < n; k++ {
		f(idx)
		for ax := len(shape) - 1; ax >= 0; ax-- {
			idx[ax]++
			if idx[ax] < shape[ax] {
				break
			}
			idx[ax] = 0
		}
	}
}

func dot(idx, strides []int) int {
	o := 0
	for i, x := range idx {
		o += x * strides[i]
	}
	return o
}

// span returns the number of elements a strided array covers.
func span(shape, strides []int) int {
	n := 1
	for i, d := range shape {
		if d == 0 {
			return 0
		}
		n += (d - 1) * strides[i]
	}
	return n
}

// contiguous returns the row-major strides of shape.
func contiguous(shape []int) []int {
	s := make([]int, len(shape))
	st := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = st
		st *= shape[i]
	}
	return s
}

// copySpec is one Copy call.
type copySpec struct {
	shape, dst, src []int // dst and src nil mean contiguous
	srcDT, dstDT    tensor.DType
	acc             bool
	srcVals         []float64 // source values in index order; random when nil
}

// hostValues returns random values suited to dt: integers for Int32,
// normals scaled to stay in f16's range otherwise.
func (h *harness) hostValues(dt tensor.DType, n int) []float64 {
	v := h.normal(n, 0, 4)
	if dt == tensor.Int32 {
		for i := range v {
			v[i] = math.Trunc(v[i] * 100)
		}
	}
	return v
}

func runCopy(h *harness, c copySpec) {
	if c.dst == nil {
		c.dst = contiguous(c.shape)
	}
	if c.src == nil {
		c.src = contiguous(c.shape)
	}
	// Source: the addressed elements hold data, the rest a sentinel the
	// copy must not read.
	src := make([]float64, span(c.shape, c.src))
	for i := range src {
		src[i] = sentinel(c.srcDT)
	}
	vals := c.srcVals
	if vals == nil {
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		vals = h.hostValues(c.srcDT, n)
	}
	k := 0
	forEach(c.shape, func(idx []int) {
		src[dot(idx, c.src)] = vals[k%len(vals)]
		k++
	})
	sb := h.newBuf(c.srcDT, src)
	// Destination: random values everywhere, so both skipped and stray
	// writes show.
	dst := h.hostValues(c.dstDT, span(c.shape, c.dst))
	db := h.newBuf(c.dstDT, dst)
	want := append([]float64(nil), dst...)
	forEach(c.shape, func(idx []int) {
		s, d := src[dot(idx, c.src)], dot(idx, c.dst)
		if c.acc {
			want[d] = quantize(c.dstDT, want[d]+s)
		} else {
			want[d] = quantize(c.dstDT, s)
		}
	})
	h.call("Copy", h.be.Copy(&tensor.CopyArgs{Shape: c.shape, Dst: db.ref(), Src: sb.ref(),
		DstStrides: c.dst, SrcStrides: c.src, Accumulate: c.acc}))
	tl := exact
	if c.acc {
		tl = tolStd
	}
	h.check(fmt.Sprintf("Copy %s %v -> %s %v of shape %v (accumulate %v)", c.srcDT, c.src, c.dstDT, c.dst, c.shape, c.acc), db, want, tl)
}

func copyCases() []kcase {
	same := func(shape, dst, src []int) func(h *harness) {
		return func(h *harness) { runCopy(h, copySpec{shape: shape, dst: dst, src: src, srcDT: h.dt, dstDT: h.dt}) }
	}
	accum := func(shape, dst, src []int) func(h *harness) {
		return func(h *harness) {
			runCopy(h, copySpec{shape: shape, dst: dst, src: src, srcDT: h.dt, dstDT: h.dt, acc: true})
		}
	}
	cases := []kcase{
		{name: "contiguous", dts: allDTypes, run: same([]int{4, 5}, nil, nil)},
		{name: "strided-src", dts: allDTypes, run: same([]int{3, 4}, nil, []int{9, 2})},
		{name: "strided-dst", dts: allDTypes, run: same([]int{3, 5}, []int{7, 1}, nil)},
		{name: "transpose", dts: allDTypes, run: same([]int{5, 4}, nil, []int{1, 5})},
		{name: "transpose-dst", dts: allDTypes, run: same([]int{3, 7}, []int{1, 3}, nil)},
		{name: "permute-3d", dts: allDTypes, run: same([]int{2, 3, 4}, nil, []int{3, 1, 6})},
		{name: "broadcast-row", dts: allDTypes, run: same([]int{4, 6}, nil, []int{0, 1})},
		{name: "broadcast-col", dts: allDTypes, run: same([]int{4, 6}, nil, []int{1, 0})},
		{name: "broadcast-scalar", dts: allDTypes, run: same([]int{2, 3, 4}, nil, []int{0, 0, 0})},
		{name: "rank0", dts: allDTypes, run: same([]int{}, []int{}, []int{})},
		{name: "size1-axes", dts: allDTypes, run: same([]int{1, 3, 1, 2}, []int{50, 2, 9, 1}, []int{100, 4, 77, 2})},
		{name: "rank5", dts: allDTypes, run: same([]int{2, 1, 3, 2, 2}, nil, []int{1, 24, 8, 2, 4})},
		{name: "empty", dts: allDTypes, run: same([]int{3, 0, 2}, nil, nil)},
		{name: "large-transpose", dts: allDTypes, run: same([]int{300, 301}, nil, []int{1, 300})},
		{name: "large-contiguous", run: same([]int{200, 1001}, nil, nil)},
		{name: "accumulate", run: accum([]int{4, 5}, nil, nil)},
		{name: "accumulate-strided", run: accum([]int{3, 4}, []int{7, 1}, []int{1, 3})},
		{name: "accumulate-broadcast", run: accum([]int{4, 6}, nil, []int{0, 1})},
		{name: "accumulate-large", run: accum([]int{200, 150}, nil, []int{1, 200})},
		{name: "cast-accumulate-f32-to-f64", single: true, run: func(h *harness) {
			runCopy(h, copySpec{shape: []int{5, 6}, src: []int{1, 5}, srcDT: tensor.Float32, dstDT: tensor.Float64, acc: true})
		}},
		{name: "cast-accumulate-f64-to-f32", single: true, run: func(h *harness) {
			runCopy(h, copySpec{shape: []int{5, 6}, srcDT: tensor.Float64, dstDT: tensor.Float32, acc: true})
		}},
		{name: "cast-transpose-f32-to-bf16", single: true, run: func(h *harness) {
			runCopy(h, copySpec{shape: []int{6, 5}, src: []int{1, 6}, srcDT: tensor.Float32, dstDT: tensor.BFloat16})
		}},
		{name: "cast-broadcast-f16-to-f32", single: true, run: func(h *harness) {
			runCopy(h, copySpec{shape: []int{4, 7}, src: []int{0, 1}, srcDT: tensor.Float16, dstDT: tensor.Float32})
		}},
		{name: "cast-large-f32-to-f16", single: true, run: func(h *harness) {
			runCopy(h, copySpec{shape: []int{250, 401}, srcDT: tensor.Float32, dstDT: tensor.Float16})
		}},
	}
	for _, s := range allDTypes {
		for _, d := range allDTypes {
			s, d := s, d
			cases = append(cases, kcase{name: "cast-" + s.String() + "-to-" + d.String(), single: true, run: func(h *harness) {
				vals := castValues(s, d)
				runCopy(h, copySpec{shape: []int{len(vals)}, srcDT: s, dstDT: d, srcVals: vals})
			}})
		}
	}
	return cases
}

// castValues returns source values for a cast from s to d that exercise
// rounding: ties to even for bf16 and f16, f16 subnormals and overflow,
// signed zero, NaN and infinities, and truncation toward zero for Int32.
// Values the conversion leaves undefined (NaN or out-of-range values into
// Int32) are left out.
func castValues(s, d tensor.DType) []float64 {
	f32 := func(b uint32) float64 { return float64(math.Float32frombits(b)) }
	all := []float64{
		0, math.Copysign(0, -1), 1, -1, 2.75, -2.75, 0.1, 1.0 / 3, -1234.5678, 100.0625,
		65504, 65519, 65520, 70000, -70000, // f16: max, below the overflow tie, the tie (to Inf), beyond
		3e-5, 5.960464477539063e-08, 2.9802322387695312e-08, 4.470348358154297e-08, 1e-10, // f16 subnormals and ties
		1 + 1.0/2048, 1 + 3.0/2048, -(1 + 3.0/2048), // f16 ties to even
		f32(0x3f808000), f32(0x3f818000), f32(0xbf818000), f32(0x3f808001), // bf16 ties to even, and just above a tie
		f32(0x7f7fffff), 3e38, 1e30, 123456789, -98765.4321, 16777217,
		math.NaN(), math.Inf(1), math.Inf(-1),
	}
	var out []float64
	for _, v := range all {
		q := quantize(s, v)
		if s == tensor.Int32 && (math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) >= 1<<31) {
			continue
		}
		if d == tensor.Int32 && (math.IsNaN(q) || math.IsInf(q, 0) || math.Abs(q) >= 1<<31) {
			continue
		}
		out = append(out, v)
	}
	return out
}
