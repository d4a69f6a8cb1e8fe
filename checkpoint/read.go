package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"unicode/utf8"
)

// Load reads the checkpoint at path into one buffer the size of the file,
// in a single pass that checksums as it reads, and verifies it before
// returning it: the magic, the version, the size the file declares, the
// checksum, the header, and that each tensor's data holds its dtype's size
// times its shape's product bytes. The tensors' Data are slices of that
// buffer, so no tensor is copied or converted. It returns the error
// from opening or reading the file, or a *FormatError naming the file and
// the problem when it is not a checkpoint, is of a newer version, or is
// truncated, damaged or malformed; it allocates nothing large before the
// file's first bytes prove it a checkpoint of the size it has.
func Load(path string) (*Checkpoint, error) {
	f, size, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := readPreamble(path, f, size); err != nil {
		return nil, err
	}
	if int64(int(size)) != size {
		return nil, formatErr(path, -1, ErrCorrupt, "%d bytes do not fit in memory on this platform", size)
	}
	buf := make([]byte, size)
	sum, err := readSum(path, f, buf)
	if err != nil {
		return nil, err
	}
	return decodeSum(path, buf, sum)
}

// readChunk is the unit in which Load reads a file while checksumming it:
// small enough that a chunk is still in cache when it is hashed, which
// measured faster than chunks of megabytes.
const readChunk = 256 << 10

// readSum fills buf from f and returns the CRC-32C of all but its last
// trailerSize bytes. It checksums each chunk on another goroutine while
// the next one is read, so the checksum adds little to the time the read
// takes, and it hashes each chunk soon after it lands, while it is
// likely still in cache.
func readSum(path string, f *os.File, buf []byte) (uint32, error) {
	size := int64(len(buf))
	spans := make(chan []byte, 16)
	done := make(chan uint32)
	go func() {
		var crc uint32
		for b := range spans {
			crc = crc32.Update(crc, castagnoli, b)
		}
		done <- crc
	}()
	var rerr error
	for off := int64(0); off < size; off += readChunk {
		end := min(off+readChunk, size)
		if n, err := f.ReadAt(buf[off:end], off); err != nil {
			if errors.Is(err, io.EOF) {
				rerr = formatErr(path, off+int64(n), ErrCorrupt, "truncated while being read: %d of %d bytes", off+int64(n), size)
			} else {
				rerr = fmt.Errorf("checkpoint: %w", err)
			}
			break
		}
		if hashed := min(end, size-trailerSize); hashed > off {
			spans <- buf[off:hashed]
		}
	}
	close(spans)
	sum := <-done
	return sum, rerr
}

// decode parses and verifies the checkpoint file held in buf, which path
// names in errors; the result's tensor data are slices of buf.
func decode(path string, buf []byte) (*Checkpoint, error) {
	var sum uint32
	if len(buf) >= trailerSize {
		sum = crc32.Checksum(buf[:len(buf)-trailerSize], castagnoli)
	}
	return decodeSum(path, buf, sum)
}

// decodeSum is decode given sum, the checksum of all but the last
// trailerSize bytes of buf.
func decodeSum(path string, buf []byte, sum uint32) (*Checkpoint, error) {
	size := int64(len(buf))
	r := bytes.NewReader(buf)
	hsize, err := readPreamble(path, r, size)
	if err != nil {
		return nil, err
	}
	if err := checkSum(path, r, size, sum); err != nil {
		return nil, err
	}
	c, sizes, err := parseHeader(path, buf[preambleSize:preambleSize+hsize])
	if err != nil {
		return nil, err
	}
	offs, err := walk(path, r, preambleSize+hsize, size-trailerSize, sizes)
	if err != nil {
		return nil, err
	}
	ts := tensorsOf(c)
	for i := range ts {
		o, n := offs[i], sizes[i]
		// Cap each slice at its own data so an append cannot spill into
		// the next tensor's.
		ts[i].Data = buf[o : o+n : o+n]
	}
	split(c, ts)
	return c, nil
}

// split stores ts, in file order, back into c's weight and optimizer
// lists, which have their lengths already.
func split(c *Checkpoint, ts []NamedTensor) {
	nw := copy(c.Tensors, ts)
	copy(c.Optimizer.Tensors, ts[nw:])
}

// Verify checks the checkpoint at path as Load does but streams the file
// through the checksum instead of holding it in memory, and returns its
// contents with every tensor's Data nil: a cheap way to check a checkpoint
// or read its header. It returns the same errors as Load.
func Verify(path string) (*Checkpoint, error) {
	f, size, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hsize, err := readPreamble(path, f, size)
	if err != nil {
		return nil, err
	}
	crc := crc32.New(castagnoli)
	if _, err := io.CopyBuffer(crc, io.NewSectionReader(f, 0, size-trailerSize), make([]byte, 1<<20)); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if err := checkSum(path, f, size, crc.Sum32()); err != nil {
		return nil, err
	}
	// The checksum has passed, so hsize is what the writer wrote, and the
	// preamble checked it fits in the file.
	hdr := make([]byte, hsize)
	if _, err := f.ReadAt(hdr, preambleSize); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	c, sizes, err := parseHeader(path, hdr)
	if err != nil {
		return nil, err
	}
	if _, err := walk(path, f, preambleSize+hsize, size-trailerSize, sizes); err != nil {
		return nil, err
	}
	return c, nil
}

// open opens path and returns it with its size; its errors name path.
func open(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("checkpoint: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, formatErr(path, -1, ErrNotCheckpoint, "not a regular file (%v)", st.Mode().Type())
	}
	return f, st.Size(), nil
}

