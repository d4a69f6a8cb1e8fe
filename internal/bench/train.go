package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// SmolLM135M is a llama config of SmolLM-135M's shape (30 layers, width
// 576, 9 query and 3 key/value heads, MLP 1536, vocabulary 49152, tied
// embeddings), the model the train and generate benchmarks build with
// random weights.
var SmolLM135M = model.Config{
	ModelType:             "llama",
	VocabSize:             49152,
	HiddenSize:            576,
	IntermediateSize:      1536,
	NumHiddenLayers:       30,
	NumAttentionHeads:     9,
	NumKeyValueHeads:      3,
	MaxPositionEmbeddings: 2048,
	RMSNormEps:            1e-5,
	RopeTheta:             10000,
	TieWordEmbeddings:     true,
	HiddenAct:             "silu",
}

// TrainResult holds the figures of one training benchmark run.
type TrainResult struct {
	// StepMS is the median time of a timed step in milliseconds.
	StepMS float64
	// TokensPerS is batch·seq tokens over the median step time.
	TokensPerS float64
	// PeakRSSMB is the process's peak resident memory in MiB after the
	// run (see PeakRSS).
	PeakRSSMB float64
	// FirstLoss and LastLoss are the losses of the first and last steps.
	FirstLoss, LastLoss float64
}

// Line returns the RESULT line that `minnow bench train` prints.
func (r TrainResult) Line() string {
	return fmt.Sprintf("RESULT tokens_per_s=%.0f step_ms=%.1f peak_rss_mb=%.0f", r.TokensPerS, r.StepMS, r.PeakRSSMB)
}

// TrainBench builds the model cfg describes on be with float32 weights
// from a fixed seed and times steps training steps (forward, loss,
// backward, clipping at norm 1, AdamW) on batch×seq random tokens, after
// warmup untimed steps that fill the storage pool. The loss is read and
// released inside the timed step, since reading it is what waits for a
// device. It returns an error when a size is out of range, the config is
// invalid, or a step fails (the *tensor.Error it panicked with).
func TrainBench(be tensor.Backend, cfg model.Config, batch, seq, warmup, steps int) (TrainResult, error) {
	var res TrainResult
	if batch < 1 || seq < 1 || steps < 1 || warmup < 0 {
		return res, fmt.Errorf("bench: train needs positive batch, seq and steps and a non-negative warmup, got batch %d, seq %d, steps %d, warmup %d", batch, seq, steps, warmup)
	}
	// The context must hold the sequence; a longer one costs nothing here.
	cfg.MaxPositionEmbeddings = max(cfg.MaxPositionEmbeddings, seq)
	m, err := model.New(cfg, be, tensor.Float32, 1)
	if err != nil {
		return res, err
	}
	decay, keep := model.DecaySplit(m.Params())
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 3e-4, WeightDecay: 0.1},
		train.ParamGroup{Params: decay}, train.ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		return res, err
	}
	var times []float64
	var stepErr error
	err = tensor.Catch(func() {
		ids, pos, targets := batchData(be, cfg.VocabSize, batch, seq)
		pos.Release() // the model numbers positions itself
		defer ids.Release()
		defer targets.Release()
		times, res.FirstLoss, res.LastLoss, stepErr = trainSteps(opt,
			func() *tensor.Tensor { return m.Loss(ids, targets) }, warmup, steps, nil, nil)
	})
	if err = errors.Join(err, stepErr); err != nil {
		return res, err
	}
	res.StepMS = median(times) * 1e3
	res.TokensPerS = float64(batch*seq) / median(times)
	res.PeakRSSMB = float64(PeakRSS()) / (1 << 20)
	return res, nil
}

// PeakRSS returns the process's peak resident set size in bytes: VmHWM
// from /proc/self/status on Linux, which the kernel keeps for the life of
// the process. Where that file cannot be read (other systems) it falls back
// to runtime.MemStats.Sys, the memory the Go runtime has obtained from the
// system: an upper bound of the Go heap's footprint that misses memory
// allocated outside the Go runtime (cgo, device drivers) and counts
// reserved pages that were never touched, so it is only a rough stand-in.
func PeakRSS() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		if n, err := parseVmHWM(bytes.NewReader(b)); err == nil {
			return n
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Sys
}

// parseVmHWM returns the VmHWM line of a /proc/<pid>/status file in bytes,
// or an error when there is none or it does not read as "<n> kB".
func parseVmHWM(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("bench: unexpected VmHWM line %q", sc.Text())
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: VmHWM: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("bench: no VmHWM line")
}
