//go:build !race

package data

// raceEnabled is false without the race detector.
const raceEnabled = false
