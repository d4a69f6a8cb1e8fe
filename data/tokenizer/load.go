package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Load reads a tokenizer in any supported format, chosen by path: a .gguf
// file (its tokenizer metadata), a Hugging Face tokenizer.json, a
// SentencePiece .model file, a llama2.c tokenizer .bin file, or a directory
// holding one of tokenizer.json, tokenizer.model or vocab.json with
// merges.txt (tried in that order). It returns an error naming the path
// when the format is unknown or the file is malformed.
func Load(path string) (Tokenizer, error) {
	v, err := LoadVocab(path)
	if err != nil {
		return nil, err
	}
	tok, err := New(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// LoadVocab reads the vocabulary of a tokenizer file or directory as Load
// does, without building the tokenizer.
func LoadVocab(path string) (*Vocab, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if info.IsDir() {
		for _, name := range []string{"tokenizer.json", "tokenizer.model"} {
			if p := filepath.Join(path, name); exists(p) {
				return LoadVocab(p)
			}
		}
		v, m := filepath.Join(path, "vocab.json"), filepath.Join(path, "merges.txt")
		if exists(v) && exists(m) {
			return LoadVocabMerges(v, m)
		}
		return nil, fmt.Errorf("tokenizer: %s holds none of tokenizer.json, tokenizer.model, or vocab.json with merges.txt", path)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case ext == ".gguf":
		return loadGGUFVocab(path)
	case ext == ".json":
		return LoadHFTokenizer(path)
	case ext == ".model":
		return LoadSentencePiece(path)
	case ext == ".bin":
		return LoadLlama2C(path)
	}
	return nil, fmt.Errorf("tokenizer: %s: unknown format (want .gguf, tokenizer.json, .model, llama2.c .bin, or a directory)", path)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
