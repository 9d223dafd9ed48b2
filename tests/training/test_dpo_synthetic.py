"""The known-reward synthetic task: exact rewards, Bradley–Terry labels, biased models."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn
from transformers import LlamaForCausalLM

from prefkit.errors import PrefkitError
from prefkit.training.synthetic import (
    KnownRewardTask,
    bt_probability,
    make_pairs,
    mean_true_reward,
)
from tinylm import tiny_lm

VOCAB = 64


def lm() -> LlamaForCausalLM:
    return tiny_lm(0, VOCAB, head_std=0.3)  # far from uniform


def head_with_bias(model: LlamaForCausalLM, bias: torch.Tensor) -> LlamaForCausalLM:
    """Replace the LM head by zero weights plus ``bias``: tokens become i.i.d. softmax(bias)."""
    head = nn.Linear(model.config.hidden_size, VOCAB, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(bias)
    model.lm_head = head
    return model


PROMPTS = [[1, 2, 3], [4, 5], [6, 7, 8], [9, 10]]


# --- the reward -----------------------------------------------------------------------------
def test_reward_is_exact_on_hand_examples() -> None:
    task = KnownRewardTask(10, good_fraction=0.5, seed=0, special_ids=(0, 1))
    assert len(task.good) == 4 and task.good <= set(range(2, 10))  # round(0.5 · 8)
    g = sorted(task.good)
    b = sorted(set(range(2, 10)) - task.good)
    assert task.reward([g[0], b[0], g[1], 0]) == pytest.approx(2 / 3, abs=1e-15)  # 0 not counted
    assert task.reward(g) == 1.0 and task.reward(b) == 0.0
    assert task.reward([]) == 0.0 and task.reward([0, 1, 1]) == 0.0
    assert KnownRewardTask(10, seed=0, special_ids=(0, 1)).good == task.good  # seeded
    with pytest.raises(PrefkitError, match="token ids"):
        task.reward([10])
    with pytest.raises(PrefkitError, match="special_ids"):
        KnownRewardTask(10, special_ids=(12,))


def test_bt_probability() -> None:
    assert bt_probability(0.3, 0.1) == pytest.approx(1 / (1 + np.exp(-3)), abs=1e-15)
    assert bt_probability(0.2, 0.0) == 1.0 and bt_probability(-0.2, 0.0) == 0.0
    assert bt_probability(-50.0, 0.01) == 0.0 and bt_probability(50.0, 0.01) == 1.0


# --- pairs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def task() -> KnownRewardTask:
    return KnownRewardTask(VOCAB, good_fraction=0.5, seed=1)


def test_make_pairs_noiseless_labels_follow_the_true_reward(task: KnownRewardTask) -> None:
    g = make_pairs(task, lm(), PROMPTS, per_prompt=6, max_new_tokens=8, tau=0.0, seed=2)
    assert len(g) > 0 and not g.listwise
    for pid, prompt, (c, r), s in zip(
        g.ids, g.prompt_ids, g.completion_ids, g.strength, strict=True
    ):
        assert re.fullmatch(r"p\d+-\d+-\d+", pid)
        assert prompt == PROMPTS[int(pid[1 : pid.index("-")])]
        assert len(c) == len(r) == 8
        assert task.reward(c) > task.reward(r)  # planted: τ = 0 never flips
        assert s == 1.0
    assert len(set(g.ids)) == len(g)
    assert len(g) <= len(PROMPTS) * 15  # C(6, 2) pairs per prompt, minus reward ties


def test_make_pairs_bradley_terry_draws_are_calibrated(task: KnownRewardTask) -> None:
    tau = 0.1
    g = make_pairs(task, lm(), PROMPTS * 5, per_prompt=8, max_new_tokens=12, tau=tau)
    diff = np.array([task.reward(c) - task.reward(r) for c, r in g.completion_ids])
    assert np.all(diff != 0)  # equal-reward pairs dropped
    # strength is the BT probability of the drawn winner, recomputed independently
    gold = 1 / (1 + np.exp(-diff / tau))
    np.testing.assert_allclose(g.strength, gold, rtol=0, atol=1e-12)
    assert np.all((g.strength > 0) & (g.strength <= 1))
    # Calibration: the better completion wins with probability σ(|Δ|/τ) per pair, so the
    # share of wins by the better one matches the mean of those probabilities. Tolerance:
    # 4 standard errors of a sum of independent Bernoullis.
    p_better = 1 / (1 + np.exp(-np.abs(diff) / tau))
    se = np.sqrt(np.sum(p_better * (1 - p_better))) / len(diff)
    assert len(diff) > 300 and 0.55 < p_better.mean() < 0.95  # labels are genuinely noisy
    assert abs(np.mean(diff > 0) - p_better.mean()) < 4 * se
    # same seed -> same data
    again = make_pairs(task, lm(), PROMPTS * 5, per_prompt=8, max_new_tokens=12, tau=tau)
    assert again.ids == g.ids and again.fingerprint() == g.fingerprint()


def test_make_pairs_errors(task: KnownRewardTask) -> None:
    with pytest.raises(PrefkitError, match="per_prompt"):
        make_pairs(task, lm(), PROMPTS, per_prompt=1)
    flat = head_with_bias(lm(), torch.zeros(VOCAB))
    one = KnownRewardTask(VOCAB, good_fraction=1.0)  # every completion has reward 1
    with pytest.raises(PrefkitError, match="no pairs"):
        make_pairs(one, flat, PROMPTS, per_prompt=3, max_new_tokens=4)


# --- the mean true reward -------------------------------------------------------------------
def test_mean_true_reward_of_a_biased_head(task: KnownRewardTask) -> None:
    good = torch.zeros(VOCAB, dtype=torch.bool)
    good[sorted(task.good)] = True
    k, c, n_tok = int(good.sum()), 2.0, 12
    neutral = head_with_bias(lm(), torch.zeros(VOCAB))
    biased = head_with_bias(lm(), c * good.float())
    # Golden: with zero weights the tokens are i.i.d. softmax(bias), so the expected reward
    # (share of good tokens; no special ids) is the good set's probability mass.
    p_neutral = k / VOCAB
    p_biased = k * np.exp(c) / (k * np.exp(c) + VOCAB - k)
    samples = 32
    n_seq = len(PROMPTS) * samples
    got = {}
    for name, model, p in (("neutral", neutral, p_neutral), ("biased", biased, p_biased)):
        got[name] = mean_true_reward(task, model, PROMPTS, samples=samples, max_new_tokens=n_tok)
        se = np.sqrt(p * (1 - p) / (n_seq * n_tok))
        assert abs(got[name] - p) < 4 * se  # tolerance: 4 binomial standard errors
    assert got["biased"] > got["neutral"] + 0.2
