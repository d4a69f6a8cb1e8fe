package tokenizer

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minnowml/minnow/internal/shareddata"
)

const (
	spmGGUFVocab  = "llama-vocab/ggml-vocab-llama-spm.gguf"
	spmLlama2     = "tokenizers/llama2-spm/tokenizer.model"
	spmShakespare = "text/tinyshakespeare/input.txt"
)

// spmLoadModel builds the tokenizer of the Llama 2 tokenizer.model.
func spmLoadModel(tb testing.TB) Tokenizer {
	tb.Helper()
	v, err := LoadSentencePiece(shareddata.Path(tb, spmLlama2))
	if err != nil {
		tb.Fatal(err)
	}
	tk, err := New(v)
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

// spmCheckVectors encodes every vector as llama.cpp's test does
// (add_special and parse_special off) and returns how many matched.
func spmCheckVectors(t *testing.T, tk Tokenizer, vs []vocabVector) int {
	t.Helper()
	pass := 0
	for _, v := range vs {
		got := tk.Encode(v.text, EncodeOptions{})
		if slices.Equal(got, v.want) {
			pass++
			continue
		}
		t.Errorf("Encode(%q) = %v, want %v", v.text, got, v.want)
	}
	return pass
}

// spmLoadGGUF builds the tokenizer of llama.cpp's ggml-vocab-llama-spm.gguf.
func spmLoadGGUF(tb testing.TB) Tokenizer {
	tb.Helper()
	tk, err := LoadGGUF(shareddata.Path(tb, spmGGUFVocab))
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

// TestSPMParityLlamaCppVectors is llama.cpp's tests/test-tokenizer-0 for
// ggml-vocab-llama-spm.gguf: every vector must give llama.cpp's ids.
func TestSPMParityLlamaCppVectors(t *testing.T) {
	path := shareddata.Path(t, spmGGUFVocab)
	vs := readVocabVectors(t, path)
	if len(vs) < 40 {
		t.Fatalf("only %d test vectors", len(vs))
	}
	pass := spmCheckVectors(t, spmLoadGGUF(t), vs)
	t.Logf("llama.cpp vectors through %s: %d/%d passed", filepath.Base(path), pass, len(vs))
}

// TestSPMParityLlamaCppVectorsTokenizerModel runs the same vectors through
// the Llama 2 tokenizer.model, the source the GGUF vocabulary came from.
func TestSPMParityLlamaCppVectorsTokenizerModel(t *testing.T) {
	vs := readVocabVectors(t, shareddata.Path(t, spmGGUFVocab))
	if len(vs) < 40 {
		t.Fatalf("only %d test vectors", len(vs))
	}
	pass := spmCheckVectors(t, spmLoadModel(t), vs)
	t.Logf("llama.cpp vectors through tokenizer.model: %d/%d passed", pass, len(vs))
}

// TestSPMTokenizerModelMatchesGGUF checks that the Llama 2 tokenizer.model
// and llama.cpp's GGUF conversion of it are the same vocabulary and give the
// same ids on the whole of Tiny Shakespeare, encoded as one text (so with one
// space prefix, at the start) and line by line (a prefix on every line).
func TestSPMTokenizerModelMatchesGGUF(t *testing.T) {
	model, gg := spmLoadModel(t), spmLoadGGUF(t)
	mv, gv := model.Vocab(), gg.Vocab()
	if !slices.Equal(mv.Tokens, gv.Tokens) || !slices.Equal(mv.Scores, gv.Scores) || !slices.Equal(mv.Types, gv.Types) {
		t.Error("tokens, scores or types differ")
	}
	if mv.AddSpacePrefix != gv.AddSpacePrefix || mv.BOS != gv.BOS || mv.EOS != gv.EOS || mv.UNK != gv.UNK || mv.AddBOS != gv.AddBOS || mv.AddEOS != gv.AddEOS {
		t.Errorf("settings differ: tokenizer.model %+v, GGUF %+v",
			[]any{mv.AddSpacePrefix, mv.BOS, mv.EOS, mv.UNK, mv.AddBOS, mv.AddEOS},
			[]any{gv.AddSpacePrefix, gv.BOS, gv.EOS, gv.UNK, gv.AddBOS, gv.AddEOS})
	}
	data, err := os.ReadFile(shareddata.Path(t, spmShakespare))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	a, b := model.Encode(text, EncodeOptions{AddSpecial: true}), gg.Encode(text, EncodeOptions{AddSpecial: true})
	if !slices.Equal(a, b) {
		t.Fatalf("whole file: %d ids from tokenizer.model, %d from GGUF, first difference at %d", len(a), len(b), spmFirstDiff(a, b))
	}
	if got := gg.Decode(b[1:], DecodeOptions{}); got != text {
		t.Error("whole file: Decode(Encode(x)) through the GGUF vocabulary differs from x")
	}
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		a, b := model.Encode(line, EncodeOptions{}), gg.Encode(line, EncodeOptions{})
		if !slices.Equal(a, b) {
			t.Fatalf("line %d %q: tokenizer.model %v, GGUF %v", i+1, line, a, b)
		}
	}
	t.Logf("whole file: %d ids (with BOS), identical; %d lines identical", len(a), len(lines))
}

func spmFirstDiff(a, b []int32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSPMRoundTripShakespeare(t *testing.T) {
	tk := spmLoadModel(t)
	data, err := os.ReadFile(shareddata.Path(t, spmShakespare))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	ids := tk.Encode(text, EncodeOptions{})
	if got := tk.Decode(ids, DecodeOptions{}); got != text {
		t.Fatalf("whole file: Decode(Encode(x)) differs from x (lengths %d and %d)", len(got), len(text))
	}
	for i, line := range strings.Split(text, "\n") {
		if got := tk.Decode(tk.Encode(line, EncodeOptions{}), DecodeOptions{}); got != line {
			t.Fatalf("line %d: Decode(Encode(%q)) = %q", i+1, line, got)
		}
	}
	t.Logf("%d bytes -> %d tokens", len(text), len(ids))
}

// TestSPMRoundTripTricky checks Decode(Encode(x)) == x on edge cases. Two
// kinds of input do not round-trip, in llama.cpp as here: parsed special
// tokens (the space prefix goes in again after each), and invalid UTF-8
// whose lead byte swallows the bytes of an escaped space.
func TestSPMRoundTripTricky(t *testing.T) {
	tk := spmLoadModel(t)
	for _, s := range []string{
		"", " ", "  ", "\n", " Hello", "Hello ", "a  b   c", "\t\r\n",
		"Äpfel über straße", "日本語のテキスト", "🦙.cpp 😶‍🌫️", "\x00\x01\x7f",
		"\xff\xfe\xc3", "x\x80y", "<s> </s> <unk>", "<0x41>",
	} {
		ids := tk.Encode(s, EncodeOptions{})
		if got := tk.Decode(ids, DecodeOptions{}); got != s {
			t.Errorf("Decode(Encode(%q)) = %q (ids %v)", s, got, ids)
		}
	}
}

// spmEntry is one token of a hand-made vocabulary.
type spmEntry struct {
	text  string
	score float32
	typ   TokenType
}

// spmSmallVocab is a hand-made vocabulary that exercises tie-breaking,
// scores, byte and UNK fallback and special tokens.
func spmSmallVocab(prefix, addEOS bool) *Vocab {
	es := []spmEntry{
		{"<unk>", 0, TypeUnknown},      // 0
		{"<s>", 0, TypeControl},        // 1
		{"</s>", 0, TypeControl},       // 2
		{"<0xC3>", 0, TypeByte},        // 3
		{"<0xA9>", 0, TypeByte},        // 4
		{"▁", -1, TypeNormal},          // 5
		{"a", -1, TypeNormal},          // 6
		{"b", -1, TypeNormal},          // 7
		{"c", -1, TypeNormal},          // 8
		{"h", -1, TypeNormal},          // 9
		{"i", -1, TypeNormal},          // 10
		{"aa", -5, TypeNormal},         // 11
		{"ab", -6, TypeNormal},         // 12
		{"bc", -4, TypeNormal},         // 13
		{"hi", -3, TypeNormal},         // 14
		{"▁hi", -2, TypeNormal},        // 15
		{"▁a", -2, TypeNormal},         // 16
		{"▁b", -2, TypeNormal},         // 17
		{"<", -1, TypeNormal},          // 18
		{"s", -1, TypeNormal},          // 19
		{">", -1, TypeNormal},          // 20
		{"<tool>", 0, TypeUserDefined}, // 21
		{"<s>!", 0, TypeUserDefined},   // 22
		{"▁▁", -7, TypeNormal},         // 23
		{"x", 0, TypeUnused},           // 24
	}
	v := &Vocab{Model: ModelSPM, UNK: 0, BOS: 1, EOS: 2, PAD: NoToken, EOT: NoToken,
		AddBOS: true, AddEOS: addEOS, AddSpacePrefix: prefix}
	for _, e := range es {
		v.Tokens = append(v.Tokens, e.text)
		v.Scores = append(v.Scores, e.score)
		v.Types = append(v.Types, e.typ)
	}
	return v
}

func TestSPMEncodeSmallVocab(t *testing.T) {
	cases := []struct {
		name           string
		text           string
		prefix, addEOS bool
		opt            EncodeOptions
		want           []int32
	}{
		{"empty", "", true, false, EncodeOptions{}, nil},
		{"empty with specials", "", true, true, EncodeOptions{AddSpecial: true}, []int32{1, 2}},
		{"equal scores merge leftmost", "aaa", false, false, EncodeOptions{}, []int32{11, 6}},
		{"higher score wins", "abc", false, false, EncodeOptions{}, []int32{6, 13}},
		{"space prefix", "hi", true, false, EncodeOptions{}, []int32{15}},
		{"no space prefix", "hi", false, false, EncodeOptions{}, []int32{14}},
		{"spaces escape", "hi hi", true, false, EncodeOptions{}, []int32{15, 15}},
		{"literal U+2581 is a space", "hi▁hi", true, false, EncodeOptions{}, []int32{15, 15}},
		{"leading space", " hi", true, false, EncodeOptions{}, []int32{5, 15}},
		{"byte fallback", "é", true, false, EncodeOptions{}, []int32{5, 3, 4}},
		{"unk fallback for bytes without tokens", "q", false, false, EncodeOptions{}, []int32{0}},
		{"invalid utf-8 falls back bytewise", "\xc3", false, false, EncodeOptions{}, []int32{3}},
		{"unused tokens still match", "x", false, false, EncodeOptions{}, []int32{24}},
		{"bos", "hi", true, false, EncodeOptions{AddSpecial: true}, []int32{1, 15}},
		{"bos and eos", "hi", true, true, EncodeOptions{AddSpecial: true}, []int32{1, 15, 2}},
		{"control as text", "a<s>b", true, false, EncodeOptions{}, []int32{16, 18, 19, 20, 7}},
		{"control parsed, prefix after it", "a<s>b", true, false, EncodeOptions{ParseSpecial: true}, []int32{16, 1, 17}},
		{"only a control token", "<s>", true, false, EncodeOptions{ParseSpecial: true}, []int32{1}},
		{"unknown token parsed", "<unk>", false, false, EncodeOptions{ParseSpecial: true}, []int32{0}},
		{"user-defined always matched", "a<tool>b", true, false, EncodeOptions{}, []int32{16, 21, 17}},
		{"longest special first", "a<s>!b", true, false, EncodeOptions{ParseSpecial: true}, []int32{16, 22, 17}},
		{"repeated specials", "<tool><tool>a", false, false, EncodeOptions{}, []int32{21, 21, 6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk, err := New(spmSmallVocab(c.prefix, c.addEOS))
			if err != nil {
				t.Fatal(err)
			}
			if got := tk.Encode(c.text, c.opt); !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q, %+v) = %v, want %v", c.text, c.opt, got, c.want)
			}
		})
	}
}

