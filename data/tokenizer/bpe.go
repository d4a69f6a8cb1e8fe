package tokenizer

import (
	"fmt"
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// bpeTokenizer is byte-level BPE as llama.cpp's llm_tokenizer_bpe runs it:
// split special tokens out of the raw text, pre-tokenize, map each byte of a
// piece to GPT-2's printable stand-in character, merge adjacent symbols by
// rank, and look the results up in the vocabulary.
type bpeTokenizer struct {
	vocab *Vocab
	pre   preTokenizer
	// ignoreMerges emits a piece whose whole text is a token as that token
	// before merging, which llama.cpp does for the Llama 3 pre-tokenizer.
	ignoreMerges bool

	// strID maps the text of every token, and of every other string that
	// appears in a merge, to an id: token texts get their token id, the
	// rest ids from nTokens up, so a symbol is an int32 and an id below
	// nTokens is a token.
	strID   map[string]int32
	nTokens int32
	// merges maps a pair of symbol ids to rank<<32 | merged symbol id.
	merges map[uint64]uint64

	// byteSym is the symbol id of each byte's stand-in character, -1 when
	// that character appears in no token or merge.
	byteSym [256]int32
	// byteChar is the UTF-8 of each byte's stand-in character.
	byteChar [256]string
	// oneByteTok is the token whose text is the single byte b, or -1: what
	// llama.cpp falls back to, per byte of the mapped text, for a symbol
	// that is not a token.
	oneByteTok [256]int32

	specials specialMatcher
	// decoded is the text each token decodes to; controlLike marks the
	// tokens SkipSpecial drops.
	decoded     []string
	controlLike []bool

	cache   pieceCache
	scratch sync.Pool
}

// gpt2ByteChars returns GPT-2's bytes_to_unicode table: printable Latin-1
// bytes stand for themselves and the others, in order, for U+0100 onwards,
// so that every byte is a visible character in vocab.json.
func gpt2ByteChars() (chars [256]rune) {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		if printable(b) {
			chars[b] = rune(b)
		} else {
			chars[b] = next
			next++
		}
	}
	return chars
}

// bpeIgnoresMerges reports whether llama.cpp sets ignore_merges for the
// pre-tokenizer name pre; it ties the flag to the name rather than reading
// it from the file.
func bpeIgnoresMerges(pre string) bool {
	switch pre {
	case "llama-bpe", "llama3", "llama-v3":
		return true
	}
	return false
}

// newBPE builds a byte-level BPE tokenizer from v; it returns an error when
// v names an unknown pre-tokenizer, holds the same token text twice (which
// llama.cpp refuses too), or asks for a BOS or EOS it does not have.
func newBPE(v *Vocab) (Tokenizer, error) {
	pre, err := preTokenizerFor(v.Pre)
	if err != nil {
		return nil, err
	}
	if v.AddBOS && v.BOS == NoToken {
		return nil, fmt.Errorf("tokenizer: vocabulary adds a BOS token but has none")
	}
	if v.AddEOS && v.EOS == NoToken {
		return nil, fmt.Errorf("tokenizer: vocabulary adds an EOS token but has none")
	}
	t := &bpeTokenizer{
		vocab:        v,
		pre:          pre,
		ignoreMerges: bpeIgnoresMerges(v.Pre),
		nTokens:      int32(len(v.Tokens)),
		strID:        make(map[string]int32, len(v.Tokens)+len(v.Merges)/8),
		merges:       make(map[uint64]uint64, len(v.Merges)),
	}
	for i, tok := range v.Tokens {
		// llama.cpp renames empty tokens to "[EMPTY_i]", so no text finds
		// them.
		if tok == "" {
			continue
		}
		if j, dup := t.strID[tok]; dup {
			return nil, fmt.Errorf("tokenizer: token %q has ids %d and %d", tok, j, i)
		}
		t.strID[tok] = int32(i)
	}
	intern := func(s string) int32 {
		if id, ok := t.strID[s]; ok {
			return id
		}
		id := int32(len(t.strID)) + t.nTokens // past every token id
		t.strID[s] = id
		return id
	}
	for rank, m := range v.Merges {
		// llama.cpp splits at the first space after the first byte, so a
		// merge whose left side is a space still parses.
		sp := -1
		if len(m) > 1 {
			if k := strings.IndexByte(m[1:], ' '); k >= 0 {
				sp = k + 1
			}
		}
		if sp < 0 {
			continue // llama.cpp files it under an empty pair no symbol forms
		}
		left, right := m[:sp], m[sp+1:]
		key := pairKey(intern(left), intern(right))
		if _, dup := t.merges[key]; dup {
			continue // the first, lowest rank wins, as with llama.cpp's emplace
		}
		t.merges[key] = uint64(rank)<<32 | uint64(uint32(intern(left+right)))
	}
	chars := gpt2ByteChars()
	for b := 0; b < 256; b++ {
		t.byteChar[b] = string(chars[b])
		t.byteSym[b] = -1
		if id, ok := t.strID[t.byteChar[b]]; ok {
			t.byteSym[b] = id
		}
		t.oneByteTok[b] = t.lookupToken(string([]byte{byte(b)}))
	}
	t.specials = newSpecialMatcher(v)
	t.buildDecoder(chars)
	t.cache.init()
	t.scratch.New = func() any { return new(bpeScratch) }
	return t, nil
}

