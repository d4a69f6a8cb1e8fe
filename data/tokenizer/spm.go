package tokenizer

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
)

// This file is the SentencePiece ("llama") tokenizer as llama.cpp runs it:
// not SentencePiece's own BPE encoder but llama.cpp's merge loop, whose ids
// are what a model converted to GGUF sees. Where the two could differ, this
// follows llama.cpp.

// spmSpace is U+2581 LOWER ONE EIGHTH BLOCK, which SentencePiece writes for
// a space inside pieces.
const spmSpace = "\u2581"

// spmUnset marks a symbol whose token id has not been looked up yet.
const spmUnset int32 = -2

// spmTokenizer is immutable once built; per-call state lives in pooled
// scratch space, so one tokenizer serves any number of goroutines.
type spmTokenizer struct {
	vocab *Vocab
	// ids maps token text to id. Where two tokens share a text the later
	// one wins, as in llama.cpp's token_to_id.
	ids    map[string]int32
	scores []float32
	// maxLen is the longest token text in bytes: no longer pair can be a
	// token, which saves a map lookup for most pairs late in a merge.
	maxLen int
	// byteIDs is the fallback token of each byte of a symbol that is not
	// a token.
	byteIDs [256]int32
	// pairs is the id of the concatenation of two characters that are
	// each ASCII or "▁" (-1 when it is no token): most of the pairs a
	// merge looks up, answered without hashing.
	pairs [spmSmall * spmSmall]int32
	// joins has bit x<<8|y set when some token holds byte x followed by
	// byte y. Where two neighbouring characters meet at a byte pair that
	// no token holds, no merge can ever span them.
	joins [256 * 256 / 64]uint64
	// parsed lists the control, user-defined and unknown tokens, longest
	// text first, which ParseSpecial splits raw text on; user lists the
	// user-defined ones alone, which llama.cpp splits on even without
	// ParseSpecial.
	parsed, user []int32
	// pieces is each token's decoded text; hidden marks the control and
	// unknown tokens that DecodeOptions.SkipSpecial leaves out.
	pieces []string
	hidden []bool
	pool   sync.Pool
}

// spmSymbol is a run of bytes of the escaped text: one UTF-8 character at
// first, then the concatenation of merged neighbours. Merging always folds
// the right symbol into the left one, so a symbol keeps its start.
type spmSymbol struct {
	start, n   int32
	prev, next int32
	id         int32
}

// spmBigram is a candidate merge of two adjacent symbols into token id.
type spmBigram struct {
	left, right int32
	size        int32
	id          int32
	score       float32
}

// spmFragment is a span of the input that is either raw text (id < 0) or
// the text of a special token that partitioning matched (id >= 0).
type spmFragment struct {
	start, end int
	id         int32
}

type spmScratch struct {
	buf    []byte
	syms   []spmSymbol
	heap   []spmBigram
	frags  []spmFragment
	frags2 []spmFragment
}

// spmSmall counts the characters of the pairs table: ASCII, then "▁".
const spmSmall = 129

// spmPoolLimit caps the escaped-text buffer (in bytes) of scratch space
// returned to the pool, so that one huge input does not keep its memory
// alive for the small ones after it.
const spmPoolLimit = 4 << 20

