"""The ``gpm`` head (Zhang et al. 2024): skew-symmetry invariants on random inputs, the
score against an explicitly built block matrix R, the loss against hand-computed closed
forms, the population reward and bad parameters. Tolerances: 1e-6 (float32 arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch

import prefkit.models.heads.gpm  # noqa: F401  (registers the head)
from prefkit.errors import PrefkitError
from prefkit.models.heads.base import PairBatch, build_head
from prefkit.models.heads.gpm import GeneralPreference


def make(dim: int, **params: object) -> GeneralPreference:
    head = build_head("gpm", dim, **params)
    assert isinstance(head, GeneralPreference)
    return head


def fixed_head(lams: list[float], normalize: bool) -> GeneralPreference:
    """Identity embedding (dim = 2k, no bias) and block scales ``lams``."""
    k = len(lams)
    head = make(2 * k, k=k, normalize=normalize)
    with torch.no_grad():
        head.net.weight.copy_(torch.eye(2 * k))
        head.net.bias.zero_()
        lam = torch.tensor(lams)
        head.lam_raw.copy_(torch.log(torch.expm1(lam)))  # softplus⁻¹
    return head


def batch(xa: list[list[float]], xb: list[list[float]], outcome: list[float]) -> PairBatch:
    n = len(outcome)
    return PairBatch(
        xa=torch.tensor(xa, dtype=torch.float32),
        xb=torch.tensor(xb, dtype=torch.float32),
        outcome=torch.tensor(outcome, dtype=torch.float32),
        strength=torch.full((n,), float("nan")),
        annotator=torch.full((n,), -1),
        weight=torch.ones(n),
    )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"normalize": False},
        {"k": 1, "hidden": 16},
        {"k": 3, "hidden": 8, "normalize": False, "learn_lambda": False},
    ],
)
def test_skew_symmetry_on_random_inputs(params: dict[str, object]) -> None:
    torch.manual_seed(0)
    head = make(6, **params).eval()
    with torch.no_grad():
        head.lam_raw.copy_(torch.randn_like(head.lam_raw))
    xa, xb = torch.randn(64, 6), torch.randn(64, 6)
    with torch.no_grad():
        s_ab, s_ba = head.score(xa, xb), head.score(xb, xa)
        p_ab, p_ba = head.prob(xa, xb), head.prob(xb, xa)
        p_aa = head.prob(xa, xa)
    assert p_ab.shape == (64,)
    assert s_ab.abs().max() > 1e-3  # the check is not vacuous
    torch.testing.assert_close(s_ab, -s_ba, atol=1e-6, rtol=0)
    torch.testing.assert_close(p_ab + p_ba, torch.ones(64), atol=1e-6, rtol=0)
    torch.testing.assert_close(p_aa, torch.full((64,), 0.5), atol=1e-6, rtol=0)


def test_score_equals_explicit_block_matrix() -> None:
    torch.manual_seed(1)
    head = make(5, k=3, normalize=True).eval()
    with torch.no_grad():
        head.lam_raw.copy_(torch.randn(3))
        lam = torch.nn.functional.softplus(head.lam_raw)
        R = torch.block_diag(*[torch.tensor([[0.0, -v], [v, 0.0]]) for v in lam.tolist()])
        xa, xb = torch.randn(10, 5), torch.randn(10, 5)
        va, vb = head.embed(xa), head.embed(xb)
        expected = torch.einsum("bi,ij,bj->b", va, R, vb)
        torch.testing.assert_close(head.score(xa, xb), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(R, -R.T)
        torch.testing.assert_close(va.norm(dim=1), torch.ones(10), atol=1e-6, rtol=0)


def test_loss_closed_form() -> None:
    # v_a = (1,0 | 0,1), v_b = (0,1 | 1,0): s = λ1(0·0 − 1·1) + λ2(1·1 − 0·0) = −2 + 0.5
    # tie: skipped
    # v_a = (0,2 | 0,0), v_b = (1,0 | 0,0), b wins: s = λ1(2·1 − 0·0) = 4, target 0
    head = fixed_head([2.0, 0.5], normalize=False)
    b = batch(
        [[1, 0, 0, 1], [1, 2, 3, 4], [0, 2, 0, 0]],
        [[0, 1, 1, 0], [4, 3, 2, 1], [1, 0, 0, 0]],
        [1, 0, -1],
    )
    expected = (math.log1p(math.exp(1.5)) + math.log1p(math.exp(4.0))) / 2
    assert head.loss(b).item() == pytest.approx(expected, abs=1e-6)
    # normalised: v_a, v_b of the first pair shrink by 1/√2 each (s = −0.75); the third
    # pair's v_a becomes (0,1,0,0) (s = 2)
    head_n = fixed_head([2.0, 0.5], normalize=True)
    expected_n = (math.log1p(math.exp(0.75)) + math.log1p(math.exp(2.0))) / 2
    assert head_n.loss(b).item() == pytest.approx(expected_n, abs=1e-6)
    with torch.no_grad():
        p = head_n.prob(b.xa, b.xb)
    assert float(p[0]) == pytest.approx(1 / (1 + math.exp(0.75)), abs=1e-6)


def test_ties_only_batch_has_zero_loss() -> None:
    head = make(4)
    b = batch([[1, 0, 0, 1]], [[0, 1, 1, 0]], [0])
    assert head.loss(b).item() == 0.0


def test_reward_is_mean_score_against_training_items() -> None:
    torch.manual_seed(2)
    head = make(6, k=2).eval()
    x, train = torch.randn(7, 6), torch.randn(30, 6)
    with torch.no_grad():
        assert torch.equal(head.reward(x), torch.zeros(7))  # before finish()
        head.finish(lambda: train)
        # bilinearity: s(x, mean v) = mean over training items y of s(x, y)
        pairwise = torch.stack([head.score(x, y.expand(7, 6)) for y in train]).mean(0)
        torch.testing.assert_close(head.reward(x), pairwise, atol=1e-6, rtol=0)
        assert head.reward(x).abs().max() > 1e-4


def test_fixed_lambda_is_not_learned() -> None:
    head = make(6, learn_lambda=False)
    names = {n for n, _ in head.named_parameters()}
    assert "lam_raw" not in names and "lam_raw" in head.state_dict()
    torch.testing.assert_close(head.lam(), torch.ones(4))
    x = torch.randn(50, 6)
    with torch.no_grad():
        assert float(head.score(x, x.flip(0)).abs().max()) <= 1.0 + 1e-6  # unit vectors, λ = 1


@pytest.mark.parametrize(("params", "match"), [({"k": 0}, "at least 1"), ({"k": "two"}, "int")])
def test_bad_params(params: dict[str, object], match: str) -> None:
    with pytest.raises(PrefkitError, match=match):
        make(4, **params)


def test_params_parse_from_strings() -> None:
    head = make(4, k="2", normalize="false")
    assert head.hparams == {
        "k": 2,
        "hidden": 0,
        "dropout": 0.0,
        "normalize": False,
        "learn_lambda": True,
    }
    assert head.embed(torch.randn(3, 4)).shape == (3, 4)
