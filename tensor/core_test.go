package tensor_test

import (
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// This file tests the core: 16-bit conversions, views and storage sharing,
// reference counts and the pool, the autograd graph's lifetime, errors and
// printing. Helpers here carry a "core" prefix to stay clear of other test
// files in the package.

// coreFormat describes a 16-bit float format for the reference rounding:
// bits of exponent and mantissa, and the exponent bias.
type coreFormat struct {
	name      string
	exp, mant int
	bias      int
	narrow    func(float32) uint16
	widen     func(uint16) float32
}

var (
	coreBF16 = coreFormat{"bf16", 8, 7, 127, tensor.BF16FromFloat32, tensor.BF16ToFloat32}
	coreF16  = coreFormat{"f16", 5, 10, 15, tensor.F16FromFloat32, tensor.F16ToFloat32}
)

// decode returns the value of bits h by the IEEE formula, independently of
// the package's conversions; NaN for NaN patterns.
func (f coreFormat) decode(h uint16) float64 {
	sign := 1.0
	if h>>15 == 1 {
		sign = -1
	}
	e := int(h>>f.mant) & (1<<f.exp - 1)
	m := float64(h & (1<<f.mant - 1))
	switch {
	case e == 1<<f.exp-1 && m != 0:
		return math.NaN()
	case e == 1<<f.exp-1:
		return sign * math.Inf(1)
	case e == 0:
		return sign * math.Ldexp(m, 1-f.bias-f.mant)
	}
	return sign * math.Ldexp(1+m/float64(int(1)<<f.mant), e-f.bias)
}

// finite returns every finite non-negative value of the format in bit order
// (which is value order).
func (f coreFormat) finite() []float64 {
	inf := uint16(1<<f.exp-1) << f.mant
	v := make([]float64, inf)
	for h := uint16(0); h < inf; h++ {
		v[h] = f.decode(h)
	}
	return v
}

// round returns the bits nearest to x, ties to the even pattern, with values
// past the largest finite one rounding to infinity as IEEE does (the pattern
// after the largest finite value is infinity, and it is even).
func (f coreFormat) round(x float32, table []float64) (h uint16, isNaN bool) {
	if x != x {
		return 0, true
	}
	var sign uint16
	a := float64(x)
	if math.Signbit(a) {
		sign, a = 0x8000, -a
	}
	inf := uint16(len(table))
	top := table[len(table)-1]
	next := top + (top - table[len(table)-2]) // one step past the top: the overflow threshold's other side
	if a >= top {
		mid := (top + next) / 2
		if a >= mid || math.IsInf(a, 1) { // a tie goes to infinity, the even pattern
			return sign | inf, false
		}
		return sign | (inf - 1), false
	}
	i := sort.Search(len(table), func(i int) bool { return table[i] > a }) - 1
	lo, hi := table[i], table[i+1]
	switch {
	case a-lo < hi-a:
		return sign | uint16(i), false
	case a-lo > hi-a:
		return sign | uint16(i+1), false
	case i%2 == 0:
		return sign | uint16(i), false
	}
	return sign | uint16(i+1), false
}

func (f coreFormat) isNaN(h uint16) bool {
	return int(h>>f.mant)&(1<<f.exp-1) == 1<<f.exp-1 && h&(1<<f.mant-1) != 0
}

func coreCheckNarrow(t *testing.T, f coreFormat, table []float64, x float32) bool {
	t.Helper()
	got := f.narrow(x)
	want, nan := f.round(x, table)
	if nan {
		if !f.isNaN(got) {
			t.Errorf("%sFrom(%#08x = NaN) = %#04x, not a NaN", f.name, math.Float32bits(x), got)
			return false
		}
		return true
	}
	if got != want {
		t.Errorf("%sFrom(%#08x = %g) = %#04x (%g), want %#04x (%g)", f.name, math.Float32bits(x), x,
			got, f.decode(got), want, f.decode(want))
		return false
	}
	return true
}

func coreConversionTests(t *testing.T, f coreFormat, named map[uint32]uint16) {
	table := f.finite()
	// Named cases: ties, overflow, subnormals, signed zero.
	for in, want := range named {
		x := math.Float32frombits(in)
		if got := f.narrow(x); got != want {
			t.Errorf("%sFrom(%#08x = %g) = %#04x, want %#04x", f.name, in, x, got, want)
		}
		if !coreCheckNarrow(t, f, table, x) {
			t.Errorf("reference rounding disagrees with the named case %#08x", in)
		}
	}
	// NaN stays NaN, whatever the payload and sign, including payloads
	// that live only in the bits a narrowing drops.
	for _, b := range []uint32{0x7f800001, 0x7f802000, 0x7fc00000, 0xff800001, 0xffffffff, 0x7fbfffff} {
		if got := f.narrow(math.Float32frombits(b)); !f.isNaN(got) {
			t.Errorf("%sFrom(NaN %#08x) = %#04x, not a NaN", f.name, b, got)
		}
	}
	// Exhaustive: every pattern widens exactly and narrows back to itself.
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		w := f.widen(h)
		if f.isNaN(h) {
			if w == w {
				t.Fatalf("%sTo(%#04x) = %g, want NaN", f.name, h, w)
			}
			if back := f.narrow(w); !f.isNaN(back) {
				t.Fatalf("%s NaN %#04x narrows back to %#04x, not a NaN", f.name, h, back)
			}
			continue
		}
		if d := f.decode(h); float64(w) != d || math.Signbit(float64(w)) != math.Signbit(d) {
			t.Fatalf("%sTo(%#04x) = %g, want %g", f.name, h, w, d)
		}
		if back := f.narrow(w); back != h {
			t.Fatalf("%s %#04x widens to %g and narrows back to %#04x", f.name, h, w, back)
		}
	}
	// Random float32s against the reference rounding: uniform bit
	// patterns, values in the format's range, and forced ties.
	rng := tensor.NewRNG(11)
	dropped := uint32(23 - f.mant)
	minExp, maxExp := uint32(127-f.bias-f.mant-2), uint32(127+f.bias+2)
	if f.exp == 8 {
		minExp, maxExp = 0, 254
	}
	bad := 0
	for i := 0; i < 300000 && bad < 10; i++ {
		b := rng.Uint32()
		switch i % 3 {
		case 1:
			e := minExp + uint32(rng.IntN(int(maxExp-minExp+1)))
			b = b&0x807fffff | e<<23
		case 2:
			e := minExp + uint32(rng.IntN(int(maxExp-minExp+1)))
			b = b&0x807fffff | e<<23
			b = b&^(1<<dropped-1) | 1<<(dropped-1) // exactly half an ulp of the format
		}
		if !coreCheckNarrow(t, f, table, math.Float32frombits(b)) {
			bad++
		}
	}
}

