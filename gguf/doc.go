// Package gguf reads and writes GGUF files, the format llama.cpp and ollama
// load: a header, typed key-value metadata, tensor descriptions and aligned
// tensor data.
package gguf
