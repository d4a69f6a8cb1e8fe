package data

import (
	"fmt"
	"os"
	"syscall"
)

// shardFile is a shard memory-mapped read-only: the kernel pages tokens in
// as windows touch them and drops them under memory pressure, so corpora
// larger than memory can be streamed. The file must not be truncated while
// mapped (reading a vanished page faults).
type shardFile struct{ data []byte }

// openShardFile maps the shard at path, checking that it has size bytes.
func openShardFile(path string, size int64) (*shardFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != size {
		return nil, fmt.Errorf("data: shard %s has %d bytes, its index says %d", path, fi.Size(), size)
	}
	if size == 0 {
		return &shardFile{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("data: shard %s of %d bytes is too large to map", path, size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("data: mmap %s: %w", path, err)
	}
	return &shardFile{data: b}, nil
}

// read decodes len(dst) tokens starting at token tok.
func (s *shardFile) read(dst []int32, tok int64, width int) error {
	off := tok * int64(width)
	decodeTokens(dst, s.data[off:off+int64(len(dst)*width)], width)
	return nil
}

func (s *shardFile) close() error {
	if s.data == nil {
		return nil
	}
	err := syscall.Munmap(s.data)
	s.data = nil
	return err
}
