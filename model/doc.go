// Package model builds whole language models from package nn's layers: a
// Llama-family decoder (Llama 2 and 3, Mistral-style Llama, SmolLM,
// TinyLlama, Qwen2) and GPT-2, described by a Config that reads Hugging
// Face's config.json as it is.
//
//	cfg, err := model.LoadConfig("SmolLM-135M/config.json")
//	m, err := model.New(cfg, be, tensor.Float32, seed)
//	logits := m.Forward(ids, model.ForwardOptions{}) // [B, T, vocab]
//
// # Architectures
//
// A registry maps config.json's model_type (or, without one, its
// architectures class names) to an Architecture: "llama", "mistral",
// "smollm", "qwen2" and "gpt2" and their Hugging Face classes are built in,
// and Register adds more. New validates the config and builds the model
// with weights drawn from a seed as the reference implementations
// initialise them: normal with initializer_range (0.02) for matrices and
// embeddings, GPT-2's residual projections scaled by 1/sqrt(2·layers), norm
// gains 1 and biases 0.
//
// # Parameter names
//
// Parameters carry their GGUF tensor names in `gguf` struct tags, and
// Params resolves them, with layer indices, into the names llama.cpp uses:
// "token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight",
// "output_norm.weight", "output.weight". These names are the single source
// for checkpoints, GGUF export and Hugging Face import. A tied output layer
// has no tensor of its own (llama.cpp then reads token_embd), so it does
// not appear.
//
// GPT-2 follows llama.cpp's gpt2 architecture: learned positions in
// "position_embd.weight", and one fused projection "blk.N.attn_qkv" whose
// rows hold q, then k, then v, as Hugging Face's c_attn does (transposed,
// since its Conv1D stores [in, out]); the MLP's c_fc and c_proj are
// "ffn_up" and "ffn_down".
//
// # Rotary embedding conventions
//
// Each architecture rotates as llama.cpp does for it, so trained weights
// export to GGUF unchanged: the Llama family (llama.cpp's LLAMA, "normal"
// RoPE) rotates adjacent feature pairs, and Qwen2 (NEOX RoPE) rotates
// halves. Hugging Face stores Llama's q and k projections for rotate-half,
// so importing a Hugging Face Llama checkpoint must permute their rows as
// llama.cpp's converter does; Qwen2's need no permutation.
package model
