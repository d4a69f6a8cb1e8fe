package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the decoder behind Load. Whatever the
// input, it must return a *FormatError naming the file, or a checkpoint
// that survives being saved and decoded again unchanged. Each input is
// tried twice: as it is, and with its declared size and checksum repaired,
// since random damage otherwise stops at the checksum and never reaches
// the header parser. Under plain `go test` it runs over the seeds only.
func FuzzLoad(f *testing.F) {
	f.Add(saved(f, small()))
	f.Add(saved(f, &Checkpoint{}))
	f.Add(saved(f, &Checkpoint{Tensors: sample().Tensors[5:6], Metadata: map[string]string{"a": "b"}}))
	f.Add(assemble(mp([]byte{0x81}, "tensors", []byte{0x91}), nil))
	f.Add(assemble(mp([]byte{0x82}, "future", []any{1, []any{2}}, "step", 3), nil))
	f.Add(assemble([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, nil))
	f.Add(assemble(desc("w", "f32", 1), []byte{codeBin8, 0, codeBin8, 4, 1, 2, 3, 4}))
	f.Add([]byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("step: 120\n"))
	f.Add(magicBytes)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b)
		if int64(len(b)) >= preambleSize+trailerSize && bytes.HasPrefix(b, magicBytes) {
			fixed := bytes.Clone(b)
			fixed[offFileSize] = codeUint64
			binary.BigEndian.PutUint64(fixed[offFileSize+1:], uint64(len(fixed)))
			roundTrip(t, fixChecksum(fixed))
		}
	})
}

// roundTrip checks the decoder's contract on b.
func roundTrip(t *testing.T, b []byte) {
	const name = "fuzz.ckpt"
	c, err := decode(name, b)
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v is not a *FormatError", err)
		}
		if fe.Path != name {
			t.Fatalf("error %q names %q, not the file", err, fe.Path)
		}
		if fe.Offset < -1 || fe.Offset > int64(len(b)) {
			t.Fatalf("error offset %d outside the %d-byte input", fe.Offset, len(b))
		}
		return
	}
	if err := validate(c); err != nil {
		t.Fatalf("decode accepted a checkpoint Save rejects: %v", err)
	}
	hdr, err := encodeHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeFile(&buf, hdr, c); err != nil {
		t.Fatal(err)
	}
	again, err := decode(name, buf.Bytes())
	if err != nil {
		t.Fatalf("decoding the re-encoded checkpoint: %v", err)
	}
	if d := diff(again, c); d != "" {
		t.Fatalf("re-encoding changed the checkpoint:\n%s", d)
	}
}