func TestBFloat16Conversion(t *testing.T) {
	coreConversionTests(t, coreBF16, map[uint32]uint16{
		0x3f800000: 0x3f80, // 1
		0x3f808000: 0x3f80, // tie: to the even 0x3f80
		0x3f818000: 0x3f82, // tie: to the even 0x3f82
		0x3f808001: 0x3f81, // just above a tie
		0x3f807fff: 0x3f80, // just below
		0xbf818000: 0xbf82, // negative tie
		0x7f7fffff: 0x7f80, // the largest float32 rounds to Inf
		0x7f7f7fff: 0x7f7f, // the largest that stays finite
		0x7f7f8000: 0x7f80, // the overflow tie goes to Inf
		0x7f800000: 0x7f80,
		0xff800000: 0xff80,
		0x00000000: 0x0000,
		0x80000000: 0x8000,
		0x00018000: 0x0002, // subnormal tie to even
		0x00008000: 0x0000, // subnormal tie down to zero
		0x00000001: 0x0000,
		0x00800000: 0x0080, // smallest normal
	})
}

func TestFloat16Conversion(t *testing.T) {
	f := func(v float64) uint32 { return math.Float32bits(float32(v)) }
	coreConversionTests(t, coreF16, map[uint32]uint16{
		f(1):                       0x3c00,
		f(-2):                      0xc000,
		f(1 + 1.0/2048):            0x3c00, // tie: to even
		f(1 + 3.0/2048):            0x3c02, // tie: to even
		f(65504):                   0x7bff, // largest finite
		f(65519):                   0x7bff, // below the overflow tie
		f(65520):                   0x7c00, // the overflow tie goes to Inf
		f(1e6):                     0x7c00,
		f(-1e6):                    0xfc00,
		0x7f800000:                 0x7c00,
		0xff800000:                 0xfc00,
		f(math.Ldexp(1, -24)):      0x0001, // smallest subnormal
		f(-math.Ldexp(1, -24)):     0x8001,
		f(math.Ldexp(1, -25)):      0x0000, // tie between 0 and the smallest: to 0
		f(math.Ldexp(1.5, -25)):    0x0001, // above that tie
		f(math.Ldexp(3, -25)):      0x0002, // tie between 1 and 2 ulps: to 2
		f(math.Ldexp(1, -26)):      0x0000,
		f(math.Ldexp(1023, -24)):   0x03ff, // largest subnormal
		f(math.Ldexp(1023.5, -24)): 0x0400, // tie rounding up into the normals
		f(math.Ldexp(1, -14)):      0x0400, // smallest normal
		f(math.Ldexp(5, -26)):      0x0001, // 1.25 ulp
		0x80000000:                 0x8000,
		0x00000001:                 0x0000, // float32 subnormal
	})
}

