"""Makes the Hugging Face parity goldens under convert/testdata/hf.

Run on the GPU machine (transformers, tokenizers, safetensors and peft
installed): python tools/goldens/hf_goldens.py OUTDIR. Each model folder
holds what a Hugging Face checkpoint holds (config.json, safetensors,
tokenizer.json) plus golden.safetensors: "ids" [B, T] int32, "logits"
[B, T, vocab] float32 computed in float64 from the stored weights, and
"greedy" [B, 16] int32, transformers' greedy continuation of each row.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import (LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen2ForCausalLM)

VOCAB = 320
TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "To be, or not to be, that is the question: whether 'tis nobler in the mind.",
    "12 + 35 = 47; 9 * 8 = 72; 100 - 58 = 42. Numbers and words together.",
    "Small models for repetitive tasks, trained without a Python stack.",
]


def tokenizer_json(path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 2, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXT * 20, trainer)
    tok.save(os.path.join(path, "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.save_pretrained(path)
    return fast


def golden(model, path, tok):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, VOCAB, (2, 8), generator=g)
    enc = tok("To be, or not", return_tensors="pt").input_ids[0][:8]
    ids[1, : len(enc)] = enc
    m64 = model.to(torch.float64).eval()
    with torch.no_grad():
        logits = m64(ids).logits.to(torch.float32)
        greedy = m64.generate(ids, max_new_tokens=16, do_sample=False, min_new_tokens=16,
                              pad_token_id=0, eos_token_id=None)[:, 8:]
    save_file({"ids": ids.to(torch.int32).contiguous(), "logits": logits.contiguous(),
               "greedy": greedy.to(torch.int32).contiguous()}, os.path.join(path, "golden.safetensors"))


def build(name, cls, cfg, out, dtype=torch.float32, shard=None, seed=0):
    torch.manual_seed(seed)
    model = cls(cfg)
    # Random norms so that a gain read from the wrong tensor shows.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            if n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    path = os.path.join(out, name)
    os.makedirs(path, exist_ok=True)
    model = model.to(dtype)
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(path, safe_serialization=True, **kw)
    tok = tokenizer_json(path)
    golden(model, path, tok)
    return path


def main(out):
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5,
                  bos_token_id=None, eos_token_id=0, pad_token_id=1)
    base = build("llama-gqa", LlamaForCausalLM, LlamaConfig(num_key_value_heads=2, tie_word_embeddings=False, **common), out)
    build("llama-tied-sharded", LlamaForCausalLM,
          LlamaConfig(num_key_value_heads=4, tie_word_embeddings=True, rope_theta=50000.0,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32}, **common),
          out, shard="60KB", seed=1)
    build("qwen2-bf16", Qwen2ForCausalLM,
          Qwen2Config(num_key_value_heads=2, tie_word_embeddings=True, rope_theta=1000000.0, **common),
          out, dtype=torch.bfloat16, seed=2)
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        print("peft missing: no LoRA golden")
        return
    torch.manual_seed(3)
    model = LlamaForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    pm = get_peft_model(model, lcfg)
    path = os.path.join(out, "llama-gqa-lora")
    pm.save_pretrained(path)
    tok = PreTrainedTokenizerFast.from_pretrained(base)
    golden(pm, path, tok)


if __name__ == "__main__":
    main(sys.argv[1])
