"""A tiny random causal LM for the training tests (shared by several test files)."""

from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

from prefkit.training.tiny import tiny_model


def tiny_lm(seed: int = 0, vocab: int = 64, head_std: float | None = None) -> LlamaForCausalLM:
    """A 2-layer, 32-wide Llama with random weights (seeded; the global RNG untouched).

    ``head_std`` rescales the LM head so the next-token distributions are far from
    uniform (a default init gives near-uniform probabilities); such a model is returned
    in eval mode.
    """
    model = tiny_model(
        vocab_size=vocab, hidden_size=32, heads=2, kv_heads=2, seed=seed,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )  # fmt: skip
    if head_std is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            torch.nn.init.normal_(model.lm_head.weight, std=head_std)
    return model.eval() if head_std is not None else model