func TestSPMDecodeSmallVocab(t *testing.T) {
	cases := []struct {
		name   string
		ids    []int32
		prefix bool
		opt    DecodeOptions
		want   string
	}{
		{"prefix space removed", []int32{15, 15}, true, DecodeOptions{}, "hi hi"},
		{"kept without prefix", []int32{15}, false, DecodeOptions{}, " hi"},
		{"only one space removed", []int32{23, 9}, true, DecodeOptions{}, " h"},
		{"bytes join", []int32{5, 3, 4}, true, DecodeOptions{}, "é"},
		{"control rendered", []int32{1, 15, 2}, true, DecodeOptions{}, "<s> hi</s>"},
		{"control skipped, space after bos kept as llama.cpp does", []int32{1, 15, 2}, true, DecodeOptions{SkipSpecial: true}, " hi"},
		{"unknown skipped", []int32{0}, true, DecodeOptions{SkipSpecial: true}, ""},
		{"unknown rendered", []int32{0}, true, DecodeOptions{}, "<unk>"},
		{"user-defined always rendered", []int32{21}, true, DecodeOptions{SkipSpecial: true}, "<tool>"},
		{"unused renders as nothing", []int32{24, 6}, true, DecodeOptions{}, "a"},
		{"out of range ids render as nothing", []int32{-1, 999, 15}, true, DecodeOptions{}, " hi"},
		{"empty", nil, true, DecodeOptions{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk, err := New(spmSmallVocab(c.prefix, false))
			if err != nil {
				t.Fatal(err)
			}
			if got := tk.Decode(c.ids, c.opt); got != c.want {
				t.Errorf("Decode(%v, %+v) = %q, want %q", c.ids, c.opt, got, c.want)
			}
		})
	}
}

