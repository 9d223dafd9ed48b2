"""Reference-based pairwise objectives: DPO and its close relatives.

All of them read the log-ratio margin ``h`` (:func:`margin`) of a pair, or its
length-normalised form (:func:`avg_margin`), and differ only in the function of it they
minimise: logistic (DPO, cDPO, rDPO), squared (IPO) or hinge (SLiC).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from prefkit.losses.base import Loss, LossParam, PairInputs, register

BETA = LossParam(
    0.1, "inverse temperature of the implicit reward r = beta * log(pi/pi_ref)", "(0, inf)"
)
EPS = LossParam(0.1, "probability that a label is flipped (label noise)", "[0, 0.5)")


def logratios(x: PairInputs) -> tuple[Tensor, Tensor]:
    """``log π(y)/π_ref(y)`` for the chosen and the rejected completion."""
    assert x.ref_chosen_logps is not None and x.ref_rejected_logps is not None
    return x.chosen_logps - x.ref_chosen_logps, x.rejected_logps - x.ref_rejected_logps


def margin(x: PairInputs) -> Tensor:
    """h = log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l) (the DPO log-ratio margin)."""
    chosen, rejected = logratios(x)
    return chosen - rejected


def avg_margin(x: PairInputs) -> Tensor:
    """The margin with each log-ratio divided by its completion's token count."""
    chosen, rejected = logratios(x)
    return chosen / x.chosen_len.clamp(min=1) - rejected / x.rejected_len.clamp(min=1)


def dpo(x: PairInputs, *, beta: float) -> Tensor:
    return -F.logsigmoid(beta * margin(x))


def cdpo(x: PairInputs, *, beta: float, eps: float) -> Tensor:
    z = beta * margin(x)
    return -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


def rdpo(x: PairInputs, *, beta: float, eps: float) -> Tensor:
    z = beta * margin(x)
    return (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)


def ipo(x: PairInputs, *, beta: float) -> Tensor:
    return (avg_margin(x) - 1 / (2 * beta)) ** 2


def hinge(x: PairInputs, *, beta: float) -> Tensor:
    return torch.relu(1 - beta * margin(x))


def dpo_norm(x: PairInputs, *, beta: float) -> Tensor:
    return -F.logsigmoid(beta * avg_margin(x))


register(
    Loss(
        name="dpo",
        fn=dpo,
        kind="pairs",
        reference=True,
        params={"beta": BETA},
        summary="Direct preference optimisation (Bradley-Terry on the implicit reward)",
        formula="-log σ(β h),  h = log π(y_w)/π_ref(y_w) - log π(y_l)/π_ref(y_l)",
        paper="Rafailov et al. 2023, Direct Preference Optimization (arXiv:2305.18290), eq. 7",
        trl="sigmoid",
    )
)

register(
    Loss(
        name="cdpo",
        fn=cdpo,
        kind="pairs",
        reference=True,
        params={"beta": BETA, "eps": LossParam(0.1, EPS.help, "[0, 0.5]")},
        summary="Conservative DPO: DPO against labels smoothed by ε (each label flipped w.p. ε)",
        formula="-(1-ε) log σ(β h) - ε log σ(-β h)",
        paper=(
            "Mitchell 2023, A note on DPO with noisy preferences and relationship to IPO "
            "(technical note, ericmitchell.ai/cdpo.pdf), conservative DPO loss"
        ),
        notes=(
            "TRL 1.16 dropped label smoothing from loss_type='sigmoid' (older TRL computed "
            "cDPO there), so no TRL 1.16 loss_type equals it; equals `soft` with p = 1 - ε."
        ),
    )
)

register(
    Loss(
        name="rdpo",
        fn=rdpo,
        kind="pairs",
        reference=True,
        params={"beta": BETA, "eps": EPS},
        summary="Robust DPO: unbiased DPO loss under labels flipped with known rate ε",
        formula="[-(1-ε) log σ(β h) + ε log σ(-β h)] / (1 - 2ε)",
        paper=(
            "Chowdhury, Kini & Natarajan 2024, Provably Robust DPO: Aligning Language Models "
            "with Noisy Feedback (arXiv:2403.00409), the de-biased rDPO loss"
        ),
        trl="robust",
        notes="ε < 0.5 (the loss is undefined at 0.5); TRL reads ε from label_smoothing.",
    )
)

register(
    Loss(
        name="ipo",
        fn=ipo,
        kind="pairs",
        reference=True,
        params={
            "beta": LossParam(0.1, "regularisation τ; the target margin is 1/(2τ)", "(0, inf)")
        },
        summary="Identity preference optimisation: regress the (per-token) margin onto 1/(2τ)",
        formula="(h_w/|y_w| - h_l/|y_l| - 1/(2β))²,  h = log π(y)/π_ref(y)",
        paper=(
            "Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from "
            "Human Preferences (arXiv:2310.12036), eq. 17"
        ),
        trl="ipo",
        notes=(
            "Length-normalised like TRL: each log-ratio is divided by its completion's token "
            "count (TRL reports the IPO authors confirmed this form); the paper's eq. 17 "
            "uses unnormalised sequence log-ratios."
        ),
    )
)

register(
    Loss(
        name="hinge",
        fn=hinge,
        kind="pairs",
        reference=True,
        params={"beta": LossParam(0.1, "inverse margin: the hinge is at h = 1/β", "(0, inf)")},
        summary="SLiC-HF calibration loss: hinge on the log-ratio margin",
        formula="max(0, 1 - β h)",
        paper=(
            "Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with Human Feedback "
            "(arXiv:2305.10425), eq. 1 (calibration term)"
        ),
        trl="hinge",
        notes=(
            "As in TRL: the margin is the reference-corrected h (SLiC-HF uses raw policy "
            "log-probs) and δ is written as 1/β; SLiC's SFT regulariser is the `nll` mixin."
        ),
    )
)

register(
    Loss(
        name="dpo_norm",
        fn=dpo_norm,
        kind="pairs",
        reference=True,
        params={"beta": BETA},
        summary="Length-normalised DPO: DPO on per-token log-ratios",
        formula="-log σ(β (h_w/|y_w| - h_l/|y_l|)),  h = log π(y)/π_ref(y)",
        paper=(
            "Rafailov et al. 2023 (arXiv:2305.18290), eq. 7, with the per-token normalisation "
            "of SimPO (Meng, Xia & Chen 2024, arXiv:2405.14734)"
        ),
        trl="sigmoid_norm",
    )
)
