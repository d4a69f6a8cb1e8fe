package checkpoint

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu"
)

// TestTensorBytes pins the stored bytes of each dtype to little-endian
// IEEE (or two's complement) encodings and checks the way back to a
// tensor.
func TestTensorBytes(t *testing.T) {
	be := tensor.Default()
	bf := func(v ...float32) []uint16 {
		u := make([]uint16, len(v))
		for i, f := range v {
			u[i] = tensor.BF16FromFloat32(f)
		}
		return u
	}
	f16 := func(v ...float32) []uint16 {
		u := make([]uint16, len(v))
		for i, f := range v {
			u[i] = tensor.F16FromFloat32(f)
		}
		return u
	}
	for _, tc := range []struct {
		name  string
		dt    tensor.DType
		host  any
		shape []int
		want  []byte
	}{
		{"f32", tensor.Float32, []float32{1, -2}, []int{2}, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}},
		{"f64", tensor.Float64, []float64{1}, []int{1}, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{"bf16", tensor.BFloat16, bf(1, -2, 0.5), []int{3}, []byte{0x80, 0x3f, 0, 0xc0, 0, 0x3f}},
		{"f16", tensor.Float16, f16(1, -2, 65504), []int{3}, []byte{0, 0x3c, 0, 0xc0, 0xff, 0x7b}},
		{"i32", tensor.Int32, []int32{1, -1, 258}, []int{3}, []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 2, 1, 0, 0}},
		{"matrix", tensor.Float32, []float32{1, 2, 3, 4, 5, 6}, []int{2, 3}, nil},
		{"scalar", tensor.Float32, []float32{3}, []int{}, []byte{0, 0, 0x40, 0x40}},
		{"zero-size", tensor.Float32, []float32{}, []int{2, 0}, []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var src *tensor.Tensor
			if len(tc.shape) == 0 {
				src = tensor.From(be, tc.dt, tc.host, 1).Reshape()
			} else {
				src = tensor.From(be, tc.dt, tc.host, tc.shape...)
			}
			nt := FromTensor(tc.name, src)
			if nt.Name != tc.name || nt.DType != tc.dt || !slices.Equal(nt.Shape, tc.shape) {
				t.Fatalf("FromTensor = %q %s %v, want %q %s %v", nt.Name, nt.DType, nt.Shape, tc.name, tc.dt, tc.shape)
			}
			if tc.want != nil && !bytes.Equal(nt.Data, tc.want) {
				t.Fatalf("FromTensor data % x, want % x", nt.Data, tc.want)
			}
			back, err := nt.Tensor(be)
			if err != nil {
				t.Fatal(err)
			}
			if back.DType() != tc.dt || !slices.Equal(back.Shape(), tc.shape) {
				t.Fatalf("Tensor() = %s %v, want %s %v", back.DType(), back.Shape(), tc.dt, tc.shape)
			}
			if g, w := back.Float64s(), src.Float64s(); !slices.Equal(g, w) {
				t.Fatalf("Tensor() values %v, want %v", g, w)
			}
			if again := FromTensor(tc.name, back); !bytes.Equal(again.Data, nt.Data) {
				t.Fatalf("tensor -> bytes -> tensor -> bytes changed the bytes: % x vs % x", again.Data, nt.Data)
			}
		})
	}
}

// TestTensorStrided checks that a view is stored in row-major order of its
// own shape, not its storage's.
func TestTensorStrided(t *testing.T) {
	x := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3).Transpose(0, 1)
	nt := FromTensor("xt", x)
	if !slices.Equal(nt.Shape, []int{3, 2}) {
		t.Fatalf("shape %v, want [3 2]", nt.Shape)
	}
	got := hostSlice[float32](nt.Data)
	if want := []float32{1, 4, 2, 5, 3, 6}; !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// TestTensorUnaligned checks that data at an odd address, as a caller's