// newSPM builds the SentencePiece tokenizer of v. It returns an error when v
// is invalid or not an SPM vocabulary, asks for a BOS or EOS it lacks, or has
// a byte with neither a byte token nor an UNK to stand for it.
func newSPM(v *Vocab) (Tokenizer, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if v.Model != ModelSPM {
		return nil, fmt.Errorf("tokenizer: SentencePiece tokenizer given a %q vocabulary", v.Model)
	}
	if v.AddBOS && v.BOS == NoToken {
		return nil, fmt.Errorf("tokenizer: the vocabulary asks for BOS to be added but has no BOS token")
	}
	if v.AddEOS && v.EOS == NoToken {
		return nil, fmt.Errorf("tokenizer: the vocabulary asks for EOS to be added but has no EOS token")
	}
	n := len(v.Tokens)
	t := &spmTokenizer{
		vocab:  v,
		ids:    make(map[string]int32, n),
		scores: v.Scores,
		pieces: make([]string, n),
		hidden: make([]bool, n),
	}
	if t.scores == nil {
		t.scores = make([]float32, n)
	}
	for i, s := range v.Tokens {
		t.ids[s] = int32(i)
		t.maxLen = max(t.maxLen, len(s))
		for j := 1; j < len(s); j++ {
			k := int(s[j-1])<<8 | int(s[j])
			t.joins[k/64] |= 1 << (k % 64)
		}
	}
	for i := range spmSmall {
		for j := range spmSmall {
			id, ok := t.ids[spmSmallText(i)+spmSmallText(j)]
			if !ok {
				id = -1
			}
			t.pairs[i*spmSmall+j] = id
		}
	}
	for b := range 256 {
		id, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			// llama.cpp's second choice is the byte itself as a token.
			id, ok = t.ids[string([]byte{byte(b)})]
		}
		if !ok {
			if v.UNK == NoToken {
				return nil, fmt.Errorf("tokenizer: byte 0x%02X has no token (neither <0x%02X> nor the raw byte) and the vocabulary has no UNK to stand for it", b, b)
			}
			id = v.UNK
		}
		t.byteIDs[b] = id
	}
	for i, s := range v.Tokens {
		typ := TypeNormal
		if v.Types != nil {
			typ = v.Types[i]
		}
		switch typ {
		case TypeNormal:
			t.pieces[i] = strings.ReplaceAll(s, spmSpace, " ")
		case TypeByte:
			if b, ok := spmParseByteToken(s); ok {
				t.pieces[i] = string([]byte{b})
			} else {
				// A mislabelled token still decodes to something
				// readable rather than failing the whole vocabulary.
				t.pieces[i] = s
			}
		case TypeControl, TypeUnknown, TypeUserDefined:
			t.pieces[i] = s
			t.hidden[i] = typ != TypeUserDefined
			if s != "" {
				t.parsed = append(t.parsed, int32(i))
				if typ == TypeUserDefined {
					t.user = append(t.user, int32(i))
				}
			}
		default:
			// llama.cpp renders unused and undefined tokens as nothing.
		}
	}
	// Longest first, so that a special token containing a shorter one wins;
	// ties go to the lower id to keep the order deterministic.
	for _, list := range [][]int32{t.parsed, t.user} {
		sort.SliceStable(list, func(a, b int) bool {
			return len(v.Tokens[list[a]]) > len(v.Tokens[list[b]])
		})
	}
	t.pool.New = func() any { return new(spmScratch) }
	return t, nil
}

// spmParseByteToken reads a byte token's text, "<0xXX>".
func spmParseByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(s[3:5]) {
		switch {
		case '0' <= c && c <= '9':
			b = b<<4 | (c - '0')
		case 'A' <= c && c <= 'F':
			b = b<<4 | (c - 'A' + 10)
		case 'a' <= c && c <= 'f':
			b = b<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

// Vocab returns the vocabulary the tokenizer was built from.
func (t *spmTokenizer) Vocab() *Vocab { return t.vocab }

// Encode follows llama.cpp's llama_vocab tokenize for SPM: special tokens
// are cut out of the text first, then every raw fragment is escaped and
// merged on its own. The space prefix goes before a fragment that starts the
// text or follows a special token, as llama.cpp does it. Encode panics if 2
// GiB of escaped text has no point a merge cannot cross, which int32 offsets
// cannot hold.
func (t *spmTokenizer) Encode(text string, opt EncodeOptions) []int32 {
	v := t.vocab
	out := make([]int32, 0, len(text)/3+2)
	if opt.AddSpecial && v.AddBOS {
		out = append(out, v.BOS)
	}
	if text != "" {
		s := t.pool.Get().(*spmScratch)
		prevSpecial := true
		for _, f := range t.partition(text, opt.ParseSpecial, s) {
			if f.id >= 0 {
				out = append(out, f.id)
				prevSpecial = true
				continue
			}
			out = t.encodeRaw(text[f.start:f.end], prevSpecial && v.AddSpacePrefix, s, out)
			prevSpecial = false
		}
		if cap(s.buf) <= spmPoolLimit && cap(s.syms) <= spmPoolLimit {
			t.pool.Put(s)
		}
	}
	if opt.AddSpecial && v.AddEOS {
		out = append(out, v.EOS)
	}
	return out
}

// partition splits text on special tokens as llama.cpp's
// tokenizer_st_partition does: token by token, longest first, each cutting
// all its left-to-right occurrences out of the raw fragments that remain.
// User-defined tokens are always cut; control and unknown tokens only when
// parse is set.
func (t *spmTokenizer) partition(text string, parse bool, s *spmScratch) []spmFragment {
	cur := append(s.frags[:0], spmFragment{start: 0, end: len(text), id: -1})
	next := s.frags2[:0]
	list := t.user
	if parse {
		list = t.parsed
	}
	for _, id := range list {
		tok := t.vocab.Tokens[id]
		if !strings.Contains(text, tok) {
			continue
		}
		next = next[:0]
		for _, f := range cur {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			pos := f.start
			for {
				i := strings.Index(text[pos:f.end], tok)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, spmFragment{start: pos, end: pos + i, id: -1})
				}
				next = append(next, spmFragment{start: pos + i, end: pos + i + len(tok), id: id})
				pos += i + len(tok)
			}
			if pos < f.end {
				next = append(next, spmFragment{start: pos, end: f.end, id: -1})
			}
		}
		cur, next = next, cur
	}
	s.frags, s.frags2 = cur, next
	return cur
}

