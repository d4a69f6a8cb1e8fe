//go:build race

package data

// raceEnabled makes the slowest tests use smaller inputs under the race
// detector, which slows JSON decoding of huge lines a hundredfold.
const raceEnabled = true
