package gorgonia

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu"
	gt "gorgonia.org/tensor"
)

// denseValues returns the elements of a contiguous Dense as float64, or its
// value when it is a scalar.
func denseValues(t *testing.T, d *gt.Dense) []float64 {
	t.Helper()
	if d.Shape().TotalSize() == 0 {
		return []float64{}
	}
	switch v := d.Data().(type) {
	case float32:
		return []float64{float64(v)}
	case float64:
		return []float64{v}
	case int32:
		return []float64{float64(v)}
	case []float32:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return slices.Clone(v)
	case []int32:
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	t.Fatalf("unexpected Dense data %T", d.Data())
	return nil
}

// sameFloats reports whether a and b hold the same values, NaNs and the
// sign of zero included.
func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

// sameShape compares a minnow shape with a gorgonia one; both are empty for
// a scalar.
func sameShape(a []int, b gt.Shape) bool { return slices.Equal(a, []int(b)) }

func TestRoundTrip(t *testing.T) {
	be := tensor.Default()
	shapes := [][]int{{}, {5}, {2, 3}, {2, 3, 4}, {1, 1}, {0, 3}}
	// values returns n values of dt that are exact in it, and, for
	// float64, not exact in float32, so a narrowing would show.
	values := func(dt tensor.DType, n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			switch dt {
			case tensor.Float32:
				v[i] = float64(float32(1.25*float64(i) - 3.1))
			case tensor.Float64:
				v[i] = 0.1 + float64(i)*1e-12 - float64(i%3)
			case tensor.Int32:
				v[i] = float64(7*i - 20)
			}
		}
		if n > 2 && dt == tensor.Int32 {
			v[0], v[n-1] = math.MaxInt32, math.MinInt32
		}
		if n > 2 && dt == tensor.Float32 {
			v[1] = math.Copysign(0, -1)
		}
		return v
	}
	wantDense := map[tensor.DType]gt.Dtype{tensor.Float32: gt.Float32, tensor.Float64: gt.Float64, tensor.Int32: gt.Int32}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int32} {
		for _, shape := range shapes {
			n := 1
			for _, s := range shape {
				n *= s
			}
			want := values(dt, n)
			t.Run(dt.String()+shapeName(shape), func(t *testing.T) {
				var src *tensor.Tensor
				switch {
				case len(shape) == 0:
					src = tensor.Full(be, dt, want[0])
				case dt == tensor.Int32:
					host := make([]int32, n)
					for i, v := range want {
						host[i] = int32(v)
					}
					src = tensor.From(be, dt, host, shape...)
				default:
					src = tensor.From(be, dt, want, shape...)
				}
				if src.Rank() != len(shape) {
					t.Fatalf("setup: rank %d, want %d", src.Rank(), len(shape))
				}

				d, err := ToDense(src)
				if err != nil {
					t.Fatalf("ToDense: %v", err)
				}
				if d.Dtype() != wantDense[dt] {
					t.Errorf("Dense dtype %v, want %v", d.Dtype(), wantDense[dt])
				}
				if !sameShape(shape, d.Shape()) || d.IsScalar() != (len(shape) == 0) {
					t.Errorf("Dense shape %v (scalar %v), want %v", d.Shape(), d.IsScalar(), shape)
				}
				if got := denseValues(t, d); !sameFloats(got, want) {
					t.Errorf("Dense values %v, want %v", got, want)
				}

				back, err := FromDense(be, d)
				if err != nil {
					t.Fatalf("FromDense: %v", err)
				}
				if back.DType() != dt || !slices.Equal(back.Shape(), shape) {
					t.Errorf("back: %s %v, want %s %v", back.DType(), back.Shape(), dt, shape)
				}
				if got := back.Float64s(); !sameFloats(got, want) {
					t.Errorf("back values %v, want %v", got, want)
				}

				// Neither copy may alias its source.
				if n > 0 && len(shape) > 0 {
					if err := d.SetAt(denseElem(dt, 99), make([]int, len(shape))...); err != nil {
						t.Fatalf("SetAt: %v", err)
					}
					if got := src.Float64s()[0]; got != want[0] {
						t.Errorf("ToDense result aliases the tensor: source now %v", got)
					}
					if got := back.Float64s()[0]; got != want[0] {
						t.Errorf("FromDense result aliases the Dense: tensor now %v", got)
					}
				}
			})
		}
	}
}

