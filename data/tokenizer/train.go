package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
)

// TrainConfig says what vocabulary Train learns.
type TrainConfig struct {
	// VocabSize is the number of tokens wanted, counting the 256 byte
	// tokens and the specials. Training stops earlier when no pair occurs
	// MinFrequency times, so the result may be smaller.
	VocabSize int
	// Special lists special tokens such as "<|endoftext|>". They take the
	// last ids, in this order, as Control tokens: the byte tokens keep ids
	// 0-255 (id = byte value) and the learned tokens follow in merge order,
	// the layout of GPT-2's vocabulary. Their text in the corpus is cut out
	// before pre-tokenization, so it never feeds the merges, and no merge
	// that would spell a special is made, so each keeps its text to itself.
	Special []string
	// Pre names the pre-tokenizer as GGUF's tokenizer.ggml.pre does
	// ("gpt-2", "llama-bpe", "qwen2", "smollm", or another name
	// preTokenizerFor knows); empty means "gpt-2".
	Pre string
	// MinFrequency is the fewest occurrences a pair needs to be merged;
	// 0 means 1, so that any pair that occurs at all can be merged.
	MinFrequency int
	// Threads is the number of goroutines that pre-tokenize and count the
	// corpus; 0 means runtime.GOMAXPROCS(0). The merges themselves are
	// computed on one goroutine. The result does not depend on it.
	Threads int
}

// Train learns a byte-level BPE vocabulary (GPT-2's scheme) from the text
// corpus yields, which it streams: memory grows with the number of distinct
// pre-tokenized pieces, not with the size of the corpus.
//
// The corpus is cut into pieces by the pre-tokenizer cfg.Pre, each piece
// starts as its bytes, and the most frequent pair of adjacent symbols is
// merged into a new token until cfg.VocabSize tokens exist (specials
// included) or no pair occurs cfg.MinFrequency times. Ties between equally
// frequent pairs go to the smallest pair of ids, comparing the left id and
// then the right one, so that training is deterministic.
//
// The result has Model "gpt2", Pre cfg.Pre (or "gpt-2"), the tokens in
// GPT-2's byte-to-unicode form (as vocab.json stores them; specials as they
// are), the merges in rank order as "left right", and Types Normal for
// learned and byte tokens and Control for specials. BOS, EOS and EOT are all
// the first special (GPT-2 uses "<|endoftext|>" for all three), or NoToken
// without specials; AddBOS and AddEOS are false. New turns it into a
// tokenizer.
//
// Train returns an error when cfg.VocabSize is below 256 plus the number of
// specials, when a special is empty, repeated or the text of a byte token,
// when MinFrequency or Threads is negative, when cfg.Pre names no known
// pre-tokenizer, and when reading the corpus fails.
func Train(corpus io.Reader, cfg TrainConfig) (*Vocab, error) {
	return trainSources(cfg, []trainSource{{
		name: "corpus",
		open: func() (io.ReadCloser, error) { return io.NopCloser(corpus), nil },
	}})
}

// TrainFiles is Train over the concatenated text of the files at paths,
// read one after the other; no chunk of text spans two files, so a file's
// last line never joins the next file's first. It returns Train's errors,
// and an error when paths is empty or a file cannot be opened or read.
func TrainFiles(cfg TrainConfig, paths ...string) (*Vocab, error) {
	if len(paths) == 0 {
		return nil, errors.New("tokenizer: train: no corpus files")
	}
	srcs := make([]trainSource, len(paths))
	for i, p := range paths {
		srcs[i] = trainSource{name: p, open: func() (io.ReadCloser, error) { return os.Open(p) }}
	}
	return trainSources(cfg, srcs)
}

// trainSource is one stream of corpus text, opened only when its turn
// comes so that TrainFiles holds one file open at a time.
type trainSource struct {
	name string
	open func() (io.ReadCloser, error)
}

// trainSettings is a TrainConfig checked and with its defaults filled in.
type trainSettings struct {
	vocabSize int
	special   []string
	pre       string
	split     preTokenizer
	minFreq   int64
	threads   int
}

