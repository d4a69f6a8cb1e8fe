package model

import (
	"slices"
	"testing"

	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/tensor/cpu"
)

// TestLinears checks the names, kinds and blocks of the linear layers of
// each architecture and that every one's weight is the parameter Params
// lists under the same name.
func TestLinears(t *testing.T) {
	cases := []struct {
		typ   string
		tied  bool
		kinds []string
	}{
		{"llama", false, []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}},
		{"qwen2", true, []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}},
		{"gpt2", true, []string{"attn_qkv", "attn_output", "ffn_up", "ffn_down"}},
	}
	for _, c := range cases {
		cfg := memoCfg(c.typ)
		cfg.TieWordEmbeddings = c.tied
		m, err := New(cfg, cpu.New(1), tensor.Float32, 1)
		if err != nil {
			t.Fatal(err)
		}
		ls := Linears(m)
		var want []string
		for b := range cfg.NumHiddenLayers {
			for _, k := range c.kinds {
				want = append(want, "blk."+string(rune('0'+b))+"."+k)
			}
		}
		if !c.tied {
			want = append(want, "output")
		}
		var got []string
		params := map[string]*tensor.Tensor{}
		for _, p := range m.Params() {
			params[p.Name] = p.Tensor
		}
		for _, l := range ls {
			got = append(got, l.Name)
			if params[l.Name+".weight"] != l.Layer.Weight {
				t.Errorf("%s: %s: weight is not the parameter %s.weight", c.typ, l.Name, l.Name)
			}
			wantBlock := -1
			if l.Name != "output" {
				wantBlock = int(l.Name[4] - '0')
			}
			if l.Block != wantBlock || l.Name[len(l.Name)-len(l.Kind):] != l.Kind {
				t.Errorf("%s: %s: block %d kind %q", c.typ, l.Name, l.Block, l.Kind)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: linears %v, want %v", c.typ, got, want)
		}
	}
}
