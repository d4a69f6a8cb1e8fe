package bench

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// CoreResult holds the figures of one core benchmark run.
type CoreResult struct {
	Backend     string
	SGEMMGFlops float64
	StepMS      float64 // median
	TokensPerS  float64
	ModelGFlops float64
	MFUvsSGEMM  float64
	// AllocsPerStep counts storage requests per step that the backend could
	// not serve from its pool (new device or host buffers): zero once the
	// pool is warm.
	AllocsPerStep float64
	// HeapObjectsPerStep and HeapBytesPerStep count the Go heap allocations
	// per step (tensor headers, graph nodes, closures), for completeness.
	HeapObjectsPerStep float64
	HeapBytesPerStep   float64
	FirstLoss          float64
	LastLoss           float64
}

// Line returns the RESULT line that `make bench` prints last.
func (r CoreResult) Line() string {
	return fmt.Sprintf("RESULT sgemm_gflops=%.1f step_ms=%.1f tokens_per_s=%.0f model_gflops=%.1f mfu_vs_sgemm=%.3f allocs_per_step=%.0f",
		r.SGEMMGFlops, r.StepMS, r.TokensPerS, r.ModelGFlops, r.MFUvsSGEMM, r.AllocsPerStep)
}

// SGEMM returns the rate in GFLOP/s of n×n×n float32 products on be,
// the median of reps timed runs after a warm-up.
func SGEMM(be tensor.Backend, n, reps int) float64 {
	s := newSGEMM(be, n)
	defer s.release()
	s.time()
	var rates []float64
	for range reps {
		rates = append(rates, s.time())
	}
	return median(rates)
}

// sgemmProbe holds the operands of the reference product.
type sgemmProbe struct {
	a, b *tensor.Tensor
	n    int
}

func newSGEMM(be tensor.Backend, n int) *sgemmProbe {
	rng := tensor.NewRNG(1)
	return &sgemmProbe{a: tensor.Randn(be, tensor.Float32, rng, 1, n, n), b: tensor.Randn(be, tensor.Float32, rng, 1, n, n), n: n}
}

// time runs one product and returns its rate in GFLOP/s.
func (s *sgemmProbe) time() float64 {
	t0 := time.Now()
	c := s.a.MatMul(s.b)
	check := c.Float32s()[0] // waits for the device, if any
	dt := time.Since(t0).Seconds()
	_ = check
	c.Release()
	n := float64(s.n)
	return 2 * n * n * n / dt / 1e9
}

func (s *sgemmProbe) release() {
	s.a.Release()
	s.b.Release()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Core runs steps training steps (forward, backward, clipping, AdamW) of
// the GPT-2-shaped model at batch×seq tokens, after warm-up steps that fill
// the storage pool, and the SGEMM reference at 1024³ in the same process:
// nine products before the steps and nine after. The step time is a
// median; the reference is the better of the two medians, so a slow moment
// of a shared machine can only lower the reported utilisation. progress,
// when not nil, receives a line per step.
func Core(be tensor.Backend, cfg GPTConfig, batch, seq, warmup, steps int, progress func(string)) CoreResult {
	res := CoreResult{Backend: be.Describe()}
	sgemmBefore := SGEMM(be, 1024, 9)
	m := NewGPT(be, cfg, 1)
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 3e-4, WeightDecay: 0.1}, m.Groups()...)
	if err != nil {
		panic(err)
	}
	ids, pos, targets := batchData(be, cfg.Vocab, batch, seq)
	var ms runtime.MemStats
	var mallocs, bytes uint64
	var buffers tensor.MemoryStats
	timed := func() {
		runtime.ReadMemStats(&ms)
		mallocs, bytes = ms.Mallocs, ms.TotalAlloc
		buffers = memStats(be)
	}
	var report func(int, float64, float64)
	if progress != nil {
		report = func(i int, l, dt float64) { progress(fmt.Sprintf("step %d loss %.4f %.1f ms", i, l, dt*1e3)) }
	}
	times, first, last, err := trainSteps(opt, func() *tensor.Tensor { return m.Loss(ids, pos, targets) }, warmup, steps, timed, report)
	if err != nil {
		panic(err)
	}
	res.FirstLoss, res.LastLoss = first, last
	runtime.ReadMemStats(&ms)
	res.AllocsPerStep = float64(memStats(be).Allocs-buffers.Allocs) / float64(steps)
	res.HeapObjectsPerStep = float64(ms.Mallocs-mallocs) / float64(steps)
	res.HeapBytesPerStep = float64(ms.TotalAlloc-bytes) / float64(steps)
	res.SGEMMGFlops = max(sgemmBefore, SGEMM(be, 1024, 9))
	tokens := float64(batch * seq)
	res.StepMS = median(times) * 1e3
	res.TokensPerS = tokens / median(times)
	// 6·N per token for the matrix products (forward and backward), plus
	// attention's scores and weighted sums: 12·layers·seq·width per token.
	flops := (6*float64(m.MatmulParams()) + 12*float64(cfg.Layers*seq*cfg.Width)) * tokens
	res.ModelGFlops = flops / median(times) / 1e9
	res.MFUvsSGEMM = res.ModelGFlops / res.SGEMMGFlops
	return res
}

// memStats returns the backend's storage counts, or zeros when it keeps
// none.
func memStats(be tensor.Backend) tensor.MemoryStats {
	if r, ok := be.(tensor.MemoryReporter); ok {
		return r.MemoryStats()
	}
	return tensor.MemoryStats{}
}

// batchData returns deterministic token ids, their positions and the
// next-token targets.
func batchData(be tensor.Backend, vocab, batch, seq int) (ids, pos, targets *tensor.Tensor) {
	rng := tensor.NewRNG(3)
	stream := make([]int32, batch*(seq+1))
	for i := range stream {
		stream[i] = int32(rng.IntN(vocab))
	}
	in := make([]int32, 0, batch*seq)
	out := make([]int32, 0, batch*seq)
	p := make([]int32, 0, batch*seq)
	for b := 0; b < batch; b++ {
		row := stream[b*(seq+1) : (b+1)*(seq+1)]
		in = append(in, row[:seq]...)
		out = append(out, row[1:]...)
		for t := 0; t < seq; t++ {
			p = append(p, int32(t))
		}
	}
	return tensor.From(be, tensor.Int32, in, batch, seq), tensor.From(be, tensor.Int32, p, batch, seq),
		tensor.From(be, tensor.Int32, out, batch, seq)
}

// trainSteps runs warmup+steps training steps (loss, backward, clipping at
// norm 1, AdamW at lr 3e-4), timing each, and returns the times of the
// steps after the warm-up and the first and last losses. timed, when not
// nil, runs once just before the first timed step; progress, when not nil,
// receives each step's index, loss and seconds. It returns the optimizer's
// error.
func trainSteps(opt *train.AdamW, loss func() *tensor.Tensor, warmup, steps int, timed func(), progress func(i int, loss, dt float64)) (times []float64, first, last float64, err error) {
	for i := range warmup + steps {
		if i == warmup && timed != nil {
			timed()
		}
		t0 := time.Now()
		l := loss()
		l.Backward()
		if err := opt.Step(3e-4, train.ClipScale(train.GradNorm(opt.Params()), 1)); err != nil {
			l.Release()
			return times, first, last, err
		}
		last = l.Item()
		l.Release()
		dt := time.Since(t0).Seconds()
		if i == 0 {
			first = last
		}
		if i >= warmup {
			times = append(times, dt)
		}
		if progress != nil {
			progress(i, last, dt)
		}
	}
	return times, first, last, nil
}
