"""Mixin terms, added to a main pairwise loss with a weight ``w`` by the trainer.

The trainer minimises ``main + Σ w · mixin``; a mixin is never trained alone. ``nll``
keeps the chosen completion likely (RPO, and the SFT part of SLiC-HF and CPO); ``selm``
is SELM's optimism bonus, which lowers the likelihood of what the reference already
generates so that the policy explores beyond it.
"""

from __future__ import annotations

from torch import Tensor

from prefkit.losses.base import Loss, PairInputs, register
from prefkit.losses.dpo import BETA, logratios
from prefkit.losses.reference_free import avg_logps


def nll(x: PairInputs) -> Tensor:
    return -avg_logps(x)[0]


def selm(x: PairInputs, *, beta: float) -> Tensor:
    chosen, rejected = logratios(x)
    return beta * (chosen + rejected) / 2


register(
    Loss(
        name="nll",
        fn=nll,
        kind="pairs",
        reference=False,
        params={},
        summary="SFT term: mean token negative log-likelihood of the chosen completion",
        formula="-log π(y_w) / |y_w|",
        paper=(
            "Pang et al. 2024, Iterative Reasoning Preference Optimization (RPO, "
            "arXiv:2404.19733), NLL term of L_DPO+NLL (weight α)"
        ),
        trl="sft",
        mixin=True,
        notes=(
            "Per example, normalised by that completion's length. TRL's 'sft' averages over "
            "all chosen tokens of the batch, which equals the batch mean of this only when "
            "chosen lengths are equal (or B = 1)."
        ),
    )
)

register(
    Loss(
        name="selm",
        fn=selm,
        kind="pairs",
        reference=True,
        params={"beta": BETA},
        summary="SELM optimism bonus: penalise the implicit reward of reference samples",
        formula="β · ½[log π(y_w)/π_ref(y_w) + log π(y_l)/π_ref(y_l)]   (weight α)",
        paper=(
            "Zhang et al. 2024, Self-Exploring Language Models: Active Preference Elicitation "
            "for Online Alignment (arXiv:2405.19332), SELM objective: "
            "L_DPO + αβ E_{y~π_ref}[log π(y)/π_ref(y)]"
        ),
        mixin=True,
        notes=(
            "The paper's expectation is over responses sampled from π_ref; the authors' code "
            "draws one extra greedy π_ref generation per prompt. Pairs carry no third "
            "response, so the mean over both completions stands in for it: an unbiased "
            "estimate when the pair was sampled from π_ref (on-policy data), only a proxy "
            "for offline data. Use the main loss's β; the trainer's weight is α (the "
            "authors' default is 0.001)."
        ),
    )
)
