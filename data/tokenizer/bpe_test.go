package tokenizer

import (
	"encoding/binary"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/minnowml/minnow/internal/shareddata"
)

const (
	bpeGPT2Dir        = "tokenizers/gpt2"
	bpeGPT2GGUF       = "llama-vocab/ggml-vocab-gpt-2.gguf"
	bpeLlamaBPEGGUF   = "llama-vocab/ggml-vocab-llama-bpe.gguf"
	bpeShakespeare    = "text/tinyshakespeare/input.txt"
	bpeGPT2EndOfText  = 50256
	bpeShakespeareLen = 338025 // GPT-2 tokens of Tiny Shakespeare, as npm tiktoken's gpt2 encoding gives
	// bpeShakespeareFNV is FNV-1a 64 over those ids as little-endian
	// int32s, computed from tiktoken's output.
	bpeShakespeareFNV = 0xe22fcd868ca90167
)

// bpeGPT2 builds GPT-2's tokenizer from the shared vocab.json and
// merges.txt.
func bpeGPT2(tb testing.TB) Tokenizer {
	tb.Helper()
	dir := shareddata.Path(tb, bpeGPT2Dir)
	v, err := LoadVocabMerges(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	tk, err := New(v)
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

func bpeShakespeareText(tb testing.TB) string {
	tb.Helper()
	raw, err := os.ReadFile(shareddata.Path(tb, bpeShakespeare))
	if err != nil {
		tb.Fatal(err)
	}
	return string(raw)
}

// bpeCheckVectors encodes every vector as llama.cpp's test does
// (add_special and parse_special off), checks that decoding gives the text
// back, and fails unless all match.
func bpeCheckVectors(t *testing.T, name string, tk Tokenizer, vs []vocabVector) {
	t.Helper()
	if len(vs) < 40 {
		t.Fatalf("%s: only %d test vectors", name, len(vs))
	}
	pass := 0
	for _, v := range vs {
		got := tk.Encode(v.text, EncodeOptions{})
		if slices.Equal(got, v.want) {
			pass++
		} else {
			t.Errorf("%s: Encode(%q) = %v, want %v", name, v.text, got, v.want)
		}
		if back := tk.Decode(got, DecodeOptions{}); back != v.text {
			t.Errorf("%s: Decode(Encode(%q)) = %q", name, v.text, back)
		}
	}
	t.Logf("%s: %d/%d llama.cpp vectors match", name, pass, len(vs))
}

// bpeGGUF loads a shared GGUF vocabulary through LoadGGUF.
func bpeGGUF(tb testing.TB, rel string) Tokenizer {
	tb.Helper()
	tk, err := LoadGGUF(shareddata.Path(tb, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

// TestBPEParityLlamaCppVectors runs llama.cpp's own tokenizer test vectors
// (tests/test-tokenizer-0) against its GGUF vocabularies.
func TestBPEParityLlamaCppVectors(t *testing.T) {
	for _, rel := range []string{bpeGPT2GGUF, bpeLlamaBPEGGUF} {
		vs := readVocabVectors(t, shareddata.Path(t, rel))
		bpeCheckVectors(t, filepath.Base(rel), bpeGGUF(t, rel), vs)
	}
}

// TestBPEGGUFMatchesVocabMerges checks that the GPT-2 GGUF vocabulary and
// vocab.json with merges.txt give the same ids on all of Tiny Shakespeare.
func TestBPEGGUFMatchesVocabMerges(t *testing.T) {
	text := bpeShakespeareText(t)
	fromGGUF := bpeGGUF(t, bpeGPT2GGUF).Encode(text, EncodeOptions{})
	fromFiles := bpeGPT2(t).Encode(text, EncodeOptions{})
	if !slices.Equal(fromGGUF, fromFiles) {
		n := min(len(fromGGUF), len(fromFiles))
		i := 0
		for i < n && fromGGUF[i] == fromFiles[i] {
			i++
		}
		t.Fatalf("ids differ from index %d (%d vs %d ids)", i, len(fromGGUF), len(fromFiles))
	}
	if len(fromGGUF) != bpeShakespeareLen || bpeIDsFNV(fromGGUF) != bpeShakespeareFNV {
		t.Errorf("GGUF ids: %d with FNV %#x, want tiktoken's %d with %#x",
			len(fromGGUF), bpeIDsFNV(fromGGUF), bpeShakespeareLen, uint64(bpeShakespeareFNV))
	}
}

// TestBPELlamaBPESpecials checks Llama 3's special tokens: BOS is added
// (llama.cpp's default for llama-bpe), and its control tokens are matched
// only with ParseSpecial.
func TestBPELlamaBPESpecials(t *testing.T) {
	tk := bpeGGUF(t, bpeLlamaBPEGGUF)
	const bos, eot = 128000, 128009
	text := "<|begin_of_text|>Hi<|eot_id|>"
	hi := tk.Encode("Hi", EncodeOptions{})
	tests := []struct {
		opt  EncodeOptions
		want []int32
	}{
		{EncodeOptions{ParseSpecial: true}, append(append([]int32{bos}, hi...), eot)},
		{EncodeOptions{AddSpecial: true, ParseSpecial: true}, append(append([]int32{bos, bos}, hi...), eot)},
	}
	for _, tc := range tests {
		if got := tk.Encode(text, tc.opt); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q, %+v) = %v, want %v", text, tc.opt, got, tc.want)
		}
	}
	plain := tk.Encode(text, EncodeOptions{})
	if slices.Contains(plain, bos) || slices.Contains(plain, eot) {
		t.Errorf("control tokens matched without ParseSpecial: %v", plain)
	}
	if back := tk.Decode(plain, DecodeOptions{}); back != text {
		t.Errorf("Decode = %q, want %q", back, text)
	}
	shakespeare := bpeShakespeareText(t)
	ids := tk.Encode(shakespeare, EncodeOptions{})
	if back := tk.Decode(ids, DecodeOptions{}); back != shakespeare {
		t.Error("Decode(Encode(Tiny Shakespeare)) differs with llama-bpe")
	}
}

// TestBPEParityGPT2VectorsVocabMerges runs llama.cpp's GPT-2 vectors
// against the tokenizer built from vocab.json and merges.txt.
func TestBPEParityGPT2VectorsVocabMerges(t *testing.T) {
	vs := readVocabVectors(t, shareddata.Path(t, bpeGPT2GGUF))
	bpeCheckVectors(t, "gpt-2 (vocab.json+merges.txt)", bpeGPT2(t), vs)
}

// bpeIDsFNV hashes ids as little-endian int32s.
func bpeIDsFNV(ids []int32) uint64 {
	h := fnv.New64a()
	var b [4]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint32(b[:], uint32(id))
		h.Write(b[:])
	}
	return h.Sum64()
}

func TestBPEShakespeareGPT2(t *testing.T) {
	text := bpeShakespeareText(t)
	tk := bpeGPT2(t)
	ids := tk.Encode(text, EncodeOptions{})
	if len(ids) != bpeShakespeareLen || bpeIDsFNV(ids) != bpeShakespeareFNV {
		t.Errorf("got %d ids with FNV %#x, want %d with %#x (tiktoken's gpt2 ids)",
			len(ids), bpeIDsFNV(ids), bpeShakespeareLen, uint64(bpeShakespeareFNV))
	}
	if back := tk.Decode(ids, DecodeOptions{}); back != text {
		t.Errorf("Decode(Encode(text)) differs from text (%d vs %d bytes)", len(back), len(text))
	}
	// A second pass is served from the piece cache and must agree.
	if again := tk.Encode(text, EncodeOptions{}); !slices.Equal(again, ids) {
		t.Error("second Encode (from the cache) differs from the first")
	}
}

func TestBPEGPT2EndOfText(t *testing.T) {
	tk := bpeGPT2(t)
	const eot = "<|endoftext|>"
	if got := tk.Encode(eot, EncodeOptions{ParseSpecial: true}); !slices.Equal(got, []int32{bpeGPT2EndOfText}) {
		t.Errorf("Encode(%q, ParseSpecial) = %v, want [%d]", eot, got, bpeGPT2EndOfText)
	}
	plain := tk.Encode(eot, EncodeOptions{})
	if len(plain) < 2 || slices.Contains(plain, bpeGPT2EndOfText) {
		t.Errorf("Encode(%q) without ParseSpecial = %v, want it split as text", eot, plain)
	}
	if back := tk.Decode(plain, DecodeOptions{}); back != eot {
		t.Errorf("Decode = %q, want %q", back, eot)
	}
	mixed := "Hi" + eot + "there" + eot
	got := tk.Encode(mixed, EncodeOptions{ParseSpecial: true})
	want := append(append(tk.Encode("Hi", EncodeOptions{}), bpeGPT2EndOfText), tk.Encode("there", EncodeOptions{})...)
	want = append(want, bpeGPT2EndOfText)
	if !slices.Equal(got, want) {
		t.Errorf("Encode(%q, ParseSpecial) = %v, want %v", mixed, got, want)
	}
	if back := tk.Decode(got, DecodeOptions{}); back != mixed {
		t.Errorf("Decode = %q, want %q", back, mixed)
	}
	if back := tk.Decode(got, DecodeOptions{SkipSpecial: true}); back != "Hithere" {
		t.Errorf("Decode(SkipSpecial) = %q, want %q", back, "Hithere")
	}
	// GPT-2 does not add BOS or EOS.
	if got := tk.Encode("Hi", EncodeOptions{AddSpecial: true}); !slices.Equal(got, tk.Encode("Hi", EncodeOptions{})) {
		t.Errorf("AddSpecial changed GPT-2's ids: %v", got)
	}
}

// TestBPEConcurrentEncode encodes from many goroutines at once, sharing the
// cache, and compares with a tokenizer used by one goroutine.
func TestBPEConcurrentEncode(t *testing.T) {
	text := bpeShakespeareText(t)
	const parts = 16
	chunks := make([]string, parts)
	for i := range chunks {
		lo, hi := i*len(text)/parts, (i+1)*len(text)/parts
		// Cut at newlines so no chunk splits a character.
		for lo > 0 && text[lo-1] != '\n' {
			lo--
		}
		for hi < len(text) && text[hi-1] != '\n' {
			hi--
		}
		chunks[i] = text[lo:hi]
	}
	ref := bpeGPT2(t)
	want := make([][]int32, parts)
	for i, c := range chunks {
		want[i] = ref.Encode(c, EncodeOptions{})
	}
	shared := bpeGPT2(t)
	var wg sync.WaitGroup
	errs := make(chan string, parts*3)
	for rep := 0; rep < 3; rep++ {
		for i := range chunks {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if got := shared.Encode(chunks[i], EncodeOptions{}); !slices.Equal(got, want[i]) {
					errs <- "chunk " + strconv.Itoa(i)
				}
			}(i)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent Encode of %s differs", e)
	}
}

// bpeSynth is a small byte-level vocabulary for tests that need no shared
// data: the 256 byte characters with id = byte, then the merges' results,
// then extra tokens.
type bpeSynth struct {
	v     *Vocab
	chars [256]rune
}

// mapped spells raw bytes in GPT-2's byte characters.
func (s *bpeSynth) mapped(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		b.WriteRune(s.chars[raw[i]])
	}
	return b.String()
}

// id returns the id of the token spelled raw (in raw bytes for normal
// tokens), failing the test when there is none.
func (s *bpeSynth) id(t *testing.T, raw string) int32 {
	t.Helper()
	for i, tok := range s.v.Tokens {
		if tok == s.mapped(raw) && (s.v.Types == nil || s.v.Types[i] == TypeNormal) {
			return int32(i)
		}
	}
	for i, tok := range s.v.Tokens {
		if tok == raw {
			return int32(i)
		}
	}
	t.Fatalf("no token %q", raw)
	return -1
}

type bpeExtra struct {
	text string
	typ  TokenType
}

func newBPESynth(pre string, merges [][2]string, extra ...bpeExtra) *bpeSynth {
	s := &bpeSynth{chars: gpt2ByteChars()}
	v := &Vocab{Model: ModelBPE, Pre: pre, BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken}
	for b := 0; b < 256; b++ {
		v.Tokens = append(v.Tokens, string(s.chars[b]))
	}
	seen := map[string]bool{}
	for _, m := range merges {
		l, r := s.mapped(m[0]), s.mapped(m[1])
		v.Merges = append(v.Merges, l+" "+r)
		if !seen[l+r] {
			seen[l+r] = true
			v.Tokens = append(v.Tokens, l+r)
		}
	}
	v.Types = make([]TokenType, len(v.Tokens))
	for i := range v.Types {
		v.Types[i] = TypeNormal
	}
	for _, e := range extra {
		v.Tokens = append(v.Tokens, e.text)
		v.Types = append(v.Types, e.typ)
	}
	s.v = v
	return s
}

func (s *bpeSynth) tokenizer(t *testing.T) Tokenizer {
	t.Helper()
	tk, err := New(s.v)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestBPEMergeOrder(t *testing.T) {
	tests := []struct {
		name   string
		merges [][2]string
		text   string
		want   []string // tokens, in raw bytes
	}{
		{"lower rank first", [][2]string{{"b", "c"}, {"a", "b"}}, "abc", []string{"a", "bc"}},
		{"rank beats position", [][2]string{{"a", "b"}, {"b", "c"}}, "abc", []string{"ab", "c"}},
		{"ties go leftmost", [][2]string{{"a", "a"}}, "aaa", []string{"aa", "a"}},
		{"merged symbols merge on", [][2]string{{"a", "a"}, {"aa", "aa"}}, "aaaaa", []string{"aaaa", "a"}},
		{"new pair waits for its rank", [][2]string{{"a", "a"}, {"aa", "a"}, {"b", "b"}}, "aaabb", []string{"aaa", "bb"}},
		{"no merges", nil, "xyz", []string{"x", "y", "z"}},
		{"space joins word", [][2]string{{" ", "w"}}, " w", []string{" w"}},
		{"multibyte", [][2]string{{"\xc3", "\xa9"}}, "é", []string{"é"}},
	}
	for _, tc := range tests {
		s := newBPESynth("gpt-2", tc.merges)
		tk := s.tokenizer(t)
		var want []int32
		for _, w := range tc.want {
			want = append(want, s.id(t, w))
		}
		if got := tk.Encode(tc.text, EncodeOptions{}); !slices.Equal(got, want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", tc.name, tc.text, got, want)
		}
	}
}

// TestBPEIgnoreMerges checks that the Llama 3 pre-tokenizer, for which
// llama.cpp sets ignore_merges, takes a whole piece that is a token even
// when no merge builds it, and that other pre-tokenizers do not.
func TestBPEIgnoreMerges(t *testing.T) {
	for _, tc := range []struct {
		pre  string
		want []string
	}{
		{"llama-bpe", []string{"xyz"}},
		{"gpt-2", []string{"x", "y", "z"}},
		{"qwen2", []string{"x", "y", "z"}},
	} {
		s := newBPESynth(tc.pre, nil)
		s.v.Tokens = append(s.v.Tokens, s.mapped("xyz"))
		s.v.Types = append(s.v.Types, TypeNormal)
		tk := s.tokenizer(t)
		var want []int32
		for _, w := range tc.want {
			want = append(want, s.id(t, w))
		}
		if got := tk.Encode("xyz", EncodeOptions{}); !slices.Equal(got, want) {
			t.Errorf("%s: Encode(xyz) = %v, want %v", tc.pre, got, want)
		}
	}
}

// TestBPEMissingByteTokens checks llama.cpp's fallback for a symbol that is
// not a token: each byte of its mapped text is tried as a token, so an
// ASCII character survives and a character spelled with non-ASCII stand-ins
// is dropped.
func TestBPEMissingByteTokens(t *testing.T) {
	v := &Vocab{Model: ModelBPE, Pre: "gpt-2", Tokens: []string{"a", "b"},
		BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken}
	tk, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("aéb c", EncodeOptions{}); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("Encode = %v, want [0 1]", got)
	}
}

func TestBPESpecialPartition(t *testing.T) {
	s := newBPESynth("gpt-2", nil,
		bpeExtra{"<ab>", TypeControl}, bpeExtra{"b>c", TypeUserDefined},
		bpeExtra{"ab", TypeControl}, bpeExtra{"bcd", TypeControl})
	tk := s.tokenizer(t)
	ids := func(parts ...string) []int32 {
		var out []int32
		for _, p := range parts {
			out = append(out, s.id(t, p))
		}
		return out
	}
	tests := []struct {
		text  string
		parse bool
		want  []int32
	}{
		// Longest candidate first: <ab> takes its text before b>c can.
		{"x<ab>cy", true, ids("x", "<ab>", "c", "y")},
		// Without ParseSpecial only the user-defined token is matched.
		{"x<ab>cy", false, ids("x", "<", "a", "b>c", "y")},
		// llama.cpp's order, not leftmost-longest: bcd (3 bytes) is tried
		// before ab (2 bytes) although ab starts first.
		{"abcd", true, ids("a", "bcd")},
		{"abcd", false, ids("a", "b", "c", "d")},
		{"ab ab", true, ids("ab", " ", "ab")},
		{"", true, nil},
	}
	for _, tc := range tests {
		got := tk.Encode(tc.text, EncodeOptions{ParseSpecial: tc.parse})
		if !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q, parse=%v) = %v, want %v", tc.text, tc.parse, got, tc.want)
		}
		if back := tk.Decode(got, DecodeOptions{}); back != tc.text {
			t.Errorf("Decode(Encode(%q)) = %q", tc.text, back)
		}
	}
}

