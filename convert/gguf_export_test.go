package convert

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// tinyCase is a random tiny model exported and run in llama.cpp.
type tinyCase struct {
	name string
	cfg  model.Config
	// spm selects the llama2.c SentencePiece vocabulary from MINNOW_DATA
	// instead of a trained BPE one.
	spm bool
	// noMLP zeroes GPT-2's ffn_down weights, so that llama.cpp's float16
	// GELU (see gpt2Reference) drops out and the rest of the file can be
	// checked to 1e-4; such a case is not trained.
	noMLP bool
	// pad adds embedding rows beyond the vocabulary, which export pads
	// with unused tokens.
	pad int
}

// tinyCases are the models the llama.cpp checks run: MHA and GQA, tied
// and untied, Llama (plain, llama3 rope scaling, SentencePiece vocab),
// Qwen2 with its q/k/v biases (and linear rope scaling), and GPT-2.
func tinyCases() []tinyCase {
	llama := model.Config{ModelType: "llama", HiddenSize: 64, IntermediateSize: 128, NumHiddenLayers: 2,
		NumAttentionHeads: 4, MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, InitializerRange: 0.25}
	with := func(c model.Config, f func(*model.Config)) model.Config { f(&c); return c }
	return []tinyCase{
		{name: "llama-mha-untied", cfg: llama},
		{name: "llama-gqa-tied", cfg: with(llama, func(c *model.Config) { c.NumKeyValueHeads = 2; c.TieWordEmbeddings = true }), pad: 7},
		{name: "llama3-rope-gqa", cfg: with(llama, func(c *model.Config) {
			c.NumKeyValueHeads = 1
			c.RopeTheta = 500000
			c.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
		})},
		{name: "llama-spm-tied", cfg: with(llama, func(c *model.Config) { c.TieWordEmbeddings = true }), spm: true},
		{name: "qwen2-gqa-tied", cfg: with(llama, func(c *model.Config) {
			c.ModelType = "qwen2"
			c.NumKeyValueHeads = 2
			c.TieWordEmbeddings = true
			c.RopeTheta = 1000000
		})},
		{name: "qwen2-mha-linear-rope", cfg: with(llama, func(c *model.Config) {
			c.ModelType = "qwen2"
			c.RopeScaling = &model.RopeScaling{RopeType: "linear", Factor: 2}
		})},
		{name: "gpt2-no-mlp", noMLP: true, cfg: model.Config{ModelType: "gpt2", HiddenSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 4,
			MaxPositionEmbeddings: 64, TieWordEmbeddings: true, InitializerRange: 0.25}},
		{name: "gpt2-tied", cfg: model.Config{ModelType: "gpt2", HiddenSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 4,
			MaxPositionEmbeddings: 64, TieWordEmbeddings: true, InitializerRange: 0.25}},
		// Wide enough for the k-quants' 256-element blocks; the smaller init
		// keeps logits, and so float32 rounding, of the usual size at this
		// width. (Last, so that the other cases keep their prompts' seeds.)
		{name: "llama-256-gqa-untied", cfg: with(llama, func(c *model.Config) {
			c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumKeyValueHeads = 256, 512, 1, 2
			c.InitializerRange = 0.1
		})},
	}
}

// build returns the case's model, with norm gains and biases drawn around
// their usual values so that a misplaced one shows, and its vocabulary.
func (c tinyCase) build(t *testing.T, bpe *tokenizer.Vocab) (model.Model, *tokenizer.Vocab) {
	t.Helper()
	v := bpe
	if c.spm {
		dir := os.Getenv("MINNOW_DATA")
		if dir == "" {
			return nil, nil
		}
		var err error
		if v, err = tokenizer.LoadLlama2C(filepath.Join(dir, "models", "aidreams260K", "tok512.bin")); err != nil {
			t.Fatal(err)
		}
	}
	cfg := c.cfg
	cfg.VocabSize = len(v.Tokens) + c.pad
	m, err := model.New(cfg, testBackend, tensor.Float32, 7)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	rng := rand.New(rand.NewPCG(3, uint64(len(c.name))))
	for _, p := range m.Params() {
		if p.Tensor.Rank() != 1 {
			continue
		}
		vals := make([]float32, p.Tensor.Len())
		for i := range vals {
			vals[i] = float32(0.1 * rng.NormFloat64())
			if !strings.HasSuffix(p.Name, ".bias") {
				vals[i]++
			}
		}
		p.Tensor.CopyFrom(tensor.From(testBackend, tensor.Float32, vals, len(vals)))
	}
	for _, p := range m.Params() {
		if c.noMLP && strings.HasSuffix(p.Name, ".ffn_down.weight") {
			p.Tensor.CopyFrom(tensor.Full(testBackend, tensor.Float32, 0, p.Tensor.Shape()...))
		}
	}
	return m, v
}

