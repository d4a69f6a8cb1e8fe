package tokenizer

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// preSplit collects the pieces a pre-tokenizer emits.
func preSplit(t testing.TB, pre, text string) []string {
	t.Helper()
	p, err := preTokenizerFor(pre)
	if err != nil {
		t.Fatal(err)
	}
	var pieces []string
	p(text, func(start, end int) { pieces = append(pieces, text[start:end]) })
	return pieces
}

// The expectations follow llama.cpp's splitters (unicode.cpp) and, for the
// regexes it runs through std::regex, the regexes' own semantics.
func TestPreTokenizerSplits(t *testing.T) {
	tests := []struct {
		pre, text string
		want      []string
	}{
		{"gpt-2", "", nil},
		{"gpt-2", "Hello world", []string{"Hello", " world"}},
		{"gpt-2", "  Hello", []string{" ", " Hello"}},
		{"gpt-2", "I'm don't", []string{"I", "'m", " don", "'t"}},
		{"gpt-2", "I'M", []string{"I", "'", "M"}}, // contractions are case-sensitive
		{"gpt-2", "we'll've'd're", []string{"we", "'ll", "'ve", "'d", "'re"}},
		{"gpt-2", "'", []string{"'"}},
		{"gpt-2", "x\n\n y", []string{"x", "\n\n", " y"}},
		{"gpt-2", "hi  ", []string{"hi", "  "}},
		{"gpt-2", "3.14 !!?", []string{"3", ".", "14", " !!?"}},
		{"gpt-2", " 123abc", []string{" 123", "abc"}},
		{"gpt-2", "ied 4 ½ months", []string{"ied", " 4", " ½", " months"}},
		{"gpt-2", "a\u00a0b\u3000c", []string{"a", "\u00a0", "b", "\u3000", "c"}},
		{"gpt-2", "a\u00a0\u00a0b", []string{"a", "\u00a0", "\u00a0", "b"}}, // NBSP is \s
		{"gpt-2", "a\x1c\x1cb", []string{"a", "\x1c\x1c", "b"}},             // U+001C is not White_Space
		{"gpt-2", "нещо на", []string{"нещо", " на"}},
		{"gpt-2", "🦙.cpp", []string{"🦙.", "cpp"}},
		{"gpt-2", "a \t b", []string{"a", " \t", " b"}},
		{"gpt-2", "\t\n", []string{"\t\n"}},

		{"llama-bpe", "Hello world", []string{"Hello", " world"}},
		{"llama-bpe", "I'M YOU'LL", []string{"I", "'M", " YOU", "'LL"}},
		{"llama-bpe", "HE'S'LLAMA", []string{"HE", "'S", "'LL", "AMA"}}, // case-insensitive contractions
		{"gpt-2", "HE'S'LLAMA", []string{"HE", "'", "S", "'", "LLAMA"}},
		{"llama-bpe", "12345", []string{"123", "45"}},
		{"llama-bpe", "hello!!\n\nworld", []string{"hello", "!!\n\n", "world"}},
		{"llama-bpe", "  x", []string{" ", " x"}},
		{"llama-bpe", "\tfoo", []string{"\tfoo"}},
		{"llama-bpe", "a \n b", []string{"a", " \n", " b"}},
		{"llama-bpe", "$100", []string{"$", "100"}},
		{"llama-bpe", "e.g.", []string{"e", ".g", "."}},
		{"llama-bpe", "x \n\n  ", []string{"x", " \n\n", "  "}},
		{"llama-bpe", "a ", []string{"a", " "}},
		{"llama-bpe", "\n =", []string{"\n", " ="}},
		{"llama-bpe", "3\n3", []string{"3", "\n", "3"}},

		{"qwen2", "12345", []string{"1", "2", "3", "4", "5"}},
		{"qwen2", "I'M 42", []string{"I", "'M", " ", "4", "2"}},
		{"qwen2", "x²y", []string{"x", "²", "y"}},

		{"smollm", "abc123 4", []string{"abc", "1", "2", "3", " ", "4"}},
		{"smollm", "x 12y", []string{"x", " ", "1", "2", "y"}},
		{"smollm", "I'm", []string{"I", "'m"}},

		{"default", "Hello, world!! 12345 x", []string{"Hello", ",", " world", "!!", " ", "123", "45", " x"}},
		{"default", " $x", []string{" ", "$", "x"}},
		{"default", "a`b", []string{"a", "`", "b"}},
		{"default", "12a345", []string{"12", "a", "345"}},
		{"default", "1234½5678", []string{"123", "4½", "567", "8"}},
		{"", " $x", []string{" ", "$", "x"}},
	}
	for _, tc := range tests {
		got := preSplit(t, tc.pre, tc.text)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: split(%q) = %q, want %q", tc.pre, tc.text, got, tc.want)
		}
	}
}

func TestPreTokenizerAliases(t *testing.T) {
	text := "I'M 12345 don't  x"
	for alias, canon := range map[string]string{
		"phi-2": "gpt-2", "mpt": "gpt-2", "olmo": "gpt-2",
		"llama3": "llama-bpe", "llama-v3": "llama-bpe", "dbrx": "llama-bpe", "smaug-bpe": "llama-bpe",
		"deepseek-r1-qwen": "qwen2", "stablelm2": "qwen2", "megrez": "qwen2",
		"starcoder": "smollm", "refact": "smollm", "command-r": "smollm", "codeshell": "smollm", "exaone": "smollm",
	} {
		if got, want := preSplit(t, alias, text), preSplit(t, canon, text); !slices.Equal(got, want) {
			t.Errorf("%s split %q as %q, but %s as %q", alias, text, got, canon, want)
		}
	}
}