// coreHalve updates t in place to t/2 through the AdamW kernel (zero
// gradient and moments, weight decay 1, learning rate 0.5): the one
// exported op that writes into an existing tensor.
func coreHalve(b tensor.Backend, t *tensor.Tensor) {
	z := func() *tensor.Tensor { return tensor.Full(b, t.DType(), 0, t.Shape()...) }
	tensor.AdamWUpdate(t, z(), z(), z(), &tensor.AdamWArgs{LR: 0.5, Beta1: 0.9, Beta2: 0.999, Eps: 1,
		WeightDecay: 1, GradScale: 1, Step: 1})
}

func coreSeq(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}

func coreEqual(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestViewsShareStorage(t *testing.T) {
	b := cpu.New(1)
	x := tensor.From(b, tensor.Float32, coreSeq(12), 3, 4)
	if x.Contiguous() != x {
		t.Fatal("Contiguous of a contiguous tensor made a copy")
	}
	r := x.Reshape(4, 3)
	tr := x.Transpose(0, 1)
	sl := x.Slice(0, 1, 3)
	if !r.IsContiguous() || tr.IsContiguous() || !sl.IsContiguous() {
		t.Fatalf("contiguity: reshape %v, transpose %v, row slice %v", r.IsContiguous(), tr.IsContiguous(), sl.IsContiguous())
	}
	coreEqual(t, "transpose", tr.Float32s(), []float32{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11})
	coreEqual(t, "slice", sl.Float32s(), []float32{4, 5, 6, 7, 8, 9, 10, 11})

	// Writing through the base shows in every view.
	coreHalve(b, x.Contiguous())
	half := make([]float32, 12)
	for i := range half {
		half[i] = float32(i) / 2
	}
	coreEqual(t, "reshape after halving the base", r.Float32s(), half)
	coreEqual(t, "transpose after halving the base", tr.Float32s(), []float32{0, 2, 4, 0.5, 2.5, 4.5, 1, 3, 5, 1.5, 3.5, 5.5})
	coreEqual(t, "slice after halving the base", sl.Float32s(), half[4:])

	// Writing through a view (a row slice at an offset) shows in the base,
	// and only in its rows.
	coreHalve(b, sl)
	want := append([]float32(nil), half...)
	for i := 4; i < 12; i++ {
		want[i] /= 2
	}
	coreEqual(t, "base after halving rows 1-2 through a slice", x.Float32s(), want)

	// The contiguous copy of a transposed view is not shared.
	c := tr.Contiguous()
	if c == tr {
		t.Fatal("Contiguous of a transposed view returned the view")
	}
	coreHalve(b, c)
	coreEqual(t, "base after halving a contiguous copy of its transpose", x.Float32s(), want)
}

func TestReleaseRefcountsAndPool(t *testing.T) {
	b := cpu.New(1)
	x := tensor.From(b, tensor.Float32, coreSeq(12), 3, 4)
	v := x.Transpose(0, 1)
	s := x.Slice(1, 1, 3)
	p0 := b.PooledBytes()
	x.Release()
	x.Release() // twice is harmless
	if got := b.PooledBytes(); got != p0 {
		t.Fatalf("releasing the base while views hold its storage pooled %d bytes", got-p0)
	}
	coreEqual(t, "transpose after its base was released", v.Float32s(), []float32{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11})
	p1 := b.PooledBytes() // reading the transpose went through a pooled copy
	s.Release()
	if got := b.PooledBytes(); got != p1 {
		t.Fatalf("releasing one of two views pooled %d bytes", got-p1)
	}
	v.Release()
	if got := b.PooledBytes(); got != p1+48 {
		t.Fatalf("releasing the last view pooled %d bytes, want the 48 of the one shared storage", got-p1)
	}
	// The pool hands the storage to the next tensor of that size.
	y := tensor.Full(b, tensor.Float32, 2, 4, 3)
	if got := b.PooledBytes(); got != p1 {
		t.Errorf("allocating 12 float32 left %d bytes pooled, want %d (reuse)", got, p1)
	}
	coreEqual(t, "reused storage", y.Float32s(), []float32{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2})
	z := tensor.Full(b, tensor.Float64, 1, 5)
	z.Release()
	y.Release()
	if got := b.PooledBytes(); got != p1+48+40 {
		t.Errorf("pooled %d more bytes after releasing f32[12] and f64[5], want %d", got-p1, 48+40)
	}

	// Using a released tensor panics with *Error naming the cause.
	for name, use := range map[string]func(){
		"Float32s":  func() { x.Float32s() },
		"Add":       func() { x.Add(y) },
		"Transpose": func() { x.Transpose(0, 1) },
		"Backend":   func() { x.Backend() },
	} {
		err := tensor.Catch(use)
		var te *tensor.Error
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "released") {
			t.Errorf("%s on a released tensor: error %v, want a *tensor.Error saying released", name, err)
		}
	}
	if s := x.String(); !strings.Contains(s, "released") {
		t.Errorf("String of a released tensor = %q", s)
	}
}

