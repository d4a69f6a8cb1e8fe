package convert

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/internal/atomicfile"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
)

// GGUFOptions controls ExportGGUF.
type GGUFOptions struct {
	// Type is the storage type of the weight matrices: gguf.F32 (the zero
	// value), F16, BF16, Q8_0, Q6_K, Q5_0, Q4_K or Q4_0. The choice per
	// tensor follows llama.cpp's quantize tool (see GGUFTensorType).
	Type gguf.GGMLType
	// Name is general.name; "" means "minnow-<architecture>".
	Name string
	// ContextLength is <arch>.context_length; 0 means the model's
	// max_position_embeddings.
	ContextLength int
	// ChatTemplate, when not empty, replaces the vocabulary's chat
	// template (tokenizer.chat_template, a Jinja template llama.cpp and
	// ollama render).
	ChatTemplate string
}

// KeyMinnowConfig is the metadata key under which ExportGGUF stores the
// model's config.json, so that ImportGGUF rebuilds the exact config
// (llama3 rope scaling cannot be recovered from llama.cpp's keys alone).
// llama.cpp ignores it.
const KeyMinnowConfig = "minnow.config"

// ggufRopeFreqs is the tensor llama.cpp reads per-frequency rope factors
// from (LLM_TENSOR_ROPE_FREQS): it divides frequency i by factor i.
const ggufRopeFreqs = "rope_freqs.weight"

// fileTypes maps tensor types to llama.cpp's llama_ftype numbers, which
// general.file_type holds.
// Q4_K files are llama.cpp's Q4_K_S mix: every matrix Q4_K but the
// output, in Q6_K.
var fileTypes = map[gguf.GGMLType]uint32{gguf.F32: 0, gguf.F16: 1, gguf.Q4_0: 2, gguf.Q8_0: 7, gguf.Q5_0: 8, gguf.Q4_K: 14, gguf.Q6_K: 18, gguf.BF16: 32}

// GGUFTypeNames lists the names ParseGGUFType takes, for messages.
const GGUFTypeNames = "f32, f16, bf16, q8_0, q6_k, q5_0, q4_k or q4_0"

// ParseGGUFType returns the tensor type named by s, case-insensitively:
// "f32", "f16", "bf16", "q8_0", "q6_k", "q5_0", "q4_k" or "q4_0". It
// returns an error for any other name.
func ParseGGUFType(s string) (gguf.GGMLType, error) {
	for t := range fileTypes {
		if strings.EqualFold(t.String(), s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("convert: unknown GGUF type %q (want %s)", s, GGUFTypeNames)
}

// GGUFTensorType returns the type ExportGGUF stores a tensor in when
// asked for want, following llama.cpp's quantize tool
// (llama_tensor_get_type): tensors of one dimension (norms, biases, rope
// factors) stay F32; other tensors take want, except that with Q5_0, Q4_K
// or Q4_0 the output matrix (or the token embedding, which serves as
// output when tied) gets Q6_K. A tensor whose rows are not a whole number
// of the type's blocks falls back as llama.cpp's quantizer does: Q6_K
// (256-element blocks) to Q8_0, Q4_K to Q5_0, and a 32-element block type
// to F16.
func GGUFTensorType(name string, dims []uint64, want gguf.GGMLType, tied bool) gguf.GGMLType {
	if len(dims) < 2 {
		return gguf.F32
	}
	t := want
	if (want == gguf.Q4_0 || want == gguf.Q5_0 || want == gguf.Q4_K) && (name == "output.weight" || tied && name == "token_embd.weight") {
		t = gguf.Q6_K
	}
	fits := func(t gguf.GGMLType) bool {
		bs, err := t.BlockSize()
		return err != nil || dims[0]%bs == 0
	}
	switch {
	case t == gguf.Q6_K && !fits(t):
		t = gguf.Q8_0
	case t == gguf.Q4_K && !fits(t):
		t = gguf.Q5_0
	}
	if !fits(t) {
		t = gguf.F16
	}
	return t
}

// ggufArch returns llama.cpp's architecture name for a model_type.
func GGUFArch(modelType string) (string, error) {
	switch modelType {
	case "llama", "mistral":
		return "llama", nil
	case "qwen2":
		return "qwen2", nil
	case "gpt2":
		return "gpt2", nil
	}
	return "", fmt.Errorf("convert: no GGUF export for architecture %q (supported: llama, mistral, qwen2, gpt2)", modelType)
}

// ExportGGUF writes m and its vocabulary as a GGUF file llama.cpp and
// ollama load: general and architecture metadata with the key names and
// types llama.cpp requires, the tokenizer (padded with unused "[PADn]"
// tokens when the model's vocab_size exceeds the vocabulary, as
// llama.cpp needs one token per embedding row), and the weights in the
// types GGUFTensorType picks. Tied models get no output.weight; llama3
// rope scaling is written as rope_freqs.weight. It returns an error when
// the architecture or an option is unsupported (partial rotary embedding,
// MLP biases on Qwen2), the vocabulary is larger than the model's, or w
// fails.
func ExportGGUF(w io.Writer, m model.Model, vocab *tokenizer.Vocab, opt GGUFOptions) error {
	md, ts, err := buildGGUF(m, vocab, opt)
	if err != nil {
		return err
	}
	return gguf.Write(w, md, ts)
}

// ExportGGUFFile is ExportGGUF to the file at path, written atomically:
// on error path is left as it was. It returns ExportGGUF's errors and
// those of writing the file.
func ExportGGUFFile(path string, m model.Model, vocab *tokenizer.Vocab, opt GGUFOptions) error {
	md, ts, err := buildGGUF(m, vocab, opt)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return gguf.Write(w, md, ts) })
}

