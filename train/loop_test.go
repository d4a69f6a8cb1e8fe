package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// memBatches is an in-memory, endless and resumable source: batch i holds
// rows of a fixed cycle of tokens, each starting at an offset that depends
// on i and the row, so consecutive batches differ.
type memBatches struct {
	next       int
	rows, seq  int
	limit      int // batches before io.EOF; 0 for endless, negative for none
	cancelAt   int // call cancel when batch cancelAt is handed out
	cancel     func()
	ignoreHead bool // mark the first target of each row IgnoreIndex
}

var cycle = []int32{1, 7, 3, 9, 4, 2, 8, 5, 6, 10}

func (s *memBatches) Next() (Batch, error) {
	if s.limit != 0 && s.next >= max(s.limit, 0) {
		return Batch{}, io.EOF
	}
	i := s.next
	s.next++
	if s.cancel != nil && s.next == s.cancelAt {
		s.cancel()
	}
	return rowsBatch(i*s.rows, s.rows, s.seq, s.ignoreHead), nil
}

// rowsBatch returns rows n0..n0+rows-1 of the synthetic corpus.
func rowsBatch(n0, rows, seq int, ignoreHead bool) Batch {
	x, y := make([]int32, rows*seq), make([]int32, rows*seq)
	for r := range rows {
		off := (n0 + r) * 3
		for t := range seq {
			x[r*seq+t] = cycle[(off+t)%len(cycle)]
			y[r*seq+t] = cycle[(off+t+1)%len(cycle)]
		}
		if ignoreHead {
			y[r*seq] = IgnoreIndex
		}
	}
	return Batch{IDs: tensor.From(be, tensor.Int32, x, rows, seq), Targets: tensor.From(be, tensor.Int32, y, rows, seq)}
}

func (s *memBatches) Cursor() ([]byte, error) { return json.Marshal(s.next) }

func (s *memBatches) Seek(c []byte) error { return json.Unmarshal(c, &s.next) }

func tinyConfig() model.Config {
	return model.Config{ModelType: "llama", VocabSize: 11, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 16}
}

// setup builds a tiny model from seed, its AdamW and its named weights.
func setup(t *testing.T, seed uint64) (model.Model, *AdamW, []Weight) {
	t.Helper()
	m, err := model.New(tinyConfig(), be, tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	var ws []Weight
	for _, p := range m.Params() {
		ws = append(ws, Weight{Name: p.Name, Tensor: p.Tensor})
	}
	decay, keep := model.DecaySplit(m.Params())
	opt, err := NewAdamW(AdamWConfig{LR: 1e-2, WeightDecay: 0.1},
		ParamGroup{Params: decay}, ParamGroup{Params: keep, NoDecay: true})
	if err != nil {
		t.Fatal(err)
	}
	return m, opt, ws
}

// readMetrics parses the metrics lines strictly.
func readMetrics(t *testing.T, b []byte) []Metric {
	t.Helper()
	var ms []Metric
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var m Metric
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		ms = append(ms, m)
	}
	return ms
}

