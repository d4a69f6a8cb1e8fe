package model

import (
	"reflect"
	"strings"
	"testing"

	"github.com/minnowml/minnow/nn"
	"github.com/minnowml/minnow/tensor"
)

// named is a parameter's name and row-major shape ([out, in] for
// matrices, the transpose of GGUF's ne order).
type named struct {
	name  string
	shape []int
}

func TestParamNames(t *testing.T) {
	// Tiny models: width 8, 2 query heads of 4, 1 key/value head, MLP 12,
	// vocabulary 11, GPT-2's context 16.
	llamaBlock := func(i string, bias bool) []named {
		out := []named{{"blk." + i + ".attn_norm.weight", []int{8}}}
		for _, p := range []named{{"attn_q", []int{8, 8}}, {"attn_k", []int{4, 8}}, {"attn_v", []int{4, 8}}} {
			out = append(out, named{"blk." + i + "." + p.name + ".weight", p.shape})
			if bias {
				out = append(out, named{"blk." + i + "." + p.name + ".bias", p.shape[:1]})
			}
		}
		return append(out,
			named{"blk." + i + ".attn_output.weight", []int{8, 8}},
			named{"blk." + i + ".ffn_norm.weight", []int{8}},
			named{"blk." + i + ".ffn_gate.weight", []int{12, 8}},
			named{"blk." + i + ".ffn_up.weight", []int{12, 8}},
			named{"blk." + i + ".ffn_down.weight", []int{8, 12}},
		)
	}
	gpt2Block := func(i string) []named {
		p := "blk." + i + "."
		return []named{
			{p + "attn_norm.weight", []int{8}}, {p + "attn_norm.bias", []int{8}},
			{p + "attn_qkv.weight", []int{24, 8}}, {p + "attn_qkv.bias", []int{24}},
			{p + "attn_output.weight", []int{8, 8}}, {p + "attn_output.bias", []int{8}},
			{p + "ffn_norm.weight", []int{8}}, {p + "ffn_norm.bias", []int{8}},
			{p + "ffn_up.weight", []int{32, 8}}, {p + "ffn_up.bias", []int{32}},
			{p + "ffn_down.weight", []int{8, 32}}, {p + "ffn_down.bias", []int{8}},
		}
	}
	cat := func(parts ...[]named) []named {
		var out []named
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	want := map[string][]named{
		"llama": cat([]named{{"token_embd.weight", []int{11, 8}}}, llamaBlock("0", false), llamaBlock("1", false),
			[]named{{"output_norm.weight", []int{8}}, {"output.weight", []int{11, 8}}}),
		// Tied: no output.weight, as llama.cpp then reads token_embd.
		"qwen2-tied": cat([]named{{"token_embd.weight", []int{11, 8}}}, llamaBlock("0", true), llamaBlock("1", true),
			[]named{{"output_norm.weight", []int{8}}}),
		"gpt2": cat([]named{{"token_embd.weight", []int{11, 8}}, {"position_embd.weight", []int{16, 8}}}, gpt2Block("0"), gpt2Block("1"),
			[]named{{"output_norm.weight", []int{8}}, {"output_norm.bias", []int{8}}}),
	}
	for _, name := range names() {
		ps := build(t, tiny()[name], tensor.Float32, 1).Params()
		var got []named
		seen := map[string]bool{}
		for _, p := range ps {
			got = append(got, named{p.Name, append([]int(nil), p.Tensor.Shape()...)})
			if seen[p.Name] {
				t.Errorf("%s: name %s repeats", name, p.Name)
			}
			seen[p.Name] = true
			if *p.Slot != p.Tensor || !p.Tensor.RequiresGrad() {
				t.Errorf("%s: %s: slot does not hold the tensor, or it does not require grad", name, p.Name)
			}
			wantDecay := p.Tensor.Rank() == 2 && !strings.Contains(p.Name, "_embd")
			if p.Decays() != wantDecay {
				t.Errorf("%s: %s: Decays() = %v", name, p.Name, p.Decays())
			}
		}
		if !reflect.DeepEqual(got, want[name]) {
			t.Errorf("%s: parameters\n got %v\nwant %v", name, got, want[name])
		}
	}
}

// TestEveryTensorFieldTagged fails when a model or layer gains an exported
// tensor field without a gguf tag, which Params would otherwise have to
// skip or name by guesswork.
func TestEveryTensorFieldTagged(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Llama](), reflect.TypeFor[GPT2](),
		reflect.TypeFor[nn.Linear](), reflect.TypeFor[nn.Embedding](), reflect.TypeFor[nn.RMSNorm](),
		reflect.TypeFor[nn.LayerNorm](), reflect.TypeFor[nn.SwiGLU](), reflect.TypeFor[nn.GELUMLP](),
		reflect.TypeFor[nn.Attention](),
	} {
		if bad := untagged(typ); len(bad) > 0 {
			t.Errorf("%s: untagged tensor fields %v", typ, bad)
		}
	}
	// The check itself must catch one, directly and through nesting.
	type layer struct {
		W     *tensor.Tensor `gguf:"weight"`
		Extra *tensor.Tensor
	}
	type net struct {
		Layers []layer        `gguf:"blk"`
		Skip   *tensor.Tensor `gguf:"-"`
	}
	if bad := untagged(reflect.TypeFor[net]()); !reflect.DeepEqual(bad, []string{"layer.Extra"}) {
		t.Errorf("untagged(net) = %v, want [layer.Extra]", bad)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "layer.Extra") {
			t.Errorf("Params on an untagged field: panic %v", r)
		}
	}()
	Params(&net{Layers: []layer{{}}})
}

func TestParamsNesting(t *testing.T) {
	type leaf struct {
		W *tensor.Tensor `gguf:"weight"`
		B *tensor.Tensor `gguf:"bias"`
	}
	type inner struct {
		Q    *leaf `gguf:"attn_q"`
		Flat leaf  `gguf:",inline"`
	}
	type outer struct {
		Emb    leaf             `gguf:"token_embd"`
		Blocks []*inner         `gguf:"blk"`
		Extra  []*tensor.Tensor `gguf:"extra"`
		Buf    *tensor.Tensor   `gguf:"-"`
		hidden *tensor.Tensor
	}
	x := func() *tensor.Tensor { return tensor.Zeros(1) }
	o := &outer{Emb: leaf{W: x()}, Blocks: []*inner{{Q: &leaf{W: x(), B: x()}, Flat: leaf{W: x()}}, nil, {Flat: leaf{B: x()}}},
		Extra: []*tensor.Tensor{x(), nil, x()}, Buf: x(), hidden: x()}
	var got []string
	for _, p := range Params(o) {
		got = append(got, p.Name)
	}
	want := []string{"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_q.bias", "blk.0.weight", "blk.2.bias", "extra.0", "extra.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	for _, bad := range []any{outer{}, (*outer)(nil), new(int)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Params(%T) did not panic", bad)
				}
			}()
			Params(bad)
		}()
	}
}
