package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/minnowml/minnow/tensor"
)

// maxDepth bounds the nesting of unknown header values a reader skips, so
// a crafted header cannot exhaust the stack.
const maxDepth = 32

// parseHeader decodes the header bytes hb of the file path and returns the
// checkpoint it describes, with every tensor's Data nil, and the byte size
// of each tensor's data in file order.
//
// The decoder's own reflection-based decoding preallocates whatever
// lengths the input declares, so the header is read value by value here,
// and every declared length and count is checked against the bytes that
// remain before it is used.
func parseHeader(path string, hb []byte) (*Checkpoint, []int64, error) {
	h := &hdec{path: path, r: &hreader{b: hb}}
	// The reader is an io.ByteScanner, so the decoder reads from it
	// directly, without a buffer of its own, and h.r.off stays exact.
	h.d = msgpack.NewDecoder(h.r)
	c := &Checkpoint{}
	if err := h.header(c); err != nil {
		return nil, nil, err
	}
	if h.r.left() != 0 {
		return nil, nil, h.errf("%d unexpected bytes after the header map", h.r.left())
	}
	for _, list := range []struct {
		what string
		ts   []NamedTensor
	}{{"tensor", c.Tensors}, {"optimizer tensor", c.Optimizer.Tensors}} {
		seen := make(map[string]bool, len(list.ts))
		for _, t := range list.ts {
			if seen[t.Name] {
				return nil, nil, formatErr(path, -1, ErrCorrupt, "header: %s name %q appears twice", list.what, t.Name)
			}
			seen[t.Name] = true
		}
	}
	ts := tensorsOf(c)
	sizes := make([]int64, len(ts))
	for i, t := range ts {
		// The descriptors were checked as they were decoded.
		sizes[i], _ = dataSize(t.DType, t.Shape)
	}
	return c, sizes, nil
}

// hreader reads a header held in memory; it is an io.ByteScanner so that
// the msgpack decoder does not buffer ahead of it.
type hreader struct {
	b   []byte
	off int
}

func (r *hreader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *hreader) ReadByte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *hreader) UnreadByte() error {
	if r.off == 0 {
		return errors.New("checkpoint: unread at the start of the header")
	}
	r.off--
	return nil
}

func (r *hreader) left() int { return len(r.b) - r.off }

// hdec decodes header values, turning every problem into a *FormatError.
type hdec struct {
	path string
	r    *hreader
	d    *msgpack.Decoder
}

// errf returns a *FormatError at the current header position.
func (h *hdec) errf(format string, args ...any) error {
	return formatErr(h.path, preambleSize+int64(h.r.off), ErrCorrupt, "header: "+format, args...)
}

// wrap turns the decoder's error while reading what into a *FormatError.
func (h *hdec) wrap(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return h.errf("%s: the header ends early", what)
	}
	return h.errf("%s: %v", what, err)
}

// fits returns an error unless n items of at least each bytes fit in the
// rest of the header.
func (h *hdec) fits(what string, n, each int) error {
	if n < 0 || n > h.r.left()/each {
		return h.errf("%s declares %d items, more than the %d bytes left can hold", what, n, h.r.left())
	}
	return nil
}

// mapLen reads a map's length; a nil map gives -1 when nilOK.
func (h *hdec) mapLen(what string, nilOK bool) (int, error) {
	n, err := h.d.DecodeMapLen()
	if err != nil {
		return 0, h.wrap(what, err)
	}
	if n == -1 && nilOK {
		return -1, nil
	}
	if n == -1 {
		return 0, h.errf("%s is nil, not a map", what)
	}
	return n, h.fits(what, n, 2)
}

func (h *hdec) arrayLen(what string) (int, error) {
	n, err := h.d.DecodeArrayLen()
	if err != nil {
		return 0, h.wrap(what, err)
	}
	if n == -1 {
		return 0, h.errf("%s is nil, not an array", what)
	}
	return n, h.fits(what, n, 1)
}

// raw reads a string or bin and returns its bytes, aliasing the header,
// or nil for a msgpack nil.
func (h *hdec) raw(what string) ([]byte, error) {
	n, err := h.d.DecodeBytesLen()
	if err != nil {
		return nil, h.wrap(what, err)
	}
	if n == -1 {
		return nil, nil
	}
	if n < 0 || n > h.r.left() {
		return nil, h.errf("%s declares %d bytes, more than the %d left", what, n, h.r.left())
	}
	b := h.r.b[h.r.off : h.r.off+n]
	h.r.off += n
	return b, nil
}

func (h *hdec) str(what string) (string, error) {
	b, err := h.raw(what)
	return string(b), err
}

