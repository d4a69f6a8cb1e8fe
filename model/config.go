package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
)

// Config describes a model with the keys of Hugging Face's config.json, so a
// real config.json loads as it is and a Config written back is one that
// transformers reads. GPT-2's own keys (n_embd, n_layer, n_head,
// n_positions, n_inner, activation_function) read into and write from the
// common fields, as transformers' attribute_map does. Keys minnow does not
// use are kept in Extra and written back.
type Config struct {
	// Architectures lists the transformers classes, e.g. "LlamaForCausalLM".
	Architectures []string `json:"architectures,omitempty"`
	// ModelType selects the architecture: "llama", "qwen2", "gpt2", ...
	ModelType string `json:"model_type"`
	// VocabSize is the number of token ids.
	VocabSize int `json:"vocab_size"`
	// HiddenSize is the model width (GPT-2: n_embd).
	HiddenSize int `json:"hidden_size"`
	// IntermediateSize is the MLP's inner width (GPT-2: n_inner, where 0
	// means 4·n_embd).
	IntermediateSize int `json:"intermediate_size,omitempty"`
	// NumHiddenLayers is the number of blocks (GPT-2: n_layer).
	NumHiddenLayers int `json:"num_hidden_layers"`
	// NumAttentionHeads is the number of query heads (GPT-2: n_head).
	NumAttentionHeads int `json:"num_attention_heads"`
	// NumKeyValueHeads is the number of key/value heads; 0 means
	// NumAttentionHeads.
	NumKeyValueHeads int `json:"num_key_value_heads,omitempty"`
	// HeadDim is the features per head; 0 means HiddenSize /
	// NumAttentionHeads.
	HeadDim int `json:"head_dim,omitempty"`
	// MaxPositionEmbeddings is the context length (GPT-2: n_positions, the
	// size of its position table).
	MaxPositionEmbeddings int `json:"max_position_embeddings,omitempty"`
	// RMSNormEps is RMSNorm's epsilon (Llama family).
	RMSNormEps float64 `json:"rms_norm_eps,omitempty"`
	// LayerNormEpsilon is LayerNorm's epsilon (GPT-2).
	LayerNormEpsilon float64 `json:"layer_norm_epsilon,omitempty"`
	// RopeTheta is the rotary frequency base.
	RopeTheta float64 `json:"rope_theta,omitempty"`
	// RopeScaling stretches rotary frequencies for long contexts; nil for
	// none.
	RopeScaling *RopeScaling `json:"rope_scaling,omitempty"`
	// PartialRotaryFactor is the fraction of each head that rotates; 0
	// means all of it.
	PartialRotaryFactor float64 `json:"partial_rotary_factor,omitempty"`
	// TieWordEmbeddings makes the output layer reuse the token embedding.
	TieWordEmbeddings bool `json:"tie_word_embeddings"`
	// HiddenAct is the MLP activation: "silu" for the Llama family,
	// "gelu_new" for GPT-2 (its activation_function).
	HiddenAct string `json:"hidden_act,omitempty"`
	// AttentionBias gives Llama's q, k, v and output projections biases.
	// Qwen2 ignores it: its q, k and v always have biases and its output
	// projection never does, as transformers' Qwen2Attention hard-codes.
	AttentionBias bool `json:"attention_bias"`
	// MLPBias gives Llama's MLP projections biases.
	MLPBias bool `json:"mlp_bias"`
	// SlidingWindow is the attention window of Mistral and Qwen2; 0 (or
	// null) means none. minnow attends to the whole context, so a window
	// that would take effect is rejected.
	SlidingWindow int `json:"sliding_window,omitempty"`
	// UseSlidingWindow turns Qwen2's window on.
	UseSlidingWindow bool `json:"use_sliding_window,omitempty"`
	// InitializerRange is the standard deviation of the initial weights.
	InitializerRange float64 `json:"initializer_range,omitempty"`
	// BOSTokenID is the beginning-of-sequence id, nil when unset or null.
	BOSTokenID *int `json:"bos_token_id,omitempty"`
	// EOSTokenID holds the end-of-sequence ids: one, or several (Llama 3
	// instruct models list three).
	EOSTokenID TokenIDs `json:"eos_token_id,omitempty"`
	// Extra keeps the keys minnow does not interpret (dtype, or
	// torch_dtype before transformers 5, use_cache, ...), which
	// MarshalJSON writes back.
	Extra map[string]json.RawMessage `json:"-"`
}

