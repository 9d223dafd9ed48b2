"""Pairwise objectives with soft labels: each pair carries a preference strength ``p``.

``x.strength`` is the probability that ``chosen`` is preferred (1.0 for hard labels).
``soft`` fits the Bradley-Terry probability ``σ(β h)`` to ``p`` by cross-entropy;
``gdpo`` scales the margin by ``2p - 1`` instead, so equally-preferred pairs (``p = ½``)
give no gradient at all.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from prefkit.errors import PrefkitError
from prefkit.losses.base import Loss, PairInputs, register
from prefkit.losses.dpo import BETA, margin


def strength(x: PairInputs) -> Tensor:
    """The soft labels, checked to lie in [0, 1]."""
    p = x.strength
    if bool(((p < 0) | (p > 1) | p.isnan()).any()):
        raise PrefkitError("preference strength must lie in [0, 1] for every pair")
    return p


def soft(x: PairInputs, *, beta: float) -> Tensor:
    p, z = strength(x), beta * margin(x)
    return -p * F.logsigmoid(z) - (1 - p) * F.logsigmoid(-z)


def gdpo(x: PairInputs, *, beta: float) -> Tensor:
    p = strength(x)
    return -F.logsigmoid(beta * (2 * p - 1) * margin(x))


register(
    Loss(
        name="soft",
        reads_strength=True,
        fn=soft,
        kind="pairs",
        reference=True,
        params={"beta": BETA},
        summary="Soft-preference cross-entropy: DPO against a per-pair preference strength p",
        formula="-p log σ(β h) - (1-p) log σ(-β h),  p = strength",
        paper=(
            "Zhai et al. 2024, Online Self-Preferring Language Models (OSP, arXiv:2405.14103), "
            "soft-preference cross-entropy loss"
        ),
        notes=(
            "Equals DPO at p = 1 and cDPO (Mitchell 2023) at p = 1 - ε; Furuta et al. 2024 "
            "(arXiv:2409.06691) call it cDPO with soft labels. OSP builds p from "
            "self-judged rankings online; here p comes from the data."
        ),
    )
)

register(
    Loss(
        name="gdpo",
        reads_strength=True,
        fn=gdpo,
        kind="pairs",
        reference=True,
        params={"beta": BETA},
        summary="Geometric-averaged DPO: the margin scaled by 2p - 1 (soft labels)",
        formula="-log σ(β (2p - 1) h),  p = strength",
        paper=(
            "Furuta et al. 2024, Geometric-Averaged Preference Optimization for Soft "
            "Preference Labels (arXiv:2409.06691), GDPO objective"
        ),
        notes=(
            "None. The form follows from putting the weighted geometric averages "
            "π(y_w)^p π(y_l)^(1-p) and π(y_l)^p π(y_w)^(1-p) (and the same for π_ref) in "
            "DPO; p = 1 gives DPO and p = ½ a constant log 2 with zero gradient."
        ),
    )
)
