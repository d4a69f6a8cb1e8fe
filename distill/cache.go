package distill

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"

	"github.com/minnowml/minnow/data/tokenizer"
)

// Role says what a cached sequence's response is.
type Role uint8

// The roles of cached responses.
const (
	// RoleData is a dataset response (KD on dataset sequences).
	RoleData Role = iota
	// RoleChosen is a preference pair's preferred response.
	RoleChosen
	// RoleRejected is a preference pair's dispreferred response.
	RoleRejected
	// RoleStudent is a response the student generated (ADPA's y_s).
	RoleStudent
	// RoleTeacher is a response the teacher generated (sequence KD).
	RoleTeacher
	numRoles
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case RoleData:
		return "data"
	case RoleChosen:
		return "chosen"
	case RoleRejected:
		return "rejected"
	case RoleStudent:
		return "student"
	case RoleTeacher:
		return "teacher"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Header describes a cache: who computed it and how.
type Header struct {
	// Tokenizer is the TokenizerID of the vocabulary the token ids are in;
	// a student of another tokenizer cannot use the cache.
	Tokenizer string `json:"tokenizer"`
	// Vocab is the vocabulary size; every cached index is below it.
	Vocab int `json:"vocab"`
	// K is the number of top tokens stored per position.
	K int `json:"k"`
	// Temperature is the teacher's softmax temperature.
	Temperature float64 `json:"temperature"`
	// Reference says whether the reference teacher's log-probs of the
	// same tokens are stored (ADPA).
	Reference bool `json:"reference"`
	// Teacher and RefTeacher name the models, for people reading it.
	Teacher    string `json:"teacher,omitempty"`
	RefTeacher string `json:"ref_teacher,omitempty"`
}

// Seq is one cached sequence: a prompt and a response, with the teacher's
// signals at every response token.
type Seq struct {
	// Example is the index of the prompt (or preference triple) the
	// sequence belongs to, so a chosen and a rejected response pair up.
	Example int32
	Role    Role
	// IDs are the prompt's then the response's token ids.
	IDs []int32
	// Start is the index in IDs of the first response token, at least
	// 1; the signals of response token i (0-based) are those of the
	// teacher's distribution after IDs[:Start+i].
	Start int
	// Index, LogP and Rest are the teacher's top-K per response token,
	// row-major, with K from the header; RefLogP is nil unless the
	// header says Reference.
	Index   []int32
	LogP    []float32
	Rest    []float32
	RefLogP []float32
}

// Len returns the number of response tokens.
func (s *Seq) Len() int { return len(s.IDs) - s.Start }

// Cache is a set of teacher signals, read by Read and written by Write.
type Cache struct {
	Header Header
	Seqs   []Seq
}

// TokenizerID returns a fingerprint of everything in v that decides how
// text becomes ids: the algorithm, pre-tokenizer, tokens, types, merges,
// scores and special ids. Two tokenizers with the same ID encode alike.
func TokenizerID(v tokenizer.Vocab) string {
	// A saved and reloaded vocabulary may hold empty slices where the
	// original had nil ones, and explicit normal types where it had none;
	// both mean the same, so they fingerprint alike.
	types := make([]tokenizer.TokenType, len(v.Tokens))
	for i := range types {
		types[i] = tokenizer.TypeNormal
		if i < len(v.Types) && v.Types[i] != tokenizer.TypeUndefined {
			types[i] = v.Types[i]
		}
	}
	merges, scores := append([]string{}, v.Merges...), append([]float32{}, v.Scores...)
	h := sha256.New()
	enc := json.NewEncoder(h)
	// A JSON encoding of the fields is unambiguous (strings are quoted),
	// so distinct vocabularies cannot collide by concatenation.
	_ = enc.Encode([]any{string(v.Model), v.Pre, v.Tokens, types, merges, scores,
		[]int32{v.BOS, v.EOS, v.UNK, v.PAD, v.EOT}, v.AddBOS, v.AddEOS, v.AddSpacePrefix})
	return hex.EncodeToString(h.Sum(nil))
}

// CheckTokenizer returns an error when the cache was computed with a
// tokenizer other than v (the student's), naming both fingerprints.
func (c *Cache) CheckTokenizer(v tokenizer.Vocab) error {
	if id := TokenizerID(v); id != c.Header.Tokenizer {
		return fmt.Errorf("distill: the teacher cache was computed with tokenizer %.12s, the student uses %.12s: teacher and student must share a tokenizer",
			c.Header.Tokenizer, id)
	}
	if len(v.Tokens) != c.Header.Vocab {
		return fmt.Errorf("distill: the teacher cache has a vocabulary of %d, the student's tokenizer %d", c.Header.Vocab, len(v.Tokens))
	}
	return nil
}

// Validate returns an error describing the first inconsistency: a bad
// header, a sequence with a bad start, signal lengths that do not match
// its response, an index outside the vocabulary, or a log-prob or
// remainder that is not a probability.
func (c *Cache) Validate() error {
	h := c.Header
	if h.Tokenizer == "" {
		return errors.New("distill: cache: no tokenizer fingerprint")
	}
	if h.Vocab < 1 || h.K < 1 || h.K > h.Vocab {
		return fmt.Errorf("distill: cache: top-%d over a vocabulary of %d", h.K, h.Vocab)
	}
	if !(h.Temperature > 0) || math.IsInf(h.Temperature, 0) {
		return fmt.Errorf("distill: cache: temperature %v", h.Temperature)
	}
	for i := range c.Seqs {
		if err := c.validateSeq(&c.Seqs[i]); err != nil {
			return fmt.Errorf("distill: cache: sequence %d: %w", i, err)
		}
	}
	return nil
}

func (c *Cache) validateSeq(s *Seq) error {
	h := c.Header
	if s.Role >= numRoles {
		return fmt.Errorf("unknown role %d", s.Role)
	}
	if s.Start < 1 || s.Start >= len(s.IDs) {
		return fmt.Errorf("response starts at %d of %d ids (want a prompt and a response)", s.Start, len(s.IDs))
	}
	n := s.Len()
	wantRef := 0
	if h.Reference {
		wantRef = n * h.K
	}
	if len(s.Index) != n*h.K || len(s.LogP) != n*h.K || len(s.Rest) != n || len(s.RefLogP) != wantRef {
		return fmt.Errorf("%d indices, %d log-probs, %d remainders and %d reference log-probs for %d response tokens of top-%d",
			len(s.Index), len(s.LogP), len(s.Rest), len(s.RefLogP), n, h.K)
	}
	for _, id := range s.IDs {
		if id < 0 || int(id) >= h.Vocab {
			return fmt.Errorf("token id %d outside the vocabulary of %d", id, h.Vocab)
		}
	}
	for _, id := range s.Index {
		if id < 0 || int(id) >= h.Vocab {
			return fmt.Errorf("top-k index %d outside the vocabulary of %d", id, h.Vocab)
		}
	}
	for _, lp := range s.LogP {
		if !(lp <= 1e-4) {
			return fmt.Errorf("teacher log-prob %v is not a log-probability", lp)
		}
	}
	for _, lp := range s.RefLogP {
		if !(lp <= 1e-4) {
			return fmt.Errorf("reference log-prob %v is not a log-probability", lp)
		}
	}
	for _, r := range s.Rest {
		if !(r >= -1e-3 && r <= 1+1e-3) {
			return fmt.Errorf("remainder mass %v is outside [0, 1]", r)
		}
	}
	return nil
}

// Targets returns the signals of sequence s as Targets for its Len()
// positions.
func (c *Cache) Targets(s *Seq) Targets {
	return Targets{K: c.Header.K, Index: s.Index, LogP: s.LogP, Rest: s.Rest, RefLogP: s.RefLogP}
}

// The file layout: magic, version, header length and JSON, sequence
// count, the sequences, then a CRC-32 (IEEE) of everything before it and
// an end marker, so that both truncation and corruption are detected.
const (
	cacheMagic   = "MNDCACHE"
	cacheEnd     = "END."
	cacheVersion = 1
)

// Write validates c and writes it to path atomically: to a temporary file
// in the same directory, synced, then renamed over path, so a crash never
// leaves a half-written cache under the final name. It returns an error
// when c is invalid or a file operation fails.
func Write(path string, c *Cache) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	put := func(v any) { _ = binary.Write(&b, le, v) } // bytes.Buffer writes cannot fail
	hj, err := json.Marshal(c.Header)
	if err != nil {
		return err
	}
	b.WriteString(cacheMagic)
	put(uint32(cacheVersion))
	put(uint32(len(hj)))
	b.Write(hj)
	put(uint32(len(c.Seqs)))
	for i := range c.Seqs {
		s := &c.Seqs[i]
		put(s.Example)
		put(uint8(s.Role))
		put(uint32(len(s.IDs)))
		put(uint32(s.Start))
		put(s.IDs)
		put(s.Index)
		put(s.LogP)
		put(s.Rest)
		if c.Header.Reference {
			put(s.RefLogP)
		}
	}
	put(crc32.ChecksumIEEE(b.Bytes()))
	b.WriteString(cacheEnd)
	return writeAtomic(path, b.Bytes())
}

