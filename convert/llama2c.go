package convert

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// Llama2CConfig is the header of a llama2.c checkpoint (version 0, the
// legacy format llama2.c's run.c reads).
type Llama2CConfig struct {
	Dim, HiddenDim, Layers, Heads, KVHeads, VocabSize, SeqLen int
	// SharedClassifier is true when the output layer reuses the token
	// embedding, which the file marks with a positive vocab_size.
	SharedClassifier bool
}

// llama2cMaxDim bounds every header value, so that a hostile header cannot
// ask for sizes that overflow or exhaust memory before the file size check
// catches it; real models are far below it.
const llama2cMaxDim = 1 << 24

// ModelConfig returns the Hugging Face style config of the model: a Llama
// with RMSNorm epsilon 1e-5 and rope_theta 10000 as llama2.c's run.c
// hard-codes, BOS 1 and EOS 2 as its SentencePiece tokenizers have.
func (c Llama2CConfig) ModelConfig() model.Config {
	bos := 1
	return model.Config{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: c.VocabSize,
		HiddenSize: c.Dim, IntermediateSize: c.HiddenDim, NumHiddenLayers: c.Layers, NumAttentionHeads: c.Heads,
		NumKeyValueHeads: c.KVHeads, MaxPositionEmbeddings: c.SeqLen, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieWordEmbeddings: c.SharedClassifier, HiddenAct: "silu", InitializerRange: 0.02,
		BOSTokenID: &bos, EOSTokenID: model.TokenIDs{2}}
}

// ReadLlama2CConfig reads the 28-byte header of a llama2.c checkpoint. It
// returns an error naming the file when it is shorter than the header or
// a value is out of range (not positive, above 2^24, heads that do not
// divide the width or each other, an odd head size).
func ReadLlama2CConfig(r io.Reader, path string) (Llama2CConfig, error) {
	var h [7]int32
	if err := binary.Read(r, binary.LittleEndian, &h); err != nil {
		return Llama2CConfig{}, fmt.Errorf("convert: %s: reading the llama2.c header: %w", path, err)
	}
	c := Llama2CConfig{Dim: int(h[0]), HiddenDim: int(h[1]), Layers: int(h[2]), Heads: int(h[3]), KVHeads: int(h[4]),
		VocabSize: int(h[5]), SeqLen: int(h[6]), SharedClassifier: h[5] > 0}
	if c.VocabSize < 0 {
		c.VocabSize = -c.VocabSize
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"dim", c.Dim}, {"hidden_dim", c.HiddenDim}, {"n_layers", c.Layers}, {"n_heads", c.Heads},
		{"n_kv_heads", c.KVHeads}, {"vocab_size", c.VocabSize}, {"seq_len", c.SeqLen}} {
		if f.v <= 0 || f.v > llama2cMaxDim {
			return c, fmt.Errorf("convert: %s: llama2.c header: %s is %d", path, f.name, f.v)
		}
	}
	if c.Dim%c.Heads != 0 || c.Heads%c.KVHeads != 0 || (c.Dim/c.Heads)%2 != 0 {
		return c, fmt.Errorf("convert: %s: llama2.c header: dim %d, n_heads %d and n_kv_heads %d do not split into heads of even size",
			path, c.Dim, c.Heads, c.KVHeads)
	}
	return c, nil
}

// llama2cTensor is one tensor of a llama2.c file: its rows for all layers
// stored together, each layer's [rows, cols] slab after the other.
type llama2cTensor struct {
	name       string // GGUF name; "%d" takes the layer for per-layer ones
	layers     int    // 0 for a tensor outside the blocks
	rows, cols int    // per layer; cols 0 for a vector
	skip       bool   // read past, not loaded (the legacy RoPE tables)
}

