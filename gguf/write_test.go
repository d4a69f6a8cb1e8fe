package gguf

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// allValues is one metadata entry of every scalar and array type, with
// edge values (extremes, NaN, empty arrays and strings, non-ASCII text).
func allValues() Metadata {
	return Metadata{
		{"u8", uint8(255)},
		{"i8", int8(-128)},
		{"u16", uint16(65535)},
		{"i16", int16(-32768)},
		{"u32", uint32(4294967295)},
		{"i32", int32(-2147483648)},
		{"f32", float32(-1.5e-7)},
		{"f32.nan", float32(math.NaN())},
		{"bool.true", true},
		{"bool.false", false},
		{"str", "héllo\x00wörld"},
		{"str.empty", ""},
		{"u64", uint64(math.MaxUint64)},
		{"i64", int64(math.MinInt64)},
		{"f64", math.Inf(-1)},
		{"a.u8", []uint8{0, 1, 255}},
		{"a.i8", []int8{-128, 0, 127}},
		{"a.u16", []uint16{0, 65535}},
		{"a.i16", []int16{-32768, 32767}},
		{"a.u32", []uint32{0, 1 << 31, math.MaxUint32}},
		{"a.i32", []int32{math.MinInt32, -1, math.MaxInt32}},
		{"a.f32", []float32{0, -0.5, float32(math.Inf(1)), math.MaxFloat32, float32(math.NaN())}},
		{"a.bool", []bool{true, false, true}},
		{"a.str", []string{"", "a", "Ġthe", "<|endoftext|>", strings.Repeat("x", 70000)}},
		{"a.u64", []uint64{0, math.MaxUint64}},
		{"a.i64", []int64{math.MinInt64, math.MaxInt64}},
		{"a.f64", []float64{math.SmallestNonzeroFloat64, -math.MaxFloat64, math.NaN()}},
		{"a.str.empty", []string{}},
		{"a.f32.empty", []float32{}},
	}
}

// sameValue compares metadata values bit for bit, so that NaN matches NaN.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float32:
		y, ok := b.(float32)
		return ok && math.Float32bits(x) == math.Float32bits(y)
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case []float32:
		y, ok := b.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.([]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func checkMetadata(t *testing.T, got, want Metadata) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d metadata entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key {
			t.Errorf("entry %d key = %q, want %q", i, got[i].Key, want[i].Key)
			continue
		}
		if !sameValue(got[i].Value, want[i].Value) {
			t.Errorf("key %q = %#v (%T), want %#v (%T)", want[i].Key, got[i].Value, got[i].Value, want[i].Value, want[i].Value)
		}
	}
}

func writeBytes(t testing.TB, md Metadata, tensors []Tensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, md, tensors); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func readBytes(t testing.TB, b []byte) *File {
	t.Helper()
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return f
}

func TestRoundTripMetadata(t *testing.T) {
	md := allValues()
	f := readBytes(t, writeBytes(t, md, nil))
	if f.Version != Version {
		t.Errorf("version %d, want %d", f.Version, Version)
	}
	if len(f.Tensors) != 0 {
		t.Errorf("%d tensors, want 0", len(f.Tensors))
	}
	checkMetadata(t, f.Metadata, md)
}