// settings checks cfg before any text is read, so that a bad configuration
// fails at once rather than after minutes of counting.
func (cfg TrainConfig) settings() (trainSettings, error) {
	s := trainSettings{
		vocabSize: cfg.VocabSize,
		special:   cfg.Special,
		pre:       cfg.Pre,
		minFreq:   int64(cfg.MinFrequency),
		threads:   cfg.Threads,
	}
	if s.pre == "" {
		s.pre = "gpt-2"
	}
	if least := 256 + len(cfg.Special); cfg.VocabSize < least {
		return s, fmt.Errorf("tokenizer: train: vocabulary size %d below %d (256 byte tokens and %d specials)",
			cfg.VocabSize, least, len(cfg.Special))
	}
	if cfg.MinFrequency < 0 {
		return s, fmt.Errorf("tokenizer: train: negative minimum frequency %d", cfg.MinFrequency)
	}
	if s.minFreq == 0 {
		s.minFreq = 1
	}
	if cfg.Threads < 0 {
		return s, fmt.Errorf("tokenizer: train: negative thread count %d", cfg.Threads)
	}
	if s.threads == 0 {
		s.threads = runtime.GOMAXPROCS(0)
	}
	forms := trainByteForms()
	seen := make(map[string]bool, len(cfg.Special))
	for _, sp := range cfg.Special {
		switch {
		case sp == "":
			return s, errors.New("tokenizer: train: empty special token")
		case seen[sp]:
			return s, fmt.Errorf("tokenizer: train: special token %q listed twice", sp)
		}
		seen[sp] = true
		for _, f := range forms {
			// A special spelled like a byte token would make two ids share
			// one text, which no tokenizer can map back.
			if sp == f {
				return s, fmt.Errorf("tokenizer: train: special token %q is the text of a byte token", sp)
			}
		}
	}
	split, err := preTokenizerFor(s.pre)
	if err != nil {
		return s, err // it names the package and the known names
	}
	s.split = split
	return s, nil
}

// trainSources counts the pieces of every source, learns the merges and
// assembles the vocabulary.
func trainSources(cfg TrainConfig, srcs []trainSource) (*Vocab, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	pieces, err := trainCountPieces(srcs, s)
	if err != nil {
		return nil, err
	}
	tokens, merges := trainMerges(pieces, s)

	v := &Vocab{
		Model:  ModelBPE,
		Pre:    s.pre,
		Tokens: tokens,
		Merges: merges,
		Types:  make([]TokenType, len(tokens), len(tokens)+len(s.special)),
		BOS:    NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken, EOT: NoToken,
	}
	for i := range v.Types {
		v.Types[i] = TypeNormal
	}
	for i, sp := range s.special {
		if i == 0 {
			id := int32(len(v.Tokens))
			v.BOS, v.EOS, v.EOT = id, id, id
		}
		v.Tokens = append(v.Tokens, sp)
		v.Types = append(v.Types, TypeControl)
	}
	return v, nil
}

// trainByteForms returns GPT-2's byte-to-unicode mapping (gpt2ByteChars)
// as strings: the text of the 256 byte tokens.
func trainByteForms() [256]string {
	var forms [256]string
	for b, r := range gpt2ByteChars() {
		forms[b] = string(r)
	}
	return forms
}

// Chunking: the corpus is handed to the counting goroutines in chunks of
// about trainChunk bytes, cut where none of the supported pre-tokenizers
// (llama.cpp's regexes) lets a piece cross or look across: after a lone
// newline between printable ASCII characters ("a\n|B": a piece ends after
// the newline whether text follows or not, which is not so for a run of
// them, split differently by \s+(?!\S) at the end of the text), or before
// a space between two ASCII letters ("a| b": letter runs stop at the
// space, which leads the next word), and never inside a special. So
// chunking changes no piece. Only text without such a place in
// trainMaxChunk bytes is cut elsewhere, at a UTF-8 character boundary,
// which may split a piece. The cuts depend only on the text, never on the
// thread count or on how the reader delivers bytes.
const (
	trainChunk    = 256 << 10
	trainMaxChunk = 4 * trainChunk
	trainReadSize = 64 << 10
)

