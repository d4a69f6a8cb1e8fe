package tokenizer

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode"
)

// preTokenizer splits text into the pieces that byte-level BPE merges
// within: it calls emit with byte ranges that cover text exactly, in order,
// none empty. Ranges always fall on code point boundaries as llama.cpp
// decodes them (see decodeRune), so a piece never splits a character.
type preTokenizer func(text string, emit func(start, end int))

// splitFunc is one stage of a pre-tokenizer: it splits text[lo:hi] and
// treats hi as the end of the text, as llama.cpp applies each of its regexes
// to the pieces the previous one left.
type splitFunc func(text string, lo, hi int, emit func(start, end int))

// The pre-tokenizer families, each reproducing one list of regexes from
// llama.cpp's llm_tokenizer_bpe (llama-vocab.cpp), keyed by the
// tokenizer.ggml.pre names that llama.cpp maps to it. Names that share a
// regex list but change other llama.cpp settings are only listed where those
// settings do not affect pre-tokenization.
var preTokenizerNames = map[string]preTokenizer{}

func init() {
	gpt2 := chainSplits(splitGPT2)
	llama3 := chainSplits(func(s string, lo, hi int, emit func(int, int)) { splitLlama3(s, lo, hi, 3, emit) })
	qwen2 := chainSplits(func(s string, lo, hi int, emit func(int, int)) { splitLlama3(s, lo, hi, 1, emit) })
	// SmolLM (and StarCoder) isolate every number code point first, as
	// Hugging Face's Digits(individual_digits) pre-tokenizer does.
	smollm := chainSplits(splitEachNumber, splitGPT2)
	// llama.cpp's fallback for BPE files without a known pre-tokenizer:
	// punctuation runs, the GPT-2 rules, number runs, then ASCII digit
	// triples.
	def := chainSplits(splitDefaultPunct, splitGPT2, splitNumberRuns, splitDigitTriples)
	for _, n := range []string{"gpt-2", "phi-2", "mpt", "olmo"} {
		preTokenizerNames[n] = gpt2
	}
	for _, n := range []string{"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe"} {
		preTokenizerNames[n] = llama3
	}
	for _, n := range []string{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"} {
		preTokenizerNames[n] = qwen2
	}
	for _, n := range []string{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"} {
		preTokenizerNames[n] = smollm
	}
	// An empty name is what llama.cpp sees in a file without
	// tokenizer.ggml.pre; it warns and uses the default list.
	preTokenizerNames["default"] = def
	preTokenizerNames[""] = def
}

// preTokenizerFor returns the pre-tokenizer llama.cpp uses for the
// tokenizer.ggml.pre name pre; it returns an error naming pre and the known
// names when pre is not one of them.
func preTokenizerFor(pre string) (preTokenizer, error) {
	if p, ok := preTokenizerNames[pre]; ok {
		return p, nil
	}
	names := make([]string, 0, len(preTokenizerNames))
	for n := range preTokenizerNames {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return nil, fmt.Errorf("tokenizer: unknown pre-tokenizer %q (known: %s)", pre, strings.Join(names, ", "))
}

// chainSplits applies the stages in order, each to every piece the one
// before it produced, as llama.cpp's unicode_regex_split does with a list of
// regexes.
func chainSplits(stages ...splitFunc) preTokenizer {
	if len(stages) == 1 {
		st := stages[0]
		return func(text string, emit func(int, int)) { st(text, 0, len(text), emit) }
	}
	return func(text string, emit func(int, int)) {
		// The closures are built once per call, not once per piece.
		emits := make([]func(int, int), len(stages)+1)
		emits[len(stages)] = emit
		for i := len(stages) - 1; i >= 0; i-- {
			st, next := stages[i], emits[i+1]
			emits[i] = func(lo, hi int) { st(text, lo, hi, next) }
		}
		emits[0](0, len(text))
	}
}

// charClass is what llama.cpp's regexes can tell apart about a code point:
// \p{L}, \p{N}, \s, or anything else.
type charClass uint8

const (
	classNone   charClass = iota // past the end of the piece
	classOther                   // punctuation, symbols, marks, controls, unassigned
	classLetter                  // \p{L}
	classNumber                  // \p{N}
	classSpace                   // \s: the Unicode White_Space property

	classMask charClass = 7
	// punctFlag marks \p{P} (and the ASCII symbols the default
	// pre-tokenizer lists with it) on top of classOther.
	punctFlag charClass = 8
)

// asciiClass classifies ASCII. White_Space in ASCII is \t \n \v \f \r and
// space, the set llama.cpp's unicode tables and C++ std::regex agree on;
// 0x1C-0x1F are not in it although Python's str.isspace says they are.
var asciiClass = func() (t [128]charClass) {
	for c := 0; c < 128; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = classLetter
		case c >= '0' && c <= '9':
			t[c] = classNumber
		case c == ' ', c >= '\t' && c <= '\r':
			t[c] = classSpace
		case c < 0x20 || c == 0x7F:
			t[c] = classOther
		default:
			t[c] = classOther
			// The default pre-tokenizer's first regex takes \p{P} and
			// $ + < = > ^ ~ |: every printable ASCII symbol except `.
			if c != '`' {
				t[c] |= punctFlag
			}
		}
	}
	return t
}()

