package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// small returns a sample checkpoint without its largest tensor, so tests
// can damage every byte of it.
func small() *Checkpoint {
	c := sample()
	c.Tensors = c.Tensors[:len(c.Tensors)-1]
	return c
}

// saved returns the bytes of c as Save writes them.
func saved(t testing.TB, c *Checkpoint) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkRejected fails unless err is a *FormatError for path of kind want
// whose message contains every one of wantText.
func checkRejected(t *testing.T, err error, path string, want error, wantText ...string) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FormatError", err)
	}
	if fe.Path != path || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file %s", err, path)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q is not %v", err, want)
	}
	for _, s := range wantText {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

// kindAt returns the kind of error that damage at byte i of a size-byte
// file must produce: a damaged magic is a foreign file, a damaged version
// an unsupported or malformed one, and anything else a corrupt one.
func kindAt(i, size int) []error {
	switch {
	case i < len(magicBytes):
		return []error{ErrNotCheckpoint}
	case int64(i) < offFileSize:
		return []error{ErrVersion, ErrCorrupt}
	}
	return []error{ErrCorrupt}
}

// TestFlippedBytes damages every byte of a file in turn, in three ways;
// each damaged file must be rejected by decode with the right kind of
// error, without a panic.
func TestFlippedBytes(t *testing.T) {
	good := saved(t, small())
	for i := range good {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(good)
			b[i] ^= mask
			_, err := decode("flip.ckpt", b)
			if err == nil {
				t.Fatalf("flipping byte %d of %d with %#x went unnoticed", i, len(b), mask)
			}
			kinds := kindAt(i, len(b))
			if !slicesContainsErr(kinds, err) {
				t.Fatalf("flipping byte %d with %#x: %v, want one of %v", i, mask, err, kinds)
			}
			// Past the preamble only the checksum can see data damage.
			if int64(i) >= preambleSize && !strings.Contains(err.Error(), "checksum") {
				t.Fatalf("flipping byte %d with %#x: %v, want a checksum error", i, mask, err)
			}
		}
	}
}

func slicesContainsErr(kinds []error, err error) bool {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// TestFlippedBytesOnDisk damages a larger file through the file system and
// checks Load and Verify both reject it, naming the file.
func TestFlippedBytesOnDisk(t *testing.T) {
	good := saved(t, sample())
	dir := t.TempDir()
	for i := 0; i < len(good); i += 997 {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		path := filepath.Join(dir, "flip.ckpt")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		kind := kindAt(i, len(b))[0]
		_, err := Load(path)
		checkRejected(t, err, path, kind)
		_, err = Verify(path)
		checkRejected(t, err, path, kind)
	}
}

// TestTruncated cuts a file at every length and checks each is rejected
// as truncated, and that extra bytes at the end are rejected too.
func TestTruncated(t *testing.T) {
	good := saved(t, small())
	for n := range len(good) {
		_, err := decode("cut.ckpt", good[:n:n])
		want := "truncated"
		if n == 0 {
			want = "empty"
		}
		if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Fatalf("file cut to %d of %d bytes: %v, want a corrupt-checkpoint error saying %q", n, len(good), err, want)
		}
	}
	path := filepath.Join(t.TempDir(), "long.ckpt")
	if err := os.WriteFile(path, append(bytes.Clone(good), 0, 0, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	checkRejected(t, err, path, ErrCorrupt, "3 unexpected bytes")
}

func TestForeignFiles(t *testing.T) {
	good := saved(t, small())
	future := bytes.Clone(good)
	binary.BigEndian.PutUint32(future[offVersion+1:], Version+1)
	zero := bytes.Clone(good)
	binary.BigEndian.PutUint32(zero[offVersion+1:], 0)
	wrongMagic := bytes.Clone(good)
	wrongMagic[len(magicBytes)-1] = 'T'
	gguf := append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 16)...)
	mp, _ := msgpack.Marshal(map[string]any{"weights": []int{1, 2, 3}})
	for _, tc := range []struct {
		name string
		data []byte
		kind error
		text []string
	}{
		{"gguf", gguf, ErrNotCheckpoint, []string{"GGUF model file"}},
		{"text", []byte("hello, world\nthis is text\n"), ErrNotCheckpoint, []string{`"hello, world\nthis is t"`, "(text)"}},
		{"json", []byte(`{"step": 120}`), ErrNotCheckpoint, []string{"text"}},
		{"binary", []byte{0x00, 0xff, 0xfe, 0x80}, ErrNotCheckpoint, []string{"binary data"}},
		{"other msgpack", mp, ErrNotCheckpoint, nil},
		{"empty", nil, ErrCorrupt, []string{"empty"}},
		{"wrong magic", wrongMagic, ErrNotCheckpoint, []string{"minnow.checkpoinT"}},
		{"magic only", magicBytes, ErrCorrupt, []string{"truncated"}},
		{"future version", future, ErrVersion, []string{"version 2 is newer", "upgrade"}},
		{"version zero", zero, ErrVersion, []string{"version 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.name+".bin")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			checkRejected(t, err, path, tc.kind, tc.text...)
			_, err = Verify(path)
			checkRejected(t, err, path, tc.kind, tc.text...)
		})
	}
	dir := t.TempDir()
	_, err := Load(dir)
	checkRejected(t, err, dir, ErrNotCheckpoint, "not a regular file")
	missing := filepath.Join(dir, "missing.ckpt")
	if _, err := Load(missing); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Load of a missing file: %v, want a not-exist error naming it", err)
	}
}