// encodeRaw appends the ids of one raw fragment to out: llama.cpp's
// llm_tokenizer_spm_session.
func (t *spmTokenizer) encodeRaw(frag string, prefix bool, s *spmScratch, out []int32) []int32 {
	buf := s.buf[:0]
	if prefix {
		buf = append(buf, spmSpace...)
	}
	for i := 0; i < len(frag); i++ {
		if frag[i] == ' ' {
			buf = append(buf, spmSpace...)
		} else {
			buf = append(buf, frag[i])
		}
	}
	s.buf = buf
	// Cut the text where no merge can reach across (see joins): the runs
	// between cuts then merge independently, each keeping the order of its
	// own merges, which is all its result depends on. For Llama 2 that
	// cuts before most "▁", so runs are about a word long and their queues
	// small, where one queue over a long text would give the same ids
	// several times more slowly.
	start := 0
	for off := 0; off < len(buf); {
		if off > start {
			k := int(buf[off-1])<<8 | int(buf[off])
			if t.joins[k/64]&(1<<(k%64)) == 0 {
				out = t.merge(buf[start:off], s, out)
				start = off
			}
		}
		off += min(spmCharLen(buf[off]), len(buf)-off)
	}
	return t.merge(buf[start:], s, out)
}

// merge appends the ids of buf, a run of escaped text, after merging its
// characters pair by pair, the best-scoring pair first.
func (t *spmTokenizer) merge(buf []byte, s *spmScratch, out []int32) []int32 {
	if len(buf) == 0 {
		return out
	}
	if len(buf) > math.MaxInt32 {
		panic("tokenizer: SentencePiece text with 2 GiB or more between merge boundaries")
	}
	// Split into UTF-8 characters by the lead byte alone, as llama.cpp
	// does: invalid UTF-8 is not rejected but cut into the same symbols,
	// which byte fallback then encodes exactly.
	syms := s.syms[:0]
	for off := 0; off < len(buf); {
		n := min(spmCharLen(buf[off]), len(buf)-off)
		k := int32(len(syms))
		syms = append(syms, spmSymbol{start: int32(off), n: int32(n), prev: k - 1, next: k + 1, id: spmUnset})
		off += n
	}
	syms[len(syms)-1].next = -1

	h := s.heap[:0]
	for i := 1; i < len(syms); i++ {
		if b, ok := t.bigram(buf, syms, int32(i-1), int32(i)); ok {
			h = append(h, b)
		}
	}
	spmHeapInit(h)
	for len(h) > 0 {
		var b spmBigram
		b, h = spmHeapPop(h)
		l, r := &syms[b.left], &syms[b.right]
		// A queued pair is stale once either side has merged since: a
		// merged-away symbol has n = 0, and a grown one changes the size.
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		l.id = b.id
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		if l.prev >= 0 {
			if nb, ok := t.bigram(buf, syms, l.prev, b.left); ok {
				h = spmHeapPush(h, nb)
			}
		}
		if l.next >= 0 {
			if nb, ok := t.bigram(buf, syms, b.left, l.next); ok {
				h = spmHeapPush(h, nb)
			}
		}
	}
	s.heap, s.syms = h, syms

	for i := int32(0); i != -1; i = syms[i].next {
		sym := syms[i]
		out = t.emit(buf[sym.start:sym.start+sym.n], sym.id, out)
	}
	return out
}