func TestBPEAddSpecialAndDecode(t *testing.T) {
	s := newBPESynth("gpt-2", [][2]string{{" ", "w"}},
		bpeExtra{"<s>", TypeControl}, bpeExtra{"</s>", TypeControl},
		bpeExtra{"[tool]", TypeUserDefined}, bpeExtra{"<0x41>", TypeByte}, bpeExtra{"<unk>", TypeUnknown})
	s.v.BOS, s.v.EOS = s.id(t, "<s>"), s.id(t, "</s>")
	s.v.AddBOS, s.v.AddEOS = true, true
	tk := s.tokenizer(t)
	plain := tk.Encode("hi", EncodeOptions{})
	got := tk.Encode("hi", EncodeOptions{AddSpecial: true})
	want := append(append([]int32{s.v.BOS}, plain...), s.v.EOS)
	if !slices.Equal(got, want) {
		t.Errorf("Encode(AddSpecial) = %v, want %v", got, want)
	}
	all := []int32{s.v.BOS, s.id(t, " w"), s.id(t, "[tool]"), s.id(t, "<0x41>"), s.id(t, "<unk>"), 0xC3, 0xA9, s.v.EOS, -1, 1 << 20}
	for _, tc := range []struct {
		skip bool
		want string
	}{
		{false, "<s> w[tool]A<unk>é</s>"},
		{true, " w[tool]Aé"},
	} {
		if got := tk.Decode(all, DecodeOptions{SkipSpecial: tc.skip}); got != tc.want {
			t.Errorf("Decode(skip=%v) = %q, want %q", tc.skip, got, tc.want)
		}
	}
	// Half a character decodes to its raw byte.
	if got := tk.Decode([]int32{0xC3}, DecodeOptions{}); got != "\xc3" {
		t.Errorf("Decode(0xC3 byte) = %q, want %q", got, "\xc3")
	}
}