// trainBriefly fits m to the token stream ids for a few hundred Adam
// steps, so that, as in a real trained model, its predictions have
// margins wide enough for quantisation not to flip most greedy choices.
func trainBriefly(t *testing.T, m model.Model, ids []int32, steps int) {
	t.Helper()
	params := model.Tensors(m.Params())
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 1e-2}, train.ParamGroup{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	const batch, seq = 4, 32
	rng := rand.New(rand.NewPCG(5, 6))
	x, y := make([]int32, batch*seq), make([]int32, batch*seq)
	var loss float64
	for step := range steps {
		for b := range batch {
			off := rng.IntN(len(ids) - seq - 1)
			copy(x[b*seq:], ids[off:off+seq])
			copy(y[b*seq:], ids[off+1:off+seq+1])
		}
		err := tensor.Catch(func() {
			l := m.Loss(tensor.From(testBackend, tensor.Int32, x, batch, seq), tensor.From(testBackend, tensor.Int32, y, batch, seq))
			l.Backward()
			loss = l.Item()
		})
		if err != nil {
			t.Fatal(err)
		}
		// A linear decay lets the fit settle, widening the margins.
		if err := opt.Step(1e-2*(1-float64(step)/float64(steps)), 1); err != nil {
			t.Fatal(err)
		}
		for _, p := range params {
			p.ZeroGrad()
		}
	}
	t.Logf("trained %d steps, final loss %.3f", steps, loss)
}

// testPrompts returns n prompts of random ids below vocab.
func testPrompts(n, length, vocab int, seed uint64) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 11))
	ps := make([][]int32, n)
	for i := range ps {
		for range length {
			ps[i] = append(ps[i], int32(rng.IntN(vocab)))
		}
	}
	return ps
}

// exported is one model exported in one type, with llama.cpp's answers.
type exported struct {
	c       tinyCase
	kind    string // "random" or "trained"
	typ     gguf.GGMLType
	m       model.Model
	path    string
	prompts [][]int32
}

const (
	greedyTokens = 32
	// f32Tolerance is the bound on llama.cpp's logits for an F32
	// export.
	f32Tolerance = 1e-4
	// gpt2Tolerance bounds llama.cpp's GPT-2 logits against gpt2Reference
	// with llama.cpp's float16 GELU. The residue (at most 1.0e-3 measured)
	// comes from GELU inputs that sit on a float16 rounding boundary and
	// round the other way after ggml's differently ordered float32 sums:
	// one such element moves the logits by up to about 1e-3. With the MLP
	// out of the way (gpt2-no-mlp) GPT-2 is held to f32Tolerance.
	gpt2Tolerance = 2e-3
)

