package cpu

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/minnowml/minnow/tensor"
)

func init() {
	tensor.Register("cpu", func() (tensor.Backend, error) { return New(0), nil })
}

// Backend is the CPU implementation of tensor.Backend. It is safe for use by
// one training loop at a time; its storage pool is safe for concurrent use.
type Backend struct {
	threads int
	work    chan task

	mu        sync.Mutex
	pool      map[poolKey]*pooled
	clock     uint64 // counts Alloc and Free calls, to date each size's last use
	poolLimit int64
	stats     tensor.MemoryStats
}

// pooled holds the free buffers of one size and when that size was last
// asked for or given back.
type pooled struct {
	free []*Storage
	used uint64
}

type poolKey struct {
	dt tensor.DType
	n  int
}

// New returns a CPU backend that uses the given number of threads; 0 means
// the MINNOW_THREADS environment variable, else GOMAXPROCS.
func New(threads int) *Backend {
	if threads <= 0 {
		if v, err := strconv.Atoi(os.Getenv("MINNOW_THREADS")); err == nil && v > 0 {
			threads = v
		} else {
			threads = runtime.GOMAXPROCS(0)
		}
	}
	b := &Backend{threads: threads, pool: map[poolKey]*pooled{}, work: make(chan task, threads), poolLimit: defaultPoolLimit()}
	for i := 1; i < threads; i++ {
		go worker(b.work)
	}
	blasInit(threads)
	return b
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Threads returns the number of threads kernels use.
func (b *Backend) Threads() int { return b.threads }

// Describe returns the BLAS in use and the thread count, for logs and
// `minnow version`.
func (b *Backend) Describe() string {
	return fmt.Sprintf("cpu (%s, %d threads, %s/%s)", blasName(), b.threads, runtime.GOOS, runtime.GOARCH)
}

// Storage is host memory holding one dtype; exactly one of its slices is set.
type Storage struct {
	be  *Backend
	dt  tensor.DType
	f32 []float32
	f64 []float64
	u16 []uint16
	i32 []int32
}

// Backend returns the owning backend.
func (s *Storage) Backend() tensor.Backend { return s.be }

// DType returns the element type.
func (s *Storage) DType() tensor.DType { return s.dt }

// Len returns the number of elements.
func (s *Storage) Len() int {
	switch s.dt {
	case tensor.Float32:
		return len(s.f32)
	case tensor.Float64:
		return len(s.f64)
	case tensor.Int32:
		return len(s.i32)
	}
	return len(s.u16)
}

// Alloc returns pooled storage of exactly n elements when available, else
// new memory; contents are undefined. It never fails on the CPU short of
// the runtime's own out-of-memory crash, but returns an error for a
// negative n.
func (b *Backend) Alloc(dt tensor.DType, n int) (tensor.Storage, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: alloc of %d elements", n)
	}
	k := poolKey{dt, n}
	b.mu.Lock()
	b.clock++
	if p := b.pool[k]; p != nil && len(p.free) > 0 {
		s := p.free[len(p.free)-1]
		p.free[len(p.free)-1] = nil
		p.free = p.free[:len(p.free)-1]
		p.used = b.clock
		b.stats.PooledBytes -= int64(n * dt.Size())
		b.stats.Reuses++
		b.mu.Unlock()
		return s, nil
	}
	b.stats.Allocs++
	b.stats.AllocBytes += int64(n * dt.Size())
	b.mu.Unlock()
	s := &Storage{be: b, dt: dt}
	switch dt {
	case tensor.Float32:
		s.f32 = make([]float32, n)
	case tensor.Float64:
		s.f64 = make([]float64, n)
	case tensor.Int32:
		s.i32 = make([]int32, n)
	case tensor.BFloat16, tensor.Float16:
		s.u16 = make([]uint16, n)
	default:
		return nil, fmt.Errorf("cpu: alloc: dtype %s: %w", dt, tensor.ErrUnsupported)
	}
	return s, nil
}

// Free puts s back in the pool for the next Alloc of the same size. When
// the pool then holds more than its limit (SetPoolLimit), the sizes used
// longest ago are dropped until it holds three quarters of it, so shapes
// that vary from step to step (generation, rollouts of every length)
// cannot grow it without bound, while a step whose shapes repeat keeps
// reusing its buffers.
func (b *Backend) Free(st tensor.Storage) {
	s := st.(*Storage)
	k := poolKey{s.dt, s.Len()}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clock++
	p := b.pool[k]
	if p == nil {
		p = &pooled{}
		b.pool[k] = p
	}
	p.free = append(p.free, s)
	p.used = b.clock
	b.stats.PooledBytes += int64(k.n * s.dt.Size())
	if b.stats.PooledBytes > b.poolLimit {
		b.evict(b.poolLimit / 4 * 3)
	}
}

