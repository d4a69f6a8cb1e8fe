// Package train turns gradients into a trained model: the AdamW optimizer
// with decoupled weight decay, gradient clipping by global norm, learning
// rate schedules (constant, linear, cosine, Warmup-Stable-Decay), and Loop,
// which runs any Objective over any Batches source with gradient
// accumulation, evaluation, JSON-lines metrics, NaN detection and
// checkpoints that resume bit for bit.
//
// Loop depends on a model only through the small Model interface (a loss
// from ids and targets) and a list of named weights, so package model's
// tests can use train without an import cycle.
package train