// TestGGUFExportLlamaCpp exports random tiny models in every supported
// type and runs them in llama.cpp: F32 logits must match minnow's forward
// within 1e-4 at every prompt position and along the greedy continuation,
// and the 32 greedy tokens must be identical. Quantised files must agree
// on at least 90% of greedy tokens, and their logits must stay within the
// error bounds described at quantTolerance.
func TestGGUFExportLlamaCpp(t *testing.T) {
	nodeDir(t)
	dir := t.TempDir()
	bpe := testVocab(t)
	var runs []exported
	var jobs []llamaRequest
	add := func(c tinyCase, m model.Model, v *tokenizer.Vocab, kind string, prompts [][]int32, types ...gguf.GGMLType) {
		for _, typ := range types {
			path := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.gguf", c.name, kind, typ))
			if err := ExportGGUFFile(path, m, v, GGUFOptions{Type: typ, Name: c.name}); err != nil {
				t.Fatalf("%s %s: %v", c.name, typ, err)
			}
			runs = append(runs, exported{c: c, kind: kind, typ: typ, m: m, path: path, prompts: prompts})
			jobs = append(jobs, llamaRequest{Model: path, ContextSize: 64, Prompts: prompts, AllPositions: true, Generate: greedyTokens})
		}
	}
	for _, c := range tinyCases() {
		m, v := c.build(t, bpe)
		if m == nil {
			t.Logf("%s: skipped, MINNOW_DATA is not set (needs the llama2.c vocabulary)", c.name)
			continue
		}
		add(c, m, v, "random", testPrompts(3, 8, len(v.Tokens), uint64(len(runs)+1)), gguf.F32)
		tok, err := tokenizer.New(v)
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode(testCorpus, tokenizer.EncodeOptions{})
		if c.noMLP {
			continue
		}
		trained, _ := c.build(t, bpe)
		trainBriefly(t, trained, ids, 300)
		var prompts [][]int32
		for _, off := range []int{3, 17, 40} {
			prompts = append(prompts, ids[off:off+8])
		}
		types := []gguf.GGMLType{gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q5_0, gguf.Q4_0}
		if c.cfg.HiddenSize%256 == 0 {
			types = append(types, gguf.Q6_K, gguf.Q4_K) // narrower models fall back to Q8_0 and Q5_0
		}
		add(c, trained, v, "trained", prompts, types...)
	}
	results := runLlamaCpp(t, jobs)
	for i, r := range runs {
		t.Run(r.c.name+"/"+r.kind+"/"+r.typ.String(), func(t *testing.T) { checkExport(t, r, results[i]) })
	}
}

// checkExport compares llama.cpp's results for one file with minnow.
func checkExport(t *testing.T, r exported, res []llamaResult) {
	ref := r.m
	if r.typ != gguf.F32 {
		// The dequantised weights, as llama.cpp holds them.
		m, _, err := ImportGGUF(r.path, testBackend)
		if err != nil {
			t.Fatal(err)
		}
		ref = m
	}
	greedy := minnowGreedy(t, r.m, r.prompts, greedyTokens)
	// What llama.cpp should compute for an F32 file: minnow's forward, or
	// for GPT-2 the reference with llama.cpp's float16 GELU (see
	// gpt2Reference), itself checked against minnow's forward.
	want := func(seq []int32) [][]float64 { return minnowLogits(t, r.m, seq) }
	tol := f32Tolerance
	if r.c.cfg.ModelType == "gpt2" && r.typ == gguf.F32 && !r.c.noMLP {
		tol = gpt2Tolerance
		want = func(seq []int32) [][]float64 {
			if d := maxDiff(t, gpt2Reference(t, r.m, seq, geluTanh), minnowLogits(t, r.m, seq)); d > 2e-5 {
				t.Fatalf("the GPT-2 reference differs from minnow's forward by %.3g", d)
			}
			return gpt2Reference(t, r.m, seq, geluGGML)
		}
	}
	var dLlama, dQuant, dDeq float64 // vs fp32 minnow, fp32 vs dequantised, vs dequantised
	agree := 0.0
	for i, p := range r.prompts {
		full := minnowLogits(t, r.m, p)
		deq := minnowLogits(t, ref, p)
		dLlama = max(dLlama, maxDiff(t, res[i].Logits, want(p)))
		dQuant = max(dQuant, maxDiff(t, deq, full))
		dDeq = max(dDeq, maxDiff(t, res[i].Logits, deq))
		agree += agreement(res[i].Greedy, greedy[i]) / float64(len(r.prompts))
		if r.typ == gguf.F32 {
			if !slices.Equal(res[i].Greedy, greedy[i]) {
				t.Errorf("prompt %d: llama.cpp greedy %v, minnow %v", i, res[i].Greedy, greedy[i])
				continue
			}
			// Along the continuation too: the logits each token came from.
			seq := append(append([]int32{}, p...), greedy[i][:greedyTokens-1]...)
			dLlama = max(dLlama, maxDiff(t, res[i].GreedyLogits, want(seq)[len(p)-1:]))
		}
	}
	t.Logf("max |llama.cpp - minnow fp32| = %.3g, |minnow dequantised - fp32| = %.3g, |llama.cpp - minnow dequantised| = %.3g, greedy agreement %.0f%%",
		dLlama, dQuant, dDeq, 100*agree)
	if r.typ == gguf.F32 {
		if dLlama > tol {
			t.Errorf("F32: max logit difference %.3g over %g", dLlama, tol)
		}
		return
	}
	if agree < 0.9 {
		t.Errorf("greedy agreement %.0f%% below 90%%", 100*agree)
	}
	if tol := quantTolerance(r.typ, dQuant); dLlama > tol {
		t.Errorf("llama.cpp's logits differ from minnow's fp32 ones by %.3g, over the bound %.3g (dequantisation alone: %.3g)", dLlama, tol, dQuant)
	}
}

