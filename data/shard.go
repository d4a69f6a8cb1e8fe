package data

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/internal/atomicfile"
)

// IndexFile is the name of a shard directory's index.
const IndexFile = "index.json"

// shardVersion is the layout version an index records; an index of
// another version is rebuilt rather than misread.
const shardVersion = 1

// Defaults of ShardOptions.
const (
	DefaultShardTokens = 1 << 26 // 128 MiB of uint16 per shard
	DefaultChunkBytes  = 1 << 20
)

// The token dtypes of shard files.
const (
	DtypeUint16 = "uint16"
	DtypeUint32 = "uint32"
)

// ShardOptions controls BuildShards.
type ShardOptions struct {
	// ShardTokens is the number of tokens per shard file (0 means
	// DefaultShardTokens); the last shard holds the rest.
	ShardTokens int64
	// ChunkBytes is the size of the pieces a source is tokenized in,
	// in parallel (0 means DefaultChunkBytes); see BuildShards.
	ChunkBytes int
	// Workers is the number of tokenizing goroutines (0 means
	// GOMAXPROCS). It does not change the output.
	Workers int
	// ParseSpecial turns the text of special tokens in the corpus (such
	// as "<|endoftext|>" between stories) into those tokens.
	ParseSpecial bool
	// BOS and EOS put the vocabulary's BOS token before and its EOS token
	// (else its EOT token) after each source file.
	BOS, EOS bool
}

// ShardIndex describes a directory of token shards; it is stored as JSON in
// the directory's IndexFile.
type ShardIndex struct {
	Version int `json:"version"`
	// Dtype is DtypeUint16 when every id of the vocabulary fits in 16
	// bits, else DtypeUint32; tokens are little-endian.
	Dtype     string `json:"dtype"`
	VocabSize int    `json:"vocab_size"`
	// Tokenizer is the Fingerprint of the vocabulary the shards were
	// tokenized with.
	Tokenizer string            `json:"tokenizer"`
	Options   ShardIndexOptions `json:"options"`
	Sources   []ShardSource     `json:"sources"`
	Shards    []ShardFileInfo   `json:"shards"`
	// Tokens is the total number of tokens, the shards in order forming
	// one stream.
	Tokens int64 `json:"tokens"`
	// Reused reports that BuildShards found the shards up to date and
	// tokenized nothing.
	Reused bool `json:"-"`
}

// ShardIndexOptions records the options of BuildShards that change the
// shards' content, so that changing one rebuilds them.
type ShardIndexOptions struct {
	ShardTokens  int64 `json:"shard_tokens"`
	ChunkBytes   int   `json:"chunk_bytes"`
	ParseSpecial bool  `json:"parse_special"`
	BOS          bool  `json:"bos"`
	EOS          bool  `json:"eos"`
}

// ShardSource is a source file as it was when tokenized.
type ShardSource struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Tokens  int64  `json:"tokens"`
}

// ShardFileInfo is one shard file of an index.
type ShardFileInfo struct {
	Name   string `json:"name"`
	Tokens int64  `json:"tokens"`
}

// dtypeWidth returns the bytes per token of a dtype, 0 for an unknown one.
func dtypeWidth(dtype string) int {
	switch dtype {
	case DtypeUint16:
		return 2
	case DtypeUint32:
		return 4
	}
	return 0
}

