"""The Bradley–Terry head: closed-form losses and options, bad parameters, planted truth,
and a save/load round-trip through RewardModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import from_arrays
from prefkit.models.heads.base import PairBatch, build_head
from prefkit.models.heads.bt import BradleyTerry
from prefkit.models.reward_model import RewardModel

RA = np.array([0.5, -1.0, 2.0, 0.3, 4.0, -0.2])
RB = np.array([0.1, 0.7, -2.0, 0.9, -3.0, 1.5])
OUTCOME = np.array([1, -1, 1, 0, -1, 1])
STRENGTH = np.array([2.0, 1.0, np.nan, np.nan, 0.5, np.nan])


def nll(z: np.ndarray) -> np.ndarray:
    """-log sigmoid(z)."""
    return np.log1p(np.exp(-z))


def loss_of(weight: np.ndarray | None = None, **params: object) -> float:
    """The loss of the fixed batch under a head with reward(x) = x[:, 0]."""
    head = BradleyTerry(1, **params).double()
    with torch.no_grad():
        head.net.weight.fill_(1.0)
        head.net.bias.zero_()
    n = len(RA)
    batch = PairBatch(
        torch.tensor(RA)[:, None],
        torch.tensor(RB)[:, None],
        torch.tensor(OUTCOME, dtype=torch.float64),
        torch.tensor(STRENGTH),
        torch.full((n,), -1),
        torch.ones(n, dtype=torch.float64) if weight is None else torch.tensor(weight),
    )
    return float(head.loss(batch).detach())


DECISIVE = OUTCOME != 0
Z = (np.sign(OUTCOME) * (RA - RB))[DECISIVE]  # winner minus loser, decisive rows


def test_loss_is_mean_negative_log_sigmoid():
    assert loss_of() == pytest.approx(nll(Z).mean(), abs=1e-12)
    w = np.array([1.0, 3.0, 0.0, 1.0, 2.0, 1.0])  # row weights give a weighted mean
    assert loss_of(w) == pytest.approx(np.average(nll(Z), weights=w[DECISIVE]), abs=1e-12)


def test_margin_is_subtracted_on_the_winner_side_only_where_strength_is_known():
    m = 0.7
    s = np.nan_to_num(STRENGTH[DECISIVE], nan=0.0)  # NaN strength: no margin
    want = nll(Z - m * s).mean()
    assert loss_of(margin=m) == pytest.approx(want, abs=1e-12)
    # the margin makes the loss larger than plain BT wherever it applies
    assert loss_of(margin=m) > loss_of()


def test_centering_adds_the_mean_squared_reward_sum():
    c = 0.05
    want = nll(Z).mean() + c * ((RA + RB)[DECISIVE] ** 2).mean()
    assert loss_of(center=c) == pytest.approx(want, abs=1e-12)


def test_ties_half_target_versus_skip():
    d = RA - RB
    tie = ~DECISIVE
    half = np.concatenate([nll(Z), 0.5 * nll(d[tie]) + 0.5 * nll(-d[tie])]).mean()
    assert loss_of(ties="half") == pytest.approx(half, abs=1e-12)
    assert loss_of(ties="skip") == pytest.approx(nll(Z).mean(), abs=1e-12)
    # skip: the tie row's weight is zero, so its weight value does not matter
    w = np.ones(len(RA))
    w[tie] = 5.0
    assert loss_of(w, ties="skip") == pytest.approx(loss_of(ties="skip"), abs=1e-12)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden": "two"}, "hidden"),
        ({"margin": "big"}, "margin"),
        ({"dropout": "none"}, "dropout"),
        ({"tie": "half"}, "no parameter 'tie'"),
    ],
)
def test_bad_parameters_are_user_errors(params, match):
    with pytest.raises(PrefkitError, match=match):
        build_head("bt", 4, **params)


def test_unknown_ties_value_is_a_user_error():
    with pytest.raises(PrefkitError, match="ties"):
        build_head("bt", 4, ties="ignore")


def test_string_parameters_are_parsed():
    head = build_head("bt", 4, hidden="8", margin="0.5")
    assert head.hparams["hidden"] == 8 and head.hparams["margin"] == 0.5
    assert sum(p.numel() for p in head.parameters()) == 4 * 8 + 8 + 8 + 1


def test_planted_reward_is_recovered_and_survives_save_load(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    X = rng.normal(size=(n, 8))
    r = X @ rng.normal(size=8)
    a, b = rng.integers(0, n, 3000), rng.integers(0, n, 3000)
    y = np.where(rng.random(3000) < 1 / (1 + np.exp(-(r[a] - r[b]))), 1, -1)
    data = from_arrays(n, a=a, b=b, outcome=y)
    model = RewardModel("bt", ArrayBackbone(X), epochs=30).fit(data)
    got = model.rewards(data)
    assert np.corrcoef(got, r)[0, 1] > 0.98  # measured 0.996
    loaded = RewardModel.load(model.save(tmp_path / "bt"))
    np.testing.assert_array_equal(loaded.rewards(data), got)
    p, t = model.pair_probs(data)
    lp, lt = loaded.pair_probs(data)
    np.testing.assert_array_equal(lp, p)
    assert np.all(t == 0) and np.all(lt == 0)
    assert loaded.head_.hparams == model.head_.hparams