// bmpClass caches the class of every code point below 0x10000; it is
// built on first use because building it takes a few milliseconds.
var bmpClass struct {
	once sync.Once
	tab  []charClass
}

func buildBMPClass() {
	tab := make([]charClass, 0x10000)
	for r := rune(0); r < 0x10000; r++ {
		tab[r] = classifySlow(r)
	}
	bmpClass.tab = tab
}

// classifySlow classifies r from Go's Unicode tables. They are Unicode
// 15.0 and llama.cpp's generated ones 15.1, whose only additions that are
// letters or numbers are CJK Extension I; 15.1's other new characters are
// symbols, which fall in classOther as unassigned code points do.
func classifySlow(r rune) charClass {
	if r < 0x80 {
		return asciiClass[r]
	}
	switch {
	case r >= 0x2EBF0 && r <= 0x2EE5D: // CJK Unified Ideographs Extension I (Lo)
		return classLetter
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsPunct(r):
		return classOther | punctFlag
	}
	return classOther
}

// classOf returns r's class with its punctuation flag.
func classOf(r rune) charClass {
	if r < 0x80 {
		return asciiClass[r]
	}
	if r < 0x10000 {
		bmpClass.once.Do(buildBMPClass)
		return bmpClass.tab[r]
	}
	return classifySlow(r)
}