// RopeScaling is config.json's rope_scaling object.
type RopeScaling struct {
	// RopeType is "linear" or "llama3" ("default" means no scaling).
	RopeType string `json:"rope_type,omitempty"`
	// Type is the older spelling of RopeType.
	Type string `json:"type,omitempty"`
	// Factor divides the frequencies it applies to.
	Factor float64 `json:"factor,omitempty"`
	// LowFreqFactor is llama3's lower bound of the blended band.
	LowFreqFactor float64 `json:"low_freq_factor,omitempty"`
	// HighFreqFactor is llama3's upper bound of the blended band.
	HighFreqFactor float64 `json:"high_freq_factor,omitempty"`
	// OriginalMaxPositionEmbeddings is llama3's pretraining context.
	OriginalMaxPositionEmbeddings int `json:"original_max_position_embeddings,omitempty"`
}

// Kind returns the scaling type, from rope_type or else type; "" and
// "default" mean no scaling.
func (r *RopeScaling) Kind() string {
	if r == nil {
		return ""
	}
	if r.RopeType != "" {
		return r.RopeType
	}
	return r.Type
}

// TokenIDs holds one or more token ids; it reads a JSON number, an array of
// numbers or null, and writes a single id as a number.
type TokenIDs []int

// UnmarshalJSON reads a number, an array of numbers or null; it returns an
// error for anything else.
func (t *TokenIDs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*t = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var ids []int
		if err := json.Unmarshal(b, &ids); err != nil {
			return fmt.Errorf("want a token id or a list of token ids: %w", err)
		}
		*t = ids
		return nil
	}
	var id int
	if err := json.Unmarshal(b, &id); err != nil {
		return fmt.Errorf("want a token id or a list of token ids, got %s", b)
	}
	*t = TokenIDs{id}
	return nil
}

// MarshalJSON writes one id as a number and several as an array.
func (t TokenIDs) MarshalJSON() ([]byte, error) {
	if len(t) == 1 {
		return json.Marshal(t[0])
	}
	return json.Marshal([]int(t))
}

// KVHeads returns the number of key/value heads: NumKeyValueHeads, or
// NumAttentionHeads when that is 0.
func (c Config) KVHeads() int {
	if c.NumKeyValueHeads > 0 {
		return c.NumKeyValueHeads
	}
	return c.NumAttentionHeads
}

// HeadSize returns the features per head: HeadDim, or HiddenSize /
// NumAttentionHeads when that is 0 (and 0 when there are no heads).
func (c Config) HeadSize() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.NumAttentionHeads <= 0 {
		return 0
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// gpt2Keys maps GPT-2's config.json keys to the common ones they stand for.
var gpt2Keys = [...]struct{ gpt2, common string }{
	{"n_embd", "hidden_size"},
	{"n_layer", "num_hidden_layers"},
	{"n_head", "num_attention_heads"},
	{"n_positions", "max_position_embeddings"},
	{"n_inner", "intermediate_size"},
	{"activation_function", "hidden_act"},
}

// key returns the name config.json uses for a common key in this config:
// GPT-2's own name where it has one.
func (c Config) key(common string) string {
	if c.ModelType == "gpt2" {
		for _, k := range gpt2Keys {
			if k.common == common {
				return k.gpt2
			}
		}
	}
	return common
}

// configAux decodes the keys that need more than Config's own tags: GPT-2's
// names, and values that may be null where Config keeps a plain field.
type configAux struct {
	NEmbd         *int            `json:"n_embd"`
	NLayer        *int            `json:"n_layer"`
	NHead         *int            `json:"n_head"`
	NPositions    *int            `json:"n_positions"`
	NInner        *int            `json:"n_inner"`
	Activation    *string         `json:"activation_function"`
	SlidingWindow json.RawMessage `json:"sliding_window"`
	EOS           json.RawMessage `json:"eos_token_id"`
	// RopeParameters is transformers 5's spelling of rope_theta and
	// rope_scaling together: {"rope_theta", "rope_type", "factor", ...}.
	RopeParameters json.RawMessage `json:"rope_parameters"`
}

// knownKeys lists every key Config interprets, so the rest go to Extra.
var knownKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[configAux]()} {
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				m[name] = true
			}
		}
	}
	return m
}()

