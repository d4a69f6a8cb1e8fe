package lora_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
	"github.com/minnowml/minnow/train"
)

var be = cpu.New(2)

// tinyCfg returns a tiny model config of an architecture.
func tinyCfg(typ string) model.Config {
	c := model.Config{ModelType: typ, VocabSize: 13, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 32, RopeTheta: 100, InitializerRange: 0.2}
	if typ == "gpt2" {
		c.NumKeyValueHeads, c.IntermediateSize, c.TieWordEmbeddings = 0, 0, true
	}
	return c
}

func newModel(t *testing.T, cfg model.Config, dt tensor.DType, seed uint64) model.Model {
	t.Helper()
	m, err := model.New(cfg, be, dt, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func apply(t *testing.T, m model.Model, cfg lora.Config) *lora.Adapter {
	t.Helper()
	ad, err := lora.Apply(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

var testIDs = []int32{1, 4, 0, 10, 7, 3, 3, 9, 2, 5, 12, 6}

func logits(m model.Model) []float64 {
	var out []float64
	tensor.NoGrad(func() {
		l := m.Forward(tensor.From(be, tensor.Int32, testIDs, 2, 6), model.ForwardOptions{})
		out = l.Cast(tensor.Float64).Float64s()
	})
	return out
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// randomizeB gives every B random values, as training would, so that the
// adapter changes the model's output.
func randomizeB(ad *lora.Adapter, seed uint64) {
	rng := tensor.NewRNG(seed)
	for _, l := range ad.Layers() {
		l.B.CopyFrom(tensor.Randn(be, l.B.DType(), rng, 0.3, l.B.Shape()...))
	}
}

func names(ad *lora.Adapter) []string {
	var out []string
	for _, l := range ad.Layers() {
		out = append(out, l.Name)
	}
	return out
}

// TestTargets checks which layers each kind of target selects, the ranks,
// alphas and scales overrides and rsLoRA give, and the config errors.
func TestTargets(t *testing.T) {
	both := func(kinds ...string) []string {
		var out []string
		for _, b := range []string{"0", "1"} {
			for _, k := range kinds {
				out = append(out, "blk."+b+"."+k)
			}
		}
		return out
	}
	cases := []struct {
		name, typ string
		cfg       lora.Config
		want      []string
		err       string
	}{
		{"default all-linear", "llama", lora.Config{R: 2}, both("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"), ""},
		{"kinds", "llama", lora.Config{R: 2, Targets: lora.Targets{"q", "v"}}, both("attn_q", "attn_v"), ""},
		{"hf and llama.cpp names", "llama", lora.Config{R: 2, Targets: lora.Targets{"o_proj", "ffn_down"}}, both("attn_output", "ffn_down"), ""},
		{"pattern", "llama", lora.Config{R: 2, Targets: lora.Targets{"blk.1.ffn_*"}}, []string{"blk.1.ffn_gate", "blk.1.ffn_up", "blk.1.ffn_down"}, ""},
		{"output by name", "llama", lora.Config{R: 2, Targets: lora.Targets{"output", "blk.0.attn_q"}}, []string{"blk.0.attn_q", "output"}, ""},
		{"gpt2 q selects fused", "gpt2", lora.Config{R: 2, Targets: lora.Targets{"q", "up"}}, both("attn_qkv", "ffn_up"), ""},
		{"gpt2 all-linear", "gpt2", lora.Config{R: 2, Targets: lora.Targets{lora.AllLinear}}, both("attn_qkv", "attn_output", "ffn_up", "ffn_down"), ""},
		{"no gate in gpt2", "gpt2", lora.Config{R: 2, Targets: lora.Targets{"gate"}}, nil, `target "gate" matches no linear layer`},
		{"typo", "llama", lora.Config{R: 2, Targets: lora.Targets{"blk.*.atn_q"}}, nil, "matches no linear layer"},
		{"bad pattern", "llama", lora.Config{R: 2, Targets: lora.Targets{"blk.[.q"}}, nil, "syntax error in pattern"},
		{"rank", "llama", lora.Config{}, nil, "r is 0"},
		{"dropout", "llama", lora.Config{R: 2, Dropout: 1}, nil, "dropout is 1"},
		{"init", "llama", lora.Config{R: 2, Init: "orthogonal"}, nil, `init "orthogonal"`},
		{"unused override", "llama", lora.Config{R: 2, Targets: lora.Targets{"q"}, Overrides: []lora.Override{{Match: "v", R: 4}}}, nil, "matches no adapted layer"},
	}
	for _, c := range cases {
		m := newModel(t, tinyCfg(c.typ), tensor.Float32, 1)
		if c.typ == "llama" {
			cfg := tinyCfg("llama")
			cfg.TieWordEmbeddings = false
			m = newModel(t, cfg, tensor.Float32, 1)
		}
		ad, err := lora.Apply(m, c.cfg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := names(ad); !slices.Equal(got, c.want) {
			t.Errorf("%s: layers %v, want %v", c.name, got, c.want)
		}
	}
}

// TestOverridesAndScale checks per-layer ranks and alphas and the scale
// of plain and rank-stabilised LoRA.
func TestOverridesAndScale(t *testing.T) {
	cases := []struct {
		cfg   lora.Config
		layer string
		r     int
		alpha float64
		scale float64
	}{
		{lora.Config{R: 4, Alpha: 8}, "blk.0.attn_q", 4, 8, 2},
		{lora.Config{R: 4}, "blk.0.attn_q", 4, 4, 1},
		{lora.Config{R: 4, Alpha: 8, RSLoRA: true}, "blk.0.attn_q", 4, 8, 4},
		{lora.Config{R: 4, Alpha: 8, Overrides: []lora.Override{{Match: "blk.1.*", R: 16}}}, "blk.1.ffn_up", 16, 8, 0.5},
		{lora.Config{R: 4, Alpha: 8, Overrides: []lora.Override{{Match: "q", Alpha: 2}, {Match: "blk.0.attn_q", R: 2}}}, "blk.0.attn_q", 2, 2, 1},
	}
	for i, c := range cases {
		m := newModel(t, tinyCfg("llama"), tensor.Float32, 1)
		ad := apply(t, m, c.cfg)
		var l *lora.Layer
		for _, x := range ad.Layers() {
			if x.Name == c.layer {
				l = x
			}
		}
		if l == nil {
			t.Fatalf("case %d: no layer %s", i, c.layer)
		}
		if l.R != c.r || l.Alpha != c.alpha || math.Abs(l.Scale-c.scale) > 1e-12 ||
			!slices.Equal(l.A.Shape(), []int{c.r, l.Linear.Weight.Dim(1)}) || !slices.Equal(l.B.Shape(), []int{l.Linear.Weight.Dim(0), c.r}) {
			t.Errorf("case %d: r %d alpha %g scale %g A %v B %v; want r %d alpha %g scale %g", i, l.R, l.Alpha, l.Scale,
				l.A.Shape(), l.B.Shape(), c.r, c.alpha, c.scale)
		}
	}
}

// TestInit checks that A is Kaiming-uniform within ±1/√in (spread over
// that range) or Gaussian with standard deviation 1/r, and B is zero.
func TestInit(t *testing.T) {
	for _, init := range []string{"", "kaiming", "gaussian"} {
		cfg := tinyCfg("llama")
		cfg.HiddenSize, cfg.IntermediateSize = 64, 256
		m := newModel(t, cfg, tensor.Float64, 1)
		ad := apply(t, m, lora.Config{R: 8, Init: init, Targets: lora.Targets{"down"}})
		for _, l := range ad.Layers() {
			a := l.A.Float64s()
			in := float64(l.A.Dim(1))
			var sum, sq, mx float64
			for _, v := range a {
				sum += v
				sq += v * v
				mx = max(mx, math.Abs(v))
			}
			std := math.Sqrt(sq / float64(len(a)))
			if init == "gaussian" {
				if math.Abs(std-1.0/8) > 0.01 {
					t.Errorf("gaussian: std %g, want 1/8", std)
				}
			} else if bound := 1 / math.Sqrt(in); mx > bound || mx < 0.95*bound || math.Abs(std-bound/math.Sqrt(3)) > 0.1*bound {
				t.Errorf("%q: max |a| %g, std %g; want within and near ±%g, std %g", init, mx, std, bound, bound/math.Sqrt(3))
			}
			if tensor.SumSquares(l.B) != 0 {
				t.Errorf("%q: B is not zero", init)
			}
		}
	}
}

// TestFreshAdapterKeepsOutput checks that a new adapter (B zero) and a
// switched-off one leave the logits bit-identical to the base model's, and
// an adapter with non-zero B changes them.
func TestFreshAdapterKeepsOutput(t *testing.T) {
	for _, typ := range []string{"llama", "qwen2", "gpt2"} {
		m := newModel(t, tinyCfg(typ), tensor.Float32, 2)
		base := logits(m)
		ad := apply(t, m, lora.Config{R: 4, Alpha: 8})
		if got := logits(m); !slices.Equal(got, base) {
			t.Errorf("%s: a fresh adapter moved the logits by %g", typ, maxDiff(got, base))
		}
		randomizeB(ad, 3)
		if d := maxDiff(logits(m), base); d < 1e-3 {
			t.Errorf("%s: a trained adapter moved the logits by only %g", typ, d)
		}
		if err := ad.SetEnabled(false); err != nil {
			t.Fatal(err)
		}
		if got := logits(m); !slices.Equal(got, base) {
			t.Errorf("%s: a switched-off adapter moved the logits by %g", typ, maxDiff(got, base))
		}
	}
}

// TestMergeUnmerge checks that merged and unmerged forwards agree within
// 1e-5, that unmerging restores the weights up to rounding, and the
// misuse errors.
func TestMergeUnmerge(t *testing.T) {
	for _, typ := range []string{"llama", "qwen2", "gpt2"} {
		m := newModel(t, tinyCfg(typ), tensor.Float32, 4)
		base := logits(m)
		var w0 [][]float32
		ad := apply(t, m, lora.Config{R: 4, Alpha: 16, RSLoRA: typ == "qwen2"})
		for _, l := range ad.Layers() {
			w0 = append(w0, l.Linear.Weight.Float32s())
		}
		randomizeB(ad, 5)
		unmerged := logits(m)
		if err := ad.Merge(); err != nil {
			t.Fatal(err)
		}
		merged := logits(m)
		d := maxDiff(merged, unmerged)
		if d > 1e-5 {
			t.Errorf("%s: merged and unmerged logits differ by %g", typ, d)
		}
		t.Logf("%s: merged vs unmerged logits: max difference %.3g (adapter moves them by %.3g)", typ, d, maxDiff(unmerged, base))
		if err := ad.Merge(); err == nil {
			t.Errorf("%s: merging twice succeeded", typ)
		}
		if err := ad.SetEnabled(false); err == nil {
			t.Errorf("%s: switching a merged adapter off succeeded", typ)
		}
		if err := ad.Unmerge(); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(logits(m), unmerged); d > 1e-5 {
			t.Errorf("%s: unmerged again, logits moved by %g", typ, d)
		}
		for i, l := range ad.Layers() {
			for j, v := range l.Linear.Weight.Float32s() {
				if math.Abs(float64(v-w0[i][j])) > 1e-6 {
					t.Fatalf("%s: %s weight %d is %v after unmerge, was %v", typ, l.Name, j, v, w0[i][j])
				}
			}
		}
		if err := ad.Unmerge(); err == nil {
			t.Errorf("%s: unmerging an unmerged adapter succeeded", typ)
		}
		if err := ad.SetEnabled(false); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(logits(m), base); d > 1e-5 {
			t.Errorf("%s: switched off after unmerge, logits differ from the base by %g", typ, d)
		}
		if err := ad.Merge(); err == nil {
			t.Errorf("%s: merging a switched-off adapter succeeded", typ)
		}
	}
}

// TestApplyErrors checks that adapting twice and bf16 weights fail.
func TestApplyErrors(t *testing.T) {
	m := newModel(t, tinyCfg("llama"), tensor.Float32, 1)
	apply(t, m, lora.Config{R: 2, Targets: lora.Targets{"q"}})
	if _, err := lora.Apply(m, lora.Config{R: 2, Targets: lora.Targets{"q"}}); err == nil || !strings.Contains(err.Error(), "already has an adapter") {
		t.Errorf("adapting twice: %v", err)
	}
	mb := newModel(t, tinyCfg("llama"), tensor.BFloat16, 1)
	if _, err := lora.Apply(mb, lora.Config{R: 2}); err == nil || !strings.Contains(err.Error(), "bf16") {
		t.Errorf("bf16 weights: %v", err)
	}
}

// TestConfigYAML checks the recipe forms of the config.
func TestConfigYAML(t *testing.T) {
	cases := []struct {
		src  string
		want lora.Config
		err  bool
	}{
		{"{r: 16, alpha: 32, targets: all-linear}", lora.Config{R: 16, Alpha: 32, Targets: lora.Targets{"all-linear"}}, false},
		{"{r: 8, targets: 'q, v', rslora: true, init: gaussian, dropout: 0.05}", lora.Config{R: 8, Targets: lora.Targets{"q", "v"}, RSLoRA: true, Init: "gaussian", Dropout: 0.05}, false},
		{"{r: 8, targets: [q, blk.*.ffn_up], overrides: [{match: q, r: 4, alpha: 2}]}",
			lora.Config{R: 8, Targets: lora.Targets{"q", "blk.*.ffn_up"}, Overrides: []lora.Override{{Match: "q", R: 4, Alpha: 2}}}, false},
		{"{r: 8, targets: {q: 1}}", lora.Config{}, true},
		{"{r: 8, targets: 'q,,v'}", lora.Config{}, true},
	}
	for _, c := range cases {
		var got lora.Config
		err := yaml.Unmarshal([]byte(c.src), &got)
		if (err != nil) != c.err {
			t.Errorf("%s: error %v", c.src, err)
			continue
		}
		if !c.err && !configEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.src, got, c.want)
		}
	}
}

func configEqual(a, b lora.Config) bool {
	return a.R == b.R && a.Alpha == b.Alpha && a.Dropout == b.Dropout && a.RSLoRA == b.RSLoRA && a.Init == b.Init &&
		slices.Equal(a.Targets, b.Targets) && slices.Equal(a.Overrides, b.Overrides)
}

// snapshot returns a copy of every base parameter's values.
func snapshot(m model.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range m.Params() {
		out[p.Name] = p.Tensor.Float32s()
	}
	return out
}

// checkBitIdentical fails unless every base parameter equals its snapshot
// bit for bit.
func checkBitIdentical(t *testing.T, m model.Model, before map[string][]float32) {
	t.Helper()
	for _, p := range m.Params() {
		now := p.Tensor.Float32s()
		for i := range now {
			if math.Float32bits(now[i]) != math.Float32bits(before[p.Name][i]) {
				t.Fatalf("base parameter %s changed at %d: %v -> %v", p.Name, i, before[p.Name][i], now[i])
			}
		}
	}
}

// TestFrozenBaseTraining trains adapters (with dropout) on a repeated
// sequence and checks that the loss falls, that the base parameters get
// no gradient buffers and stay bit-identical, and that the optimizer
// holds state for the adapter's tensors only.
func TestFrozenBaseTraining(t *testing.T) {
	for _, typ := range []string{"llama", "gpt2"} {
		m := newModel(t, tinyCfg(typ), tensor.Float32, 6)
		before := snapshot(m)
		ad := apply(t, m, lora.Config{R: 4, Alpha: 8, Dropout: 0.1, Seed: 9})
		opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2}, train.ParamGroup{Params: model.Tensors(ad.Params())})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2}, train.ParamGroup{Params: model.Tensors(m.Params())}); err == nil {
			t.Errorf("%s: the optimizer accepted frozen base parameters", typ)
		}
		x := tensor.From(be, tensor.Int32, testIDs[:10], 2, 5)
		y := tensor.From(be, tensor.Int32, testIDs[2:12], 2, 5)
		var first, last float64
		for s := range 30 {
			loss := m.Loss(x, y)
			if s == 0 {
				first = loss.Item()
			}
			last = loss.Item()
			loss.Backward()
			for _, p := range m.Params() {
				if p.Tensor.Grad() != nil {
					t.Fatalf("%s: base parameter %s has a gradient buffer", typ, p.Name)
				}
			}
			if err := opt.Step(1e-2, 1); err != nil {
				t.Fatal(err)
			}
		}
		if !(last < 0.5*first) {
			t.Errorf("%s: loss %g -> %g, want below half", typ, first, last)
		}
		_, ms, vs := opt.State()
		n := 0
		for i := range ms {
			n += ms[i].Len() + vs[i].Len()
		}
		if n != 2*ad.NumParams() {
			t.Errorf("%s: optimizer state of %d values for %d adapter values", typ, n, ad.NumParams())
		}
		checkBitIdentical(t, m, before)
	}
}

