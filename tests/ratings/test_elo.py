"""Online Elo against closed forms and fschat's compute_elo."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

import prefkit
from prefkit.errors import PrefkitError
from prefkit.ratings.elo import Elo


def compute_elo(battles, k=4, scale=400, base=10, init=1000):
    """Golden: the published fschat ``elo_analysis.compute_elo`` loop, re-typed."""
    rating = defaultdict(lambda: init)
    for model_a, model_b, winner in battles:
        ra, rb = rating[model_a], rating[model_b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        if winner == "model_a":
            sa = 1
        elif winner == "model_b":
            sa = 0
        elif winner in ("tie", "tie (bothbad)"):
            sa = 0.5
        else:
            raise ValueError(winner)
        rating[model_a] += k * (sa - ea)
        rating[model_b] += k * (1 - sa - eb)
    return dict(rating)


def _random_battles(n, n_models=6, seed=0):
    rng = np.random.default_rng(seed)
    skill = rng.normal(scale=150, size=n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    p = 1 / (1 + 10 ** (-(skill[a] - skill[b]) / 400))
    u = rng.random(n)
    winner = np.where(u < 0.1, "tie", np.where(u < 0.1 + 0.9 * p, "model_a", "model_b")).astype(
        object
    )
    winner[rng.random(n) < 0.02] = "tie (bothbad)"
    names = np.array([f"model-{i}" for i in range(n_models)])
    return names[a], names[b], winner


def test_single_update_closed_form():
    fit = Elo().fit((["x"], ["y"], ["model_a"]))
    assert fit.as_dict() == {"x": 1002.0, "y": 998.0}  # e = 1/2, k = 4
    fit = Elo(k=32).fit((["x"], ["y"], ["tie"]))
    assert fit.as_dict() == {"x": 1000.0, "y": 1000.0}
    # second battle from 1002 / 998: e_y = 1 / (1 + 10^(4/400))
    fit = Elo().fit((["x", "y"], ["y", "x"], ["model_a", "model_a"]))
    e_y = 1 / (1 + 10 ** (4 / 400))
    assert fit.ratings_[1] == pytest.approx(998 + 4 * (1 - e_y), abs=1e-12)
    assert fit.ratings_[0] == pytest.approx(1002 - 4 * (1 - e_y), abs=1e-12)


def test_matches_fschat_compute_elo():
    a, b, w = _random_battles(5000)
    golden = compute_elo(zip(a.tolist(), b.tolist(), w.tolist(), strict=True))
    fit = Elo().fit(pa.table({"model_a": a, "model_b": b, "winner": w}))
    assert fit.items_ == sorted(golden)
    np.testing.assert_allclose(fit.ratings_, [golden[m] for m in fit.items_], atol=1e-9)
    assert fit.ratings_.mean() == pytest.approx(1000)  # each update conserves the sum
    # other scale parameters too
    golden = compute_elo(zip(a.tolist(), b.tolist(), w.tolist(), strict=True), k=16, init=1500)
    fit = Elo(k=16, init=1500).fit({"model_a": a, "model_b": b, "winner": w})
    np.testing.assert_allclose(fit.ratings_, [golden[m] for m in fit.items_], atol=1e-9)


def test_order_dependence():
    a, b, w = _random_battles(3000, seed=1)
    forward = Elo().fit((a, b, w)).ratings_
    backward = Elo().fit((a[::-1], b[::-1], w[::-1])).ratings_
    assert np.max(np.abs(forward - backward)) > 1.0
    # Bradley–Terry would not care; Elo does: the order is part of the input
    perm = np.random.default_rng(2).permutation(len(a))
    shuffled = Elo().fit((a[perm], b[perm], w[perm])).ratings_
    assert not np.allclose(forward, shuffled)


def test_numeric_outcomes_ties_and_history():
    a, b, w = _random_battles(500, seed=3)
    outcome = np.select([w == "model_a", w == "model_b"], [1, -1], 0)
    by_label = Elo(record_history=True).fit((a, b, w))
    by_number = Elo().fit((a, b, outcome))
    np.testing.assert_allclose(by_label.ratings_, by_number.ratings_)
    assert by_label.history_.shape == (500, 2)
    last = {m: r for m, r in zip(by_label.items_, by_label.ratings_, strict=True)}
    assert by_label.history_[-1].tolist() == [last[a[-1]], last[b[-1]]]
    decisive = ~np.isin(w, ["tie", "tie (bothbad)"])
    dropped = Elo(ties="drop").fit((a, b, w))
    golden = compute_elo(zip(a[decisive], b[decisive], w[decisive], strict=True))
    np.testing.assert_allclose(dropped.ratings_, [golden[m] for m in dropped.items_])
    assert dropped.n_battles_ == int(decisive.sum())


def test_bad_input():
    with pytest.raises(PrefkitError, match="row 1"):
        Elo().fit((["x", "y"], ["y", "x"], ["model_a", "a wins"]))
    with pytest.raises(PrefkitError, match="model_a"):
        Elo().fit({"a": ["x"], "b": ["y"]})
    with pytest.raises(PrefkitError, match="ties="):
        Elo(ties="davidson").fit((["x"], ["y"], ["tie"]))


@pytest.mark.shared_data
def test_vicuna_battles_match_golden(shared_data):
    ds = prefkit.load(shared_data / "vicuna80_human_battles")
    battles = ds.to_battles(ties="keep")
    golden = compute_elo(
        zip(*(battles.column(c).to_pylist() for c in ("model_a", "model_b", "winner")), strict=True)
    )
    fit = Elo().fit(ds)
    assert len(fit.items_) == 9 and fit.n_battles_ == 7040
    np.testing.assert_allclose(fit.ratings_, [golden[m] for m in fit.items_], atol=1e-9)