// UnmarshalJSON decodes config.json over c, keeping the fields of c that the
// JSON leaves out (the architecture's defaults, when ParseConfig calls it).
// It returns the decoding error of the first bad value.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config // without methods, so decoding does not recurse
	var aux configAux
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	if len(aux.EOS) > 0 {
		// Checked here first so that the error can name the key.
		var ids TokenIDs
		if err := ids.UnmarshalJSON(aux.EOS); err != nil {
			return fmt.Errorf("key %q: %w", "eos_token_id", err)
		}
	}
	if err := json.Unmarshal(data, (*plain)(c)); err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(aux.SlidingWindow), []byte("null")) {
		// null means no window, but decoding null into an int keeps the
		// default (Mistral's 4096).
		c.SlidingWindow = 0
	}
	for _, p := range []struct {
		src *int
		dst *int
	}{{aux.NEmbd, &c.HiddenSize}, {aux.NLayer, &c.NumHiddenLayers}, {aux.NHead, &c.NumAttentionHeads},
		{aux.NPositions, &c.MaxPositionEmbeddings}, {aux.NInner, &c.IntermediateSize}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	if aux.Activation != nil {
		c.HiddenAct = *aux.Activation
	}
	if err := c.ropeParameters(aux.RopeParameters); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	c.Extra = nil
	for k, v := range all {
		if !knownKeys[k] {
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			// Compact, so a value reads the same however the file was
			// indented and survives a round trip unchanged.
			var buf bytes.Buffer
			if err := json.Compact(&buf, v); err != nil {
				return err
			}
			c.Extra[k] = buf.Bytes()
		}
	}
	return nil
}

// ropeParameters reads transformers 5's rope_parameters into RopeTheta and
// RopeScaling. Where a config has both spellings, rope_parameters wins, as
// it does in transformers 5; MarshalJSON writes the older keys, which
// transformers 5 still reads, so one spelling survives a round trip.
func (c *Config) ropeParameters(raw json.RawMessage) error {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	var p struct {
		RopeTheta *float64 `json:"rope_theta"`
		RopeScaling
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		// %v, not %w: jsonError would otherwise rename the key to the
		// inner field's name alone.
		return fmt.Errorf("key %q: %v", "rope_parameters", err)
	}
	if p.RopeTheta != nil {
		c.RopeTheta = *p.RopeTheta
	}
	switch p.Kind() {
	case "", "default":
		c.RopeScaling = nil
	default:
		s := p.RopeScaling
		c.RopeScaling = &s
	}
	return nil
}

// MarshalJSON writes c as config.json, with GPT-2's own key names for
// model_type "gpt2" and the keys of Extra; keys are sorted. It returns an
// error when an Extra value is not valid JSON.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	b, err := json.Marshal(plain(c))
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if c.ModelType == "gpt2" {
		for _, k := range gpt2Keys {
			if v, ok := m[k.common]; ok {
				m[k.gpt2] = v
				delete(m, k.common)
			}
		}
		// Llama's bias switches mean nothing to GPT-2.
		delete(m, "attention_bias")
		delete(m, "mlp_bias")
	}
	if c.BOSTokenID == nil {
		// An explicit null, since a missing key would read back as the
		// architecture's default BOS.
		m["bos_token_id"] = json.RawMessage("null")
	}
	for k, v := range c.Extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// ParseConfig decodes a config.json, filling the keys it leaves out with