// Fingerprint returns a hash of everything in v that decides token ids
// (model, pre-tokenizer, tokens, scores, types, merges, special ids and
// flags), so that shards made with another tokenizer are recognised.
func Fingerprint(v *tokenizer.Vocab) string {
	h := sha256.New()
	var b [8]byte
	num := func(x uint64) {
		binary.LittleEndian.PutUint64(b[:], x)
		h.Write(b[:])
	}
	str := func(s string) {
		num(uint64(len(s)))
		io.WriteString(h, s)
	}
	flag := func(f bool) {
		if f {
			num(1)
		} else {
			num(0)
		}
	}
	str(string(v.Model))
	str(v.Pre)
	num(uint64(len(v.Tokens)))
	for _, t := range v.Tokens {
		str(t)
	}
	num(uint64(len(v.Scores)))
	for _, s := range v.Scores {
		num(uint64(math.Float32bits(s)))
	}
	num(uint64(len(v.Types)))
	for _, t := range v.Types {
		num(uint64(t))
	}
	num(uint64(len(v.Merges)))
	for _, m := range v.Merges {
		str(m)
	}
	for _, id := range []int32{v.BOS, v.EOS, v.UNK, v.PAD, v.EOT} {
		num(uint64(int64(id)))
	}
	flag(v.AddBOS)
	flag(v.AddEOS)
	flag(v.AddSpacePrefix)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// BuildShards tokenizes the plain-text sources with tok into binary shard
// files in dir and returns their index, or returns the existing index
// (with Reused set) when dir already holds shards of the same sources
// (same paths, sizes and modification times), tokenizer and options.
//
// Each source is read in pieces of about opt.ChunkBytes, cut at a line
// break between two non-space characters, where byte-level BPE
// pre-tokenizers (GPT-2's, Llama 3's) split anyway, so the pieces'
// tokens are those of the whole text. The pieces are tokenized in parallel
// and written in order, so the output does not depend on Workers. A
// SentencePiece vocabulary that prefixes a space (Llama 2) does so at each
// piece, changing the first token of about one piece in ChunkBytes; a
// ChunkBytes larger than the sources avoids that at the cost of
// parallelism. Sources are streamed, so they may be larger than memory.
//
// Shards are written to temporary files and renamed into place, and the
// index, written last, is what makes them valid: an interrupted build
// leaves no index and is redone. Two builds must not share a directory at
// once.
//
// It returns an error when a source cannot be read, the vocabulary lacks a
// BOS or EOS token asked for, the tokenizer yields an id outside its
// vocabulary, or the shards cannot be written.
func BuildShards(dir string, sources []string, tok tokenizer.Tokenizer, opt ShardOptions) (*ShardIndex, error) {
	if opt.ShardTokens < 0 || opt.ChunkBytes < 0 || opt.Workers < 0 {
		return nil, fmt.Errorf("data: negative shard option in %+v", opt)
	}
	if opt.ShardTokens == 0 {
		opt.ShardTokens = DefaultShardTokens
	}
	if opt.ChunkBytes == 0 {
		opt.ChunkBytes = DefaultChunkBytes
	}
	if opt.Workers == 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if len(sources) == 0 {
		return nil, errors.New("data: no sources to shard")
	}
	v := tok.Vocab()
	want := &ShardIndex{
		Version:   shardVersion,
		Dtype:     DtypeUint16,
		VocabSize: len(v.Tokens),
		Tokenizer: Fingerprint(v),
		Options: ShardIndexOptions{ShardTokens: opt.ShardTokens, ChunkBytes: opt.ChunkBytes,
			ParseSpecial: opt.ParseSpecial, BOS: opt.BOS, EOS: opt.EOS},
	}
	if want.VocabSize > 1<<16 {
		want.Dtype = DtypeUint32
	}
	for _, src := range sources {
		abs, err := filepath.Abs(src)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("data: source: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("data: source %s is not a regular file", src)
		}
		want.Sources = append(want.Sources, ShardSource{Path: abs, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()})
	}
	old, _ := ReadShardIndex(dir) // any failure to read it means rebuilding
	if old != nil && upToDate(dir, old, want) {
		old.Reused = true
		return old, nil
	}
	special := specialIDs{bos: tokenizer.NoToken, eos: tokenizer.NoToken}
	if opt.BOS {
		if special.bos = v.BOS; special.bos == tokenizer.NoToken {
			return nil, errors.New("data: BOS asked for but the vocabulary has no BOS token")
		}
	}
	if opt.EOS {
		if special.eos = v.EOS; special.eos == tokenizer.NoToken {
			special.eos = v.EOT
		}
		if special.eos == tokenizer.NoToken {
			return nil, errors.New("data: EOS asked for but the vocabulary has no EOS or EOT token")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	w := &shardWriter{dir: dir, width: dtypeWidth(want.Dtype), limit: opt.ShardTokens}
	err := tokenizeSources(want, tok, opt, special, w)
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		w.abort()
		return nil, err
	}
	want.Shards = w.infos
	for _, s := range w.infos {
		want.Tokens += s.Tokens
	}
	// The old index goes first: should renaming stop half-way, no index
	// vouches for a mix of old and new shards.
	if err := os.Remove(filepath.Join(dir, IndexFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.abort()
		return nil, err
	}
	if err := w.commit(); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, IndexFile), 0o644, func(f io.Writer) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(want)
	}); err != nil {
		return nil, err
	}
	if old != nil {
		keep := map[string]bool{}
		for _, s := range want.Shards {
			keep[s.Name] = true
		}
		for _, s := range old.Shards {
			if !keep[s.Name] && filepath.Base(s.Name) == s.Name {
				os.Remove(filepath.Join(dir, s.Name)) // stale; failing to remove it harms nothing
			}
		}
	}
	return want, nil
}

