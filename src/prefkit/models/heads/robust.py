"""Noise-robust Bradley–Terry for preference labels flipped at random with rate ε.

If each judgment's label is flipped independently with probability ``ε < 1/2``, the
observed preference follows the *forward-corrected* likelihood (Natarajan et al. 2013,
"Learning with noisy labels", NeurIPS; the same noise model as Chowdhury et al. 2024,
"Provably robust DPO: aligning language models with noisy feedback", ICML)::

    P_obs(a ≻ b) = (1 − ε) σ(Δ) + ε σ(−Δ),    Δ = r_a − r_b,

and the loss (``loss = "forward"``) is its mean negative log-likelihood, computed as
``−logsumexp(log(1 − ε) + log σ(yΔ), log ε + log σ(−yΔ))`` with ``y = ±1`` the observed
winner. ``ε`` is either fixed (``flip_rate`` in ``[0, 0.5)``) or learned (``flip_rate =
−1``): a scalar ``ε = 0.5 σ(θ)``, which stays in ``(0, 0.5)``, initialised at
:data:`EPS_INIT`. Learning ε is identifiable only when the clean preferences are nearly
deterministic somewhere (large reward gaps), where ``P_obs`` plateaus at ``1 − ε``.

``loss = "unbiased"`` is the unbiased estimator of the clean logistic loss of Natarajan
et al. (2013, Lemma 1), used by Chowdhury et al. (2024) for rDPO::

    ((1 − ε) ℓ(yΔ) − ε ℓ(−yΔ)) / (1 − 2ε),    ℓ(z) = −log σ(z),

which needs a known, fixed ε. The model's probabilities (``prob``) are the clean
``σ(Δ)``; ties are left out of the loss. With ``ε = 0`` both losses are the Bradley–Terry
loss of :mod:`prefkit.models.heads.bt`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.models.heads.base import Head, HeadParam, PairBatch, register
from prefkit.models.heads.bt import MLP_PARAMS, scorer, weighted_mean

#: Starting value of a learned flip rate.
EPS_INIT = 0.1
LOSSES = ("forward", "unbiased")


def forward_nll(z: Tensor, eps: Tensor) -> Tensor:
    """``−log((1 − ε) σ(z) + ε σ(−z))`` per row, ``z = yΔ`` ``(B,)``; ``ε`` a scalar tensor."""
    keep = torch.log1p(-eps) + F.logsigmoid(z)  # (B,)
    flip = torch.log(eps) + F.logsigmoid(-z)  # (B,), -inf when eps = 0
    return -torch.logsumexp(torch.stack([keep, flip]), dim=0)


def unbiased_loss(z: Tensor, eps: float) -> Tensor:
    """``((1 − ε) ℓ(z) − ε ℓ(−z)) / (1 − 2ε)`` per row with ``ℓ(z) = softplus(−z)`` ``(B,)``."""
    return ((1.0 - eps) * F.softplus(-z) - eps * F.softplus(z)) / (1.0 - 2.0 * eps)


@register
class RobustBT(Head):
    name = "robust"
    paper = "Natarajan et al. 2013 (noisy labels); Chowdhury et al. 2024 (robust DPO)"
    summary = "Bradley-Terry under random label flips: (1-e)sigmoid(d) + e sigmoid(-d)"
    params: ClassVar[Mapping[str, HeadParam]] = {
        **MLP_PARAMS,
        "flip_rate": HeadParam(float, -1.0, "label flip rate in [0, 0.5); -1 = learn it"),
        "loss": HeadParam(
            str, "forward", "forward (corrected likelihood) or unbiased", choices=LOSSES
        ),
    }

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        hp = self.hparams
        eps = hp["flip_rate"]
        self.learn_eps = eps == -1.0
        if not self.learn_eps and not 0.0 <= eps < 0.5:
            raise PrefkitError(
                f"head 'robust': flip_rate must be in [0, 0.5), or -1 to learn it; got {eps!r}"
            )
        if hp["loss"] == "unbiased" and self.learn_eps:
            raise PrefkitError(
                "head 'robust': loss=unbiased needs a known flip rate: set flip_rate in [0, 0.5)"
            )
        self.net = scorer(dim, hp["hidden"], 1, hp["dropout"])
        # ε = 0.5 σ(θ), starting at EPS_INIT; not trained when the rate is fixed.
        theta = math.log(2 * EPS_INIT / (1 - 2 * EPS_INIT))
        self.eps_logit = nn.Parameter(torch.tensor(theta), requires_grad=self.learn_eps)

    def epsilon(self) -> Tensor:
        """The flip rate as a scalar tensor (differentiable when learned)."""
        if self.learn_eps:
            return 0.5 * torch.sigmoid(self.eps_logit)
        return torch.tensor(self.hparams["flip_rate"], dtype=self.eps_logit.dtype)

    @property
    def flip_rate_(self) -> float:
        """The flip rate in use: the learned one, or the fixed ``flip_rate``."""
        return float(self.epsilon().detach())

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        return self.net(x).squeeze(-1)

    def loss(self, batch: PairBatch) -> Tensor:
        z = torch.sign(batch.outcome) * (self.reward(batch.xa) - self.reward(batch.xb))  # (B,)
        weight = batch.weight * (batch.outcome != 0)  # ties skipped
        if self.hparams["loss"] == "unbiased":
            return weighted_mean(unbiased_loss(z, self.hparams["flip_rate"]), weight)
        return weighted_mean(forward_nll(z, self.epsilon()), weight)
