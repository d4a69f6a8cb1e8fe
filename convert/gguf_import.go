package convert

import (
	"fmt"
	"math"
	"slices"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// ImportGGUF reads a GGUF model file of architecture llama, qwen2 or
// gpt2 (one minnow exported, or one llama.cpp's converter wrote) into a
// float32 minnow model on be and its vocabulary. Tensors of type F32,
// F16, BF16, Q8_0, Q6_K, Q5_0, Q4_K and Q4_0 are decoded to float32 as
// ggml dequantises them. The config comes from minnow.config when present
// (minnow's own files), else from llama.cpp's keys. It returns an error
// when the file cannot be read, the architecture, a tensor type or rope
// scaling stored only as rope_freqs.weight is unsupported, a weight is
// missing, has the wrong shape or is left over, or the vocabulary is
// invalid.
func ImportGGUF(path string, be tensor.Backend) (model.Model, *tokenizer.Vocab, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	m, v, err := importGGUF(f, be)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, v, nil
}

func importGGUF(f *gguf.File, be tensor.Backend) (model.Model, *tokenizer.Vocab, error) {
	if t, err := f.Metadata.String("general.type"); err == nil && t != "model" {
		return nil, nil, fmt.Errorf("convert: general.type is %q, not a model", t)
	}
	v, err := tokenizer.VocabFromGGUF(f.Metadata)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := ggufConfig(f, v)
	if err != nil {
		return nil, nil, err
	}
	m, err := model.New(cfg, be, tensor.Float32, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %w", err)
	}
	used := map[string]bool{}
	for _, p := range m.Params() {
		if err := loadGGUFTensor(f, p, be); err != nil {
			return nil, nil, err
		}
		used[p.Name] = true
	}
	if i := f.TensorIndex(ggufRopeFreqs); i >= 0 {
		if err := checkRopeFreqs(f, i, cfg); err != nil {
			return nil, nil, err
		}
		used[ggufRopeFreqs] = true
	}
	for _, ti := range f.Tensors {
		if !used[ti.Name] {
			return nil, nil, fmt.Errorf("convert: tensor %s has no place in a %s model", ti.Name, cfg.ModelType)
		}
	}
	return m, v, nil
}

// readGGUFFloats returns tensor i decoded to float32.
func readGGUFFloats(f *gguf.File, i int) ([]float32, error) {
	ti := f.Tensors[i]
	n := uint64(1)
	for _, d := range ti.Dims {
		n *= d
	}
	if !ti.Type.Encodable() {
		return nil, fmt.Errorf("convert: tensor %s has type %s (supported: F32, F16, BF16, Q8_0, Q4_0)", ti.Name, ti.Type)
	}
	raw, err := f.ReadTensor(i)
	if err != nil {
		return nil, err
	}
	vals, err := gguf.Decode(ti.Type, raw, int(n))
	if err != nil {
		return nil, fmt.Errorf("convert: tensor %s: %w", ti.Name, err)
	}
	return vals, nil
}

// loadGGUFTensor copies the GGUF tensor named like p into p's tensor.
func loadGGUFTensor(f *gguf.File, p model.NamedParam, be tensor.Backend) error {
	i := f.TensorIndex(p.Name)
	if i < 0 {
		return fmt.Errorf("convert: tensor %s is missing", p.Name)
	}
	if typ := f.Tensors[i].Type; !typ.Encodable() {
		return fmt.Errorf("convert: tensor %s has type %s (supported: F32, F16, BF16, Q8_0, Q4_0)", p.Name, typ)
	}
	want := ggufDims(p.Tensor.Shape())
	if got := f.Tensors[i].Dims; !slices.Equal(got, want) {
		return fmt.Errorf("convert: tensor %s has GGUF shape %v, the model needs %v", p.Name, got, want)
	}
	vals, err := readGGUFFloats(f, i)
	if err != nil {
		return err
	}
	return tensor.Catch(func() {
		t := tensor.From(be, tensor.Float32, vals, p.Tensor.Shape()...)
		p.Tensor.CopyFrom(t)
		t.Release()
	})
}

// checkRopeFreqs verifies that rope_freqs.weight holds the factors cfg's
// rope scaling implies, since the model computes its own and would
// otherwise silently differ from what llama.cpp runs.
func checkRopeFreqs(f *gguf.File, i int, cfg model.Config) error {
	if cfg.RopeScaling.Kind() != "llama3" {
		return fmt.Errorf("convert: %s is present but the config has no llama3 rope scaling", ggufRopeFreqs)
	}
	want, err := llama3RopeFactors(cfg)
	if err != nil {
		return err
	}
	got, err := readGGUFFloats(f, i)
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("convert: %s has %d factors, want %d", ggufRopeFreqs, len(got), len(want))
	}
	for j := range got {
		if math.Abs(float64(got[j]-want[j])) > 1e-5*math.Abs(float64(want[j])) {
			return fmt.Errorf("convert: %s[%d] = %g, but the config's rope scaling gives %g", ggufRopeFreqs, j, got[j], want[j])
		}
	}
	return nil
}

