"""Analytic intervals: closed forms for two models, gauge handling, agreement with the
bootstrap on a large synthetic arena."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from prefkit.errors import PrefkitError
from prefkit.ratings import BattleCounts, BradleyTerry, analytic_intervals, bootstrap
from prefkit.ratings.analytic import covariance
from prefkit.synth import simulate

Z95 = float(norm.ppf(0.975))
FACTOR = 400 / math.log(10)


def _two_models(w: int, lost: int, t: int) -> BattleCounts:
    return BattleCounts.from_arrays(
        ["x"] * (w + lost + t),
        ["y"] * (w + lost + t),
        ["model_a"] * w + ["model_b"] * lost + ["tie"] * t,
    )


def test_two_models_closed_form_fisher_and_sandwich():
    """Two models, mean gauge: rating_x − 1000 = d/2 · 400/ln 10, with d the log-odds.
    Fisher: Var(d) = 1 / (n p (1 − p)); sandwich: Var(d) = J / I² with
    J = w (1 − p)² + l p² + t (1/2 − p)² (a tie is half a win)."""
    w, lost, t = 60, 25, 15
    counts = _two_models(w, lost, t)
    n = w + lost + t
    p = (w + t / 2) / n
    info = n * p * (1 - p)
    meat = w * (1 - p) ** 2 + lost * p**2 + t * (0.5 - p) ** 2
    fisher = analytic_intervals(counts, method="fisher")
    sandwich = analytic_intervals(counts, method="sandwich")
    assert fisher.rating[0] - 1000 == pytest.approx(FACTOR * math.log(p / (1 - p)) / 2)
    sd_f = (fisher.upper[0] - fisher.lower[0]) / (2 * Z95)
    sd_s = (sandwich.upper[0] - sandwich.lower[0]) / (2 * Z95)
    assert sd_f == pytest.approx(FACTOR / 2 * math.sqrt(1 / info))
    assert sd_s == pytest.approx(FACTOR / 2 * math.sqrt(meat / info**2))
    assert sd_s < sd_f  # ties carry less variance than the half-win Bernoulli assumes
    # Without ties the model is a plain Bernoulli and both coincide at the MLE.
    no_ties = _two_models(60, 40, 0)
    a = analytic_intervals(no_ties, method="fisher")
    b = analytic_intervals(no_ties, method="sandwich")
    np.testing.assert_allclose(a.upper - a.lower, b.upper - b.lower)


def test_anchor_gauge():
    """Anchored ratings have variance Var(s_i − s_a): 0 for the anchor itself."""
    counts = BattleCounts.from_dataset(simulate(kind="battles", n_models=5, n_prompts=5000, seed=2))
    est = BradleyTerry(anchor=("model-01", 1200.0)).fit(counts)
    res = analytic_intervals(counts, est)
    k = est.models_.index("model-01")
    assert res.lower[k] == pytest.approx(1200.0) and res.upper[k] == pytest.approx(1200.0)
    cov = covariance(est)
    for i in range(5):
        var = cov[i, i] + cov[k, k] - 2 * cov[i, k]
        assert (res.upper[i] - res.lower[i]) / (2 * Z95) == pytest.approx(
            FACTOR * math.sqrt(max(var, 0)), abs=1e-9
        )
    # The mean gauge's covariance rows sum to zero (ratings sum to a constant).
    np.testing.assert_allclose(cov.sum(axis=1), 0, atol=1e-12)


@pytest.fixture(scope="module")
def large():
    """100,000 synthetic battles over 10 models with Davidson ties (ν = 0.6, ~22% ties)."""
    return BattleCounts.from_dataset(
        simulate(
            kind="battles", n_models=10, n_prompts=100_000, tie_nu=0.6, matchup_skew=0.8, seed=4
        )
    )


@pytest.mark.parametrize(
    "ties, method",
    [
        ("half", "sandwich"),
        ("davidson", "fisher"),
        ("davidson", "sandwich"),
        ("rao-kupper", "fisher"),
        ("drop", "fisher"),
    ],
)
def test_analytic_matches_bootstrap_on_large_data(large, ties, method):
    """Interval widths within 10% of the bootstrap's (1,000 rounds) for every model, and
    the centres within a tenth of a width; observed ratios 0.93–1.08."""
    est = BradleyTerry(ties=ties).fit(large)
    boot = bootstrap(large, est, rounds=1000, seed=0)
    ana = analytic_intervals(large, est, method=method)
    ratio = (ana.upper - ana.lower) / (boot.upper - boot.lower)
    assert np.all(np.abs(ratio - 1) < 0.10), ratio
    width = boot.upper - boot.lower
    assert np.all(np.abs((ana.upper + ana.lower) / 2 - (boot.upper + boot.lower) / 2) < 0.1 * width)
    if ana.tie_param is not None:
        tie_ratio = (ana.tie_param["upper"] - ana.tie_param["lower"]) / (
            boot.tie_param["upper"] - boot.tie_param["lower"]
        )
        assert abs(tie_ratio - 1) < 0.10


def test_fisher_is_too_wide_for_half_ties(large):
    """With ~22% ties the half-win Fisher intervals are 7–23% wider than the bootstrap (the
    sandwich matches it)."""
    est = BradleyTerry(ties="half").fit(large)
    fisher = analytic_intervals(large, est, method="fisher")
    sandwich = analytic_intervals(large, est, method="sandwich")
    ratio = (fisher.upper - fisher.lower) / (sandwich.upper - sandwich.lower)
    assert np.all(ratio > 1.03)


def test_result_shape_and_errors(large):
    res = analytic_intervals(large, BradleyTerry(ties="rao-kupper"), ci=0.9)
    assert res.method == "fisher" and res.ci == 0.9 and res.rounds == 0
    np.testing.assert_array_equal(res.median, res.rating)
    assert res.tie_param["name"] == "theta" and res.tie_param["lower"] < res.tie_param["value"]
    assert res.to_table().num_rows == 10
    with pytest.raises(PrefkitError, match="method='delta'"):
        analytic_intervals(large, method="delta")
    with pytest.raises(PrefkitError, match="ci=0"):
        analytic_intervals(large, ci=0)
