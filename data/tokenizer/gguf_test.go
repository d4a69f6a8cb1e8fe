package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minnowml/minnow/gguf"
)

// ggufVocabPath returns the path of one of llama.cpp's vocabulary files in
// the shared data, skipping when MINNOW_DATA is unset and failing when the
// file is missing.
func ggufVocabPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		t.Skip("MINNOW_DATA is not set; skipping the test that needs llama.cpp's vocabulary files")
	}
	path := filepath.Join(dir, "llama-vocab", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("MINNOW_DATA is set but %s is missing: %v", path, err)
	}
	return path
}

func ggufVocab(t *testing.T, name string) *Vocab {
	t.Helper()
	f, err := gguf.Open(ggufVocabPath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := VocabFromGGUF(f.Metadata)
	if err != nil {
		t.Fatalf("VocabFromGGUF(%s): %v", name, err)
	}
	return v
}

func TestVocabFromGGUFRealFiles(t *testing.T) {
	tests := []struct {
		file                        string
		model                       Model
		pre                         string
		tokens, merges              int
		scores                      bool
		bos, eos, unk, pad, eot     int32
		addBOS, addEOS, spacePrefix bool
		sampleID                    int
		sample                      string
		sampleType                  TokenType
	}{
		{"ggml-vocab-gpt-2.gguf", ModelBPE, "gpt-2", 50257, 50000, false,
			50256, 50256, NoToken, NoToken, NoToken, false, false, false, 50256, "<|endoftext|>", TypeControl},
		// The file has no add_bos_token: llama.cpp's default for llama-bpe
		// is to add BOS.
		{"ggml-vocab-llama-bpe.gguf", ModelBPE, "llama-bpe", 128256, 280147, false,
			128000, 128001, NoToken, NoToken, NoToken, true, false, false, 128000, "<|begin_of_text|>", TypeControl},
		// The file has no add_space_prefix: SentencePiece defaults to true.
		{"ggml-vocab-llama-spm.gguf", ModelSPM, "default", 32000, 0, true,
			1, 2, 0, NoToken, NoToken, true, false, true, 1, "<s>", TypeControl},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			v := ggufVocab(t, tt.file)
			if v.Model != tt.model || v.Pre != tt.pre {
				t.Errorf("model %q pre %q, want %q %q", v.Model, v.Pre, tt.model, tt.pre)
			}
			if len(v.Tokens) != tt.tokens || len(v.Merges) != tt.merges || len(v.Types) != tt.tokens {
				t.Errorf("%d tokens, %d merges, %d types; want %d, %d, %d",
					len(v.Tokens), len(v.Merges), len(v.Types), tt.tokens, tt.merges, tt.tokens)
			}
			if (v.Scores != nil) != tt.scores || (tt.scores && len(v.Scores) != tt.tokens) {
				t.Errorf("%d scores (nil %v), want scores %v", len(v.Scores), v.Scores == nil, tt.scores)
			}
			if v.Merges != nil && tt.merges == 0 {
				t.Errorf("SentencePiece vocabulary has merges")
			}
			got := []int32{v.BOS, v.EOS, v.UNK, v.PAD, v.EOT}
			want := []int32{tt.bos, tt.eos, tt.unk, tt.pad, tt.eot}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("bos/eos/unk/pad/eot = %v, want %v", got, want)
			}
			if v.AddBOS != tt.addBOS || v.AddEOS != tt.addEOS || v.AddSpacePrefix != tt.spacePrefix {
				t.Errorf("add bos %v eos %v space prefix %v; want %v %v %v",
					v.AddBOS, v.AddEOS, v.AddSpacePrefix, tt.addBOS, tt.addEOS, tt.spacePrefix)
			}
			if v.Tokens[tt.sampleID] != tt.sample || v.Types[tt.sampleID] != tt.sampleType {
				t.Errorf("token %d = %q type %d, want %q type %d",
					tt.sampleID, v.Tokens[tt.sampleID], v.Types[tt.sampleID], tt.sample, tt.sampleType)
			}
		})
	}
}

// fullVocab sets every field, so a round trip that drops one shows.
func fullVocab() *Vocab {
	return &Vocab{
		Model:          ModelSPM,
		Pre:            "default",
		Tokens:         []string{"<unk>", "<s>", "</s>", "<pad>", "<|eot|>", "▁a", "b", "<0x0A>"},
		Scores:         []float32{0, 0, 0, 0, 0, -1.5, -2.25, 0},
		Types:          []TokenType{TypeUnknown, TypeControl, TypeControl, TypeControl, TypeUserDefined, TypeNormal, TypeUnused, TypeByte},
		Merges:         []string{"▁ a"},
		BOS:            1,
		EOS:            2,
		UNK:            0,
		PAD:            3,
		EOT:            4,
		AddBOS:         false,
		AddEOS:         true,
		AddSpacePrefix: false,
		ChatTemplate:   "{% for m in messages %}{{ m['content'] }}{% endfor %}",
	}
}

