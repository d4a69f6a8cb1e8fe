// Package gguf reads and writes GGUF files, the format llama.cpp and ollama
// load: a header, typed key-value metadata, tensor descriptions and aligned
// tensor data.
//
// Open and Read parse versions 2 and 3 (little-endian) and read only the
// metadata and tensor descriptions; tensor bytes stay on disk until
// File.TensorData or File.ReadTensor asks for them. The reader treats its
// input as hostile: every count and length is checked against the bytes
// left before anything is allocated, tensor extents are checked against
// the file size, and a malformed file yields a *FormatError naming the
// problem and its byte offset rather than a panic.
//
// Write and WriteFile produce version 3 files that llama.cpp accepts:
// each metadata value's Go type picks its GGUF type, tensors are laid out
// in order at offsets aligned to general.alignment, and WriteFile replaces
// its target atomically.
package gguf
