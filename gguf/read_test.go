package gguf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// raw assembles GGUF bytes by hand, so tests can build files the writer
// would refuse to produce.
type raw struct{ b []byte }

func (r *raw) u32(v uint32) *raw {
	r.b = append(r.b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	return r
}

func (r *raw) u64(v uint64) *raw {
	for i := range 8 {
		r.b = append(r.b, byte(v>>(8*i)))
	}
	return r
}

func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }

func (r *raw) bytes(p ...byte) *raw { r.b = append(r.b, p...); return r }

// header starts a version 3 file with the given counts.
func header(nTensors, nKV uint64) *raw {
	r := &raw{}
	r.b = append(r.b, "GGUF"...)
	return r.u32(3).u64(nTensors).u64(nKV)
}

// tensorInfo appends a tensor description.
func (r *raw) tensorInfo(name string, typ GGMLType, offset uint64, dims ...uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(offset)
}

// padTo appends zeros up to a multiple of n.
func (r *raw) padTo(n int) *raw {
	for len(r.b)%n != 0 {
		r.b = append(r.b, 0)
	}
	return r
}

func TestReadHostile(t *testing.T) {
	const hdr = 24 // magic, version and the two counts
	tests := []struct {
		name    string
		file    []byte
		wantErr string
		wantAt  int64 // byte offset the error must name
	}{
		{"empty file", nil, "magic needs 4 bytes", 0},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), "not a GGUF file", 0},
		{"version 1", (&raw{b: []byte("GGUF")}).u32(1).u64(0).u64(0).b, "version 1 is not supported", 4},
		{"version 4", (&raw{b: []byte("GGUF")}).u32(4).u64(0).u64(0).b, "unsupported GGUF version 4", 4},
		{"big endian", (&raw{b: []byte("GGUF")}).u32(3 << 24).u64(0).u64(0).b, "big-endian", 4},
		{"huge tensor count", header(1<<62, 0).b, "more than the 0 remaining bytes", 8},
		{"huge kv count", header(0, 1<<63).b, "metadata entries", 8},
		{"counts too big together", header(1, 1).str("k").u32(uint32(TypeUint8)).bytes(1).b, "more than the", 8},
		{"huge key length", header(0, 1).u64(1<<62).u32(0).bytes(0, 0).b, "length 4611686018427387904 exceeds the limit", hdr},
		{"key past eof", header(0, 1).u64(100).u32(0).bytes(0, 0).b, "needs 100 bytes but only 6 remain", hdr + 8},
		{"empty key", header(0, 1).str("").u32(uint32(TypeUint8)).bytes(1, 0, 0, 0, 0).b, "key 0 is empty", hdr},
		{"duplicate key", header(0, 2).str("a").u32(uint32(TypeUint8)).bytes(1).str("a").u32(uint32(TypeUint8)).bytes(2).b,
			`duplicate metadata key "a"`, hdr + 14},
		{"bad type tag", header(0, 1).str("k").u32(13).bytes(0, 0, 0, 0, 0).b, `key "k" has unknown value type 13`, hdr + 9},
		{"huge string value", header(0, 1).str("k").u32(uint32(TypeString)).u64(1 << 40).b, "exceeds the limit", hdr + 13},
		{"string value past eof", header(0, 1).str("k").u32(uint32(TypeString)).u64(1000).bytes('x').b, "needs 1000 bytes but only 1 remain", hdr + 21},
		{"huge array", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 40).b, "over the limit", hdr + 13},
		{"array past eof", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1000).u64(0).b,
			"declares 1000 elements of at least 4 bytes but only 8 bytes remain", hdr + 13},
		{"string array past eof", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(3).u64(0).u64(0).b,
			"declares 3 elements of at least 8 bytes", hdr + 13},
		{"nested array", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeArray)).u64(0).b, "array of arrays", hdr + 13},
		{"array bad elem type", header(0, 1).str("k").u32(uint32(TypeArray)).u32(99).u64(0).b, "unknown value type 99", hdr + 13},
		{"array element string past eof", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(2).str("ab").u64(50).b,
			`value of key "k", element 1: element data needs 50 bytes`, hdr + 13 + 12 + 10 + 8},
		{"alignment wrong type", header(0, 1).str(KeyAlignment).u32(uint32(TypeUint64)).u64(32).b, "not uint32", hdr},
		{"alignment not power of two", header(0, 1).str(KeyAlignment).u32(uint32(TypeUint32)).u32(24).b, "not a power of two", hdr},
		{"alignment too large", header(0, 1).str(KeyAlignment).u32(uint32(TypeUint32)).u32(1 << 31).b, "over the limit of 1048576", hdr},
		{"empty tensor name", header(1, 0).tensorInfo("", F32, 0, 1).b, "empty name", hdr},
		{"long tensor name", header(1, 0).tensorInfo(strings.Repeat("n", 64), F32, 0, 1).b, "exceeds the limit of 63", hdr},
		{"too many dims", header(1, 0).tensorInfo("t", F32, 0, 1, 1, 1, 1, 1).b, "5 dimensions", hdr + 9},
		{"unknown tensor type", header(1, 0).tensorInfo("t", 31, 0, 1).b, `tensor "t": unknown tensor type 31`, hdr + 9 + 4 + 8},
		{"dims overflow", header(1, 0).tensorInfo("t", F32, 0, 1<<40, 1<<40).b, "more elements than fit", hdr + 9 + 4 + 16},
		{"dim over int64", header(1, 0).tensorInfo("t", F32, 0, 1<<63).b, "does not fit in int64", hdr + 9 + 4 + 8},
		{"block multiple", header(1, 0).tensorInfo("t", Q4_0, 0, 33).b, "not a multiple of its block size 32", hdr + 9 + 4 + 8},
		{"duplicate tensor", header(2, 0).tensorInfo("t", F32, 0, 1).tensorInfo("t", F32, 32, 1).padTo(32).bytes(make([]byte, 64)...).b,
			`duplicate tensor name "t"`, hdr + 33},
		{"data past eof", header(1, 0).tensorInfo("t", F32, 0, 1000).padTo(32).bytes(make([]byte, 100)...).b,
			`tensor "t" data (4000 bytes at data offset 0) runs past the end`, hdr + 9 + 4 + 8 + 4},
		{"offset past eof", header(1, 0).tensorInfo("t", F32, 1<<62, 1).padTo(32).b, "runs past the end", hdr + 9 + 4 + 8 + 4},
		{"misaligned offset", header(1, 0).tensorInfo("t", F32, 4, 1).padTo(32).bytes(make([]byte, 64)...).b,
			"not a multiple of the alignment 32", hdr + 9 + 4 + 8 + 4},
		{"overlap", header(2, 0).tensorInfo("a", F32, 0, 16).tensorInfo("b", F32, 32, 1).padTo(32).bytes(make([]byte, 128)...).b,
			`tensor "b" data at offset 32 overlaps tensor "a"`, hdr + 33 + 9 + 4 + 8 + 4},
		{"data section past eof", header(1, 0).tensorInfo("t", F32, 0, 0).b, "data section starts", hdr + 33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)))
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("Read succeeded (%d tensors), want error containing %q", len(f.Tensors), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want one containing %q", err, tt.wantErr)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Offset != tt.wantAt {
				t.Errorf("error at byte %d, want %d (%v)", fe.Offset, tt.wantAt, err)
			}
			// The reader's buffer is 64 KiB; anything far beyond means a
			// declared count or length was trusted.
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("allocated %d bytes reading a %d-byte file", got, len(tt.file))
			}
		})
	}
}