// TestReshapeCopyReturnsToPool: Reshape of a non-contiguous tensor returns
// a copy; releasing that copy must return its storage to the pool like any
// other tensor.
func TestReshapeCopyReturnsToPool(t *testing.T) {
	b := cpu.New(1)
	x := tensor.From(b, tensor.Float32, coreSeq(6), 2, 3)
	tr := x.Transpose(0, 1)
	r := tr.Reshape(6)
	coreEqual(t, "reshape of a transpose", r.Float32s(), []float32{0, 3, 1, 4, 2, 5})
	p0 := b.PooledBytes()
	r.Release()
	if got := b.PooledBytes() - p0; got != 24 {
		t.Errorf("releasing the reshaped copy of a transposed [2 3] float32 returned %d bytes to the pool, want 24", got)
	}
}

func TestBackwardFreesIntermediates(t *testing.T) {
	x := param(1, 3)
	y := x.Exp()
	loss := y.Sum()
	loss.Backward()
	err := tensor.Catch(func() { y.Float64s() })
	var te *tensor.Error
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "released") {
		t.Errorf("intermediate read after Backward: %v, want a *tensor.Error saying released", err)
	}
	if v := loss.Item(); !(v > 0) {
		t.Errorf("the root lost its value: %g", v)
	}
	xs := x.Float64s()
	g := x.Grad().Float64s()
	for i := range xs {
		if math.Abs(g[i]-math.Exp(xs[i])) > 1e-8*math.Exp(xs[i]) {
			t.Errorf("d sum(exp x)/dx[%d] = %g, want %g", i, g[i], math.Exp(xs[i]))
		}
	}

	// Retain keeps the intermediate and its gradient.
	x2 := param(2, 3)
	y2 := x2.Square().Retain()
	l2 := y2.Scale(3).Sum()
	l2.Backward()
	x2s := x2.Float64s()
	y2s := y2.Float64s()
	for i := range y2s {
		if y2s[i] != x2s[i]*x2s[i] {
			t.Errorf("retained intermediate [%d] = %g, want %g", i, y2s[i], x2s[i]*x2s[i])
		}
	}
	if y2.Grad() == nil {
		t.Fatal("retained intermediate lost its gradient")
	}
	for i, v := range y2.Grad().Float64s() {
		if v != 3 {
			t.Errorf("retained gradient [%d] = %g, want 3", i, v)
		}
	}
}

