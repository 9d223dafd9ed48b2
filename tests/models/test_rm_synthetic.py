"""Planted-truth generators and experiments (:mod:`prefkit.models.synthetic`), and
save/load round trips of fitted ``gpm`` and ``pal`` reward models.

Experiment thresholds (seeded, deterministic): on cyclic data (β = 5, 600 items, half
held out) a linear BT sits at chance, |acc − 0.5| ≤ 0.07, and GPM reaches ≥ 0.7 for
seeds 0, 1, 2 (measured over seeds 0-19: BT 0.450-0.558, GPM 0.889-0.919). On two
opposed annotator groups, PAL adapted on k = 8 judgments beats one BT model for everyone
by ≥ 0.08 on new annotators, and gains ≥ 0.1 from k = 0 to k = 16 (seed 0 measured:
BT 0.581, PAL 0.585 / 0.873 / 0.873 at k = 0 / 8 / 16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import prefkit.models.heads.gpm  # registers the heads
import prefkit.models.heads.pal  # noqa: F401
from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.reward_model import RewardModel
from prefkit.models.synthetic import (
    cycles_experiment,
    cyclic_preferences,
    few_shot_experiment,
    group_preferences,
)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# --- generators -----------------------------------------------------------------------------
def test_cyclic_generator_follows_the_planted_probabilities() -> None:
    x, data = cyclic_preferences(n_items=200, dim=6, n_pairs=20000, seed=3, beta=2.0)
    x2, data2 = cyclic_preferences(n_items=200, dim=6, n_pairs=20000, seed=3, beta=2.0)
    assert x.shape == (200, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(data.pairs.outcome, data2.pairs.outcome)
    p = data.pairs
    assert len(p) == 20000 and not (p.a == p.b).any()
    assert set(np.unique(p.outcome)) == {-1, 1}
    theta = data.meta["theta"]
    prob = sigmoid(2.0 * np.sin(theta[p.a] - theta[p.b]))
    # observed win rate vs planted mean probability, within 4 standard errors
    se = np.sqrt((prob * (1 - prob)).sum()) / len(p)
    assert abs((p.outcome == 1).mean() - prob.mean()) < 4 * se
    hi = prob > 0.8  # calibration of a confident slice
    se_hi = np.sqrt((prob[hi] * (1 - prob[hi])).sum()) / hi.sum()
    assert abs((p.outcome[hi] == 1).mean() - prob[hi].mean()) < 4 * se_hi
    # the features carry the angle linearly: (cos, sin) is recoverable by least squares
    circle = np.stack([np.cos(theta), np.sin(theta)], 1)
    coef, *_ = np.linalg.lstsq(np.c_[x, np.ones(200)], circle, rcond=None)
    assert np.abs(np.c_[x, np.ones(200)] @ coef - circle).max() < 0.5


def test_group_generator_plants_opposed_directions() -> None:
    x, data, groups = group_preferences(
        n_items=100, dim=8, n_groups=2, n_annotators=30, pairs_per_annotator=400, seed=1
    )
    w = data.meta["w"]
    assert x.shape == (100, 8) and w.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), [3.0, 3.0], atol=1e-9)
    # cos(w0, w1) = shared² − (1 − shared²) = 0.09 − 0.91
    assert w[0] @ w[1] / 9.0 == pytest.approx(-0.82, abs=1e-9)
    assert np.bincount(groups).tolist() == [15, 15]
    p = data.pairs
    assert np.bincount(p.annotator).tolist() == [400] * 30
    assert len(data.annotators) == 30
    # labels follow each annotator's group reward (mean probability within 4 SE)
    prob = sigmoid(np.einsum("nd,nd->n", x[p.a] - x[p.b], w[groups[p.annotator]]))
    se = np.sqrt((prob * (1 - prob)).sum()) / len(p)
    assert abs((p.outcome == 1).mean() - prob.mean()) < 4 * se
    three = group_preferences(dim=8, n_groups=3, n_annotators=6, seed=0)[1].meta["w"]
    cos = three @ three.T / 9.0
    np.testing.assert_allclose(cos[~np.eye(3, dtype=bool)], 0.09 - 0.91 / 2, atol=1e-9)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cyclic_preferences(dim=1), "dim >= 2"),
        (lambda: cyclic_preferences(n_items=1), "at least 2 items"),
        (lambda: group_preferences(dim=4, n_groups=4), "n_groups < dim"),
        (lambda: group_preferences(shared=1.5), r"shared must lie in \[0, 1\]"),
        (lambda: few_shot_experiment(ks=(0, 80)), "leaves no judgments"),
    ],
)
def test_bad_inputs(call: Callable[[], object], match: str) -> None:
    with pytest.raises(PrefkitError, match=match):
        call()


# --- experiments ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gpm_recovers_cycles_bt_is_at_chance(seed: int) -> None:
    out = cycles_experiment(seed)
    assert out["n_test"] > 1000
    assert abs(out["bt"] - 0.5) <= 0.07
    assert out["gpm"] >= 0.7
    assert out["gpm"] <= out["oracle"] + 0.03  # cannot beat the planted truth by much


@pytest.fixture(scope="module")
def few_shot() -> dict[int, dict[str, float]]:
    return {int(r["k"]): r for r in few_shot_experiment(ks=(0, 8, 16), seed=0)}


def test_pal_beats_bt_on_new_annotators(few_shot: dict[int, dict[str, float]]) -> None:
    assert few_shot[8]["pal"] >= few_shot[8]["bt"] + 0.08
    assert few_shot[16]["pal"] <= few_shot[16]["oracle"] + 0.03


def test_pal_improves_with_more_shots(few_shot: dict[int, dict[str, float]]) -> None:
    assert few_shot[16]["pal"] >= few_shot[0]["pal"] + 0.1


# --- persistence ----------------------------------------------------------------------------
def test_gpm_save_load_gives_identical_probs(tmp_path: Path) -> None:
    x, data = cyclic_preferences(n_items=80, dim=6, n_pairs=600, seed=0)
    model = RewardModel("gpm", ArrayBackbone(x), head_params={"k": 2}, epochs=3).fit(data)
    loaded = RewardModel.load(model.save(tmp_path / "gpm"))
    p, t = model.pair_probs(data)
    p2, t2 = loaded.pair_probs(data)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(t, t2)
    np.testing.assert_array_equal(model.rewards(data), loaded.rewards(data))
    assert np.abs(model.rewards(data)).max() > 0  # the mean embedding was saved, not zero


def test_pal_save_load_gives_identical_probs(tmp_path: Path) -> None:
    x, data, _ = group_preferences(n_items=60, n_annotators=6, pairs_per_annotator=50, seed=0)
    train = replace(data, pairs=data.pairs.take(np.flatnonzero(data.pairs.annotator < 4)))
    train = replace(train, annotators=data.annotators[:4])
    model = RewardModel("pal", ArrayBackbone(x), head_params={"prototypes": 3}, epochs=3)
    model.fit(train)
    loaded = RewardModel.load(model.save(tmp_path / "pal"))
    assert loaded.annotators_ == ["u0", "u1", "u2", "u3"]
    p, _ = model.pair_probs(data)  # u4, u5 are unknown to the model: population weights
    p2, _ = loaded.pair_probs(data)
    np.testing.assert_array_equal(p, p2)
    new = data.pairs.annotator >= 4
    assert not np.allclose(p[~new][:50], 0.5)
    np.testing.assert_array_equal(model.rewards(data), loaded.rewards(data))


def test_pal_without_annotators_round_trips(tmp_path: Path) -> None:
    # no annotator names: θ has zero rows, everyone gets uniform weights
    x, data = cyclic_preferences(n_items=40, dim=4, n_pairs=200, seed=1)
    model = RewardModel("pal", ArrayBackbone(x), epochs=2).fit(data)
    loaded = RewardModel.load(model.save(tmp_path / "pal0"))
    assert tuple(loaded.head_.theta.shape) == (0, 2)
    np.testing.assert_array_equal(model.pair_probs(data)[0], loaded.pair_probs(data)[0])
