"""A tiny random causal LM for the training tests (shared by several test files)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_lm(seed: int = 0, vocab: int = 64, head_std: float | None = None) -> LlamaForCausalLM:
    """A 2-layer, 32-wide Llama with random weights (seeded; the global RNG untouched).

    ``head_std`` rescales the LM head so the next-token distributions are far from
    uniform (a default init gives near-uniform probabilities); such a model is returned
    in eval mode.
    """
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
        if head_std is not None:
            torch.nn.init.normal_(model.lm_head.weight, std=head_std)
    return model.eval() if head_std is not None else model
