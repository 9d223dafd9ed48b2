"""Bradley–Terry reward head (Bradley and Terry 1952; as a reward model, Ouyang et al. 2022).

``r(x) = w·g(x)`` with ``g`` the identity (``hidden = 0``) or a one-hidden-layer MLP, and
``P(a ≻ b) = σ(r_a − r_b)``. The loss is the negative log-likelihood of the decisive
judgments, with two common options:

* ``margin``: Llama 2's margin loss (Touvron et al. 2023, eq. 2),
  ``−log σ(r_a − r_b − margin · strength)``, where ``strength`` is the judgment's
  magnitude (a Likert gap, a vote share); judgments without strength get no margin.
* ``center``: reward centring (Eisenstein et al. 2023, "Helping or Herding?"), adding
  ``center · (r_a + r_b)²`` so rewards are near zero mean per pair.

Ties are left out of the loss (``ties = "skip"``) or count as half a win for each side
(``ties = "half"``: the target is 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prefkit.models.heads.base import Head, HeadParam, PairBatch, register


def scorer(dim: int, hidden: int, out: int = 1, dropout: float = 0.0) -> nn.Module:
    """``Linear(dim, out)``, or ``Linear -> GELU -> Dropout -> Linear`` when ``hidden > 0``."""
    if hidden <= 0:
        return nn.Linear(dim, out)
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out)
    )


#: The network's hyper-parameters, shared by every head built on :func:`scorer`.
MLP_PARAMS = {
    "hidden": HeadParam(int, 0, "hidden units of an MLP (0 = linear)"),
    "dropout": HeadParam(float, 0.0, "dropout in the MLP"),
}


def pair_targets(batch: PairBatch, ties: str) -> tuple[Tensor, Tensor]:
    """Targets P(a ≻ b) in {0, 0.5, 1} and per-row weights (ties weigh 0 when skipped)."""
    target = (batch.outcome + 1.0) / 2.0
    weight = batch.weight
    if ties == "skip":
        weight = weight * (batch.outcome != 0)
    return target, weight


def bce_logits(logit: Tensor, target: Tensor) -> Tensor:
    """Per-row ``BCE(σ(logit), target) = softplus(logit) − target · logit`` ``(B,)``.

    The value of ``F.binary_cross_entropy_with_logits(reduction="none")``, written with
    softplus: torch's CPU ``log_sigmoid`` kernel, which that function uses, was measured
    at ~10 ms per 256 rows with two intra-op threads on a busy 2-core machine, against a
    few µs for softplus.
    """
    return F.softplus(logit) - target * logit


def weighted_mean(values: Tensor, weight: Tensor) -> Tensor:
    return (values * weight).sum() / weight.sum().clamp_min(1e-12)


@register
class BradleyTerry(Head):
    name = "bt"
    paper = "Bradley & Terry 1952; Ouyang et al. 2022 (InstructGPT reward model)"
    summary = "scalar reward, P(a>b) = sigmoid(r_a - r_b); optional margin and centring"
    params: ClassVar[Mapping[str, HeadParam]] = {
        **MLP_PARAMS,
        "margin": HeadParam(float, 0.0, "Llama-2 margin: subtract margin * strength"),
        "center": HeadParam(float, 0.0, "reward-centring penalty weight on (r_a + r_b)^2"),
        "ties": HeadParam(
            str, "skip", "tie judgments: skip, or half (target 0.5)", choices=("skip", "half")
        ),
    }

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        hp = self.hparams
        self.net = scorer(dim, hp["hidden"], 1, hp["dropout"])

    @property
    def reads_ties(self) -> bool:
        return bool(self.hparams["ties"] == "half")

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        return self.net(x).squeeze(-1)

    def loss(self, batch: PairBatch) -> Tensor:
        hp = self.hparams
        ra, rb = self.reward(batch.xa), self.reward(batch.xb)
        diff = ra - rb
        if hp["margin"]:
            m = hp["margin"] * torch.nan_to_num(batch.strength, nan=0.0)
            diff = diff - torch.sign(batch.outcome) * m  # the margin pushes toward the winner
        target, weight = pair_targets(batch, hp["ties"])
        nll = bce_logits(diff, target)
        loss = weighted_mean(nll, weight)
        if hp["center"]:
            loss = loss + hp["center"] * weighted_mean((ra + rb) ** 2, weight)
        return loss
