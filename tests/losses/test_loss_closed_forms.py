"""Every loss at hand-computed points, and the reductions between losses.

Golden values are written out from the formulas with plain ``math`` at simple points
(log 2, σ(log 4) = 4/5, ...). Tolerance 1e-12 (float64) unless stated.
"""

from __future__ import annotations

import math

import pytest
import torch
from losscases import D, lists, one_list, pair, pairs, t

from prefkit.errors import PrefkitError
from prefkit.losses.base import PairInputs, get

LOG2 = math.log(2)


def call(name: str, x: object, **params: float) -> torch.Tensor:
    loss = get(name)
    return loss.fn(x, **loss.resolve(params))


def close(a: torch.Tensor, b: float | torch.Tensor, tol: float = 1e-12) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=D).expand_as(a), rtol=0, atol=tol)


def softplus(z: float) -> float:  # -log σ(-z)
    return math.log1p(math.exp(z))


# ---- reference-based pairs -------------------------------------------------------------


def test_dpo_at_zero_margin_is_log2_and_known_point() -> None:
    close(call("dpo", pair(-3, -5, -3, -5)), LOG2)
    # h = (-1 - -2) - (-4 - -3) = 2, β = 0.5: -log σ(1) = log(1 + e^-1)
    close(call("dpo", pair(-1, -4, -2, -3), beta=0.5), softplus(-1))


def test_cdpo_reduces_to_dpo_and_is_symmetric_at_half() -> None:
    x = pairs(seed=1)
    close(call("cdpo", x, eps=0.0), call("dpo", x))
    # ε = ½: the label carries no information; the loss is even in h, log 2 at h = 0
    close(call("cdpo", pair(1.5, 0), eps=0.5), call("cdpo", pair(0, 1.5), eps=0.5))
    close(call("cdpo", pair(0, 0), eps=0.5), LOG2)
    # h = 2, β = 0.5, ε = 0.25: 0.75 softplus(-1) + 0.25 softplus(1)
    close(call("cdpo", pair(0, -2), beta=0.5, eps=0.25), 0.75 * softplus(-1) + 0.25 * softplus(1))


def test_rdpo_reduces_to_dpo_and_known_point() -> None:
    x = pairs(seed=2)
    close(call("rdpo", x, eps=0.0), call("dpo", x))
    # h = 1, β = 1, ε = 0.2: [0.8 softplus(-1) - 0.2 softplus(1)] / 0.6
    expected = (0.8 * softplus(-1) - 0.2 * softplus(1)) / 0.6
    close(call("rdpo", pair(0, -1), beta=1.0, eps=0.2), expected)


def test_ipo_is_length_normalised_square() -> None:
    # log-ratios 2 over 4 tokens and -1 over 2 tokens: averages 0.5 and -0.5, margin 1;
    # β = 0.25 puts the target at 2, so the loss is (1 - 2)² = 1
    x = pair(2, -1, 0, 0, chosen_len=4, rejected_len=2)
    close(call("ipo", x, beta=0.25), 1.0)
    close(call("ipo", pair(3, 0, 0, 0, chosen_len=3, rejected_len=5), beta=0.5), 0.0)


def test_hinge_values() -> None:
    close(call("hinge", pair(5, 0), beta=0.1), 0.5)
    close(call("hinge", pair(20, 0), beta=0.1), 0.0)
    close(call("hinge", pair(0, 10), beta=0.1), 2.0)


def test_dpo_norm_equals_dpo_for_single_tokens_and_divides_otherwise() -> None:
    x = pairs(seed=3)
    ones = PairInputs(
        *(
            getattr(x, f)
            for f in ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
        ),
        torch.ones(6, dtype=D),
        torch.ones(6, dtype=D),
        x.strength,
    )
    close(call("dpo_norm", ones), call("dpo", ones))
    # averages 4/4 = 1 and -2/2 = -1: margin 2, β = 0.5: softplus(-1)
    close(call("dpo_norm", pair(4, -2, 0, 0, 4, 2), beta=0.5), softplus(-1))