// evict drops the buffers of the least recently used sizes until the pool
// holds at most target bytes. The caller holds b.mu.
func (b *Backend) evict(target int64) {
	keys := make([]poolKey, 0, len(b.pool))
	for k := range b.pool {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y poolKey) int { return cmp.Compare(b.pool[x].used, b.pool[y].used) })
	for _, k := range keys {
		if b.stats.PooledBytes <= target {
			return
		}
		b.stats.PooledBytes -= int64(len(b.pool[k].free) * k.n * k.dt.Size())
		b.stats.Evictions += int64(len(b.pool[k].free))
		delete(b.pool, k)
	}
}

// SetPoolLimit bounds the bytes the pool keeps for reuse; 0 or less
// restores the default: MINNOW_POOL_MB when set, else a sixteenth of the
// machine's memory but at least 1 GiB (2 GiB when it cannot be read). The
// default holds a training step's activations for the models minnow is
// for; a larger step than the limit still runs, reallocating what the
// pool could not keep.
func (b *Backend) SetPoolLimit(bytes int64) {
	if bytes <= 0 {
		bytes = defaultPoolLimit()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.poolLimit = bytes
	if b.stats.PooledBytes > bytes {
		b.evict(bytes / 4 * 3)
	}
}

// defaultPoolLimit is SetPoolLimit's default.
func defaultPoolLimit() int64 {
	if v, err := strconv.ParseInt(os.Getenv("MINNOW_POOL_MB"), 10, 64); err == nil && v > 0 {
		return v << 20
	}
	if total := totalMemory(); total > 0 {
		return max(total/16, 1<<30)
	}
	return 2 << 30
}

// totalMemory returns the machine's memory in bytes from /proc/meminfo, or
// 0 where that cannot be read.
func totalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil && len(f) == 2 && f[1] == "kB" {
				return kb << 10
			}
		}
	}
	return 0
}

// PooledBytes returns the bytes held in the pool for reuse.
func (b *Backend) PooledBytes() int64 { return b.MemoryStats().PooledBytes }

// MemoryStats returns how many storage requests were served with new memory
// and how many from the pool.
func (b *Backend) MemoryStats() tensor.MemoryStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Trim empties the pool, letting the garbage collector take the memory.
func (b *Backend) Trim() {
	b.mu.Lock()
	clear(b.pool)
	b.stats.PooledBytes = 0
	b.mu.Unlock()
}

// Sync returns nil: CPU kernels finish before they return.
func (b *Backend) Sync() error { return nil }

func st(r tensor.Ref) *Storage { return r.S.(*Storage) }

// f32 and friends return the slice from the ref's offset to the storage end.
func f32(r tensor.Ref) []float32 { return st(r).f32[r.Off:] }
func f64(r tensor.Ref) []float64 { return st(r).f64[r.Off:] }
func i32(r tensor.Ref) []int32   { return st(r).i32[r.Off:] }

func present(r tensor.Ref) bool { return r.S != nil }

func unsupported(op string, dt tensor.DType) error {
	return fmt.Errorf("cpu: %s on %s: %w", op, dt, tensor.ErrUnsupported)
}

// Write copies a host slice into dst.
func (b *Backend) Write(dst tensor.Ref, src any) error {
	s := st(dst)
	var n int
	switch v := src.(type) {
	case []float32:
		if s.dt == tensor.Float32 {
			n = copy(s.f32[dst.Off:], v)
		}
	case []float64:
		if s.dt == tensor.Float64 {
			n = copy(s.f64[dst.Off:], v)
		}
	case []int32:
		if s.dt == tensor.Int32 {
			n = copy(s.i32[dst.Off:], v)
		}
	case []uint16:
		if s.dt == tensor.BFloat16 || s.dt == tensor.Float16 {
			n = copy(s.u16[dst.Off:], v)
		}
	default:
		return fmt.Errorf("cpu: write: unsupported host type %T", src)
	}
	if want := lenOf(src); n != want {
		return fmt.Errorf("cpu: write: %T of %d into %s storage with %d elements from %d", src, want, s.dt, s.Len(), dst.Off)
	}
	return nil
}

// Read copies from src into a host slice of the storage's element type.
func (b *Backend) Read(dst any, src tensor.Ref) error {
	s := st(src)
	var n int
	switch v := dst.(type) {
	case []float32:
		if s.dt == tensor.Float32 {
			n = copy(v, s.f32[src.Off:])
		}
	case []float64:
		if s.dt == tensor.Float64 {
			n = copy(v, s.f64[src.Off:])
		}
	case []int32:
		if s.dt == tensor.Int32 {
			n = copy(v, s.i32[src.Off:])
		}
	case []uint16:
		if s.dt == tensor.BFloat16 || s.dt == tensor.Float16 {
			n = copy(v, s.u16[src.Off:])
		}
	default:
		return fmt.Errorf("cpu: read: unsupported host type %T", dst)
	}
	if want := lenOf(dst); n != want {
		return fmt.Errorf("cpu: read: %d elements of %s storage into %T of %d", n, s.dt, dst, want)
	}
	return nil
}

func lenOf(v any) int {
	switch x := v.(type) {
	case []float32:
		return len(x)
	case []float64:
		return len(x)
	case []int32:
		return len(x)
	case []uint16:
		return len(x)
	}
	return -1
}