func trainPrintable(c byte) bool { return '!' <= c && c <= '~' }
func trainLetter(c byte) bool    { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// trainIsCut reports whether a chunk may end before buf[i]: at a place
// described above that does not split an occurrence of a special. It
// looks at buf[i-2:i+2] and at the longest special's length around i.
func trainIsCut(buf []byte, i int, specials [][]byte) bool {
	switch {
	case buf[i-1] == '\n':
		if !trainPrintable(buf[i-2]) || !trainPrintable(buf[i]) {
			return false
		}
	case buf[i] == ' ':
		if !trainLetter(buf[i-1]) || !trainLetter(buf[i+1]) {
			return false
		}
	default:
		return false
	}
	for _, sp := range specials {
		// Any occurrence inside this window starts before i and ends
		// after it.
		if n := len(sp); n > 1 && bytes.Contains(buf[max(0, i-n+1):i+n-1], sp) {
			return false
		}
	}
	return true
}

// trainFindCut returns where the chunk at the start of buf ends, or 0 when
// buf needs more bytes to tell. *scanned remembers how far places were
// already tried, so that each is tried once however the reads arrive.
// Ordinary text has a place within a few bytes of trainChunk, where the
// search starts. specialLen is the longest special's length.
func trainFindCut(buf []byte, scanned *int, specials [][]byte, specialLen int) int {
	lo := max(*scanned, trainChunk)
	hi := min(len(buf)-max(2, specialLen), trainMaxChunk) // bytes trainIsCut reads
	for i := lo; i <= hi; i++ {
		if trainIsCut(buf, i, specials) {
			return i
		}
	}
	if hi >= lo {
		*scanned = hi + 1
	}
	// Cut elsewhere only once every place up to trainMaxChunk was tried.
	if len(buf) >= trainMaxChunk+max(2, specialLen, utf8.UTFMax) {
		for i := trainMaxChunk; i < trainMaxChunk+utf8.UTFMax; i++ {
			if utf8.RuneStart(buf[i]) {
				return i
			}
		}
		return trainMaxChunk // not UTF-8 anyway
	}
	return 0
}

// trainFeedChunks reads every source in turn and sends its chunks to out. It
// stops at the first open or read error, which it returns.
func trainFeedChunks(srcs []trainSource, specials []string, out chan<- string) error {
	// The window must hold a full chunk and the text a cut looks at after
	// it, however long the specials.
	sp, spLen := trainSpecialBytes(specials)
	buf := make([]byte, 0, trainMaxChunk+trainReadSize+spLen)
	for _, src := range srcs {
		r, err := src.open()
		if err != nil {
			return fmt.Errorf("tokenizer: train: %w", err)
		}
		err = trainChunkStream(r, buf, sp, spLen, out)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("tokenizer: train: reading %s: %w", src.name, err)
		}
	}
	return nil
}

// trainSpecialBytes returns the specials as byte slices and the longest
// one's length.
func trainSpecialBytes(specials []string) ([][]byte, int) {
	sp := make([][]byte, len(specials))
	n := 0
	for i, s := range specials {
		sp[i] = []byte(s)
		n = max(n, len(s))
	}
	return sp, n
}

// trainChunkStream sends r's text to out in chunks cut by trainFindCut,
// using buf's capacity, which must exceed trainMaxChunk + specialLen, as
// its window; each chunk is copied into its own string, which the counters
// may keep reading while buf is refilled.
func trainChunkStream(r io.Reader, buf []byte, specials [][]byte, specialLen int, out chan<- string) error {
	buf = buf[:0]
	scanned := 0
	eof := false
	for {
		if cut := trainFindCut(buf, &scanned, specials, specialLen); cut > 0 {
			out <- string(buf[:cut])
			buf = buf[:copy(buf, buf[cut:])]
			scanned = 0
			continue
		}
		if eof {
			if len(buf) > 0 {
				out <- string(buf)
			}
			return nil
		}
		if len(buf) == cap(buf) {
			// trainFindCut always cuts a window this full.
			return errors.New("internal error: chunk window full")
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), len(buf)+trainReadSize)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return err
		}
	}
}