# ---- reference-free pairs ----------------------------------------------------------------


def test_simpo_known_point() -> None:
    # averages -4/4 = -1 and -4/2 = -2; β = 2, γ = 1: -log σ(2 - 1)
    x = pair(-4, -4, None, None, chosen_len=4, rejected_len=2)
    close(call("simpo", x, beta=2.0, gamma=1.0), softplus(-1))
    close(call("simpo", pair(-3, -3, None, None), beta=2.0, gamma=0.0), LOG2)


def test_orpo_known_point() -> None:
    # ā_w = log ½ (odds 1), ā_l = log 0.2 (odds ¼): odds ratio 4, σ(log 4) = 4/5
    x = pair(2 * math.log(0.5), 3 * math.log(0.2), None, None, chosen_len=2, rejected_len=3)
    close(call("orpo", x, lam=0.3), LOG2 + 0.3 * math.log(5 / 4))
    close(call("orpo", pair(-1.5, -1.5, None, None), lam=1.0), 1.5 + LOG2)


def test_mapo_known_point() -> None:
    # ℓ_w = log 2 → s = log 2 / (2 - 1); ℓ_l = log 3 → s = log 3 / 2;
    # T (s_w - s_l) = 2 · ½ log(4/3) = log(4/3), σ = 4/7
    x = pair(-math.log(2), -2 * math.log(3), None, None, chosen_len=1, rejected_len=2)
    close(call("mapo", x, beta=0.5, gamma=1.0, scale=2.0), LOG2 - 0.5 * math.log(4 / 7))
    close(call("mapo", pair(-2, -2, None, None), beta=1.0), 2 + LOG2)


def test_mapo_score_is_continuous_at_zero_nll() -> None:
    from prefkit.losses.reference_free import mapo_score

    s = mapo_score(t(0.0, 1e-9, 1e-6), 1.0)
    close(s, 1.0, tol=1e-6)


# ---- soft labels -------------------------------------------------------------------------


def test_soft_reductions() -> None:
    x = pairs(seed=4)
    hard = PairInputs(*list(x.__dict__.values())[:-1], torch.ones(6, dtype=D))
    close(call("soft", hard), call("dpo", hard))
    close(call("gdpo", hard), call("dpo", hard))
    for eps in (0.1, 0.3):
        smooth = PairInputs(*list(x.__dict__.values())[:-1], torch.full((6,), 1 - eps, dtype=D))
        close(call("soft", smooth), call("cdpo", smooth, eps=eps))
    # p = 0 is DPO with the pair swapped
    zero = PairInputs(*list(x.__dict__.values())[:-1], torch.zeros(6, dtype=D))
    swapped = PairInputs(
        x.rejected_logps,
        x.chosen_logps,
        x.ref_rejected_logps,
        x.ref_chosen_logps,
        x.rejected_len,
        x.chosen_len,
        x.strength,
    )
    close(call("soft", zero), call("dpo", swapped))


def test_soft_known_point_and_gdpo_flat_at_half() -> None:
    # h = 2, β = 0.5, p = 0.75: 0.75 softplus(-1) + 0.25 softplus(1); gdpo: -log σ(0.5)
    close(
        call("soft", pair(0, -2, strength=0.75), beta=0.5), 0.75 * softplus(-1) + 0.25 * softplus(1)
    )
    close(call("gdpo", pair(0, -2, strength=0.75), beta=0.5), softplus(-0.5))
    x = pair(1.0, -2.0, strength=0.5)
    x.chosen_logps.requires_grad_(True)
    out = call("gdpo", x)
    out.sum().backward()
    close(out, LOG2)
    assert x.chosen_logps.grad is not None and float(x.chosen_logps.grad.abs()) == 0.0


def test_strength_outside_unit_interval_is_refused() -> None:
    with pytest.raises(PrefkitError, match="strength"):
        call("soft", pair(0, -1, strength=1.5))


