package checkpoint

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// raw returns a tensor of the given dtype and shape with random bytes;
// the file stores bytes, so any bytes must survive, NaN patterns included.
func raw(name string, dt tensor.DType, seed uint64, shape ...int) NamedTensor {
	n := dt.Size()
	for _, d := range shape {
		n *= d
	}
	return NamedTensor{Name: name, DType: dt, Shape: shape, Data: randBytes(seed, n)}
}

// sample returns a checkpoint with every field set and a tensor of every
// dtype, of ranks 0 to tensor.MaxRank, and of sizes that need each msgpack
// bin header form.
func sample() *Checkpoint {
	return &Checkpoint{
		Arch:      "llama",
		Config:    []byte(`{"dim":64,"layers":2}`),
		Tokenizer: "sha256:0123abcd",
		Step:      120,
		Tensors: []NamedTensor{
			raw("tok_embd.weight", tensor.Float32, 1, 17, 8),
			raw("blk.0.attn_q.weight", tensor.Float64, 2, 3, 5),
			raw("blk.0.ffn.weight", tensor.BFloat16, 3, 300, 7),
			raw("blk.0.norm.weight", tensor.Float16, 4, 9),
			raw("positions", tensor.Int32, 5, 2, 3, 4),
			raw("scale", tensor.Float32, 6),
			raw("empty", tensor.Float32, 7, 4, 0, 3),
			raw("rank8", tensor.Float64, 8, 1, 2, 1, 2, 1, 2, 1, 2),
			raw("big", tensor.Float32, 9, 17000),
		},
		Optimizer: OptimizerState{
			Name:    "adamw",
			Step:    30,
			Scalars: map[string]float64{"lr_scale": 0.5, "loss_scale": math.Inf(1), "neg": -1e-300},
			Tensors: []NamedTensor{
				raw("adamw.m/tok_embd.weight", tensor.Float32, 10, 17, 8),
				raw("adamw.v/tok_embd.weight", tensor.Float32, 11, 17, 8),
			},
		},
		RNG:      randBytes(12, 20),
		Cursor:   []byte(`{"epoch":1,"index":42}`),
		Recipe:   []byte("lr: 3e-4\nsteps: 1000\n"),
		Metadata: map[string]string{"minnow": "v0.1", "host": "a100-7", "": "empty key", "loss": "2.25"},
	}
}

// diff returns how got differs from want, field by field, or "" when they
// are equal, telling nil from empty in the opaque fields.
func diff(got, want *Checkpoint) string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if got.Arch != want.Arch {
		add("Arch %q, want %q", got.Arch, want.Arch)
	}
	if got.Tokenizer != want.Tokenizer {
		add("Tokenizer %q, want %q", got.Tokenizer, want.Tokenizer)
	}
	if got.Step != want.Step {
		add("Step %d, want %d", got.Step, want.Step)
	}
	for _, f := range []struct {
		name      string
		got, want []byte
	}{{"Config", got.Config, want.Config}, {"RNG", got.RNG, want.RNG}, {"Cursor", got.Cursor, want.Cursor}, {"Recipe", got.Recipe, want.Recipe}} {
		if !bytes.Equal(f.got, f.want) || (f.got == nil) != (f.want == nil) {
			add("%s %q (nil %v), want %q (nil %v)", f.name, f.got, f.got == nil, f.want, f.want == nil)
		}
	}
	if !maps.Equal(got.Metadata, want.Metadata) || (got.Metadata == nil) != (want.Metadata == nil) {
		add("Metadata %v, want %v", got.Metadata, want.Metadata)
	}
	o, wo := got.Optimizer, want.Optimizer
	if o.Name != wo.Name || o.Step != wo.Step {
		add("Optimizer %q step %d, want %q step %d", o.Name, o.Step, wo.Name, wo.Step)
	}
	if !maps.EqualFunc(o.Scalars, wo.Scalars, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) ||
		(o.Scalars == nil) != (wo.Scalars == nil) {
		add("Optimizer.Scalars %v, want %v", o.Scalars, wo.Scalars)
	}
	d = append(d, diffTensors("Tensors", got.Tensors, want.Tensors)...)
	d = append(d, diffTensors("Optimizer.Tensors", o.Tensors, wo.Tensors)...)
	return strings.Join(d, "\n")
}

func diffTensors(what string, got, want []NamedTensor) []string {
	if len(got) != len(want) {
		return []string{fmt.Sprintf("%s has %d tensors, want %d", what, len(got), len(want))}
	}
	var d []string
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) {
			d = append(d, fmt.Sprintf("%s[%d] = %q %s %v, want %q %s %v", what, i, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape))
		}
		if !bytes.Equal(g.Data, w.Data) {
			d = append(d, fmt.Sprintf("%s[%d] %q data differs", what, i, w.Name))
		}
	}
	return d
}

// withoutData returns a copy of c whose tensors have nil Data, as Verify
// returns it.
func withoutData(c *Checkpoint) *Checkpoint {
	v := *c
	strip := func(ts []NamedTensor) []NamedTensor {
		out := slices.Clone(ts)
		for i := range out {
			out[i].Data = nil
		}
		return out
	}
	v.Tensors = strip(c.Tensors)
	v.Optimizer.Tensors = strip(c.Optimizer.Tensors)
	return &v
}

