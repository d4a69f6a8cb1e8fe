package bench

import (
	"math"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/train"
)

var tiny = GPTConfig{Layers: 2, Width: 32, Heads: 4, Vocab: 50, Context: 16}

// trainTiny trains the tiny model on one fixed batch and returns the losses.
func trainTiny(t *testing.T, be tensor.Backend, steps int) []float64 {
	t.Helper()
	m := NewGPT(be, tiny, 5)
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2, WeightDecay: 0.01}, m.Groups()...)
	if err != nil {
		t.Fatal(err)
	}
	ids, pos, targets := batchData(be, tiny.Vocab, 2, tiny.Context)
	var losses []float64
	for range steps {
		losses = append(losses, trainStep(t, m, opt, 1e-2, ids, pos, targets))
	}
	return losses
}

// trainStep runs forward, backward, clipping at norm 1 and AdamW at lr,
// and returns the loss.
func trainStep(t testing.TB, m *GPT, opt *train.AdamW, lr float64, ids, pos, targets *tensor.Tensor) float64 {
	loss := m.Loss(ids, pos, targets)
	loss.Backward()
	if err := opt.Step(lr, train.ClipScale(train.GradNorm(opt.Params()), 1)); err != nil {
		t.Fatal(err)
	}
	l := loss.Item()
	loss.Release()
	return l
}

func TestGPTLearnsBatch(t *testing.T) {
	losses := trainTiny(t, cpu.New(2), 60)
	first, last := losses[0], losses[len(losses)-1]
	// A fresh model predicts about uniformly: log(50) = 3.91.
	if math.Abs(first-math.Log(50)) > 0.3 {
		t.Errorf("initial loss %.3f, want about %.3f", first, math.Log(50))
	}
	if last > 0.5 {
		t.Errorf("loss %.3f -> %.3f after 60 steps; memorising one batch should go below 0.5", first, last)
	}
}

func TestGPTDeterministic(t *testing.T) {
	a := trainTiny(t, cpu.New(2), 5)
	b := trainTiny(t, cpu.New(2), 5)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: losses %v and %v differ with the same seed and threads", i, a[i], b[i])
		}
	}
}

// TestStepReusesBuffers: after a warm-up step, training steps are served
// entirely from the storage pool.
func TestStepReusesBuffers(t *testing.T) {
	be := cpu.New(2)
	m := NewGPT(be, tiny, 1)
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-3}, m.Groups()...)
	if err != nil {
		t.Fatal(err)
	}
	ids, pos, targets := batchData(be, tiny.Vocab, 2, 16)
	var before tensor.MemoryStats
	for i := range 4 {
		if i == 1 {
			before = be.MemoryStats()
		}
		trainStep(t, m, opt, 1e-3, ids, pos, targets)
	}
	after := be.MemoryStats()
	if n := after.Allocs - before.Allocs; n != 0 {
		t.Fatalf("%d new buffers (%d bytes) in 3 warm steps; every buffer should come from the pool", n, after.AllocBytes-before.AllocBytes)
	}
	if after.Reuses == before.Reuses {
		t.Fatal("no pool reuse counted")
	}
}

func TestCoreReportsFigures(t *testing.T) {
	cfg := tiny
	r := Core(cpu.New(2), cfg, 2, 16, 1, 2, nil)
	if r.SGEMMGFlops <= 0 || r.StepMS <= 0 || r.ModelGFlops <= 0 || r.MFUvsSGEMM <= 0 {
		t.Fatalf("figures not all positive: %+v", r)
	}
	if math.IsNaN(r.LastLoss) {
		t.Fatalf("loss is NaN")
	}
}

func BenchmarkSGEMM1024(b *testing.B) {
	be := cpu.New(0)
	rng := tensor.NewRNG(1)
	x := tensor.Randn(be, tensor.Float32, rng, 1, 1024, 1024)
	y := tensor.Randn(be, tensor.Float32, rng, 1, 1024, 1024)
	b.SetBytes(0)
	for b.Loop() {
		x.MatMul(y).Release()
	}
	b.ReportMetric(2*1024*1024*1024*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkGPTStep times one training step of the GPT-2-shaped benchmark
// model (forward, backward, clipping, AdamW); -benchmem reports its
// allocations.
func BenchmarkGPTStep(b *testing.B) {
	be := cpu.New(0)
	m := NewGPT(be, DefaultGPT, 1)
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 3e-4}, m.Groups()...)
	if err != nil {
		b.Fatal(err)
	}
	ids, pos, targets := batchData(be, DefaultGPT.Vocab, 4, 64)
	trainStep(b, m, opt, 3e-4, ids, pos, targets)
	b.ReportAllocs()
	for b.Loop() {
		trainStep(b, m, opt, 3e-4, ids, pos, targets)
	}
	b.ReportMetric(float64(4*64*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