// trainCounts counts distinct pieces. Counts live in a slice indexed
// through the map so that a repeated piece costs one map lookup.
type trainCounts struct {
	index  map[string]int32
	pieces []string
	counts []int64
}

func newTrainCounts() *trainCounts {
	return &trainCounts{index: make(map[string]int32)}
}

// add counts n occurrences of piece. A new piece is copied when clone is
// set, so that the map does not pin the whole chunk it was cut from.
func (c *trainCounts) add(piece string, n int64, clone bool) {
	if i, ok := c.index[piece]; ok {
		c.counts[i] += n
		return
	}
	if clone {
		piece = strings.Clone(piece)
	}
	c.index[piece] = int32(len(c.pieces))
	c.pieces = append(c.pieces, piece)
	c.counts = append(c.counts, n)
}

// addText counts the pieces of text, skipping the text of specials; where
// two specials start at the same place the longer one is cut out.
func (c *trainCounts) addText(text string, s *trainSettings) {
	emitter := func(seg string) func(start, end int) {
		return func(start, end int) { c.add(seg[start:end], 1, true) }
	}
	if len(s.special) == 0 {
		s.split(text, emitter(text))
		return
	}
	// next[i] is where special i next occurs at or after pos (-1: never),
	// updated only once pos passes it, so that the text is searched for
	// each special about once however often the others occur.
	next := make([]int, len(s.special))
	for i, sp := range s.special {
		next[i] = strings.Index(text, sp)
	}
	pos := 0
	for {
		at, n := -1, 0
		for i, sp := range s.special {
			if next[i] >= 0 && next[i] < pos {
				next[i] = strings.Index(text[pos:], sp)
				if next[i] >= 0 {
					next[i] += pos
				}
			}
			if x := next[i]; x >= 0 && (at < 0 || x < at || (x == at && len(sp) > n)) {
				at, n = x, len(sp)
			}
		}
		end := at
		if at < 0 {
			end = len(text)
		}
		if seg := text[pos:end]; seg != "" {
			s.split(seg, emitter(seg))
		}
		if at < 0 {
			return
		}
		pos = at + n
	}
}

// trainCountPieces pre-tokenizes the sources on s.threads goroutines,
// each with its own counts, and adds the counts together at the end.
func trainCountPieces(srcs []trainSource, s trainSettings) (*trainCounts, error) {
	chunks := make(chan string, s.threads)
	counters := make([]*trainCounts, s.threads)
	var wg sync.WaitGroup
	for t := range counters {
		c := newTrainCounts()
		counters[t] = c
		wg.Go(func() {
			for chunk := range chunks {
				c.addText(chunk, &s)
			}
		})
	}
	err := trainFeedChunks(srcs, s.special, chunks)
	close(chunks)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	total := counters[0]
	for _, c := range counters[1:] {
		if len(c.pieces) > len(total.pieces) {
			total, c = c, total
		}
		for i, p := range c.pieces {
			total.add(p, c.counts[i], false)
		}
	}
	return total, nil
}

// The merge learner keeps, for every adjacent pair of symbols, its count
// over the corpus and the words it may occur in, and a max-heap of
// (count, pair) entries. A merge rewrites only the words listed for its
// pair and adjusts the counts of the pairs around each rewritten spot, so
// a merge costs time in proportion to where the pair occurs, not to the
// corpus. Heap entries are not updated in place: a count that falls leaves
// a stale entry behind, checked and refreshed when it reaches the top, and
// a count that rises (only pairs with the new token can) gets a fresh
// entry. Word lists may hold words that lost the pair; rewriting skips
// them. The outcome depends only on the counts, not on the order of the
// words, which is why it is the same for any thread count.

