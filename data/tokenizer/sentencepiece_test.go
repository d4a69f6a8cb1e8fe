package tokenizer

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/internal/shareddata"
)

// spPB builds protobuf wire format for tests.
type spPB []byte

func (p spPB) uvarint(x uint64) spPB { return binary.AppendUvarint(p, x) }

func (p spPB) key(field, wire int) spPB { return p.uvarint(uint64(field)<<3 | uint64(wire)) }

func (p spPB) varint(field int, x int64) spPB { return p.key(field, wireVarint).uvarint(uint64(x)) }

func (p spPB) bytes(field int, b []byte) spPB {
	return append(p.key(field, wireBytes).uvarint(uint64(len(b))), b...)
}

func (p spPB) fixed32(field int, x uint32) spPB {
	return binary.LittleEndian.AppendUint32(p.key(field, wireFixed32), x)
}

func (p spPB) fixed64(field int, x uint64) spPB {
	return binary.LittleEndian.AppendUint64(p.key(field, wireFixed64), x)
}

// spPiece encodes a SentencePiece message; typ 0 leaves the type out.
func spPieceMsg(text string, score float32, typ int64) spPB {
	p := spPB(nil).bytes(spPieceText, []byte(text)).fixed32(spPieceScore, math.Float32bits(score))
	if typ != 0 {
		p = p.varint(spPieceType, typ)
	}
	return p
}

// spModelBytes encodes a small valid BPE model, with extra bytes appended
// to the trainer spec and to the top level.
func spModelBytes(trainerExtra, topExtra spPB) []byte {
	var p spPB
	for _, pc := range []spPB{
		spPieceMsg("<unk>", 0, 2),
		spPieceMsg("<s>", 0, 3),
		spPieceMsg("</s>", 0, 3),
		spPieceMsg("a", -1, 0),
		spPieceMsg("▁a", -2, 1),
	} {
		p = p.bytes(spModelPieces, pc)
	}
	trainer := spPB(nil).varint(spTrainerModelType, spBPE)
	trainer = append(trainer, trainerExtra...)
	p = p.bytes(spModelTrainer, trainer)
	p = p.bytes(spModelNormalizer, spPB(nil).bytes(1, []byte("identity")).varint(spNormalizerAddDummyPrefix, 0))
	return append(p, topExtra...)
}