// quantTolerance bounds llama.cpp's logits on a file of type typ against
// minnow's fp32 forward, given the error weight rounding alone causes
// (minnow's forward on the dequantised weights vs fp32). llama.cpp also
// rounds activations, to Q8_0 blocks for Q8_0 and Q4_0 weights and to F16
// or BF16 for those types, which adds an error of the same order: over
// every tiny model the measured ratio of the two errors is at most 1.9,
// so the factor 3 leaves a margin of about 1.5 without hiding a wrong
// tensor, which moves logits by whole units.
func quantTolerance(typ gguf.GGMLType, weightErr float64) float64 {
	return 3*weightErr + f32Tolerance
}

// TestGGUFExportAidreamsLlamaCpp exports a real trained model, aidreams260K
// imported from llama2.c, and checks that llama.cpp's 64 greedy tokens are
// minnow's, with logits within 1e-4, for the F32 file. For Q8_0 and Q4_0
// it only logs the agreement: at width 64 one flipped token sends the rest
// of a 64-token continuation elsewhere, so the figure measures the model's
// robustness more than the export (the 90% applies to the tiny
// models of TestGGUFExportLlamaCpp).
func TestGGUFExportAidreamsLlamaCpp(t *testing.T) {
	nodeDir(t)
	data := os.Getenv("MINNOW_DATA")
	if data == "" {
		t.Skip("MINNOW_DATA is not set (needs models/aidreams260K)")
	}
	src := filepath.Join(data, "models", "aidreams260K")
	m, v, err := ImportLlama2C(filepath.Join(src, "aidreams260K.bin"), filepath.Join(src, "tok512.bin"), testBackend, tensor.Float32)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	var prompts [][]int32
	for _, s := range []string{"Once upon a time", "The stars", "I dream of"} {
		prompts = append(prompts, tok.Encode(s, tokenizer.EncodeOptions{AddSpecial: true}))
	}
	const n = 64
	greedy := minnowGreedy(t, m, prompts, n)
	dir := t.TempDir()
	types := []gguf.GGMLType{gguf.F32, gguf.Q8_0, gguf.Q4_0}
	var jobs []llamaRequest
	for _, typ := range types {
		path := filepath.Join(dir, "aidreams-"+typ.String()+".gguf")
		if err := ExportGGUFFile(path, m, v, GGUFOptions{Type: typ, Name: "aidreams260K"}); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, llamaRequest{Model: path, ContextSize: m.Config().MaxPositionEmbeddings, Prompts: prompts, AllPositions: true, Generate: n})
	}
	results := runLlamaCpp(t, jobs)
	for k, typ := range types {
		worst, agree := 0.0, 0.0
		for i, p := range prompts {
			res := results[k][i]
			agree += agreement(res.Greedy, greedy[i]) / float64(len(prompts))
			if typ != gguf.F32 {
				continue
			}
			if !slices.Equal(res.Greedy, greedy[i]) {
				t.Errorf("prompt %d: llama.cpp greedy %q, minnow %q", i, tok.Decode(res.Greedy, tokenizer.DecodeOptions{}), tok.Decode(greedy[i], tokenizer.DecodeOptions{}))
				continue
			}
			seq := append(append([]int32{}, p...), greedy[i][:n-1]...)
			worst = max(worst, maxDiff(t, res.Logits, minnowLogits(t, m, p)))
			worst = max(worst, maxDiff(t, res.GreedyLogits, minnowLogits(t, m, seq)[len(p)-1:]))
		}
		t.Logf("%s: greedy agreement %.0f%%, max |llama.cpp - minnow| = %.3g (F32 only); %q", typ, 100*agree, worst,
			tok.Decode(results[k][0].Greedy, tokenizer.DecodeOptions{}))
		if typ == gguf.F32 && worst > f32Tolerance {
			t.Errorf("F32: logits differ by %.3g, over %g", worst, f32Tolerance)
		}
	}
}