// TestReadVersion2 reads a version 2 file, whose layout on disk is the
// same as version 3's.
func TestReadVersion2(t *testing.T) {
	b := smallFile(t)
	b[4] = 2
	f := readBytes(t, b)
	if f.Version != 2 || len(f.Tensors) != 2 {
		t.Errorf("version %d with %d tensors, want 2 with 2", f.Version, len(f.Tensors))
	}
}

// TestReadShortReader gives Read a size larger than the content, as a
// caller passing a wrong size would: the reader must still fail cleanly
// without allocating what the header claims.
func TestReadShortReader(t *testing.T) {
	b := header(0, 1).str("k").u32(uint32(TypeString)).u64(1 << 29).bytes([]byte("abc")...).b
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(bytes.NewReader(b), 1<<30)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Read with an overstated size: %v, want ErrUnexpectedEOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("allocated %d bytes for a string the reader did not hold", got)
	}
	if _, err := Read(bytes.NewReader(nil), -1); err == nil {
		t.Error("Read with a negative size: no error")
	}
}

// smallFile is a valid file with metadata of several kinds and two
// tensors, small enough to truncate at every byte.
func smallFile(t testing.TB) []byte {
	md := Metadata{
		{"general.architecture", "llama"},
		{KeyAlignment, uint32(16)},
		{"llama.block_count", uint32(2)},
		{"tokenizer.ggml.tokens", []string{"<unk>", "a", "bc"}},
		{"tokenizer.ggml.scores", []float32{0, -1, -2}},
		{"flag", true},
	}
	tensors := []Tensor{
		{Name: "tok_embd.weight", Dims: []uint64{2, 3}, Type: F32, Data: seq(24, 1)},
		{Name: "norm", Dims: []uint64{3}, Type: F16, Data: seq(6, 2)},
	}
	var buf bytes.Buffer
	if err := Write(&buf, md, tensors); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestReadTruncated(t *testing.T) {
	full := smallFile(t)
	f, err := Read(bytes.NewReader(full), int64(len(full)))
	if err != nil {
		t.Fatalf("full file: %v", err)
	}
	// The last tensor's data ends before the final padding, which a reader
	// does not need; cutting only padding still leaves a valid file.
	last := f.Tensors[len(f.Tensors)-1]
	validFrom := f.DataOffset + int64(last.Offset+last.Size)
	for n := 0; n < len(full); n++ {
		_, err := Read(bytes.NewReader(full[:n]), int64(n))
		if int64(n) >= validFrom {
			if err != nil {
				t.Errorf("cut to %d bytes (only padding lost): %v", n, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("cut to %d of %d bytes: no error", n, len(full))
		}
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Offset > int64(n) {
			t.Errorf("cut to %d bytes: error %v is not a FormatError within the file", n, err)
		}
	}
}

// dataFile returns the path of a shared data file, skipping the test when
// MINNOW_DATA is unset and failing it when the file is missing.
func dataFile(t testing.TB, rel string) string {
	t.Helper()
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		t.Skip("MINNOW_DATA is not set; skipping the test that needs the shared data files")
	}
	path := filepath.Join(dir, rel)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("MINNOW_DATA is set but %s is missing: %v", rel, err)
	}
	return path
}

func TestReadRealVocab(t *testing.T) {
	tests := []struct {
		file           string
		arch, model    string
		pre            string
		tokens, merges int
		scores         bool
	}{
		{"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", "gpt-2", 50257, 50000, false},
		{"ggml-vocab-llama-bpe.gguf", "llama", "gpt2", "llama-bpe", 128256, 280147, false},
		{"ggml-vocab-llama-spm.gguf", "llama", "llama", "default", 32000, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := Open(dataFile(t, filepath.Join("llama-vocab", tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Version != 3 || len(f.Tensors) != 0 || f.Alignment != 32 {
				t.Errorf("version %d, %d tensors, alignment %d; want 3, 0, 32", f.Version, len(f.Tensors), f.Alignment)
			}
			str := func(key, want string) {
				if got, err := f.Metadata.String(key); err != nil || got != want {
					t.Errorf("%s = %q, %v; want %q", key, got, err, want)
				}
			}
			str("general.architecture", tt.arch)
			str("tokenizer.ggml.model", tt.model)
			str("tokenizer.ggml.pre", tt.pre)
			toks, err := f.Metadata.Strings("tokenizer.ggml.tokens")
			if err != nil || len(toks) != tt.tokens {
				t.Errorf("tokens: %d, %v; want %d", len(toks), err, tt.tokens)
			}
			types, err := f.Metadata.Int32s("tokenizer.ggml.token_type")
			if err != nil || len(types) != tt.tokens {
				t.Errorf("token_type: %d, %v; want %d", len(types), err, tt.tokens)
			}
			merges, err := f.Metadata.Strings("tokenizer.ggml.merges")
			if tt.merges > 0 && (err != nil || len(merges) != tt.merges) {
				t.Errorf("merges: %d, %v; want %d", len(merges), err, tt.merges)
			}
			if tt.merges == 0 && err == nil {
				t.Errorf("merges present (%d) in an SPM vocabulary", len(merges))
			}
			scores, err := f.Metadata.Float32s("tokenizer.ggml.scores")
			if tt.scores && (err != nil || len(scores) != tt.tokens) {
				t.Errorf("scores: %d, %v; want %d", len(scores), err, tt.tokens)
			}
			if _, err := f.Metadata.Uint32("tokenizer.ggml.bos_token_id"); err != nil {
				t.Errorf("bos_token_id: %v", err)
			}
		})
	}
}

// TestReadRealTruncated cuts a real file at every byte of its first 4 KiB
// (which covers the header and the start of the token array) and at
// coarser steps through the rest.
func TestReadRealTruncated(t *testing.T) {
	full, err := os.ReadFile(dataFile(t, "llama-vocab/ggml-vocab-llama-spm.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	cuts := make([]int, 0, 4200)
	for n := 0; n < 4096; n++ {
		cuts = append(cuts, n)
	}
	for n := 4096; n < len(full); n += 9973 {
		cuts = append(cuts, n)
	}
	cuts = append(cuts, len(full)-1)
	for _, n := range cuts {
		_, err := Read(bytes.NewReader(full[:n]), int64(n))
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut to %d bytes: error %v, want a truncation FormatError", n, err)
		}
	}
	if _, err := Read(bytes.NewReader(full), int64(len(full))); err != nil {
		t.Fatalf("full file: %v", err)
	}
}

// TestRealRewrite reads a real vocabulary, writes it back and reads it
// again: every entry must survive, in order.
func TestRealRewrite(t *testing.T) {
	f, err := Open(dataFile(t, "llama-vocab/ggml-vocab-gpt-2.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := readBytes(t, writeBytes(t, f.Metadata, nil))
	checkMetadata(t, g.Metadata, f.Metadata)
}
