package tokenizer

import (
	"fmt"
	"math"
	"os"
)

// This file reads SentencePiece's tokenizer.model: a serialized ModelProto
// (sentencepiece_model.proto). The schema is small and stable, so a minimal
// wire-format decoder here saves the project a protobuf dependency; only the
// fields a tokenizer needs are read and everything else is skipped.

// Field numbers of sentencepiece_model.proto that the loader reads.
const (
	spModelPieces     = 1 // ModelProto.pieces (repeated SentencePiece)
	spModelTrainer    = 2 // ModelProto.trainer_spec
	spModelNormalizer = 3 // ModelProto.normalizer_spec

	spPieceText  = 1 // SentencePiece.piece
	spPieceScore = 2 // SentencePiece.score (float)
	spPieceType  = 3 // SentencePiece.type (enum, NORMAL when absent)

	spTrainerModelType = 3  // TrainerSpec.model_type (UNIGRAM when absent)
	spTrainerUnkID     = 40 // TrainerSpec.unk_id (0 when absent)
	spTrainerBosID     = 41 // TrainerSpec.bos_id (1 when absent)
	spTrainerEosID     = 42 // TrainerSpec.eos_id (2 when absent)
	spTrainerPadID     = 43 // TrainerSpec.pad_id (-1 when absent)

	spNormalizerAddDummyPrefix = 3 // NormalizerSpec.add_dummy_prefix (true when absent)
)

// TrainerSpec.ModelType values.
const (
	spUnigram = 1
	spBPE     = 2
	spWord    = 3
	spChar    = 4
)

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// maxGroupDepth bounds the nesting of (deprecated) groups the decoder will
// skip, so that a hostile file cannot recurse without limit.
const maxGroupDepth = 64

// wireError is a malformed-protobuf error at a byte offset of the file.
type wireError struct {
	off int
	msg string
}

func (e *wireError) Error() string {
	return fmt.Sprintf("malformed protobuf at byte %d: %s", e.off, e.msg)
}

// pbReader decodes protobuf wire format from buf. base is the file offset of
// buf[0], so that errors inside nested messages still name file offsets.
type pbReader struct {
	buf  []byte
	pos  int
	base int
}

func (r *pbReader) fail(at int, format string, args ...any) error {
	return &wireError{off: r.base + at, msg: fmt.Sprintf(format, args...)}
}

func (r *pbReader) done() bool { return r.pos >= len(r.buf) }

// offset returns the file offset of the next unread byte.
func (r *pbReader) offset() int { return r.base + r.pos }

// varint reads a base-128 varint of at most ten bytes.
func (r *pbReader) varint() (uint64, error) {
	start := r.pos
	var x uint64
	for shift := uint(0); ; shift += 7 {
		if r.pos >= len(r.buf) {
			return 0, r.fail(start, "varint runs past the end of the data")
		}
		b := r.buf[r.pos]
		r.pos++
		if shift == 63 && b > 1 {
			// The tenth byte may only carry the top bit of a uint64.
			return 0, r.fail(start, "varint overflows 64 bits")
		}
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x, nil
		}
	}
}

// tag reads a field key and returns its field number and wire type.
func (r *pbReader) tag() (field int, wire int, err error) {
	start := r.pos
	k, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	field, wire = int(k>>3), int(k&7)
	if field == 0 || k>>3 > 1<<29-1 {
		return 0, 0, r.fail(start, "invalid field number %d", k>>3)
	}
	return field, wire, nil
}

// bytes reads a length-delimited value and returns it with its file offset.
func (r *pbReader) bytes() ([]byte, int, error) {
	start := r.pos
	n, err := r.varint()
	if err != nil {
		return nil, 0, err
	}
	if n > uint64(len(r.buf)-r.pos) {
		return nil, 0, r.fail(start, "length %d runs past the end of the data (%d bytes left)", n, len(r.buf)-r.pos)
	}
	off := r.offset()
	b := r.buf[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, off, nil
}

// fixed reads n little-endian bytes (4 or 8).
func (r *pbReader) fixed(n int) (uint64, error) {
	if len(r.buf)-r.pos < n {
		return 0, r.fail(r.pos, "%d-byte fixed value runs past the end of the data", n)
	}
	var x uint64
	for i := n - 1; i >= 0; i-- {
		x = x<<8 | uint64(r.buf[r.pos+i])
	}
	r.pos += n
	return x, nil
}

// skip passes over the value of a field the loader does not read.
func (r *pbReader) skip(field, wire, depth int) error {
	switch wire {
	case wireVarint:
		_, err := r.varint()
		return err
	case wireFixed64:
		_, err := r.fixed(8)
		return err
	case wireBytes:
		_, _, err := r.bytes()
		return err
	case wireFixed32:
		_, err := r.fixed(4)
		return err
	case wireStartGroup:
		if depth >= maxGroupDepth {
			return r.fail(r.pos, "groups nested deeper than %d", maxGroupDepth)
		}
		for {
			at := r.pos
			if r.done() {
				return r.fail(at, "group %d is not closed before the end of the data", field)
			}
			f, w, err := r.tag()
			if err != nil {
				return err
			}
			if w == wireEndGroup {
				if f != field {
					return r.fail(at, "group %d closed by end of group %d", field, f)
				}
				return nil
			}
			if err := r.skip(f, w, depth+1); err != nil {
				return err
			}
		}
	case wireEndGroup:
		return r.fail(r.pos, "end of group %d without a start", field)
	default:
		return r.fail(r.pos, "invalid wire type %d for field %d", wire, field)
	}
}

// want returns an error unless a known field has the wire type its schema
// gives it: a mismatch means the bytes are not a ModelProto.
func (r *pbReader) want(at, field, wire, expect int) error {
	if wire != expect {
		return r.fail(at, "field %d has wire type %d, want %d", field, wire, expect)
	}
	return nil
}

// int32Value reads a varint holding a protobuf int32, which negative values
// sign-extend to ten bytes.
func (r *pbReader) int32Value() (int32, error) {
	at := r.pos
	x, err := r.varint()
	if err != nil {
		return 0, err
	}
	v := int64(x)
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, r.fail(at, "value %d does not fit in int32", v)
	}
	return int32(v), nil
}

