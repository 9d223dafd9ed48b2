"""Multi-attribute regression head: predict K rated attributes, reward = their weighted sum.

The HelpSteer recipe (Wang et al. 2023, "HelpSteer: Multi-attribute Helpfulness Dataset
for SteerLM"; its regression reward model in Wang et al. 2024, "HelpSteer2: Open-source
dataset for training top-performing reward models"): a linear map (or a one-hidden-layer
MLP, ``hidden > 0``) from features to K attribute scores, trained with mean squared error
over the ratings that are present (NaN targets are masked out, so a response with no
ratings contributes nothing), and a scalar reward

``r(x) = Σ_k w_k · â_k(x)``

with weights from ``weights`` (comma-separated, default ``1/K`` each). ``prob`` is the
Bradley–Terry default on that reward.

Deviation: targets are standardised per attribute for optimisation. On its first
training batch the head sets ``center`` and ``scale`` to that batch's per-attribute
mean and standard deviation (0 and 1 for an attribute the batch does not rate) and
predicts ``â = center + scale · net(x)``; the loss is the masked MSE in standard units,
``mean over observed (k, i) of ((â_ik − a_ik) / scale_k)²``, so every attribute weighs
the same whatever its rating scale, and the few optimizer steps a frozen-feature fit
takes need not walk the bias to a mean of 5 on a 1–6 scale. Predictions and rewards are
in the ratings' own units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from prefkit.errors import PrefkitError
from prefkit.models.heads.base import Head, HeadParam, ItemBatch, register
from prefkit.models.heads.bt import MLP_PARAMS, scorer


def parse_weights(spec: str, k: int) -> list[float]:
    """``"0.5,0.3,0.2"`` -> ``[0.5, 0.3, 0.2]`` (exactly ``k`` floats); ``""`` -> ``1/k`` each."""
    if not spec.strip():
        return [1.0 / k] * k
    parts = [p.strip() for p in spec.split(",")]
    try:
        w = [float(p) for p in parts]
    except ValueError:
        raise PrefkitError(
            f"head 'attr': weights must be comma-separated numbers, got {spec!r}"
        ) from None
    if len(w) != k:
        raise PrefkitError(
            f"head 'attr': weights has {len(w)} value(s) but the data has {k} attribute(s)"
        )
    if not all(torch.isfinite(torch.tensor(w))):
        raise PrefkitError(f"head 'attr': weights must be finite, got {spec!r}")
    return w


def masked_mse(pred: Tensor, target: Tensor, scale: Tensor) -> Tensor:
    """Mean of ``((pred − target) / scale)²`` over the non-NaN targets (0 when none).

    ``pred``, ``target``: ``(N, K)``; ``scale``: ``(K,)``.
    """
    seen = ~torch.isnan(target)  # (N, K)
    err = (pred - torch.nan_to_num(target)) / scale  # (N, K)
    return (err**2 * seen).sum() / seen.sum().clamp_min(1)


@register
class AttributeRegression(Head):
    name = "attr"
    kind = "items"
    paper = "Wang et al. 2023 (HelpSteer); Wang et al. 2024 (HelpSteer2 regression RM)"
    summary = "regress K rated attributes (NaN-masked MSE); reward = weighted sum"
    params: ClassVar[Mapping[str, HeadParam]] = {
        **MLP_PARAMS,
        "weights": HeadParam(
            str, "", "reward weights per attribute, comma-separated (default: 1/K each)"
        ),
    }
    w: Tensor  # (K,) reward weights (rebuilt from the ``weights`` parameter)
    center: Tensor  # (K,) rating mean of the first training batch
    scale: Tensor  # (K,) rating standard deviation of the first training batch
    initialized: Tensor  # () bool: center/scale are set

    def __init__(self, dim: int, **kw: object) -> None:
        super().__init__(dim, **kw)  # type: ignore[arg-type]
        k = self.n_attributes
        if k < 1:
            raise PrefkitError(
                "head 'attr' regresses attribute ratings (responses.attributes); the data has none"
            )
        hp = self.hparams
        self.net = scorer(dim, hp["hidden"], k, hp["dropout"])
        self.register_buffer("w", torch.tensor(parse_weights(hp["weights"], k)), persistent=False)
        self.register_buffer("center", torch.zeros(k))  # (K,)
        self.register_buffer("scale", torch.ones(k))  # (K,)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def init_scale(self, targets: Tensor) -> None:
        """Set ``center``/``scale`` from one batch's ratings ``(N, K)`` (NaN = missing)."""
        seen = ~torch.isnan(targets)  # (N, K)
        n = seen.sum(0)  # (K,)
        t = torch.nan_to_num(targets)
        mean = (t * seen).sum(0) / n.clamp_min(1)
        var = (((t - mean) * seen) ** 2).sum(0) / n.clamp_min(1)
        std = var.sqrt()
        self.center.copy_(torch.where(n > 0, mean, torch.zeros_like(mean)))
        self.scale.copy_(torch.where((n > 0) & (std > 1e-6), std, torch.ones_like(std)))
        self.initialized.fill_(True)

    def predict_attributes(self, x: Tensor) -> Tensor:
        """Predicted ratings ``(N, D) -> (N, K)`` in the ratings' units."""
        return self.center + self.scale * self.net(x)

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        return self.predict_attributes(x) @ self.w.to(x.dtype)  # (N,)

    def loss(self, batch: ItemBatch) -> Tensor:
        if self.training and not bool(self.initialized):
            self.init_scale(batch.targets)
        return masked_mse(self.predict_attributes(batch.x), batch.targets, self.scale)


__all__ = ["AttributeRegression", "masked_mse", "parse_weights"]
