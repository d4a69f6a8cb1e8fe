package convert

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/model"
)

// TestGGUFRoundTrip exports each tiny model in every type and imports it
// back: the config and vocabulary come back equal, and every weight comes
// back exactly as the type stores it (F32 bit-identical, the others equal
// to Decode(Encode(w)), which TestEncodeRoundTrip bounds).
func TestGGUFRoundTrip(t *testing.T) {
	bpe := testVocab(t)
	dir := t.TempDir()
	for _, c := range tinyCases() {
		m, v := c.build(t, bpe)
		if m == nil {
			continue
		}
		for _, typ := range []gguf.GGMLType{gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q4_0} {
			path := filepath.Join(dir, c.name+"-"+typ.String()+".gguf")
			if err := ExportGGUFFile(path, m, v, GGUFOptions{Type: typ}); err != nil {
				t.Fatalf("%s %s: %v", c.name, typ, err)
			}
			back, bv, err := ImportGGUF(path, testBackend)
			if err != nil {
				t.Fatalf("%s %s: %v", c.name, typ, err)
			}
			// The config travels as config.json, as in a checkpoint; an
			// empty eos list is left out there and so takes the default.
			cj, _ := json.Marshal(m.Config())
			wantCfg, err := model.ParseConfig(cj)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Config(), wantCfg) {
				t.Errorf("%s %s: config %+v, want %+v", c.name, typ, back.Config(), wantCfg)
			}
			if len(bv.Tokens) != m.Config().VocabSize || !reflect.DeepEqual(bv.Tokens[:len(v.Tokens)], v.Tokens) || bv.BOS != v.BOS || bv.EOS != v.EOS {
				t.Errorf("%s %s: vocabulary did not survive", c.name, typ)
			}
			tied := m.Config().TieWordEmbeddings
			got := back.Params()
			for i, p := range m.Params() {
				dims := ggufDims(p.Tensor.Shape())
				st := GGUFTensorType(p.Name, dims, typ, tied)
				enc, err := gguf.Encode(st, p.Tensor.Float32s())
				if err != nil {
					t.Fatal(err)
				}
				want, err := gguf.Decode(st, enc, p.Tensor.Len())
				if err != nil {
					t.Fatal(err)
				}
				g := got[i].Tensor.Float32s()
				for j := range want {
					if math.Float32bits(g[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%s %s: %s[%d] = %g, want %g (stored as %s)", c.name, typ, p.Name, j, g[j], want[j], st)
					}
				}
			}
		}
	}
}

// TestGGUFTensorType checks the per-tensor type choice against llama.cpp's
// quantize rules.
func TestGGUFTensorType(t *testing.T) {
	cases := []struct {
		name string
		dims []uint64
		want gguf.GGMLType
		tied bool
		out  gguf.GGMLType
	}{
		{"blk.0.attn_norm.weight", []uint64{64}, gguf.Q4_0, false, gguf.F32},
		{"blk.0.attn_q.bias", []uint64{64}, gguf.F16, false, gguf.F32},
		{"blk.0.attn_q.weight", []uint64{64, 64}, gguf.Q4_0, false, gguf.Q4_0},
		{"blk.0.attn_q.weight", []uint64{64, 64}, gguf.BF16, false, gguf.BF16},
		{"output.weight", []uint64{64, 300}, gguf.Q4_0, false, gguf.Q8_0},
		{"token_embd.weight", []uint64{64, 300}, gguf.Q4_0, false, gguf.Q4_0},
		{"token_embd.weight", []uint64{64, 300}, gguf.Q4_0, true, gguf.Q8_0},
		{"token_embd.weight", []uint64{64, 300}, gguf.Q8_0, true, gguf.Q8_0},
		{"blk.0.ffn_down.weight", []uint64{48, 64}, gguf.Q8_0, false, gguf.F16},
		{"output.weight", []uint64{256, 300}, gguf.Q4_0, false, gguf.Q6_K},
		{"token_embd.weight", []uint64{512, 300}, gguf.Q4_0, true, gguf.Q6_K},
		{"blk.0.attn_q.weight", []uint64{256, 256}, gguf.Q6_K, false, gguf.Q6_K},
		{"blk.0.attn_q.weight", []uint64{64, 64}, gguf.Q6_K, false, gguf.Q8_0},
		{"blk.0.ffn_down.weight", []uint64{48, 64}, gguf.Q6_K, false, gguf.F16},
		{"blk.0.attn_q.weight", []uint64{256, 256}, gguf.Q4_K, false, gguf.Q4_K},
		{"blk.0.attn_q.weight", []uint64{576, 576}, gguf.Q4_K, false, gguf.Q5_0},
		{"blk.0.attn_q.weight", []uint64{64, 64}, gguf.Q5_0, false, gguf.Q5_0},
		{"output.weight", []uint64{256, 300}, gguf.Q5_0, false, gguf.Q6_K},
		{"output.weight", []uint64{64, 300}, gguf.Q5_0, false, gguf.Q8_0},
		{"output.weight", []uint64{256, 300}, gguf.Q4_K, false, gguf.Q6_K},
		{"token_embd.weight", []uint64{576, 300}, gguf.Q4_K, true, gguf.Q8_0},
		{"token_embd.weight", []uint64{256, 300}, gguf.Q4_K, false, gguf.Q4_K},
	}
	for _, c := range cases {
		if got := GGUFTensorType(c.name, c.dims, c.want, c.tied); got != c.out {
			t.Errorf("%s %v as %s (tied %v): %s, want %s", c.name, c.dims, c.want, c.tied, got, c.out)
		}
	}
}

