package tokenizer

import "fmt"

// Tokenizer turns text into token ids and back. Implementations are safe
// for concurrent use once built.
type Tokenizer interface {
	// Encode returns the token ids of text. With opt.AddSpecial the
	// model's BOS (and EOS, where its vocabulary asks for it) surround the
	// ids; with opt.ParseSpecial the text of special and added tokens (such
	// as "<|endoftext|>") becomes those tokens instead of being split as
	// ordinary text.
	Encode(text string, opt EncodeOptions) []int32
	// Decode returns the text of ids; special tokens render as their text
	// unless opt.SkipSpecial.
	Decode(ids []int32, opt DecodeOptions) string
	// Vocab returns the vocabulary the tokenizer was built from; callers
	// must not modify it.
	Vocab() *Vocab
}

// EncodeOptions controls Encode.
type EncodeOptions struct {
	AddSpecial   bool
	ParseSpecial bool
}

// DecodeOptions controls Decode.
type DecodeOptions struct {
	SkipSpecial bool
}

// TokenType classifies a vocabulary entry, with llama.cpp's numbering as
// GGUF files store it in tokenizer.ggml.token_type.
type TokenType int32

// The token types.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// Model names the tokenization algorithm, as GGUF's tokenizer.ggml.model
// names it.
type Model string

// The supported algorithms: byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM)
// and SentencePiece (Llama 2, TinyLlama).
const (
	ModelBPE Model = "gpt2"
	ModelSPM Model = "llama"
)

// Vocab is everything a tokenizer is built from, in the shape GGUF stores
// it, so that every source (GGUF, tokenizer.json, vocab.json with
// merges.txt, tokenizer.model, training) yields one and GGUF export writes
// one back.
type Vocab struct {
	Model Model
	// Pre names the pre-tokenizer of a BPE vocabulary as llama.cpp's
	// tokenizer.ggml.pre does: "gpt-2", "llama-bpe", "qwen2", "smollm", ...
	Pre    string
	Tokens []string
	// Scores are SentencePiece's piece scores (nil for BPE).
	Scores []float32
	// Types are per-token types (nil means all normal).
	Types []TokenType
	// Merges are BPE merge rules "left right" in rank order (nil for SPM).
	Merges []string
	// Special token ids; -1 when the vocabulary has none.
	BOS, EOS, UNK, PAD, EOT int32
	// AddBOS and AddEOS say whether Encode with AddSpecial adds them.
	AddBOS, AddEOS bool
	// AddSpacePrefix makes SentencePiece prepend a space to the text, as
	// Llama 2 does.
	AddSpacePrefix bool
	// ChatTemplate is the model's chat template source, if it ships one.
	ChatTemplate string
}

// NoToken marks an absent special token.
const NoToken int32 = -1

// Validate returns an error describing the first inconsistency: an empty
// vocabulary, parallel arrays of the wrong length, a special id out of
// range, or an unknown model.
func (v *Vocab) Validate() error {
	n := len(v.Tokens)
	if n == 0 {
		return fmt.Errorf("tokenizer: empty vocabulary")
	}
	if v.Scores != nil && len(v.Scores) != n {
		return fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) != n {
		return fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"bos", v.BOS}, {"eos", v.EOS}, {"unk", v.UNK}, {"pad", v.PAD}, {"eot", v.EOT}} {
		if s.id < NoToken || int(s.id) >= n {
			return fmt.Errorf("tokenizer: %s id %d outside the vocabulary of %d", s.name, s.id, n)
		}
	}
	switch v.Model {
	case ModelBPE, ModelSPM:
	default:
		return fmt.Errorf("tokenizer: unknown model %q (want %q or %q)", v.Model, ModelBPE, ModelSPM)
	}
	return nil
}

// New builds the tokenizer a vocabulary describes; it returns an error when
// the vocabulary is invalid or names a pre-tokenizer it does not know.
func New(v *Vocab) (Tokenizer, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if v.Model == ModelSPM {
		return newSPM(v)
	}
	return newBPE(v)
}