// layout lists the file's tensors in order.
func (c Llama2CConfig) layout() []llama2cTensor {
	hd := c.Dim / c.Heads
	kv := c.KVHeads * hd
	L := c.Layers
	ts := []llama2cTensor{
		{"token_embd.weight", 0, c.VocabSize, c.Dim, false},
		{"blk.%d.attn_norm.weight", L, c.Dim, 0, false},
		{"blk.%d.attn_q.weight", L, c.Dim, c.Dim, false},
		{"blk.%d.attn_k.weight", L, kv, c.Dim, false},
		{"blk.%d.attn_v.weight", L, kv, c.Dim, false},
		{"blk.%d.attn_output.weight", L, c.Dim, c.Dim, false},
		{"blk.%d.ffn_norm.weight", L, c.Dim, 0, false},
		{"blk.%d.ffn_gate.weight", L, c.HiddenDim, c.Dim, false}, // w1
		{"blk.%d.ffn_down.weight", L, c.Dim, c.HiddenDim, false}, // w2
		{"blk.%d.ffn_up.weight", L, c.HiddenDim, c.Dim, false},   // w3
		{"output_norm.weight", 0, c.Dim, 0, false},
		{"freq_cis_real", 0, c.SeqLen, hd / 2, true},
		{"freq_cis_imag", 0, c.SeqLen, hd / 2, true},
	}
	if !c.SharedClassifier {
		ts = append(ts, llama2cTensor{"output.weight", 0, c.VocabSize, c.Dim, false})
	}
	return ts
}

// elems returns the floats one layer's slab holds.
func (t llama2cTensor) elems() int64 { return int64(t.rows) * int64(max(t.cols, 1)) }

// ImportLlama2C reads the llama2.c checkpoint at checkpointPath (version 0
// header, float32 weights) into a new Llama on be with parameters of dtype
// dt, and the llama2.c tokenizer at tokenizerPath; with tokenizerPath ""
// the vocabulary is nil. Q and K are copied as they are: llama2.c rotates
// adjacent pairs, as minnow's Llama does.
//
// It returns an error naming the file when the header is invalid (see
// ReadLlama2CConfig), the file's size is not the header's exactly, the
// tokenizer does not load or has more pieces than the model's vocabulary,
// or the model cannot be built.
func ImportLlama2C(checkpointPath, tokenizerPath string, be tensor.Backend, dt tensor.DType) (model.Model, *tokenizer.Vocab, error) {
	f, err := os.Open(checkpointPath)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %w", err)
	}
	c, err := ReadLlama2CConfig(f, checkpointPath)
	if err != nil {
		return nil, nil, err
	}
	layout := c.layout()
	want := int64(28)
	for _, t := range layout {
		want += 4 * t.elems() * int64(max(t.layers, 1))
	}
	if st.Size() != want {
		return nil, nil, fmt.Errorf("convert: %s: %d bytes, but a llama2.c checkpoint with this header (%+v) has %d",
			checkpointPath, st.Size(), c, want)
	}
	var v *tokenizer.Vocab
	if tokenizerPath != "" {
		if v, err = tokenizer.LoadLlama2C(tokenizerPath); err != nil {
			return nil, nil, fmt.Errorf("convert: %w", err)
		}
		if len(v.Tokens) > c.VocabSize {
			return nil, nil, fmt.Errorf("convert: tokenizer %s has %d pieces, more than the model's vocabulary of %d",
				tokenizerPath, len(v.Tokens), c.VocabSize)
		}
	}
	m, err := model.New(c.ModelConfig(), be, dt, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %s: %w", checkpointPath, err)
	}
	params := map[string]model.NamedParam{}
	for _, p := range m.Params() {
		params[p.Name] = p
	}
	off := int64(28)
	for _, t := range layout {
		for l := range max(t.layers, 1) {
			n := t.elems()
			if !t.skip {
				name := t.name
				if t.layers > 0 {
					name = fmt.Sprintf(t.name, l)
				}
				if err := loadLlama2C(f, off, n, params[name], be); err != nil {
					return nil, nil, fmt.Errorf("convert: %s: %s: %w", checkpointPath, name, err)
				}
			}
			off += 4 * n
		}
	}
	return m, v, nil
}

// loadLlama2C reads n float32 at off into p, whose shape the model's
// config fixes to hold exactly n values.
func loadLlama2C(r io.ReaderAt, off, n int64, p model.NamedParam, be tensor.Backend) error {
	if p.Tensor == nil || int64(p.Tensor.Len()) != n {
		// The layout and the model come from the same header, so this is
		// a bug here, not a bad file.
		panic(fmt.Sprintf("convert: llama2.c layout does not fit parameter %q", p.Name))
	}
	raw := make([]byte, 4*n)
	if _, err := r.ReadAt(raw, off); err != nil {
		return err
	}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return tensor.Catch(func() {
		t := tensor.From(be, tensor.Float32, vals, p.Tensor.Shape()...)
		defer t.Release()
		p.Tensor.CopyFrom(t)
	})
}