// buildGGUF returns the metadata and tensors of m's GGUF file; tensor data
// is encoded as it is written, so a model is never held twice in memory.
func buildGGUF(m model.Model, vocab *tokenizer.Vocab, opt GGUFOptions) (gguf.Metadata, []gguf.Tensor, error) {
	ftype, ok := fileTypes[opt.Type]
	if !ok {
		return nil, nil, fmt.Errorf("convert: cannot export GGUF tensors of type %s (want %s)", opt.Type, GGUFTypeNames)
	}
	if vocab == nil {
		return nil, nil, fmt.Errorf("convert: GGUF export needs the model's vocabulary")
	}
	cfg := m.Config()
	arch, err := GGUFArch(cfg.ModelType)
	if err != nil {
		return nil, nil, err
	}
	name := opt.Name
	if name == "" {
		name = "minnow-" + arch
	}
	md := gguf.Metadata{
		{Key: "general.architecture", Value: arch},
		{Key: "general.type", Value: "model"},
		{Key: "general.name", Value: name},
		{Key: "general.file_type", Value: ftype},
	}
	if bs, _ := opt.Type.BlockSize(); bs > 1 {
		// GGML_QNT_VERSION: the block formats' revision.
		md = append(md, gguf.KV{Key: "general.quantization_version", Value: uint32(2)})
	}
	archMD, ropeFactors, err := archMetadata(arch, cfg, opt)
	if err != nil {
		return nil, nil, err
	}
	md = append(md, archMD...)
	tokMD, err := vocabMetadata(vocab, cfg.VocabSize, opt.ChatTemplate)
	if err != nil {
		return nil, nil, err
	}
	md = append(md, tokMD...)
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: config: %w", err)
	}
	md = append(md, gguf.KV{Key: KeyMinnowConfig, Value: string(cfgJSON)})

	params := m.Params()
	tied := true
	for _, p := range params {
		if p.Name == "output.weight" {
			tied = false
		}
	}
	var ts []gguf.Tensor
	for _, p := range params {
		dims := ggufDims(p.Tensor.Shape())
		ts = append(ts, lazyTensor(p.Name, dims, GGUFTensorType(p.Name, dims, opt.Type, tied), p.Tensor))
	}
	if ropeFactors != nil {
		data, err := gguf.Encode(gguf.F32, ropeFactors)
		if err != nil {
			return nil, nil, err
		}
		ts = append(ts, gguf.Tensor{Name: ggufRopeFreqs, Dims: []uint64{uint64(len(ropeFactors))}, Type: gguf.F32, Data: data})
	}
	return md, ts, nil
}

// ggufDims returns a row-major shape in GGUF order, innermost first.
func ggufDims(shape []int) []uint64 {
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		dims[len(shape)-1-i] = uint64(d)
	}
	return dims
}

// lazyTensor describes t for gguf.Write, reading and encoding it only
// when its data is written.
func lazyTensor(name string, dims []uint64, typ gguf.GGMLType, t *tensor.Tensor) gguf.Tensor {
	return gguf.Tensor{Name: name, Dims: dims, Type: typ, WriteData: func(w io.Writer) error {
		var vals []float32
		if err := tensor.Catch(func() { vals = t.Float32s() }); err != nil {
			return err
		}
		b, err := gguf.Encode(typ, vals)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}}
}