// the defaults of its architecture's transformers config class, sets
// ModelType to the architecture's canonical name (an alias such as
// "smollm" becomes "llama", and a config naming only its class gets one),
// and validates it. It returns an error naming the offending key for a value of
// the wrong type or out of range, naming the line for malformed JSON, and
// listing the registered architectures when model_type (or, without one,
// architectures) names none of them.
func ParseConfig(data []byte) (Config, error) {
	var probe struct {
		ModelType     string   `json:"model_type"`
		Architectures []string `json:"architectures"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return Config{}, jsonError(data, err)
	}
	arch, err := lookup(probe.ModelType, probe.Architectures)
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	if arch.Defaults != nil {
		cfg = arch.Defaults()
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Config{}, jsonError(data, err)
	}
	if arch.ModelType != "" {
		// The canonical name: an alias such as "smollm" becomes "llama".
		cfg.ModelType = arch.ModelType
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadConfig reads and parses a config.json file (see ParseConfig). Its
// errors start with the file's path.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// jsonError rewrites a decoding error to name the line or the key.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off := min(max(int(syn.Offset), 0), len(data))
		return fmt.Errorf("line %d: invalid JSON: %v", 1+bytes.Count(data[:off], []byte("\n")), syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("config is a JSON %s, not an object", typ.Value)
		}
		return fmt.Errorf("key %q: got a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	}
	return err
}

// Validate checks that c describes a model minnow can build: a registered
// architecture, positive sizes, heads that divide the width and each other,
// non-negative epsilons, and the architecture's own requirements. It
// returns an error naming the config.json key at fault.
func (c Config) Validate() error {
	arch, err := lookup(c.ModelType, c.Architectures)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads}} {
		if f.v <= 0 {
			return fmt.Errorf("key %q is missing or not positive (%d)", c.key(f.key), f.v)
		}
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"intermediate_size", c.IntermediateSize}, {"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
		{"max_position_embeddings", c.MaxPositionEmbeddings}, {"sliding_window", c.SlidingWindow}} {
		if f.v < 0 {
			return fmt.Errorf("key %q is negative (%d)", c.key(f.key), f.v)
		}
	}
	if kv := c.KVHeads(); c.NumAttentionHeads%kv != 0 {
		return fmt.Errorf("key %q (%d) is not a multiple of key %q (%d)", c.key("num_attention_heads"), c.NumAttentionHeads, "num_key_value_heads", kv)
	}
	if c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("key %q (%d) does not divide key %q (%d)", c.key("num_attention_heads"), c.NumAttentionHeads, c.key("hidden_size"), c.HiddenSize)
	}
	for _, f := range []struct {
		key string
		v   float64
	}{{"rms_norm_eps", c.RMSNormEps}, {"layer_norm_epsilon", c.LayerNormEpsilon}, {"rope_theta", c.RopeTheta},
		{"initializer_range", c.InitializerRange}, {"partial_rotary_factor", c.PartialRotaryFactor}} {
		if !(f.v >= 0) {
			return fmt.Errorf("key %q is negative or NaN (%g)", f.key, f.v)
		}
	}
	if c.PartialRotaryFactor > 1 {
		return fmt.Errorf("key %q (%g) is above 1", "partial_rotary_factor", c.PartialRotaryFactor)
	}
	if arch.Check != nil {
		return arch.Check(c)
	}
	return nil
}

// withDefaults fills the zero-valued numeric and string fields of a config
// built in code from the architecture's defaults, so a Config needs only
// its sizes. Booleans are left as they are: false is a real choice.
func (c Config) withDefaults(d Config) Config {
	fill := func(dst *float64, v float64) {
		if *dst == 0 {
			*dst = v
		}
	}
	fill(&c.RMSNormEps, d.RMSNormEps)
	fill(&c.LayerNormEpsilon, d.LayerNormEpsilon)
	fill(&c.RopeTheta, d.RopeTheta)
	fill(&c.InitializerRange, d.InitializerRange)
	if c.HiddenAct == "" {
		c.HiddenAct = d.HiddenAct
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = d.MaxPositionEmbeddings
	}
	return c
}

// sortedKeys returns m's keys in order, for messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