// bpeVocab is a small byte-level BPE vocabulary with no optional fields.
func bpeVocab() *Vocab {
	return &Vocab{
		Model:  ModelBPE,
		Pre:    "gpt-2",
		Tokens: []string{"a", "b", "ab", "<|endoftext|>"},
		Merges: []string{"a b"},
		BOS:    NoToken, EOS: 3, UNK: NoToken, PAD: NoToken, EOT: NoToken,
	}
}

// roundTrip writes v's metadata to a GGUF file and reads it back.
func roundTrip(t *testing.T, v *Vocab) *Vocab {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	if err := gguf.WriteFile(path, v.GGUFMetadata(), nil); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	got, err := VocabFromGGUF(f.Metadata)
	if err != nil {
		t.Fatalf("VocabFromGGUF: %v", err)
	}
	return got
}

func TestGGUFRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    func(t *testing.T) *Vocab
	}{
		{"full", func(*testing.T) *Vocab { return fullVocab() }},
		{"bpe", func(*testing.T) *Vocab { return bpeVocab() }},
		{"gpt-2", func(t *testing.T) *Vocab { return ggufVocab(t, "ggml-vocab-gpt-2.gguf") }},
		{"llama-bpe", func(t *testing.T) *Vocab { return ggufVocab(t, "ggml-vocab-llama-bpe.gguf") }},
		{"llama-spm", func(t *testing.T) *Vocab { return ggufVocab(t, "ggml-vocab-llama-spm.gguf") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v(t)
			got := roundTrip(t, v)
			if !reflect.DeepEqual(got, v) {
				t.Errorf("round trip changed the vocabulary:\n got %+v\nwant %+v", summary(got), summary(v))
			}
		})
	}
}

// summary keeps failure messages readable for 100k-token vocabularies.
func summary(v *Vocab) Vocab {
	s := *v
	trim := func(n int) int { return min(n, 8) }
	s.Tokens = s.Tokens[:trim(len(s.Tokens))]
	if s.Merges != nil {
		s.Merges = s.Merges[:trim(len(s.Merges))]
	}
	if s.Scores != nil {
		s.Scores = s.Scores[:trim(len(s.Scores))]
	}
	if s.Types != nil {
		s.Types = s.Types[:trim(len(s.Types))]
	}
	return s
}

// TestGGUFMetadataTypes pins the GGUF types llama.cpp requires: its loader
// reads ids with get_key<uint32_t> and flags with get_key<bool>, which
// reject any other stored type.
func TestGGUFMetadataTypes(t *testing.T) {
	md := fullVocab().GGUFMetadata()
	want := map[string]any{
		ggufKeyModel:          "llama",
		ggufKeyPre:            "default",
		ggufKeyTokens:         []string{},
		ggufKeyScores:         []float32{},
		ggufKeyTokenType:      []int32{},
		ggufKeyMerges:         []string{},
		ggufKeyBOS:            uint32(1),
		ggufKeyEOS:            uint32(2),
		ggufKeyUNK:            uint32(0),
		ggufKeyPAD:            uint32(3),
		ggufKeyEOT:            uint32(4),
		ggufKeyAddBOS:         false,
		ggufKeyAddEOS:         true,
		ggufKeyAddSpacePrefix: false,
		ggufKeyChatTemplate:   "",
	}
	if len(md) != len(want) {
		t.Errorf("%d entries, want %d", len(md), len(want))
	}
	for key, w := range want {
		got, ok := md.Get(key)
		if !ok {
			t.Errorf("%s is missing", key)
			continue
		}
		if reflect.TypeOf(got) != reflect.TypeOf(w) {
			t.Errorf("%s holds %T, want %T", key, got, w)
		}
	}
	for _, key := range []string{ggufKeyBOS, ggufKeyEOS, ggufKeyUNK, ggufKeyPAD, ggufKeyAddBOS} {
		if got, _ := md.Get(key); got != want[key] {
			t.Errorf("%s = %v, want %v", key, got, want[key])
		}
	}

	// Absent ids are left out; a BPE vocabulary always gets merges, and an
	// empty Pre becomes "default".
	b := bpeVocab()
	b.Merges, b.Pre = nil, ""
	md = b.GGUFMetadata()
	for _, key := range []string{ggufKeyBOS, ggufKeyUNK, ggufKeyPAD, ggufKeyEOT, ggufKeyScores, ggufKeyTokenType, ggufKeyChatTemplate} {
		if _, ok := md.Get(key); ok {
			t.Errorf("%s written for a vocabulary without it", key)
		}
	}
	if m, err := md.Strings(ggufKeyMerges); err != nil || len(m) != 0 {
		t.Errorf("merges = %v, %v; want an empty string array", m, err)
	}
	if pre, _ := md.String(ggufKeyPre); pre != "default" {
		t.Errorf("pre = %q, want \"default\"", pre)
	}

	// The metadata is a copy: changing it leaves the vocabulary alone.
	v := fullVocab()
	md = v.GGUFMetadata()
	toks, _ := md.Strings(ggufKeyTokens)
	toks[0] = "changed"
	if v.Tokens[0] != "<unk>" {
		t.Error("GGUFMetadata shares the token slice with the vocabulary")
	}
}

