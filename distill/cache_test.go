package distill

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minnowml/minnow/data/tokenizer"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
)

const testVocab = 24

// tinyModel returns a small Llama over testVocab tokens.
func tinyModel(t *testing.T, seed uint64) model.Model {
	t.Helper()
	m, err := model.New(model.Config{ModelType: "llama", VocabSize: testVocab, HiddenSize: 16, IntermediateSize: 32,
		NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 32, TieWordEmbeddings: true},
		tensor.Default(), tensor.Float32, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testVocabulary() tokenizer.Vocab {
	v := tokenizer.Vocab{Model: tokenizer.ModelBPE, BOS: -1, EOS: testVocab - 1, UNK: -1, PAD: -1, EOT: -1}
	for i := range testVocab {
		v.Tokens = append(v.Tokens, string(rune('a'+i)))
	}
	return v
}

// testSeqs returns n examples, each with a chosen, a rejected and a
// student response of varied lengths.
func testSeqs(n int) []Seq {
	var out []Seq
	for ex := range n {
		prompt := []int32{int32(ex % 5), int32(1 + ex%7), 3}
		for i, role := range []Role{RoleChosen, RoleRejected, RoleStudent} {
			ids := append([]int32{}, prompt...)
			for j := range 2 + (ex+i)%4 {
				ids = append(ids, int32((ex*3+i*5+j*7)%(testVocab-1)))
			}
			ids = append(ids, testVocab-1)
			out = append(out, Seq{Example: int32(ex), Role: role, IDs: ids, Start: len(prompt)})
		}
	}
	return out
}

// TestBuildCacheSignals checks the signals against the teacher's own
// log-softmax: the top-K are its K likeliest tokens in order, the
// remainder is 1 minus their mass, and the reference log-probs are the
// reference's at the same tokens.
func TestBuildCacheSignals(t *testing.T) {
	teacher, ref := tinyModel(t, 1), tinyModel(t, 2)
	seqs := testSeqs(3)
	c, err := BuildCache(teacher, ref, testVocabulary(), seqs, CacheConfig{TopK: 5, Temperature: 1, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Seqs {
		s := &c.Seqs[i]
		tl, _ := hostLogits(teacher, []Seq{*s})
		rl, _ := hostLogits(ref, []Seq{*s})
		for p := range s.Len() {
			pos := s.Start - 1 + p
			lp := logSoftmax(tl[0][pos*testVocab:(pos+1)*testVocab], 1)
			rp := logSoftmax(rl[0][pos*testVocab:(pos+1)*testVocab], 1)
			mass := 0.0
			for k := range 5 {
				j := s.Index[p*5+k]
				if math.Abs(float64(s.LogP[p*5+k])-lp[j]) > 1e-6 || math.Abs(float64(s.RefLogP[p*5+k])-rp[j]) > 1e-6 {
					t.Fatalf("seq %d pos %d: cached %v/%v, model %v/%v", i, p, s.LogP[p*5+k], s.RefLogP[p*5+k], lp[j], rp[j])
				}
				if k > 0 && s.LogP[p*5+k] > s.LogP[p*5+k-1] {
					t.Fatalf("seq %d pos %d: top-K not in descending order", i, p)
				}
				mass += math.Exp(lp[j])
			}
			for j := range testVocab {
				if lp[j] > float64(s.LogP[p*5+4])+1e-6 && !contains(s.Index[p*5:p*5+5], int32(j)) {
					t.Fatalf("seq %d pos %d: token %d is likelier than the 5th but not cached", i, p, j)
				}
			}
			if math.Abs(float64(s.Rest[p])-(1-mass)) > 1e-6 {
				t.Fatalf("seq %d pos %d: remainder %v, want %v", i, p, s.Rest[p], 1-mass)
			}
		}
	}
}

func contains(xs []int32, x int32) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestCacheRoundTrip writes a cache and reads back the same, with and
// without reference log-probs.
func TestCacheRoundTrip(t *testing.T) {
	for _, withRef := range []bool{false, true} {
		var ref model.Model
		if withRef {
			ref = tinyModel(t, 2)
		}
		c, err := BuildCache(tinyModel(t, 1), ref, testVocabulary(), testSeqs(4), DefaultCacheConfig())
		if err != nil {
			t.Fatal(err)
		}
		if c.Header.K != testVocab {
			t.Errorf("top-k %d, want it capped at the vocabulary %d", c.Header.K, testVocab)
		}
		path := filepath.Join(t.TempDir(), "teacher.cache")
		if err := Write(path, c); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("reference %v: read back a different cache", withRef)
		}
		if err := got.CheckTokenizer(testVocabulary()); err != nil {
			t.Error(err)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
		if len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	}
}

// TestCacheCorruption checks that damaged files are errors.
func TestCacheCorruption(t *testing.T) {
	c, err := BuildCache(tinyModel(t, 1), tinyModel(t, 2), testVocabulary(), testSeqs(2), CacheConfig{TopK: 4, Temperature: 1, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "good.cache")
	if err := Write(path, c); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	flip := append([]byte{}, good...)
	flip[len(flip)/2] ^= 0x40
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"not a cache", []byte("hello world, not a cache at all"), "bad magic"},
		{"truncated", good[:len(good)-3], "truncated"},
		{"truncated in the middle", good[:len(good)/2], "truncated"},
		{"flipped byte", flip, "checksum"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, tc.b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestCacheValidate checks that inconsistent caches are refused before
// they are written.
func TestCacheValidate(t *testing.T) {
	base, err := BuildCache(tinyModel(t, 1), nil, testVocabulary(), testSeqs(1), CacheConfig{TopK: 3, Temperature: 1, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		corrupt func(c *Cache)
	}{
		{"index outside vocabulary", func(c *Cache) { c.Seqs[0].Index[0] = testVocab }},
		{"positive log-prob", func(c *Cache) { c.Seqs[0].LogP[0] = 0.5 }},
		{"NaN log-prob", func(c *Cache) { c.Seqs[0].LogP[0] = float32(math.NaN()) }},
		{"remainder above 1", func(c *Cache) { c.Seqs[0].Rest[0] = 1.5 }},
		{"short signals", func(c *Cache) { c.Seqs[0].Rest = c.Seqs[0].Rest[1:] }},
		{"no prompt", func(c *Cache) { c.Seqs[0].Start = 0 }},
		{"no tokenizer", func(c *Cache) { c.Header.Tokenizer = "" }},
		{"reference missing", func(c *Cache) { c.Header.Reference = true }},
	} {
		c := cloneCache(base)
		tc.corrupt(c)
		if err := Write(filepath.Join(t.TempDir(), "x"), c); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func cloneCache(c *Cache) *Cache {
	out := &Cache{Header: c.Header}
	for _, s := range c.Seqs {
		s.IDs = append([]int32{}, s.IDs...)
		s.Index = append([]int32{}, s.Index...)
		s.LogP = append([]float32{}, s.LogP...)
		s.Rest = append([]float32{}, s.Rest...)
		out.Seqs = append(out.Seqs, s)
	}
	return out
}

// TestTokenizerMismatch checks that a student of another tokenizer, and
// a teacher of another vocabulary size, are clear errors.
func TestTokenizerMismatch(t *testing.T) {
	c, err := BuildCache(tinyModel(t, 1), nil, testVocabulary(), testSeqs(1), DefaultCacheConfig())
	if err != nil {
		t.Fatal(err)
	}
	other := testVocabulary()
	other.Tokens[3] = "zz"
	if err := c.CheckTokenizer(other); err == nil || !strings.Contains(err.Error(), "share a tokenizer") {
		t.Errorf("other tokens: %v", err)
	}
	other = testVocabulary()
	other.EOS = 2
	if TokenizerID(other) == TokenizerID(testVocabulary()) {
		t.Error("a different EOS gives the same tokenizer fingerprint")
	}
	reloaded := testVocabulary()
	reloaded.Merges, reloaded.Scores = []string{}, []float32{}
	reloaded.Types = make([]tokenizer.TokenType, testVocab)
	for i := range reloaded.Types {
		reloaded.Types[i] = tokenizer.TypeNormal
	}
	if TokenizerID(reloaded) != TokenizerID(testVocabulary()) {
		t.Error("empty merges and explicit normal types change the fingerprint")
	}
	reloaded.Types[0] = tokenizer.TypeControl
	if TokenizerID(reloaded) == TokenizerID(testVocabulary()) {
		t.Error("a control token does not change the fingerprint")
	}
	bigger := testVocabulary()
	bigger.Tokens = append(bigger.Tokens, "extra")
	if _, err := BuildCache(tinyModel(t, 1), nil, bigger, testSeqs(1), DefaultCacheConfig()); err == nil || !strings.Contains(err.Error(), "share a tokenizer") {
		t.Errorf("teacher of %d tokens with a tokenizer of %d: %v", testVocab, len(bigger.Tokens), err)
	}
}
