package tokenizer

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// trainShakespeare returns Tiny Shakespeare from $MINNOW_DATA, skipping
// when the variable is unset and failing when the file is missing.
func trainShakespeare(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		tb.Skip("MINNOW_DATA is not set; skipping the test on Tiny Shakespeare")
	}
	b, err := os.ReadFile(filepath.Join(dir, "text", "tinyshakespeare", "input.txt"))
	if err != nil {
		tb.Fatalf("MINNOW_DATA is set but Tiny Shakespeare is missing: %v", err)
	}
	return string(b)
}

// checkTrainedVocab checks what every trained vocabulary promises: it is
// valid, its texts are unique, and each merge joins two tokens into a
// third.
func checkTrainedVocab(t *testing.T, v *Vocab) {
	t.Helper()
	if err := v.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if v.Model != ModelBPE || len(v.Types) != len(v.Tokens) {
		t.Fatalf("model %q, %d types for %d tokens", v.Model, len(v.Types), len(v.Tokens))
	}
	ids := make(map[string]int, len(v.Tokens))
	for i, tok := range v.Tokens {
		if j, dup := ids[tok]; dup {
			t.Fatalf("tokens %d and %d are both %q", j, i, tok)
		}
		ids[tok] = i
	}
	for r, m := range v.Merges {
		l, rt, ok := strings.Cut(m, " ")
		_, okl := ids[l]
		_, okr := ids[rt]
		_, okj := ids[l+rt]
		if !ok || !okl || !okr || !okj {
			t.Fatalf("merge %d %q does not join two tokens into a third", r, m)
		}
	}
}

func TestTrainFirstMerges(t *testing.T) {
	sennrich := strings.Repeat("low ", 5) + strings.Repeat("lower ", 2) +
		strings.Repeat("newest ", 6) + strings.Repeat("widest ", 3)
	sennrich = strings.TrimSuffix(sennrich, " ")
	cases := []struct {
		name   string
		corpus string
		cfg    TrainConfig
		merges []string
		tokens []string // the learned tokens, after the 256 byte tokens
	}{{
		// Wikipedia's example: aa (4 overlapping pairs), then ab and aa
		// tie at 2 with the smaller pair (a, b) first, then aa+ab; what
		// is left occurs once, below MinFrequency.
		name:   "aaabdaaabac",
		corpus: "aaabdaaabac",
		cfg:    TrainConfig{VocabSize: 1000, MinFrequency: 2},
		merges: []string{"a a", "a b", "aa ab"},
		tokens: []string{"aa", "ab", "aaab"},
	}, {
		// Sennrich et al.'s words, pre-tokenized GPT-2 style so that the
		// space (Ġ) leads every word but the first: es and st tie at 9
		// (e < s), then est; lo and ow tie at 7; then five pairs tie at 6
		// and those starting with Ġ (byte 32) come first.
		name:   "low lower newest widest",
		corpus: sennrich,
		cfg:    TrainConfig{VocabSize: 262, Threads: 1},
		merges: []string{"e s", "es t", "l o", "lo w", "Ġ n", "Ġ low"},
		tokens: []string{"es", "est", "lo", "low", "Ġn", "Ġlow"},
	}, {
		name:   "vocabulary far beyond the corpus",
		corpus: "aaabdaaabac",
		cfg:    TrainConfig{VocabSize: 1 << 40, MinFrequency: 2},
		merges: []string{"a a", "a b", "aa ab"},
		tokens: []string{"aa", "ab", "aaab"},
	}, {
		name:   "min frequency above every count",
		corpus: "abc abc",
		cfg:    TrainConfig{VocabSize: 300, MinFrequency: 3},
		merges: nil,
		tokens: []string{},
	}, {
		// The specials' text is cut out of the corpus; what remains is
		// "ab" twice.
		name:   "specials",
		corpus: "ab<|endoftext|>ab<|endoftext|><|endoftext|>",
		cfg:    TrainConfig{VocabSize: 400, Special: []string{"<|endoftext|>"}},
		merges: []string{"a b"},
		tokens: []string{"ab", "<|endoftext|>"},
	}, {
		name:   "empty corpus",
		corpus: "",
		cfg:    TrainConfig{VocabSize: 300},
		merges: nil,
		tokens: []string{},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Train(strings.NewReader(tc.corpus), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkTrainedVocab(t, v)
			if !reflect.DeepEqual(v.Merges, tc.merges) {
				t.Errorf("merges %q, want %q", v.Merges, tc.merges)
			}
			if got := v.Tokens[256:]; !reflect.DeepEqual(got, tc.tokens) {
				t.Errorf("learned tokens %q, want %q", got, tc.tokens)
			}
			if v.Tokens['a'] != "a" || v.Tokens[' '] != "Ġ" || v.Tokens['\n'] != "Ċ" {
				t.Errorf("byte tokens a, space, newline are %q %q %q, want GPT-2's a Ġ Ċ",
					v.Tokens['a'], v.Tokens[' '], v.Tokens['\n'])
			}
		})
	}
}