// archMetadata returns the <arch>.* keys, with the integer types
// llama.cpp reads (uint32 counts, float32 epsilons and rope settings),
// and for llama3 rope scaling the per-frequency factors of
// rope_freqs.weight.
func archMetadata(arch string, cfg model.Config, opt GGUFOptions) (gguf.Metadata, []float32, error) {
	ctx := opt.ContextLength
	if ctx == 0 {
		ctx = cfg.MaxPositionEmbeddings
	}
	if ctx <= 0 || (arch == "gpt2" && ctx > cfg.MaxPositionEmbeddings) {
		return nil, nil, fmt.Errorf("convert: context length %d must be positive (and at most n_positions %d for GPT-2)", ctx, cfg.MaxPositionEmbeddings)
	}
	ffn := cfg.IntermediateSize
	if arch == "gpt2" && ffn == 0 {
		ffn = 4 * cfg.HiddenSize
	}
	k := func(s string) string { return arch + "." + s }
	u := func(n int) uint32 { return uint32(n) }
	md := gguf.Metadata{
		{Key: k("vocab_size"), Value: u(cfg.VocabSize)},
		{Key: k("context_length"), Value: u(ctx)},
		{Key: k("embedding_length"), Value: u(cfg.HiddenSize)},
		{Key: k("block_count"), Value: u(cfg.NumHiddenLayers)},
		{Key: k("feed_forward_length"), Value: u(ffn)},
		{Key: k("attention.head_count"), Value: u(cfg.NumAttentionHeads)},
		{Key: k("attention.head_count_kv"), Value: u(cfg.KVHeads())},
	}
	if hd := cfg.HeadSize(); hd*cfg.NumAttentionHeads != cfg.HiddenSize {
		md = append(md, gguf.KV{Key: k("attention.key_length"), Value: u(hd)}, gguf.KV{Key: k("attention.value_length"), Value: u(hd)})
	}
	if arch == "gpt2" {
		md = append(md, gguf.KV{Key: k("attention.layer_norm_epsilon"), Value: float32(cfg.LayerNormEpsilon)})
		return md, nil, nil
	}
	if arch == "qwen2" && cfg.MLPBias {
		return nil, nil, fmt.Errorf("convert: llama.cpp's qwen2 has no MLP biases (mlp_bias is set)")
	}
	if f := cfg.PartialRotaryFactor; f > 0 && f < 1 {
		return nil, nil, fmt.Errorf("convert: llama.cpp's %s rotates whole heads; partial_rotary_factor %g cannot be exported", arch, f)
	}
	md = append(md,
		gguf.KV{Key: k("attention.layer_norm_rms_epsilon"), Value: float32(cfg.RMSNormEps)},
		gguf.KV{Key: k("rope.freq_base"), Value: float32(cfg.RopeTheta)},
		gguf.KV{Key: k("rope.dimension_count"), Value: u(cfg.HeadSize())},
	)
	var factors []float32
	switch kind := cfg.RopeScaling.Kind(); kind {
	case "", "default":
	case "linear":
		md = append(md, gguf.KV{Key: k("rope.scaling.type"), Value: "linear"},
			gguf.KV{Key: k("rope.scaling.factor"), Value: float32(cfg.RopeScaling.Factor)})
	case "llama3":
		var err error
		if factors, err = llama3RopeFactors(cfg); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("convert: rope scaling %q cannot be exported", kind)
	}
	return md, factors, nil
}

// llama3RopeFactors returns, for each rotary frequency, the factor
// llama.cpp divides it by so that it equals minnow's scaled frequency:
// the unscaled inverse frequency over the scaled one.
func llama3RopeFactors(cfg model.Config) ([]float32, error) {
	s := cfg.RopeScaling
	plain := nn.RoPEConfig{Theta: cfg.RopeTheta}
	scaled := plain
	scaled.Scaling = &nn.RoPEScaling{Type: "llama3", Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
		HighFreqFactor: s.HighFreqFactor, OriginalContext: s.OriginalMaxPositionEmbeddings}
	base, err := plain.InvFreq(cfg.HeadSize())
	if err != nil {
		return nil, fmt.Errorf("convert: rope: %w", err)
	}
	inv, err := scaled.InvFreq(cfg.HeadSize())
	if err != nil {
		return nil, fmt.Errorf("convert: rope scaling: %w", err)
	}
	out := make([]float32, len(inv))
	for i := range inv {
		out[i] = float32(base[i] / inv[i])
	}
	return out, nil
}

// vocabMetadata returns the tokenizer.* keys for a model with n embedding
// rows, padding the vocabulary with unused tokens up to n.
func vocabMetadata(v *tokenizer.Vocab, n int, chatTemplate string) (gguf.Metadata, error) {
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	have := len(v.Tokens)
	if have > n {
		return nil, fmt.Errorf("convert: the vocabulary has %d tokens but the model only %d embedding rows", have, n)
	}
	p := *v
	if chatTemplate != "" {
		p.ChatTemplate = chatTemplate
	}
	if have < n {
		p.Tokens = append(p.Tokens[:have:have], make([]string, n-have)...)
		types := make([]tokenizer.TokenType, n)
		copy(types, v.Types)
		if v.Types == nil {
			for i := range have {
				types[i] = tokenizer.TypeNormal
			}
		}
		p.Types = types
		if v.Scores != nil {
			p.Scores = append(p.Scores[:have:have], make([]float32, n-have)...)
		}
		for i := have; i < n; i++ {
			p.Tokens[i] = fmt.Sprintf("[PAD%d]", i)
			p.Types[i] = tokenizer.TypeUnused
			if p.Scores != nil {
				p.Scores[i] = -1000
			}
		}
	}
	return p.GGUFMetadata(), nil
}
