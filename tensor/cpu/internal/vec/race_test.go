//go:build race

package vec

// The race detector makes sync.Pool drop items at random, so allocation
// counts that rely on the pool are meaningless under it.
func init() { raceEnabled = true }
