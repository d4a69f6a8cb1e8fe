// Package tokenizer turns text into token ids and back, matching the ids
// llama.cpp produces for the same vocabulary: byte-level BPE (GPT-2, Llama 3,
// Qwen2, SmolLM) and SentencePiece (Llama 2, TinyLlama), loaded from GGUF,
// Hugging Face tokenizer.json, vocab.json with merges.txt, or tokenizer.model,
// or trained on a corpus.
package tokenizer
