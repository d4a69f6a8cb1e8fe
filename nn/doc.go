// Package nn holds the layers that minnow's models are built from: Linear,
// Embedding, RMSNorm, LayerNorm, the SwiGLU and GELU MLPs, and multi-head
// attention with grouped key/value heads, rotary position embedding and a
// KV cache.
//
// Each layer is a struct whose exported fields are its parameter tensors,
// with a constructor that takes a backend, a dtype and (where the layer has
// random weights) a *rand.Rand, and a Forward method built from tensor ops,
// so gradients come from package tensor's autodiff. Parameters are created
// with RequiresGrad set; code may replace them (a loader, a gradient check)
// and Forward reads whatever the fields then hold.
//
// # Layout and names
//
// Weights are stored [out, in], as GGUF and Hugging Face store them, and
// Linear computes x·Wᵀ through a transposed view that MatMul reads in place.
// Every parameter field carries a `gguf` struct tag naming its tensor the way
// llama.cpp does ("weight", "bias", "attn_q", "ffn_down", ...); package model
// joins the tags of nested layers into full names such as
// "blk.3.attn_q.weight". A tag of "-" marks a tensor that is not a parameter,
// and ",inline" adds a nested layer's names without a prefix of its own.
//
// # Initialisation
//
// Weights and embeddings are drawn from a normal distribution with a
// configurable standard deviation (DefaultStd, 0.02, when left 0: the
// initializer_range of GPT-2 and Llama), biases start at 0 and norm weights
// at 1. Values come from the given *rand.Rand in a fixed order, so a seed
// fixes a model.
//
// # Errors
//
// Constructors validate their configuration and return an error. Forward
// methods panic with *tensor.Error when given inputs of the wrong shape or
// dtype, as tensor ops do; tensor.Catch turns the panic back into an error.
package nn
