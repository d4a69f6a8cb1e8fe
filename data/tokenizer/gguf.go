package tokenizer

import (
	"fmt"

	"github.com/minnowml/minnow/gguf"
)

// The GGUF metadata keys of a vocabulary, exactly as llama.cpp names them
// (LLM_KV_TOKENIZER_* in llama-arch.cpp).
const (
	ggufKeyModel          = "tokenizer.ggml.model"
	ggufKeyPre            = "tokenizer.ggml.pre"
	ggufKeyTokens         = "tokenizer.ggml.tokens"
	ggufKeyScores         = "tokenizer.ggml.scores"
	ggufKeyTokenType      = "tokenizer.ggml.token_type"
	ggufKeyMerges         = "tokenizer.ggml.merges"
	ggufKeyBOS            = "tokenizer.ggml.bos_token_id"
	ggufKeyEOS            = "tokenizer.ggml.eos_token_id"
	ggufKeyUNK            = "tokenizer.ggml.unknown_token_id"
	ggufKeyPAD            = "tokenizer.ggml.padding_token_id"
	ggufKeyEOT            = "tokenizer.ggml.eot_token_id"
	ggufKeyAddBOS         = "tokenizer.ggml.add_bos_token"
	ggufKeyAddEOS         = "tokenizer.ggml.add_eos_token"
	ggufKeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
	ggufKeyChatTemplate   = "tokenizer.chat_template"
)

// ggufPreAddsBOS lists the BPE pre-tokenizers for which llama.cpp adds BOS
// when tokenizer.ggml.add_bos_token is absent (llama_vocab::impl::load sets
// add_bos for the Llama 3 family, tekken and chameleon); every other BPE
// vocabulary defaults to no BOS, and SentencePiece always defaults to BOS.
var ggufPreAddsBOS = map[string]bool{
	"llama3": true, "llama-v3": true, "llama-bpe": true, "falcon3": true, "falcon-h1": true,
	"pixtral": true, "midm-2.0": true, "lfm2": true, "jina-v5-nano": true,
	"tekken": true, "chameleon": true,
}

