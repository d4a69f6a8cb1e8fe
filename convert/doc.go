// Package convert moves models between minnow and the formats other tools
// use: GGUF files that llama.cpp and ollama run (full models, quantized,
// and LoRA adapters), Hugging Face checkpoints (config.json, safetensors
// and tokenizer.json) and llama2.c checkpoints.
//
// Tensor names come from one place, the gguf tags of the model's layers
// (model.Params), so a checkpoint, a GGUF file and an imported Hugging Face
// model agree on what each tensor is. The Llama family in minnow rotates
// adjacent pairs in RoPE, as llama.cpp does for architecture "llama", so
// GGUF export writes Q and K as they are; Hugging Face Llama checkpoints
// rotate halves and their Q and K rows are permuted on import. Qwen2
// rotates halves in both minnow and llama.cpp and needs no permutation.
package convert
