// Package lora fine-tunes a frozen model through small trained additions:
// LoRA adapters on its linear layers and soft prompts before its input.
//
// # LoRA
//
// Apply attaches to each chosen linear layer W [out, in] two matrices, A
// [r, in] and B [out, r], so that the layer computes
//
//	y = x·Wᵀ + b + s · dropout(x)·Aᵀ·Bᵀ
//
// with s = alpha/r, or alpha/√r with rsLoRA. A starts Kaiming-uniform (as
// PEFT and torch.nn.Linear initialise it) or Gaussian, and B at zero, so a
// fresh adapter leaves the model's output unchanged. Every parameter of the
// base model stops requiring grad, so Backward allocates no gradient for
// it and the optimizer, given only Adapter.Params, keeps no state for it:
// training memory grows with the adapter, not the model. Switching the
// adapter off (SetEnabled) turns the same weights back into the base model,
// which serves as the reference policy of RL and DPO without a second
// copy. Merge folds s·B·A into W for inference and Unmerge takes it out
// again.
//
// Layers are chosen by kind (q, k, v, o, gate, up, down, qkv, output, or
// llama.cpp's names attn_q, ffn_up, …), by "all-linear" (every linear
// layer but the output head, as PEFT means it), or by glob patterns over
// the layer names that model.Linears reports ("blk.*.attn_q",
// "blk.1[0-5].ffn_*"); Overrides change the rank and alpha of the layers
// they match.
//
// Adapters are saved on their own in minnow's checkpoint format (Save,
// Load) or in PEFT's layout (SavePEFT, LoadPEFT): adapter_config.json and
// adapter_model.safetensors with tensor names such as
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight, so they
// move to and from the Python tools. A Hugging Face Llama rotates halves in
// RoPE while minnow rotates adjacent pairs, so the importer permutes the
// rows of q_proj and k_proj; the rows of their lora_B matrices (the output
// features) get the same permutation on load and its inverse on save.
//
// # Soft prompts
//
// A SoftPrompt is P learned embeddings that enter the model before the
// tokens (model.ForwardOptions.Prefix), shifting the tokens' positions by
// P; only they train. They start random, as copies of random vocabulary
// embeddings, or as the embeddings of a text's tokens. Generation prefills
// them into the KV caches first (model.GenerateConfig.Prefix). A saved
// prompt records hashes of the model's weights and of the tokenizer it was
// trained with, and loading it against another model or tokenizer is an
// error.
package lora
