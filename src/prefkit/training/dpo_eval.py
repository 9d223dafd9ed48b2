"""What a DPO-family run has learned, read from summed completion log-probs.

Two accuracies are easy to confuse (Chen et al. 2024, "Preference Learning Algorithms Do
Not Learn Preference Rankings", arXiv:2405.19534, Remark 2.5):

* **implicit-reward accuracy** compares the DPO implicit rewards
  ``r(y) = β log π(y|x)/π_ref(y|x)`` of the chosen and the rejected completion; it is what
  trainers log (TRL's ``rewards/accuracies``) and what the DPO loss pushes up;
* **ranking accuracy** (their Def. 2.3) compares the likelihoods ``π(y_w|x) ≥ π(y_l|x)``
  themselves: does the model, used as a scorer, prefer the chosen completion?

The loss can be driven down while the ranking never flips, because a pair the reference
ranks wrongly by ``c`` nats flips only once its DPO loss falls below ``-log σ(βc)`` (their
Thm. 4.1). :func:`pair_metrics` reports both, the reference model's ranking accuracy, and
the *idealised* ranking accuracy that a perfect optimum of the DPO/RLHF objective would
reach (their Thm. 3.1 / Cor. 3.3). :func:`list_metrics` does the same over ranked lists,
and :func:`sampled_kl` estimates how far the policy has moved, ``KL(π ‖ π_ref)``, from its
own samples.

Conventions. Ties in the implicit reward count ½. Ties in likelihood count as correct,
as in Chen et al.'s Def. 2.3 (``≥``); the idealised accuracy uses the same ``≥``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prefkit.errors import PrefkitError
from prefkit.training.logprobs import collate, eval_mode, sequence_logps


# --- validation -----------------------------------------------------------------------------
def _array(x: Any, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != len(shape) or any(s not in (None, d) for s, d in zip(shape, a.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise PrefkitError(f"{name} must have shape {want}, got {a.shape}")
    return a


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise PrefkitError(f"beta must be > 0, got {beta}")


def _accuracy(diff: np.ndarray, *, ties: float) -> np.ndarray:
    """1 where ``diff > 0``, ``ties`` where it is 0, else 0."""
    return np.where(diff > 0, 1.0, np.where(diff == 0, ties, 0.0))


# --- pairs ----------------------------------------------------------------------------------
def pair_metrics(
    policy: np.ndarray,
    ref: np.ndarray | None,
    strength: np.ndarray | None,
    *,
    beta: float,
) -> dict[str, float]:
    """Accuracies and implicit rewards of ``N`` pairs.

    Parameters
    ----------
    policy, ref
        ``(N, 2)`` summed completion log-probs ``[chosen, rejected]`` under the policy and
        the reference; ``ref=None`` for reference-free training (only the
        reference-free metrics are returned).
    strength
        ``(N,)`` probability ``α`` that the chosen completion is preferred (a vote share;
        1.0 when unknown or unanimous). ``None`` means 1.0 everywhere.
    beta
        The β of the implicit reward ``r = β log π/π_ref``.

    Returns
    -------
    dict
        ``ranking_accuracy`` (share with ``log π(y_w) ≥ log π(y_l)``), ``chosen_logp`` and
        ``rejected_logp`` (means); with a reference also ``implicit_reward_accuracy``
        (share with ``r(y_w) > r(y_l)``, ties ½), ``reward_margin``, ``chosen_reward``,
        ``rejected_reward`` (means), ``reference_ranking_accuracy`` and
        ``idealized_ranking_accuracy``: the share of pairs the optimum
        ``π*(y) ∝ π_ref(y) exp(r*(y)/β)`` of the RLHF/DPO objective ranks correctly,
        i.e. ``π_ref(y_w)/π_ref(y_l) · (α/(1−α))^{1/β} ≥ 1`` (Chen et al. 2024,
        arXiv:2405.19534, Thm. 3.1 and Cor. 3.3, with the Bradley–Terry ``α`` of the
        true reward ``r*``). ``α = 1`` is always correct, ``α = ½`` leaves the reference's
        ranking; with ``strength`` 1.0 everywhere it is 1 by construction.
    """
    _check_beta(beta)
    pol = _array(policy, "policy", (None, 2))
    n = len(pol)
    if n == 0:
        raise PrefkitError("pair_metrics needs at least one pair")
    out = {
        "ranking_accuracy": float(_accuracy(pol[:, 0] - pol[:, 1], ties=1.0).mean()),
        "chosen_logp": float(pol[:, 0].mean()),
        "rejected_logp": float(pol[:, 1].mean()),
    }
    if ref is None:
        return out
    rf = _array(ref, "ref", (n, 2))
    alpha = np.ones(n) if strength is None else _array(strength, "strength", (n,))
    if np.any((alpha < 0) | (alpha > 1)):
        raise PrefkitError("strength must lie in [0, 1] (the probability chosen is preferred)")
    reward = beta * (pol - rf)
    margin = reward[:, 0] - reward[:, 1]
    with np.errstate(divide="ignore"):
        logit = np.log(alpha) - np.log1p(-alpha)  # ±inf at α = 1 / α = 0
    ideal = (rf[:, 0] - rf[:, 1]) + logit / beta  # log π*(y_w) - log π*(y_l)
    out |= {
        "implicit_reward_accuracy": float(_accuracy(margin, ties=0.5).mean()),
        "reward_margin": float(margin.mean()),
        "chosen_reward": float(reward[:, 0].mean()),
        "rejected_reward": float(reward[:, 1].mean()),
        "reference_ranking_accuracy": float(_accuracy(rf[:, 0] - rf[:, 1], ties=1.0).mean()),
        "idealized_ranking_accuracy": float(_accuracy(ideal, ties=1.0).mean()),
    }
    return out


# --- ranked lists ---------------------------------------------------------------------------
def list_metrics(
    policy: np.ndarray,
    ref: np.ndarray | None,
    scores: np.ndarray,
    mask: np.ndarray,
    *,
    beta: float,
) -> dict[str, float]:
    """Pairwise and top-1 accuracies over ``N`` ranked lists of up to ``K`` items.

    Every ordered pair ``(i, j)`` inside a list with ``scores[i] > scores[j]`` counts once
    (pairs with equal scores are skipped; all pairs of all lists are pooled, so longer
    lists weigh more). Lists whose items all share one score have no pairs and are left
    out, of the top-1 accuracies too.

    Parameters
    ----------
    policy, ref
        ``(N, K)`` summed completion log-probs (``ref=None`` for reference-free training).
    scores
        ``(N, K)`` relevance scores, higher is better.
    mask
        ``(N, K)`` True where the item exists; padded entries may hold anything.
    beta
        The β of the implicit reward.

    Returns
    -------
    dict
        ``ranking_accuracy`` (share of pairs with ``log π(y_i) ≥ log π(y_j)``),
        ``top1_ranking_accuracy`` (a best-scored item has the highest ``log π``, ties
        correct), ``pairs`` and ``lists`` (counts); with a reference also
        ``implicit_reward_accuracy`` (ties ½), ``reference_ranking_accuracy`` and
        ``top1_accuracy`` (a best-scored item has the highest implicit reward: 1 if
        strictly above every other item, ½ on a tie, else 0).
    """
    _check_beta(beta)
    pol = _array(policy, "policy", (None, None))
    shape = pol.shape
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise PrefkitError(f"mask must have shape {shape}, got {m.shape}")
    s = np.where(m, _array(scores, "scores", shape), 0.0)
    pol = np.where(m, pol, 0.0)
    both = m[:, :, None] & m[:, None, :]
    better = both & (s[:, :, None] > s[:, None, :])  # (N, K, K): item i outranks item j
    n_pairs = int(better.sum())
    if n_pairs == 0:
        raise PrefkitError("list_metrics found no pair of items with different scores")
    has_pairs = better.any(axis=(1, 2))
    best = m & (s == np.where(m, s, -np.inf).max(axis=1, keepdims=True))

    def pairwise(x: np.ndarray, ties: float) -> float:
        return float(_accuracy(x[:, :, None] - x[:, None, :], ties=ties)[better].mean())

    def top1(x: np.ndarray, ties: float) -> float:
        top = np.where(best, x, -np.inf).max(axis=1)
        rest = np.where(m & ~best, x, -np.inf).max(axis=1)
        return float(_accuracy(top - rest, ties=ties)[has_pairs].mean())

    out = {
        "ranking_accuracy": pairwise(pol, 1.0),
        "top1_ranking_accuracy": top1(pol, 1.0),
        "pairs": float(n_pairs),
        "lists": float(has_pairs.sum()),
    }
    if ref is None:
        return out
    rf = np.where(m, _array(ref, "ref", shape), 0.0)
    reward = beta * (pol - rf)
    out |= {
        "implicit_reward_accuracy": pairwise(reward, 0.5),
        "reference_ranking_accuracy": pairwise(rf, 1.0),
        "top1_accuracy": top1(reward, 0.5),
    }
    return out


# --- sampling and KL ------------------------------------------------------------------------
def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _eos_set(model: nn.Module, eos_token_id: int | Sequence[int] | None) -> set[int]:
    eos: Any = eos_token_id
    if eos is None:
        eos = getattr(model, "generation_config", None)
        eos = getattr(eos, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(e) for e in eos}


# Explicit neutral values: `generate` fills unset options from the model's own
# generation_config (which may carry top_k=50, a repetition penalty, ...).
_PURE_SAMPLING = {
    "do_sample": True,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_new_tokens": 0,
}


def sample_completions(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    samples: int = 4,
    max_new_tokens: int = 32,
    seed: int = 0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
) -> list[list[list[int]]]:
    """``samples`` completions per prompt drawn from the model's own distribution.

    ``model.generate`` with pure ancestral sampling (temperature 1, no top-k/top-p or
    other warpers), seeded: the global torch RNG is left as it was. Prompts of equal
    length are generated together, without padding. A completion ends at its first EOS
    (kept) or after ``max_new_tokens`` tokens. ``eos_token_id=None`` uses the model's
    ``generation_config.eos_token_id`` (none: never stop early).
    """
    if samples < 1 or max_new_tokens < 1:
        raise PrefkitError("samples and max_new_tokens must be >= 1")
    if any(len(p) == 0 for p in prompts):
        raise PrefkitError("every prompt needs at least one token to sample from")
    eos = _eos_set(model, eos_token_id)
    dev = _device(model)
    out: list[list[list[int]]] = [[] for _ in prompts]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    cuda = list(range(torch.cuda.device_count())) if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), eval_mode(model), torch.no_grad():
        torch.manual_seed(seed)
        for length, idx in sorted(by_len.items()):
            x = torch.tensor([list(prompts[i]) for i in idx], dtype=torch.long, device=dev)
            x = x.repeat_interleave(samples, 0)
            seqs = model.generate(  # type: ignore[operator]
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=max_new_tokens,
                eos_token_id=sorted(eos) or None,
                pad_token_id=pad_token_id,
                **_PURE_SAMPLING,
            )
            new = seqs[:, length:].tolist()
            for r, row in enumerate(new):
                stop = next((t + 1 for t, tok in enumerate(row) if tok in eos), len(row))
                out[idx[r // samples]].append(row[:stop])
    return out


def sampled_kl(
    policy_model: nn.Module,
    ref_model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    samples: int = 4,
    max_new_tokens: int = 32,
    seed: int = 0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    batch_size: int = 8,
) -> dict[str, float]:
    """Monte-Carlo ``KL(π ‖ π_ref) = E_{y∼π(·|x)}[log π(y|x) − log π_ref(y|x)]``.

    Completions are sampled from the policy (:func:`sample_completions`); both log-probs
    come from :func:`prefkit.training.logprobs.sequence_logps`, ``batch_size`` prompts
    (each with its ``samples`` completions) per forward. The estimate is unbiased for the
    sequence-level KL of the truncated sampler (at most ``max_new_tokens`` tokens),
    averaged over the prompts.

    Returns
    -------
    dict
        ``kl`` (mean over all samples), ``kl_se`` (its standard error, sample standard
        deviation / √n), ``length`` (mean completion length in tokens) and ``samples``
        (n).
    """
    if batch_size < 1:
        raise PrefkitError("batch_size must be >= 1")
    comps = sample_completions(
        policy_model,
        prompts,
        samples=samples,
        max_new_tokens=max_new_tokens,
        seed=seed,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    diffs = []
    with eval_mode(policy_model, ref_model), torch.no_grad():
        for s in range(0, len(prompts), batch_size):
            batch = collate(prompts[s : s + batch_size], comps[s : s + batch_size], pad_token_id)
            lp = sequence_logps(policy_model, batch.to(_device(policy_model)))
            lr = sequence_logps(ref_model, batch.to(_device(ref_model)))
            diffs.append((lp.double().cpu() - lr.double().cpu()).flatten().numpy())
    kl = np.concatenate(diffs)
    n = len(kl)
    se = float(kl.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    lengths = [len(c) for g in comps for c in g]
    return {
        "kl": float(kl.mean()),
        "kl_se": se,
        "length": float(np.mean(lengths)),
        "samples": float(n),
    }