// writeAtomic writes data to path through a synced temporary file and a
// rename.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("distill: cache: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("distill: cache: %w", err)
	}
	return nil
}

// reader reads little-endian values from a byte slice and remembers the
// first shortfall.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("truncated: %d bytes wanted at offset %d of %d", n, r.off, len(r.b))
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *reader) i32s(n int) []int32 {
	s := r.take(4 * n)
	if s == nil {
		return nil
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(s[4*i:]))
	}
	return out
}

func (r *reader) f32s(n int) []float32 {
	s := r.take(4 * n)
	if s == nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(s[4*i:]))
	}
	return out
}

// Read reads and validates the cache at path. It returns an error when the
// file cannot be read, is not a cache, is of another version, is
// truncated, fails its checksum, or holds inconsistent signals.
func Read(path string) (*Cache, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("distill: cache: %w", err)
	}
	c, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("distill: cache %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

func decode(b []byte) (*Cache, error) {
	if len(b) < len(cacheMagic) || string(b[:len(cacheMagic)]) != cacheMagic {
		return nil, errors.New("not a teacher cache (bad magic)")
	}
	tail := 4 + len(cacheEnd)
	if len(b) < len(cacheMagic)+tail || string(b[len(b)-len(cacheEnd):]) != cacheEnd {
		return nil, errors.New("truncated: no end marker")
	}
	body := b[:len(b)-tail]
	if sum := binary.LittleEndian.Uint32(b[len(body):]); sum != crc32.ChecksumIEEE(body) {
		return nil, errors.New("corrupt: checksum mismatch")
	}
	r := &reader{b: body, off: len(cacheMagic)}
	if v := r.u32(); r.err == nil && v != cacheVersion {
		return nil, fmt.Errorf("version %d, this build reads %d", v, cacheVersion)
	}
	hj := r.take(int(r.u32()))
	if r.err != nil {
		return nil, r.err
	}
	c := &Cache{}
	if err := json.Unmarshal(hj, &c.Header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	k := c.Header.K
	n := int(r.u32())
	// Each sequence takes at least 17 bytes, which bounds a corrupt count
	// before allocating for it.
	if r.err == nil && n > (len(body)-r.off)/17 {
		return nil, fmt.Errorf("truncated: %d sequences in %d bytes", n, len(body)-r.off)
	}
	c.Seqs = make([]Seq, 0, n)
	for range n {
		var s Seq
		s.Example = int32(r.u32())
		if role := r.take(1); role != nil {
			s.Role = Role(role[0])
		}
		nIDs, start := int(r.u32()), int(r.u32())
		if r.err == nil && (start < 1 || start >= nIDs || nIDs > len(body)) {
			return nil, fmt.Errorf("sequence %d: response starts at %d of %d ids", len(c.Seqs), start, nIDs)
		}
		m := nIDs - start
		s.IDs, s.Start = r.i32s(nIDs), start
		s.Index = r.i32s(m * k)
		s.LogP = r.f32s(m * k)
		s.Rest = r.f32s(m)
		if c.Header.Reference {
			s.RefLogP = r.f32s(m * k)
		}
		if r.err != nil {
			return nil, r.err
		}
		c.Seqs = append(c.Seqs, s)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(body) {
		return nil, fmt.Errorf("corrupt: %d bytes after the last sequence", len(body)-r.off)
	}
	return c, nil
}
