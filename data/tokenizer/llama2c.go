package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
)

// The llama2.c tokenizer file (tokenizer.bin, tok512.bin, ...) is what
// llama2.c's tokenizer.py exports from a SentencePiece model: an int32
// max_token_length, then per piece a float32 score, an int32 byte length and
// the bytes, all little-endian, with no piece count (llama2.c takes it from
// the checkpoint). The exporter rewrote pieces for printing: "▁" became a
// space and BOS and EOS became "\n<s>\n" and "\n</s>\n"; LoadLlama2C undoes
// both so that the vocabulary is SentencePiece's again.

// LoadLlama2C reads a llama2.c tokenizer file into a SentencePiece-style
// Vocab for Model "llama": ids 0, 1 and 2 are <unk> (unknown), <s> (BOS,
// added by AddSpecial) and </s> (EOS), pieces of the form <0xXX> are byte
// tokens, every other piece is normal with its stored score, and
// AddSpacePrefix is set, as in the Llama 2 models llama2.c trains. It returns
// an error naming the file when the file cannot be read, and an error naming
// the file and byte offset when the data is truncated, a length is negative,
// exceeds max_token_length or runs past the end, a score is not finite, or
// the file holds fewer than three pieces.
func LoadLlama2C(path string) (*Vocab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	v, err := parseLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return v, nil
}

func parseLlama2C(data []byte) (*Vocab, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%d bytes is too short for the max_token_length header", len(data))
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen <= 0 {
		return nil, fmt.Errorf("max_token_length %d at byte 0 is not positive", maxLen)
	}
	v := &Vocab{
		Model:          ModelSPM,
		BOS:            1,
		EOS:            2,
		UNK:            0,
		PAD:            NoToken,
		EOT:            NoToken,
		AddBOS:         true,
		AddSpacePrefix: true,
	}
	for off := 4; off < len(data); {
		i := len(v.Tokens)
		if len(data)-off < 8 {
			return nil, fmt.Errorf("piece %d at byte %d: %d bytes left, too few for its score and length", i, off, len(data)-off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int32(binary.LittleEndian.Uint32(data[off+4:]))
		if math.IsNaN(float64(score)) || math.IsInf(float64(score), 0) {
			return nil, fmt.Errorf("piece %d at byte %d: score %v is not finite", i, off, score)
		}
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("piece %d at byte %d: length %d is outside 0..max_token_length %d", i, off+4, n, maxLen)
		}
		off += 8
		if int(n) > len(data)-off {
			return nil, fmt.Errorf("piece %d at byte %d: length %d runs past the end (%d bytes left)", i, off-4, n, len(data)-off)
		}
		text := string(data[off : off+int(n)])
		off += int(n)
		typ := TypeNormal
		switch i {
		case 0:
			text, typ = "<unk>", TypeUnknown
		case 1:
			text, typ = "<s>", TypeControl
		case 2:
			text, typ = "</s>", TypeControl
		default:
			if _, ok := spmParseByteToken(text); ok {
				typ = TypeByte
			} else {
				// SentencePiece pieces never hold a raw space (they
				// escape it), so every space here was a "▁".
				text = strings.ReplaceAll(text, " ", spmSpace)
			}
		}
		v.Tokens = append(v.Tokens, text)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	if len(v.Tokens) < 3 {
		return nil, fmt.Errorf("%d pieces, fewer than the three of <unk>, <s> and </s>", len(v.Tokens))
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return v, nil
}
