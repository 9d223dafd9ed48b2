"""Bradley–Terry with ties (Davidson 1970, "On extending the Bradley-Terry model to
accommodate ties in paired comparison experiments", JASA 65(329)).

With strengths ``π = exp(r)`` and a tie parameter ``ν ≥ 0``, a judgment between ``a`` and
``b`` has three outcomes::

    P(a ≻ b) = π_a / Z,    P(b ≻ a) = π_b / Z,    P(tie) = ν √(π_a π_b) / Z,
    Z = π_a + π_b + ν √(π_a π_b).

The reward is ``r(x) = w·g(x)`` as in :mod:`prefkit.models.heads.bt` (linear or a small
MLP), ``log ν`` is a learned scalar (initialised at ``log nu_init``), and the loss is the
mean negative log-likelihood of every judgment, ties included, computed in log space::

    log Z = logsumexp(r_a, r_b, log ν + (r_a + r_b) / 2).

Given a decisive outcome, the model is plain Bradley–Terry: ``P(a ≻ b | decisive) =
σ(r_a − r_b)``, which is what :meth:`DavidsonTies.prob` returns; the tie probability is
:meth:`DavidsonTies.tie_prob`. The tie probability peaks at ``ν / (2 + ν)`` for equal
rewards and falls as the rewards move apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.models.heads.base import Head, HeadParam, PairBatch, register
from prefkit.models.heads.bt import MLP_PARAMS, scorer, weighted_mean


def davidson_log_probs(ra: Tensor, rb: Tensor, log_nu: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(log P(a ≻ b), log P(b ≻ a), log P(tie))`` under Davidson's model, each ``(B,)``.

    Parameters
    ----------
    ra, rb
        Rewards (log strengths) of both sides, ``(B,)``.
    log_nu
        The log tie parameter, a scalar tensor.
    """
    tie = log_nu + 0.5 * (ra + rb)  # (B,)
    log_z = torch.logsumexp(torch.stack([ra, rb, tie.expand_as(ra)]), dim=0)  # (B,)
    return ra - log_z, rb - log_z, tie - log_z


@register
class DavidsonTies(Head):
    name = "ties"
    paper = "Davidson 1970 (Bradley-Terry with ties)"
    summary = "scalar reward with a learned tie parameter nu: P(tie) = nu*sqrt(pi_a pi_b)/Z"
    predicts_ties = True
    params: ClassVar[Mapping[str, HeadParam]] = {
        **MLP_PARAMS,
        "nu_init": HeadParam(float, 0.5, "initial Davidson tie parameter nu (> 0; learned)"),
    }

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        hp = self.hparams
        nu = hp["nu_init"]
        if not (nu > 0 and math.isfinite(nu)):
            raise PrefkitError(f"head 'ties': nu_init must be a positive number, got {nu!r}")
        self.net = scorer(dim, hp["hidden"], 1, hp["dropout"])
        self.log_nu = nn.Parameter(torch.tensor(math.log(nu)))

    @property
    def nu_(self) -> float:
        """The learned tie parameter ν."""
        return float(self.log_nu.detach().exp())

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        return self.net(x).squeeze(-1)

    def tie_prob(self, xa: Tensor, xb: Tensor, annotator: Tensor | None = None) -> Tensor:
        _, _, log_tie = davidson_log_probs(self.reward(xa), self.reward(xb), self.log_nu)
        return log_tie.exp()

    def loss(self, batch: PairBatch) -> Tensor:
        lw, ll, lt = davidson_log_probs(self.reward(batch.xa), self.reward(batch.xb), self.log_nu)
        o = batch.outcome
        log_p = torch.where(o > 0, lw, torch.where(o < 0, ll, lt))  # (B,)
        return weighted_mean(-log_p, batch.weight)
