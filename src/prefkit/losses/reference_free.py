"""Reference-free pairwise objectives: SimPO, ORPO and a sequence form of MaPO.

None of them reads a reference model (``ref_*`` are ``None``); all three compare
*average* per-token log-probabilities ``ā = log π(y)/|y|`` so that long completions are
not favoured for being long. ORPO and MaPO also carry their own SFT term on the chosen
completion (it is part of both papers' objectives), so they are complete losses; SimPO is
used alone (add the ``nll`` mixin for CPO-style training).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from prefkit.losses.base import Loss, LossParam, PairInputs, register


def avg_logps(x: PairInputs) -> tuple[Tensor, Tensor]:
    """Per-token average log-probabilities ``ā_w``, ``ā_l`` of the two completions."""
    aw = x.chosen_logps / x.chosen_len.clamp(min=1)
    al = x.rejected_logps / x.rejected_len.clamp(min=1)
    return aw, al


def log1mexp(a: Tensor) -> Tensor:
    """``log(1 - exp(a))`` for ``a <= 0``, stable on both sides of ``-log 2`` (Mächler 2012)."""
    return torch.where(a < -math.log(2), torch.log1p(-torch.exp(a)), torch.log(-torch.expm1(a)))


def simpo(x: PairInputs, *, beta: float, gamma: float) -> Tensor:
    aw, al = avg_logps(x)
    return -F.logsigmoid(beta * (aw - al) - gamma)


def orpo(x: PairInputs, *, lam: float) -> Tensor:
    aw, al = avg_logps(x)
    log_odds = (aw - al) - (log1mexp(aw) - log1mexp(al))
    return -aw - lam * F.logsigmoid(log_odds)


def mapo_score(nll: Tensor, gamma: float) -> Tensor:
    """MaPO's bounded score ``s(ℓ) = γℓ / (exp(γℓ) - 1)`` in (0, 1], with ``s(0) = 1``."""
    g = gamma * nll
    safe = torch.where(g.abs() < 1e-8, torch.ones_like(g), g)
    return torch.where(g.abs() < 1e-8, 1 - g / 2, safe / torch.expm1(safe))


def mapo(x: PairInputs, *, beta: float, gamma: float, scale: float) -> Tensor:
    aw, al = avg_logps(x)
    margin = mapo_score(-aw, gamma) - mapo_score(-al, gamma)
    return -aw - beta * F.logsigmoid(scale * margin)


register(
    Loss(
        name="simpo",
        fn=simpo,
        kind="pairs",
        reference=False,
        params={
            "beta": LossParam(2.0, "scale of the average log-prob reward", "(0, inf)"),
            "gamma": LossParam(1.0, "target reward margin γ", "[0, inf)"),
        },
        summary="Simple preference optimisation: reference-free, length-normalised, with margin",
        formula="-log σ(β (log π(y_w)/|y_w| - log π(y_l)/|y_l|) - γ)",
        paper=(
            "Meng, Xia & Chen 2024, SimPO: Simple Preference Optimization with a "
            "Reference-Free Reward (arXiv:2405.14734), eq. 6"
        ),
        trl="cpo:simpo",
        notes=(
            "TRL: trl.experimental.cpo CPOTrainer with loss_type='simpo', cpo_alpha=0, "
            "simpo_gamma=γ (TRL subtracts simpo_gamma/β inside β(·), the same value)."
        ),
    )
)

register(
    Loss(
        name="orpo",
        fn=orpo,
        kind="pairs",
        reference=False,
        params={"lam": LossParam(0.1, "weight λ of the odds-ratio term", "[0, inf)")},
        summary="Odds-ratio preference optimisation: SFT plus a log-odds-ratio penalty",
        formula=(
            "-ā_w - λ log σ(log[odds(y_w)/odds(y_l)]),  odds(y) = e^ā/(1-e^ā),  ā = log π(y)/|y|"
        ),
        paper=(
            "Hong, Lee & Thorne 2024, ORPO: Monolithic Preference Optimization without "
            "Reference Model (arXiv:2403.07691), eqs. 6-7"
        ),
        trl="orpo",
        notes=(
            "TRL: trl.experimental.orpo ORPOTrainer (beta = λ). The SFT term here is the "
            "chosen completion's mean token NLL per example; TRL averages over all chosen "
            "tokens of the batch (equal for equal lengths). Needs ā < 0 (true for any model "
            "with non-degenerate probabilities)."
        ),
    )
)

register(
    Loss(
        name="mapo",
        fn=mapo,
        kind="pairs",
        reference=False,
        params={
            "beta": LossParam(0.1, "weight of the margin term (MaPO's β)", "[0, inf)"),
            "gamma": LossParam(1.0, "scale of the NLL inside the score (MaPO's snr)", "(0, inf)"),
            "scale": LossParam(10.0, "multiplier of the score margin (MaPO's T)", "(0, inf)"),
        },
        summary="Margin-aware preference optimisation (sequence form): SFT plus a bounded margin",
        formula=("ℓ_w - β log σ(T (s(ℓ_w) - s(ℓ_l))),  s(ℓ) = γℓ/(e^{γℓ}-1),  ℓ = -log π(y)/|y|"),
        paper=(
            "Hong et al. 2024, Margin-aware Preference Optimization for Aligning Diffusion "
            "Models without Reference (arXiv:2406.06424), MaPO objective as in the "
            "authors' code (github.com/mapo-t2i/mapo, train.py)"
        ),
        notes=(
            "Adapted from diffusion: the paper's per-sample denoising MSE ℓ (a surrogate "
            "for -log p) becomes the mean token NLL ℓ = -log π(y)/|y|; the SFT term is ℓ_w. "
            "The paper's constants (snr 0.5, T = 1000 timesteps) are for MSE scales; "
            "γ = 1 and T = 10 are our defaults for NLL scales, not the paper's."
        ),
    )
)
