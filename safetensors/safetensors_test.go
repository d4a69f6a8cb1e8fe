package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu"
)

func TestWriteOpenRoundTrip(t *testing.T) {
	be := tensor.Default()
	f32 := tensor.FromFloat32([]float32{1, -2.5, 3e-8, float32(math.Inf(1)), 0, 7}, 2, 3)
	f64 := tensor.FromFloat64([]float64{math.Pi, -1e300}, 2)
	i32 := tensor.FromInt32([]int32{-7, 0, math.MaxInt32}, 3, 1)
	bf := tensor.From(be, tensor.BFloat16, []float32{1.5, -0.0078125, 3.140625, 65280}, 4)
	hf := tensor.From(be, tensor.Float16, []float32{1.5, -0.0078125, 65504, 6e-8}, 2, 2)
	scalar := tensor.FromFloat32([]float32{42}, 1).Reshape()
	ts := []Named{{"b.f32", f32}, {"a.f64", f64}, {"i32", i32}, {"bf16", bf}, {"f16", hf}, {"scalar", scalar}}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	meta := map[string]string{"format": "pt", "note": "round trip"}
	if err := Write(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Names(), []string{"a.f64", "b.f32", "bf16", "f16", "i32", "scalar"}; !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(f.Metadata(), meta) {
		t.Errorf("Metadata = %v, want %v", f.Metadata(), meta)
	}
	wantDT := map[string]string{"a.f64": "F64", "b.f32": "F32", "bf16": "BF16", "f16": "F16", "i32": "I32", "scalar": "F32"}
	for _, nt := range ts {
		info, ok := f.Info(nt.Name)
		if !ok || info.DType != wantDT[nt.Name] || !slices.Equal(info.Shape, nt.Tensor.Shape()) {
			t.Errorf("%s: Info = %+v, %v", nt.Name, info, ok)
		}
		got, err := f.Tensor(be, nt.Tensor.DType(), nt.Name)
		if err != nil {
			t.Fatalf("%s: %v", nt.Name, err)
		}
		if !slices.Equal(got.Shape(), nt.Tensor.Shape()) {
			t.Errorf("%s: shape %v, want %v", nt.Name, got.Shape(), nt.Tensor.Shape())
		}
		if nt.Tensor.DType() == tensor.Int32 {
			if !slices.Equal(got.Int32s(), nt.Tensor.Int32s()) {
				t.Errorf("%s: %v, want %v", nt.Name, got.Int32s(), nt.Tensor.Int32s())
			}
			continue
		}
		if !slices.Equal(got.Float64s(), nt.Tensor.Float64s()) {
			t.Errorf("%s: %v, want %v", nt.Name, got.Float64s(), nt.Tensor.Float64s())
		}
	}
}

// TestTensorConverts reads each floating dtype into every floating dtype.
func TestTensorConverts(t *testing.T) {
	be := tensor.Default()
	vals := []float32{1, -2, 0.5, 1.0 / 3}
	path := filepath.Join(t.TempDir(), "c.safetensors")
	src := []Named{
		{"f32", tensor.From(be, tensor.Float32, vals, 4)},
		{"f64", tensor.From(be, tensor.Float64, vals, 4)},
		{"bf16", tensor.From(be, tensor.BFloat16, vals, 4)},
		{"f16", tensor.From(be, tensor.Float16, vals, 4)},
	}
	if err := Write(path, src, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range src {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.BFloat16, tensor.Float16} {
			got, err := f.Tensor(be, dt, s.Name)
			if err != nil {
				t.Fatalf("%s -> %s: %v", s.Name, dt, err)
			}
			// Both sides rounded to the coarser of the two dtypes.
			want := s.Tensor.Float32s()
			for i, v := range got.Float32s() {
				if d := math.Abs(float64(v - want[i])); d > 4e-3*math.Abs(float64(want[i])) {
					t.Errorf("%s -> %s: element %d = %v, want %v", s.Name, dt, i, v, want[i])
				}
			}
		}
		if _, err := f.Tensor(be, tensor.Int32, s.Name); err == nil || !strings.Contains(err.Error(), s.Name) {
			t.Errorf("%s -> i32: error %v, want one naming the tensor", s.Name, err)
		}
	}
	if _, err := f.Tensor(be, tensor.Float32, "missing"); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("missing tensor: error %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	x := tensor.FromFloat32([]float32{1}, 1)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		ts   []Named
		want string
	}{
		{"empty name", []Named{{"", x}}, "invalid tensor name"},
		{"reserved", []Named{{"__metadata__", x}}, "invalid tensor name"},
		{"nil", []Named{{"a", nil}}, "nil"},
		{"duplicate", []Named{{"a", x}, {"a", x}}, "twice"},
	} {
		path := filepath.Join(dir, c.name)
		err := Write(path, c.ts, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if _, serr := os.Stat(path); serr == nil {
			t.Errorf("%s: a file was left behind", c.name)
		}
	}
}

// build returns a file of header hdr (JSON) followed by n data bytes.
func build(hdr string, n int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, make([]byte, n)...)
}

func TestOpenRejectsBadFiles(t *testing.T) {
	huge := binary.LittleEndian.AppendUint64(nil, 1<<62)
	short := binary.LittleEndian.AppendUint64(nil, 100)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "too short"},
		{"short length", []byte{1, 2, 3}, "too short"},
		{"huge header", huge, "over the limit"},
		{"header past end", append(short, "{}"...), "runs past the end"},
		{"not json", build("nope", 0), "not a JSON object"},
		{"array", build("[]", 0), "not a JSON object"},
		{"truncated json", build(`{"a":{"dtype":"F32"`, 0), `tensor "a"`},
		{"trailing", build(`{} x`, 0), "after the JSON object"},
		{"bad dtype", build(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "a": unknown dtype`},
		{"no shape", build(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), "no shape"},
		{"negative dim", build(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "dimension 0 is -1"},
		{"overflowing shape", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}`, 4), "does not fit"},
		{"too big for data", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "does not fit"},
		{"offsets past data", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}`, 4), "outside"},
		{"reversed offsets", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, 4), "outside"},
		{"wrong length", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 8), "needs 8"},
		{"one offset", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4), "2"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "overlaps"},
		{"duplicate", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "repeats tensor"},
		{"bad metadata", build(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err == nil {
			f.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q, want it to name the file and say %q", c.name, err, c.want)
		}
	}
}

// TestReadGoldens reads the transformers-written goldens.
func TestReadGoldens(t *testing.T) {
	f, err := Open(filepath.Join("..", "convert", "testdata", "hf", "llama-gqa", "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]TensorInfo{
		"ids":    {Name: "ids", DType: "I32", Shape: []int{2, 8}},
		"logits": {Name: "logits", DType: "F32", Shape: []int{2, 8, 320}},
		"greedy": {Name: "greedy", DType: "I32", Shape: []int{2, 16}},
	}
	for name, w := range want {
		got, ok := f.Info(name)
		got.Offsets = [2]int64{}
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	ids, err := f.Tensor(tensor.Default(), tensor.Int32, "ids")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ids.Int32s() {
		if v < 0 || v >= 320 {
			t.Fatalf("id %d outside the vocabulary", v)
		}
	}
	m, err := OpenModel(filepath.Join("..", "convert", "testdata", "hf", "qwen2-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, ok := m.Info("model.norm.weight")
	if !ok || info.DType != "BF16" || !slices.Equal(info.Shape, []int{64}) {
		t.Errorf("qwen2 model.norm.weight: %+v %v", info, ok)
	}
}

// TestOpenModelSharded compares the sharded golden's tensors with its
// index and checks that every one reads.
func TestOpenModelSharded(t *testing.T) {
	dir := filepath.Join("..", "convert", "testdata", "hf", "llama-tied-sharded")
	m, err := OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	raw, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range idx.WeightMap {
		want = append(want, k)
	}
	slices.Sort(want)
	if !slices.Equal(m.Names(), want) {
		t.Fatalf("Names = %v, want %v", m.Names(), want)
	}
	for _, name := range m.Names() {
		if _, err := m.Tensor(tensor.Default(), tensor.Float32, name); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenModelErrors(t *testing.T) {
	x := []Named{{"a", tensor.FromFloat32([]float32{1}, 1)}}
	cases := []struct {
		name  string
		index string             // empty: no index file
		files map[string][]Named // shard files to write
		want  string
	}{
		{"nothing", "", nil, "has neither"},
		{"bad index", "{", nil, IndexFile},
		{"empty map", `{"weight_map":{}}`, nil, "missing or empty"},
		{"escaping shard", `{"weight_map":{"a":"../x.safetensors"}}`, nil, "not a file name"},
		{"missing shard", `{"weight_map":{"a":"s1.safetensors"}}`, nil, "s1.safetensors"},
		{"tensor not in shard", `{"weight_map":{"b":"s1.safetensors"}}`, map[string][]Named{"s1.safetensors": x}, `tensor "b" is not in`},
		{"tensor in two shards", `{"weight_map":{"a":"s1.safetensors","c":"s2.safetensors"}}`,
			map[string][]Named{"s1.safetensors": x, "s2.safetensors": x}, "in both"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if c.index != "" {
			if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(c.index), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for name, ts := range c.files {
			if err := Write(filepath.Join(dir, name), ts, nil); err != nil {
				t.Fatal(err)
			}
		}
		m, err := OpenModel(dir)
		if err == nil {
			m.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want %q", c.name, err, c.want)
		}
	}
}

// FuzzOpen checks that no header makes Open or Tensor panic, and that
// whatever Open accepts reads back within its data.
func FuzzOpen(f *testing.F) {
	f.Add(build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Add(build(`{"__metadata__":{"k":"v"},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[0,2]}}`, 2))
	f.Add(build(`{"a":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, 8))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Open(path)
		if err != nil {
			return
		}
		defer file.Close()
		for _, name := range file.Names() {
			for _, dt := range []tensor.DType{tensor.Float32, tensor.Int32} {
				// Conversion errors are fine; panics are not.
				if x, err := file.Tensor(tensor.Default(), dt, name); err == nil {
					x.Release()
				}
			}
		}
	})
}
