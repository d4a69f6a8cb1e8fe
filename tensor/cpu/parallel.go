package cpu

import "sync"

type task struct {
	fn     func(lo, hi int)
	lo, hi int
	wg     *sync.WaitGroup
}

func worker(work <-chan task) {
	for t := range work {
		t.fn(t.lo, t.hi)
		t.wg.Done()
	}
}

var wgPool = sync.Pool{New: func() any { return new(sync.WaitGroup) }}

// parallel calls fn over [0, n) split into at most b.threads contiguous
// chunks, running one in the caller. Work whose total cost (n*cost, roughly
// in element operations) is too small to repay the hand-off runs inline. The
// split depends only on n and the thread count, which keeps results
// deterministic.
func (b *Backend) parallel(n, cost int, fn func(lo, hi int)) {
	const minWork = 1 << 15
	parts := b.threads
	if cost < 1 {
		cost = 1
	}
	if w := n * cost / minWork; w < parts {
		parts = w
	}
	if parts > n {
		parts = n
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	wg := wgPool.Get().(*sync.WaitGroup)
	wg.Add(parts - 1)
	chunk := (n + parts - 1) / parts
	for p := 1; p < parts; p++ {
		lo := p * chunk
		hi := min(lo+chunk, n)
		if lo >= hi {
			wg.Done()
			continue
		}
		b.work <- task{fn: fn, lo: lo, hi: hi, wg: wg}
	}
	fn(0, min(chunk, n))
	wg.Wait()
	wgPool.Put(wg)
}