// pairKey packs two symbol ids into a merge-table key.
func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// lookupToken returns the token whose text is s, or -1.
func (t *bpeTokenizer) lookupToken(s string) int32 {
	if id, ok := t.strID[s]; ok && id < t.nTokens {
		return id
	}
	return -1
}

// Vocab returns the vocabulary the tokenizer was built from.
func (t *bpeTokenizer) Vocab() *Vocab { return t.vocab }

// Encode returns the token ids of text as llama.cpp's llama_tokenize does
// for a BPE vocabulary with the same options. Malformed UTF-8 is encoded as
// llama.cpp encodes it: each byte that starts no valid sequence becomes
// U+FFFD.
func (t *bpeTokenizer) Encode(text string, opt EncodeOptions) []int32 {
	out := make([]int32, 0, len(text)/4+4)
	if opt.AddSpecial && t.vocab.AddBOS {
		out = append(out, t.vocab.BOS)
	}
	frags := t.specials.partition(text, opt.ParseSpecial)
	if frags == nil {
		out = t.encodeText(out, text)
	} else {
		for _, f := range frags {
			if f.token >= 0 {
				out = append(out, f.token)
			} else {
				out = t.encodeText(out, text[f.start:f.end])
			}
		}
	}
	if opt.AddSpecial && t.vocab.AddEOS {
		out = append(out, t.vocab.EOS)
	}
	return out
}

// encodeText appends the tokens of text, which holds no special tokens.
func (t *bpeTokenizer) encodeText(out []int32, text string) []int32 {
	if !utf8.ValidString(text) {
		text = llamaSanitizeUTF8(text)
	}
	t.pre(text, func(start, end int) {
		out = t.encodePiece(out, text[start:end])
	})
	return out
}

// llamaSanitizeUTF8 re-encodes s code point by code point as llama.cpp
// does before byte-level BPE: invalid bytes become U+FFFD, overlong forms
// shrink to their shortest encoding, and surrogates keep their three-byte
// form.
func llamaSanitizeUTF8(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := decodeRune(s, i, len(s))
		switch {
		case r < 0x80:
			b.WriteByte(byte(r))
		case r < 0x800:
			b.WriteByte(0xC0 | byte(r>>6))
			b.WriteByte(0x80 | byte(r)&0x3F)
		case r < 0x10000:
			b.WriteByte(0xE0 | byte(r>>12))
			b.WriteByte(0x80 | byte(r>>6)&0x3F)
			b.WriteByte(0x80 | byte(r)&0x3F)
		default:
			b.WriteByte(0xF0 | byte(r>>18))
			b.WriteByte(0x80 | byte(r>>12)&0x3F)
			b.WriteByte(0x80 | byte(r>>6)&0x3F)
			b.WriteByte(0x80 | byte(r)&0x3F)
		}
		i += n
	}
	return b.String()
}

// encodePiece appends the tokens of one pre-tokenized piece, from the
// cache when it has been seen before.
func (t *bpeTokenizer) encodePiece(out []int32, piece string) []int32 {
	if len(piece) == 1 {
		if id := t.byteSym[piece[0]]; id >= 0 && id < t.nTokens {
			return append(out, id)
		}
	}
	cacheable := len(piece) <= maxCachedPiece
	if cacheable {
		if ids, ok := t.cache.get(piece); ok {
			return append(out, ids...)
		}
	}
	s := t.scratch.Get().(*bpeScratch)
	ids := t.merge(s, piece)
	out = append(out, ids...)
	if cacheable {
		t.cache.put(piece, ids)
	}
	t.scratch.Put(s)
	return out
}