func TestLeafGradientsAccumulate(t *testing.T) {
	x := param(3, 2, 3)
	step := func() { x.Square().Sum().Backward() }
	step()
	g1 := x.Grad().Float64s()
	xs := x.Float64s()
	for i := range xs {
		if g1[i] != 2*xs[i] {
			t.Fatalf("gradient [%d] = %g, want 2x = %g", i, g1[i], 2*xs[i])
		}
	}
	step()
	g2 := x.Grad().Float64s()
	for i := range g1 {
		if g2[i] != 2*g1[i] {
			t.Errorf("after two Backward calls gradient [%d] = %g, want %g", i, g2[i], 2*g1[i])
		}
	}
	x.ZeroGrad()
	if x.Grad() != nil {
		t.Fatal("ZeroGrad left a gradient")
	}
	step()
	for i, v := range x.Grad().Float64s() {
		if v != g1[i] {
			t.Errorf("after ZeroGrad gradient [%d] = %g, want %g", i, v, g1[i])
		}
	}

	// Add hands one gradient buffer to both operands; accumulating into
	// one must not change the other.
	a, c := param(4, 3), param(5, 3)
	sum := func() { a.Add(c).Sum().Backward() }
	sum()
	sum()
	a.Mul(c).Sum().Backward() // a gets c, c gets a
	as, cs := a.Float64s(), c.Float64s()
	ga, gc := a.Grad().Float64s(), c.Grad().Float64s()
	for i := range as {
		if ga[i] != 2+cs[i] || gc[i] != 2+as[i] {
			t.Errorf("shared-buffer gradients [%d] = %g, %g, want %g, %g", i, ga[i], gc[i], 2+cs[i], 2+as[i])
		}
	}
}

func TestNoGradRecordsNothing(t *testing.T) {
	x := param(6, 4)
	var y *tensor.Tensor
	tensor.NoGrad(func() {
		if tensor.GradEnabled() {
			t.Error("GradEnabled inside NoGrad")
		}
		y = x.Exp().Mul(x).Sum()
	})
	if !tensor.GradEnabled() {
		t.Fatal("NoGrad did not restore gradient recording")
	}
	if y.RequiresGrad() {
		t.Error("a result computed under NoGrad requires grad")
	}
	err := tensor.Catch(func() { y.Backward() })
	if err == nil || !strings.Contains(err.Error(), "does not require grad") {
		t.Errorf("Backward of a NoGrad result: %v", err)
	}
	// A panic inside NoGrad still restores recording.
	_ = tensor.Catch(func() { tensor.NoGrad(func() { x.Reshape(5) }) })
	if !tensor.GradEnabled() {
		t.Error("a panic inside NoGrad left recording off")
	}
	if z := x.Exp(); !z.RequiresGrad() {
		t.Error("ops after NoGrad do not record")
	}
}