// own buffer may be, converts by copying.
func TestTensorUnaligned(t *testing.T) {
	want := []float64{1.5, -2.25, 1e300}
	nt := FromTensor("x", tensor.FromFloat64(want, 3))
	buf := make([]byte, len(nt.Data)+1)
	copy(buf[1:], nt.Data)
	nt.Data = buf[1:]
	back, err := nt.Tensor(tensor.Default())
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Float64s(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestTensorErrors(t *testing.T) {
	be := tensor.Default()
	for _, tc := range []struct {
		name string
		nt   NamedTensor
		be   tensor.Backend
		want string
	}{
		{"nil backend", NamedTensor{Name: "a", DType: tensor.Float32, Shape: []int{1}, Data: make([]byte, 4)}, nil, "nil backend"},
		{"short data", NamedTensor{Name: "a", DType: tensor.Float32, Shape: []int{2}, Data: make([]byte, 4)}, be, "needs 8"},
		{"unknown dtype", NamedTensor{Name: "a", DType: 77, Shape: []int{1}, Data: make([]byte, 2)}, be, "unknown dtype"},
		{"negative dim", NamedTensor{Name: "a", DType: tensor.Int32, Shape: []int{-1}}, be, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.nt.Tensor(tc.be)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"a"`) {
				t.Fatalf("Tensor() = %v, want an error naming the tensor and containing %q", err, tc.want)
			}
		})
	}
}

// TestLoadToTensors runs a checkpoint of live tensors through a file and
// back to tensors, as resuming a run does.
func TestLoadToTensors(t *testing.T) {
	be := tensor.Default()
	rng := tensor.NewRNG(1)
	live := map[string]*tensor.Tensor{
		"w":  tensor.Randn(be, tensor.Float32, rng, 1, 16, 8),
		"b":  tensor.Randn(be, tensor.Float64, rng, 1, 8),
		"h":  tensor.Randn(be, tensor.BFloat16, rng, 1, 4, 4),
		"g":  tensor.Randn(be, tensor.Float16, rng, 1, 5),
		"id": tensor.FromInt32([]int32{3, 1, 4, 1, 5}),
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range live {
			if !yield(k) {
				return
			}
		}
	})
	c := &Checkpoint{Step: 1}
	for _, n := range names {
		c.Tensors = append(c.Tensors, FromTensor(n, live[n]))
	}
	path := filepath.Join(t.TempDir(), "live.ckpt")
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		nt, ok := Find(got.Tensors, n)
		if !ok {
			t.Fatalf("tensor %q missing after Load", n)
		}
		back, err := nt.Tensor(be)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := back.Float64s(), live[n].Float64s(); !slices.Equal(g, w) {
			t.Errorf("tensor %q = %v, want %v", n, g, w)
		}
	}
}

// TestOptimizerHandover runs per-parameter optimizer state through
// FromTensors, a file and Tensors, as the training loop does with AdamW's
// moments.
func TestOptimizerHandover(t *testing.T) {
	be := tensor.Default()
	rng := tensor.NewRNG(2)
	names := []string{"tok_embd.weight", "blk.0.attn_q.weight", "output_norm.weight"}
	var m, v []*tensor.Tensor
	for i := range names {
		m = append(m, tensor.Randn(be, tensor.Float32, rng, 1, 3, i+1))
		v = append(v, tensor.Randn(be, tensor.Float32, rng, 1, 3, i+1))
	}
	ms, err := FromTensors("adamw.m/", names, m)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := FromTensors("adamw.v/", names, v)
	if err != nil {
		t.Fatal(err)
	}
	c := &Checkpoint{Optimizer: OptimizerState{Name: "adamw", Step: 9, Tensors: append(ms, vs...)}}
	path := filepath.Join(t.TempDir(), "opt.ckpt")
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix string
		want   []*tensor.Tensor
	}{{"adamw.m/", m}, {"adamw.v/", v}} {
		back, err := Tensors(be, got.Optimizer.Tensors, tc.prefix, names)
		if err != nil {
			t.Fatal(err)
		}
		for i := range names {
			if g, w := back[i].Float32s(), tc.want[i].Float32s(); !slices.Equal(g, w) || !slices.Equal(back[i].Shape(), tc.want[i].Shape()) {
				t.Errorf("%s%s = %v %v, want %v %v", tc.prefix, names[i], back[i].Shape(), g, tc.want[i].Shape(), w)
			}
		}
	}

	for _, tc := range []struct {
		name  string
		list  []NamedTensor
		names []string
		want  string
	}{
		{"missing", ms[:2], names, `no tensor "adamw.m/output_norm.weight"`},
		{"extra", ms, names[:2], `1 unexpected tensor(s) named "adamw.m/"*, such as "adamw.m/output_norm.weight"`},
		{"bad data", []NamedTensor{{Name: "adamw.m/x", DType: tensor.Float32, Shape: []int{2}}}, []string{"x"}, "needs 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Tensors(be, tc.list, "adamw.m/", tc.names)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Tensors = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := FromTensors("p/", names[:1], m); err == nil {
		t.Error("FromTensors with fewer names than tensors succeeded")
	}
	if _, err := FromTensors("p/", names[:1], []*tensor.Tensor{nil}); err == nil || !strings.Contains(err.Error(), `"p/tok_embd.weight"`) {
		t.Errorf("FromTensors of a nil tensor: %v", err)
	}
}

// TestTensor16BitPatterns checks that every non-NaN bf16 and f16 bit
// pattern, subnormals and infinities included, survives FromTensor and
// Tensor bit for bit.
func TestTensor16BitPatterns(t *testing.T) {
	be := tensor.Default()
	for _, tc := range []struct {
		dt    tensor.DType
		isNaN func(uint16) bool
	}{
		{tensor.BFloat16, func(h uint16) bool { return h&0x7f80 == 0x7f80 && h&0x7f != 0 }},
		{tensor.Float16, func(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }},
	} {
		t.Run(tc.dt.String(), func(t *testing.T) {
			var bits []uint16
			for h := range 1 << 16 {
				if !tc.isNaN(uint16(h)) {
					bits = append(bits, uint16(h))
				}
			}
			nt := FromTensor("all", tensor.From(be, tc.dt, bits, len(bits)))
			got := hostSlice[uint16](nt.Data)
			for i, h := range bits {
				if got[i] != h {
					t.Fatalf("bits %#04x stored as %#04x", h, got[i])
				}
			}
			back, err := nt.Tensor(be)
			if err != nil {
				t.Fatal(err)
			}
			if again := FromTensor("all", back); !bytes.Equal(again.Data, nt.Data) {
				t.Fatal("bytes -> tensor -> bytes changed the bits")
			}
		})
	}
}