# ---- lists -------------------------------------------------------------------------------


def dpo_of(r_w: float, r_l: float, beta: float = 0.1) -> float:
    return softplus(-beta * (r_w - r_l))


def test_pl_with_two_items_is_dpo() -> None:
    close(call("pl", one_list([0.7, -1.2], [1, 0])), dpo_of(0.7, -1.2))
    x = pairs(seed=5)
    as_lists = type(lists())(
        torch.stack([x.chosen_logps, x.rejected_logps], 1),
        torch.stack([x.ref_chosen_logps, x.ref_rejected_logps], 1),  # type: ignore[list-item]
        torch.stack([x.chosen_len, x.rejected_len], 1),
        t(1, 0).expand(6, 2),
        torch.ones(6, 2, dtype=torch.bool),
    )
    close(call("pl", as_lists), call("dpo", x))


def test_pl_three_items_and_ties() -> None:
    a, b, c = 1.0, 0.0, -1.0  # β = 1
    e = [math.exp(v) for v in (a, b, c)]
    prob = e[0] / sum(e) * e[1] / (e[1] + e[2])  # ranking a > b > c
    close(call("pl", one_list([a, b, c], [3, 2, 1]), beta=1.0), -math.log(prob))
    # a ~ b tied above c: each chooses from the whole set {a, b, c}
    tied = -math.log(e[0] / sum(e)) - math.log(e[1] / sum(e))
    close(call("pl", one_list([a, b, c], [2, 2, 0]), beta=1.0), tied)
    close(call("pl", one_list([a, b, c], [1, 1, 1]), beta=1.0), 0.0)


LAMBDA2 = 1 - 1 / math.log2(3)  # |1/log2(2) - 1/log2(3)|


@pytest.mark.parametrize("name", ["lipo", "rankdpo"])
def test_lambda_losses_on_two_items_are_weighted_dpo(name: str) -> None:
    # ψ = (2, 0.5): weight (2² - 2^0.5)(1 - 1/log2 3), whichever item the model ranks first
    w = (4 - math.sqrt(2)) * LAMBDA2
    close(call(name, one_list([0.7, -1.2], [2, 0.5])), w * dpo_of(0.7, -1.2))
    close(call(name, one_list([-1.2, 0.7], [2, 0.5])), w * dpo_of(-1.2, 0.7))
    close(call(name, one_list([-1.2, 0.7], [1, 1])), 0.0)


def test_rankdpo_and_lipo_three_items() -> None:
    r = [0.0, 2.0, 1.0]  # model ranks item 1 first, then 2, then 0; β = 1
    psi = [2.0, 1.0, 0.0]  # labels rank 0, 1, 2; gains 3, 1, 0
    g = [3.0, 1.0, 0.0]
    disc = {1: 1.0, 2: 1 / math.log2(3), 3: 0.5}

    def total(rank: list[int]) -> float:
        out = 0.0
        for i in range(3):
            for j in range(3):
                if psi[i] > psi[j]:
                    w = abs(g[i] - g[j]) * abs(disc[rank[i]] - disc[rank[j]])
                    out += w * softplus(-(r[i] - r[j]))
        return out

    close(call("rankdpo", one_list(r, psi), beta=1.0), total([1, 2, 3]))
    close(call("lipo", one_list(r, psi), beta=1.0), total([3, 1, 2]))


# ---- mixins ------------------------------------------------------------------------------


def test_nll_and_selm() -> None:
    close(call("nll", pair(-6, -1, None, None, chosen_len=3)), 2.0)
    close(call("selm", pair(-1, -2, -3, -1), beta=0.5), 0.5 * (2 + -1) / 2)
    x = pairs(seed=6)
    same = PairInputs(
        x.chosen_logps,
        x.rejected_logps,
        x.chosen_logps,
        x.rejected_logps,
        x.chosen_len,
        x.rejected_len,
        x.strength,
    )
    close(call("selm", same), 0.0)