// TestLoopResumesExactly trains N steps in one go, then stops a second
// run at step k by cancelling its context, resumes it into a model built
// from another seed, and requires the resumed steps' losses, gradient
// norms and evaluation losses to be bit-identical to the first run's.
func TestLoopResumesExactly(t *testing.T) {
	const N = 8
	sched, err := NewCosine(1e-2, 1e-3, 2, N)
	if err != nil {
		t.Fatal(err)
	}
	base := LoopConfig{Steps: N, GradAccum: 2, ClipNorm: 0.5, Schedule: sched, EvalEvery: 2, EvalBatches: 2,
		CheckpointEvery: 3, Arch: "llama", ModelConfig: []byte(`{"model_type":"llama"}`)}
	run := func(seed uint64, dir string, data *memBatches, resume bool) ([]Metric, Result, error) {
		m, opt, ws := setup(t, seed)
		if resume {
			if _, err := Resume(dir, ws, opt, data); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		cfg := base
		cfg.CheckpointDir, cfg.Weights, cfg.Metrics = dir, ws, &buf
		cfg.Eval = &memBatches{rows: 2, seq: 8, next: 1000, ignoreHead: true}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if data.cancelAt > 0 {
			data.cancel = cancel
		}
		res, err := Loop(ctx, m, opt, NextToken{}, data, cfg)
		return readMetrics(t, buf.Bytes()), res, err
	}

	full, res, err := run(1, t.TempDir(), &memBatches{rows: 2, seq: 8}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != N || res.Step != N || res.Loss != full[N-1].Loss {
		t.Fatalf("uninterrupted run: %d metrics, result %+v", len(full), res)
	}
	if !(full[N-1].Loss < full[0].Loss) {
		t.Errorf("loss did not fall: %v to %v", full[0].Loss, full[N-1].Loss)
	}
	for i, m := range full {
		wantEval := (i+1)%base.EvalEvery == 0
		if m.Step != i+1 || (m.EvalLoss != nil) != wantEval || m.Tokens <= 0 || m.LR != sched.LR(i+1) {
			t.Errorf("metrics line %d: %+v (eval wanted %v)", i, m, wantEval)
		}
		if wantEval && (m.EvalPerplexity == nil || math.Abs(*m.EvalPerplexity-math.Exp(*m.EvalLoss)) > 1e-9) {
			t.Errorf("step %d: eval loss %v perplexity %v", m.Step, m.EvalLoss, m.EvalPerplexity)
		}
	}

	for _, k := range []int{1, 3, 5} {
		t.Run(fmt.Sprint("stop at ", k), func(t *testing.T) {
			dir := t.TempDir()
			// The k-th step's second micro-batch cancels the context, so
			// step k completes and the loop stops at its boundary.
			first, res, err := run(1, dir, &memBatches{rows: 2, seq: 8, cancelAt: 2 * k}, false)
			if !errors.Is(err, context.Canceled) || res.Step != k || len(first) != k {
				t.Fatalf("stopped run: step %d, %d metrics, err %v", res.Step, len(first), err)
			}
			d, err := checkpoint.OpenDir(dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, step, ok, err := d.Latest(); !ok || step != int64(k) || err != nil {
				t.Fatalf("latest checkpoint is step %d (ok %v, err %v), want %d", step, ok, err, k)
			}
			rest, res, err := run(99, dir, &memBatches{rows: 2, seq: 8}, true)
			if err != nil {
				t.Fatal(err)
			}
			if res.Step != N || len(rest) != N-k {
				t.Fatalf("resumed run: step %d, %d metrics", res.Step, len(rest))
			}
			for i, m := range append(first, rest...) {
				w := full[i]
				if m.Step != w.Step || m.Loss != w.Loss || m.GradNorm != w.GradNorm || m.LR != w.LR ||
					(m.EvalLoss != nil && *m.EvalLoss != *w.EvalLoss) {
					t.Errorf("step %d: loss %v grad norm %v, uninterrupted %v %v", m.Step, m.Loss, m.GradNorm, w.Loss, w.GradNorm)
				}
			}
		})
	}
}

// nanAt returns a NaN loss on its at-th call and NextToken's otherwise.
type nanAt struct{ calls, at int }

func (o *nanAt) Loss(m Model, b Batch) (*tensor.Tensor, error) {
	o.calls++
	if o.calls == o.at {
		return tensor.From(be, tensor.Float32, []float32{float32(math.NaN())}), nil
	}
	return NextToken{}.Loss(m, b)
}

// TestLoopStopsOnNaN checks that a NaN loss stops the run at its step,
// without the update, leaving the previous step's checkpoint the newest.
func TestLoopStopsOnNaN(t *testing.T) {
	for _, accum := range []int{1, 2} {
		dir := t.TempDir()
		m, opt, ws := setup(t, 1)
		// The first micro-batch of step 3.
		obj := &nanAt{at: 2*accum + 1}
		res, err := Loop(context.Background(), m, opt, obj, &memBatches{rows: 2, seq: 8},
			LoopConfig{Steps: 6, GradAccum: accum, CheckpointDir: dir, CheckpointEvery: 1, Weights: ws})
		if err == nil || !strings.Contains(err.Error(), "step 3") || !strings.Contains(err.Error(), "NaN") {
			t.Fatalf("accum %d: error %v, want one naming step 3 and NaN", accum, err)
		}
		if opt.StepCount() != 2 || res.Step != 2 {
			t.Errorf("accum %d: optimizer at step %d, result %d, want 2", accum, opt.StepCount(), res.Step)
		}
		d, _ := checkpoint.OpenDir(dir, 0)
		if _, step, ok, err := d.Latest(); !ok || step != 2 || err != nil {
			t.Errorf("accum %d: latest checkpoint step %d ok %v err %v, want 2", accum, step, ok, err)
		}
		for _, p := range opt.Params() {
			if p.Grad() != nil {
				t.Fatalf("accum %d: gradients left after the failed step", accum)
			}
		}
	}
}

// halves yields the two halves of the rows of a full batch in turn.
type halves struct{ n, rows, seq int }

func (h *halves) Next() (Batch, error) {
	b := rowsBatch(h.n*h.rows, h.rows, h.seq, true)
	h.n++
	return b, nil
}
func (h *halves) Cursor() ([]byte, error) { return json.Marshal(h.n) }
func (h *halves) Seek(c []byte) error     { return json.Unmarshal(c, &h.n) }

// TestGradAccumMatchesFullBatch checks that two accumulated half-batches
// update the weights as one full batch does, clipped or not.
func TestGradAccumMatchesFullBatch(t *testing.T) {
	for _, clip := range []float64{0, 0.05} {
		mFull, optFull, _ := setup(t, 3)
		mHalf, optHalf, _ := setup(t, 3)
		var bufFull, bufHalf bytes.Buffer
		if _, err := Loop(context.Background(), mFull, optFull, NextToken{}, &halves{rows: 4, seq: 8},
			LoopConfig{Steps: 1, ClipNorm: clip, Metrics: &bufFull}); err != nil {
			t.Fatal(err)
		}
		if _, err := Loop(context.Background(), mHalf, optHalf, NextToken{}, &halves{rows: 2, seq: 8},
			LoopConfig{Steps: 1, GradAccum: 2, ClipNorm: clip, Metrics: &bufHalf}); err != nil {
			t.Fatal(err)
		}
		full, half := readMetrics(t, bufFull.Bytes())[0], readMetrics(t, bufHalf.Bytes())[0]
		if math.Abs(full.Loss-half.Loss) > 1e-6 || math.Abs(full.GradNorm-half.GradNorm) > 1e-6 || full.Tokens != half.Tokens {
			t.Errorf("clip %v: full batch %+v, accumulated %+v", clip, full, half)
		}
		if clip > 0 && !(full.GradNorm > clip) {
			t.Errorf("clip %v: gradient norm %v does not exercise clipping", clip, full.GradNorm)
		}
		pf, ph := mFull.Params(), mHalf.Params()
		for i := range pf {
			a, b := pf[i].Tensor.Float64s(), ph[i].Tensor.Float64s()
			for j := range a {
				if math.Abs(a[j]-b[j]) > 1e-6 {
					t.Fatalf("clip %v: %s[%d] = %v after the full batch, %v accumulated", clip, pf[i].Name, j, a[j], b[j])
				}
			}
		}
	}
}

// TestEvaluate checks the token-weighted mean against per-batch losses
// and that it stops at io.EOF or the cap.
func TestEvaluate(t *testing.T) {
	m, _, _ := setup(t, 1)
	var want []float64
	for i := range 3 {
		b := rowsBatch(i*2, 2, 8, true)
		l := m.Loss(b.IDs, b.Targets)
		want = append(want, l.Item())
		l.Release()
		b.Release()
	}
	for _, tc := range []struct {
		limit, max int
		want       float64
	}{
		{limit: 3, max: 0, want: (want[0] + want[1] + want[2]) / 3},
		{limit: 0, max: 2, want: (want[0] + want[1]) / 2},
		{limit: 1, max: 5, want: want[0]},
	} {
		got, err := Evaluate(m, NextToken{}, &memBatches{rows: 2, seq: 8, limit: tc.limit, ignoreHead: true}, tc.max)
		if err != nil || math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("limit %d max %d: %v, %v; want %v", tc.limit, tc.max, got, err, tc.want)
		}
	}
	if _, err := Evaluate(m, NextToken{}, &memBatches{rows: 2, seq: 8, limit: -1}, 0); err == nil {
		t.Error("an empty evaluation returned no error")
	}
}

// TestLoopConfigErrors checks that bad settings are refused before any
// update.
func TestLoopConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(ws []Weight) LoopConfig
		want string
	}{
		{"negative steps", func([]Weight) LoopConfig { return LoopConfig{Steps: -1} }, "negative"},
		{"negative accum", func([]Weight) LoopConfig { return LoopConfig{Steps: 1, GradAccum: -2} }, "negative"},
		{"NaN clip", func([]Weight) LoopConfig { return LoopConfig{Steps: 1, ClipNorm: math.NaN()} }, "clip"},
		{"eval without source", func([]Weight) LoopConfig { return LoopConfig{Steps: 1, EvalEvery: 1} }, "Eval"},
		{"unnamed optimizer parameter", func(ws []Weight) LoopConfig {
			return LoopConfig{Steps: 1, CheckpointDir: t.TempDir(), Weights: ws[1:]}
		}, "not among"},
		{"duplicate weight", func(ws []Weight) LoopConfig {
			return LoopConfig{Steps: 1, CheckpointDir: t.TempDir(), Weights: append(ws, ws[0])}
		}, "duplicate"},
	} {
		m, opt, ws := setup(t, 1)
		_, err := Loop(context.Background(), m, opt, NextToken{}, &memBatches{rows: 1, seq: 4}, tc.cfg(ws))
		if err == nil || !strings.Contains(err.Error(), tc.want) || opt.StepCount() != 0 {
			t.Errorf("%s: error %v after %d steps, want one containing %q", tc.name, err, opt.StepCount(), tc.want)
		}
	}
}