func TestVocabFromGGUFDefaults(t *testing.T) {
	without := func(md gguf.Metadata, keys ...string) gguf.Metadata {
		var out gguf.Metadata
		for _, kv := range md {
			drop := false
			for _, k := range keys {
				drop = drop || kv.Key == k
			}
			if !drop {
				out = append(out, kv)
			}
		}
		return out
	}
	flags := []string{ggufKeyAddBOS, ggufKeyAddEOS, ggufKeyAddSpacePrefix}
	spm := without(fullVocab().GGUFMetadata(), flags...)
	bpe := without(bpeVocab().GGUFMetadata(), flags...)
	llama3 := without(bpeVocab().GGUFMetadata(), flags...)
	llama3.Set(ggufKeyPre, "llama-bpe")
	llama3.Set(ggufKeyBOS, uint32(0))
	llama3NoBOS := without(llama3, ggufKeyBOS)
	spmNoBOS := without(spm, ggufKeyBOS)
	intIDs := without(fullVocab().GGUFMetadata(), ggufKeyScores)
	intIDs.Set(ggufKeyBOS, int32(1))
	intIDs.Set(ggufKeyScores, []int32{0, 0, 0, 0, 0, -3, -4, 0})

	tests := []struct {
		name                   string
		md                     gguf.Metadata
		pre                    string
		bos                    int32
		addBOS, addEOS, prefix bool
	}{
		{"spm", spm, "default", 1, true, false, true},
		{"spm without bos", spmNoBOS, "default", NoToken, false, false, true},
		{"bpe gpt-2", bpe, "gpt-2", NoToken, false, false, false},
		{"bpe llama-bpe", llama3, "llama-bpe", 0, true, false, false},
		{"bpe llama-bpe without bos", llama3NoBOS, "llama-bpe", NoToken, false, false, false},
		{"pre absent", without(bpe, ggufKeyPre), "default", NoToken, false, false, false},
		{"int ids and scores", intIDs, "default", 1, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := VocabFromGGUF(tt.md)
			if err != nil {
				t.Fatal(err)
			}
			if v.Pre != tt.pre || v.BOS != tt.bos || v.AddBOS != tt.addBOS || v.AddEOS != tt.addEOS || v.AddSpacePrefix != tt.prefix {
				t.Errorf("pre %q bos %d add bos %v eos %v prefix %v; want %q %d %v %v %v",
					v.Pre, v.BOS, v.AddBOS, v.AddEOS, v.AddSpacePrefix, tt.pre, tt.bos, tt.addBOS, tt.addEOS, tt.prefix)
			}
		})
	}
	v, err := VocabFromGGUF(intIDs)
	if err != nil {
		t.Fatal(err)
	}
	if v.Scores[5] != -3 {
		t.Errorf("int32 score = %v, want -3", v.Scores[5])
	}
}