func shapeName(s []int) string {
	name := "["
	for i, d := range s {
		if i > 0 {
			name += ","
		}
		name += string(rune('0' + d))
	}
	return name + "]"
}

func denseElem(dt tensor.DType, v float64) any {
	switch dt {
	case tensor.Float32:
		return float32(v)
	case tensor.Int32:
		return int32(v)
	}
	return v
}

func TestFromDenseViews(t *testing.T) {
	be := tensor.Default()
	// iota24 is 0..23 laid out as [2,3,4], so element [i,j,k] is 12i+4j+k.
	iota24 := func(dt gt.Dtype) *gt.Dense {
		return gt.New(gt.WithShape(2, 3, 4), gt.WithBacking(gt.Range(dt, 0, 24)))
	}
	mat := func() *gt.Dense {
		return gt.New(gt.WithShape(2, 3), gt.WithBacking([]float32{0, 1, 2, 3, 4, 5}))
	}
	cases := []struct {
		name      string
		view      func(t *testing.T) *gt.Dense
		wantDT    tensor.DType
		wantShape []int
		want      []float64
	}{
		{
			name: "T(1,0)",
			view: func(t *testing.T) *gt.Dense {
				d := mat()
				must(t, d.T(1, 0))
				return d
			},
			wantDT: tensor.Float32, wantShape: []int{3, 2},
			want: []float64{0, 3, 1, 4, 2, 5},
		},
		{
			name: "T() of 3-D reverses the axes",
			view: func(t *testing.T) *gt.Dense {
				d := iota24(gt.Float64)
				must(t, d.T())
				return d
			},
			wantDT: tensor.Float64, wantShape: []int{4, 3, 2},
			want: permuted(func(k, j, i int) int { return 12*i + 4*j + k }, 4, 3, 2),
		},
		{
			name: "T(2,0,1) int32",
			view: func(t *testing.T) *gt.Dense {
				d := iota24(gt.Int32)
				must(t, d.T(2, 0, 1))
				return d
			},
			wantDT: tensor.Int32, wantShape: []int{4, 2, 3},
			want: permuted(func(k, i, j int) int { return 12*i + 4*j + k }, 4, 2, 3),
		},
		{
			name: "column slice",
			view: func(t *testing.T) *gt.Dense {
				return slice(t, mat(), nil, gt.S(1))
			},
			wantDT: tensor.Float32, wantShape: []int{2},
			want: []float64{1, 4},
		},
		{
			name: "column range slice",
			view: func(t *testing.T) *gt.Dense {
				return slice(t, mat(), nil, gt.S(1, 3))
			},
			wantDT: tensor.Float32, wantShape: []int{2, 2},
			want: []float64{1, 2, 4, 5},
		},
		{
			name: "3-D slice then T",
			view: func(t *testing.T) *gt.Dense {
				v := slice(t, iota24(gt.Float32), gt.S(1), gt.S(0, 3, 2), gt.S(1, 4))
				// v is [2,3]: rows j in {0, 2}, columns k in {1, 2, 3} of i = 1.
				must(t, v.T(1, 0))
				return v
			},
			wantDT: tensor.Float32, wantShape: []int{3, 2},
			want: []float64{13, 21, 14, 22, 15, 23},
		},
		{
			name: "transposed column vector",
			view: func(t *testing.T) *gt.Dense {
				d := gt.New(gt.WithShape(3, 1), gt.WithBacking([]float64{7, 8, 9}))
				must(t, d.T())
				return d
			},
			wantDT: tensor.Float64, wantShape: []int{1, 3},
			want: []float64{7, 8, 9},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.view(t)
			got, err := FromDense(be, d)
			if err != nil {
				t.Fatalf("FromDense: %v", err)
			}
			if got.DType() != c.wantDT || !slices.Equal(got.Shape(), c.wantShape) {
				t.Fatalf("got %s %v, want %s %v", got.DType(), got.Shape(), c.wantDT, c.wantShape)
			}
			if v := got.Float64s(); !sameFloats(v, c.want) {
				t.Errorf("values %v, want %v", v, c.want)
			}

			// Round trip: back to a Dense, which must equal gorgonia's own
			// materialisation of the view.
			back, err := ToDense(got)
			if err != nil {
				t.Fatalf("ToDense: %v", err)
			}
			m, ok := d.Materialize().(*gt.Dense)
			if !ok {
				t.Fatalf("Materialize returned %T", d.Materialize())
			}
			if !sameShape(c.wantShape, m.Shape()) || !sameShape(c.wantShape, back.Shape()) {
				t.Fatalf("shapes: materialised %v, round trip %v, want %v", m.Shape(), back.Shape(), c.wantShape)
			}
			if a, b := denseValues(t, back), denseValues(t, m); !sameFloats(a, b) {
				t.Errorf("round trip %v, gorgonia materialised %v", a, b)
			}
		})
	}
}