// ggufConfig returns the model config a GGUF file describes.
func ggufConfig(f *gguf.File, v *tokenizer.Vocab) (model.Config, error) {
	md := f.Metadata
	arch, err := md.String("general.architecture")
	if err != nil {
		return model.Config{}, fmt.Errorf("convert: %w", err)
	}
	if _, ok := md.Get(KeyMinnowConfig); ok {
		s, err := md.String(KeyMinnowConfig)
		if err != nil {
			return model.Config{}, fmt.Errorf("convert: %w", err)
		}
		cfg, err := model.ParseConfig([]byte(s))
		if err != nil {
			return cfg, fmt.Errorf("convert: %s: %w", KeyMinnowConfig, err)
		}
		if a, err := GGUFArch(cfg.ModelType); err != nil || a != arch {
			return cfg, fmt.Errorf("convert: %s says model_type %q, the file's architecture is %q", KeyMinnowConfig, cfg.ModelType, arch)
		}
		return cfg, nil
	}
	if _, err := GGUFArch(arch); err != nil {
		return model.Config{}, err
	}
	var firstErr error
	u := func(key string, def int) int {
		full := arch + "." + key
		if _, ok := md.Get(full); !ok && def >= 0 {
			return def
		}
		n, err := md.Uint32(full)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("convert: %w", err)
		}
		return int(n)
	}
	fl := func(key string, def float64) float64 {
		x, ok := md.Get(arch + "." + key)
		if !ok {
			return def
		}
		switch y := x.(type) {
		case float32:
			return float64(y)
		case float64:
			return y
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("convert: metadata key %s.%s holds %T, not a float", arch, key, x)
		}
		return 0
	}
	cfg := model.Config{
		ModelType:             arch,
		VocabSize:             len(v.Tokens),
		HiddenSize:            u("embedding_length", -1),
		IntermediateSize:      u("feed_forward_length", -1),
		NumHiddenLayers:       u("block_count", -1),
		NumAttentionHeads:     u("attention.head_count", -1),
		MaxPositionEmbeddings: u("context_length", -1),
		TieWordEmbeddings:     f.TensorIndex("output.weight") < 0,
	}
	cfg.NumKeyValueHeads = u("attention.head_count_kv", cfg.NumAttentionHeads)
	if cfg.NumAttentionHeads > 0 {
		cfg.HeadDim = u("attention.key_length", cfg.HiddenSize/cfg.NumAttentionHeads)
		if cfg.HeadDim == cfg.HiddenSize/cfg.NumAttentionHeads {
			cfg.HeadDim = 0
		}
	}
	if i := f.TensorIndex("token_embd.weight"); i >= 0 && len(f.Tensors[i].Dims) == 2 {
		cfg.VocabSize = int(f.Tensors[i].Dims[1])
	}
	if v.BOS >= 0 {
		bos := int(v.BOS)
		cfg.BOSTokenID = &bos
	}
	if v.EOS >= 0 {
		cfg.EOSTokenID = model.TokenIDs{int(v.EOS)}
	}
	if arch == "gpt2" {
		cfg.LayerNormEpsilon = fl("attention.layer_norm_epsilon", 1e-5)
		cfg.HiddenAct = "gelu_new"
		return cfg, firstErr
	}
	cfg.HiddenAct = "silu"
	cfg.RMSNormEps = fl("attention.layer_norm_rms_epsilon", 1e-5)
	cfg.RopeTheta = fl("rope.freq_base", 10000)
	cfg.AttentionBias = arch == "llama" && f.TensorIndex("blk.0.attn_q.bias") >= 0
	cfg.MLPBias = f.TensorIndex("blk.0.ffn_up.bias") >= 0
	if rot := u("rope.dimension_count", 0); rot != 0 && rot != cfg.HeadSize() {
		return cfg, fmt.Errorf("convert: %s.rope.dimension_count %d differs from the head size %d: partial rotary embedding is not supported", arch, rot, cfg.HeadSize())
	}
	if _, ok := md.Get(arch + ".rope.scaling.type"); ok {
		kind, err := md.String(arch + ".rope.scaling.type")
		if err != nil {
			return cfg, fmt.Errorf("convert: %w", err)
		}
		switch kind {
		case "none":
		case "linear":
			cfg.RopeScaling = &model.RopeScaling{RopeType: "linear", Factor: fl("rope.scaling.factor", 1)}
		default:
			return cfg, fmt.Errorf("convert: %s.rope.scaling.type %q is not supported", arch, kind)
		}
	}
	if f.TensorIndex(ggufRopeFreqs) >= 0 {
		return cfg, fmt.Errorf("convert: %s holds rope factors without %s; llama3 scaling parameters cannot be recovered from them", ggufRopeFreqs, KeyMinnowConfig)
	}
	return cfg, firstErr
}