// TestBPEMalformedUTF8 checks that malformed input is encoded as llama.cpp
// encodes it: invalid bytes as U+FFFD, overlong forms as their value.
func TestBPEMalformedUTF8(t *testing.T) {
	tk := newBPESynth("gpt-2", nil).tokenizer(t)
	for _, tc := range []struct{ in, like string }{
		{"\xff", "\uFFFD"},
		{"a\xffb", "a\uFFFDb"},
		{"\xe2\x82", "\uFFFD\uFFFD"},
		{"a\xc0\x80b", "a\x00b"},
		{"\xed\xa0\x80", "\xed\xa0\x80"},
	} {
		got, want := tk.Encode(tc.in, EncodeOptions{}), tk.Encode(tc.like, EncodeOptions{})
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v (as for %q)", tc.in, got, want, tc.like)
		}
		if len(got) == 0 {
			t.Errorf("Encode(%q) is empty", tc.in)
		}
	}
}

func TestNewBPEErrors(t *testing.T) {
	base := func() *Vocab {
		return &Vocab{Model: ModelBPE, Pre: "gpt-2", Tokens: []string{"a", "b"},
			BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken}
	}
	tests := []struct {
		name   string
		modify func(v *Vocab)
		want   string
	}{
		{"unknown pre", func(v *Vocab) { v.Pre = "gpt-3" }, `"gpt-3"`},
		{"duplicate", func(v *Vocab) { v.Tokens = []string{"a", "b", "a"} }, `"a" has ids 0 and 2`},
		{"bos missing", func(v *Vocab) { v.AddBOS = true }, "BOS"},
		{"eos missing", func(v *Vocab) { v.AddEOS = true }, "EOS"},
	}
	for _, tc := range tests {
		v := base()
		tc.modify(v)
		_, err := New(v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error = %v, want one mentioning %s", tc.name, err, tc.want)
		}
	}
}

// BenchmarkEncodeShakespeareGPT2 encodes Tiny Shakespeare (1.1 MB) with
// GPT-2's vocabulary; after the first pass the piece cache is warm, as it
// is when encoding a corpus.
func BenchmarkEncodeShakespeareGPT2(b *testing.B) {
	text := bpeShakespeareText(b)
	tk := bpeGPT2(b)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tk.Encode(text, EncodeOptions{})
	}
}

// BenchmarkEncodeShakespeareGPT2Cold is the same with an empty cache on
// every pass.
func BenchmarkEncodeShakespeareGPT2Cold(b *testing.B) {
	text := bpeShakespeareText(b)
	v := bpeGPT2(b).Vocab()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tk, err := New(v)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tk.Encode(text, EncodeOptions{})
	}
}