func TestVocabFromGGUFErrors(t *testing.T) {
	with := func(base *Vocab, key string, value any) gguf.Metadata {
		md := base.GGUFMetadata()
		md.Set(key, value)
		return md
	}
	without := func(base *Vocab, key string) gguf.Metadata {
		var md gguf.Metadata
		for _, kv := range base.GGUFMetadata() {
			if kv.Key != key {
				md = append(md, kv)
			}
		}
		return md
	}
	addBOSNoID := bpeVocab().GGUFMetadata()
	addBOSNoID.Set(ggufKeyAddBOS, true)
	addEOSNoID := without(bpeVocab(), ggufKeyEOS)
	addEOSNoID.Set(ggufKeyAddEOS, true)
	tests := []struct {
		name    string
		md      gguf.Metadata
		wantErr []string // every one must appear
	}{
		{"model missing", without(fullVocab(), ggufKeyModel), []string{ggufKeyModel, "missing"}},
		{"model type", with(fullVocab(), ggufKeyModel, uint32(1)), []string{ggufKeyModel, "uint32"}},
		{"model unknown", with(fullVocab(), ggufKeyModel, "bert"), []string{ggufKeyModel, `"bert"`}},
		{"pre type", with(fullVocab(), ggufKeyPre, []string{"x"}), []string{ggufKeyPre}},
		{"tokens missing", without(fullVocab(), ggufKeyTokens), []string{ggufKeyTokens, "missing"}},
		{"tokens type", with(fullVocab(), ggufKeyTokens, []int32{1}), []string{ggufKeyTokens, "[]int32"}},
		{"tokens empty", with(bpeVocab(), ggufKeyTokens, []string{}), []string{ggufKeyTokens, "empty"}},
		{"scores type", with(fullVocab(), ggufKeyScores, []float64{0}), []string{ggufKeyScores, "[]float64"}},
		{"scores length", with(fullVocab(), ggufKeyScores, []float32{0}), []string{ggufKeyScores, "1 entries for 8 tokens"}},
		{"token_type type", with(fullVocab(), ggufKeyTokenType, []uint32{1}), []string{ggufKeyTokenType, "[]uint32"}},
		{"token_type length", with(fullVocab(), ggufKeyTokenType, make([]int32, 9)), []string{ggufKeyTokenType, "9 entries"}},
		{"merges missing for bpe", without(bpeVocab(), ggufKeyMerges), []string{ggufKeyMerges, "missing"}},
		{"merges type", with(bpeVocab(), ggufKeyMerges, "a b"), []string{ggufKeyMerges, "string"}},
		{"bos out of range", with(fullVocab(), ggufKeyBOS, uint32(8)), []string{ggufKeyBOS, "outside the vocabulary of 8"}},
		{"eos type", with(fullVocab(), ggufKeyEOS, "2"), []string{ggufKeyEOS, "not an integer"}},
		{"eot negative", with(fullVocab(), ggufKeyEOT, int32(-1)), []string{ggufKeyEOT, "out of uint32 range"}},
		{"pad huge", with(fullVocab(), ggufKeyPAD, uint64(1<<40)), []string{ggufKeyPAD}},
		{"unk out of range", with(fullVocab(), ggufKeyUNK, uint32(1<<31)), []string{ggufKeyUNK, "outside"}},
		{"add_bos type", with(fullVocab(), ggufKeyAddBOS, uint8(1)), []string{ggufKeyAddBOS, "uint8"}},
		{"add_eos type", with(fullVocab(), ggufKeyAddEOS, "true"), []string{ggufKeyAddEOS}},
		{"add_space_prefix type", with(fullVocab(), ggufKeyAddSpacePrefix, uint32(1)), []string{ggufKeyAddSpacePrefix}},
		{"add_bos without bos", addBOSNoID, []string{ggufKeyAddBOS, ggufKeyBOS}},
		{"add_eos without eos", addEOSNoID, []string{ggufKeyAddEOS, ggufKeyEOS}},
		{"chat_template type", with(fullVocab(), ggufKeyChatTemplate, []string{"x"}), []string{ggufKeyChatTemplate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := VocabFromGGUF(tt.md)
			if err == nil {
				t.Fatalf("no error; got a vocabulary of %d tokens", len(v.Tokens))
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadGGUF(t *testing.T) {
	for _, tt := range []struct {
		file   string
		tokens int
		model  Model
	}{
		{"ggml-vocab-gpt-2.gguf", 50257, ModelBPE},
		{"ggml-vocab-llama-bpe.gguf", 128256, ModelBPE},
		{"ggml-vocab-llama-spm.gguf", 32000, ModelSPM},
	} {
		t.Run(tt.file, func(t *testing.T) {
			tok, err := LoadGGUF(ggufVocabPath(t, tt.file))
			if err != nil {
				t.Fatalf("LoadGGUF: %v", err)
			}
			if v := tok.Vocab(); len(v.Tokens) != tt.tokens || v.Model != tt.model {
				t.Errorf("vocabulary of %d %q tokens, want %d %q", len(v.Tokens), v.Model, tt.tokens, tt.model)
			}
		})
	}
	dir := t.TempDir()
	if _, err := LoadGGUF(filepath.Join(dir, "absent.gguf")); err == nil {
		t.Error("LoadGGUF of a missing file: no error")
	}
	noVocab := filepath.Join(dir, "novocab.gguf")
	if err := gguf.WriteFile(noVocab, gguf.Metadata{{Key: "general.architecture", Value: "llama"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadGGUF(noVocab); err == nil || !strings.Contains(err.Error(), ggufKeyModel) || !strings.Contains(err.Error(), noVocab) {
		t.Errorf("LoadGGUF of a file without a vocabulary: %v, want an error naming %s and the path", err, ggufKeyModel)
	}
}