// assemble returns a file with the given header and data frames behind a
// correct preamble and checksum, so that tests reach the header parser
// with input Save would never write.
func assemble(header, frames []byte) []byte {
	size := preambleSize + int64(len(header)+len(frames)) + trailerSize
	b := append([]byte(nil), magicBytes...)
	b = append(b, codeUint32)
	b = binary.BigEndian.AppendUint32(b, Version)
	b = append(b, codeUint64)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, codeUint32)
	b = binary.BigEndian.AppendUint32(b, uint32(len(header)))
	b = append(b, header...)
	b = append(b, frames...)
	return fixChecksum(append(b, codeUint32, 0, 0, 0, 0))
}

// fixChecksum rewrites the trailer of b to match its contents.
func fixChecksum(b []byte) []byte {
	n := len(b) - trailerSize
	b[n] = codeUint32
	binary.BigEndian.PutUint32(b[n+1:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// mp encodes a sequence of values with the msgpack encoder; a []byte
// argument is copied raw, for hand-made codes.
func mp(vals ...any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, v := range vals {
		if r, ok := v.([]byte); ok {
			buf.Write(r)
			continue
		}
		if err := enc.Encode(v); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// desc encodes a tensor descriptor map.
func desc(name, dtype string, shape ...int) []byte {
	return mp([]byte{0x83}, "name", name, "dtype", dtype, "shape", shape)
}

func TestCraftedHeaders(t *testing.T) {
	tensors := func(ds ...[]byte) []byte {
		b := mp([]byte{0x81}, "tensors", []byte{0xdc, 0, byte(len(ds))})
		for _, d := range ds {
			b = append(b, d...)
		}
		return b
	}
	frame := func(data []byte) []byte { return append([]byte{codeBin8, 0, codeBin8, byte(len(data))}, data...) }
	deep := mp([]byte{0x81}, "future")
	for range 100 {
		deep = append(deep, 0x91)
	}
	deep = append(deep, 0xc0)
	for _, tc := range []struct {
		name   string
		header []byte
		frames []byte
		want   string
	}{
		{"not a map", mp([]int{1}), nil, "header: header"},
		{"huge map", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, nil, "declares 4294967295 items"},
		{"huge key", []byte{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff}, nil, "declares 4294967295 bytes"},
		{"huge bin", mp([]byte{0x81}, "config", []byte{codeBin32, 0x7f, 0xff, 0xff, 0xff}), nil, "config declares 2147483647 bytes"},
		{"huge tensor list", mp([]byte{0x81}, "tensors", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}), nil, "tensor list declares"},
		{"huge metadata", mp([]byte{0x81}, "metadata", []byte{0xdf, 0x10, 0, 0, 0}), nil, "metadata declares"},
		{"unknown dtype", tensors(desc("w", "q4_0", 2)), nil, `unknown dtype "q4_0"`},
		{"negative dim", tensors(desc("w", "f32", -3)), nil, "dimension -3"},
		{"rank 9", tensors(desc("w", "f32", 1, 1, 1, 1, 1, 1, 1, 1, 1)), nil, "rank 9"},
		{"overflow", tensors(desc("w", "f32", 1<<40, 1<<40)), nil, "overflows"},
		{"over 4 GiB", tensors(desc("w", "f64", 1<<30)), nil, "limit of one tensor"},
		{"no shape", tensors(mp([]byte{0x82}, "name", "w", "dtype", "f32")), nil, "has no shape"},
		{"empty name", tensors(desc("", "f32", 1)), nil, "empty name"},
		{"duplicate name", tensors(desc("w", "f32", 1), desc("w", "f32", 1)), append(frame(make([]byte, 4)), frame(make([]byte, 4))...), `name "w" appears twice`},
		{"duplicate key", mp([]byte{0x82}, "step", 1, "step", 2), nil, `"step" appears twice`},
		{"step not a number", mp([]byte{0x81}, "step", "ten"), nil, "step"},
		{"metadata value not a string", mp([]byte{0x81}, "metadata", map[string]int{"a": 1}), nil, "metadata"},
		{"deep nesting", deep, nil, "nests deeper than 32"},
		{"extension", mp([]byte{0x81}, "future", []byte{0xd4, 1, 2}), nil, "extension"},
		{"invalid code", mp([]byte{0x81}, "future", []byte{0xc1}), nil, "future"},
		{"bytes after header", mp([]byte{0x80, 0xc0}), nil, "1 unexpected bytes after the header map"},
		{"missing data", tensors(desc("w", "f32", 2)), nil, "runs past the end"},
		{"short data", tensors(desc("w", "f32", 2)), frame(make([]byte, 4)), "tensor 0 has 4 bytes of data, its dtype and shape need 8"},
		{"padding not a bin", tensors(desc("w", "f32", 1)), mp("pad", make([]byte, 4)), "padding is not a msgpack bin8"},
		{"data not a bin", tensors(desc("w", "f32", 1)), mp([]byte{codeBin8, 0}, "abcd"), "data is not a msgpack bin"},
		{"stray bytes before checksum", mp([]byte{0x80}), []byte{1, 2, 3}, "3 unexpected bytes between the last tensor and the checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := assemble(tc.header, tc.frames)
			_, err := decode("crafted.ckpt", b)
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode = %v, want a corrupt-checkpoint error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "crafted.ckpt") {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// TestUnknownKeysSkipped checks forward compatibility: keys a later
// writer adds, at any level, are skipped.
func TestUnknownKeysSkipped(t *testing.T) {
	header := mp([]byte{0x84},
		"future", map[string]any{"a": []any{1, "x", []byte{1}, map[string]int{"b": 2}}, "c": 1.5},
		"step", 5,
		"optimizer", []byte{0x82}, "name", "adamw", "later", []any{nil, true},
		"tensors", []byte{0x91, 0x84}, "name", "w", "dtype", "i32", "shape", []int{1}, "quant", "none",
	)
	frames := []byte{codeBin8, 0, codeBin8, 4, 7, 0, 0, 0}
	c, err := decode("future.ckpt", assemble(header, frames))
	if err != nil {
		t.Fatal(err)
	}
	if c.Step != 5 || c.Optimizer.Name != "adamw" || len(c.Tensors) != 1 || !bytes.Equal(c.Tensors[0].Data, []byte{7, 0, 0, 0}) {
		t.Fatalf("decoded %+v", c)
	}
}