// naiveTrain is the textbook algorithm, recounting every pair before each
// merge, with Train's rules: ties to the smallest pair of ids, a merge
// spelling an existing token reuses its id, merges spelling a special are
// never made. Train must agree with it merge for merge.
func naiveTrain(words map[string]int64, vocabSize int, minFreq int64, special []string) (tokens, merges []string) {
	forms := trainByteForms()
	tokens = append(tokens, forms[:]...)
	ids := make(map[string]int32)
	for i, f := range tokens {
		ids[f] = int32(i)
	}
	type word struct {
		syms  []int32
		count int64
	}
	var ws []word
	for w, c := range words {
		syms := make([]int32, len(w))
		for i := range len(w) {
			syms[i] = int32(w[i])
		}
		ws = append(ws, word{syms, c})
	}
	banned := make(map[trainPair]bool)
	for len(tokens) < vocabSize-len(special) {
		counts := make(map[trainPair]int64)
		for _, w := range ws {
			for i := 1; i < len(w.syms); i++ {
				counts[makeTrainPair(w.syms[i-1], w.syms[i])] += w.count
			}
		}
		var best trainPair
		var bc int64
		for p, c := range counts {
			if !banned[p] && (c > bc || (c == bc && p < best)) {
				best, bc = p, c
			}
		}
		if bc == 0 || bc < minFreq {
			break
		}
		l, r := tokens[best.left()], tokens[best.right()]
		if slices.Contains(special, l+r) {
			banned[best] = true
			continue
		}
		x, ok := ids[l+r]
		if !ok {
			x = int32(len(tokens))
			tokens = append(tokens, l+r)
			ids[l+r] = x
		}
		merges = append(merges, l+" "+r)
		for wi := range ws {
			s := ws[wi].syms
			var out []int32
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best.left() && s[i+1] == best.right() {
					out = append(out, x)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			ws[wi].syms = out
		}
	}
	return tokens, merges
}

func TestTrainMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var random strings.Builder
	for range 3000 {
		// Words over a tiny alphabet repeat pairs and overlap ("aaaa").
		for range 1 + rng.IntN(8) {
			random.WriteByte("abc"[rng.IntN(3)])
		}
		random.WriteByte(" \n"[rng.IntN(2)])
	}
	cases := []struct {
		name   string
		corpus string
		cfg    TrainConfig
	}{
		{"random words", random.String(), TrainConfig{VocabSize: 600}},
		{"random words, min frequency 5", random.String(), TrainConfig{VocabSize: 600, MinFrequency: 5}},
		{"runs", strings.Repeat("aaaa aaaaaaa abababa aaa\n", 30), TrainConfig{VocabSize: 300}},
		{"banned special", strings.Repeat("abc abcabc cab\n", 20), TrainConfig{VocabSize: 290, Special: []string{"abc", "ca"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Train(strings.NewReader(tc.corpus), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkTrainedVocab(t, v)
			s, err := tc.cfg.settings()
			if err != nil {
				t.Fatal(err)
			}
			c := newTrainCounts()
			c.addText(tc.corpus, &s)
			words := make(map[string]int64)
			for i, p := range c.pieces {
				words[p] = c.counts[i]
			}
			tokens, merges := naiveTrain(words, tc.cfg.VocabSize, s.minFreq, tc.cfg.Special)
			if !reflect.DeepEqual(v.Merges, merges) {
				t.Fatalf("merges differ from the naive trainer's:\n got %q\nwant %q", v.Merges, merges)
			}
			if got := v.Tokens[:len(v.Tokens)-len(tc.cfg.Special)]; !reflect.DeepEqual(got, tokens) {
				t.Fatalf("tokens differ from the naive trainer's")
			}
		})
	}
}

func TestTrainSpecialLayout(t *testing.T) {
	corpus := strings.Repeat("hello world<|endoftext|>", 50) + strings.Repeat("ab ", 20)
	v, err := Train(strings.NewReader(corpus), TrainConfig{
		VocabSize: 300,
		// "ab" would be learned; as a special it must stay the only
		// token with that text.
		Special: []string{"<|endoftext|>", "<|pad|>", "ab"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTrainedVocab(t, v)
	n := len(v.Tokens)
	for i, sp := range []string{"<|endoftext|>", "<|pad|>", "ab"} {
		id := n - 3 + i
		if v.Tokens[id] != sp || v.Types[id] != TypeControl {
			t.Errorf("token %d is %q of type %d, want special %q (control)", id, v.Tokens[id], v.Types[id], sp)
		}
	}
	if first := int32(n - 3); v.BOS != first || v.EOS != first || v.EOT != first {
		t.Errorf("BOS %d EOS %d EOT %d, want all %d", v.BOS, v.EOS, v.EOT, first)
	}
	if v.UNK != NoToken || v.PAD != NoToken || v.Pre != "gpt-2" {
		t.Errorf("UNK %d PAD %d Pre %q, want none, none, gpt-2", v.UNK, v.PAD, v.Pre)
	}
	for i, tok := range v.Tokens[:n-3] {
		if v.Types[i] != TypeNormal || strings.Contains(tok, "endof") {
			t.Errorf("token %d %q of type %d: want normal tokens learned without the specials' text", i, tok, v.Types[i])
		}
	}

	plain, err := Train(strings.NewReader(corpus), TrainConfig{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	if plain.BOS != NoToken || plain.EOS != NoToken || plain.EOT != NoToken {
		t.Errorf("without specials BOS %d EOS %d EOT %d, want none", plain.BOS, plain.EOS, plain.EOT)
	}
}

func TestTrainDeterministic(t *testing.T) {
	text := trainShakespeare(t)
	want, err := Train(strings.NewReader(text), TrainConfig{VocabSize: 1024, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkTrainedVocab(t, want)
	if len(want.Tokens) != 1024 {
		t.Fatalf("%d tokens, want 1024", len(want.Tokens))
	}
	cases := []struct {
		name    string
		threads int
		reader  func() io.Reader
	}{
		{"threads 2", 2, func() io.Reader { return strings.NewReader(text) }},
		{"threads 4", 4, func() io.Reader { return strings.NewReader(text) }},
		{"threads default, one byte per read", 0, func() io.Reader { return iotest.OneByteReader(strings.NewReader(text)) }},
		{"threads 3, half reads", 3, func() io.Reader { return iotest.HalfReader(strings.NewReader(text)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Train(tc.reader(), TrainConfig{VocabSize: 1024, Threads: tc.threads})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				for i := range min(len(got.Merges), len(want.Merges)) {
					if got.Merges[i] != want.Merges[i] {
						t.Fatalf("merge %d is %q, want %q", i, got.Merges[i], want.Merges[i])
					}
				}
				t.Fatalf("vocabulary differs from the one-thread run (%d vs %d merges)", len(got.Merges), len(want.Merges))
			}
		})
	}
}

// TestTrainChunkingKeepsPieces checks the claim chunking rests on: the
// places where chunks are cut change no piece, for every pre-tokenizer.
func TestTrainChunkingKeepsPieces(t *testing.T) {
	text := trainShakespeare(t)
	// With CRLF line ends only the spaces between letters are places to
	// cut; blank lines and runs of spaces test the lookahead of \s+(?!\S).
	text += strings.ReplaceAll(text, "\n", "\r\n") + strings.ReplaceAll(text, "\n", "\n\n ") +
		strings.ReplaceAll(text, " ", "  ")
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2", "smollm", "default"} {
		t.Run(pre, func(t *testing.T) {
			s, err := TrainConfig{VocabSize: 256, Pre: pre, Threads: 2}.settings()
			if err != nil {
				t.Fatal(err)
			}
			whole := newTrainCounts()
			whole.addText(text, &s)
			chunked, err := trainCountPieces([]trainSource{{
				name: "text",
				open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(text)), nil },
			}}, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(chunked.pieces) != len(whole.pieces) {
				t.Errorf("%d distinct pieces in chunks, %d in the whole text", len(chunked.pieces), len(whole.pieces))
			}
			diff := 0
			for i, p := range whole.pieces {
				if n := chunked.counts[chunked.index[p]]; chunked.pieces[chunked.index[p]] != p || n != whole.counts[i] {
					if diff++; diff <= 5 {
						t.Errorf("piece %q counted %d times in chunks, %d in the whole text", p, n, whole.counts[i])
					}
				}
			}
		})
	}
}

func TestTrainChunkCuts(t *testing.T) {
	long := strings.Repeat("x", trainMaxChunk+10)
	pad := strings.Repeat("a", trainChunk)
	cases := []struct {
		name     string
		text     string
		specials []string
		cuts     []int // chunk lengths, last one included
	}{
		{"short", "hello\nworld\n", nil, []int{12}},
		{"lone newline", pad + "\nb" + "c\n", nil, []int{trainChunk + 1, 3}},
		{"blank line is no place", pad + "\n\nb\ncd", nil, []int{trainChunk + 4, 2}},
		{"newline after a space is no place", pad + " \nbcd", nil, []int{trainChunk + 5}},
		{"newline before a space is no place", pad + "\n bcd", nil, []int{trainChunk + 5}},
		{"space between letters", pad + "a bc", nil, []int{trainChunk + 1, 3}},
		{"space before punctuation is no place", pad + " .bcd", nil, []int{trainChunk + 5}},
		{"two spaces are no place", pad + "  bcd", nil, []int{trainChunk + 5}},
		// Places after the newline and before the first space would split
		// the special.
		{"a special is not split", pad + "xb\nc d e fghij", []string{"b\nc d"}, []int{trainChunk + 6, 8}},
		{"a special nearby does not matter", pad + "a b\nc", []string{"a b!"}, []int{trainChunk + 1, 4}},
		{"no place: cut at the maximum", long, nil, []int{trainMaxChunk, 10}},
		{"no place: cut after a rune straddling the maximum", long[:trainMaxChunk-1] + "é" + "yzabc", nil, []int{trainMaxChunk + 1, 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := make(chan string, 16)
			sp, n := trainSpecialBytes(tc.specials)
			buf := make([]byte, 0, trainMaxChunk+trainReadSize+n)
			if err := trainChunkStream(iotest.HalfReader(strings.NewReader(tc.text)), buf, sp, n, out); err != nil {
				t.Fatal(err)
			}
			close(out)
			var lens []int
			var joined strings.Builder
			for c := range out {
				lens = append(lens, len(c))
				joined.WriteString(c)
				if !utf8.ValidString(c) {
					t.Errorf("chunk of %d bytes is not valid UTF-8", len(c))
				}
			}
			if !reflect.DeepEqual(lens, tc.cuts) {
				t.Errorf("chunk lengths %v, want %v", lens, tc.cuts)
			}
			if joined.String() != tc.text {
				t.Errorf("chunks do not add up to the text")
			}
		})
	}
}

func TestTrainShakespeareRoundTrip(t *testing.T) {
	text := trainShakespeare(t)
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2", "smollm"} {
		t.Run(pre, func(t *testing.T) {
			v, err := Train(strings.NewReader(text), TrainConfig{VocabSize: 2048, Pre: pre})
			if err != nil {
				t.Fatal(err)
			}
			checkTrainedVocab(t, v)
			if len(v.Tokens) != 2048 || v.Pre != pre {
				t.Fatalf("%d tokens, pre-tokenizer %q; want 2048, %q", len(v.Tokens), v.Pre, pre)
			}
			tok, err := New(v)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			ids := tok.Encode(text, EncodeOptions{})
			if got := tok.Decode(ids, DecodeOptions{}); got != text {
				t.Fatalf("Decode(Encode(text)) differs from text (%d vs %d bytes)", len(got), len(text))
			}
			if bpt := float64(len(text)) / float64(len(ids)); bpt <= 2.5 {
				t.Errorf("%.2f bytes per token, want more than 2.5", bpt)
			} else {
				t.Logf("%d bytes in %d tokens: %.2f bytes per token", len(text), len(ids), bpt)
			}
		})
	}
}

func TestTrainFilesSpecials(t *testing.T) {
	text := trainShakespeare(t)
	dir := t.TempDir()
	// Two files split at a line boundary: TrainFiles must learn what
	// Train learns from the whole text, since chunks never span files
	// and a line end is a place to cut anyway.
	mid := strings.Index(text[len(text)/2:], "\n") + len(text)/2 + 1
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(a, []byte(text[:mid]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(text[mid:]), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := TrainConfig{VocabSize: 1024, Special: []string{"<|endoftext|>"}}
	v, err := TrainFiles(cfg, a, b)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Train(strings.NewReader(text), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, whole) {
		t.Errorf("TrainFiles on two halves differs from Train on the whole text")
	}
	tok, err := New(v)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	eot := v.EOT
	cases := []struct {
		name  string
		text  string
		parse bool
		eots  int
	}{
		{"parsed special", "First Citizen:<|endoftext|>All:", true, 1},
		{"two parsed specials", "<|endoftext|>x<|endoftext|>", true, 2},
		{"special as text", "First Citizen:<|endoftext|>All:", false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids := tok.Encode(tc.text, EncodeOptions{ParseSpecial: tc.parse})
			n := 0
			for _, id := range ids {
				if id == eot {
					n++
				}
			}
			if n != tc.eots {
				t.Errorf("Encode gives %v with %d end-of-text tokens, want %d", ids, n, tc.eots)
			}
			if got := tok.Decode(ids, DecodeOptions{}); got != tc.text {
				t.Errorf("Decode gives %q, want %q", got, tc.text)
			}
		})
	}
}

func TestTrainErrors(t *testing.T) {
	readErr := errors.New("disk on fire")
	good := strings.NewReader("hello")
	cases := []struct {
		name   string
		corpus io.Reader
		cfg    TrainConfig
		want   string
	}{
		{"vocabulary below the bytes", good, TrainConfig{VocabSize: 255}, "below 256"},
		{"vocabulary without room for specials", good, TrainConfig{VocabSize: 257, Special: []string{"<a>", "<b>"}}, "below 258"},
		{"unknown pre-tokenizer", good, TrainConfig{VocabSize: 300, Pre: "no-such-pre"}, "no-such-pre"},
		{"negative minimum frequency", good, TrainConfig{VocabSize: 300, MinFrequency: -1}, "minimum frequency"},
		{"negative threads", good, TrainConfig{VocabSize: 300, Threads: -2}, "thread"},
		{"empty special", good, TrainConfig{VocabSize: 300, Special: []string{""}}, "empty special"},
		{"repeated special", good, TrainConfig{VocabSize: 300, Special: []string{"<s>", "<s>"}}, "twice"},
		{"special spelled as a byte token", good, TrainConfig{VocabSize: 300, Special: []string{"Ġ"}}, "byte token"},
		{"read error", iotest.ErrReader(readErr), TrainConfig{VocabSize: 300}, "disk on fire"},
		{"read error after data", io.MultiReader(strings.NewReader(strings.Repeat("a b\n", 1<<18)), iotest.ErrReader(readErr)),
			TrainConfig{VocabSize: 300, Threads: 2}, "disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Train(tc.corpus, tc.cfg)
			if err == nil {
				t.Fatalf("no error, vocabulary of %d tokens", len(v.Tokens))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(tc.want, "fire") && !errors.Is(err, readErr) {
				t.Errorf("error %q does not wrap the read error", err)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "missing.txt")
	for _, paths := range [][]string{nil, {missing}} {
		if _, err := TrainFiles(TrainConfig{VocabSize: 300}, paths...); err == nil {
			t.Errorf("TrainFiles(%q): no error", paths)
		} else if len(paths) > 0 && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("TrainFiles(%q): error %q does not wrap os.ErrNotExist", paths, err)
		}
	}
}

// BenchmarkTrain trains a 4096-token vocabulary on Tiny Shakespeare with
// two threads; its MB/s, over the corpus, is the figure to extrapolate
// from.
func BenchmarkTrain(b *testing.B) {
	text := []byte(trainShakespeare(b))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		v, err := Train(bytes.NewReader(text), TrainConfig{VocabSize: 4096, Threads: 2, Special: []string{"<|endoftext|>"}})
		if err != nil {
			b.Fatal(err)
		}
		if len(v.Tokens) != 4096 {
			b.Fatalf("%d tokens, want 4096", len(v.Tokens))
		}
	}
}