// TestGGUFImportWithoutMinnowConfig imports files as llama.cpp's own
// converter would write them, without minnow.config: the config is
// rebuilt from llama.cpp's keys and the model computes the same logits.
func TestGGUFImportWithoutMinnowConfig(t *testing.T) {
	bpe := testVocab(t)
	dir := t.TempDir()
	for _, c := range tinyCases() {
		m, v := c.build(t, bpe)
		if m == nil {
			continue
		}
		var buf bytes.Buffer
		if err := ExportGGUF(&buf, m, v, GGUFOptions{}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, c.name+".gguf")
		if err := rewriteGGUF(t, buf.Bytes(), path, func(md *gguf.Metadata) {
			out := (*md)[:0]
			for _, kv := range *md {
				if kv.Key != KeyMinnowConfig {
					out = append(out, kv)
				}
			}
			*md = out
		}); err != nil {
			t.Fatal(err)
		}
		back, _, err := ImportGGUF(path, testBackend)
		if c.cfg.RopeScaling.Kind() == "llama3" {
			if err == nil || !strings.Contains(err.Error(), "rope_freqs") {
				t.Errorf("%s: llama3 factors without minnow.config: error %v", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p := testPrompts(1, 8, len(v.Tokens), 2)[0]
		if d := maxDiff(t, minnowLogits(t, back, p), minnowLogits(t, m, p)); d > 1e-5 {
			t.Errorf("%s: rebuilt model's logits differ by %.3g", c.name, d)
		}
	}
}

// rewriteGGUF writes the GGUF file in data to path with its metadata
// changed by edit and the tensors as they are.
func rewriteGGUF(t *testing.T, data []byte, path string, edit func(*gguf.Metadata)) error {
	t.Helper()
	f, err := gguf.Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	md := append(gguf.Metadata{}, f.Metadata...)
	edit(&md)
	var ts []gguf.Tensor
	for i, ti := range f.Tensors {
		raw, err := f.ReadTensor(i)
		if err != nil {
			return err
		}
		ts = append(ts, gguf.Tensor{Name: ti.Name, Dims: ti.Dims, Type: ti.Type, Data: raw})
	}
	return gguf.WriteFile(path, md, ts)
}

// TestGGUFImportErrors checks that files the importer cannot represent
// faithfully are refused with an error naming the problem.
func TestGGUFImportErrors(t *testing.T) {
	bpe := testVocab(t)
	c := tinyCases()[0]
	m, v := c.build(t, bpe)
	var buf bytes.Buffer
	if err := ExportGGUF(&buf, m, v, GGUFOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := []struct {
		name  string
		edit  func(*gguf.Metadata)
		drop  string
		want  string
		qtype bool
	}{
		{name: "adapter", edit: func(md *gguf.Metadata) { md.Set("general.type", "adapter") }, want: "not a model"},
		{name: "arch", edit: func(md *gguf.Metadata) { md.Set("general.architecture", "falcon") }, want: "architecture"},
		{name: "missing-tensor", drop: "blk.1.ffn_up.weight", want: "blk.1.ffn_up.weight is missing"},
		{name: "k-quant", want: "Q5_K", qtype: true},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.name+".gguf")
		f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		md := append(gguf.Metadata{}, f.Metadata...)
		if tc.edit != nil {
			tc.edit(&md)
		}
		var ts []gguf.Tensor
		for i, ti := range f.Tensors {
			if ti.Name == tc.drop {
				continue
			}
			raw, _ := f.ReadTensor(i)
			nt := gguf.Tensor{Name: ti.Name, Dims: ti.Dims, Type: ti.Type, Data: raw}
			if tc.qtype && ti.Name == "blk.0.ffn_gate.weight" {
				// Part of the tensor's bytes relabelled as a Q5_K tensor,
				// a type minnow does not decode.
				nt.Dims, nt.Type = []uint64{256, 32}, gguf.Q5_K
				size, _ := gguf.Q5_K.ByteSize(nt.Dims)
				nt.Data = raw[:size]
			}
			ts = append(ts, nt)
		}
		if err := gguf.WriteFile(path, md, ts); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ImportGGUF(path, testBackend); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := ImportGGUF(filepath.Join(dir, "none.gguf"), testBackend); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
