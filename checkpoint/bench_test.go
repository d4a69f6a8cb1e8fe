package checkpoint

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/minnowml/minnow/tensor"
)

// benchParams is the parameter count of the benchmark checkpoint: 25M
// float32 parameters, 100 MB, a quarter of a 100M-parameter model.
const benchParams = 32000*256 + 16*1024*1024

// benchCheckpoint returns a checkpoint shaped like a small model: an
// embedding and sixteen square matrices, filled with random bits.
func benchCheckpoint() *Checkpoint {
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(name string, shape ...int) NamedTensor {
		n := 4
		for _, d := range shape {
			n *= d
		}
		b := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], r.Uint64())
		}
		return NamedTensor{Name: name, DType: tensor.Float32, Shape: shape, Data: b}
	}
	c := &Checkpoint{Arch: "llama", Step: 1000, Tensors: []NamedTensor{fill("tok_embd.weight", 32000, 256)}}
	for i := range 16 {
		c.Tensors = append(c.Tensors, fill(fmt.Sprintf("blk.%d.weight", i), 1024, 1024))
	}
	return c
}

// BenchmarkLoad compares loading a 25M-parameter checkpoint with reading
// the same file raw, so the MB/s columns show what loading costs beyond
// the read: "read" is os.ReadFile, "read+crc" adds the checksum pass,
// "load" is Load, "verify" is Verify's streaming check, "tensors" is Load
// plus turning every tensor into a CPU tensor, and "save" is Save with its
// fsync. The file is usually in the page cache, so "read" measures memory
// bandwidth more than the disk; on a cold cache all of them are bound by
// the disk.
func BenchmarkLoad(b *testing.B) {
	c := benchCheckpoint()
	path := filepath.Join(b.TempDir(), "bench.ckpt")
	if err := Save(path, c); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	size := st.Size()
	b.Logf("%d parameters, %d-byte file", benchParams, size)
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := os.ReadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read+crc", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			buf, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			crc32.Checksum(buf, castagnoli)
		}
	})
	b.Run("load", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Load(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Verify(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tensors", func(b *testing.B) {
		be := tensor.Default()
		b.SetBytes(size)
		for b.Loop() {
			got, err := Load(path)
			if err != nil {
				b.Fatal(err)
			}
			for _, nt := range got.Tensors {
				t, err := nt.Tensor(be)
				if err != nil {
					b.Fatal(err)
				}
				t.Release()
			}
		}
	})
	b.Run("save", func(b *testing.B) {
		b.SetBytes(size)
		out := filepath.Join(b.TempDir(), "save.ckpt")
		for b.Loop() {
			if err := Save(out, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