// ReadShardIndex reads the index of the shard directory dir. It returns an
// error when the index is missing or is not valid JSON of a known version.
func ReadShardIndex(dir string) (*ShardIndex, error) {
	path := filepath.Join(dir, IndexFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ix ShardIndex
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	if ix.Version != shardVersion {
		return nil, fmt.Errorf("data: %s: version %d, want %d", path, ix.Version, shardVersion)
	}
	if dtypeWidth(ix.Dtype) == 0 {
		return nil, fmt.Errorf("data: %s: unknown dtype %q", path, ix.Dtype)
	}
	var sum int64
	for _, s := range ix.Shards {
		if s.Tokens <= 0 || s.Name == "" || filepath.Base(s.Name) != s.Name {
			return nil, fmt.Errorf("data: %s: bad shard entry %+v", path, s)
		}
		sum += s.Tokens
	}
	if sum != ix.Tokens {
		return nil, fmt.Errorf("data: %s: shards hold %d tokens, index says %d", path, sum, ix.Tokens)
	}
	return &ix, nil
}

// upToDate reports whether the existing index old describes what want asks
// for and its shard files are all there at the right sizes.
func upToDate(dir string, old, want *ShardIndex) bool {
	if old.Dtype != want.Dtype || old.VocabSize != want.VocabSize || old.Tokenizer != want.Tokenizer ||
		old.Options != want.Options || len(old.Sources) != len(want.Sources) {
		return false
	}
	for i, s := range old.Sources {
		w := want.Sources[i]
		if s.Path != w.Path || s.Size != w.Size || s.ModTime != w.ModTime {
			return false
		}
	}
	width := int64(dtypeWidth(old.Dtype))
	for _, s := range old.Shards {
		fi, err := os.Stat(filepath.Join(dir, s.Name))
		if err != nil || fi.Size() != s.Tokens*width {
			return false
		}
	}
	return true
}

// specialIDs are the tokens put around each source (NoToken for none).
type specialIDs struct{ bos, eos int32 }

// chunkJob is one piece of a source on its way through the tokenizers.
type chunkJob struct {
	src         int
	text        string
	first, last bool // the piece starts or ends its source
	ids         []int32
	err         error
	done        chan struct{}
}

// tokenizeSources tokenizes ix.Sources into w. A reader goroutine cuts the
// sources into jobs and queues each on two channels: jobs, which the
// workers take in any order, and order, which this goroutine drains in
// sequence, waiting for each job to be done, so the output keeps the
// input's order while at most a bounded number of pieces are in memory.
func tokenizeSources(ix *ShardIndex, tok tokenizer.Tokenizer, opt ShardOptions, sp specialIDs, w *shardWriter) error {
	jobs := make(chan *chunkJob, opt.Workers)
	order := make(chan *chunkJob, 2*opt.Workers)
	quit := make(chan struct{})
	var readErr error
	// The goroutines read the paths from their own slice, as this one
	// updates ix.Sources' token counts meanwhile.
	paths := make([]string, len(ix.Sources))
	for i, s := range ix.Sources {
		paths[i] = s.Path
	}
	go func() {
		defer close(jobs)
		defer close(order)
		for i, path := range paths {
			err := readChunks(path, opt.ChunkBytes, func(text string, first, last bool) bool {
				j := &chunkJob{src: i, text: text, first: first, last: last, done: make(chan struct{})}
				select {
				case order <- j:
				case <-quit:
					return false
				}
				select {
				case jobs <- j:
				case <-quit:
					return false
				}
				return true
			})
			if err != nil {
				readErr = err // read by the consumer only after order is closed
				return
			}
			select {
			case <-quit:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	encOpt := tokenizer.EncodeOptions{ParseSpecial: opt.ParseSpecial}
	vocab := int32(ix.VocabSize)
	for range opt.Workers {
		wg.Go(func() {
			for j := range jobs {
				j.ids = tok.Encode(j.text, encOpt)
				j.text = ""
				for _, id := range j.ids {
					if id < 0 || id >= vocab {
						j.err = fmt.Errorf("data: %s: tokenizer gave id %d outside its vocabulary of %d", paths[j.src], id, vocab)
						break
					}
				}
				close(j.done)
			}
		})
	}
	var err error
	for j := range order {
		if err != nil {
			continue // draining, so that the reader can finish
		}
		<-j.done
		err = j.err
		var n int64
		if err == nil && j.first && sp.bos != tokenizer.NoToken {
			err = w.write([]int32{sp.bos})
			n++
		}
		if err == nil {
			err = w.write(j.ids)
			n += int64(len(j.ids))
		}
		if err == nil && j.last && sp.eos != tokenizer.NoToken {
			err = w.write([]int32{sp.eos})
			n++
		}
		ix.Sources[j.src].Tokens += n
		if err != nil {
			close(quit)
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// readChunks streams the file at path to emit in pieces of about
// chunkBytes, cut at seams that cutPoint finds; a piece with no seam grows
// up to 64 times chunkBytes and is then cut at a UTF-8 character boundary. An empty file is one empty piece. emit
// returns false to stop early.
func readChunks(path string, chunkBytes int, emit func(text string, first, last bool) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var buf []byte
	eof := false
	fill := func(n int) error {
		for !eof && len(buf) < n {
			if cap(buf) < n {
				nb := make([]byte, len(buf), n)
				copy(nb, buf)
				buf = nb
			}
			m, err := r.Read(buf[len(buf):n])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("data: %s: %w", path, err)
			}
		}
		return nil
	}
	first := true
	want := chunkBytes + 1 // one byte past a cut, to see what follows it
	for {
		if err := fill(want); err != nil {
			return err
		}
		if eof && len(buf) <= chunkBytes {
			emit(string(buf), first, true)
			return nil
		}
		cut := cutPoint(buf, chunkBytes)
		if cut < 0 {
			if !eof && want < 64*chunkBytes {
				want *= 2
				continue
			}
			cut = chunkBytes
			for cut > 1 && buf[cut]&0xC0 == 0x80 { // a UTF-8 continuation byte
				cut--
			}
		}
		if !emit(string(buf[:cut]), first, false) {
			return nil
		}
		first = false
		n := copy(buf, buf[cut:])
		buf = buf[:n]
		want = chunkBytes + 1
	}
}

// cutPoint returns the cut in buf nearest below limit (else the nearest
// above it) at a seam, or -1. The best seam is a lone newline between two
// non-space bytes: every byte-level pre-tokenizer (GPT-2's, Llama 3's)
// splits there, whereas a run of white space at the end of a piece would
// merge into one pre-token ("\n\n") that the whole text splits. Without
// one, any newline followed by a non-space byte will do.
func cutPoint(buf []byte, limit int) int {
	strict := func(p int) bool { return p >= 2 && buf[p-1] == '\n' && !isSpace(buf[p-2]) && !isSpace(buf[p]) }
	loose := func(p int) bool { return buf[p-1] == '\n' && !isSpace(buf[p]) }
	for _, ok := range []func(int) bool{strict, loose} {
		for p := min(limit, len(buf)-1); p > 0; p-- {
			if ok(p) {
				return p
			}
		}
		for p := limit + 1; p < len(buf); p++ {
			if ok(p) {
				return p
			}
		}
	}
	return -1
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// shardWriter writes a token stream into temporary shard files of limit
// tokens each.
type shardWriter struct {
	dir   string
	width int
	limit int64
	f     *os.File
	bw    *bufio.Writer
	n     int64 // tokens in the current shard
	temps []string
	infos []ShardFileInfo
	buf   []byte
}

func (w *shardWriter) write(ids []int32) error {
	for len(ids) > 0 {
		if w.f == nil {
			name := fmt.Sprintf("shard-%05d.bin", len(w.infos))
			f, err := os.CreateTemp(w.dir, "."+name+".tmp-*")
			if err != nil {
				return err
			}
			w.f, w.bw, w.n = f, bufio.NewWriterSize(f, 1<<20), 0
			w.temps = append(w.temps, f.Name())
			w.infos = append(w.infos, ShardFileInfo{Name: name})
		}
		k := min(int64(len(ids)), w.limit-w.n)
		w.buf = w.buf[:0]
		for _, id := range ids[:k] {
			if w.width == 2 {
				w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(id))
			} else {
				w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(id))
			}
		}
		if _, err := w.bw.Write(w.buf); err != nil {
			return err
		}
		w.n += k
		w.infos[len(w.infos)-1].Tokens = w.n
		ids = ids[k:]
		if w.n == w.limit {
			if err := w.closeShard(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *shardWriter) closeShard() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

// finish closes the last shard.
func (w *shardWriter) finish() error {
	if w.f == nil {
		return nil
	}
	return w.closeShard()
}

// abort removes the temporary files.
func (w *shardWriter) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	for _, t := range w.temps {
		os.Remove(t)
	}
}

// commit renames the temporary files to their shard names.
func (w *shardWriter) commit() error {
	for i, t := range w.temps {
		if err := os.Rename(t, filepath.Join(w.dir, w.infos[i].Name)); err != nil {
			w.abort()
			return err
		}
	}
	return nil
}
