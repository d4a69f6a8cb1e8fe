//go:build !unix

package safetensors

import (
	"fmt"
	"io"
	"os"
)

// mapFile reads f into memory where the platform has no mmap; the result
// behaves like a mapping.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("%d bytes is too large to read", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