// readPreamble checks the magic, version, file size and header size at the
// start of the size-byte file r and returns the header size.
func readPreamble(path string, r io.ReaderAt, size int64) (int64, error) {
	var p [preambleSize]byte
	n, err := r.ReadAt(p[:min(size, preambleSize)], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	head := p[:n]
	m := min(len(head), len(magicBytes))
	if !bytes.Equal(head[:m], magicBytes[:m]) {
		return 0, formatErr(path, 0, ErrNotCheckpoint, "%s", describe(head))
	}
	if size == 0 {
		return 0, formatErr(path, -1, ErrCorrupt, "the file is empty")
	}
	if size < preambleSize+trailerSize {
		return 0, formatErr(path, -1, ErrCorrupt, "truncated: %d bytes, too short for a checkpoint's preamble and checksum", size)
	}
	if p[offVersion] != codeUint32 || p[offFileSize] != codeUint64 || p[offHeaderSize] != codeUint32 {
		return 0, formatErr(path, offVersion, ErrCorrupt, "malformed preamble")
	}
	version := binary.BigEndian.Uint32(p[offVersion+1:])
	switch {
	case version == 0:
		return 0, formatErr(path, offVersion, ErrVersion, "version 0 was never written")
	case version > Version:
		return 0, formatErr(path, offVersion, ErrVersion, "format version %d is newer than this build reads (up to %d); upgrade minnow", version, Version)
	}
	declared := binary.BigEndian.Uint64(p[offFileSize+1:])
	switch {
	case declared > uint64(size):
		return 0, formatErr(path, size, ErrCorrupt, "truncated: %d of the %d bytes it declares", size, declared)
	case declared < uint64(size):
		return 0, formatErr(path, int64(declared), ErrCorrupt, "%d unexpected bytes after its declared end at %d", uint64(size)-declared, declared)
	}
	hsize := int64(binary.BigEndian.Uint32(p[offHeaderSize+1:]))
	if hsize > size-preambleSize-trailerSize {
		return 0, formatErr(path, offHeaderSize, ErrCorrupt, "header of %d bytes does not fit in a %d-byte file", hsize, size)
	}
	return hsize, nil
}

// describe says what a file that is not a checkpoint starts with.
func describe(head []byte) string {
	if bytes.HasPrefix(head, []byte("GGUF")) {
		return "it is a GGUF model file (starts with \"GGUF\"); checkpoints start with \"" + Magic + "\""
	}
	head = head[:min(len(head), len(magicBytes)+4)]
	kind := "binary data"
	if utf8.Valid(head) {
		kind = "text"
	}
	return fmt.Sprintf("it starts with %q (%s), not the msgpack string %q", head, kind, Magic)
}

// checkSum compares the checksum stored at the end of the size-byte file r
// with sum, the checksum of the bytes before it.
func checkSum(path string, r io.ReaderAt, size int64, sum uint32) error {
	var t [trailerSize]byte
	if _, err := r.ReadAt(t[:], size-trailerSize); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if t[0] != codeUint32 {
		return formatErr(path, size-trailerSize, ErrCorrupt, "malformed checksum field (damaged or truncated file)")
	}
	if stored := binary.BigEndian.Uint32(t[1:]); stored != sum {
		return formatErr(path, -1, ErrCorrupt, "checksum mismatch (stored %08x, computed %08x): the file was damaged after it was written", stored, sum)
	}
	return nil
}

// walk checks the frames that hold the tensors' data, sizes[i] bytes for
// tensor i, from start (the end of the header) to end (the checksum), and
// returns the file offset of each tensor's data.
func walk(path string, r io.ReaderAt, start, end int64, sizes []int64) ([]int64, error) {
	offs := make([]int64, len(sizes))
	pos := start
	var b [5]byte
	read := func(n int64, what string, i int) error {
		if n > end-pos {
			return formatErr(path, pos, ErrCorrupt, "tensor %d's %s runs past the end of the data", i, what)
		}
		if _, err := r.ReadAt(b[:n], pos); err != nil {
			return fmt.Errorf("checkpoint: %s: %w", path, err)
		}
		return nil
	}
	for i, size := range sizes {
		if err := read(2, "padding", i); err != nil {
			return nil, err
		}
		if b[0] != codeBin8 {
			return nil, formatErr(path, pos, ErrCorrupt, "tensor %d's padding is not a msgpack bin8", i)
		}
		if pad := int64(b[1]); pad > end-pos-2 {
			return nil, formatErr(path, pos, ErrCorrupt, "tensor %d's %d bytes of padding run past the end of the data", i, pad)
		}
		pos += 2 + int64(b[1])
		if err := read(1, "data header", i); err != nil {
			return nil, err
		}
		var h int64
		switch b[0] {
		case codeBin8:
			h = 2
		case codeBin16:
			h = 3
		case codeBin32:
			h = 5
		default:
			return nil, formatErr(path, pos, ErrCorrupt, "tensor %d's data is not a msgpack bin", i)
		}
		if err := read(h, "data header", i); err != nil {
			return nil, err
		}
		var n int64
		switch h {
		case 2:
			n = int64(b[1])
		case 3:
			n = int64(binary.BigEndian.Uint16(b[1:]))
		default:
			n = int64(binary.BigEndian.Uint32(b[1:]))
		}
		if n != size {
			return nil, formatErr(path, pos, ErrCorrupt, "tensor %d has %d bytes of data, its dtype and shape need %d", i, n, size)
		}
		pos += h
		if n > end-pos {
			return nil, formatErr(path, pos, ErrCorrupt, "tensor %d's %d bytes of data run past the end of the data", i, n)
		}
		offs[i] = pos
		pos += n
	}
	if pos != end {
		return nil, formatErr(path, pos, ErrCorrupt, "%d unexpected bytes between the last tensor and the checksum", end-pos)
	}
	return offs, nil
}
