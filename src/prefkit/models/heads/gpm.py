"""General Preference Model head (Zhang, Zhang, Wu, Xu and Gu 2024, "Beyond Bradley-Terry
Models: A General Preference Model for Language Model Alignment", arXiv 2410.02197,
ICML 2025).

Each response gets a *preference embedding* ``v = g(x) ∈ R^{2k}`` (``g`` linear, or a
one-hidden-layer MLP as in :func:`~prefkit.models.heads.bt.scorer`), L2-normalised by
default as in the paper. The preference score of ``a`` over ``b`` is the skew-symmetric
bilinear form

    s(a, b) = v_aᵀ R v_b,   R = diag(R_1, …, R_k),   R_i = [[0, −λ_i], [λ_i, 0]],

so ``s(a, b) = Σ_i λ_i (v_a[2i+1] v_b[2i] − v_a[2i] v_b[2i+1])`` and
``P(a ≻ b) = σ(s(a, b))``. Skew-symmetry gives ``P(a ≻ b) + P(b ≻ a) = 1`` and
``P(a ≻ a) = ½`` for any parameters; unlike a scalar reward, ``s`` can represent
intransitive (cyclic) preferences.

Deviations from the paper, all deliberate:

* the paper's prompt-dependent eigenvalue gate (``λ_i(x)`` predicted from the prompt) is
  omitted: the ``λ_i ≥ 0`` are global, learned through a softplus (``learn_lambda=true``,
  initialised at 1) or fixed to 1 (``learn_lambda=false``; with ``normalize=true`` the
  score is then bounded by 1 in absolute value, so probabilities stay within
  ``[σ(−1), σ(1)] ≈ [0.27, 0.73]``);
* ``reward(x)``: GPM has no scalar reward. prefkit defines one as the expected preference
  score against the training population, ``s(v_x, v̄)`` with ``v̄`` the mean training
  embedding (stored in ``finish``). By bilinearity this equals the mean of
  ``s(x, y)`` over the training responses ``y``. Being a scalar it cannot express cycles:
  use :meth:`GeneralPreference.prob` for pairwise predictions.

Ties are left out of the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.models.heads.base import Head, HeadParam, PairBatch, register
from prefkit.models.heads.bt import MLP_PARAMS, bce_logits, pair_targets, scorer, weighted_mean

#: softplus⁻¹(1): the raw eigenvalue parameter that starts every λ_i at 1.
LAMBDA_INIT = math.log(math.e - 1.0)


def skew_score(va: Tensor, vb: Tensor, lam: Tensor) -> Tensor:
    """``v_aᵀ R v_b`` for block-diagonal skew-symmetric ``R`` with eigenvalue scales ``lam``.

    Parameters
    ----------
    va, vb
        Preference embeddings ``(B, 2k)``; block ``i`` is components ``2i, 2i+1``.
    lam
        Block scales ``(k,)``.

    Returns
    -------
    Tensor
        Scores ``(B,)``.
    """
    a = va.reshape(va.shape[0], -1, 2)  # (B, k, 2)
    b = vb.reshape(vb.shape[0], -1, 2)  # (B, k, 2)
    cross = a[..., 1] * b[..., 0] - a[..., 0] * b[..., 1]  # (B, k)
    return (cross * lam).sum(-1)


@register
class GeneralPreference(Head):
    name = "gpm"
    paper = "Zhang et al. 2024, Beyond Bradley-Terry Models: A General Preference Model"
    summary = "preference embeddings with a skew-symmetric score; models cyclic preferences"
    params: ClassVar[Mapping[str, HeadParam]] = {
        "k": HeadParam(int, 4, "skew-symmetric 2x2 blocks (embedding has 2k dimensions)"),
        **MLP_PARAMS,
        "normalize": HeadParam(bool, True, "L2-normalise the preference embeddings"),
        "learn_lambda": HeadParam(bool, True, "learn the block scales (else fixed to 1)"),
    }

    lam_raw: Tensor  # (k,) softplus⁻¹ of the block scales (parameter or buffer)
    v_mean: Tensor  # (2k,) mean training embedding (buffer)

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        hp = self.hparams
        if hp["k"] < 1:
            raise PrefkitError(f"head 'gpm': parameter 'k' must be at least 1, got {hp['k']}")
        k = hp["k"]
        self.net = scorer(dim, hp["hidden"], 2 * k, hp["dropout"])
        raw = torch.full((k,), LAMBDA_INIT)
        if hp["learn_lambda"]:
            self.lam_raw = nn.Parameter(raw)
        else:
            self.register_buffer("lam_raw", raw)
        # mean training embedding, set by finish(); zero until then (reward 0)
        self.register_buffer("v_mean", torch.zeros(2 * k))

    def lam(self) -> Tensor:
        """Block scales λ ``(k,)``, all ≥ 0."""
        return F.softplus(self.lam_raw)

    def embed(self, x: Tensor) -> Tensor:
        """Preference embeddings ``(N, D) -> (N, 2k)``."""
        v = self.net(x)  # (N, 2k)
        if self.hparams["normalize"]:
            v = F.normalize(v, dim=-1)
        return v

    def score(self, xa: Tensor, xb: Tensor) -> Tensor:
        """Preference score ``s(a, b) = v_aᵀ R v_b`` ``(B,)``; ``s(a, b) = −s(b, a)``."""
        return skew_score(self.embed(xa), self.embed(xb), self.lam())

    def prob(self, xa: Tensor, xb: Tensor, annotator: Tensor | None = None) -> Tensor:
        return torch.sigmoid(self.score(xa, xb))

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        """Expected score against the training population, ``s(v_x, v̄)`` ``(N,)``."""
        v = self.embed(x)  # (N, 2k)
        return skew_score(v, self.v_mean.to(v.dtype).expand_as(v), self.lam())

    def loss(self, batch: PairBatch) -> Tensor:
        target, weight = pair_targets(batch, "skip")
        s = self.score(batch.xa, batch.xb)  # (B,)
        return weighted_mean(bce_logits(s, target), weight)

    def finish(self, features: Callable[[], Tensor]) -> None:
        """Store the mean preference embedding of the training responses."""
        x = features()
        if len(x):
            with torch.no_grad():
                self.v_mean.copy_(self.embed(x).mean(0))
