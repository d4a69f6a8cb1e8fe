package gguf

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read. Whatever the input, Read must
// return a *FormatError or a File; and a File must survive being written
// back and read again unchanged. Under plain `go test` it runs over the
// seeds only.
func FuzzRead(f *testing.F) {
	f.Add(smallFile(f))
	f.Add(writeBytes(f, allValues(), nil))
	f.Add(writeBytes(f, Metadata{{KeyAlignment, uint32(1)}}, []Tensor{
		{Name: "a", Dims: []uint64{3}, Type: I8, Data: []byte{1, 2, 3}},
		{Name: "b", Dims: []uint64{32}, Type: Q4_0, Data: seq(18, 7)},
	}))
	f.Add(header(0, 0).b)
	f.Add(header(1, 0).tensorInfo("t", F32, 0, 2).padTo(32).bytes(make([]byte, 8)...).b)
	f.Add(header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(2).str("ab").str("c").b)
	f.Add(header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeArray)).u64(0).b)
	f.Add(header(1<<40, 1<<40).b)
	f.Add([]byte("GGUF"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(b)) {
				t.Fatalf("error offset %d outside the %d-byte input", fe.Offset, len(b))
			}
			return
		}
		tensors := make([]Tensor, len(file.Tensors))
		for i, ti := range file.Tensors {
			data, err := file.ReadTensor(i)
			if err != nil {
				t.Fatalf("ReadTensor(%d) of a file Read accepted: %v", i, err)
			}
			tensors[i] = Tensor{Name: ti.Name, Dims: ti.Dims, Type: ti.Type, Data: data}
		}
		var buf bytes.Buffer
		if err := Write(&buf, file.Metadata, tensors); err != nil {
			t.Fatalf("Write of a file Read accepted: %v", err)
		}
		again, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("Read of the rewritten file: %v", err)
		}
		checkMetadata(t, again.Metadata, file.Metadata)
		if len(again.Tensors) != len(tensors) {
			t.Fatalf("rewritten file has %d tensors, want %d", len(again.Tensors), len(tensors))
		}
		for i, want := range tensors {
			got := again.Tensors[i]
			if got.Name != want.Name || got.Type != want.Type || !reflect.DeepEqual(got.Dims, want.Dims) {
				t.Errorf("tensor %d = %s %v %s, want %s %v %s", i, got.Name, got.Dims, got.Type, want.Name, want.Dims, want.Type)
			}
			data, err := again.ReadTensor(i)
			if err != nil || !bytes.Equal(data, want.Data) {
				t.Errorf("tensor %q data changed in the rewrite (%v)", want.Name, err)
			}
		}
	})
}
