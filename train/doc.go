// Package train holds what turns gradients into a trained model: the AdamW
// optimizer with decoupled weight decay and gradient clipping by global
// norm. The training loop, schedules and objectives build on it.
package train