func TestPreTokenizerUnknown(t *testing.T) {
	for _, name := range []string{"gpt2", "LLAMA-BPE", "tekken"} {
		_, err := preTokenizerFor(name)
		if err == nil || !strings.Contains(err.Error(), `"`+name+`"`) || !strings.Contains(err.Error(), "llama-bpe") {
			t.Errorf("preTokenizerFor(%q) error = %v, want one naming it and the known names", name, err)
		}
	}
}

func TestDecodeRuneLikeLlamaCpp(t *testing.T) {
	tests := []struct {
		in   string
		r    rune
		size int
	}{
		{"a", 'a', 1},
		{"é", 'é', 2},
		{"€", '€', 3},
		{"🦙", '🦙', 4},
		{"\xff", 0xFFFD, 1},
		{"\x80", 0xFFFD, 1},
		{"\xc3", 0xFFFD, 1},         // truncated
		{"\xe2\x82", 0xFFFD, 1},     // truncated
		{"\xe2\x82A", 0xFFFD, 1},    // bad continuation
		{"\xc0\x80", 0, 2},          // overlong NUL decodes, as in llama.cpp
		{"\xed\xa0\x80", 0xD800, 3}, // surrogate decodes, as in llama.cpp
		{"\xf4\x90\x80\x80", 0xFFFD, 1},
		{"\xf8\x88\x80\x80\x80", 0xFFFD, 1},
	}
	for _, tc := range tests {
		r, n := decodeRune(tc.in, 0, len(tc.in))
		if r != tc.r || n != tc.size {
			t.Errorf("decodeRune(%q) = %U, %d; want %U, %d", tc.in, r, n, tc.r, tc.size)
		}
	}
}

// TestPreTokenizerCoverage checks on random text, valid or not, that every
// pre-tokenizer emits non-empty ranges covering the text in order, each
// starting on a code point boundary.
func TestPreTokenizerCoverage(t *testing.T) {
	alphabet := []string{"a", "Z", "é", "ß", "я", "中", "🦙", "1", "½", "²", "٣", " ", "  ", "\t", "\n", "\r",
		"\u00a0", "\u3000", "\u2028", "'", "'s", "'LL", "!", "$", "`", ".", "\x00", "\x1c", "\xff", "\xc3", "\xed\xa0\x80",
		"\u0301", "\U000E0001"}
	rng := rand.New(rand.NewSource(1))
	names := []string{"gpt-2", "llama-bpe", "qwen2", "smollm", "default"}
	for iter := 0; iter < 2000; iter++ {
		var b strings.Builder
		for n := rng.Intn(24); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		text := b.String()
		starts := map[int]bool{len(text): true}
		for i := 0; i < len(text); {
			starts[i] = true
			_, n := decodeRune(text, i, len(text))
			i += n
		}
		for _, name := range names {
			p, _ := preTokenizerFor(name)
			next := 0
			p(text, func(start, end int) {
				if start != next || end <= start || end > len(text) || !starts[start] || !starts[end] {
					t.Fatalf("%s on %q: emitted [%d,%d) after %d", name, text, start, end, next)
				}
				next = end
			})
			if next != len(text) {
				t.Fatalf("%s on %q: covered %d of %d bytes", name, text, next, len(text))
			}
		}
	}
}

// TestClassesMatchUnicodeTables checks the cached class table against the
// definitions it caches, so a change to one cannot silently skip the other.
func TestClassesMatchUnicodeTables(t *testing.T) {
	for r := rune(0); r < 0x30000; r++ {
		if got, want := classOf(r), classifySlow(r); got != want {
			t.Fatalf("classOf(%U) = %d, want %d", r, got, want)
		}
	}
	for _, tc := range []struct {
		r    rune
		want charClass
	}{
		{'a', classLetter}, {'1', classNumber}, {'½', classNumber}, {' ', classSpace}, {'\v', classSpace},
		{0x2EBF0, classLetter}, {0x2EE5D, classLetter}, {0x2EE5E, classOther}, // Unicode 15.1, as llama.cpp has it
		{0x85, classSpace}, {0x1c, classOther}, {0x200b, classOther}, {'!', classOther}, {0xFFFD, classOther},
	} {
		if got := classOf(tc.r) & classMask; got != tc.want {
			t.Errorf("class of %U = %d, want %d", tc.r, got, tc.want)
		}
	}
}

func FuzzPreTokenizers(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "I'M 12345 don't", "a \n\n b\t", "\xff\xc3(", "½²٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, name := range []string{"gpt-2", "llama-bpe", "qwen2", "smollm", "default"} {
			p, _ := preTokenizerFor(name)
			next := 0
			p(text, func(start, end int) {
				if start != next || end <= start || end > len(text) {
					t.Fatalf("%s on %q: emitted [%d,%d) after %d", name, text, start, end, next)
				}
				next = end
			})
			if next != len(text) {
				t.Fatalf("%s on %q: covered %d of %d bytes", name, text, next, len(text))
			}
		}
	})
}