func TestRoundTrip(t *testing.T) {
	full := sample()
	emptyFields := &Checkpoint{
		Config: []byte{}, RNG: []byte{}, Cursor: []byte{}, Recipe: []byte{},
		Metadata: map[string]string{}, Optimizer: OptimizerState{Scalars: map[string]float64{}},
	}
	weightsOnly := &Checkpoint{Arch: "gpt2", Step: 7, Tensors: sample().Tensors[:3]}
	negStep := &Checkpoint{Step: -5, Optimizer: OptimizerState{Step: math.MaxInt64}}
	nan := &Checkpoint{Optimizer: OptimizerState{Scalars: map[string]float64{"nan": math.Float64frombits(0x7ff8000000000123)}}}
	long := &Checkpoint{Arch: strings.Repeat("a", 70000), Config: randBytes(13, 300000), Metadata: map[string]string{"k": strings.Repeat("v", 1000)}}
	for _, tc := range []struct {
		name string
		c    *Checkpoint
	}{
		{"every field", full},
		{"zero value", &Checkpoint{}},
		{"empty but not nil", emptyFields},
		{"weights only", weightsOnly},
		{"extreme steps", negStep},
		{"NaN scalar", nan},
		{"long strings", long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.ckpt")
			if err := Save(path, tc.c); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(got, tc.c); d != "" {
				t.Errorf("Load after Save:\n%s", d)
			}
			head, err := Verify(path)
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(head, withoutData(tc.c)); d != "" {
				t.Errorf("Verify after Save:\n%s", d)
			}
			// Saving what Load returned must reproduce the file exactly.
			again := filepath.Join(t.TempDir(), "again.ckpt")
			if err := Save(again, got); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(path)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Errorf("re-saving a loaded checkpoint changed the file (%d vs %d bytes)", len(a), len(b))
			}
		})
	}
}

// TestLayout checks the file's framing: the preamble, that every tensor's
// data starts on an Alignment boundary, and that Load's data are in place
// slices of one buffer with their capacity capped.
func TestLayout(t *testing.T) {
	c := sample()
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\xb1minnow.checkpoint\xce\x00\x00\x00\x01\xcf")) {
		t.Fatalf("file starts %q", b[:min(len(b), 24)])
	}
	r := bytes.NewReader(b)
	hsize, err := readPreamble(path, r, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	_, sizes, err := parseHeader(path, b[preambleSize:preambleSize+hsize])
	if err != nil {
		t.Fatal(err)
	}
	offs, err := walk(path, r, preambleSize+hsize, int64(len(b))-trailerSize, sizes)
	if err != nil {
		t.Fatal(err)
	}
	ts := tensorsOf(c)
	for i, o := range offs {
		if o%Alignment != 0 {
			t.Errorf("tensor %q data at offset %d, not a multiple of %d", ts[i].Name, o, Alignment)
		}
		if !bytes.Equal(b[o:o+sizes[i]], ts[i].Data) {
			t.Errorf("tensor %q data is not stored raw at offset %d", ts[i].Name, o)
		}
	}
	got, err := decode(path, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, nt := range tensorsOf(got) {
		if cap(nt.Data) != len(nt.Data) {
			t.Errorf("tensor %q data has capacity %d beyond its %d bytes", nt.Name, cap(nt.Data), len(nt.Data))
		}
		if len(nt.Data) > 0 && &nt.Data[0] != &b[offs[i]] {
			t.Errorf("tensor %q data was copied, not sliced from the file buffer", nt.Name)
		}
	}
}

func TestSaveRejects(t *testing.T) {
	good := func() *Checkpoint { return sample() }
	for _, tc := range []struct {
		name   string
		mutate func(c *Checkpoint)
		want   string
	}{
		{"empty name", func(c *Checkpoint) { c.Tensors[1].Name = "" }, "tensor 1 has no name"},
		{"duplicate name", func(c *Checkpoint) { c.Tensors[2].Name = c.Tensors[0].Name }, "appears twice"},
		{"duplicate optimizer name", func(c *Checkpoint) { c.Optimizer.Tensors[1].Name = c.Optimizer.Tensors[0].Name }, "optimizer tensor name"},
		{"unknown dtype", func(c *Checkpoint) { c.Tensors[0].DType = 9 }, "unknown dtype"},
		{"short data", func(c *Checkpoint) { c.Tensors[0].Data = c.Tensors[0].Data[1:] }, "needs 544"},
		{"long data", func(c *Checkpoint) { c.Optimizer.Tensors[0].Data = append(c.Optimizer.Tensors[0].Data, 0) }, "545 bytes of data"},
		{"negative dim", func(c *Checkpoint) { c.Tensors[3].Shape = []int{-9} }, "negative dimension"},
		{"rank 9", func(c *Checkpoint) { c.Tensors[0].Shape = []int{1, 1, 1, 1, 1, 1, 1, 1, 1} }, "rank 9"},
		{"overflowing shape", func(c *Checkpoint) { c.Tensors[0].Shape = []int{1 << 40, 1 << 40} }, "overflows"},
		{"over 4 GiB", func(c *Checkpoint) { c.Tensors[0].Shape = []int{1 << 30, 2} }, "limit of one tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mutate(c)
			path := filepath.Join(t.TempDir(), "bad.ckpt")
			err := Save(path, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Save = %v, want an error naming %s and containing %q", err, path, tc.want)
			}
			if _, serr := os.Stat(path); !os.IsNotExist(serr) {
				t.Errorf("a rejected Save left a file behind (%v)", serr)
			}
		})
	}
	if err := Save(filepath.Join(t.TempDir(), "nil.ckpt"), nil); err == nil {
		t.Error("Save of a nil checkpoint succeeded")
	}
	if err := Save(filepath.Join(t.TempDir(), "missing", "c.ckpt"), good()); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

func TestFind(t *testing.T) {
	ts := sample().Tensors
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"scale", true}, {"tok_embd.weight", true}, {"nope", false}, {"", false}} {
		got, ok := Find(ts, tc.name)
		if ok != tc.ok || (ok && got.Name != tc.name) {
			t.Errorf("Find(%q) = %q, %v; want ok %v", tc.name, got.Name, ok, tc.ok)
		}
	}
}
