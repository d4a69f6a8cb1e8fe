// Package checkpoint saves and restores training state: model weights,
// optimizer state, RNG state, the data cursor, the run's recipe and
// free-form metadata, in one file that loads at disk speed.
//
// The package stands aside from the rest of minnow: it imports only
// package tensor (for dtypes and conversions) and internal/atomicfile.
// Everything model-, trainer- or data-specific reaches it as opaque bytes
// the caller produces and interprets: the architecture config (JSON of the
// model config, say), the data cursor (JSON of a data.Cursor), the RNG
// state ((*rand.PCG).MarshalBinary) and the recipe snapshot. An optimizer
// hands over its state as named tensors plus its update count, so the
// package needs no knowledge of any optimizer either.
//
// # Format
//
// A checkpoint file is a sequence of MessagePack values:
//
//	str     "minnow.checkpoint"   magic (fixstr, bytes 0-17)
//	uint32  version               always the 5-byte form (bytes 18-22)
//	uint64  file size in bytes    always the 9-byte form (bytes 23-31)
//	uint32  header size in bytes  always the 5-byte form (bytes 32-36)
//	map     header                arch, config, tokenizer, step, tensor
//	                              descriptors, optimizer, rng, cursor,
//	                              recipe, metadata
//	per tensor, weights first, then optimizer state, in header order:
//	  bin8  padding               zeros, so the data starts at a multiple
//	                              of 64 bytes from the start of the file
//	  bin   data                  raw little-endian elements, row-major
//	uint32  checksum              CRC-32C (Castagnoli) of every byte before
//	                              it, always the 5-byte form
//
// A tensor descriptor is a map {"name", "dtype", "shape"}; dtype is the
// dtype's short name ("f32", "f64", "bf16", "f16", "i32") and the data's
// length must equal the dtype's size times the product of the shape.
// Readers skip header keys they do not know, so a version can gain fields
// without breaking older readers; a change that older readers would
// misread bumps Version. The fixed-width preamble lets a reader reject a
// foreign, truncated or newer file from its first 37 bytes, before it
// allocates anything.
//
// Weights are stored as raw blocks rather than per-number MessagePack
// values so that loading costs one read of the file, one checksum pass and
// no per-element work: Load reads the whole file into one buffer and the
// tensors' Data are slices of it. The data alignment lets
// NamedTensor.Tensor hand that memory to the backend without another copy
// on little-endian hosts. CRC-32C is used because the standard library
// computes it with CPU instructions at many GB/s, so the checksum does not
// slow loading below disk speed; it guards against accidental damage, not
// against tampering.
//
// # Safety
//
// Load and Verify treat the file as hostile: every length and count is
// checked against the bytes that remain before anything is allocated, and
// a foreign, truncated, damaged or newer file yields a *FormatError that
// names the file and the problem, never a panic. Save writes through
// internal/atomicfile, so a crash leaves either the old file or the whole
// new one under the final name.
//
// # Run directories
//
// Dir keeps step-numbered checkpoints (step-000120.ckpt) in a run
// directory, keeps only the newest few, and finds the newest usable one to
// resume from, passing over a damaged newest file with a warning.
package checkpoint