func spWriteTemp(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokenizer.model")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSentencePieceLlama2(t *testing.T) {
	v, err := LoadSentencePiece(shareddata.Path(t, spmLlama2))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"model", v.Model, ModelSPM},
		{"size", len(v.Tokens), 32000},
		{"scores", len(v.Scores), 32000},
		{"unk", v.UNK, int32(0)},
		{"bos", v.BOS, int32(1)},
		{"eos", v.EOS, int32(2)},
		{"pad", v.PAD, NoToken},
		{"eot", v.EOT, NoToken},
		{"add bos", v.AddBOS, true},
		{"add eos", v.AddEOS, false},
		{"space prefix", v.AddSpacePrefix, true},
		{"token 0", v.Tokens[0], "<unk>"},
		{"token 1", v.Tokens[1], "<s>"},
		{"type 0", v.Types[0], TypeUnknown},
		{"type 1", v.Types[1], TypeControl},
		{"type 2", v.Types[2], TypeControl},
		{"token 3", v.Tokens[3], "<0x00>"},
		{"type 3", v.Types[3], TypeByte},
		{"token 258", v.Tokens[258], "<0xFF>"},
		{"token 259", v.Tokens[259], "▁▁"},
		{"type 259", v.Types[259], TypeNormal},
		{"score 259", v.Scores[259], float32(-1e9)},
		{"token 15043", v.Tokens[15043], "▁Hello"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadSentencePieceSmall(t *testing.T) {
	cases := []struct {
		name           string
		trainer, top   spPB
		wantPad        int32
		wantBOS        int32
		wantAddBOS     bool
		wantTokenCount int
	}{
		{"plain", nil, nil, NoToken, 1, true, 5},
		{"pad id set", spPB(nil).varint(spTrainerPadID, 3), nil, 3, 1, true, 5},
		{"negative id as ten-byte varint", spPB(nil).varint(spTrainerBosID, -1), nil, NoToken, NoToken, false, 5},
		{"unknown fields of every wire type skipped",
			spPB(nil).varint(99, 7).fixed32(98, 1).fixed64(97, 2).bytes(96, []byte("x")).
				key(95, wireStartGroup).varint(1, 1).key(94, wireStartGroup).key(94, wireEndGroup).key(95, wireEndGroup),
			spPB(nil).varint(77, 1).bytes(4, []byte{0x08, 0x01}).fixed64(78, 9),
			NoToken, 1, true, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := LoadSentencePiece(spWriteTemp(t, spModelBytes(c.trainer, c.top)))
			if err != nil {
				t.Fatal(err)
			}
			if v.PAD != c.wantPad || v.BOS != c.wantBOS || v.AddBOS != c.wantAddBOS || len(v.Tokens) != c.wantTokenCount {
				t.Errorf("pad %d bos %d addBOS %v tokens %d; want %d %d %v %d",
					v.PAD, v.BOS, v.AddBOS, len(v.Tokens), c.wantPad, c.wantBOS, c.wantAddBOS, c.wantTokenCount)
			}
			if v.AddSpacePrefix {
				t.Error("add_dummy_prefix = false was not read")
			}
			if !slices.Equal(v.Types, []TokenType{TypeUnknown, TypeControl, TypeControl, TypeNormal, TypeNormal}) {
				t.Errorf("types %v", v.Types)
			}
			if v.Tokens[4] != "▁a" || v.Scores[4] != -2 {
				t.Errorf("token 4 = %q score %v", v.Tokens[4], v.Scores[4])
			}
			tk, err := New(v)
			if err != nil {
				t.Fatal(err)
			}
			if got := tk.Encode("a a", EncodeOptions{}); !slices.Equal(got, []int32{3, 4}) {
				t.Errorf("Encode(\"a a\") = %v, want [3 4]", got)
			}
		})
	}
}

func TestLoadSentencePieceBad(t *testing.T) {
	piece := func(p spPB) []byte { return spPB(nil).bytes(spModelPieces, p) }
	valid := spModelBytes(nil, nil)
	// The first piece message starts at byte 2, after its key and length.
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated key", []byte{0x80}, "at byte 0: varint runs past the end"},
		{"varint overflow", append([]byte{0x48}, slices.Repeat([]byte{0xff}, 10)...), "at byte 1: varint overflows"},
		{"length past end", []byte{0x0a, 0x05, 'a'}, "at byte 1: length 5 runs past the end"},
		{"field number zero", []byte{0x00}, "at byte 0: invalid field number 0"},
		{"wire type 6", spPB(nil).key(9, 6), "invalid wire type 6"},
		{"end group without start", spPB(nil).key(9, wireEndGroup), "end of group 9 without a start"},
		{"group left open", spPB(nil).key(9, wireStartGroup).varint(1, 1), "group 9 is not closed"},
		{"group closed by another", spPB(nil).key(9, wireStartGroup).key(8, wireEndGroup), "closed by end of group 8"},
		{"groups too deep", slices.Repeat([]byte(spPB(nil).key(9, wireStartGroup)), 100), "nested deeper"},
		{"fixed32 cut short", append(spPB(nil).key(9, wireFixed32), 1, 2), "4-byte fixed value runs past"},
		{"pieces as varint", spPB(nil).varint(spModelPieces, 1), "at byte 0: field 1 has wire type 0, want 2"},
		{"score as varint", piece(spPB(nil).bytes(spPieceText, []byte("a")).varint(spPieceScore, 1)), "at byte 5: field 2 has wire type 0, want 5"},
		{"score cut short inside a piece", piece(append(spPB(nil).key(spPieceScore, wireFixed32), 0)), "at byte 3: 4-byte fixed value"},
		{"id beyond int32", append(piece(spPieceMsg("a", 0, 2)), spPB(nil).bytes(spModelTrainer, spPB(nil).varint(spTrainerUnkID, 1<<40))...), "does not fit in int32"},
		{"no trainer spec", piece(spPieceMsg("a", 0, 2)), "no trainer_spec"},
		{"unigram", spModelBytes(spPB(nil).varint(spTrainerModelType, spUnigram), nil), "UNIGRAM"},
		{"char model", spModelBytes(spPB(nil).varint(spTrainerModelType, spChar), nil), "WORD or CHAR"},
		{"bad model type", spModelBytes(spPB(nil).varint(spTrainerModelType, 9), nil), "unknown model_type 9"},
		{"unk out of range", spModelBytes(spPB(nil).varint(spTrainerUnkID, 5), nil), "unk_id 5"},
		{"no unk", spModelBytes(spPB(nil).varint(spTrainerUnkID, -1), nil), "unk_id -1"},
		{"eos out of range", spModelBytes(spPB(nil).varint(spTrainerEosID, 99), nil), "eos_id 99"},
		{"bad piece type", spModelBytes(nil, piece(spPieceMsg("b", 0, 7))), "has type 7"},
		{"empty piece", spModelBytes(nil, piece(spPieceMsg("", 0, 1))), "is empty"},
		{"duplicate piece", spModelBytes(nil, piece(spPieceMsg("a", 0, 1))), `repeats piece 3, "a"`},
		{"no pieces", valid[bytesAfterPieces(valid):], "no pieces"},
		{"empty file", nil, "no trainer_spec"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := spWriteTemp(t, c.data)
			v, err := LoadSentencePiece(path)
			if err == nil {
				t.Fatalf("loaded %d tokens, want an error containing %q", len(v.Tokens), c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q, want one naming the file and containing %q", err, c.want)
			}
		})
	}
	if _, err := LoadSentencePiece(filepath.Join(t.TempDir(), "missing.model")); err == nil {
		t.Error("a missing file loaded")
	}
}

