"""PAL pluralistic reward head (Chen, Chen, Rege, Wang and Vinayak 2024, "PAL: Pluralistic
Alignment Framework for Learning from Heterogeneous Preferences", arXiv 2406.08469,
ICLR 2025), the ideal-point mixture model PAL-A.

A projection ``f(x) ∈ R^m`` (``dim_out``; linear, or a one-hidden-layer MLP) places every
response in a preference space with ``K`` learned prototype ideal points
``p_1..p_K ∈ R^m`` (``prototypes``). Known annotator ``u`` has mixture weights
``w_u = softmax(θ_u)`` and ideal point ``a_u = Σ_k w_uk p_k``; their reward is the negative
squared distance to it,

    r_u(x) = −‖f(x) − a_u‖²,   P(a ≻ b | u) = σ(r_u(a) − r_u(b)).

Unknown annotators (index −1) and ``reward(x)`` without an annotator use the population
weights: the mean of ``softmax(θ_u)`` over the known annotators (uniform when there are
none). Ties are left out of the loss.

Few-shot personalisation (the paper's adaptation to unseen users): :meth:`PAL.adapt` fits
only a new user's logits ``θ`` on a few of their judgments, with ``f`` and the prototypes
frozen; :func:`adapt_annotator` does it from a fitted
:class:`~prefkit.models.reward_model.RewardModel` and :func:`prob_with_weights` scores
pairs for given weights. Deviation: the adaptation is a MAP fit with a Gaussian prior
``l2 · ‖θ − θ_0‖²`` around the population logits ``θ_0`` (the paper fits the weights
without a prior), which keeps one or two judgments from driving the weights to a corner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.models.heads.base import Head, HeadParam, PairBatch, register
from prefkit.models.heads.bt import MLP_PARAMS, bce_logits, pair_targets, scorer, weighted_mean

if TYPE_CHECKING:
    from prefkit.models.data import PrefData
    from prefkit.models.reward_model import RewardModel


@register
class PAL(Head):
    name = "pal"
    paper = "Chen et al. 2024, PAL: Pluralistic Alignment Framework (PAL-A)"
    summary = "per-annotator ideal points mixing K prototypes; few-shot adapts to new users"
    per_annotator = True
    params: ClassVar[Mapping[str, HeadParam]] = {
        "dim_out": HeadParam(int, 16, "dimension m of the preference space"),
        "prototypes": HeadParam(int, 2, "number K of prototype ideal points"),
        **MLP_PARAMS,
    }

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        hp = self.hparams
        for key in ("dim_out", "prototypes"):
            if hp[key] < 1:
                raise PrefkitError(f"head 'pal': parameter {key!r} must be at least 1")
        m, k = hp["dim_out"], hp["prototypes"]
        self.net = scorer(dim, hp["hidden"], m, hp["dropout"])
        self.proto = nn.Parameter(torch.randn(k, m))  # (K, m)
        self.theta = nn.Parameter(0.01 * torch.randn(self.n_annotators, k))  # (U, K)

    # --- mixture weights ------------------------------------------------------------------
    def population_weights(self) -> Tensor:
        """Mean of the known annotators' weights ``(K,)`` (uniform if there are none)."""
        k = self.proto.shape[0]
        if self.n_annotators == 0:
            return torch.full((k,), 1.0 / k, dtype=self.proto.dtype, device=self.proto.device)
        return torch.softmax(self.theta, dim=-1).mean(0)

    def weights(self, annotator: Tensor | None, n: int) -> Tensor:
        """Mixture weights ``(n, K)`` for annotator indices ``(n,)`` (−1 or None: population)."""
        pop = self.population_weights()  # (K,)
        if annotator is None:
            return pop.expand(n, -1)
        annotator = annotator.long()
        if len(annotator) and int(annotator.max()) >= self.n_annotators:
            raise PrefkitError(
                f"head 'pal' knows {self.n_annotators} annotators, got index {int(annotator.max())}"
            )
        known = annotator >= 0  # (n,)
        own = (
            torch.softmax(self.theta[annotator.clamp_min(0)], dim=-1) if self.n_annotators else pop
        )
        return torch.where(known[:, None], own, pop.expand(n, -1))  # (n, K)

    # --- rewards and probabilities --------------------------------------------------------
    def reward_with_weights(self, x: Tensor, w: Tensor) -> Tensor:
        """``−‖f(x) − w·P‖²`` ``(N,)`` for weights ``w`` ``(N, K)`` or ``(K,)``."""
        ideal = w @ self.proto  # (N, m) or (m,)
        return -((self.net(x) - ideal) ** 2).sum(-1)

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        return self.reward_with_weights(x, self.weights(annotator, x.shape[0]))

    def prob(self, xa: Tensor, xb: Tensor, annotator: Tensor | None = None) -> Tensor:
        w = self.weights(annotator, xa.shape[0])  # (B, K)
        return torch.sigmoid(self.reward_with_weights(xa, w) - self.reward_with_weights(xb, w))

    def loss(self, batch: PairBatch) -> Tensor:
        target, weight = pair_targets(batch, "skip")
        w = self.weights(batch.annotator, batch.xa.shape[0])  # (B, K)
        diff = self.reward_with_weights(batch.xa, w) - self.reward_with_weights(batch.xb, w)
        return weighted_mean(bce_logits(diff, target), weight)

    # --- few-shot adaptation --------------------------------------------------------------
    def adapt(
        self,
        xa: Tensor,
        xb: Tensor,
        outcome: Tensor,
        steps: int = 200,
        lr: float = 0.1,
        l2: float = 0.01,
    ) -> Tensor:
        """Fit a new user's mixture weights on their judgments, everything else frozen.

        Parameters
        ----------
        xa, xb
            Features of both sides ``(B, D)``.
        outcome
            ``(B,)``: +1 a preferred, −1 b preferred, 0 tie (ties are skipped).
        steps, lr
            Adam steps and learning rate on the logits.
        l2
            Gaussian prior weight on ``‖θ − θ_0‖²`` (``θ_0``: the population logits).

        Returns
        -------
        Tensor
            The weights ``(K,)``; the population weights when no judgment is decisive.
        """
        was_training = self.training
        self.eval()
        with torch.no_grad():
            theta0 = self.population_weights().clamp_min(1e-6).log()  # (K,)
            fa, fb = self.net(xa), self.net(xb)  # (B, m)
            target = (outcome.to(fa.dtype) + 1.0) / 2.0  # (B,)
            decisive = (outcome != 0).to(fa.dtype)  # (B,)
            proto = self.proto.detach()  # (K, m)
        self.train(was_training)
        theta = theta0.clone().requires_grad_(True)
        if float(decisive.sum()) == 0 or steps <= 0:
            return torch.softmax(theta0, dim=-1)
        opt = torch.optim.Adam([theta], lr=lr)
        for _ in range(steps):
            ideal = torch.softmax(theta, dim=-1) @ proto  # (m,)
            diff = ((fb - ideal) ** 2).sum(-1) - ((fa - ideal) ** 2).sum(-1)  # (B,)
            loss = (
                weighted_mean(bce_logits(diff, target), decisive)
                + l2 * ((theta - theta0) ** 2).sum()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.softmax(theta.detach(), dim=-1)


def prob_with_weights(head: PAL, xa: Tensor, xb: Tensor, w: Tensor | np.ndarray) -> Tensor:
    """P(a ≻ b) ``(B,)`` for a user with mixture weights ``w`` ``(K,)`` or ``(B, K)``."""
    wt = torch.as_tensor(w, dtype=head.proto.dtype)
    if wt.shape[-1] != head.proto.shape[0]:
        raise PrefkitError(
            f"weights have {wt.shape[-1]} entries; the head has {head.proto.shape[0]} prototypes"
        )
    with torch.no_grad():
        return torch.sigmoid(head.reward_with_weights(xa, wt) - head.reward_with_weights(xb, wt))


def adapt_annotator(
    model: RewardModel,
    data: PrefData,
    rows: np.ndarray,
    steps: int = 200,
    lr: float = 0.1,
    l2: float = 0.01,
) -> np.ndarray:
    """A new user's mixture weights ``(K,)`` fitted on judgments ``data.pairs[rows]``.

    ``model`` must be a fitted ``pal`` reward model; the features come from its backbone
    (``model.features``). With no rows the population weights come back.
    """
    model._check_fitted()
    head = model.head_
    if not isinstance(head, PAL):
        raise PrefkitError(f"adapt_annotator needs a 'pal' reward model, not {head.name!r}")
    rows = np.asarray(rows, dtype=np.int64)
    p = data.pairs
    if len(rows) and (rows.min() < 0 or rows.max() >= len(p)):
        raise PrefkitError(f"rows must index the data's {len(p):,} judgments")
    if not len(rows):
        return head.population_weights().detach().double().numpy()
    xa, xb = model.pair_features(data, p.take(rows))  # (n, D) each
    outcome = torch.from_numpy(p.outcome[rows].astype(np.float32))
    w = head.adapt(xa, xb, outcome, steps=steps, lr=lr, l2=l2)
    return w.double().numpy()


__all__ = ["PAL", "adapt_annotator", "prob_with_weights"]
