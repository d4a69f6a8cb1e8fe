package model

import (
	"reflect"
	"strings"

	"github.com/minnowml/minnow/nn"
)

// NamedLinear is one linear layer of a model with its GGUF name.
type NamedLinear struct {
	// Name is the layer's name as llama.cpp spells its tensors without the
	// ".weight" suffix, such as "blk.0.attn_q" or "output".
	Name string
	// Kind is the last part of Name, the layer's role: attn_q, attn_k,
	// attn_v, attn_qkv, attn_output, ffn_gate, ffn_up, ffn_down or output.
	Kind string
	// Layer is the layer itself; hooks set on it (nn.Linear.Adapter) act
	// on the model's forward pass.
	Layer *nn.Linear
	// Block is the index of the transformer block holding the layer, or
	// -1 outside the blocks (the output layer).
	Block int
}

var linearType = reflect.TypeFor[*nn.Linear]()

// Linears returns the linear layers of m, a pointer to a struct, in the
// order and with the names of Params (which lists their tensors as
// Name+".weight" and Name+".bias"). A tied output layer, being the
// embedding table read transposed, is no nn.Linear and is not listed. It
// panics as Params does when m is not a pointer to a struct or has
// untagged tensor fields, both programmer errors.
func Linears(m any) []NamedLinear {
	v := checkModel("Linears", m)
	var out []NamedLinear
	walk(v.Elem(), "", func(name string, v reflect.Value) bool {
		if v.Type() != linearType {
			return false
		}
		if !v.IsNil() {
			out = append(out, NamedLinear{Name: name, Kind: name[strings.LastIndexByte(name, '.')+1:],
				Layer: v.Interface().(*nn.Linear), Block: blockIndex(name)})
		}
		return true
	})
	return out
}

// blockIndex returns N of a name "blk.N.…", or -1.
func blockIndex(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	n := 0
	for i := 0; i < len(rest) && rest[i] != '.'; i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return -1
		}
		n = n*10 + int(rest[i]-'0')
	}
	return n
}