// bin returns a copy, so the result does not pin the buffer it was read
// from; a msgpack nil stays nil and an empty bin stays empty.
func (h *hdec) bin(what string) ([]byte, error) {
	b, err := h.raw(what)
	if err != nil || b == nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

func (h *hdec) int(what string) (int64, error) {
	v, err := h.d.DecodeInt64()
	if err != nil {
		return 0, h.wrap(what, err)
	}
	return v, nil
}

// key reads a map key and fails when seen already holds it.
func (h *hdec) key(what string, seen map[string]bool) (string, error) {
	k, err := h.str(what + " key")
	if err != nil {
		return "", err
	}
	if seen[k] {
		return "", h.errf("%s key %.40q appears twice", what, k)
	}
	seen[k] = true
	return k, nil
}

// skip passes over a value of a key this version does not know.
func (h *hdec) skip(what string, depth int) error {
	if depth > maxDepth {
		return h.errf("%s nests deeper than %d levels", what, maxDepth)
	}
	c, err := h.d.PeekCode()
	if err != nil {
		return h.wrap(what, err)
	}
	n := 0
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		m, err := h.mapLen(what, false)
		if err != nil {
			return err
		}
		n = 2 * m
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		if n, err = h.arrayLen(what); err != nil {
			return err
		}
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		_, err := h.raw(what)
		return err
	case msgpcode.IsExt(c):
		return h.errf("%s is a msgpack extension, which checkpoints do not use", what)
	default:
		// A scalar of at most 9 bytes, or an invalid code the decoder
		// rejects.
		if err := h.d.Skip(); err != nil {
			return h.wrap(what, err)
		}
	}
	for range n {
		if err := h.skip(what, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// header decodes the top-level map into c.
func (h *hdec) header(c *Checkpoint) error {
	n, err := h.mapLen("header", false)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for range n {
		k, err := h.key("header", seen)
		if err != nil {
			return err
		}
		switch k {
		case "arch":
			c.Arch, err = h.str(k)
		case "config":
			c.Config, err = h.bin(k)
		case "tokenizer":
			c.Tokenizer, err = h.str(k)
		case "step":
			c.Step, err = h.int(k)
		case "tensors":
			c.Tensors, err = h.descriptors("tensor")
		case "optimizer":
			err = h.optimizer(&c.Optimizer)
		case "rng":
			c.RNG, err = h.bin(k)
		case "cursor":
			c.Cursor, err = h.bin(k)
		case "recipe":
			c.Recipe, err = h.bin(k)
		case "metadata":
			c.Metadata, err = h.stringMap(k)
		default:
			err = h.skip(fmt.Sprintf("unknown key %.40q", k), 0)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *hdec) optimizer(o *OptimizerState) error {
	n, err := h.mapLen("optimizer", false)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for range n {
		k, err := h.key("optimizer", seen)
		if err != nil {
			return err
		}
		switch k {
		case "name":
			o.Name, err = h.str("optimizer name")
		case "step":
			o.Step, err = h.int("optimizer step")
		case "scalars":
			o.Scalars, err = h.floatMap("optimizer scalars")
		case "tensors":
			o.Tensors, err = h.descriptors("optimizer tensor")
		default:
			err = h.skip(fmt.Sprintf("unknown optimizer key %.40q", k), 0)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// descriptors decodes an array of tensor descriptors; the result grows as
// descriptors decode rather than being sized by the declared count, which
// a crafted file could inflate.
func (h *hdec) descriptors(what string) ([]NamedTensor, error) {
	n, err := h.arrayLen(what + " list")
	if err != nil {
		return nil, err
	}
	var ts []NamedTensor
	for i := range n {
		t, err := h.descriptor(what, i)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (h *hdec) descriptor(what string, i int) (NamedTensor, error) {
	var t NamedTensor
	label := fmt.Sprintf("%s %d", what, i)
	n, err := h.mapLen(label, false)
	if err != nil {
		return t, err
	}
	seen := map[string]bool{}
	for range n {
		k, err := h.key(label, seen)
		if err != nil {
			return t, err
		}
		switch k {
		case "name":
			t.Name, err = h.str(label + " name")
		case "dtype":
			var s string
			if s, err = h.str(label + " dtype"); err == nil {
				var ok bool
				if t.DType, ok = parseDType(s); !ok {
					err = h.errf("%s has unknown dtype %.20q", label, s)
				}
			}
		case "shape":
			t.Shape, err = h.shape(label)
		default:
			err = h.skip(fmt.Sprintf("%s unknown key %.40q", label, k), 0)
		}
		if err != nil {
			return t, err
		}
	}
	for _, k := range []string{"name", "dtype", "shape"} {
		if !seen[k] {
			return t, h.errf("%s has no %s", label, k)
		}
	}
	if t.Name == "" {
		return t, h.errf("%s has an empty name", label)
	}
	if _, err := dataSize(t.DType, t.Shape); err != nil {
		return t, h.errf("%s %q: %v", what, t.Name, err)
	}
	return t, nil
}

func (h *hdec) shape(label string) ([]int, error) {
	r, err := h.arrayLen(label + " shape")
	if err != nil {
		return nil, err
	}
	if r > tensor.MaxRank {
		return nil, h.errf("%s has rank %d, over %d", label, r, tensor.MaxRank)
	}
	shape := make([]int, r)
	for j := range shape {
		d, err := h.int(label + " shape")
		if err != nil {
			return nil, err
		}
		if d < 0 || d > math.MaxInt {
			return nil, h.errf("%s has dimension %d", label, d)
		}
		shape[j] = int(d)
	}
	return shape, nil
}

// stringMap decodes a map of strings, or a msgpack nil as a nil map.
func (h *hdec) stringMap(what string) (map[string]string, error) {
	n, err := h.mapLen(what, true)
	if err != nil || n == -1 {
		return nil, err
	}
	m := map[string]string{}
	seen := map[string]bool{}
	for range n {
		k, err := h.key(what, seen)
		if err != nil {
			return nil, err
		}
		if m[k], err = h.str(fmt.Sprintf("%s %.40q", what, k)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// floatMap decodes a map of numbers, or a msgpack nil as a nil map.
func (h *hdec) floatMap(what string) (map[string]float64, error) {
	n, err := h.mapLen(what, true)
	if err != nil || n == -1 {
		return nil, err
	}
	m := map[string]float64{}
	seen := map[string]bool{}
	for range n {
		k, err := h.key(what, seen)
		if err != nil {
			return nil, err
		}
		v, err := h.d.DecodeFloat64()
		if err != nil {
			return nil, h.wrap(fmt.Sprintf("%s %.40q", what, k), err)
		}
		m[k] = v
	}
	return m, nil
}