func TestBackwardRootErrors(t *testing.T) {
	c := tensor.From(be, tensor.Float64, []float64{1, 2, 3})
	err := tensor.Catch(func() { c.Sum().Backward() })
	var te *tensor.Error
	if !errors.As(err, &te) || te.Op != "backward" || !strings.Contains(err.Error(), "does not require grad") {
		t.Errorf("Backward of a constant: %v", err)
	}
	err = tensor.Catch(func() { param(7, 3).Exp().Backward() })
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "one element") {
		t.Errorf("Backward of a 3-element root: %v", err)
	}
}

func TestShapeErrors(t *testing.T) {
	f := func(shape ...int) *tensor.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return tensor.From(be, tensor.Float32, make([]float32, n), shape...)
	}
	for _, c := range []struct {
		name, op, text string
		run            func()
	}{
		{"matmul inner", "matmul", "inner dimensions", func() { f(2, 3).MatMul(f(4, 5)) }},
		{"matmul rank", "matmul", "rank", func() { f(3).MatMul(f(3, 2)) }},
		{"matmul batch", "matmul", "batch", func() { f(2, 2, 3).MatMul(f(3, 3, 4)) }},
		{"broadcast", "", "broadcast", func() { f(2, 3).Add(f(4)) }},
		{"broadcast inner", "", "broadcast", func() { f(2, 3).Mul(f(2, 1, 2)) }},
		{"reshape count", "reshape", "elements", func() { f(2, 3).Reshape(4, 2) }},
		{"reshape two -1", "reshape", "-1", func() { f(2, 3).Reshape(-1, -1) }},
		{"reshape infer", "reshape", "infer", func() { f(2, 3).Reshape(4, -1) }},
		{"slice", "slice", "out of", func() { f(2, 3).Slice(1, 2, 4) }},
		{"axis", "axis", "out of range", func() { f(2, 3).Transpose(0, 2) }},
		{"from length", "from", "values", func() { tensor.From(be, tensor.Float32, []float32{1, 2, 3}, 2, 2) }},
		{"dtype mix", "add", "dtypes", func() { f(2).Add(tensor.From(be, tensor.Float64, []float64{1, 2})) }},
	} {
		err := tensor.Catch(c.run)
		var te *tensor.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: Catch returned %v, want a *tensor.Error", c.name, err)
			continue
		}
		if (c.op != "" && te.Op != c.op) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: error %q (op %q), want op %q mentioning %q", c.name, err, te.Op, c.op, c.text)
		}
	}
	// Other panics pass through Catch.
	func() {
		defer func() {
			if r := recover(); r != "not a tensor error" {
				t.Errorf("Catch let through %v, want the original panic", r)
			}
		}()
		_ = tensor.Catch(func() { panic("not a tensor error") })
		t.Error("Catch swallowed a foreign panic")
	}()
	if err := tensor.Catch(func() {}); err != nil {
		t.Errorf("Catch of a clean function = %v", err)
	}
}