func TestSPMNewErrors(t *testing.T) {
	cases := []struct {
		name   string
		modify func(v *Vocab)
		want   string
	}{
		{"bpe vocabulary", func(v *Vocab) { v.Model = ModelBPE }, "given a"},
		{"bos wanted but absent", func(v *Vocab) { v.BOS = NoToken }, "no BOS"},
		{"eos wanted but absent", func(v *Vocab) { v.AddEOS, v.EOS = true, NoToken }, "no EOS"},
		{"bytes uncovered without unk", func(v *Vocab) { v.UNK = NoToken }, "no UNK"},
		{"invalid vocabulary", func(v *Vocab) { v.Scores = v.Scores[:3] }, "scores"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := spmSmallVocab(true, false)
			c.modify(v)
			_, err := newSPM(v)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("newSPM: error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// spmNaiveEncode is a slow reference for one raw fragment: at every step
// scan all adjacent pairs and merge the best-scoring one, leftmost among
// equals, until no pair is a token.
func spmNaiveEncode(v *Vocab, ids map[string]int32, text string) []int32 {
	if v.AddSpacePrefix {
		text = " " + text
	}
	// Characters by their lead byte, as llama.cpp cuts them, so that
	// invalid UTF-8 splits the same way.
	var syms []string
	for rest := strings.ReplaceAll(text, " ", "▁"); rest != ""; {
		n := 1
		switch c := rest[0]; {
		case c >= 0xF0:
			n = 4
		case c >= 0xE0:
			n = 3
		case c >= 0xC0:
			n = 2
		}
		n = min(n, len(rest))
		syms = append(syms, rest[:n])
		rest = rest[n:]
	}
	for {
		best, bestScore := -1, float32(0)
		for i := 0; i+1 < len(syms); i++ {
			id, ok := ids[syms[i]+syms[i+1]]
			if ok && (best < 0 || v.Scores[id] > bestScore) {
				best, bestScore = i, v.Scores[id]
			}
		}
		if best < 0 {
			break
		}
		syms[best] += syms[best+1]
		syms = slices.Delete(syms, best+1, best+2)
	}
	var out []int32
	for _, s := range syms {
		if id, ok := ids[s]; ok {
			out = append(out, id)
			continue
		}
		for _, b := range []byte(s) {
			out = append(out, ids[fmt.Sprintf("<0x%02X>", b)])
		}
	}
	return out
}

func TestSPMMatchesNaiveMerge(t *testing.T) {
	tk := spmLoadModel(t)
	ids := map[string]int32{}
	for i, s := range tk.Vocab().Tokens {
		ids[s] = int32(i)
	}
	rng := rand.New(rand.NewSource(1))
	alphabet := []string{"a", "e", "i", "n", "t", "h", "s", "r", " ", " ", "\n", ".", "é", "日", "本", "🦙", "0", "1", "▁", "\xff", "\xe2", "\x80"}
	for i := range 10000 {
		var b strings.Builder
		for range rng.Intn(40) {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		s := b.String()
		if s == "" {
			continue
		}
		want := spmNaiveEncode(tk.Vocab(), ids, s)
		if got := tk.Encode(s, EncodeOptions{}); !slices.Equal(got, want) {
			t.Fatalf("case %d: Encode(%q) = %v, naive merge gives %v", i, s, got, want)
		}
	}
}

func TestSPMConcurrentEncode(t *testing.T) {
	tk := spmLoadModel(t)
	data, err := os.ReadFile(shareddata.Path(t, spmShakespare))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")[:4000]
	want := make([][]int32, len(lines))
	for i, l := range lines {
		want[i] = tk.Encode(l, EncodeOptions{AddSpecial: true})
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				j := (i + g*500) % len(lines)
				if got := tk.Encode(lines[j], EncodeOptions{AddSpecial: true}); !slices.Equal(got, want[j]) {
					errs <- fmt.Sprintf("goroutine %d, line %d: %v, want %v", g, j, got, want[j])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkEncodeShakespeareSPM(b *testing.B) {
	tk := spmLoadModel(b)
	data, err := os.ReadFile(shareddata.Path(b, spmShakespare))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		n := 0
		for b.Loop() {
			n = len(tk.Encode(text, EncodeOptions{}))
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	lines := strings.SplitAfter(text, "\n")
	b.Run("lines", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			for _, l := range lines {
				tk.Encode(l, EncodeOptions{})
			}
		}
	})
}
