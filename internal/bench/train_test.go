package bench

import (
	"runtime"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor/cpu"
)

func TestParseVmHWM(t *testing.T) {
	cases := []struct {
		name    string
		status  string
		want    uint64
		wantErr bool
	}{
		{"linux", "Name:\tminnow\nVmPeak:\t  900 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n", 1234 << 10, false},
		{"missing", "Name:\tminnow\nVmRSS:\t 1000 kB\n", 0, true},
		{"bad-unit", "VmHWM:\t 12 MB\n", 0, true},
		{"bad-number", "VmHWM:\t x kB\n", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseVmHWM(strings.NewReader(c.status))
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("parseVmHWM = %d, %v; want %d, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

// TestPeakRSS checks that the peak covers at least a buffer this test
// has touched, whichever source PeakRSS reads.
func TestPeakRSS(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	if got := PeakRSS(); got < uint64(len(buf)) {
		t.Fatalf("PeakRSS = %d, below the %d bytes just touched", got, len(buf))
	}
	runtime.KeepAlive(buf)
}

func TestBenchErrors(t *testing.T) {
	be := cpu.New(1)
	small := SmolLM135M
	small.NumHiddenLayers, small.VocabSize = 1, 32
	bad := small
	bad.NumAttentionHeads = 7 // divides neither the width nor by the KV heads
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"train-batch", func() error { _, err := TrainBench(be, small, 0, 4, 0, 1); return err }, "batch 0"},
		{"train-config", func() error { _, err := TrainBench(be, bad, 1, 4, 0, 1); return err }, "num_attention_heads"},
		{"generate-new", func() error { _, err := GenerateBench(be, small, 1, 4, 1, 1); return err }, "new tokens 1"},
		{"generate-config", func() error { _, err := GenerateBench(be, bad, 1, 4, 2, 1); return err }, "num_attention_heads"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestTrainBenchLoss checks that the benchmark really trains: on one
// fixed batch the loss falls.
func TestTrainBenchLoss(t *testing.T) {
	small := SmolLM135M
	small.NumHiddenLayers, small.VocabSize = 1, 32
	res, err := TrainBench(cpu.New(1), small, 1, 8, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.LastLoss < res.FirstLoss) || res.StepMS <= 0 || res.TokensPerS <= 0 || res.PeakRSSMB <= 0 {
		t.Fatalf("unexpected result %+v", res)
	}
}
