// Package bench measures minnow's core on the CPU: the SGEMM rate of the
// backend's BLAS and full training steps (forward, backward, AdamW) of a
// GPT-2-shaped model, reported relative to that SGEMM rate so the figure
// means the same on any machine. `make bench` and `minnow bench core` run
// it.
package bench
