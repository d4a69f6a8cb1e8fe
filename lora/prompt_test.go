package lora_test

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

const corpus = "the cat sat on the mat. the dog sat on the log. a cat and a dog sat together on the mat and the log. "

// smallTokenizer trains a byte-level BPE vocabulary of about 300 tokens.
func smallTokenizer(t *testing.T) tokenizer.Tokenizer {
	t.Helper()
	v, err := tokenizer.Train(strings.NewReader(strings.Repeat(corpus, 4)), tokenizer.TrainConfig{VocabSize: 300, Special: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// promptModel returns a tiny llama sized for tok's vocabulary.
func promptModel(t *testing.T, tok tokenizer.Tokenizer, seed uint64) model.Model {
	t.Helper()
	cfg := tinyCfg("llama")
	cfg.VocabSize = len(tok.Vocab().Tokens)
	cfg.MaxPositionEmbeddings = 64
	return newModel(t, cfg, tensor.Float32, seed)
}

func embeddingRows(t *testing.T, m model.Model, ids []int32) []float32 {
	t.Helper()
	for _, p := range m.Params() {
		if p.Name == "token_embd.weight" {
			var out []float32
			tensor.NoGrad(func() { out = tensor.Embedding(p.Tensor, tensor.From(be, tensor.Int32, ids, len(ids))).Float32s() })
			return out
		}
	}
	t.Fatal("no embedding")
	return nil
}

// TestSoftPromptInit checks the three initialisations and the errors.
func TestSoftPromptInit(t *testing.T) {
	tok := smallTokenizer(t)
	m := promptModel(t, tok, 1)
	text := tok.Encode("the cat", tokenizer.EncodeOptions{})
	var repeated []int32
	for i := range 5 {
		repeated = append(repeated, text[i%len(text)])
	}
	cases := []struct {
		cfg  lora.PromptConfig
		len  int
		rows []int32 // the token rows the prompt must equal; nil for random
		err  string
	}{
		{lora.PromptConfig{Tokens: 6, Std: 0.5}, 6, nil, ""},
		{lora.PromptConfig{Init: lora.PromptText, Text: "the cat"}, len(text), text, ""},
		{lora.PromptConfig{Init: lora.PromptText, Text: "the cat", Tokens: 5}, 5, repeated, ""},
		{lora.PromptConfig{Init: lora.PromptVocab, Tokens: 4, Seed: 3}, 4, []int32{}, ""},
		{lora.PromptConfig{Tokens: 0}, 0, nil, "positive length"},
		{lora.PromptConfig{Tokens: 2, Init: "zeros"}, 0, nil, `init "zeros"`},
		{lora.PromptConfig{Init: lora.PromptText}, 0, nil, "no tokens"},
	}
	for i, c := range cases {
		p, err := lora.NewSoftPrompt(m, tok, c.cfg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("case %d: error %v, want %q", i, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if p.Len() != c.len || !p.Embeddings.RequiresGrad() {
			t.Errorf("case %d: %d tokens (requires grad %v), want %d", i, p.Len(), p.Embeddings.RequiresGrad(), c.len)
		}
		got := p.Embeddings.Float32s()
		switch {
		case c.rows == nil:
			var sq float64
			for _, v := range got {
				sq += float64(v) * float64(v)
			}
			if std := math.Sqrt(sq / float64(len(got))); math.Abs(std-c.cfg.Std) > 0.15*c.cfg.Std {
				t.Errorf("case %d: std %g, want %g", i, std, c.cfg.Std)
			}
		case len(c.rows) > 0:
			if want := embeddingRows(t, m, c.rows); !slices.Equal(got, want) {
				t.Errorf("case %d: the prompt is not the embeddings of %v", i, c.rows)
			}
		default:
			// Each row must be some vocabulary row.
			C := p.Embeddings.Dim(1)
			for r := range p.Len() {
				found := false
				for id := range int32(len(tok.Vocab().Tokens)) {
					if slices.Equal(embeddingRows(t, m, []int32{id}), got[r*C:(r+1)*C]) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("case %d: row %d is no vocabulary embedding", i, r)
				}
			}
		}
	}
	for _, p := range m.Params() {
		if p.Tensor.RequiresGrad() {
			t.Errorf("%s still requires grad", p.Name)
		}
	}
}

// promptBatch returns ids and next-token targets from the corpus.
func promptBatch(t *testing.T, tok tokenizer.Tokenizer) (*tensor.Tensor, *tensor.Tensor) {
	t.Helper()
	ids := tok.Encode(corpus, tokenizer.EncodeOptions{})
	const B, T = 2, 12
	if len(ids) < B*T+1 {
		t.Fatalf("corpus of %d tokens", len(ids))
	}
	return tensor.From(be, tensor.Int32, slices.Clone(ids[:B*T]), B, T), tensor.From(be, tensor.Int32, slices.Clone(ids[1:B*T+1]), B, T)
}

// TestSoftPromptTraining trains only a soft prompt through train.Loop and
// checks that the loss falls, the base model stays bit-identical and gets
// no gradient buffers.
func TestSoftPromptTraining(t *testing.T) {
	tok := smallTokenizer(t)
	m := promptModel(t, tok, 2)
	before := snapshot(m)
	p, err := lora.NewSoftPrompt(m, tok, lora.PromptConfig{Tokens: 8, Init: lora.PromptVocab, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pm := p.Wrap(m)
	x, y := promptBatch(t, tok)
	start := pm.Loss(x, y).Item()
	opt, err := train.NewAdamW(train.AdamWConfig{LR: 0.1}, train.ParamGroup{Params: model.Tensors(p.Params()), NoDecay: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := train.Loop(t.Context(), pm, opt, train.NextToken{}, &fixedBatches{x: x, y: y}, train.LoopConfig{Steps: 80})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soft prompt: loss %.4f -> %.4f in 80 steps", start, res.Loss)
	if !(res.Loss < 0.8*start) {
		t.Errorf("loss %g -> %g, want below 80%%", start, res.Loss)
	}
	for _, q := range m.Params() {
		if q.Tensor.Grad() != nil {
			t.Errorf("base parameter %s has a gradient buffer", q.Name)
		}
	}
	checkBitIdentical(t, m, before)
}

// fixedBatches serves fresh copies of one batch forever, as the loop
// releases each batch it is given.
type fixedBatches struct{ x, y *tensor.Tensor }

func (f *fixedBatches) Next() (train.Batch, error) {
	return train.Batch{IDs: tensor.From(be, tensor.Int32, f.x.Int32s(), f.x.Shape()...),
		Targets: tensor.From(be, tensor.Int32, f.y.Int32s(), f.y.Shape()...)}, nil
}
func (f *fixedBatches) Cursor() ([]byte, error) { return nil, nil }
func (f *fixedBatches) Seek([]byte) error       { return nil }

// TestSoftPromptSaveLoad checks that a saved prompt loads back for the
// same model and tokenizer and that another model or tokenizer is an
// error.
func TestSoftPromptSaveLoad(t *testing.T) {
	tok := smallTokenizer(t)
	m := promptModel(t, tok, 3)
	p, err := lora.NewSoftPrompt(m, tok, lora.PromptConfig{Tokens: 3, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prompt.ckpt")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := lora.LoadSoftPrompt(path, promptModel(t, tok, 3), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Embeddings.Float32s(), p.Embeddings.Float32s()) || got.Config != p.Config || got.ModelID != p.ModelID {
		t.Errorf("loaded prompt differs: %+v, want %+v", got, p)
	}
	if _, err := lora.LoadSoftPrompt(path, promptModel(t, tok, 4), tok); err == nil || !strings.Contains(err.Error(), "trained for model") {
		t.Errorf("other weights: %v", err)
	}
	v := *tok.Vocab()
	v.Tokens = slices.Clone(v.Tokens)
	v.Tokens[100] += "x"
	other, err := tokenizer.New(&v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lora.LoadSoftPrompt(path, promptModel(t, tok, 3), other); err == nil || !strings.Contains(err.Error(), "trained with tokenizer") {
		t.Errorf("other tokenizer: %v", err)
	}
}

// TestSoftPromptGenerate checks that generating with a prompt initialised
// from a text prefills it: the completions equal those of the text's
// tokens written before each prompt.
func TestSoftPromptGenerate(t *testing.T) {
	tok := smallTokenizer(t)
	m := promptModel(t, tok, 5)
	p, err := lora.NewSoftPrompt(m, tok, lora.PromptConfig{Init: lora.PromptText, Text: "a dog"})
	if err != nil {
		t.Fatal(err)
	}
	head := tok.Encode("a dog", tokenizer.EncodeOptions{})
	prompts := [][]int32{tok.Encode(" sat on", tokenizer.EncodeOptions{}), tok.Encode(" the", tokenizer.EncodeOptions{})}
	var long [][]int32
	for _, q := range prompts {
		long = append(long, append(slices.Clone(head), q...))
	}
	cfg := model.GenerateConfig{MaxNewTokens: 5, Temperature: 0.9, Seed: 7, StopTokens: []int32{}}
	got, err := p.Generate(m, tok, prompts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := model.Generate(m, tok, long, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The wrapped model generates the same through model.Generate, which
	// takes it as a model.Prefixed.
	wrapped, err := model.Generate(p.Wrap(m), tok, prompts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].Text != want[i].Text {
			t.Errorf("prompt %d: %q after the soft prompt, %q after its text", i, got[i].Text, want[i].Text)
		}
		if !slices.Equal(wrapped[i].Tokens, want[i].Tokens) {
			t.Errorf("prompt %d: %q from the wrapped model, %q after the text", i, wrapped[i].Text, want[i].Text)
		}
	}
	cfg.Prefix = p.Embeddings
	if _, err := model.Generate(p.Wrap(m), tok, prompts, cfg); err == nil {
		t.Error("a Prefixed model with GenerateConfig.Prefix set generated; want an error")
	}
}

// TestSoftPromptPacked checks that a packed row of two documents, with
// the positions and mask nn.DocumentMask gives, yields for each document
// the logits it has alone after the prompt.
func TestSoftPromptPacked(t *testing.T) {
	tok := smallTokenizer(t)
	m := promptModel(t, tok, 6)
	p, err := lora.NewSoftPrompt(m, tok, lora.PromptConfig{Tokens: 3, Std: 0.5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	pm := p.Wrap(m)
	docs := [][]int32{{5, 9, 14, 3}, {7, 2, 11}}
	mask, pos, err := nn.DocumentMask(be, tensor.Float32, [][]int{{4, 3}})
	if err != nil {
		t.Fatal(err)
	}
	var packed []float32
	tensor.NoGrad(func() {
		all := append(slices.Clone(docs[0]), docs[1]...)
		packed = pm.Forward(tensor.From(be, tensor.Int32, all, 1, 7), model.ForwardOptions{Positions: pos, Mask: mask}).Float32s()
	})
	V := len(tok.Vocab().Tokens)
	at := 0
	for i, d := range docs {
		var alone []float32
		tensor.NoGrad(func() {
			alone = pm.Forward(tensor.From(be, tensor.Int32, d, 1, len(d)), model.ForwardOptions{}).Float32s()
		})
		for j, v := range alone {
			if math.Abs(float64(v-packed[at*V+j])) > 1e-5 {
				t.Fatalf("document %d: logit %d is %v packed, %v alone", i, j, packed[at*V+j], v)
			}
		}
		at += len(d)
	}
}