// spPiece is one ModelProto.pieces entry and the file offset of its message.
type spPiece struct {
	text  string
	score float32
	typ   int32
	off   int
}

// spModel holds the ModelProto fields the loader reads, with the schema's
// defaults for absent ones.
type spModel struct {
	pieces         []spPiece
	modelType      int32
	unk, bos, eos  int32
	pad            int32
	addDummyPrefix bool
	// hasTrainer and hasNormalizer record whether the specs were present:
	// SentencePiece always writes both, and a file cut off between
	// top-level fields would otherwise parse as a valid, shorter message.
	hasTrainer, hasNormalizer bool
}

// parseModelProto decodes a serialized ModelProto.
func parseModelProto(data []byte) (*spModel, error) {
	m := &spModel{modelType: spUnigram, unk: 0, bos: 1, eos: 2, pad: -1, addDummyPrefix: true}
	r := &pbReader{buf: data}
	for !r.done() {
		at := r.pos
		field, wire, err := r.tag()
		if err != nil {
			return nil, err
		}
		switch field {
		case spModelPieces, spModelTrainer, spModelNormalizer:
			if err := r.want(at, field, wire, wireBytes); err != nil {
				return nil, err
			}
			b, off, err := r.bytes()
			if err != nil {
				return nil, err
			}
			sub := &pbReader{buf: b, base: off}
			switch field {
			case spModelPieces:
				p, err := parsePiece(sub)
				if err != nil {
					return nil, err
				}
				m.pieces = append(m.pieces, p)
			case spModelTrainer:
				m.hasTrainer = true
				err = parseTrainerSpec(sub, m)
			case spModelNormalizer:
				m.hasNormalizer = true
				err = parseNormalizerSpec(sub, m)
			}
			if err != nil {
				return nil, err
			}
		default:
			if err := r.skip(field, wire, 0); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func parsePiece(r *pbReader) (spPiece, error) {
	p := spPiece{typ: int32(TypeNormal), off: r.base}
	for !r.done() {
		at := r.pos
		field, wire, err := r.tag()
		if err != nil {
			return p, err
		}
		switch field {
		case spPieceText:
			if err := r.want(at, field, wire, wireBytes); err != nil {
				return p, err
			}
			b, _, err := r.bytes()
			if err != nil {
				return p, err
			}
			p.text = string(b)
		case spPieceScore:
			if err := r.want(at, field, wire, wireFixed32); err != nil {
				return p, err
			}
			x, err := r.fixed(4)
			if err != nil {
				return p, err
			}
			p.score = math.Float32frombits(uint32(x))
		case spPieceType:
			if err := r.want(at, field, wire, wireVarint); err != nil {
				return p, err
			}
			if p.typ, err = r.int32Value(); err != nil {
				return p, err
			}
		default:
			if err := r.skip(field, wire, 0); err != nil {
				return p, err
			}
		}
	}
	return p, nil
}

func parseTrainerSpec(r *pbReader, m *spModel) error {
	for !r.done() {
		at := r.pos
		field, wire, err := r.tag()
		if err != nil {
			return err
		}
		var dst *int32
		switch field {
		case spTrainerModelType:
			dst = &m.modelType
		case spTrainerUnkID:
			dst = &m.unk
		case spTrainerBosID:
			dst = &m.bos
		case spTrainerEosID:
			dst = &m.eos
		case spTrainerPadID:
			dst = &m.pad
		default:
			if err := r.skip(field, wire, 0); err != nil {
				return err
			}
			continue
		}
		if err := r.want(at, field, wire, wireVarint); err != nil {
			return err
		}
		if *dst, err = r.int32Value(); err != nil {
			return err
		}
	}
	return nil
}

func parseNormalizerSpec(r *pbReader, m *spModel) error {
	for !r.done() {
		at := r.pos
		field, wire, err := r.tag()
		if err != nil {
			return err
		}
		if field != spNormalizerAddDummyPrefix {
			if err := r.skip(field, wire, 0); err != nil {
				return err
			}
			continue
		}
		if err := r.want(at, field, wire, wireVarint); err != nil {
			return err
		}
		x, err := r.varint()
		if err != nil {
			return err
		}
		m.addDummyPrefix = x != 0
	}
	return nil
}

// vocab checks the decoded model the way SentencePiece does when it loads
// one and turns it into a Vocab.
func (m *spModel) vocab() (*Vocab, error) {
	if !m.hasTrainer || !m.hasNormalizer {
		return nil, fmt.Errorf("no trainer_spec or no normalizer_spec (fields 2 and 3): the file is truncated or not a SentencePiece model")
	}
	switch m.modelType {
	case spBPE:
	case spUnigram:
		// llama.cpp runs unigram models (T5 and friends) through its
		// separate UGM tokenizer, whose Viterbi search this package does
		// not implement; the SPM merge loop would give different ids.
		return nil, fmt.Errorf("model_type is UNIGRAM (the default when trainer_spec omits it); only BPE (model_type 2) SentencePiece models are supported")
	case spWord, spChar:
		return nil, fmt.Errorf("model_type %d (WORD or CHAR) is not supported; only BPE (model_type 2) SentencePiece models are", m.modelType)
	default:
		return nil, fmt.Errorf("unknown model_type %d; only BPE (model_type 2) is supported", m.modelType)
	}
	n := len(m.pieces)
	if n == 0 {
		return nil, fmt.Errorf("the model has no pieces")
	}
	v := &Vocab{
		Model:  ModelSPM,
		Tokens: make([]string, n),
		Scores: make([]float32, n),
		Types:  make([]TokenType, n),
		EOT:    NoToken,
		// llama.cpp reads add_dummy_prefix the same way when it converts
		// a tokenizer.model to GGUF.
		AddSpacePrefix: m.addDummyPrefix,
	}
	seen := make(map[string]int, n)
	for i, p := range m.pieces {
		if p.text == "" {
			return nil, fmt.Errorf("piece %d (message at byte %d) is empty", i, p.off)
		}
		if j, dup := seen[p.text]; dup {
			return nil, fmt.Errorf("piece %d (message at byte %d) repeats piece %d, %q", i, p.off, j, p.text)
		}
		seen[p.text] = i
		// SentencePiece numbers its types as llama.cpp does, so they carry
		// over unchanged.
		if p.typ < int32(TypeNormal) || p.typ > int32(TypeByte) {
			return nil, fmt.Errorf("piece %d (message at byte %d) has type %d, not a SentencePiece type (1-6)", i, p.off, p.typ)
		}
		v.Tokens[i], v.Scores[i], v.Types[i] = p.text, p.score, TokenType(p.typ)
	}
	ids := []struct {
		name     string
		id       int32
		dst      *int32
		required bool
	}{
		{"unk_id", m.unk, &v.UNK, true},
		{"bos_id", m.bos, &v.BOS, false},
		{"eos_id", m.eos, &v.EOS, false},
		{"pad_id", m.pad, &v.PAD, false},
	}
	for _, s := range ids {
		if s.id < NoToken || int(s.id) >= n || (s.required && s.id == NoToken) {
			return nil, fmt.Errorf("trainer_spec %s %d is outside the %d pieces", s.name, s.id, n)
		}
		*s.dst = s.id
	}
	// SentencePiece's own encoders and Llama 2 add BOS but not EOS.
	v.AddBOS = v.BOS != NoToken
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// LoadSentencePiece reads a SentencePiece tokenizer.model (a serialized
// ModelProto, as Llama 2 and TinyLlama ship) into a Vocab for Model "llama",
// with the piece scores and types, the unk/bos/eos/pad ids of its
// trainer_spec, AddBOS set when there is a BOS, and AddSpacePrefix from its
// normalizer_spec's add_dummy_prefix. The normalizer's other settings
// (character maps, whitespace folding) are ignored, as llama.cpp ignores
// them. It returns an error naming the file when the file cannot be read, an
// error naming the file and byte offset when the protobuf is malformed or
// truncated, an error when trainer_spec or normalizer_spec is missing (which
// is how a file cut off between top-level fields shows), and an error when
// the model is not a BPE model (unigram models need llama.cpp's separate UGM
// algorithm) or its pieces or ids are inconsistent.
func LoadSentencePiece(path string) (*Vocab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	m, err := parseModelProto(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	v, err := m.vocab()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return v, nil
}