// bpeSymbol is one symbol of a piece being merged: a node of a doubly linked
// list over the piece's bytes [start, end).
type bpeSymbol struct {
	id         int32
	start, end int32
	prev, next int32 // -1 at either end
}

// bpeCandidate is a possible merge of symbols left and right as they stood
// when it was queued; it is stale once either has changed.
type bpeCandidate struct {
	rank            int32
	left, right     int32
	leftID, rightID int32
	mergedID        int32
}

// bpeScratch is the per-call working memory of merge, pooled so that
// encoding allocates only its result.
type bpeScratch struct {
	syms []bpeSymbol
	heap []bpeCandidate
	buf  []byte
	out  []int32
}

// merge returns the tokens of piece in a freshly allocated slice.
func (t *bpeTokenizer) merge(s *bpeScratch, piece string) []int32 {
	if t.ignoreMerges {
		s.buf = s.buf[:0]
		for i := 0; i < len(piece); i++ {
			s.buf = append(s.buf, t.byteChar[piece[i]]...)
		}
		// Indexing with string(buf) directly does not copy buf.
		if id, ok := t.strID[string(s.buf)]; ok && id < t.nTokens {
			return []int32{id}
		}
	}
	syms := s.syms[:0]
	for i := 0; i < len(piece); i++ {
		syms = append(syms, bpeSymbol{
			id: t.byteSym[piece[i]], start: int32(i), end: int32(i + 1),
			prev: int32(i - 1), next: int32(i + 1),
		})
	}
	syms[len(syms)-1].next = -1
	h := s.heap[:0]
	for i := 1; i < len(syms); i++ {
		h = t.pushCandidate(h, syms, int32(i-1), int32(i))
	}
	for len(h) > 0 {
		var c bpeCandidate
		c, h = popCandidate(h)
		l, r := &syms[c.left], &syms[c.right]
		// Skip a candidate whose symbols were merged away or changed since
		// it was queued (llama.cpp compares texts to the same effect).
		if l.end == l.start || r.end == r.start || l.next != c.right || l.id != c.leftID || r.id != c.rightID {
			continue
		}
		l.id = c.mergedID
		l.end = r.end
		l.next = r.next
		r.end = r.start // dead
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		if l.prev >= 0 {
			h = t.pushCandidate(h, syms, l.prev, c.left)
		}
		if l.next >= 0 {
			h = t.pushCandidate(h, syms, c.left, l.next)
		}
	}
	out := s.out[:0]
	for i := int32(0); i >= 0; i = syms[i].next {
		sym := &syms[i]
		if sym.id >= 0 && sym.id < t.nTokens {
			out = append(out, sym.id)
			continue
		}
		// Like llama.cpp, try each byte of the symbol's mapped text as a
		// token of its own; only ASCII stand-ins can succeed.
		for j := sym.start; j < sym.end; j++ {
			mapped := t.byteChar[piece[j]]
			for k := 0; k < len(mapped); k++ {
				if id := t.oneByteTok[mapped[k]]; id >= 0 {
					out = append(out, id)
				}
			}
		}
	}
	s.syms, s.heap, s.out = syms, h, out
	return append([]int32(nil), out...)
}