// decodeRune decodes the code point at s[i:hi] the way llama.cpp's
// unicode_cpt_from_utf8 does, so that pieces split where llama.cpp's do even
// in malformed text: an invalid byte is U+FFFD on its own, while overlong
// forms and surrogates decode to their values. Values above U+10FFFF, which
// make llama.cpp throw, count as invalid bytes.
func decodeRune(s string, i, hi int) (rune, int) {
	b := s[i]
	if b < 0x80 {
		return rune(b), 1
	}
	n := hi - i
	cont := func(k int) bool { return s[i+k]&0xC0 == 0x80 }
	switch {
	case b&0x40 == 0:
	case b&0x20 == 0:
		if n >= 2 && cont(1) {
			return rune(b&0x1F)<<6 | rune(s[i+1]&0x3F), 2
		}
	case b&0x10 == 0:
		if n >= 3 && cont(1) && cont(2) {
			return rune(b&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
		}
	case b&0x08 == 0:
		if n >= 4 && cont(1) && cont(2) && cont(3) {
			r := rune(b&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
			if r <= 0x10FFFF {
				return r, 4
			}
		}
	}
	return 0xFFFD, 1
}

// classAt returns the class and byte length of the code point at s[i],
// treating hi as the end of the text (classNone there). The punctuation flag
// is stripped.
func classAt(s string, i, hi int) (charClass, int) {
	if i >= hi {
		return classNone, 0
	}
	if b := s[i]; b < 0x80 {
		return asciiClass[b] & classMask, 1
	}
	r, n := decodeRune(s, i, hi)
	return classOf(r) & classMask, n
}

// runEnd returns the end of the run of code points of class cls that
// starts at pos, stepping over ASCII without decoding.
func runEnd(s string, pos, hi int, cls charClass) int {
	for pos < hi {
		if b := s[pos]; b < 0x80 {
			if asciiClass[b]&classMask != cls {
				return pos
			}
			pos++
			continue
		}
		k, m := classAt(s, pos, hi)
		if k != cls {
			return pos
		}
		pos += m
	}
	return pos
}

// splitGPT2 is llama.cpp's unicode_regex_split_custom_gpt2, the hand-written
// form of
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// with contractions matched case-sensitively.
func splitGPT2(s string, lo, hi int, emit func(int, int)) {
	pos := lo
	for pos < hi {
		start := pos
		c := s[pos]
		if c == '\'' && pos+1 < hi {
			c1 := s[pos+1]
			if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
				pos += 2
				emit(start, pos)
				continue
			}
			if pos+2 < hi {
				c2 := s[pos+2]
				if (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l') {
					pos += 3
					emit(start, pos)
					continue
				}
			}
		}
		cls, n := classAt(s, pos, hi)
		cls2 := cls
		if c == ' ' {
			cls2, _ = classAt(s, pos+1, hi)
		}
		switch cls2 {
		case classLetter, classNumber, classOther:
			// ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+`: an optional
			// space, then a run of one class.
			if c == ' ' {
				pos++
			}
			pos = runEnd(s, pos, hi, cls2)
			emit(start, pos)
			continue
		}
		pos = spaceRun(s, pos, hi, n, false)
		emit(start, pos)
	}
}

// spaceRun ends the whitespace alternatives at pos, where the code point
// of n bytes did not start any other alternative: \s*[\r\n]+ (when rn, up
// to the last \r or \n of the run), then \s+(?!\S) (the run less its last
// code point when something follows), then \s+, and a single code point
// when nothing matches.
func spaceRun(s string, pos, hi, n int, rn bool) int {
	end, last, count, lastRN := pos, pos, 0, -1
	for {
		k, m := classAt(s, end, hi)
		if k != classSpace {
			break
		}
		if b := s[end]; b == '\r' || b == '\n' {
			lastRN = end + 1
		}
		last = end
		end += m
		count++
	}
	switch {
	case rn && lastRN >= 0:
		return lastRN
	case count > 1 && end < hi:
		return last
	case count > 0:
		return end
	}
	return pos + n
}

// lowerASCII folds an ASCII capital to lower case. llama.cpp lower-cases
// contraction letters with its full Unicode table, but no non-ASCII code
// point lowers to one of s t m d r v e l, so ASCII folding is the same.
func lowerASCII(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// splitLlama3 is llama.cpp's unicode_regex_split_custom_llama3, the
// hand-written form of Llama 3's
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// With maxDigits 1 it is Qwen2's regex (\p{N} instead of \p{N}{1,3}), which
// llama.cpp runs through std::regex on a category-collapsed copy of the
// text; the alternatives are otherwise identical, so they split alike.
func splitLlama3(s string, lo, hi, maxDigits int, emit func(int, int)) {
	pos := lo
	for pos < hi {
		start := pos
		c := s[pos]
		if c == '\'' && pos+1 < hi {
			c1 := lowerASCII(s[pos+1])
			if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
				pos += 2
				emit(start, pos)
				continue
			}
			if pos+2 < hi {
				c2 := lowerASCII(s[pos+2])
				if (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l') {
					pos += 3
					emit(start, pos)
					continue
				}
			}
		}
		cls, n := classAt(s, pos, hi)
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if c != '\r' && c != '\n' && cls != classNumber {
			if next, _ := classAt(s, pos+n, hi); cls == classLetter || next == classLetter {
				pos = runEnd(s, pos+n, hi, classLetter)
				emit(start, pos)
				continue
			}
		}
		// \p{N}{1,maxDigits}
		if cls == classNumber {
			for count := 0; count < maxDigits; count++ {
				k, m := classAt(s, pos, hi)
				if k != classNumber {
					break
				}
				pos += m
			}
			emit(start, pos)
			continue
		}
		// ` ?[^\s\p{L}\p{N}]+[\r\n]*`; a space at the very end also lands
		// here in llama.cpp and comes out alone, as \s+ would give it.
		cls2 := cls
		if c == ' ' {
			cls2, _ = classAt(s, pos+1, hi)
		}
		if cls2 == classOther || cls2 == classNone {
			if c == ' ' {
				pos++
			}
			pos = runEnd(s, pos, hi, classOther)
			for pos < hi && (s[pos] == '\r' || s[pos] == '\n') {
				pos++
			}
			emit(start, pos)
			continue
		}
		pos = spaceRun(s, pos, hi, n, true)
		emit(start, pos)
	}
}

// splitRuns splits s[lo:hi] into maximal runs of code points that do and
// do not satisfy match; with single, each matching code point is a piece of
// its own. This is what a one-class regex such as \p{N}+ or \p{N} leaves
// when llama.cpp keeps the unmatched text between matches as pieces too.
func splitRuns(s string, lo, hi int, match func(charClass) bool, single bool, emit func(int, int)) {
	pos := lo
	runStart := lo
	inMatch := false
	for pos < hi {
		var cls charClass
		n := 1
		if b := s[pos]; b < 0x80 {
			cls = asciiClass[b]
		} else {
			var r rune
			r, n = decodeRune(s, pos, hi)
			cls = classOf(r)
		}
		m := match(cls)
		if pos > runStart && (m != inMatch || (m && single)) {
			emit(runStart, pos)
			runStart = pos
		}
		inMatch = m
		pos += n
	}
	if runStart < hi {
		emit(runStart, hi)
	}
}

func isNumberClass(c charClass) bool { return c&classMask == classNumber }

// isDefaultPunct is [\p{P}\$\+<=>\^~\|] as llama.cpp evaluates it: \p{P}
// outside ASCII, and in ASCII every printable symbol but the backquote.
func isDefaultPunct(c charClass) bool { return c&punctFlag != 0 }

// splitEachNumber is the \p{N} regex: every number code point alone.
func splitEachNumber(s string, lo, hi int, emit func(int, int)) {
	splitRuns(s, lo, hi, isNumberClass, true, emit)
}

// splitNumberRuns is the \p{N}+ regex.
func splitNumberRuns(s string, lo, hi int, emit func(int, int)) {
	splitRuns(s, lo, hi, isNumberClass, false, emit)
}

// splitDefaultPunct is the [\p{P}\$\+<=>\^~\|]+ regex.
func splitDefaultPunct(s string, lo, hi int, emit func(int, int)) {
	splitRuns(s, lo, hi, isDefaultPunct, false, emit)
}

// splitDigitTriples is the [0-9][0-9][0-9] regex: each search resumes after
// the previous match, so "12345" gives "123" and "45", and digits left over
// before a non-digit join the unmatched text that follows them.
func splitDigitTriples(s string, lo, hi int, emit func(int, int)) {
	isDigit := func(b byte) bool { return b >= '0' && b <= '9' }
	gap := lo
	for pos := lo; pos+3 <= hi; {
		// Stepping by bytes is safe: an ASCII digit is never part of a
		// multi-byte sequence.
		if isDigit(s[pos]) && isDigit(s[pos+1]) && isDigit(s[pos+2]) {
			if gap < pos {
				emit(gap, pos)
			}
			emit(pos, pos+3)
			pos += 3
			gap = pos
			continue
		}
		pos++
	}
	if gap < hi {
		emit(gap, hi)
	}
}
