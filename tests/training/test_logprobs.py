"""Sequence log-probs: the prefix-shared, vocabulary-chunked path equals an unbatched,
unpadded forward of each prompt + completion (values and gradients, fp32, 1e-5)."""

from __future__ import annotations

import pytest
import torch

from prefkit.training.logprobs import ChunkedTokenLogps, collate, sequence_logps
from prefkit.training.tiny import tiny_model

V = 97
TOL = 1e-5


def tiny(arch: str) -> torch.nn.Module:
    # Qwen2 with tied embeddings: the LM head's gradient also reaches the input embedding
    return tiny_model(
        arch, vocab_size=V, hidden_size=32, tie_word_embeddings=arch == "qwen2"
    ).eval()


def groups() -> tuple[list[list[int]], list[list[list[int]]]]:
    g = torch.Generator().manual_seed(1)

    def ids(n: int) -> list[int]:
        return torch.randint(1, V, (n,), generator=g).tolist()

    prompts = [ids(n) for n in (5, 9, 3, 1)]
    completions = [[ids(n) for n in ns] for ns in ((4, 7), (1, 6), (8, 2, 5), (3, 3))]
    return prompts, completions


def naive(
    model: torch.nn.Module, prompts: list[list[int]], completions: list[list[list[int]]]
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """One unpadded forward per prompt + completion; log-softmax over full logits.
    Returns the log-probs and, for each, its (group, completion) index."""
    values, where = [], []
    for i, (x, cs) in enumerate(zip(prompts, completions, strict=True)):
        for j, y in enumerate(cs):
            logits = model(torch.tensor([x + y])).logits[0].float()
            lp = logits.log_softmax(-1)[len(x) - 1 : -1].gather(1, torch.tensor(y)[:, None])
            values.append(lp.sum())
            where.append((i, j))
    return torch.stack(values), where


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("share", [True, False])
def test_values_and_gradients_match_unbatched_forward(arch: str, share: bool) -> None:
    model = tiny(arch)
    prompts, completions = groups()
    want, where = naive(model, prompts, completions)
    model.zero_grad()
    want.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    # a small logits budget forces several vocabulary chunks
    got = sequence_logps(
        model, collate(prompts, completions, pad_id=0), share_prompt=share, budget=4 * V * 3
    )
    vals = torch.stack([got[i, j] for i, j in where])
    assert torch.allclose(vals, want, atol=TOL, rtol=0)
    got.sum().backward()  # missing list items are 0 and carry no gradient
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[name], atol=TOL, rtol=0), name


def test_missing_list_items_score_zero() -> None:
    prompts, completions = groups()
    batch = collate(prompts, completions, pad_id=0)
    got = sequence_logps(tiny("llama"), batch)
    assert got.shape == (4, 3)
    # the TRL token count: each prompt once per completion it really has
    comp = sum(len(c) for cs in completions for c in cs)
    assert batch.tokens(shared=False) == 5 * 2 + 9 * 2 + 3 * 3 + 1 * 2 + comp
    assert batch.tokens(shared=True) == 5 + 9 + 3 + 1 + comp
    assert got[0, 2] == 0 and got[2, 2] != 0


def test_chunked_head_matches_log_softmax_with_bias() -> None:
    torch.manual_seed(3)
    h = torch.randn(11, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(13, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(13, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 13, (11,))
    want = (h @ w.T + b).log_softmax(-1).gather(1, t[:, None])[:, 0]
    g = torch.randn(11, dtype=torch.float64)
    want_grads = torch.autograd.grad((want * g).sum(), (h, w, b))
    got = ChunkedTokenLogps.apply(h, w, b, t, 4)
    assert torch.allclose(got.double(), want, atol=1e-6)
    got_grads = torch.autograd.grad((got.double() * g).sum(), (h, w, b))
    for a, e in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(a.double(), e, atol=1e-6)


def test_collate_pads_prompts_left_and_completions_right() -> None:
    b = collate([[5, 6], [7]], [[[1], [2, 3]], [[4, 4, 4], [9]]], pad_id=0, pad_to_multiple_of=4)
    assert b.prompt_ids.tolist() == [[0, 0, 5, 6], [0, 0, 0, 7]]
    assert b.completion_ids[1, 0].tolist() == [4, 4, 4, 0]
    assert b.lengths.tolist() == [[1, 2], [3, 1]]
    assert b.tokens(shared=True) == 3 + 7 and b.tokens(shared=False) == 6 + 7


def test_eager_attention_reads_the_shared_mask_as_additive() -> None:
    model = tiny("llama")
    model.set_attn_implementation("eager")
    prompts, completions = groups()
    want, where = naive(model, prompts, completions)
    got = sequence_logps(model, collate(prompts, completions, pad_id=0))
    vals = torch.stack([got[i, j] for i, j in where])
    assert torch.allclose(vals, want, atol=TOL, rtol=0)


def test_scaled_logits_go_through_the_models_scaling() -> None:
    """A model that scales its logits (Granite's logits_scaling, Gemma's soft cap) gets
    log-probs of the scaled logits, computed here by hand from the unscaled ones."""
    model = tiny("llama")
    prompts, completions = groups()
    plain = sequence_logps(model, collate(prompts, completions, pad_id=0))
    x, y = prompts[0], completions[0][0]
    logits = model(torch.tensor([x + y])).logits[0].float()[len(x) - 1 : -1]
    model.config.logits_scaling = 4.0
    model.config.final_logit_softcapping = 3.0
    capped = torch.tanh(logits / 4.0 / 3.0) * 3.0
    want = capped.log_softmax(-1).gather(1, torch.tensor(y)[:, None]).sum()
    got = sequence_logps(model, collate(prompts, completions, pad_id=0))
    assert torch.allclose(got[0, 0], want, atol=TOL)
    assert not torch.allclose(got[0, 0], plain[0, 0], atol=1e-3)
