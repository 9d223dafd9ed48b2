"""Listwise objectives over ranked lists of ``K`` completions of one prompt.

Every item ``i`` of a list gets the DPO implicit reward ``r_i = β log π(y_i)/π_ref(y_i)``
and a relevance score ``ψ_i`` (higher is better). Conventions shared by all three losses:

* **Padding.** Items with ``mask = False`` take no part: they are in no pair, no
  normaliser and no rank, so padding a list never changes its loss.
* **Ties.** Items with equal ``ψ`` form no pair (neither is preferred). Ranks used for
  DCG discounts are *tie-averaged* (a tie group shares the mean of the positions it
  occupies), so permuting a list together with its scores never changes its loss.
* **Scale.** Losses are sums over a list (not means), as in the papers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from prefkit.losses.base import ListInputs, Loss, register
from prefkit.losses.dpo import BETA


def rewards(x: ListInputs, beta: float) -> tuple[Tensor, Tensor]:
    """``(r, mask)``: implicit rewards ``β log π/π_ref`` (0 on padding) and the bool mask."""
    assert x.ref_logps is not None
    m = x.mask.bool()
    return torch.where(m, beta * (x.logps - x.ref_logps), torch.zeros_like(x.logps)), m


def better(x: ListInputs, m: Tensor) -> Tensor:
    """``(B, K, K)`` bool: item ``i`` is strictly preferred to item ``j``, both real."""
    s = x.scores
    return (s[:, :, None] > s[:, None, :]) & m[:, :, None] & m[:, None, :]


def positions(values: Tensor, m: Tensor) -> Tensor:
    """1-based rank of each item by ``values`` (descending) among the real items.

    Ties share the mean of their positions: ``1 + #{v_j > v_i} + #{j ≠ i: v_j = v_i}/2``.
    """
    v = values.detach()
    real = m[:, None, :]
    above = ((v[:, None, :] > v[:, :, None]) & real).sum(-1)
    tied = ((v[:, None, :] == v[:, :, None]) & real).sum(-1) - 1
    return 1 + above + tied / 2


def lambda_weights(x: ListInputs, m: Tensor, ranks: Tensor) -> Tensor:
    """``Δ_ij = |G_i - G_j| · |1/D(τ_i) - 1/D(τ_j)|``, ``G = 2^ψ - 1``, ``D(τ) = log2(1+τ)``."""
    gain = torch.where(m, torch.exp2(x.scores) - 1, torch.zeros_like(x.scores))
    disc = 1 / torch.log2(1 + ranks.to(gain.dtype))
    return (gain[:, :, None] - gain[:, None, :]).abs() * (disc[:, :, None] - disc[:, None, :]).abs()


def weighted_pairs(x: ListInputs, r: Tensor, m: Tensor, weight: Tensor) -> Tensor:
    """``-Σ_{ψ_i > ψ_j} w_ij log σ(r_i - r_j)`` per list."""
    pair_loss = -F.logsigmoid(r[:, :, None] - r[:, None, :])
    return torch.where(better(x, m), weight * pair_loss, torch.zeros_like(pair_loss)).sum((1, 2))


def pl(x: ListInputs, *, beta: float) -> Tensor:
    r, m = rewards(x, beta)
    s, k = x.scores, r.shape[-1]
    eye = torch.eye(k, dtype=torch.bool, device=r.device)
    # item i's Plackett-Luce choice set: itself and every real item not preferred to it
    allowed = ((s[:, None, :] <= s[:, :, None]) & m[:, None, :]) | eye
    choice = r[:, None, :].expand(-1, k, -1).masked_fill(~allowed, float("-inf"))
    term = r - torch.logsumexp(choice, dim=-1)
    chooses = better(x, m).any(-1)  # i is chosen over at least one remaining item
    return -torch.where(chooses, term, torch.zeros_like(term)).sum(-1)


def lipo(x: ListInputs, *, beta: float) -> Tensor:
    r, m = rewards(x, beta)
    return weighted_pairs(x, r, m, lambda_weights(x, m, positions(r, m)))


def rankdpo(x: ListInputs, *, beta: float) -> Tensor:
    r, m = rewards(x, beta)
    return weighted_pairs(x, r, m, lambda_weights(x, m, positions(x.scores, m)))


register(
    Loss(
        name="pl",
        fn=pl,
        kind="lists",
        reference=True,
        params={"beta": BETA},
        summary="Listwise DPO under the Plackett-Luce model of the ranking",
        formula="-Σ_i [r_i - log Σ_{j: ψ_j ≤ ψ_i} exp r_j],  r = β log π/π_ref",
        paper=(
            "Rafailov et al. 2023, Direct Preference Optimization (arXiv:2305.18290), "
            "App. A.3 (Plackett-Luce objective)"
        ),
        notes=(
            "Sum over items that beat at least one other item (the last choice is certain). "
            "Ties use Breslow's convention: a tied item's choice set holds its whole tie "
            "group and everything below. K = 2 without ties is exactly DPO."
        ),
    )
)

register(
    Loss(
        name="lipo",
        fn=lipo,
        kind="lists",
        reference=True,
        params={"beta": BETA},
        summary="LiPO-λ: pairwise DPO terms weighted by LambdaRank DCG deltas",
        formula=(
            "-Σ_{ψ_i>ψ_j} Δ_ij log σ(r_i - r_j),  Δ_ij = |G_i-G_j|·|1/D(τ_i)-1/D(τ_j)|, "
            "G = 2^ψ - 1, D(τ) = log2(1+τ), τ = rank by r"
        ),
        paper=(
            "Liu et al. 2024, LiPO: Listwise Preference Optimization through Learning-to-Rank "
            "(arXiv:2402.01878), LiPO-λ objective"
        ),
        notes=(
            "Ranks τ come from the current implicit rewards r (no gradient through them), "
            "tie-averaged. On a 2-list with ψ_1 > ψ_2: (2^ψ_1 - 2^ψ_2)(1 - 1/log2 3) × DPO."
        ),
    )
)

register(
    Loss(
        name="rankdpo",
        fn=rankdpo,
        kind="lists",
        reference=True,
        params={"beta": BETA},
        summary="RankDPO: pairwise DPO terms weighted by DCG deltas of the labelled ranking",
        formula=(
            "-Σ_{ψ_i>ψ_j} ΔDCG_ij log σ(r_i - r_j),  ΔDCG_ij = |G_i-G_j|·|1/D(τ_i)-1/D(τ_j)|, "
            "τ = rank by ψ"
        ),
        paper=(
            "Karthik et al. 2024, Scalable Ranked Preference Optimization for Text-to-Image "
            "Generation (arXiv:2410.18013), RankDPO objective"
        ),
        notes=(
            "Adapted from diffusion (the paper's per-image denoising-error differences become "
            "sequence log-ratios). Ranks τ come from the labels ψ (tie-averaged), so the "
            "weights are fixed per list; LiPO-λ ranks by the model instead. 2-list: same "
            "weight as lipo, (2^ψ_1 - 2^ψ_2)(1 - 1/log2 3)."
        ),
    )
)
