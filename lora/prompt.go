package lora

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/minnowml/minnow/checkpoint"
	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

// PromptCheckpointArch is the Arch of a checkpoint file holding a soft
// prompt.
const PromptCheckpointArch = "minnow.soft_prompt"

// The initialisations of a soft prompt (PromptConfig.Init).
const (
	// PromptRandom draws every value from a normal distribution.
	PromptRandom = "random"
	// PromptVocab copies the embeddings of tokens drawn at random from the
	// vocabulary.
	PromptVocab = "vocab"
	// PromptText copies the embeddings of a text's tokens, repeated to
	// fill the prompt when the text is shorter (PEFT's TEXT init).
	PromptText = "text"
)

// PromptConfig says how long a soft prompt is and how it starts.
type PromptConfig struct {
	// Tokens is the number of virtual tokens P; with Init "text" 0 means
	// as many as the text has.
	Tokens int `yaml:"tokens" json:"tokens"`
	// Init is PromptRandom (the default), PromptVocab or PromptText.
	Init string `yaml:"init" json:"init"`
	// Text is the text whose token embeddings start the prompt (Init
	// "text").
	Text string `yaml:"text" json:"text"`
	// Std is the standard deviation of the random init; 0 means the
	// model's initializer_range (0.02 when unset).
	Std float64 `yaml:"std" json:"std"`
	// Seed drives the random init and the choice of vocabulary tokens.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// SoftPrompt is a trained sequence of virtual-token embeddings that enter
// the model before its input (see the package documentation).
type SoftPrompt struct {
	// Embeddings is [P, width] in the model's dtype and requires grad.
	Embeddings *tensor.Tensor
	// Config is how the prompt was made.
	Config PromptConfig
	// ModelID and TokenizerID identify the base model's weights and the
	// tokenizer (ModelIdentity, TokenizerIdentity) the prompt belongs to.
	ModelID, TokenizerID string
}

// embeddingTable returns m's token embedding table.
func embeddingTable(m model.Model) (*tensor.Tensor, error) {
	for _, p := range m.Params() {
		if p.Name == "token_embd.weight" {
			return p.Tensor, nil
		}
	}
	return nil, errors.New("the model has no token embedding token_embd.weight")
}

// NewSoftPrompt freezes every parameter of m and returns a soft prompt
// for it, initialised as cfg says; tok is the tokenizer the prompt is
// trained with, needed for a text init and recorded by identity. It
// returns an error when the length is not positive, Init is unknown, a
// text init has no tokenizer or its text no tokens, m has no token
// embedding or its embeddings are not f32 or f64.
func NewSoftPrompt(m model.Model, tok tokenizer.Tokenizer, cfg PromptConfig) (*SoftPrompt, error) {
	table, err := embeddingTable(m)
	if err != nil {
		return nil, fmt.Errorf("lora: soft prompt: %w", err)
	}
	if !table.DType().IsCompute() {
		return nil, fmt.Errorf("lora: soft prompt: embeddings of dtype %s cannot train (want f32 or f64)", table.DType())
	}
	if cfg.Init == "" {
		cfg.Init = PromptRandom
	}
	be, dt, V, C := table.Backend(), table.DType(), table.Dim(0), table.Dim(1)
	rng := tensor.NewRNG(cfg.Seed)
	var ids []int32
	switch cfg.Init {
	case PromptRandom:
	case PromptVocab:
		for range cfg.Tokens {
			ids = append(ids, int32(rng.IntN(V)))
		}
	case PromptText:
		if tok == nil {
			return nil, errors.New("lora: soft prompt: a text init needs a tokenizer")
		}
		text := tok.Encode(cfg.Text, tokenizer.EncodeOptions{})
		if len(text) == 0 {
			return nil, fmt.Errorf("lora: soft prompt: init text %q has no tokens", cfg.Text)
		}
		if cfg.Tokens == 0 {
			cfg.Tokens = len(text)
		}
		for i := range cfg.Tokens {
			ids = append(ids, text[i%len(text)])
		}
	default:
		return nil, fmt.Errorf("lora: soft prompt: init %q is unknown (want random, vocab or text)", cfg.Init)
	}
	if cfg.Tokens <= 0 || !(cfg.Std >= 0) {
		return nil, fmt.Errorf("lora: soft prompt: %d tokens and std %g; want a positive length and std >= 0", cfg.Tokens, cfg.Std)
	}
	var emb *tensor.Tensor
	if ids == nil {
		std := cfg.Std
		if std == 0 {
			std = m.Config().InitializerRange
		}
		if std == 0 {
			std = 0.02
		}
		emb = tensor.Randn(be, dt, rng, std, cfg.Tokens, C)
	} else {
		err = tensor.Catch(func() {
			tensor.NoGrad(func() {
				idt := tensor.From(be, tensor.Int32, ids, len(ids))
				// The gathered rows are a fresh tensor, apart from the table.
				emb = tensor.Embedding(table, idt)
				idt.Release()
			})
		})
		if err != nil {
			return nil, fmt.Errorf("lora: soft prompt: %w", err)
		}
	}
	Freeze(m)
	return &SoftPrompt{Embeddings: emb.SetRequiresGrad(true), Config: cfg, ModelID: ModelIdentity(m), TokenizerID: TokenizerIdentity(tok)}, nil
}

// Params returns the prompt's one trainable tensor, named
// "soft_prompt.embeddings", for the optimizer and checkpoints.
func (p *SoftPrompt) Params() []model.NamedParam {
	return []model.NamedParam{{Name: "soft_prompt.embeddings", Tensor: p.Embeddings, Slot: &p.Embeddings}}
}

// Len returns the number of virtual tokens.
func (p *SoftPrompt) Len() int { return p.Embeddings.Dim(0) }

// Wrap returns m with the prompt before every input, for training and
// evaluation: its Forward passes the prompt as the prefix (see
// model.ForwardOptions.Prefix) and its Loss scores only the real tokens.
// model.Generate takes it as a model.Prefixed.
func (p *SoftPrompt) Wrap(m model.Model) *Prompted { return &Prompted{Model: m, Prompt: p} }

// Generate runs model.Generate on m with the prompt prefilled before every
// prompt's tokens. It returns model.Generate's errors.
func (p *SoftPrompt) Generate(m model.Model, tok tokenizer.Tokenizer, prompts [][]int32, cfg model.GenerateConfig) ([]model.Completion, error) {
	cfg.Prefix = p.Embeddings
	var out []model.Completion
	var err error
	tensor.NoGrad(func() { out, err = model.Generate(m, tok, prompts, cfg) })
	return out, err
}

// Prompted is a model with a soft prompt before its input.
type Prompted struct {
	model.Model
	Prompt *SoftPrompt
}

// Forward returns the logits of the real tokens with the prompt before
// them, unless opt already has a prefix or the caches hold tokens (the
// prompt then is in them). Positions and a mask given for the T tokens
// alone, as packed batches bring them (nn.DocumentMask), are extended over
// the prompt: the prompt takes positions 0..P-1, every token's position
// moves up by P, and every token may see the prompt, so each packed
// document is computed as it would be alone after the prompt. It panics
// with *tensor.Error as model.Model's Forward does.
func (p *Prompted) Forward(ids *tensor.Tensor, opt model.ForwardOptions) *tensor.Tensor {
	if opt.Prefix != nil || (len(opt.Caches) > 0 && opt.Caches[0].Len() > 0) {
		return p.Model.Forward(ids, opt)
	}
	opt.Prefix = p.Prompt.Embeddings
	P := p.Prompt.Len()
	if ids.Rank() == 2 {
		B, T := ids.Dim(0), ids.Dim(1)
		if pos := opt.Positions; pos != nil && pos.Len() == B*T {
			opt.Positions = shiftPositions(pos, B, T, P)
		}
		if m := opt.Mask; m != nil && (m.Rank() == 2 || m.Rank() == 3) && m.Dim(m.Rank()-1) == T && m.Dim(m.Rank()-2) == T {
			opt.Mask = widenMask(m, P)
		}
	}
	return p.Model.Forward(ids, opt)
}

// shiftPositions returns positions [B, P+T]: 0..P-1 for the prompt, then
// pos moved up by P.
func shiftPositions(pos *tensor.Tensor, B, T, P int) *tensor.Tensor {
	src := pos.Int32s()
	out := make([]int32, 0, B*(P+T))
	for b := range B {
		for i := range P {
			out = append(out, int32(i))
		}
		for _, v := range src[b*T : (b+1)*T] {
			out = append(out, v+int32(P))
		}
	}
	return tensor.From(pos.Backend(), tensor.Int32, out, B, P+T)
}

// widenMask returns the additive mask m ([T, T] or [B, T, T]) grown to
// P+T queries and keys with zeros in the new rows and columns: the prompt
// sees itself and every token sees the prompt (causal masking still keeps
// the prompt from seeing the tokens).
func widenMask(m *tensor.Tensor, P int) *tensor.Tensor {
	var out *tensor.Tensor
	tensor.NoGrad(func() {
		s := m.Shape()
		lead, T := s[:len(s)-2], s[len(s)-1]
		shape := func(r, c int) []int { return append(append([]int(nil), lead...), r, c) }
		zeros := func(r, c int) *tensor.Tensor { return tensor.Full(m.Backend(), m.DType(), 0, shape(r, c)...) }
		ax := len(s) - 1
		top := zeros(P, P+T)
		bottom := tensor.Concat(ax, zeros(T, P), m)
		out = tensor.Concat(ax-1, top, bottom)
	})
	return out
}

// Unprefixed returns the model inside and the prompt's embeddings, so
// that model.Generate runs a Prompted model as SoftPrompt.Generate does.
func (p *Prompted) Unprefixed() (model.Model, *tensor.Tensor) {
	return p.Model, p.Prompt.Embeddings
}

// Loss returns the mean cross-entropy of the real tokens' logits, with
// the prompt before them, against targets; the virtual tokens have no
// targets. It panics with *tensor.Error as model.Model's Loss does.
func (p *Prompted) Loss(ids, targets *tensor.Tensor) *tensor.Tensor {
	_, mean := tensor.CrossEntropy(p.Forward(ids, model.ForwardOptions{}), targets)
	return mean
}

// savedPrompt is the Config field of a soft-prompt checkpoint.
type savedPrompt struct {
	Config  PromptConfig `json:"config"`
	ModelID string       `json:"model_id"`
}

// Save writes the prompt with the identities of its model and tokenizer
// to path as a minnow checkpoint. It returns an error when the file cannot
// be written.
func (p *SoftPrompt) Save(path string) error {
	cfg, err := json.Marshal(savedPrompt{Config: p.Config, ModelID: p.ModelID})
	if err != nil {
		return fmt.Errorf("lora: save soft prompt: %w", err)
	}
	var nt checkpoint.NamedTensor
	if err := tensor.Catch(func() { nt = checkpoint.FromTensor("soft_prompt.embeddings", p.Embeddings) }); err != nil {
		return fmt.Errorf("lora: save soft prompt: %w", err)
	}
	c := &checkpoint.Checkpoint{Arch: PromptCheckpointArch, Config: cfg, Tokenizer: p.TokenizerID, Tensors: []checkpoint.NamedTensor{nt}}
	if err := checkpoint.Save(path, c); err != nil {
		return fmt.Errorf("lora: save soft prompt: %w", err)
	}
	return nil
}

// LoadSoftPrompt reads a prompt that Save wrote, for model m and tokenizer
// tok, and freezes m's parameters. It returns an error when the file is
// not a soft-prompt checkpoint or is damaged, or when m's weights or tok
// differ from the ones the prompt was trained with (by identity hash), or
// the width or dtype does not fit m.
func LoadSoftPrompt(path string, m model.Model, tok tokenizer.Tokenizer) (*SoftPrompt, error) {
	c, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("lora: load soft prompt: %w", err)
	}
	if c.Arch != PromptCheckpointArch || len(c.Tensors) != 1 {
		return nil, fmt.Errorf("lora: load soft prompt %s: a checkpoint of %q with %d tensors, not a soft prompt", path, c.Arch, len(c.Tensors))
	}
	var s savedPrompt
	if err := json.Unmarshal(c.Config, &s); err != nil {
		return nil, fmt.Errorf("lora: load soft prompt %s: config: %w", path, err)
	}
	if id := TokenizerIdentity(tok); id != c.Tokenizer {
		return nil, fmt.Errorf("lora: load soft prompt %s: trained with tokenizer %s, given %s", path, short(c.Tokenizer), short(id))
	}
	if id := ModelIdentity(m); id != s.ModelID {
		return nil, fmt.Errorf("lora: load soft prompt %s: trained for model %s, given %s", path, short(s.ModelID), short(id))
	}
	table, err := embeddingTable(m)
	if err != nil {
		return nil, fmt.Errorf("lora: load soft prompt %s: %w", path, err)
	}
	t, err := c.Tensors[0].Tensor(table.Backend())
	if err != nil {
		return nil, fmt.Errorf("lora: load soft prompt %s: %w", path, err)
	}
	if t.Rank() != 2 || t.Dim(1) != table.Dim(1) || t.DType() != table.DType() {
		return nil, fmt.Errorf("lora: load soft prompt %s: embeddings %s %v for a model of width %d and dtype %s", path, t.DType(), t.Shape(), table.Dim(1), table.DType())
	}
	Freeze(m)
	return &SoftPrompt{Embeddings: t.SetRequiresGrad(true), Config: s.Config, ModelID: s.ModelID, TokenizerID: c.Tokenizer}, nil
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// ModelIdentity returns a hash of m's architecture config and every
// parameter's name, shape and values: two models share it only when they
// compute the same function. Adapters are not part of it.
func ModelIdentity(m model.Model) string {
	h := sha256.New()
	cfg, _ := json.Marshal(m.Config())
	h.Write(cfg)
	var buf []byte
	for _, p := range m.Params() {
		fmt.Fprintf(h, "\x00%s %s %v\x00", p.Name, p.Tensor.DType(), p.Tensor.Shape())
		buf = buf[:0]
		if p.Tensor.DType() == tensor.Float64 {
			for _, v := range p.Tensor.Float64s() {
				buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
			}
		} else {
			// 16-bit floats read through float32 exactly.
			for _, v := range p.Tensor.Float32s() {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
		h.Write(buf)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// TokenizerIdentity returns a hash of tok's vocabulary (tokens, scores,
// merges, special ids and options), or "" for a nil tokenizer.
func TokenizerIdentity(tok tokenizer.Tokenizer) string {
	if tok == nil || tok.Vocab() == nil {
		return ""
	}
	js, err := json.Marshal(tok.Vocab())
	if err != nil {
		// A vocabulary is plain data; failing to marshal it is a bug.
		panic(fmt.Sprintf("lora: tokenizer identity: %v", err))
	}
	sum := sha256.Sum256(js)
	return "sha256:" + hex.EncodeToString(sum[:])
}