// trainPair packs a pair of ids so that comparing keys compares the left
// ids and then the right ones.
type trainPair uint64

func makeTrainPair(a, b int32) trainPair { return trainPair(uint64(uint32(a))<<32 | uint64(uint32(b))) }
func (p trainPair) left() int32          { return int32(uint32(p >> 32)) }
func (p trainPair) right() int32         { return int32(uint32(p)) }

// trainWord is one distinct piece: its symbols are syms[start:start+n].
type trainWord struct {
	start int
	n     int32
	stamp int32 // last merge step that rewrote the word
	count int64
}

// trainPairStat is what the learner knows of one pair.
type trainPairStat struct {
	key     trainPair
	count   int64
	touched int32   // last merge step that raised count
	words   []int32 // words that have held the pair, without adjacent repeats
}

// trainHeapItem is a heap entry: the pair's count when it was pushed.
type trainHeapItem struct {
	count int64
	key   trainPair
	idx   int32
}

// before orders the heap: higher counts first, then smaller pairs.
func (h trainHeapItem) before(o trainHeapItem) bool {
	return h.count > o.count || (h.count == o.count && h.key < o.key)
}

type trainHeap []trainHeapItem

func (h *trainHeap) push(it trainHeapItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *trainHeap) pop() trainHeapItem {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	*h = s
	s.down(0)
	return top
}

func (h trainHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			c = r
		}
		if !h[c].before(h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// trainMerger is the state of the merge learner.
type trainMerger struct {
	syms    []int32
	words   []trainWord
	pairIdx map[trainPair]int32
	pairs   []trainPairStat
	heap    trainHeap
	step    int32
	touched []int32 // pairs whose count rose in this step
}

// newTrainMerger lays the pieces out as byte symbols and counts their pairs.
func newTrainMerger(pc *trainCounts) *trainMerger {
	total := 0
	for _, p := range pc.pieces {
		total += len(p)
	}
	m := &trainMerger{
		syms:    make([]int32, 0, total),
		words:   make([]trainWord, len(pc.pieces)),
		pairIdx: make(map[trainPair]int32),
	}
	for w, p := range pc.pieces {
		m.words[w] = trainWord{start: len(m.syms), n: int32(len(p)), count: pc.counts[w]}
		for i := 0; i < len(p); i++ {
			m.syms = append(m.syms, int32(p[i]))
		}
		s := m.syms[len(m.syms)-len(p):]
		for i := 1; i < len(s); i++ {
			m.add(makeTrainPair(s[i-1], s[i]), pc.counts[w], int32(w))
		}
	}
	m.heap = make(trainHeap, 0, len(m.pairs))
	for i, ps := range m.pairs {
		m.heap = append(m.heap, trainHeapItem{count: ps.count, key: ps.key, idx: int32(i)})
	}
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.heap.down(i)
	}
	m.touched = m.touched[:0]
	return m
}

// add changes the count of pair p by delta; for a rise it records word w
// as holding the pair and marks the pair for a fresh heap entry.
func (m *trainMerger) add(p trainPair, delta int64, w int32) {
	idx, ok := m.pairIdx[p]
	if !ok {
		idx = int32(len(m.pairs))
		m.pairIdx[p] = idx
		m.pairs = append(m.pairs, trainPairStat{key: p, touched: -1})
	}
	ps := &m.pairs[idx]
	ps.count += delta
	if delta > 0 {
		if n := len(ps.words); n == 0 || ps.words[n-1] != w {
			ps.words = append(ps.words, w)
		}
		if ps.touched != m.step {
			ps.touched = m.step
			m.touched = append(m.touched, idx)
		}
	}
}

// best pops the most frequent pair that may be merged, refreshing stale
// entries on the way. It reports false when no pair occurs minFreq times.
// Pairs for which allowed is false are dropped for good.
func (m *trainMerger) best(minFreq int64, allowed func(trainPair) bool) (trainHeapItem, bool) {
	for len(m.heap) > 0 {
		top := m.heap.pop()
		cur := m.pairs[top.idx].count
		if cur != top.count {
			// A higher count has its own entry; a lower one needs one.
			if cur > 0 && cur < top.count {
				m.heap.push(trainHeapItem{count: cur, key: top.key, idx: top.idx})
			}
			continue
		}
		if cur < minFreq {
			return top, false
		}
		if !allowed(top.key) {
			continue
		}
		return top, true
	}
	return trainHeapItem{}, false
}

