package data

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minnowml/minnow/data/tokenizer"
)

// byteTokenizer is a stand-in for a real tokenizer: each byte b becomes id
// offset+b, and the last id is EOS. Its output does not depend on where a
// text is cut, so a shard's tokens are exactly the source bytes.
type byteTokenizer struct {
	v       tokenizer.Vocab
	offset  int32
	badID   bool         // yield an id outside the vocabulary
	encodes atomic.Int64 // Encode calls, to tell a rebuild from a reuse
}

func newByteTokenizer(offset int32) *byteTokenizer {
	n := int(offset) + 257
	toks := make([]string, n)
	for i := range toks {
		toks[i] = fmt.Sprintf("<%d>", i)
	}
	return &byteTokenizer{offset: offset, v: tokenizer.Vocab{
		Model: tokenizer.ModelBPE, Tokens: toks,
		BOS: tokenizer.NoToken, EOS: int32(n - 1), UNK: tokenizer.NoToken, PAD: tokenizer.NoToken, EOT: tokenizer.NoToken,
	}}
}

func (b *byteTokenizer) Encode(text string, _ tokenizer.EncodeOptions) []int32 {
	b.encodes.Add(1)
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = b.offset + int32(text[i])
	}
	if b.badID && len(ids) > 0 {
		ids[0] = int32(len(b.v.Tokens))
	}
	return ids
}

func (b *byteTokenizer) Decode(ids []int32, _ tokenizer.DecodeOptions) string {
	out := make([]byte, 0, len(ids))
	for _, id := range ids {
		out = append(out, byte(id-b.offset))
	}
	return string(out)
}

func (b *byteTokenizer) Vocab() *tokenizer.Vocab { return &b.v }

// ids returns what the byte tokenizer makes of texts, with EOS after each.
func (b *byteTokenizer) ids(eos bool, texts ...string) []int32 {
	var out []int32
	for _, s := range texts {
		for i := range len(s) {
			out = append(out, b.offset+int32(s[i]))
		}
		if eos {
			out = append(out, b.v.EOS)
		}
	}
	return out
}

// tailSpaceTokenizer mimics the one place where GPT-2's pre-tokenizer
// depends on what follows: a run of white space at the very end of a text
// becomes one token (id 256) instead of one per byte. A piece cut after
// "\n\n" would tokenize differently from the whole text.
type tailSpaceTokenizer struct{ byteTokenizer }

func (b *tailSpaceTokenizer) Encode(text string, opt tokenizer.EncodeOptions) []int32 {
	trimmed := strings.TrimRight(text, " \n")
	ids := b.byteTokenizer.Encode(trimmed, opt)
	if n := len(text) - len(trimmed); n >= 2 {
		ids = append(ids, 256)
	} else if n == 1 {
		ids = append(ids, int32(text[len(text)-1]))
	}
	return ids
}

