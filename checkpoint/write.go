package checkpoint

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/minnowml/minnow/internal/atomicfile"
)

// Save writes c to path atomically: readers and a run that crashes midway
// see either the old file or the whole new one. The same checkpoint always
// produces the same bytes. It returns an error naming path when c is
// invalid (a tensor without a name, with a duplicate name, an unknown
// dtype, a bad shape or data of the wrong length), and the error from
// creating, writing, syncing or renaming the file; on error path is left
// as it was.
func Save(path string, c *Checkpoint) error {
	if err := validate(c); err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	hdr, err := encodeHeader(c)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error { return writeFile(w, hdr, c) })
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	return nil
}

// tensorsOf returns the checkpoint's tensors in file order: weights, then
// optimizer state.
func tensorsOf(c *Checkpoint) []NamedTensor {
	return slices.Concat(c.Tensors, c.Optimizer.Tensors)
}

// sink counts and checksums the bytes on their way to the file.
type sink struct {
	w   *bufio.Writer
	crc uint32
	n   int64
}

func (s *sink) Write(p []byte) (int, error) {
	s.crc = crc32.Update(s.crc, castagnoli, p)
	s.n += int64(len(p))
	return s.w.Write(p)
}

// writeFile writes the preamble, the encoded header hdr, c's tensors and
// the checksum to w.
func writeFile(w io.Writer, hdr []byte, c *Checkpoint) error {
	ts := tensorsOf(c)
	// The preamble records the file size, so lay the file out first.
	size := int64(preambleSize) + int64(len(hdr))
	for _, t := range ts {
		n := int64(len(t.Data))
		size += 2 + padding(size, n) + binHeaderSize(n) + n
	}
	size += trailerSize

	// A large buffer turns the many small header writes into few system
	// calls; tensor data bigger than it goes straight to the file.
	s := &sink{w: bufio.NewWriterSize(w, 1<<20)}
	e := &encoder{enc: msgpack.NewEncoder(s)}
	e.raw(magicBytes).u32(Version).u64(uint64(size)).u32(uint32(len(hdr))).raw(hdr)
	var zeros [Alignment]byte
	for _, t := range ts {
		n := int64(len(t.Data))
		pad := padding(s.n, n)
		e.binLen(pad).raw(zeros[:pad]).binLen(n).raw(t.Data)
	}
	if e.err != nil {
		return e.err
	}
	e.u32(s.crc)
	if e.err != nil {
		return e.err
	}
	if s.n != size {
		// A layout bug would make every reader reject the file; catch it
		// here, before the rename, instead.
		return fmt.Errorf("internal error: wrote %d bytes, laid out %d", s.n, size)
	}
	return s.w.Flush()
}

// encodeHeader returns c's header: every field but the tensor data, as a
// MessagePack map with keys in a fixed order.
func encodeHeader(c *Checkpoint) ([]byte, error) {
	var buf bytes.Buffer
	e := &encoder{enc: msgpack.NewEncoder(&buf)}
	e.mapLen(10)
	e.str("arch").str(c.Arch)
	e.str("config").bin(c.Config)
	e.str("tokenizer").str(c.Tokenizer)
	e.str("step").int(c.Step)
	e.str("tensors").descriptors(c.Tensors)
	e.str("optimizer").mapLen(4)
	e.str("name").str(c.Optimizer.Name)
	e.str("step").int(c.Optimizer.Step)
	e.str("scalars").floatMap(c.Optimizer.Scalars)
	e.str("tensors").descriptors(c.Optimizer.Tensors)
	e.str("rng").bin(c.RNG)
	e.str("cursor").bin(c.Cursor)
	e.str("recipe").bin(c.Recipe)
	e.str("metadata").stringMap(c.Metadata)
	if e.err != nil {
		return nil, e.err
	}
	return buf.Bytes(), nil
}

// encoder wraps msgpack.Encoder so a sequence of writes checks its error
// once at the end.
type encoder struct {
	enc *msgpack.Encoder
	err error
}

func (e *encoder) do(f func() error) *encoder {
	if e.err == nil {
		e.err = f()
	}
	return e
}

func (e *encoder) mapLen(n int) *encoder { return e.do(func() error { return e.enc.EncodeMapLen(n) }) }
func (e *encoder) str(s string) *encoder { return e.do(func() error { return e.enc.EncodeString(s) }) }
func (e *encoder) int(v int64) *encoder  { return e.do(func() error { return e.enc.EncodeInt(v) }) }

// u32 and u64 write the fixed-width forms, which the preamble and trailer
// need to sit at fixed offsets.
func (e *encoder) u32(v uint32) *encoder { return e.do(func() error { return e.enc.EncodeUint32(v) }) }
func (e *encoder) u64(v uint64) *encoder { return e.do(func() error { return e.enc.EncodeUint64(v) }) }

// binLen writes the header of an n-byte bin; the bytes follow with raw.
func (e *encoder) binLen(n int64) *encoder {
	return e.do(func() error { return e.enc.EncodeBytesLen(int(n)) })
}

// raw writes b as it is.
func (e *encoder) raw(b []byte) *encoder {
	return e.do(func() error { _, err := e.enc.Writer().Write(b); return err })
}

// bin writes b, or nil for a nil b so that nil and empty survive a round
// trip as they were.
func (e *encoder) bin(b []byte) *encoder { return e.do(func() error { return e.enc.EncodeBytes(b) }) }

func (e *encoder) descriptors(ts []NamedTensor) *encoder {
	e.do(func() error { return e.enc.EncodeArrayLen(len(ts)) })
	for _, t := range ts {
		e.mapLen(3)
		e.str("name").str(t.Name)
		e.str("dtype").str(t.DType.String())
		e.str("shape").do(func() error { return e.enc.EncodeArrayLen(len(t.Shape)) })
		for _, d := range t.Shape {
			e.int(int64(d))
		}
	}
	return e
}

// stringMap writes m with sorted keys, so equal maps encode equally.
func (e *encoder) stringMap(m map[string]string) *encoder {
	if m == nil {
		return e.do(e.enc.EncodeNil)
	}
	e.mapLen(len(m))
	for _, k := range sortedKeys(m) {
		e.str(k).str(m[k])
	}
	return e
}

// floatMap writes m with sorted keys, each value as a float64.
func (e *encoder) floatMap(m map[string]float64) *encoder {
	if m == nil {
		return e.do(e.enc.EncodeNil)
	}
	e.mapLen(len(m))
	for _, k := range sortedKeys(m) {
		v := m[k]
		e.str(k).do(func() error { return e.enc.EncodeFloat64(v) })
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