// merge replaces every occurrence of the pair it by the token x,
// left to right without overlap, and pushes the pairs whose count rose.
func (m *trainMerger) merge(it trainHeapItem, x int32) {
	m.step++
	m.touched = m.touched[:0]
	ps := &m.pairs[it.idx]
	ws := ps.words
	ps.words, ps.count = nil, 0
	for _, w := range ws {
		if m.words[w].stamp == m.step {
			continue
		}
		m.words[w].stamp = m.step
		m.mergeWord(w, it.key, x)
	}
	for _, idx := range m.touched {
		if ps := m.pairs[idx]; ps.count > 0 {
			m.heap.push(trainHeapItem{count: ps.count, key: ps.key, idx: idx})
		}
	}
}

// mergeWord rewrites word w in place. Around each merged spot the pairs
// with the neighbours change: (prev, a) becomes (prev, x) and (b, next)
// becomes (x, next); a neighbour that is itself a fresh x is handled by
// the same rules. The merged pair's own count is already zero.
func (m *trainMerger) mergeWord(w int32, p trainPair, x int32) {
	wd := &m.words[w]
	s := m.syms[wd.start : wd.start+int(wd.n)]
	a, b, c := p.left(), p.right(), wd.count
	upd := func(q trainPair, delta int64) {
		if q != p {
			m.add(q, delta, w)
		}
	}
	j := 0
	for i := 0; i < len(s); {
		if i+1 < len(s) && s[i] == a && s[i+1] == b {
			if j > 0 {
				prev := s[j-1]
				upd(makeTrainPair(prev, a), -c)
				upd(makeTrainPair(prev, x), c)
			}
			if i+2 < len(s) {
				next := s[i+2]
				upd(makeTrainPair(b, next), -c)
				upd(makeTrainPair(x, next), c)
			}
			s[j] = x
			j++
			i += 2
			continue
		}
		s[j] = s[i]
		j++
		i++
	}
	wd.n = int32(j)
}

// trainMerges runs the merges and returns the tokens (bytes first, by
// value, then learned ones in merge order, all in GPT-2's mapped form) and
// the merge rules in rank order.
func trainMerges(pc *trainCounts, s trainSettings) (tokens, merges []string) {
	forms := trainByteForms()
	hint := min(s.vocabSize, 1<<16) // VocabSize may be far beyond what the corpus yields
	tokens = make([]string, 256, hint)
	ids := make(map[string]int32, hint)
	for b, f := range forms {
		tokens[b] = f
		ids[f] = int32(b)
	}
	// A merge that would spell a special is never made: the special's id
	// must be the only one with its text.
	special := make(map[string]bool, len(s.special))
	for _, sp := range s.special {
		special[sp] = true
	}
	allowed := func(p trainPair) bool { return !special[tokens[p.left()]+tokens[p.right()]] }

	m := newTrainMerger(pc)
	// The pieces live on as symbols; their text and index can go.
	*pc = trainCounts{}
	target := s.vocabSize - len(s.special)
	for len(tokens) < target {
		it, ok := m.best(s.minFreq, allowed)
		if !ok {
			break
		}
		l, r := tokens[it.key.left()], tokens[it.key.right()]
		text := l + r
		// Should two merge paths spell the same text ("a bc" after
		// "ab c"), they share one id, as in Hugging Face's trainer:
		// Tokens must be unique for text to map back to ids.
		x, ok := ids[text]
		if !ok {
			x = int32(len(tokens))
			tokens = append(tokens, text)
			ids[text] = x
		}
		merges = append(merges, l+" "+r)
		m.merge(it, x)
	}
	return tokens, merges
}