// permuted lists f(a, b, c) over a [n0, n1, n2] index space in row-major
// order.
func permuted(f func(a, b, c int) int, n0, n1, n2 int) []float64 {
	var out []float64
	for a := 0; a < n0; a++ {
		for b := 0; b < n1; b++ {
			for c := 0; c < n2; c++ {
				out = append(out, float64(f(a, b, c)))
			}
		}
	}
	return out
}

func slice(t *testing.T, d *gt.Dense, s ...gt.Slice) *gt.Dense {
	t.Helper()
	v, err := d.Slice(s...)
	if err != nil {
		t.Fatalf("Slice: %v", err)
	}
	return v.(*gt.Dense)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestToDenseView checks that a non-contiguous minnow view is copied in
// its logical order.
func TestToDenseView(t *testing.T) {
	src := tensor.From(tensor.Default(), tensor.Float32, []float32{0, 1, 2, 3, 4, 5}, 2, 3)
	v := src.Transpose(0, 1)
	if v.IsContiguous() {
		t.Fatal("setup: transposed view is contiguous")
	}
	d, err := ToDense(v)
	if err != nil {
		t.Fatal(err)
	}
	if !sameShape([]int{3, 2}, d.Shape()) {
		t.Fatalf("shape %v, want (3, 2)", d.Shape())
	}
	if got, want := denseValues(t, d), []float64{0, 3, 1, 4, 2, 5}; !sameFloats(got, want) {
		t.Errorf("values %v, want %v", got, want)
	}
}

// Test16Bit checks that 16-bit tensors widen to Float32 Dense values equal
// to the values they store, which From rounded to nearest, ties to even.
func Test16Bit(t *testing.T) {
	be := tensor.Default()
	cases := []struct {
		name string
		dt   tensor.DType
		in   []float32
		want []float32
	}{
		{
			name: "bf16",
			dt:   tensor.BFloat16,
			in: []float32{
				1,
				1 + 1.0/256, // halfway between 1 and 1+2^-7: ties to even, 1
				1 + 3.0/256, // halfway between 1+2^-7 and 1+2^-6: ties to even, up
				float32(math.Pi),
				-0.1,
				math.MaxFloat32, // rounds past the largest bf16
			},
			want: []float32{1, 1, 1 + 4.0/256, 3.140625, -0.10009765625, float32(math.Inf(1))},
		},
		{
			name: "f16",
			dt:   tensor.Float16,
			in:   []float32{1.0 / 3, 65504, 65520, -2.5e-8},
			want: []float32{0.333251953125, 65504, float32(math.Inf(1)), float32(math.Copysign(0, -1))},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := tensor.From(be, c.dt, c.in, 2, len(c.in)/2)
			d, err := ToDense(src)
			if err != nil {
				t.Fatal(err)
			}
			if d.Dtype() != gt.Float32 || !sameShape([]int{2, len(c.in) / 2}, d.Shape()) {
				t.Fatalf("Dense %v %v, want float32 (2, %d)", d.Dtype(), d.Shape(), len(c.in)/2)
			}
			got := d.Data().([]float32)
			for i := range c.want {
				if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
					t.Errorf("%s(%g) = %g, want %g", c.dt, c.in[i], got[i], c.want[i])
				}
			}
			// Coming back, the values are Float32 and unchanged.
			back, err := FromDense(be, d)
			if err != nil {
				t.Fatal(err)
			}
			if back.DType() != tensor.Float32 || !slices.Equal(back.Float32s(), got) {
				t.Errorf("back: %s %v, want f32 %v", back.DType(), back.Float32s(), got)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	be := tensor.Default()
	released := tensor.From(be, tensor.Float32, []float32{1, 2})
	released.Release()
	masked := gt.New(gt.WithShape(3), gt.WithBacking([]float64{1, 2, 3}, []bool{false, true, false}))

	toCases := []struct {
		name        string
		t           *tensor.Tensor
		tensorError bool
	}{
		{"nil tensor", nil, false},
		{"released tensor", released, true},
	}
	for _, c := range toCases {
		t.Run("ToDense "+c.name, func(t *testing.T) {
			d, err := ToDense(c.t)
			if err == nil || d != nil {
				t.Fatalf("got %v, %v; want an error", d, err)
			}
			var te *tensor.Error
			if errors.As(err, &te) != c.tensorError {
				t.Errorf("error %q: wraps *tensor.Error = %v, want %v", err, !c.tensorError, c.tensorError)
			}
		})
	}

	fromCases := []struct {
		name        string
		be          tensor.Backend
		d           *gt.Dense
		unsupported bool
	}{
		{"int", be, gt.New(gt.WithShape(2), gt.WithBacking([]int{1, 2})), true},
		{"int64", be, gt.New(gt.WithShape(2), gt.WithBacking([]int64{1, 2})), true},
		{"uint8", be, gt.New(gt.WithShape(2), gt.WithBacking([]uint8{1, 2})), true},
		{"bool", be, gt.New(gt.WithShape(2), gt.WithBacking([]bool{true, false})), true},
		{"complex128", be, gt.New(gt.WithShape(2), gt.WithBacking([]complex128{1, 2i})), true},
		{"int scalar", be, gt.New(gt.FromScalar(3)), true},
		{"masked", be, masked, false},
		{"nil Dense", be, nil, false},
		{"nil backend", nil, gt.New(gt.WithShape(2), gt.WithBacking([]float32{1, 2})), false},
		{"rank 9", be, gt.New(gt.Of(gt.Float32), gt.WithShape(1, 1, 1, 1, 1, 1, 1, 1, 1)), false},
	}
	for _, c := range fromCases {
		t.Run("FromDense "+c.name, func(t *testing.T) {
			got, err := FromDense(c.be, c.d)
			if err == nil || got != nil {
				t.Fatalf("got %v, %v; want an error", got, err)
			}
			if errors.Is(err, ErrUnsupportedDType) != c.unsupported {
				t.Errorf("error %q: errors.Is(ErrUnsupportedDType) = %v, want %v", err, !c.unsupported, c.unsupported)
			}
		})
	}
}

func TestGatherOutOfRange(t *testing.T) {
	if _, err := gather([]float32{1, 2, 3}, []int{2, 2}, []int{2, 1}); err == nil {
		t.Error("gather read past the end of its data without an error")
	}
	if _, err := gather([]float32{1, 2, 3}, []int{2}, []int{1, 1}); err == nil {
		t.Error("gather accepted strides of the wrong rank")
	}
}