// bytesAfterPieces returns the offset of the first top-level field of data
// that is not a piece.
func bytesAfterPieces(data []byte) int {
	r := &pbReader{buf: data}
	for !r.done() {
		at := r.pos
		f, w, err := r.tag()
		if err != nil || f != spModelPieces {
			return at
		}
		if err := r.skip(f, w, 0); err != nil {
			return at
		}
	}
	return len(data)
}

// TestLoadSentencePieceTruncated cuts the real model short at many lengths:
// every cut must be an error, never a panic or a silently shorter vocabulary.
func TestLoadSentencePieceTruncated(t *testing.T) {
	data, err := os.ReadFile(shareddata.Path(t, spmLlama2))
	if err != nil {
		t.Fatal(err)
	}
	var cuts []int
	for n := 0; n < len(data); n += 9973 {
		cuts = append(cuts, n)
	}
	for n := max(0, len(data)-300); n < len(data); n++ {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		if _, err := parseModelProtoVocab(data[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes loaded without error", n, len(data))
		}
	}
	// Through the file API too, so that the error names the file.
	path := spWriteTemp(t, data[:len(data)-3])
	if _, err := LoadSentencePiece(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "byte") {
		t.Errorf("truncated file: error %v, want one naming the file and a byte offset", err)
	}
}

func parseModelProtoVocab(data []byte) (*Vocab, error) {
	m, err := parseModelProto(data)
	if err != nil {
		return nil, err
	}
	return m.vocab()
}

func TestLoadSentencePieceRejectsGGUF(t *testing.T) {
	path := shareddata.Path(t, spmGGUFVocab)
	if _, err := LoadSentencePiece(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a GGUF file: error %v, want one naming the file", err)
	}
}

// FuzzParseModelProto checks that no input makes the decoder panic.
func FuzzParseModelProto(f *testing.F) {
	f.Add(spModelBytes(nil, nil))
	f.Add([]byte{0x0a, 0x80})
	f.Add(spModelBytes(spPB(nil).key(9, wireStartGroup), nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := parseModelProtoVocab(data); err == nil {
			if _, err := New(v); err != nil {
				t.Fatalf("a loaded model does not build: %v", err)
			}
		}
	})
}

// spLlama2CBytes encodes pieces in the llama2.c tokenizer format.
func spLlama2CBytes(maxLen int32, pieces []string, scores []float32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
	for i, p := range pieces {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scores[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func TestLoadLlama2C(t *testing.T) {
	v, err := LoadLlama2C(shareddata.Path(t, "models/aidreams260K/tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"size", len(v.Tokens), 512},
		{"token 0", v.Tokens[0], "<unk>"},
		{"token 1", v.Tokens[1], "<s>"},
		{"token 2", v.Tokens[2], "</s>"},
		{"types 0-2", [3]TokenType(v.Types[:3]), [3]TokenType{TypeUnknown, TypeControl, TypeControl}},
		{"token 3", v.Tokens[3], "<0x00>"},
		{"type 3", v.Types[3], TypeByte},
		{"type 258", v.Types[258], TypeByte},
		{"token 262", v.Tokens[262], "▁a"},
		{"score 262", v.Scores[262], float32(-3)},
		{"type 262", v.Types[262], TypeNormal},
		{"ids", [3]int32{v.UNK, v.BOS, v.EOS}, [3]int32{0, 1, 2}},
		{"space prefix", v.AddSpacePrefix, true},
		{"add bos", v.AddBOS, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	tk, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(shareddata.Path(t, spmShakespare))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int32{}
	for i, s := range v.Tokens {
		ids[s] = int32(i)
	}
	lines := strings.Split(string(data), "\n")[:3000]
	lines = append(lines, "Once upon a time, there was a little girl.", "ça coûte 5 €", "日本 🦙", "")
	tokens, bytes := 0, 0
	for _, line := range lines {
		got := tk.Encode(line, EncodeOptions{})
		if line != "" {
			if want := spmNaiveEncode(v, ids, line); !slices.Equal(got, want) {
				t.Fatalf("Encode(%q) = %v, naive merge gives %v", line, got, want)
			}
		}
		if back := tk.Decode(got, DecodeOptions{}); back != line {
			t.Fatalf("Decode(Encode(%q)) = %q", line, back)
		}
		withBOS := tk.Encode(line, EncodeOptions{AddSpecial: true})
		if withBOS[0] != 1 || !slices.Equal(withBOS[1:], got) {
			t.Fatalf("Encode(%q) with AddSpecial = %v, want BOS then %v", line, withBOS, got)
		}
		tokens += len(got)
		bytes += len(line)
	}
	if tokens >= bytes {
		t.Errorf("%d tokens for %d bytes: the merges do not compress", tokens, bytes)
	}
}

func TestLoadLlama2CBad(t *testing.T) {
	three := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	zero := []float32{0, 0, 0, 0}
	cut := spLlama2CBytes(8, append(three, "abcd"), zero)
	negative := spLlama2CBytes(8, three, zero)
	negative = binary.LittleEndian.AppendUint32(negative, 0)
	negative = binary.LittleEndian.AppendUint32(negative, math.MaxUint32)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"short header", []byte{1, 0, 0}, "too short"},
		{"max length zero", spLlama2CBytes(0, three, zero), "not positive"},
		{"two pieces", spLlama2CBytes(8, three[:2], zero), "2 pieces"},
		{"piece longer than max", spLlama2CBytes(5, three, zero), "piece 2 at byte 34: length 6 is outside"},
		{"negative length", negative, "length -1 is outside"},
		{"bytes cut short", cut[:len(cut)-2], "piece 3 at byte 48: length 4 runs past the end (2 bytes left)"},
		{"header cut short", cut[:len(cut)-8], "piece 3 at byte 44: 4 bytes left"},
		{"nan score", spLlama2CBytes(8, three, []float32{0, float32(math.NaN()), 0}), "not finite"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := spWriteTemp(t, c.data)
			v, err := LoadLlama2C(path)
			if err == nil {
				t.Fatalf("loaded %d tokens, want an error containing %q", len(v.Tokens), c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q, want one naming the file and containing %q", err, c.want)
			}
		})
	}
	if _, err := LoadLlama2C(filepath.Join(t.TempDir(), "missing.bin")); err == nil {
		t.Error("a missing file loaded")
	}
}