// corpus returns n lines of varied text, the same for the same seed.
func corpus(n int, seed uint64) string {
	words := []string{"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs", "café", "naïve"}
	r := newRNG(seed)
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%d:", i)
		for range r.between(0, 12) {
			b.WriteString(" " + words[r.intn(uint64(len(words)))])
		}
		if r.intn(5) == 0 {
			b.WriteString("\n  indented")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// openT opens dir's shards and closes them at the end of the test.
func openT(t *testing.T, dir string) *Shards {
	t.Helper()
	s, err := OpenShards(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readAll(t *testing.T, s *Shards) []int32 {
	t.Helper()
	all := make([]int32, s.Len())
	if err := s.Read(all, 0); err != nil {
		t.Fatal(err)
	}
	return all
}

func TestShardsBuildAndReuse(t *testing.T) {
	tmp := t.TempDir()
	a, b := corpus(2000, 1), corpus(500, 2)
	pa := writeFile(t, tmp, "a.txt", a)
	pb := writeFile(t, tmp, "b.txt", b)
	dir := filepath.Join(tmp, "shards")
	tok := newByteTokenizer(0)
	opt := ShardOptions{ShardTokens: 10000, ChunkBytes: 1000, Workers: 3, EOS: true}

	ix, err := BuildShards(dir, []string{pa, pb}, tok, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := tok.ids(true, a, b)
	if ix.Reused || ix.Dtype != DtypeUint16 || ix.Tokens != int64(len(want)) || ix.VocabSize != 257 {
		t.Errorf("index %+v", ix)
	}
	if n := (len(want) + 9999) / 10000; len(ix.Shards) != n || n < 5 {
		t.Errorf("%d shards, want %d", len(ix.Shards), n)
	}
	if ix.Sources[0].Tokens != int64(len(a)+1) || ix.Sources[1].Tokens != int64(len(b)+1) {
		t.Errorf("source token counts %+v", ix.Sources)
	}
	for i, sh := range ix.Shards {
		if i < len(ix.Shards)-1 && sh.Tokens != 10000 {
			t.Errorf("shard %d holds %d tokens", i, sh.Tokens)
		}
		fi, err := os.Stat(filepath.Join(dir, sh.Name))
		if err != nil || fi.Size() != 2*sh.Tokens {
			t.Errorf("shard file %s: %v, %v", sh.Name, fi, err)
		}
	}
	if got := readAll(t, openT(t, dir)); !slices.Equal(got, want) {
		t.Fatal("shard tokens differ from the concatenated ids")
	}

	rebuild := func(what string, tok *byteTokenizer, opt ShardOptions, wantReuse bool) *ShardIndex {
		t.Helper()
		before := tok.encodes.Load()
		ix, err := BuildShards(dir, []string{pa, pb}, tok, opt)
		if err != nil {
			t.Fatal(err)
		}
		encoded := tok.encodes.Load() != before
		if ix.Reused != wantReuse || encoded == wantReuse {
			t.Errorf("%s: reused %v, tokenized %v; want reuse %v", what, ix.Reused, encoded, wantReuse)
		}
		return ix
	}
	rebuild("unchanged", tok, opt, true)
	rebuild("workers only", tok, ShardOptions{ShardTokens: 10000, ChunkBytes: 1000, Workers: 1, EOS: true}, true)

	// A changed source is tokenized again.
	b2 := b + "one more line\n"
	writeFile(t, tmp, "b.txt", b2)
	rebuild("appended source", tok, opt, false)
	if got := readAll(t, openT(t, dir)); !slices.Equal(got, tok.ids(true, a, b2)) {
		t.Fatal("rebuilt shards differ from the new source")
	}
	// Same size, new modification time.
	writeFile(t, tmp, "b.txt", strings.Replace(b2, "one", "two", 1))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(pb, later, later); err != nil {
		t.Fatal(err)
	}
	rebuild("rewritten source", tok, opt, false)
	rebuild("unchanged again", tok, opt, true)

	// Another tokenizer, or options that change the content, rebuild.
	tok2 := newByteTokenizer(0)
	tok2.v.Tokens[7] = "<seven>"
	rebuild("changed vocabulary", tok2, opt, false)
	opt.EOS = false
	ix = rebuild("without EOS", tok2, opt, false)
	if ix.Tokens != int64(len(a)+len(b2)) {
		t.Errorf("%d tokens without EOS, want %d", ix.Tokens, len(a)+len(b2))
	}
	// Fewer, larger shards: the stale ones are gone.
	opt.ShardTokens = 1 << 20
	ix = rebuild("one shard", tok2, opt, false)
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{IndexFile, "shard-00000.bin"}; len(ix.Shards) != 1 || !reflect.DeepEqual(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
	// A missing shard file is rebuilt rather than trusted.
	os.Remove(filepath.Join(dir, "shard-00000.bin"))
	rebuild("missing shard", tok2, opt, false)
}

func TestShardsDtype(t *testing.T) {
	text := corpus(300, 3)
	for _, tc := range []struct {
		offset int32
		dtype  string
		width  int64
	}{{0, DtypeUint16, 2}, {65536 - 257, DtypeUint16, 2}, {65536 - 256, DtypeUint32, 4}, {70000, DtypeUint32, 4}} {
		tmp := t.TempDir()
		p := writeFile(t, tmp, "c.txt", text)
		tok := newByteTokenizer(tc.offset)
		ix, err := BuildShards(filepath.Join(tmp, "s"), []string{p}, tok, ShardOptions{ShardTokens: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if ix.Dtype != tc.dtype {
			t.Errorf("vocabulary of %d: dtype %s, want %s", len(tok.v.Tokens), ix.Dtype, tc.dtype)
		}
		fi, _ := os.Stat(filepath.Join(tmp, "s", ix.Shards[0].Name))
		if fi.Size() != tc.width*ix.Shards[0].Tokens {
			t.Errorf("vocabulary of %d: shard of %d bytes for %d tokens", len(tok.v.Tokens), fi.Size(), ix.Shards[0].Tokens)
		}
		if got := readAll(t, openT(t, filepath.Join(tmp, "s"))); !slices.Equal(got, tok.ids(false, text)) {
			t.Errorf("vocabulary of %d: tokens do not read back", len(tok.v.Tokens))
		}
	}
}

func TestShardsDeterministicAcrossWorkers(t *testing.T) {
	tmp := t.TempDir()
	p := writeFile(t, tmp, "c.txt", corpus(3000, 4))
	var first map[string][]byte
	for _, workers := range []int{1, 2, 7} {
		dir := filepath.Join(tmp, fmt.Sprint(workers))
		ix, err := BuildShards(dir, []string{p, p}, newByteTokenizer(0), ShardOptions{ShardTokens: 7777, ChunkBytes: 300, Workers: workers, EOS: true})
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for _, sh := range ix.Shards {
			files[sh.Name], _ = os.ReadFile(filepath.Join(dir, sh.Name))
		}
		if first == nil {
			first = files
		} else if !reflect.DeepEqual(files, first) {
			t.Errorf("%d workers wrote other shards than 1 worker", workers)
		}
	}
}

// TestShardsMatchWholeText checks that cutting sources into pieces does
// not change their tokens: seams avoid runs of white space.
func TestShardsMatchWholeText(t *testing.T) {
	var b strings.Builder
	r := newRNG(9)
	for i := range 3000 {
		fmt.Fprintf(&b, "Speaker %d:\nline one\nline two", i)
		b.WriteString([]string{"\n", "\n\n", "\n \n", "\n\n\n"}[r.intn(4)])
	}
	text := b.String()
	tmp := t.TempDir()
	p := writeFile(t, tmp, "c.txt", text)
	tok := &tailSpaceTokenizer{*newByteTokenizer(0)}
	whole := tok.Encode(text, tokenizer.EncodeOptions{})
	for _, chunk := range []int{40, 300, 5000} {
		dir := filepath.Join(tmp, fmt.Sprint(chunk))
		if _, err := BuildShards(dir, []string{p}, tok, ShardOptions{ChunkBytes: chunk, Workers: 2}); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, openT(t, dir)); !slices.Equal(got, whole) {
			t.Errorf("pieces of %d bytes: %d tokens differ from the %d of the whole text", chunk, len(got), len(whole))
		}
	}
}

func TestReadChunks(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		chunk int
	}{
		{"lines", corpus(400, 5), 500},
		{"empty", "", 100},
		{"short", "one line\n", 100},
		{"no newline", strings.Repeat("é", 5000), 100},
		{"only blank lines", strings.Repeat("\n \n", 200), 50},
		{"long line then lines", strings.Repeat("x", 3000) + "\n" + corpus(50, 6), 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.txt", tc.text)
			var pieces []string
			var firsts, lasts []bool
			err := readChunks(p, tc.chunk, func(s string, first, last bool) bool {
				pieces = append(pieces, s)
				firsts, lasts = append(firsts, first), append(lasts, last)
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(pieces, "") != tc.text {
				t.Fatal("pieces do not make up the text")
			}
			for i, s := range pieces {
				if firsts[i] != (i == 0) || lasts[i] != (i == len(pieces)-1) {
					t.Errorf("piece %d: first %v last %v", i, firsts[i], lasts[i])
				}
				if i == len(pieces)-1 {
					continue
				}
				next := pieces[i+1]
				seam := strings.HasSuffix(s, "\n") && !isSpace(next[0])
				if !seam && !strings.Contains(tc.name, "no newline") && !strings.Contains(tc.name, "blank") {
					t.Errorf("piece %d ends at a bad seam: %q|%q", i, s[max(0, len(s)-10):], next[:min(10, len(next))])
				}
				if len(s) > 64*tc.chunk {
					t.Errorf("piece %d of %d bytes", i, len(s))
				}
				if strings.Contains(tc.name, "no newline") && (len(s)%2 != 0 || len(s) > tc.chunk) {
					t.Errorf("piece %d of %d bytes splits a character or overruns", i, len(s))
				}
			}
			if tc.name == "lines" && len(pieces) < len(tc.text)/500 {
				t.Errorf("%d pieces of %d bytes", len(pieces), len(tc.text))
			}
		})
	}
}

func TestShardsBuildErrors(t *testing.T) {
	tmp := t.TempDir()
	p := writeFile(t, tmp, "c.txt", corpus(100, 7))
	dir := filepath.Join(tmp, "s")
	bad := newByteTokenizer(0)
	bad.badID = true
	if _, err := BuildShards(dir, []string{p}, bad, ShardOptions{ChunkBytes: 200}); err == nil || !strings.Contains(err.Error(), "c.txt: tokenizer gave id 257 outside its vocabulary of 257") {
		t.Errorf("bad id: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed build left %v", entries)
	}
	if _, err := BuildShards(dir, []string{p}, newByteTokenizer(0), ShardOptions{BOS: true}); err == nil || !strings.Contains(err.Error(), "no BOS") {
		t.Errorf("missing BOS: %v", err)
	}
	if _, err := BuildShards(dir, []string{filepath.Join(tmp, "nope.txt")}, newByteTokenizer(0), ShardOptions{}); err == nil || !strings.Contains(err.Error(), "nope.txt") {
		t.Errorf("missing source: %v", err)
	}
	if _, err := BuildShards(dir, nil, newByteTokenizer(0), ShardOptions{}); err == nil {
		t.Error("no sources: no error")
	}
	if _, err := BuildShards(dir, []string{p}, newByteTokenizer(0), ShardOptions{ShardTokens: -1}); err == nil {
		t.Error("negative option: no error")
	}
	// OpenShards catches a damaged directory.
	if _, err := BuildShards(dir, []string{p}, newByteTokenizer(0), ShardOptions{ShardTokens: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "shard-00001.bin"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenShards(dir); err == nil || !strings.Contains(err.Error(), "shard-00001.bin has 10 bytes, its index says 2000") {
		t.Errorf("truncated shard: %v", err)
	}
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"version":1,"dtype":"int8"}`), 0o644)
	if _, err := OpenShards(dir); err == nil || !strings.Contains(err.Error(), `unknown dtype "int8"`) {
		t.Errorf("bad index: %v", err)
	}
	if _, err := OpenShards(t.TempDir()); err == nil {
		t.Error("no index: no error")
	}
}

// buildStreamCorpus builds shards of a corpus whose windows cross shard
// boundaries and returns them with the corpus ids.
func buildStreamCorpus(t *testing.T) (s *Shards, ids []int32, dir string) {
	t.Helper()
	tmp := t.TempDir()
	text := corpus(600, 8)
	p := writeFile(t, tmp, "c.txt", text)
	dir = filepath.Join(tmp, "s")
	tok := newByteTokenizer(0)
	if _, err := BuildShards(dir, []string{p}, tok, ShardOptions{ShardTokens: 1001, ChunkBytes: 256}); err != nil {
		t.Fatal(err)
	}
	return openT(t, dir), tok.ids(false, text), dir
}

// windowStart returns the start in all of the window w of a stream of
// seq-token stride, or -1.
func windowStart(all []int32, w []int32, seq int) int {
	for s := 0; s+len(w) <= len(all); s += seq {
		if slices.Equal(all[s:s+len(w)], w) {
			return s
		}
	}
	return -1
}

func TestStreamWindows(t *testing.T) {
	s, all, _ := buildStreamCorpus(t)
	const batch, seq = 3, 16
	nw := int64((len(all) - 1) / seq)
	train, val, err := s.WindowCounts(seq, 0.1)
	if err != nil || train+val != nw || val != int64(float64(nw)*0.1+0.5) {
		t.Fatalf("window counts %d + %d of %d: %v", train, val, nw, err)
	}
	for _, part := range []Part{Train, Validation} {
		st, err := s.Stream(StreamOptions{Batch: batch, Seq: seq, ValFraction: 0.1, Part: part})
		if err != nil {
			t.Fatal(err)
		}
		first := int64(0)
		if part == Validation {
			first = train
		}
		if st.Len() != map[Part]int64{Train: train, Validation: val}[part] || st.WindowTokens() != seq+1 {
			t.Fatalf("%s: %d windows", part, st.Len())
		}
		// In corpus order, two epochs of batches are the corpus's
		// consecutive windows, wrapping at the end of the part.
		buf := make([]int32, batch*(seq+1))
		for i := int64(0); i < 2*st.Len(); i += batch {
			n, err := st.Next(buf)
			if err != nil || n != batch {
				t.Fatalf("%s: Next = %d, %v", part, n, err)
			}
			for b := range int64(batch) {
				w := (first + (i+b)%st.Len()) * seq
				if !slices.Equal(buf[b*(seq+1):(b+1)*(seq+1)], all[w:w+seq+1]) {
					t.Fatalf("%s: window %d differs from corpus tokens [%d, %d)", part, i+b, w, w+seq+1)
				}
			}
		}
		one := make([]int32, seq+1)
		if err := st.Window(st.Len()-1, one); err != nil || !slices.Equal(one, all[(first+st.Len()-1)*seq:][:seq+1]) {
			t.Errorf("%s: last window: %v", part, err)
		}
	}
}

func TestStreamShuffleAndResume(t *testing.T) {
	s, all, dir := buildStreamCorpus(t)
	const batch, seq = 5, 32
	opt := StreamOptions{Batch: batch, Seq: seq, ValFraction: 0.05, Shuffle: true, Seed: 11}
	st, err := s.Stream(opt)
	if err != nil {
		t.Fatal(err)
	}
	n := int(st.Len())
	steps := 3*n/batch + 2 // crosses epoch boundaries mid-batch
	var batches [][]int32
	var cursors []Cursor
	for range steps {
		buf := make([]int32, batch*(seq+1))
		if _, err := st.Next(buf); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, buf)
		cursors = append(cursors, st.Cursor())
	}
	// Each epoch visits every training window once, in a new order.
	var order [][]int
	flat := slices.Concat(batches...)
	for e := range 3 {
		var starts []int
		for i := e * n; i < (e+1)*n; i++ {
			starts = append(starts, windowStart(all, flat[i*(seq+1):(i+1)*(seq+1)], seq))
		}
		order = append(order, starts)
		sorted := slices.Sorted(slices.Values(starts))
		for i, x := range sorted {
			if x != i*seq {
				t.Fatalf("epoch %d: windows start at %v..., want every multiple of %d below %d", e, sorted[:min(len(sorted), 8)], seq, n*seq)
			}
		}
	}
	if reflect.DeepEqual(order[0], order[1]) || slices.IsSorted(order[0]) {
		t.Error("epochs are not shuffled afresh")
	}
	// The same seed gives the same stream; another seed another.
	for _, tc := range []struct {
		seed uint64
		same bool
	}{{11, true}, {12, false}} {
		o := opt
		o.Seed = tc.seed
		st2, _ := s.Stream(o)
		buf := make([]int32, batch*(seq+1))
		st2.Next(buf)
		if slices.Equal(buf, batches[0]) != tc.same {
			t.Errorf("seed %d: first batch equal = %v", tc.seed, !tc.same)
		}
	}
	// Resuming from a cursor saved after any step, through JSON and a
	// fresh open of the shards, continues exactly.
	for _, k := range []int{0, 1, n/batch - 1, n / batch, steps - 2} {
		js, _ := json.Marshal(cursors[k])
		var c Cursor
		if err := json.Unmarshal(js, &c); err != nil {
			t.Fatal(err)
		}
		s2, err := OpenShards(dir)
		if err != nil {
			t.Fatal(err)
		}
		st2, _ := s2.Stream(opt)
		if err := st2.Seek(c); err != nil {
			t.Fatal(err)
		}
		for i := k + 1; i < steps; i++ {
			buf := make([]int32, batch*(seq+1))
			if _, err := st2.Next(buf); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(buf, batches[i]) {
				t.Fatalf("resumed after step %d (cursor %s): batch %d differs", k, js, i)
			}
		}
		s2.Close()
	}
}

func TestStreamOnePass(t *testing.T) {
	s, all, _ := buildStreamCorpus(t)
	const batch, seq = 4, 20
	st, err := s.Stream(StreamOptions{Batch: batch, Seq: seq, ValFraction: 0.1, Part: Validation, OnePass: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	buf := make([]int32, batch*(seq+1))
	var counts []int
	for {
		n, err := st.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
		got = append(got, buf[:n*(seq+1)]...)
	}
	if int64(len(got)) != st.Len()*(seq+1) {
		t.Fatalf("one pass read %d windows of %d (batches %v)", len(got)/(seq+1), st.Len(), counts)
	}
	if st.Len()%batch != 0 && counts[len(counts)-1] != int(st.Len()%batch) {
		t.Errorf("last batch of %d windows, want %d", counts[len(counts)-1], st.Len()%batch)
	}
	train, _, _ := s.WindowCounts(seq, 0.1)
	for i := range st.Len() {
		w := (train + i) * seq
		if !slices.Equal(got[i*(seq+1):(i+1)*(seq+1)], all[w:w+seq+1]) {
			t.Fatalf("validation window %d differs", i)
		}
	}
	if n, err := st.Next(buf); n != 0 || err != io.EOF {
		t.Errorf("after the end: %d, %v", n, err)
	}
	if err := st.Seek(Cursor{}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Next(buf); err != nil || n != min(batch, int(st.Len())) {
		t.Errorf("after seeking back: %d, %v", n, err)
	}
}

func TestStreamErrors(t *testing.T) {
	s, _, _ := buildStreamCorpus(t)
	for _, opt := range []StreamOptions{
		{Batch: 0, Seq: 8},
		{Batch: 1, Seq: 0},
		{Batch: 1, Seq: 8, ValFraction: 1},
		{Batch: 1, Seq: int(s.Len())}, // not one window
		{Batch: 1, Seq: int(s.Len()-1) / 2, ValFraction: 0.0, Part: Validation}, // no validation windows
	} {
		if _, err := s.Stream(opt); err == nil {
			t.Errorf("%+v: no error", opt)
		}
	}
	st, _ := s.Stream(StreamOptions{Batch: 2, Seq: 8})
	if _, err := st.Next(make([]int32, 17)); err == nil {
		t.Error("short buffer: no error")
	}
	if err := st.Seek(Cursor{Epoch: 0, Index: st.Len() + 1}); err == nil {
		t.Error("cursor past the epoch: no error")
	}
	if err := st.Window(st.Len(), make([]int32, 9)); err == nil {
		t.Error("window out of range: no error")
	}
	if err := s.Read(make([]int32, 2), s.Len()-1); err == nil {
		t.Error("read past the end: no error")
	}
}

func TestShakespeareShards(t *testing.T) {
	src := dataPath(t, "text/tinyshakespeare/input.txt")
	text, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tok := newByteTokenizer(0)
	ix, err := BuildShards(dir, []string{src}, tok, ShardOptions{ShardTokens: 300000, Workers: 2, ChunkBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Shards) != (len(text)+299999)/300000 || ix.Tokens != int64(len(text)) {
		t.Errorf("%d shards, %d tokens for %d bytes", len(ix.Shards), ix.Tokens, len(text))
	}
	s := openT(t, dir)
	if got := tok.Decode(readAll(t, s), tokenizer.DecodeOptions{}); got != string(text) {
		t.Fatal("shards do not decode to the source")
	}
	st, err := s.Stream(StreamOptions{Batch: 16, Seq: 256, ValFraction: 0.1, Shuffle: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]int32, 16*257)
	for range 50 {
		if _, err := st.Next(buf); err != nil {
			t.Fatal(err)
		}
		for b := range 16 {
			w := tok.Decode(buf[b*257:(b+1)*257], tokenizer.DecodeOptions{})
			if !strings.Contains(string(text), w) {
				t.Fatal("a window is not a passage of the source")
			}
		}
	}
	if again, err := BuildShards(dir, []string{src}, tok, ShardOptions{ShardTokens: 300000, Workers: 2, ChunkBytes: 64 << 10}); err != nil || !again.Reused {
		t.Errorf("second build: reused %v, %v", again != nil && again.Reused, err)
	}
}

func TestInputsTargets(t *testing.T) {
	w := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	x, y := make([]int32, 6), make([]int32, 6)
	if err := InputsTargets(w, 3, x, y); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, []int32{1, 2, 3, 5, 6, 7}) || !slices.Equal(y, []int32{2, 3, 4, 6, 7, 8}) {
		t.Errorf("x %v y %v", x, y)
	}
	for _, tc := range []struct {
		n, seq, nx int
	}{{8, 2, 4}, {8, 3, 5}, {8, 0, 0}, {7, 3, 6}} {
		if err := InputsTargets(make([]int32, tc.n), tc.seq, make([]int32, tc.nx), make([]int32, tc.nx)); err == nil {
			t.Errorf("%+v: no error", tc)
		}
	}
}
