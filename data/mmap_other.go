//go:build !linux

package data

import (
	"fmt"
	"os"
)

// shardFile is a shard read with positioned reads, the portable fallback
// for memory mapping: only the tokens asked for are read, so corpora
// larger than memory still stream.
type shardFile struct{ f *os.File }

// openShardFile opens the shard at path, checking that it has size bytes.
func openShardFile(path string, size int64) (*shardFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != size {
		f.Close()
		return nil, fmt.Errorf("data: shard %s has %d bytes, its index says %d", path, fi.Size(), size)
	}
	return &shardFile{f: f}, nil
}

// read decodes len(dst) tokens starting at token tok.
func (s *shardFile) read(dst []int32, tok int64, width int) error {
	b := make([]byte, len(dst)*width)
	if _, err := s.f.ReadAt(b, tok*int64(width)); err != nil {
		return fmt.Errorf("data: read %s: %w", s.f.Name(), err)
	}
	decodeTokens(dst, b, width)
	return nil
}

func (s *shardFile) close() error { return s.f.Close() }