// TestResumeRefusesMismatch checks that Resume starts afresh on an empty
// directory and refuses a checkpoint of another model.
func TestResumeRefusesMismatch(t *testing.T) {
	_, opt, ws := setup(t, 1)
	if step, err := Resume(t.TempDir(), ws, opt, nil); step != 0 || err != nil {
		t.Fatalf("empty directory: step %d, err %v", step, err)
	}
	dir := t.TempDir()
	m, opt, ws := setup(t, 1)
	if _, err := Loop(context.Background(), m, opt, NextToken{}, &memBatches{rows: 1, seq: 4},
		LoopConfig{Steps: 1, CheckpointDir: dir, Weights: ws}); err != nil {
		t.Fatal(err)
	}
	other := tinyConfig()
	other.HiddenSize = 32
	m2, err := model.New(other, be, tensor.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ws2 []Weight
	var ps []*tensor.Tensor
	for _, p := range m2.Params() {
		ws2 = append(ws2, Weight{Name: p.Name, Tensor: p.Tensor})
		ps = append(ps, p.Tensor)
	}
	opt2, err := NewAdamW(AdamWConfig{LR: 1e-3}, ParamGroup{Params: ps})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(dir, ws2, opt2, nil); err == nil || !strings.Contains(err.Error(), "copy-from") {
		t.Errorf("resuming a checkpoint of another shape: %v", err)
	}
	if _, err := Resume(dir, ws[1:], &AdamW{}, nil); err == nil || !strings.Contains(err.Error(), "weights") {
		t.Errorf("resuming with a weight missing: %v", err)
	}
}
