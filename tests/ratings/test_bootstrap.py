"""Bootstrap intervals: exact multinomial draws, coverage, degenerate rounds, ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import prefkit
from prefkit.errors import PrefkitError
from prefkit.ratings import (
    ArenaResult,
    BattleCounts,
    BradleyTerry,
    analytic_intervals,
    arena_ranks,
    bootstrap,
)
from prefkit.ratings.bootstrap import multinomial_rows
from prefkit.synth import simulate


def _counts(rows):
    a, b, w = zip(*rows, strict=True)
    return BattleCounts.from_arrays(list(a), list(b), list(w))


# --- sampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [7, 60, 5000])
def test_multinomial_rows_moments(n):
    """Poisson draws corrected to exactly n battles are Multinomial(n, p): every total is
    n, and means / variances / covariances match within 5 standard errors."""
    rng = np.random.Generator(np.random.SFC64(0))
    p = np.array([0.5, 0.25, 0.15, 0.1, 0.0])
    x = multinomial_rows(rng, n, p, 40_000)
    assert (x.sum(axis=1) == n).all() and (x[:, -1] == 0).all()
    k = len(x)
    se_mean = np.sqrt(n * p * (1 - p) / k)
    assert np.all(np.abs(x.mean(axis=0) - n * p) <= 5 * se_mean + 1e-12)
    expected = n * (np.diag(p) - np.outer(p, p))
    var = np.diag(expected)
    # Standard error of a sample covariance (normal approximation): √((σ_i²σ_j² + σ_ij²) / k).
    se_cov = np.sqrt((np.outer(var, var) + expected**2) / k)
    assert np.all(np.abs(np.cov(x.T) - expected) <= 5 * se_cov + 1e-12)


def test_multinomial_rows_small_n_distribution():
    """n = 3 over 3 cells: the 10 outcomes have their exact multinomial frequencies."""
    from math import factorial

    rng = np.random.Generator(np.random.SFC64(1))
    p = np.array([0.5, 0.3, 0.2])
    x = multinomial_rows(rng, 3, p, 200_000)
    keys, freq = np.unique(x, axis=0, return_counts=True)
    for key, f in zip(keys, freq, strict=True):
        prob = factorial(3) / np.prod([factorial(int(v)) for v in key]) * np.prod(p**key)
        assert abs(f / len(x) - prob) < 5 * np.sqrt(prob * (1 - prob) / len(x))


# --- coverage ---------------------------------------------------------------------------------
def test_coverage_is_close_to_nominal():
    """160 simulated datasets (1,500 battles, 6 models, planted skills) × 200 rounds:
    95% percentile intervals covered the planted rating in 94.8% of the 960 cases with
    these seeds (standard error ≈ 0.7 points). Asserted band: 0.92–0.975."""
    n_sets, per = 160, 1500
    ds = simulate(kind="battles", n_models=6, n_prompts=n_sets * per, seed=0)
    battles = ds.to_battles(ties="keep")
    skills = ds.manifest.planted["models"]["skills"]
    hits = []
    for k in range(n_sets):
        counts = BattleCounts.from_battles(battles.slice(k * per, per))
        truth = np.array([skills[m] for m in counts.models])
        truth = truth - truth.mean() + 1000
        res = bootstrap(counts, BradleyTerry(), rounds=200, seed=k, n_jobs=1)
        hits.append((res.lower <= truth) & (truth <= res.upper))
    coverage = float(np.mean(hits))
    assert 0.92 <= coverage <= 0.975, coverage


# --- degenerate rounds ------------------------------------------------------------------------
def test_degenerate_rounds_reported_and_kept_sane():
    """a lost 2 of its 15 battles (30 in all): ≈ 12.6% of the resamples have no loss of a,
    so no finite fit. They are counted, attributed to a, and refitted with virtual ties
    (ratings stay within 700 points of the mean) or dropped."""
    rows = (
        [("a", "b", "model_a")] * 9
        + [("a", "b", "model_b")]
        + [("b", "c", "model_a")] * 5
        + [("b", "c", "model_b")] * 5
        + [("a", "c", "model_a")] * 4
        + [("a", "c", "model_b")]
    )
    counts = _counts(rows)
    res = bootstrap(counts, rounds=2000, seed=0)
    # a loses 2 of its 15 battles among 30: P(no loss of a in a resample) = (28/30)^30 ≈ 0.126.
    assert 0.09 < res.degenerate_rounds / 2000 < 0.16
    assert max(res.degenerate_models, key=res.degenerate_models.get) == "a"
    assert res.degenerate_policy == "pseudo" and res.unconverged_rounds == 0
    assert np.isfinite(res.samples).all()
    assert np.abs(res.samples - 1000).max() < 700  # no absurd ratings
    assert any("no finite fit" in w for w in res.warnings)
    dropped = bootstrap(counts, rounds=2000, seed=0, degenerate="drop")
    assert (
        np.isnan(dropped.samples).any(axis=1).sum()
        == dropped.degenerate_rounds
        == res.degenerate_rounds
    )
    assert np.isfinite(dropped.lower).all()


def test_group_that_never_loses_is_caught():
    """{a, b} split 5–5 and {c, d} split 5–5, a beat c 9 of 10: every model wins and
    loses, yet resamples without c's single win have no finite fit (the exact
    strongly-connected check finds them)."""
    rows = (
        [("a", "b", "model_a")] * 5
        + [("a", "b", "model_b")] * 5
        + [("c", "d", "model_a")] * 5
        + [("c", "d", "model_b")] * 5
        + [("a", "c", "model_a")] * 9
        + [("a", "c", "model_b")]
    )
    res = bootstrap(_counts(rows), rounds=1000, seed=0)
    # P(c's win is not drawn) = (29/30)^30 ≈ 0.36.
    assert 0.30 < res.degenerate_rounds / 1000 < 0.45
    assert res.unconverged_rounds == 0 and np.isfinite(res.samples).all()
    assert np.abs(res.samples - 1000).max() < 700


def test_model_that_always_wins_needs_a_prior():
    rows = (
        [("a", "b", "model_a")] * 5
        + [("b", "c", "model_a")] * 3
        + [("c", "b", "model_a")] * 3
        + [("a", "c", "model_a")] * 2
    )
    counts = _counts(rows)
    with pytest.raises(PrefkitError, match="never lost"):
        bootstrap(counts, rounds=10)
    res = bootstrap(counts, BradleyTerry(l2=0.1), rounds=300, seed=0)
    assert res.degenerate_rounds == 300 and res.degenerate_models["a"] == 300
    assert res.degenerate_policy == "prior"
    assert res.lower[0] <= res.rating[0] <= res.upper[0]


# --- properties -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_counts():
    return BattleCounts.from_dataset(
        simulate(kind="battles", n_models=8, n_prompts=20000, tie_nu=0.3, seed=1)
    )


def test_deterministic_whatever_the_threads(synth_counts):
    one = bootstrap(synth_counts, rounds=300, seed=7, n_jobs=1)
    two = bootstrap(synth_counts, rounds=300, seed=7, n_jobs=2)
    np.testing.assert_array_equal(one.samples, two.samples)
    other = bootstrap(synth_counts, rounds=300, seed=8)
    assert not np.array_equal(one.samples, other.samples)


def test_rounds_match_independent_refits(synth_counts):
    """The vectorised solver gives the same ratings as refitting each resample alone."""
    from prefkit.ratings.bootstrap import _run_block, _setup

    est = BradleyTerry(ties="davidson").fit(synth_counts)
    s = _setup(est, "pseudo", 1.0, 1e-9)
    seed = np.random.SeedSequence(3)
    block = _run_block(s, seed, 5)
    rng = np.random.Generator(np.random.SFC64(seed))
    i, j, cells = synth_counts.pairs()
    draws = multinomial_rows(rng, s.n, (cells.T / s.n).ravel(), 5).reshape(5, 3, -1)
    names = np.array(synth_counts.models)
    for r in range(5):
        a, b, w = [], [], []
        for col, label in enumerate(("model_a", "model_b", "tie")):
            n = draws[r, col]
            a += list(np.repeat(names[i], n))
            b += list(np.repeat(names[j], n))
            w += [label] * int(n.sum())
        alone = BradleyTerry(ties="davidson").fit(BattleCounts.from_arrays(a, b, w))
        np.testing.assert_allclose(block.x[r, :-1], alone.log_strengths_, atol=1e-7)
        assert block.x[r, -1] == pytest.approx(np.log(alone.nu_), abs=1e-7)


def test_anchor_intervals_and_result_record(synth_counts):
    res = bootstrap(synth_counts, BradleyTerry(anchor=("model-02", 1114.0)), rounds=200, seed=0)
    k = res.models.index("model-02")
    assert res.lower[k] == pytest.approx(1114.0) and res.upper[k] == pytest.approx(1114.0)
    assert isinstance(res, ArenaResult) and res.method == "bootstrap"
    table = res.to_table()
    assert table.column_names == ["rank", "model", "rating", "lower", "upper", "median", "battles"]
    assert table["rating"].to_pylist() == sorted(res.rating, reverse=True)
    blob = json.dumps(res.to_dict(samples=True))
    assert json.loads(blob)["leaderboard"][0]["rank"] == 1


def test_tie_parameter_interval(synth_counts):
    res = bootstrap(synth_counts, BradleyTerry(ties="davidson"), rounds=300, seed=0)
    assert res.tie_param["name"] == "nu"
    assert res.tie_param["lower"] < 0.3 < res.tie_param["upper"]
    assert res.tie_param["lower"] < res.tie_param["value"] < res.tie_param["upper"]


def test_arena_rank_rule():
    lower = np.array([10.0, 8.0, 5.0, 1.0])
    upper = np.array([12.0, 11.0, 9.0, 4.0])
    # b overlaps a -> rank 1; c overlaps b but a's lower (10) is above c's upper (9) -> 2;
    # d is below all three -> 4.
    assert arena_ranks(lower, upper).tolist() == [1, 1, 2, 4]


def test_bad_arguments(synth_counts):
    with pytest.raises(PrefkitError, match="degenerate="):
        bootstrap(synth_counts, degenerate="ignore")
    with pytest.raises(PrefkitError, match="rounds=0"):
        bootstrap(synth_counts, rounds=0)
    with pytest.raises(PrefkitError, match=r"ci=1\.5"):
        bootstrap(synth_counts, ci=1.5)


@pytest.mark.shared_data
def test_vicuna80_leaderboard(shared_data):
    ds = prefkit.load(shared_data / "vicuna80_human_battles")
    res = bootstrap(ds, rounds=500, seed=0)
    board = {row["model"]: row for row in res.to_table().to_pylist()}
    assert board["gpt4"]["rank"] == 1 and board["bard"]["lower"] < board["gpt4"]["lower"]
    assert res.degenerate_rounds == 0
    sandwich = analytic_intervals(ds, method="sandwich")
    np.testing.assert_allclose(res.upper - res.lower, sandwich.upper - sandwich.lower, rtol=0.15)
