// Package shareddata finds the project's shared data files (tokenizers,
// test vectors, corpora, checkpoints) for tests, through the MINNOW_DATA
// environment variable that .ci/run and the Makefile set.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// Path returns the path of the shared data file rel under $MINNOW_DATA. It
// skips the test when the variable is unset, and fails it when the
// variable is set but the file is missing, so CI cannot pass by silently
// skipping.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	dir := os.Getenv("MINNOW_DATA")
	if dir == "" {
		tb.Skipf("MINNOW_DATA is not set; skipping: this test needs %s from the shared data (see ../shared/data/README.md)", rel)
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("MINNOW_DATA is set but %s is missing: %v", p, err)
	}
	return p
}
