"""Random and hand-made inputs shared by the loss tests (float64 throughout)."""

from __future__ import annotations

import torch
from torch import Tensor

from prefkit.losses.base import ListInputs, Loss, PairInputs

D = torch.float64


def t(*values: float) -> Tensor:
    return torch.tensor(values, dtype=D)


def pairs(b: int = 6, *, seed: int = 0, reference: bool = True, grad: bool = False) -> PairInputs:
    """Random pairs with negative per-token log-probs and lengths 1..9."""
    g = torch.Generator().manual_seed(seed)
    lc = torch.randint(1, 10, (b,), generator=g).to(D)
    lr = torch.randint(1, 10, (b,), generator=g).to(D)

    def lp(n: Tensor) -> Tensor:
        return -n * (0.2 + 2 * torch.rand(b, generator=g, dtype=D))

    chosen, rejected = lp(lc).requires_grad_(grad), lp(lr).requires_grad_(grad)
    ref_c, ref_r = (lp(lc), lp(lr)) if reference else (None, None)
    strength = torch.rand(b, generator=g, dtype=D)
    return PairInputs(chosen, rejected, ref_c, ref_r, lc, lr, strength)


def pair(
    chosen: float,
    rejected: float,
    ref_chosen: float | None = 0.0,
    ref_rejected: float | None = 0.0,
    chosen_len: float = 1.0,
    rejected_len: float = 1.0,
    strength: float = 1.0,
) -> PairInputs:
    """One hand-made pair (batch of 1)."""
    ref = ref_chosen is not None and ref_rejected is not None
    return PairInputs(
        t(chosen),
        t(rejected),
        t(ref_chosen) if ref else None,  # type: ignore[arg-type]
        t(ref_rejected) if ref else None,  # type: ignore[arg-type]
        t(chosen_len),
        t(rejected_len),
        t(strength),
    )


def lists(b: int = 4, k: int = 5, *, seed: int = 0, grad: bool = False) -> ListInputs:
    """Random lists; scores are small integers (so ties occur); the last item of list 0
    is padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 10, (b, k), generator=g).to(D)
    logps = (-lengths * (0.2 + 2 * torch.rand(b, k, generator=g, dtype=D))).requires_grad_(grad)
    ref = -lengths * (0.2 + 2 * torch.rand(b, k, generator=g, dtype=D))
    scores = torch.randint(0, 4, (b, k), generator=g).to(D)
    mask = torch.ones(b, k, dtype=torch.bool)
    mask[0, -1] = False
    return ListInputs(logps, ref, lengths, scores, mask)


def one_list(rewards: list[float], scores: list[float]) -> ListInputs:
    """One list whose log-ratios are ``rewards`` (reference log-probs 0)."""
    k = len(rewards)
    return ListInputs(
        torch.tensor([rewards], dtype=D),
        torch.zeros(1, k, dtype=D),
        torch.ones(1, k, dtype=D),
        torch.tensor([scores], dtype=D),
        torch.ones(1, k, dtype=torch.bool),
    )


def inputs_for(loss: Loss, *, seed: int = 0, grad: bool = False) -> PairInputs | ListInputs:
    if loss.kind == "lists":
        return lists(seed=seed, grad=grad)
    return pairs(seed=seed, reference=loss.reference, grad=grad)
