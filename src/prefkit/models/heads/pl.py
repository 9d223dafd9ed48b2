"""Listwise Plackett–Luce reward head (Plackett 1975, "The analysis of permutations",
Applied Statistics 24(2); Luce 1959, "Individual choice behavior"), as used for reward
models from K-wise comparisons by Zhu, Jordan and Jiao 2023 ("Principled reinforcement
learning with human feedback from pairwise or K-wise comparisons", ICML).

A ranking of ``K`` items is read as ``K − 1`` successive choices: the best item is chosen
from all of them with probability ``π_j / Σ_k π_k`` (``π = exp(r)``), the second from the
rest, and so on. The reward is ``r(x) = w·g(x)`` as in :mod:`prefkit.models.heads.bt`.

Ties (items sharing a tier; tier 1 is best) are not part of Plackett–Luce. With ``W_t =
{k : tier(k) > t}`` the items ranked strictly below tier ``t`` and ``T_t`` tier ``t``
itself, each item ``j`` in tier ``t`` contributes ``log π_j − log D_j`` where

* ``ties = "exclude"`` (default): ``D_j = π_j + Σ_{k ∈ W_t} π_k``. Each member of a tier
  is chosen against everything below it, and its tier-mates are left out of its
  denominator, so the order within a tier carries no information (the listwise analogue
  of ``bt``'s ``ties = "skip"``). A bottom tier contributes ``log π_j − log π_j = 0``.
  This is a pseudo-likelihood: the terms of a tier are not one joint choice event.
* ``ties = "breslow"``: ``D_j = Σ_{k ∈ T_t ∪ W_t} π_k``, Breslow's (1974, "Covariance
  analysis of censored survival data", Biometrics 30(1)) approximation for tied events in
  Cox's partial likelihood, which Plackett–Luce is: every tied item is chosen from the
  full risk set, tier-mates included, so ties pull tier-mates' rewards together.

Without ties both give the exact Plackett–Luce likelihood, and a two-item list is the
Bradley–Terry loss ``−log σ(r_a − r_b)``. The loss is the mean over lists of each list's
negative log-likelihood, optionally (``normalize``) divided by the list's ``K − 1``.

Vectorised: items are sorted by (list, tier descending), laid out in a padded
``(n_lists, max_len)`` matrix and the denominators read from one cumulative
``logcumsumexp`` along each row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from prefkit.models.heads.base import Head, HeadParam, ListBatch, register
from prefkit.models.heads.bt import MLP_PARAMS, scorer

TIES = ("exclude", "breslow")


def pl_log_likelihood(
    r: Tensor, list_id: Tensor, tier: Tensor, n_lists: int, ties: str = "exclude"
) -> tuple[Tensor, Tensor]:
    """Per-list Plackett–Luce log-likelihood and list sizes.

    Parameters
    ----------
    r
        Rewards ``(L,)`` of the ranked items (flattened lists).
    list_id
        ``(L,)`` long, the list of each item, in ``0..n_lists-1``.
    tier
        ``(L,)`` long, 1 = best; equal tiers within a list are ties.
    n_lists
        Number of lists.
    ties
        ``"exclude"`` or ``"breslow"`` (see the module docstring).

    Returns
    -------
    (loglik, size)
        ``(n_lists,)`` log-likelihood of each list and ``(n_lists,)`` its number of items.
    """
    L = r.shape[0]
    dev = r.device
    # Sort by list, then tier descending (worst first): the items a choice is made
    # against are a prefix of the item's row.
    key = list_id * (int(tier.max()) + 1) + (int(tier.max()) - tier) if L else list_id
    order = torch.argsort(key, stable=True)  # (L,)
    lid, tr, rs = list_id[order], tier[order], r[order]  # (L,)
    size = torch.bincount(lid, minlength=n_lists)  # (n_lists,)
    start = torch.cumsum(size, 0) - size  # (n_lists,) flat index of each list's first item
    idx = torch.arange(L, device=dev)  # (L,)
    pos = idx - start[lid]  # (L,) position within the row
    max_len = int(size.max()) if L else 0
    # Padding sits after each row's items, so no prefix that is read includes it.
    M = r.new_zeros((n_lists, max_len))  # (n_lists, max_len)
    M = M.index_put((lid, pos), rs)
    C = torch.logcumsumexp(M, dim=1)[lid, pos]  # (L,) logsumexp of the items up to this one
    # Tier groups (runs of equal (list, tier)) in the sorted order.
    new = torch.ones(L, dtype=torch.bool, device=dev)
    new[1:] = (lid[1:] != lid[:-1]) | (tr[1:] != tr[:-1])
    first = torch.cummax(torch.where(new, idx, torch.zeros_like(idx)), 0).values  # (L,)
    end = torch.zeros(L, dtype=torch.bool, device=dev)
    end[:-1] = new[1:]
    if L:
        end[-1] = True
    big = torch.full_like(idx, L)
    last = torch.flip(torch.cummin(torch.flip(torch.where(end, idx, big), [0]), 0).values, [0])
    if ties == "breslow":
        denom = C[last]  # (L,) the whole tier and everything below
    else:
        below = first > start[lid]  # (L,) some item ranks strictly below this tier
        worse = torch.where(below, C[(first - 1).clamp_min(0)], torch.zeros_like(rs))  # (L,)
        denom = torch.where(below, torch.logaddexp(rs, worse), rs)
    ll = r.new_zeros(n_lists).index_add(0, lid, rs - denom)  # (n_lists,)
    return ll, size


@register
class PlackettLuce(Head):
    name = "pl"
    kind = "lists"
    paper = "Plackett 1975; Luce 1959; Zhu, Jordan & Jiao 2023 (K-wise reward models)"
    summary = "listwise Plackett-Luce on ranked lists; ties excluded or Breslow"
    params: ClassVar[Mapping[str, HeadParam]] = {
        **MLP_PARAMS,
        "normalize": HeadParam(bool, False, "divide each list's loss by its items - 1"),
        "ties": HeadParam(
            str, "exclude", "tied tiers: exclude tier-mates, or breslow", choices=TIES
        ),
    }

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        hp = self.hparams
        self.net = scorer(dim, hp["hidden"], 1, hp["dropout"])

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        return self.net(x).squeeze(-1)

    def loss(self, batch: ListBatch) -> Tensor:
        n_lists = int(batch.list_id.max()) + 1 if len(batch.list_id) else 0
        if n_lists == 0:
            return batch.x.sum() * 0.0
        ll, size = pl_log_likelihood(
            self.reward(batch.x), batch.list_id, batch.tier, n_lists, self.hparams["ties"]
        )
        nll = -ll  # (n_lists,)
        if self.hparams["normalize"]:
            nll = nll / (size - 1).clamp_min(1).to(nll.dtype)
        present = size > 0  # ids are dense in training batches; guard anyway
        return nll[present].mean()
