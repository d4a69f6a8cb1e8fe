package convert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/safetensors"
	"github.com/minnowml/minnow/tensor"
)

// The files of a Hugging Face checkpoint folder that ImportHF reads,
// besides the safetensors weights.
const (
	HFConfigFile    = "config.json"
	HFTokenizerFile = "tokenizer.json"
)

// hfLayer matches the per-layer tensors of the Llama family in
// transformers' naming: model.layers.N.<module>.<weight|bias>.
var hfLayer = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)\.(weight|bias)$`)

// hfModules maps the Llama family's per-layer modules to their GGUF names.
var hfModules = map[string]string{
	"input_layernorm":          "attn_norm",
	"post_attention_layernorm": "ffn_norm",
	"self_attn.q_proj":         "attn_q",
	"self_attn.k_proj":         "attn_k",
	"self_attn.v_proj":         "attn_v",
	"self_attn.o_proj":         "attn_output",
	"mlp.gate_proj":            "ffn_gate",
	"mlp.up_proj":              "ffn_up",
	"mlp.down_proj":            "ffn_down",
}

// HFTensorName returns the GGUF name minnow gives the Llama-family tensor
// that transformers calls name (model.layers.3.self_attn.q_proj.weight
// becomes blk.3.attn_q.weight), and false for a name it does not know.
func HFTensorName(name string) (string, bool) {
	switch name {
	case "model.embed_tokens.weight":
		return "token_embd.weight", true
	case "model.norm.weight":
		return "output_norm.weight", true
	case "lm_head.weight":
		return "output.weight", true
	}
	m := hfLayer.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	g, ok := hfModules[m[2]]
	if !ok {
		return "", false
	}
	if _, err := strconv.Atoi(m[1]); err != nil {
		return "", false
	}
	return "blk." + m[1] + "." + g + "." + m[3], true
}

// hfIgnored reports whether a checkpoint tensor is a buffer transformers
// recomputes rather than a weight: older checkpoints store each layer's
// rotary inverse frequencies.
func hfIgnored(name string) bool {
	return strings.HasSuffix(name, ".rotary_emb.inv_freq")
}

// ImportHF reads the Hugging Face checkpoint folder dir (config.json,
// model.safetensors or model.safetensors.index.json with its shards, and
// tokenizer.json when present) into a new model on be with parameters of
// dtype dt, and its tokenizer's vocabulary. The vocabulary is nil, with no
// error, when the folder has no tokenizer.json, since weights alone are a
// valid import (a caller that needs a tokenizer checks for nil); a
// tokenizer.json that does not load is an error.
//
// Supported are the Llama family (llama, mistral) and qwen2. Q and K rows
// (and biases) of the Llama family are permuted from transformers'
// rotate-half layout to the adjacent-pair layout minnow and llama.cpp use;
// Qwen2 rotates halves in minnow too and is copied as it is.
//
// It returns an error naming the file or tensor when the config does not
// parse or names another architecture, a weight file is malformed, the
// checkpoint has a tensor minnow does not know or lacks one the model
// needs, or a tensor's shape differs from the config's. A tied model's
// lm_head.weight, which some exporters store as a copy of the embedding,
// and rotary inv_freq buffers are ignored.
func ImportHF(dir string, be tensor.Backend, dt tensor.DType) (model.Model, *tokenizer.Vocab, error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, HFConfigFile))
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %w", err)
	}
	permute := false
	switch cfg.ModelType {
	case "llama", "mistral":
		permute = true
		if f := cfg.PartialRotaryFactor; f > 0 && f < 1 {
			return nil, nil, fmt.Errorf("convert: %s: partial_rotary_factor %g: importing a partly rotary Llama is not supported", dir, f)
		}
	case "qwen2":
	default:
		return nil, nil, fmt.Errorf("convert: %s: model_type %q: Hugging Face import supports llama, mistral and qwen2", dir, cfg.ModelType)
	}
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %w", err)
	}
	defer st.Close()
	// The seed does not matter: every parameter is overwritten below.
	m, err := model.New(cfg, be, dt, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: %s: %w", dir, err)
	}
	params := map[string]model.NamedParam{}
	for _, p := range m.Params() {
		params[p.Name] = p
	}
	loaded := map[string]bool{}
	for _, name := range st.Names() {
		if hfIgnored(name) {
			continue
		}
		g, ok := HFTensorName(name)
		if ok && g == "output.weight" && cfg.TieWordEmbeddings {
			continue
		}
		p, known := params[g]
		if !ok || !known {
			return nil, nil, fmt.Errorf("convert: %s: tensor %q has no place in a %s model with this config", dir, name, cfg.ModelType)
		}
		if err := loadHF(st, be, dt, name, p, cfg, permute); err != nil {
			return nil, nil, fmt.Errorf("convert: %s: %w", dir, err)
		}
		loaded[g] = true
	}
	for _, p := range m.Params() {
		if !loaded[p.Name] {
			return nil, nil, fmt.Errorf("convert: %s: the checkpoint lacks %s (%s in minnow)", dir, hfName(p.Name), p.Name)
		}
	}
	v, err := loadHFVocab(dir)
	if err != nil {
		return nil, nil, err
	}
	return m, v, nil
}

// loadHFVocab loads dir's tokenizer.json, and returns nil when there is
// none.
func loadHFVocab(dir string) (*tokenizer.Vocab, error) {
	path := filepath.Join(dir, HFTokenizerFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	v, err := tokenizer.LoadHFTokenizer(path)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return v, nil
}

// hfName returns transformers' name for a GGUF name, for messages.
func hfName(g string) string {
	for _, hf := range []string{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} {
		if n, _ := HFTensorName(hf); n == g {
			return hf
		}
	}
	parts := strings.SplitN(g, ".", 4) // blk, N, module, kind
	if len(parts) == 4 {
		for hf, gg := range hfModules {
			if gg == parts[2] {
				return "model.layers." + parts[1] + "." + hf + "." + parts[3]
			}
		}
	}
	return g
}

// loadHF reads one checkpoint tensor into p, permuting Q and K when asked.
func loadHF(st *safetensors.Model, be tensor.Backend, dt tensor.DType, name string, p model.NamedParam, cfg model.Config, permute bool) error {
	info, _ := st.Info(name)
	if !slices.Equal(info.Shape, p.Tensor.Shape()) {
		return fmt.Errorf("tensor %q has shape %v, the config gives %s shape %v", name, info.Shape, p.Name, p.Tensor.Shape())
	}
	t, err := st.Tensor(be, dt, name)
	if err != nil {
		return err
	}
	defer t.Release()
	heads := 0
	if permute {
		switch {
		case strings.Contains(name, ".self_attn.q_proj."):
			heads = cfg.NumAttentionHeads
		case strings.Contains(name, ".self_attn.k_proj."):
			heads = cfg.KVHeads()
		}
	}
	return tensor.Catch(func() {
		if heads > 0 {
			r := unpermuteHalves(t, heads)
			defer r.Release()
			p.Tensor.CopyFrom(r)
			return
		}
		p.Tensor.CopyFrom(t)
	})
}

// unpermuteHalves reorders the rows of a Q or K projection (weight
// [heads·hd, in] or bias [heads·hd]) from transformers' rotate-half layout,
// where a head's rotary pairs are (i, i+hd/2), to the adjacent-pair layout
// (2i, 2i+1): llama.cpp's convert_hf_to_gguf permute. It panics with
// *tensor.Error when the rows do not split into heads of even size.
func unpermuteHalves(t *tensor.Tensor, heads int) *tensor.Tensor {
	rows := t.Dim(0)
	hd := rows / heads
	rest := t.Shape()[1:]
	split := append([]int{heads, 2, hd / 2}, rest...)
	back := append([]int{rows}, rest...)
	// Reshape of the transposed view copies into the new order.
	return t.Reshape(split...).Transpose(1, 2).Reshape(back...)
}
