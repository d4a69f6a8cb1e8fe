package convert

import (
	"fmt"
	"io"
	"strings"

	"github.com/minnowml/minnow/gguf"
	"github.com/minnowml/minnow/tensor"
)

// LoRATensorPair is one adapted weight for ExportLoRAGGUF, in PEFT's
// orientation: the weight W [out, in] becomes W + (alpha/r)·B·A.
type LoRATensorPair struct {
	// Name is the base weight's GGUF name, such as "blk.0.attn_q.weight".
	Name string
	// A is the down projection [r, in].
	A *tensor.Tensor
	// B is the up projection [out, r].
	B *tensor.Tensor
}

// LoRAOptions controls ExportLoRAGGUF.
type LoRAOptions struct {
	// Name is general.name; "" means "minnow-lora".
	Name string
	// Type stores A and B: gguf.F32 (the zero value), F16 or BF16.
	// llama.cpp's own converter keeps adapters in a float type, as their
	// small rank makes quantisation error large for little gain.
	Type gguf.GGMLType
}

// ExportLoRAGGUF writes a llama.cpp LoRA adapter file for a base model of
// GGUF architecture arch ("llama", "qwen2", "gpt2"): general.type
// "adapter", adapter.type "lora", adapter.lora.alpha, and per pair the
// tensors "<Name>.lora_a" (ggml ne [in, r], which is A [r, in] as stored)
// and "<Name>.lora_b" (ne [r, out], B [out, r]), which is what
// llama-adapter.cpp checks. llama.cpp scales the product by alpha/r (times
// the scale the user passes at load time). It returns an error when a
// name is empty, repeated, not a ".weight" matrix or the token embedding
// (whose adapter llama.cpp stores flipped), the shapes do not chain
// (A's rows must equal B's columns), an option is unsupported, or w fails.
func ExportLoRAGGUF(w io.Writer, arch string, alpha float32, pairs []LoRATensorPair, opt LoRAOptions) error {
	switch opt.Type {
	case gguf.F32, gguf.F16, gguf.BF16:
	default:
		return fmt.Errorf("convert: LoRA tensors of type %s are not supported (want F32, F16 or BF16)", opt.Type)
	}
	if arch == "" {
		return fmt.Errorf("convert: LoRA export needs the base model's architecture")
	}
	name := opt.Name
	if name == "" {
		name = "minnow-lora"
	}
	md := gguf.Metadata{
		{Key: "general.architecture", Value: arch},
		{Key: "general.type", Value: "adapter"},
		{Key: "general.name", Value: name},
		{Key: "adapter.type", Value: "lora"},
		{Key: "adapter.lora.alpha", Value: alpha},
	}
	seen := map[string]bool{}
	var ts []gguf.Tensor
	for _, p := range pairs {
		if p.Name == "" || !strings.HasSuffix(p.Name, ".weight") || p.Name == "token_embd.weight" {
			return fmt.Errorf("convert: LoRA pair %q: want the name of a base weight matrix other than token_embd.weight", p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("convert: LoRA pair %q appears twice", p.Name)
		}
		seen[p.Name] = true
		if p.A == nil || p.B == nil || p.A.Rank() != 2 || p.B.Rank() != 2 || p.A.Dim(0) != p.B.Dim(1) {
			return fmt.Errorf("convert: LoRA pair %q: want A [r, in] and B [out, r], got %v and %v", p.Name, shapeOf(p.A), shapeOf(p.B))
		}
		ts = append(ts,
			lazyTensor(p.Name+".lora_a", ggufDims(p.A.Shape()), opt.Type, p.A),
			lazyTensor(p.Name+".lora_b", ggufDims(p.B.Shape()), opt.Type, p.B))
	}
	return gguf.Write(w, md, ts)
}

func shapeOf(t *tensor.Tensor) []int {
	if t == nil {
		return nil
	}
	return t.Shape()
}
