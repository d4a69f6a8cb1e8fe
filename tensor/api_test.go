package tensor_test

import (
	"slices"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

func TestConstructorsAndTo(t *testing.T) {
	cases := []struct {
		name  string
		x     *tensor.Tensor
		dt    tensor.DType
		shape []int
		vals  []float64
	}{
		{"zeros", tensor.Zeros(2, 2), tensor.Float32, []int{2, 2}, []float64{0, 0, 0, 0}},
		{"ones", tensor.Ones(3), tensor.Float32, []int{3}, []float64{1, 1, 1}},
		{"from-f64", tensor.FromFloat64([]float64{1.5, -2}, 2, 1), tensor.Float64, []int{2, 1}, []float64{1.5, -2}},
		{"from-i32", tensor.FromInt32([]int32{7, -1, 3}), tensor.Int32, []int{3}, []float64{7, -1, 3}},
		{"full-bf16", tensor.Full(be, tensor.BFloat16, 0.1, 2), tensor.BFloat16, []int{2}, []float64{0.10009765625, 0.10009765625}},
		{"empty-shape", tensor.Empty(be, tensor.Float32, 0, 3), tensor.Float32, []int{0, 3}, []float64{}},
	}
	other := cpu.New(1)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, x := range []*tensor.Tensor{c.x, c.x.To(other)} {
				if x.DType() != c.dt || !slices.Equal(x.Shape(), c.shape) {
					t.Fatalf("got %s %v, want %s %v", x.DType(), x.Shape(), c.dt, c.shape)
				}
				got := x.Float64s()
				for i := range c.vals {
					if got[i] != c.vals[i] {
						t.Fatalf("element %d = %v, want %v", i, got[i], c.vals[i])
					}
				}
			}
			if moved := c.x.To(other); moved.Backend() != other || c.x.To(c.x.Backend()) != c.x {
				t.Fatal("To must move to the given backend and be a no-op on the same one")
			}
		})
	}
}

// TestEmbeddingGradIntoSharedBuffer: the embedding's scatter-add writes into
// the table's existing gradient, which must be copied first when an Add has
// handed the same buffer to another tensor.
func TestEmbeddingGradIntoSharedBuffer(t *testing.T) {
	for _, order := range []string{"add-first", "embedding-first"} {
		w := tensor.FromFloat64([]float64{1, 2, 3, 4, 5, 6}, 3, 2).SetRequiresGrad(true)
		u := tensor.FromFloat64([]float64{0, 0, 0, 0, 0, 0}, 3, 2).SetRequiresGrad(true)
		ids := tensor.FromInt32([]int32{2, 2, 0})
		sum := w.Add(u).Sum()
		emb := tensor.Embedding(w, ids).Sum()
		loss := sum.Add(emb)
		if order == "embedding-first" {
			loss = emb.Add(sum)
		}
		loss.Backward()
		// d/dw = 1 everywhere from the sum, plus the count of each row in ids.
		want := []float64{2, 2, 1, 1, 3, 3}
		for i, g := range w.Grad().Float64s() {
			if g != want[i] {
				t.Fatalf("%s: dW = %v, want %v", order, w.Grad().Float64s(), want)
			}
		}
		for _, g := range u.Grad().Float64s() {
			if g != 1 {
				t.Fatalf("%s: the shared gradient of u was overwritten: %v", order, u.Grad().Float64s())
			}
		}
	}
}

func TestTrimEmptiesPool(t *testing.T) {
	b := cpu.New(2)
	if b.Threads() != 2 {
		t.Fatalf("Threads = %d, want 2", b.Threads())
	}
	tensor.Full(b, tensor.Float32, 1, 1000).Release()
	if b.PooledBytes() != 4000 {
		t.Fatalf("pooled %d bytes, want 4000", b.PooledBytes())
	}
	b.Trim()
	if b.PooledBytes() != 0 {
		t.Fatalf("pooled %d bytes after Trim", b.PooledBytes())
	}
	before := b.MemoryStats().Allocs
	tensor.Full(b, tensor.Float32, 1, 1000).Release()
	if b.MemoryStats().Allocs != before+1 {
		t.Fatal("after Trim the next request must allocate")
	}
}

func TestCopyFrom(t *testing.T) {
	dst := tensor.Zeros(2, 2)
	dst.CopyFrom(tensor.FromFloat64([]float64{1, 2, 3, 4}, 2, 2).Transpose(0, 1))
	if got := dst.Float32s(); !slices.Equal(got, []float32{1, 3, 2, 4}) {
		t.Fatalf("CopyFrom gave %v", got)
	}
	if err := tensor.Catch(func() { dst.CopyFrom(tensor.Zeros(4)) }); err == nil {
		t.Fatal("a shape mismatch must panic with *Error")
	}
	if err := tensor.Catch(func() { dst.CopyFrom(tensor.Full(cpu.New(1), tensor.Float32, 0, 2, 2)) }); err == nil {
		t.Fatal("a tensor on another backend must panic with *Error")
	}
}