// VocabFromGGUF reads a vocabulary from GGUF metadata under llama.cpp's key
// names. Absent optional keys take llama.cpp's defaults: tokenizer.ggml.pre
// "default"; special token ids NoToken; add_bos_token true for
// SentencePiece and for the BPE pre-tokenizers llama.cpp adds BOS for
// (llama-bpe among them), but only when the vocabulary has a BOS;
// add_eos_token false; add_space_prefix true for SentencePiece and false
// for BPE. It returns an error naming the key when a required key
// (tokenizer.ggml.model, tokenizer.ggml.tokens, and tokenizer.ggml.merges
// for BPE) is missing, a key holds the wrong type, the model is neither
// "gpt2" nor "llama", an array's length differs from the token count, a
// special token id is outside the vocabulary, or add_bos_token or
// add_eos_token is true for a token the vocabulary lacks.
func VocabFromGGUF(md gguf.Metadata) (*Vocab, error) {
	wrap := func(err error) error { return fmt.Errorf("tokenizer: %w", err) }
	model, err := md.String(ggufKeyModel)
	if err != nil {
		return nil, wrap(err)
	}
	v := &Vocab{Model: Model(model), Pre: "default", BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken}
	if v.Model != ModelBPE && v.Model != ModelSPM {
		return nil, fmt.Errorf("tokenizer: %s is %q; only %q (BPE) and %q (SentencePiece) are supported",
			ggufKeyModel, model, ModelBPE, ModelSPM)
	}
	if _, ok := md.Get(ggufKeyPre); ok {
		if v.Pre, err = md.String(ggufKeyPre); err != nil {
			return nil, wrap(err)
		}
	}
	if v.Tokens, err = md.Strings(ggufKeyTokens); err != nil {
		return nil, wrap(err)
	}
	n := len(v.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: %s is empty", ggufKeyTokens)
	}
	if err := readScores(md, v); err != nil {
		return nil, err
	}
	if _, ok := md.Get(ggufKeyTokenType); ok {
		types, err := md.Int32s(ggufKeyTokenType)
		if err != nil {
			return nil, wrap(err)
		}
		if len(types) != n {
			return nil, fmt.Errorf("tokenizer: %s has %d entries for %d tokens", ggufKeyTokenType, len(types), n)
		}
		v.Types = make([]TokenType, n)
		for i, t := range types {
			v.Types[i] = TokenType(t)
		}
	}
	// llama.cpp refuses a BPE vocabulary without merges and ignores merges
	// in a SentencePiece one; they are kept here so a round trip is exact.
	if _, ok := md.Get(ggufKeyMerges); ok || v.Model == ModelBPE {
		if v.Merges, err = md.Strings(ggufKeyMerges); err != nil {
			return nil, wrap(err)
		}
	}
	for _, s := range []struct {
		key string
		id  *int32
	}{{ggufKeyBOS, &v.BOS}, {ggufKeyEOS, &v.EOS}, {ggufKeyUNK, &v.UNK}, {ggufKeyPAD, &v.PAD}, {ggufKeyEOT, &v.EOT}} {
		if _, ok := md.Get(s.key); !ok {
			continue
		}
		id, err := md.Uint32(s.key)
		if err != nil {
			return nil, wrap(err)
		}
		if uint64(id) >= uint64(n) {
			return nil, fmt.Errorf("tokenizer: %s = %d is outside the vocabulary of %d tokens", s.key, id, n)
		}
		*s.id = int32(id)
	}
	v.AddBOS = v.Model == ModelSPM || ggufPreAddsBOS[v.Pre]
	v.AddSpacePrefix = v.Model == ModelSPM
	for _, f := range []struct {
		key string
		dst *bool
	}{{ggufKeyAddBOS, &v.AddBOS}, {ggufKeyAddEOS, &v.AddEOS}, {ggufKeyAddSpacePrefix, &v.AddSpacePrefix}} {
		if _, ok := md.Get(f.key); !ok {
			continue
		}
		if *f.dst, err = md.Bool(f.key); err != nil {
			return nil, wrap(err)
		}
	}
	if v.AddBOS && v.BOS == NoToken {
		if _, explicit := md.Get(ggufKeyAddBOS); explicit {
			return nil, fmt.Errorf("tokenizer: %s is true but %s is absent", ggufKeyAddBOS, ggufKeyBOS)
		}
		// A default cannot ask for a token the file does not name.
		v.AddBOS = false
	}
	if v.AddEOS && v.EOS == NoToken {
		return nil, fmt.Errorf("tokenizer: %s is true but %s is absent", ggufKeyAddEOS, ggufKeyEOS)
	}
	if _, ok := md.Get(ggufKeyChatTemplate); ok {
		if v.ChatTemplate, err = md.String(ggufKeyChatTemplate); err != nil {
			return nil, wrap(err)
		}
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// readScores reads tokenizer.ggml.scores, which llama.cpp accepts as
// float32 or int32.
func readScores(md gguf.Metadata, v *Vocab) error {
	raw, ok := md.Get(ggufKeyScores)
	if !ok {
		return nil
	}
	switch s := raw.(type) {
	case []float32:
		v.Scores = s
	case []int32:
		v.Scores = make([]float32, len(s))
		for i, x := range s {
			v.Scores[i] = float32(x)
		}
	default:
		return fmt.Errorf("tokenizer: %s holds %T, not []float32", ggufKeyScores, raw)
	}
	if len(v.Scores) != len(v.Tokens) {
		return fmt.Errorf("tokenizer: %s has %d entries for %d tokens", ggufKeyScores, len(v.Scores), len(v.Tokens))
	}
	return nil
}

// GGUFMetadata returns the vocabulary as GGUF metadata with llama.cpp's key
// names and types: token ids as uint32 (absent ones left out), flags as
// bool, token types as an int32 array, scores as a float32 array, tokens
// and merges as string arrays. The add_bos_token, add_eos_token and
// add_space_prefix flags are always written, so llama.cpp never falls back
// on its defaults; a BPE vocabulary always gets a merges array (llama.cpp
// refuses one without), and an empty Pre is written as "default". The
// slices are copies, so the caller may modify either side.
func (v *Vocab) GGUFMetadata() gguf.Metadata {
	pre := v.Pre
	if pre == "" {
		pre = "default"
	}
	md := gguf.Metadata{
		{Key: ggufKeyModel, Value: string(v.Model)},
		{Key: ggufKeyPre, Value: pre},
		{Key: ggufKeyTokens, Value: append([]string{}, v.Tokens...)},
	}
	if v.Scores != nil {
		md = append(md, gguf.KV{Key: ggufKeyScores, Value: append([]float32{}, v.Scores...)})
	}
	if v.Types != nil {
		types := make([]int32, len(v.Types))
		for i, t := range v.Types {
			types[i] = int32(t)
		}
		md = append(md, gguf.KV{Key: ggufKeyTokenType, Value: types})
	}
	if v.Merges != nil || v.Model == ModelBPE {
		md = append(md, gguf.KV{Key: ggufKeyMerges, Value: append([]string{}, v.Merges...)})
	}
	for _, s := range []struct {
		key string
		id  int32
	}{{ggufKeyBOS, v.BOS}, {ggufKeyEOS, v.EOS}, {ggufKeyUNK, v.UNK}, {ggufKeyPAD, v.PAD}, {ggufKeyEOT, v.EOT}} {
		if s.id >= 0 {
			md = append(md, gguf.KV{Key: s.key, Value: uint32(s.id)})
		}
	}
	md = append(md,
		gguf.KV{Key: ggufKeyAddBOS, Value: v.AddBOS},
		gguf.KV{Key: ggufKeyAddEOS, Value: v.AddEOS},
		gguf.KV{Key: ggufKeyAddSpacePrefix, Value: v.AddSpacePrefix},
	)
	if v.ChatTemplate != "" {
		md = append(md, gguf.KV{Key: ggufKeyChatTemplate, Value: v.ChatTemplate})
	}
	return md
}

// LoadGGUF builds the tokenizer of the GGUF file at path, reading only its
// metadata. It returns the errors of gguf.Open, VocabFromGGUF and New.
func LoadGGUF(path string) (Tokenizer, error) {
	v, err := loadGGUFVocab(path)
	if err != nil {
		return nil, err
	}
	return New(v)
}

// loadGGUFVocab reads the vocabulary from a GGUF file's metadata.
func loadGGUFVocab(path string) (*Vocab, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := VocabFromGGUF(f.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