// pushCandidate queues the merge of symbols left and right if there is one.
func (t *bpeTokenizer) pushCandidate(h []bpeCandidate, syms []bpeSymbol, left, right int32) []bpeCandidate {
	li, ri := syms[left].id, syms[right].id
	if li < 0 || ri < 0 {
		return h
	}
	m, ok := t.merges[pairKey(li, ri)]
	if !ok {
		return h
	}
	h = append(h, bpeCandidate{
		rank: int32(m >> 32), left: left, right: right,
		leftID: li, rightID: ri, mergedID: int32(uint32(m)),
	})
	// Sift up.
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !candidateBefore(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// candidateBefore orders candidates by rank, then leftmost first, as
// llama.cpp's llm_bigram_bpe comparator does.
func candidateBefore(a, b *bpeCandidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

// popCandidate removes and returns the first candidate of the heap h.
func popCandidate(h []bpeCandidate) (bpeCandidate, []bpeCandidate) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && candidateBefore(&h[r], &h[l]) {
			m = r
		}
		if !candidateBefore(&h[m], &h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top, h
}

// Decode returns the text of ids: normal tokens map back through GPT-2's
// byte table (so a sequence of ids that splits a character yields its
// bytes, which may be invalid UTF-8 on their own), control and unknown
// tokens render as their text unless opt.SkipSpecial, user-defined tokens
// always render as their text, and ids outside the vocabulary are skipped.
func (t *bpeTokenizer) Decode(ids []int32, opt DecodeOptions) string {
	n := 0
	for _, id := range ids {
		if id >= 0 && id < t.nTokens {
			n += len(t.decoded[id])
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, id := range ids {
		if id < 0 || id >= t.nTokens || (opt.SkipSpecial && t.controlLike[id]) {
			continue
		}
		b.WriteString(t.decoded[id])
	}
	return b.String()
}

// buildDecoder precomputes the text of every token, as llama.cpp's
// token_to_piece gives it: raw text for control, unknown and user-defined
// tokens, the byte of a "<0xXX>" byte token, and for the rest each
// character mapped back to its byte. A character outside GPT-2's table
// (possible in hand-made vocabularies) is kept as it is rather than turned
// into llama.cpp's "[UNK_BYTE_...]" marker.
func (t *bpeTokenizer) buildDecoder(chars [256]rune) {
	var back [324]int16
	for i := range back {
		back[i] = -1
	}
	for b, r := range chars {
		back[r] = int16(b)
	}
	v := t.vocab
	t.decoded = make([]string, len(v.Tokens))
	t.controlLike = make([]bool, len(v.Tokens))
	var buf []byte
	for i, tok := range v.Tokens {
		typ := TypeNormal
		if v.Types != nil {
			typ = v.Types[i]
		}
		switch typ {
		case TypeControl, TypeUnknown:
			t.controlLike[i] = true
			t.decoded[i] = tok
			continue
		case TypeUserDefined:
			t.decoded[i] = tok
			continue
		case TypeByte:
			if b, ok := hexByteToken(tok); ok {
				t.decoded[i] = string([]byte{b})
				continue
			}
		}
		buf = buf[:0]
		for _, r := range tok {
			if r >= 0 && int(r) < len(back) && back[r] >= 0 {
				buf = append(buf, byte(back[r]))
			} else {
				buf = utf8.AppendRune(buf, r)
			}
		}
		t.decoded[i] = string(buf)
	}
}

// hexByteToken parses a byte token's text "<0xXX>".
func hexByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(s[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// maxCachedPiece bounds the pieces the cache keeps: longer ones are rare
// (long runs of one character class) and would only evict useful entries.
const maxCachedPiece = 64

// pieceCache maps piece texts to their tokens, shared by all goroutines
// using the tokenizer. It is a fixed table of atomic pointers, two slots
// per hash, so lookups take no lock and memory stays bounded however much
// distinct text goes through: a new piece evicts an old one. A reader that
// races a writer sees either entry whole, or a miss, and then recomputes.
type pieceCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[cacheEntry]
}

type cacheEntry struct {
	piece string
	ids   []int32
}

// cacheSlots is the table size, 1 MiB of pointers: room for the frequent
// pieces of a large corpus (Tiny Shakespeare has 15k distinct GPT-2
// pieces, so it stays whole).
const cacheSlots = 1 << 17

func (c *pieceCache) init() {
	c.seed = maphash.MakeSeed()
	c.slots = make([]atomic.Pointer[cacheEntry], cacheSlots)
}

func (c *pieceCache) index(piece string) uint64 {
	return maphash.String(c.seed, piece) & (cacheSlots - 1)
}

func (c *pieceCache) get(piece string) ([]int32, bool) {
	i := c.index(piece)
	if e := c.slots[i].Load(); e != nil && e.piece == piece {
		return e.ids, true
	}
	if e := c.slots[i^1].Load(); e != nil && e.piece == piece {
		return e.ids, true
	}
	return nil, false
}

// put stores ids, which the cache then owns, under a copy of piece (a
// piece is a substring of the caller's text, which must not stay alive).
// The newcomer takes the first slot and its occupant moves to the second,
// so of two pieces sharing a hash the more recent stays first.
func (c *pieceCache) put(piece string, ids []int32) {
	i := c.index(piece)
	e := &cacheEntry{piece: strings.Clone(piece), ids: ids}
	if old := c.slots[i].Swap(e); old != nil {
		c.slots[i^1].Store(old)
	}
}

// specialMatcher finds special and added tokens in raw text.
type specialMatcher struct {
	// toks are the candidates, longest first (ties by id), the order
	// llama.cpp's tokenizer_st_partition tries them in.
	toks []specialToken
	// anyUser reports whether some candidate is matched even without
	// ParseSpecial.
	anyUser bool
	trie    []trieNode
	first   [256]bool
}

type specialToken struct {
	text string
	id   int32
	// parseOnly marks control and unknown tokens, which llama.cpp only
	// matches with parse_special; user-defined tokens always match.
	parseOnly bool
}

type trieNode struct {
	next map[byte]int32
	tok  int32 // index into toks, or -1
}

// fragment is a piece of text between special tokens, or (token >= 0) one
// special token.
type fragment struct {
	start, end int
	token      int32
}

func newSpecialMatcher(v *Vocab) specialMatcher {
	var m specialMatcher
	if v.Types == nil {
		return m
	}
	for i, typ := range v.Types {
		if v.Tokens[i] == "" {
			continue
		}
		switch typ {
		case TypeControl, TypeUnknown:
			m.toks = append(m.toks, specialToken{text: v.Tokens[i], id: int32(i), parseOnly: true})
		case TypeUserDefined:
			m.toks = append(m.toks, specialToken{text: v.Tokens[i], id: int32(i)})
			m.anyUser = true
		}
	}
	sort.SliceStable(m.toks, func(a, b int) bool { return len(m.toks[a].text) > len(m.toks[b].text) })
	m.trie = []trieNode{{tok: -1}}
	for k, st := range m.toks {
		n := int32(0)
		for i := 0; i < len(st.text); i++ {
			c := st.text[i]
			if m.trie[n].next == nil {
				m.trie[n].next = make(map[byte]int32)
			}
			nx, ok := m.trie[n].next[c]
			if !ok {
				nx = int32(len(m.trie))
				m.trie = append(m.trie, trieNode{tok: -1})
				m.trie[n].next[c] = nx
			}
			n = nx
		}
		m.trie[n].tok = int32(k)
		m.first[st.text[0]] = true
	}
	return m
}

// partition splits text at special tokens the way llama.cpp's
// tokenizer_st_partition does: each candidate in turn, longest first, takes
// its leftmost non-overlapping occurrences inside the text that earlier
// candidates left. It returns nil when no special token occurs.
func (m *specialMatcher) partition(text string, parse bool) []fragment {
	if len(m.toks) == 0 || (!parse && !m.anyUser) {
		return nil
	}
	type occurrence struct{ tok, pos int }
	var occs []occurrence
	for i := 0; i < len(text); i++ {
		if !m.first[text[i]] {
			continue
		}
		n := int32(0)
		for j := i; j < len(text); j++ {
			nx, ok := m.trie[n].next[text[j]]
			if !ok {
				break
			}
			n = nx
			if k := m.trie[n].tok; k >= 0 && (parse || !m.toks[k].parseOnly) {
				occs = append(occs, occurrence{tok: int(k), pos: i})
			}
		}
	}
	if len(occs) == 0 {
		return nil
	}
	sort.Slice(occs, func(a, b int) bool {
		if occs[a].tok != occs[b].tok {
			return occs[a].tok < occs[b].tok
		}
		return occs[a].pos < occs[b].pos
	})
	// taken holds the accepted occurrences as fragments, sorted by start.
	var taken []fragment
	lastTok, lastEnd := -1, 0
	for _, o := range occs {
		st := &m.toks[o.tok]
		end := o.pos + len(st.text)
		if o.tok != lastTok {
			lastTok, lastEnd = o.tok, 0
		}
		if o.pos < lastEnd {
			continue // overlaps this token's previous occurrence
		}
		// The occurrence must lie in text no longer candidate took.
		k := sort.Search(len(taken), func(i int) bool { return taken[i].end > o.pos })
		if k < len(taken) && taken[k].start < end {
			continue
		}
		taken = append(taken, fragment{})
		copy(taken[k+1:], taken[k:])
		taken[k] = fragment{start: o.pos, end: end, token: st.id}
		lastEnd = end
	}
	frags := make([]fragment, 0, 2*len(taken)+1)
	pos := 0
	for _, f := range taken {
		if f.start > pos {
			frags = append(frags, fragment{start: pos, end: f.start, token: -1})
		}
		frags = append(frags, f)
		pos = f.end
	}
	if pos < len(text) {
		frags = append(frags, fragment{start: pos, end: len(text), token: -1})
	}
	return frags
}
