// Package safetensors reads and writes the safetensors format that Hugging
// Face checkpoints and PEFT adapters use: an 8-byte little-endian header
// length, a JSON header mapping each tensor name to its dtype, shape and
// byte range, and the raw little-endian tensor data.
//
// Files are memory-mapped where the platform allows it, so opening a
// multi-gigabyte checkpoint costs only its header and a tensor is read
// when it is asked for. Open validates the whole header before any
// tensor is read (size bounds, offsets inside the data and not
// overlapping, byte lengths that match dtype and shape), so a truncated
// or hostile file gives an error, never a panic or a huge allocation.
//
// OpenModel opens a checkpoint folder as transformers writes it: a single
// model.safetensors, or model.safetensors.index.json and its shards.
package safetensors