// seq returns n bytes that differ from tensor to tensor, so a misplaced
// offset shows up as wrong data.
func seq(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestRoundTripTensors(t *testing.T) {
	for _, align := range []uint32{0, 1, 8, 32, 64, 4096, MaxAlignment} {
		md := Metadata{{"general.architecture", "test"}}
		want := uint32(DefaultAlignment)
		if align != 0 {
			md = append(md, KV{KeyAlignment, align})
			want = align
		}
		tensors := []Tensor{
			{Name: "a", Dims: []uint64{3}, Type: F32, Data: seq(12, 1)},              // 12 bytes: needs padding
			{Name: "b.weight", Dims: []uint64{5, 3}, Type: F16, Data: seq(30, 2)},    // 30 bytes
			{Name: "c", Dims: []uint64{32, 2}, Type: Q8_0, Data: seq(68, 3)},         // quantized
			{Name: "empty", Dims: []uint64{0, 4}, Type: F32},                         // no data at all
			{Name: "scalar", Type: I8, Data: []byte{42}},                             // zero dims
			{Name: "d", Dims: []uint64{256, 1, 1, 2}, Type: Q4_K, Data: seq(288, 4)}, // four dims
			{Name: "streamed", Dims: []uint64{9}, Type: I32, WriteData: func(w io.Writer) error { // streamed
				_, err := w.Write(seq(36, 5))
				return err
			}},
		}
		b := writeBytes(t, md, tensors)
		f := readBytes(t, b)
		if f.Alignment != want {
			t.Errorf("align %d: Alignment = %d, want %d", align, f.Alignment, want)
		}
		if f.DataOffset%int64(want) != 0 {
			t.Errorf("align %d: DataOffset %d not aligned", align, f.DataOffset)
		}
		checkMetadata(t, f.Metadata, md)
		if len(f.Tensors) != len(tensors) {
			t.Fatalf("align %d: %d tensors, want %d", align, len(f.Tensors), len(tensors))
		}
		for i, tt := range tensors {
			got := f.Tensors[i]
			if got.Name != tt.Name || got.Type != tt.Type || len(got.Dims) != len(tt.Dims) ||
				(len(tt.Dims) > 0 && !reflect.DeepEqual(got.Dims, tt.Dims)) {
				t.Errorf("align %d: tensor %d = %+v, want %s %v %s", align, i, got, tt.Name, tt.Dims, tt.Type)
			}
			if got.Offset%uint64(want) != 0 {
				t.Errorf("align %d: tensor %q offset %d not aligned", align, got.Name, got.Offset)
			}
			data, err := f.ReadTensor(i)
			if err != nil {
				t.Fatalf("align %d: ReadTensor(%d): %v", align, i, err)
			}
			wantData := tt.Data
			if tt.WriteData != nil {
				var buf bytes.Buffer
				tt.WriteData(&buf)
				wantData = buf.Bytes()
			}
			if !bytes.Equal(data, wantData) && !(len(data) == 0 && len(wantData) == 0) {
				t.Errorf("align %d: tensor %q data = %v, want %v", align, got.Name, data, wantData)
			}
			if j := f.TensorIndex(tt.Name); j != i {
				t.Errorf("TensorIndex(%q) = %d, want %d", tt.Name, j, i)
			}
		}
		// The last tensor is padded too, as llama.cpp's writer does.
		if int64(len(b))%int64(want) != 0 {
			t.Errorf("align %d: file length %d not a multiple of the alignment", align, len(b))
		}
		if f.TensorIndex("missing") != -1 {
			t.Error("TensorIndex of a missing name is not -1")
		}
		if _, err := f.TensorData(len(tensors)); err == nil {
			t.Error("TensorData past the last tensor: no error")
		}
		if _, err := f.TensorData(-1); err == nil {
			t.Error("TensorData(-1): no error")
		}
	}
}

func TestWriteErrors(t *testing.T) {
	f32 := func(name string, n int) Tensor {
		return Tensor{Name: name, Dims: []uint64{uint64(n)}, Type: F32, Data: make([]byte, 4*n)}
	}
	tests := []struct {
		name    string
		md      Metadata
		tensors []Tensor
		wantErr string
	}{
		{"int value", Metadata{{"llama.block_count", 12}}, nil, `"llama.block_count": unsupported Go type int`},
		{"map value", Metadata{{"x", map[string]int{}}}, nil, `"x": unsupported Go type map`},
		{"nested array", Metadata{{"x", [][]string{{"a"}}}}, nil, `"x": unsupported Go type [][]string`},
		{"nil value", Metadata{{"x", nil}}, nil, `"x": unsupported Go type <nil>`},
		{"empty key", Metadata{{"", uint32(1)}}, nil, "key is empty"},
		{"long key", Metadata{{strings.Repeat("k", 70000), uint32(1)}}, nil, "over the limit"},
		{"duplicate key", Metadata{{"a", uint32(1)}, {"a", uint32(2)}}, nil, `duplicate metadata key "a"`},
		{"alignment type", Metadata{{KeyAlignment, uint64(32)}}, nil, "holds uint64, not uint32"},
		{"alignment zero", Metadata{{KeyAlignment, uint32(0)}}, nil, "not a power of two"},
		{"alignment odd", Metadata{{KeyAlignment, uint32(48)}}, nil, "not a power of two"},
		{"alignment huge", Metadata{{KeyAlignment, uint32(1 << 21)}}, nil, "over the limit"},
		{"empty name", nil, []Tensor{f32("", 1)}, "empty name"},
		{"long name", nil, []Tensor{f32(strings.Repeat("n", 64), 1)}, "over llama.cpp's limit of 63"},
		{"duplicate name", nil, []Tensor{f32("w", 1), f32("w", 2)}, `duplicate tensor name "w"`},
		{"unknown type", nil, []Tensor{{Name: "w", Dims: []uint64{1}, Type: 4, Data: []byte{0}}}, `tensor "w": unknown tensor type 4`},
		{"block multiple", nil, []Tensor{{Name: "w", Dims: []uint64{16}, Type: Q4_0, Data: make([]byte, 9)}}, "not a multiple"},
		{"short data", nil, []Tensor{{Name: "w", Dims: []uint64{4}, Type: F32, Data: make([]byte, 15)}}, "has 15 bytes of data, want 16"},
		{"no data", nil, []Tensor{{Name: "w", Dims: []uint64{4}, Type: F32}}, `tensor "w" has no data`},
		{"both data", nil, []Tensor{{Name: "w", Dims: []uint64{1}, Type: F32, Data: make([]byte, 4),
			WriteData: func(io.Writer) error { return nil }}}, "both Data and WriteData"},
		{"streamed short", nil, []Tensor{{Name: "w", Dims: []uint64{4}, Type: F32,
			WriteData: func(w io.Writer) error { _, err := w.Write(make([]byte, 3)); return err }}}, "wrote 3 bytes, want 16"},
		{"streamed error", nil, []Tensor{{Name: "w", Dims: []uint64{4}, Type: F32,
			WriteData: func(io.Writer) error { return errors.New("disk on fire") }}}, "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.md, tt.tensors)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Write error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// failWriter fails after n bytes, to check that Write reports w's errors.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("device full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteReportsWriterError(t *testing.T) {
	md := Metadata{{"big", strings.Repeat("z", 200000)}}
	for _, n := range []int{0, 10, 70000, 150000} {
		if err := Write(&failWriter{n: n}, md, nil); err == nil || !strings.Contains(err.Error(), "device full") {
			t.Errorf("failing after %d bytes: error = %v, want device full", n, err)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.gguf")
	md := Metadata{{"general.name", "first"}}
	tensors := []Tensor{{Name: "w", Dims: []uint64{2}, Type: F32, Data: seq(8, 9)}}
	if err := WriteFile(path, md, tensors); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	checkMetadata(t, f.Metadata, md)
	if data, err := f.ReadTensor(0); err != nil || !bytes.Equal(data, seq(8, 9)) {
		t.Errorf("ReadTensor = %v, %v", data, err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// A write that fails halfway leaves the old file and no temporary.
	bad := []Tensor{{Name: "w", Dims: []uint64{1 << 20}, Type: F32, WriteData: func(w io.Writer) error {
		if _, err := w.Write(make([]byte, 1<<19)); err != nil {
			return err
		}
		return errors.New("interrupted")
	}}}
	if err := WriteFile(path, Metadata{{"general.name", "second"}}, bad); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("WriteFile of failing tensor: error = %v", err)
	}
	now, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(now, first) {
		t.Errorf("failed WriteFile changed the existing file (err %v)", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only model.gguf", names)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x.gguf"), md, nil); err == nil {
		t.Error("WriteFile into a missing directory: no error")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "absent.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want ErrNotExist", err)
	}
	path := filepath.Join(dir, "junk.gguf")
	if err := os.WriteFile(path, []byte("GGML not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Offset != 0 || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of junk: %v, want a FormatError at byte 0 naming the path", err)
	}
}
