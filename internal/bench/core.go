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
	Backend       string
	SGEMMGFlops   float64
	StepMS        float64 // median
	TokensPerS    float64
	ModelGFlops   float64
	MFUvsSGEMM    float64
	AllocsPerStep float64
	BytesPerStep  float64
	FirstLoss     float64
	LastLoss      float64
}

// Line returns the RESULT line that `make bench` prints last.
func (r CoreResult) Line() string {
	return fmt.Sprintf("RESULT sgemm_gflops=%.1f step_ms=%.1f tokens_per_s=%.0f model_gflops=%.1f mfu_vs_sgemm=%.3f allocs_per_step=%.0f",
		r.SGEMMGFlops, r.StepMS, r.TokensPerS, r.ModelGFlops, r.MFUvsSGEMM, r.AllocsPerStep)
}

// SGEMM returns the rate in GFLOP/s of n×n×n float32 products on be,
// the median of reps timed runs after a warm-up.
func SGEMM(be tensor.Backend, n, reps int) float64 {
	rng := tensor.NewRNG(1)
	a := tensor.Randn(be, tensor.Float32, rng, 1, n, n)
	b := tensor.Randn(be, tensor.Float32, rng, 1, n, n)
	var times []float64
	for i := 0; i <= reps; i++ {
		t0 := time.Now()
		c := a.MatMul(b)
		c.Float32s()[:1][0] += 0 // wait for the device, if any
		dt := time.Since(t0).Seconds()
		c.Release()
		if i > 0 {
			times = append(times, dt)
		}
	}
	return 2 * float64(n) * float64(n) * float64(n) / median(times) / 1e9
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Core runs the SGEMM reference at 1024³, then steps training steps
// (forward, backward, AdamW) of the GPT-2-shaped model at batch×seq tokens,
// after warm-up steps that fill the storage pool. progress, when not nil,
// receives a line per step.
func Core(be tensor.Backend, cfg GPTConfig, batch, seq, warmup, steps int, progress func(string)) CoreResult {
	res := CoreResult{Backend: be.Describe(), SGEMMGFlops: SGEMM(be, 1024, 5)}
	m := NewGPT(be, cfg, 1)
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 3e-4, WeightDecay: 0.1}, m.Groups()...)
	if err != nil {
		panic(err)
	}
	ids, pos, targets := batchData(be, cfg.Vocab, batch, seq)
	var times []float64
	var ms runtime.MemStats
	var mallocs, bytes uint64
	for i := 0; i < warmup+steps; i++ {
		if i == warmup {
			runtime.ReadMemStats(&ms)
			mallocs, bytes = ms.Mallocs, ms.TotalAlloc
		}
		t0 := time.Now()
		loss := m.Loss(ids, pos, targets)
		loss.Backward()
		scale := train.ClipScale(train.GradNorm(opt.Params()), 1.0)
		if err := opt.Step(3e-4, scale); err != nil {
			panic(err)
		}
		l := loss.Item()
		loss.Release()
		dt := time.Since(t0).Seconds()
		if i == 0 {
			res.FirstLoss = l
		}
		res.LastLoss = l
		if i >= warmup {
			times = append(times, dt)
		}
		if progress != nil {
			progress(fmt.Sprintf("step %d loss %.4f %.1f ms", i, l, dt*1e3))
		}
	}
	runtime.ReadMemStats(&ms)
	tokens := float64(batch * seq)
	res.StepMS = median(times) * 1e3
	res.TokensPerS = tokens / median(times)
	// 6·N per token for the matrix products (forward and backward), plus
	// attention's scores and weighted sums: 12·layers·seq·width per token.
	flops := (6*float64(m.MatmulParams()) + 12*float64(cfg.Layers*seq*cfg.Width)) * tokens
	res.ModelGFlops = flops / median(times) / 1e9
	res.MFUvsSGEMM = res.ModelGFlops / res.SGEMMGFlops
	res.AllocsPerStep = float64(ms.Mallocs-mallocs) / float64(steps)
	res.BytesPerStep = float64(ms.TotalAlloc-bytes) / float64(steps)
	return res
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
