package model

import (
	"fmt"
	"sync"

	"github.com/minnowml/minnow/tensor"
)

// Model is a causal language model. A model is not safe for concurrent
// use: Forward caches position tensors, and tensors themselves are not.
type Model interface {
	// Forward returns the logits [B, T, vocab] for token ids [B, T] (i32).
	// It panics with *tensor.Error when ids is not a 2-D i32 tensor, an id
	// is out of range, or an option does not fit (see ForwardOptions).
	Forward(ids *tensor.Tensor, opt ForwardOptions) *tensor.Tensor
	// Loss returns the mean cross-entropy of Forward(ids)'s logits against
	// targets [B, T] (i32), ignoring targets outside [0, vocab), such as
	// -100. It panics with *tensor.Error as Forward does, or when targets
	// does not match ids.
	Loss(ids, targets *tensor.Tensor) *tensor.Tensor
	// Config returns the configuration the model was built from, with the
	// architecture's defaults filled in.
	Config() Config
	// Params returns the parameters with their GGUF names, in a fixed order
	// (see the package function Params).
	Params() []NamedParam
	// NewCaches returns one empty KV cache per layer for decoding batch
	// sequences of up to maxLen tokens. It panics with *tensor.Error when a
	// size is not positive or memory is exhausted.
	NewCaches(batch, maxLen int) []*tensor.KVCache
}

// ForwardOptions carries the optional inputs of Model.Forward.
type ForwardOptions struct {
	// Positions (i32, B·T elements, usually [B, T]) are the token
	// positions; nil means 0..T-1 in every row, or, with Caches, continuing
	// after the cached tokens. Packed documents pass positions that restart
	// at each document (nn.DocumentMask builds them).
	Positions *tensor.Tensor
	// Mask is added to every layer's attention scores, [B, T, Tk] or
	// [T, Tk] with Tk the cached plus new tokens: 0 where a token may look,
	// -Inf where it may not. Causal masking applies as well, so a packing
	// mask only needs to keep documents apart.
	Mask *tensor.Tensor
	// Caches, one per layer from NewCaches, make Forward decode: the keys
	// and values of ids are appended and attention reads every cached
	// token. Run decoding under tensor.NoGrad.
	Caches []*tensor.KVCache
	// Prefix, when set, holds P embeddings [P, width] (shared by every
	// row) or [B, P, width] that enter the first layer before the tokens'
	// own, as a soft prompt's virtual tokens do. The sequence is then
	// P+T columns long: Positions and Mask must cover P+T columns (the
	// default positions number them 0..P+T-1), and Caches receive all
	// of them, so decoding after a prefilled prefix passes no Prefix
	// again. The logits cover only the T tokens.
	Prefix *tensor.Tensor
}

// Constructor builds a model from a validated config on be, with
// parameters of dtype dt initialised from seed.
type Constructor func(cfg Config, be tensor.Backend, dt tensor.DType, seed uint64) (Model, error)

// Architecture describes a model family to the registry.
type Architecture struct {
	// ModelType is the canonical model_type, filled in when a config names
	// the architecture only through its architectures class.
	ModelType string
	// New builds the model.
	New Constructor
	// Defaults returns the values transformers' config class assumes for
	// keys that config.json leaves out; nil means none.
	Defaults func() Config
	// Check reports what the family cannot build (an activation it lacks,
	// a sliding window), naming the key; nil accepts every valid config.
	Check func(Config) error
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Architecture{}
)

// Register makes an architecture available under name, a model_type or a
// transformers class name such as "LlamaForCausalLM". It panics when name
// is empty or taken or arch has no constructor, which are programmer
// errors.
func Register(name string, arch Architecture) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || arch.New == nil {
		panic("model: Register needs a name and a constructor")
	}
	if _, dup := registry[name]; dup {
		panic("model: architecture registered twice: " + name)
	}
	registry[name] = arch
}

// Registered returns the registered architecture names, sorted.
func Registered() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return sortedKeys(registry)
}

// lookup finds the architecture for a model_type or, when that is empty,
// for the first known class in architectures.
func lookup(modelType string, archs []string) (Architecture, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if modelType != "" {
		if a, ok := registry[modelType]; ok {
			return a, nil
		}
		return Architecture{}, fmt.Errorf("key %q: unknown architecture %q (registered: %v)", "model_type", modelType, sortedKeys(registry))
	}
	for _, name := range archs {
		if a, ok := registry[name]; ok {
			return a, nil
		}
	}
	if len(archs) == 0 {
		return Architecture{}, fmt.Errorf("key %q is missing, and so is %q (registered: %v)", "model_type", "architectures", sortedKeys(registry))
	}
	return Architecture{}, fmt.Errorf("key %q: unknown architecture %v (registered: %v)", "architectures", archs, sortedKeys(registry))
}

// New builds the model cfg describes on be, with parameters of dtype dt
// drawn from seed: the same config and seed give the same weights. As in
// ParseConfig, ModelType becomes the architecture's canonical name. Numeric
// fields cfg leaves 0 (epsilons, rope_theta, initializer_range, hidden_act,
// max_position_embeddings) take the architecture's defaults. It returns an
// error when the architecture is unknown, cfg is invalid (naming the key),
// be is nil, or dt cannot hold weights.
func New(cfg Config, be tensor.Backend, dt tensor.DType, seed uint64) (Model, error) {
	arch, err := lookup(cfg.ModelType, cfg.Architectures)
	if err != nil {
		return nil, err
	}
	if arch.ModelType != "" {
		// The canonical name: an alias such as "smollm" becomes "llama".
		cfg.ModelType = arch.ModelType
	}
	if arch.Defaults != nil {
		cfg = cfg.withDefaults(arch.Defaults())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if be == nil {
		return nil, fmt.Errorf("model: nil backend")
	}
	if !dt.IsCompute() && dt != tensor.BFloat16 && dt != tensor.Float16 {
		return nil, fmt.Errorf("model: dtype %s cannot hold weights", dt)
	}
	return arch.New(cfg, be, dt, seed)
}

func init() {
	llama := Architecture{ModelType: "llama", New: newLlama(false), Defaults: llamaDefaults, Check: checkLlama(false)}
	mistral := llama
	mistral.ModelType = "mistral"
	mistral.Defaults = mistralDefaults
	qwen2 := Architecture{ModelType: "qwen2", New: newLlama(true), Defaults: qwen2Defaults, Check: checkLlama(true)}
	gpt2 := Architecture{ModelType: "gpt2", New: newGPT2, Defaults: gpt2Defaults, Check: checkGPT2}
	for name, a := range map[string]Architecture{
		"llama": llama, "LlamaForCausalLM": llama,
		// SmolLM's config.json says "llama"; the alias serves configs
		// written by hand.
		"smollm":  llama,
		"mistral": mistral, "MistralForCausalLM": mistral,
		"qwen2": qwen2, "Qwen2ForCausalLM": qwen2,
		"gpt2": gpt2, "GPT2LMHeadModel": gpt2,
	} {
		Register(name, a)
	}
}