// TestExport checks that the exported tensors, applied as llama.cpp does
// (W + alpha/r·B·A with one alpha), give each layer's own change.
func TestExport(t *testing.T) {
	m := newModel(t, tinyCfg("llama"), tensor.Float64, 1)
	ad := apply(t, m, lora.Config{R: 4, Alpha: 8, RSLoRA: true, Overrides: []lora.Override{{Match: "q", R: 2}, {Match: "down", Alpha: 3}}})
	randomizeB(ad, 2)
	alpha, ts, err := ad.Export()
	if err != nil {
		t.Fatal(err)
	}
	if alpha != 8 || len(ts) != len(ad.Layers()) {
		t.Fatalf("alpha %g, %d tensors", alpha, len(ts))
	}
	for i, l := range ad.Layers() {
		e := ts[i]
		if e.Name != l.Name+".weight" {
			t.Errorf("tensor %d named %s, want %s.weight", i, e.Name, l.Name)
		}
		r := float64(e.A.Dim(0))
		got := e.B.MatMul(e.A).Scale(alpha / r).Float64s()
		want := l.B.MatMul(l.A).Scale(l.Scale).Float64s()
		if d := maxDiff(got, want); d > 1e-12 {
			t.Errorf("%s: exported change differs by %g", l.Name, d)
		}
	}
}

// TestDropout checks that dropout changes the adapter's output while
// gradients are recorded, with a fresh mask per call, and not at all
// under NoGrad.
func TestDropout(t *testing.T) {
	m := newModel(t, tinyCfg("llama"), tensor.Float32, 1)
	ad := apply(t, m, lora.Config{R: 4, Dropout: 0.5})
	randomizeB(ad, 1)
	plain := logits(m)
	x := tensor.From(be, tensor.Int32, testIDs, 2, 6)
	a := m.Forward(x, model.ForwardOptions{}).Float32s()
	b := m.Forward(x, model.ForwardOptions{}).Float32s()
	if slices.Equal(a, b) {
		t.Error("two training forwards drew the same dropout mask")
	}
	var da float64
	for i := range a {
		da = max(da, math.Abs(float64(a[i])-plain[i]))
	}
	if da < 1e-4 {
		t.Errorf("dropout moved the training logits by only %g", da)
	}
	if got := logits(m); !slices.Equal(got, plain) {
		t.Error("evaluation under NoGrad is not deterministic")
	}
}