// emit appends the id of a final symbol. A symbol that merged carries its
// token id; one that never did is a single character, which is a token or
// else falls back to byte tokens. (llama.cpp also keeps a table to split
// unknown merged symbols back into their parts, but a merged symbol is a
// token by construction, so that path never runs.)
func (t *spmTokenizer) emit(sym []byte, id int32, out []int32) []int32 {
	if id == spmUnset {
		var ok bool
		if id, ok = t.ids[string(sym)]; !ok {
			for _, c := range sym {
				out = append(out, t.byteIDs[c])
			}
			return out
		}
	}
	return append(out, id)
}

// bigram returns the merge of symbols left and right, and whether their
// concatenation is a token at all.
func (t *spmTokenizer) bigram(buf []byte, syms []spmSymbol, left, right int32) (spmBigram, bool) {
	l, r := syms[left], syms[right]
	size := l.n + r.n
	if int(size) > t.maxLen {
		return spmBigram{}, false
	}
	var id int32
	if a, b := spmSmallIndex(buf, l), spmSmallIndex(buf, r); a >= 0 && b >= 0 {
		if id = t.pairs[a*spmSmall+b]; id < 0 {
			return spmBigram{}, false
		}
	} else {
		var ok bool
		if id, ok = t.ids[string(buf[l.start:l.start+size])]; !ok {
			return spmBigram{}, false
		}
	}
	return spmBigram{left: left, right: right, size: size, id: id, score: t.scores[id]}, true
}

// spmSmallIndex returns the pairs-table index of a symbol that is one ASCII
// character or "▁", and -1 for any other.
func spmSmallIndex(buf []byte, s spmSymbol) int {
	switch s.n {
	case 1:
		if c := buf[s.start]; c < 0x80 {
			return int(c)
		}
	case 3:
		if string(buf[s.start:s.start+3]) == spmSpace {
			return spmSmall - 1
		}
	}
	return -1
}

// spmSmallText is the inverse of spmSmallIndex.
func spmSmallText(i int) string {
	if i == spmSmall-1 {
		return spmSpace
	}
	return string(rune(i))
}

// spmCharLen is llama.cpp's unicode_len_utf8: the length a lead byte
// announces, 1 for ASCII and for stray continuation bytes.
func spmCharLen(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// spmBigramFirst orders the queue as llama.cpp's comparator does: the highest
// score first and, among equal scores, the leftmost pair. Two live pairs
// never share a left symbol, so this order is total on them and the result
// does not depend on how the heap breaks other ties.
func spmBigramFirst(a, b *spmBigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

func spmHeapInit(h []spmBigram) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		spmHeapDown(h, i)
	}
}

func spmHeapUp(h []spmBigram, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !spmBigramFirst(&h[i], &h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func spmHeapDown(h []spmBigram, i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && spmBigramFirst(&h[c+1], &h[c]) {
			c++
		}
		if !spmBigramFirst(&h[c], &h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func spmHeapPush(h []spmBigram, b spmBigram) []spmBigram {
	h = append(h, b)
	spmHeapUp(h, len(h)-1)
	return h
}

func spmHeapPop(h []spmBigram) (spmBigram, []spmBigram) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	if last > 0 {
		spmHeapDown(h, 0)
	}
	return top, h
}

// Decode follows llama.cpp's detokenize with remove_special off: each token
// renders as its piece ("▁" as a space, byte tokens as their byte), and with
// AddSpacePrefix one leading space comes off the first token's piece, the
// space that Encode's prefix added. Like llama.cpp it strips only the very
// first token, so after a leading BOS the space stays. Control and unknown
// tokens render as their text unless opt.SkipSpecial; user-defined tokens
// always do; ids outside the vocabulary render as nothing.
func (t *spmTokenizer) Decode(ids []int32, opt DecodeOptions) string {
	var b strings.Builder
	strip := t.vocab.AddSpacePrefix
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) || (opt.SkipSpecial && t.hidden[id]) {
			strip = false
			continue
		}
		p := t.pieces[id]
		if strip && p != "" && p[0] == ' ' {
			p = p[1:]
		}
		strip = false
		b.WriteString(p)
	}
	return b.String()
}