func TestTensorString(t *testing.T) {
	x := tensor.From(be, tensor.Float32, []float32{1.5, -2, 3.25, 4, 5, 6}, 2, 3)
	s := x.String()
	for _, want := range []string{"f32", "[2 3]", "cpu", "1.5", "-2", "3.25", "6"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, missing %q", s, want)
		}
	}
	if strings.Contains(s, "grad") {
		t.Errorf("String() of a constant mentions grad: %q", s)
	}
	long := tensor.From(be, tensor.Float64, []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})
	ls := long.String()
	if !strings.Contains(ls, "f64") || !strings.Contains(ls, "[20]") || !strings.Contains(ls, "...") ||
		!strings.Contains(ls, "19") || strings.Contains(ls, " 10 ") {
		t.Errorf("String() of 20 elements = %q, want an elided row with the ends", ls)
	}
	if g := param(8, 2).String(); !strings.Contains(g, "grad") {
		t.Errorf("String() of a parameter = %q, want it marked grad", g)
	}
	ids := tensor.From(be, tensor.Int32, []int32{7, -3}, 2)
	if is := ids.String(); !strings.Contains(is, "i32") || !strings.Contains(is, "7") || !strings.Contains(is, "-3") {
		t.Errorf("String() of ids = %q", is)
	}
	if ss := x.Sum().String(); !strings.Contains(ss, "17.75") {
		t.Errorf("String() of a scalar = %q, want its value 17.75", ss)
	}
}

func TestInt32RoundTrip(t *testing.T) {
	vals := []int32{0, 1, -1, 7, math.MaxInt32, math.MinInt32, 123456789, -2}
	x := tensor.From(be, tensor.Int32, vals, 2, 4)
	if x.DType() != tensor.Int32 || !slices.Equal(x.Shape(), []int{2, 4}) {
		t.Fatalf("dtype %s shape %v", x.DType(), x.Shape())
	}
	if got := x.Int32s(); !slices.Equal(got, vals) {
		t.Errorf("Int32s() = %v, want %v", got, vals)
	}
	f := x.Float64s()
	for i, v := range vals {
		if f[i] != float64(v) {
			t.Errorf("Float64s()[%d] = %g, want %d", i, f[i], v)
		}
	}
	if got, want := x.Transpose(0, 1).Int32s(), []int32{0, math.MaxInt32, 1, math.MinInt32, -1, 123456789, 7, -2}; !slices.Equal(got, want) {
		t.Errorf("transposed Int32s() = %v, want %v", got, want)
	}
	// Ids from floats, and floats read as ids, truncate toward zero.
	if got := tensor.From(be, tensor.Int32, []float64{2.7, -2.7, 5}).Int32s(); !slices.Equal(got, []int32{2, -2, 5}) {
		t.Errorf("Int32 from floats = %v, want [2 -2 5]", got)
	}
	if got := tensor.From(be, tensor.Float32, []float32{3.9, -0.5}).Int32s(); !slices.Equal(got, []int32{3, 0}) {
		t.Errorf("Int32s of floats = %v, want [3 0]", got)
	}
	if got := tensor.Full(be, tensor.Int32, -4, 3).Int32s(); !slices.Equal(got, []int32{-4, -4, -4}) {
		t.Errorf("Full(i32, -4) = %v", got)
	}
}

func TestSixteenBitTensors(t *testing.T) {
	in := []float32{1, 1 + 1.0/256, 1 + 3.0/256, 65520, 0.1}
	for _, c := range []struct {
		dt     tensor.DType
		narrow func(float32) uint16
		widen  func(uint16) float32
	}{
		{tensor.BFloat16, tensor.BF16FromFloat32, tensor.BF16ToFloat32},
		{tensor.Float16, tensor.F16FromFloat32, tensor.F16ToFloat32},
	} {
		x := tensor.From(be, c.dt, in)
		got := x.Float32s()
		for i, v := range in {
			if want := c.widen(c.narrow(v)); got[i] != want {
				t.Errorf("%s tensor of %g reads %g, want %g", c.dt, v, got[i], want)
			}
		}
		// Bits given directly are stored unchanged.
		bits := []uint16{c.narrow(1), c.narrow(-0.5)}
		y := tensor.From(be, c.dt, bits)
		if got := y.Float64s(); got[0] != 1 || got[1] != -0.5 {
			t.Errorf("%s tensor from bits reads %v", c.dt, got)
		}
		if y.Cast(tensor.Float32).DType() != tensor.Float32 {
			t.Errorf("%s Cast to f32 has the wrong dtype", c.dt)
		}
	}
}
