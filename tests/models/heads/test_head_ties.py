"""The Davidson ties head: closed-form likelihood, probabilities, planted ν recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import prefkit.models.heads.ties  # registers "ties"
from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import from_arrays
from prefkit.models.heads.base import PairBatch, build_head
from prefkit.models.reward_model import RewardModel

DavidsonTies = prefkit.models.heads.ties.DavidsonTies


def identity_head(nu: float) -> DavidsonTies:
    """Head on 1-d features with reward(x) = x[:, 0] and tie parameter ``nu``."""
    head = DavidsonTies(1, nu_init=nu).double()
    with torch.no_grad():
        head.net.weight.fill_(1.0)
        head.net.bias.zero_()
    return head


def davidson(ra: float, rb: float, nu: float) -> tuple[float, float, float]:
    """Hand-written Davidson (1970) probabilities (a wins, b wins, tie)."""
    pa, pb = math.exp(ra), math.exp(rb)
    tie = nu * math.sqrt(pa * pb)
    z = pa + pb + tie
    return pa / z, pb / z, tie / z


def col(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_loss_is_the_davidson_nll():
    ra = [0.5, -1.0, 2.0, 0.0, 30.0]
    rb = [0.1, 0.7, -2.0, 0.0, -25.0]  # the last pair: exp overflows nothing in log space
    outcome = [1, -1, 0, 0, 1]
    nu = 0.8
    head = identity_head(nu)
    n = len(ra)
    batch = PairBatch(
        col(ra),
        col(rb),
        torch.tensor(outcome, dtype=torch.float64),
        torch.full((n,), float("nan"), dtype=torch.float64),
        torch.full((n,), -1),
        torch.ones(n, dtype=torch.float64),
    )
    want = []
    for x, y, o in zip(ra[:4], rb[:4], outcome[:4], strict=True):
        pw, pl, pt = davidson(x, y, nu)
        want.append(-math.log({1: pw, -1: pl, 0: pt}[o]))
    # last pair by hand in log space: -log(1 / (1 + e^-55 + nu e^-27.5))
    want.append(math.log1p(math.exp(-55.0) + nu * math.exp(-27.5)))
    assert float(head.loss(batch).detach()) == pytest.approx(np.mean(want), abs=1e-6)
    # weights: a zero-weight row drops out of the mean
    batch.weight = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    assert float(head.loss(batch).detach()) == pytest.approx(np.mean(want[:4]), abs=1e-6)


def test_probabilities_sum_to_one_and_match_davidson():
    rng = np.random.default_rng(0)
    ra, rb = list(rng.normal(size=20) * 2), list(rng.normal(size=20) * 2)
    nu = 1.7
    head = identity_head(nu)
    with torch.no_grad():
        p_ab = head.prob(col(ra), col(rb)).numpy()
        p_ba = head.prob(col(rb), col(ra)).numpy()
        t_ab = head.tie_prob(col(ra), col(rb)).numpy()
        t_ba = head.tie_prob(col(rb), col(ra)).numpy()
    win, lose = (1 - t_ab) * p_ab, (1 - t_ab) * p_ba
    np.testing.assert_allclose(win + lose + t_ab, 1.0, atol=1e-12)
    np.testing.assert_allclose(t_ab, t_ba, atol=1e-12)
    want = np.array([davidson(x, y, nu) for x, y in zip(ra, rb, strict=True)])
    np.testing.assert_allclose(np.c_[win, lose, t_ab], want, atol=1e-9)
    # equal rewards: P(tie) = nu / (2 + nu)
    with torch.no_grad():
        t = head.tie_prob(col([0.3]), col([0.3]))
    assert float(t) == pytest.approx(nu / (2 + nu), abs=1e-7)  # log nu is a float32 init
    assert head.nu_ == pytest.approx(nu, rel=1e-7)


def test_planted_nu_and_reward_are_recovered(tmp_path):
    rng = np.random.default_rng(0)
    n, nu = 300, 1.2
    X = rng.normal(size=(n, 6))
    r = X @ rng.normal(size=6) * 0.5
    a, b = rng.integers(0, n, 4000), rng.integers(0, n, 4000)
    a, b = a[a != b], b[a != b]
    probs = np.array([davidson(r[i], r[j], nu) for i, j in zip(a, b, strict=True)])
    u = rng.random(len(a))
    y = np.where(u < probs[:, 0], 1, np.where(u < probs[:, 0] + probs[:, 1], -1, 0))
    data = from_arrays(n, a=a, b=b, outcome=y)
    model = RewardModel("ties", ArrayBackbone(X), epochs=30, lr=0.02).fit(data)
    # tolerance: 15% relative on nu (measured 1.27 from nu_init 0.5), corr measured 0.998
    assert model.head_.nu_ == pytest.approx(nu, rel=0.15)
    assert np.corrcoef(model.rewards(data), r)[0, 1] > 0.95
    p, t = model.pair_probs(data)
    assert np.all((t > 0) & (t < 1)) and np.all((p > 0) & (p < 1))
    assert abs(t.mean() - (y == 0).mean()) < 0.03  # fitted tie rate matches the data's
    loaded = RewardModel.load(model.save(tmp_path / "ties"))
    assert loaded.head_.nu_ == model.head_.nu_
    np.testing.assert_array_equal(loaded.pair_probs(data)[1], t)


@pytest.mark.parametrize("value", [0.0, -1.0, "abc", float("inf")])
def test_bad_nu_init_is_a_user_error(value):
    with pytest.raises(PrefkitError, match="nu_init"):
        build_head("ties", 4, nu_init=value)
