"""DPO evaluation metrics: hand-computed values, and a sampled KL against exact enumeration."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from prefkit.errors import PrefkitError
from prefkit.training.dpo_eval import list_metrics, pair_metrics, sample_completions, sampled_kl
from tinylm import tiny_lm

# --- pair_metrics ---------------------------------------------------------------------------
# Rows: policy [chosen, rejected], ref [chosen, rejected], strength α. β = 0.5.
POLICY = np.array([[-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.0], [-5.0, -4.0]])
REF = np.array([[-1.5, -1.5], [-2.0, -2.0], [-2.0, -3.0], [-5.0, -4.0]])
ALPHA = np.array([1.0, 0.5, 0.5, 0.6])
BETA = 0.5


def test_pair_metrics_hand_values() -> None:
    m = pair_metrics(POLICY, REF, ALPHA, beta=BETA)
    # rewards β(π − ref): chosen [0.25, -0.5, 0, 0], rejected [-0.25, 0.5, 0.5, 0]
    # margins [0.5, -1, -0.5, 0] -> accuracy (1 + 0 + 0 + ½) / 4 (last one a tie)
    assert m["implicit_reward_accuracy"] == pytest.approx(0.375, abs=1e-12)
    assert m["reward_margin"] == pytest.approx(-0.25, abs=1e-12)
    assert m["chosen_reward"] == pytest.approx(-0.0625, abs=1e-12)
    assert m["rejected_reward"] == pytest.approx(0.1875, abs=1e-12)
    # log π(y_w) ≥ log π(y_l): [T, F, T (tie), F]; reference: [T (tie), T (tie), T, F]
    assert m["ranking_accuracy"] == 0.5
    assert m["reference_ranking_accuracy"] == 0.75
    assert m["chosen_logp"] == pytest.approx(-2.75) and m["rejected_logp"] == pytest.approx(-2.25)


def test_idealized_ranking_accuracy_matches_the_papers_condition() -> None:
    # Golden: Chen et al. 2024 (arXiv:2405.19534) Thm. 3.1 written as in the paper,
    # π_ref(y_w)/π_ref(y_l) · (α/(1−α))^{1/β} ≥ 1, evaluated row by row in plain floats.
    def correct(rw: float, rl: float, a: float) -> bool:
        if a == 1.0:
            return True  # (α/(1−α)) = ∞
        return math.exp(rw - rl) * (a / (1 - a)) ** (1 / BETA) >= 1

    gold = np.mean([correct(rw, rl, a) for (rw, rl), a in zip(REF, ALPHA, strict=True)])
    m = pair_metrics(POLICY, REF, ALPHA, beta=BETA)
    # α=1 always right; α=½ decided by the reference (a tie, then right); the last row's
    # reference is wrong by 1 nat and (0.6/0.4)^2 = 2.25 < e, so it stays wrong.
    assert gold == 0.75
    assert m["idealized_ranking_accuracy"] == gold


def test_idealized_edge_cases() -> None:
    ref = np.array([[-3.0, -1.0]])  # reference wrong by 2 nats
    policy = np.zeros((1, 2))
    assert pair_metrics(policy, ref, np.array([1.0]), beta=0.1)["idealized_ranking_accuracy"] == 1
    assert pair_metrics(policy, ref, np.array([0.5]), beta=0.1)["idealized_ranking_accuracy"] == 0
    # α = 0.6, β = 0.1: logit(0.6)/0.1 = 4.05 > 2 -> the optimum flips the pair
    assert pair_metrics(policy, ref, np.array([0.6]), beta=0.1)["idealized_ranking_accuracy"] == 1
    # strength None means 1.0 everywhere
    assert pair_metrics(policy, ref, None, beta=0.1)["idealized_ranking_accuracy"] == 1


def test_reference_free_pair_metrics() -> None:
    m = pair_metrics(POLICY, None, ALPHA, beta=BETA)
    assert set(m) == {"ranking_accuracy", "chosen_logp", "rejected_logp"}
    assert m["ranking_accuracy"] == 0.5


def test_pair_metrics_rejects_bad_input() -> None:
    with pytest.raises(PrefkitError, match="shape"):
        pair_metrics(POLICY[:, :1], REF, ALPHA, beta=BETA)
    with pytest.raises(PrefkitError, match="shape"):
        pair_metrics(POLICY, REF[:3], ALPHA, beta=BETA)
    with pytest.raises(PrefkitError, match="strength"):
        pair_metrics(POLICY, REF, ALPHA + 1, beta=BETA)
    with pytest.raises(PrefkitError, match="beta"):
        pair_metrics(POLICY, REF, ALPHA, beta=0.0)


# --- list_metrics ---------------------------------------------------------------------------
NAN = float("nan")
L_POLICY = np.array([[-1.0, -2.0, -3.0], [-1.0, -1.0, NAN], [-2.0, -2.0, -1.0]])
L_REF = np.array([[-1.0, -1.0, -4.0], [-1.0, -2.0, NAN], [-2.0, -3.0, -1.0]])
L_SCORES = np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 5.0], [0.0, 3.0, 3.0]])
L_MASK = np.array([[True, True, True], [True, True, False], [True, True, True]])


def test_list_metrics_hand_values() -> None:
    m = list_metrics(L_POLICY, L_REF, L_SCORES, L_MASK, beta=1.0)
    # list 0: rewards [0, -1, 1]; pairs (0>1) T, (0>2) F, (1>2) F.
    # list 1: equal scores among real items (the padded 5.0 ignored) -> no pairs, no top-1.
    # list 2: rewards [0, 1, 0]; pairs (1>0) T, (2>0) tie ½; (1, 2) equal scores, skipped.
    assert m["pairs"] == 5 and m["lists"] == 2
    assert m["implicit_reward_accuracy"] == pytest.approx(2.5 / 5, abs=1e-12)
    assert m["ranking_accuracy"] == 1.0  # every pair has log π(better) ≥ log π(worse)
    assert m["reference_ranking_accuracy"] == pytest.approx(4 / 5, abs=1e-12)
    # top-1: list 0 best item reward 0 < 1 -> 0; list 2 best {1, 2} max 1 > 0 -> 1
    assert m["top1_accuracy"] == 0.5
    assert m["top1_ranking_accuracy"] == 1.0


def test_list_metrics_on_pairs_agree_with_pair_metrics() -> None:
    scores = np.tile([1.0, 0.0], (len(POLICY), 1))
    mask = np.ones_like(scores, dtype=bool)
    lm = list_metrics(POLICY, REF, scores, mask, beta=BETA)
    pm = pair_metrics(POLICY, REF, None, beta=BETA)
    for k in ("implicit_reward_accuracy", "ranking_accuracy", "reference_ranking_accuracy"):
        assert lm[k] == pytest.approx(pm[k], abs=1e-12)
    assert lm["top1_accuracy"] == pm["implicit_reward_accuracy"]  # K = 2: top-1 is the pair


def test_list_metrics_reference_free_and_errors() -> None:
    m = list_metrics(L_POLICY, None, L_SCORES, L_MASK, beta=1.0)
    assert set(m) == {"ranking_accuracy", "top1_ranking_accuracy", "pairs", "lists"}
    with pytest.raises(PrefkitError, match="no pair"):
        list_metrics(L_POLICY, L_REF, np.ones((3, 3)), L_MASK, beta=1.0)
    with pytest.raises(PrefkitError, match="mask"):
        list_metrics(L_POLICY, L_REF, L_SCORES, L_MASK[:, :2], beta=1.0)


# --- sampling and KL ------------------------------------------------------------------------
VOCAB = 12


def exact_two_token_kl(policy: LlamaForCausalLM, ref: LlamaForCausalLM, prompt: list[int]) -> float:
    """KL(π‖π_ref) over all VOCAB² two-token continuations, by full enumeration."""

    def logp(model: LlamaForCausalLM) -> np.ndarray:
        x = torch.tensor([[*prompt, t] for t in range(VOCAB)])
        with torch.no_grad():
            lsm = torch.log_softmax(model(input_ids=x).logits.double(), -1)
        first = lsm[0, len(prompt) - 1]  # (V,) log π(y1 | x)
        second = lsm[:, len(prompt)]  # (V, V) log π(y2 | x, y1)
        return (first[:, None] + second).numpy()

    lp, lr = logp(policy), logp(ref)
    return float((np.exp(lp) * (lp - lr)).sum())


@pytest.fixture(scope="module")
def models() -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    return tiny_lm(0, VOCAB, 0.3), tiny_lm(1, VOCAB, 0.3)


def test_sampled_kl_matches_exact_enumeration(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
) -> None:
    policy, ref = models
    prompts = [[1, 5, 7], [4, 2]]
    exact = np.mean([exact_two_token_kl(policy, ref, p) for p in prompts])
    est = sampled_kl(policy, ref, prompts, samples=400, max_new_tokens=2, seed=3)
    assert est["samples"] == 800 and est["length"] == 2.0
    assert exact > 0.2 and est["kl"] > 0
    # Tolerance: 4 Monte-Carlo standard errors (false-failure rate ~6e-5); the test has
    # power because the standard error is under a tenth of the KL.
    assert est["kl_se"] < 0.1 * exact
    assert abs(est["kl"] - exact) < 4 * est["kl_se"]


def test_sampled_kl_is_exactly_zero_for_the_same_weights(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
) -> None:
    policy, _ = models
    est = sampled_kl(policy, copy.deepcopy(policy), [[1, 2, 3]], samples=8, max_new_tokens=4)
    assert est["kl"] == 0.0 and est["kl_se"] == 0.0


def test_sample_completions_seeded_eos_and_rng_untouched(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
) -> None:
    policy, _ = models
    prompts = [[1, 2], [3, 4, 5], [6, 7]]
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = sample_completions(policy, prompts, samples=16, max_new_tokens=6, seed=7, eos_token_id=3)
    after = torch.rand(3)
    assert torch.equal(before, after)  # the global RNG stream is not consumed
    b = sample_completions(policy, prompts, samples=16, max_new_tokens=6, seed=7, eos_token_id=3)
    assert a == b
    assert [len(g) for g in a] == [16, 16, 16]
    comps = list(itertools.chain.from_iterable(a))
    for c in comps:  # ends at its first EOS, or runs to max_new_tokens without one
        assert (3 not in c[:-1]) and (c[-1] == 3 or len(c) == 6)
    assert any(c[-1] == 3 for c in comps) and any(len(c) == 6 for c in comps)
    with pytest.raises(PrefkitError, match="prompt"):
        sample_completions(policy, [[]], samples=1)


def test_sampling_ignores_the_models_own_generation_settings(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
) -> None:
    policy, _ = models
    tweaked = copy.deepcopy(policy)
    cfg = tweaked.generation_config
    cfg.do_sample, cfg.top_k, cfg.temperature, cfg.repetition_penalty = True, 2, 0.5, 1.5
    prompts = [[1, 2, 3]]
    plain = sample_completions(policy, prompts, samples=32, max_new_tokens=5, seed=1)
    assert sample_completions(tweaked, prompts, samples=32, max_new_tokens=5, seed=1) == plain
