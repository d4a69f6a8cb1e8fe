package cpu

import (
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// TestPoolLimit: buffers of ever new sizes, as generation and rollouts
// make, keep the pool within its limit by dropping the sizes used longest
// ago, while a size in steady use is still served from the pool.
func TestPoolLimit(t *testing.T) {
	b := New(1)
	const limit = 1 << 20 // bytes
	b.SetPoolLimit(limit)
	steady, err := b.Alloc(tensor.Float32, 1000)
	if err != nil {
		t.Fatal(err)
	}
	b.Free(steady)
	for n := 1; n <= 400; n++ {
		s, _ := b.Alloc(tensor.Float32, 1000) // the steady shape, reused
		v, _ := b.Alloc(tensor.Float32, 1000+n*37)
		b.Free(v)
		b.Free(s)
		if p := b.PooledBytes(); p > limit {
			t.Fatalf("after %d sizes the pool holds %d bytes, over its limit %d", n, p, limit)
		}
	}
	st := b.MemoryStats()
	if st.Evictions == 0 {
		t.Fatal("no buffer was ever dropped")
	}
	// Allocs: the first steady buffer and each varying one; every later
	// steady request was served from the pool.
	if st.Allocs != 401 || st.Reuses != 400 {
		t.Fatalf("allocs %d, reuses %d; want 401 and 400", st.Allocs, st.Reuses)
	}
	b.SetPoolLimit(1000)
	if p := b.PooledBytes(); p > 1000 {
		t.Fatalf("lowering the limit left %d bytes pooled", p)
	}
}

func TestDefaultPoolLimit(t *testing.T) {
	t.Setenv("MINNOW_POOL_MB", "3")
	if got := defaultPoolLimit(); got != 3<<20 {
		t.Fatalf("MINNOW_POOL_MB=3: limit %d", got)
	}
	t.Setenv("MINNOW_POOL_MB", "")
	if got := defaultPoolLimit(); got < 1<<28 {
		t.Fatalf("default limit %d bytes is implausibly small", got)
	}
}
