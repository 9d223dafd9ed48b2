"""BradleyTerry against independent computations.

Golden values: scikit-learn ``LogisticRegression`` on the expanded battle matrix (the
fschat recipe: ``X[k, a] = +ln(base)``, ``X[k, b] = −ln(base)``, a tie entered as one win
each way with weight 1/2), ``choix`` for plain Bradley–Terry, finite differences for the
likelihood derivatives, and the planted skills / tie parameter of ``prefkit.synth``.
"""

from __future__ import annotations

import math

import choix
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import prefkit
from prefkit.errors import PrefkitError
from prefkit.ratings import BattleCounts, BradleyTerry, analytic_intervals
from prefkit.ratings.likelihood import TIES, Graph, Problem, effective_counts, newton
from prefkit.synth import simulate


# --- data -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_battles():
    return simulate(kind="battles", n_models=8, n_prompts=20000, seed=0).to_battles(ties="keep")


@pytest.fixture(scope="module")
def synth_ties():
    """Synthetic battles with Davidson ties (tie_nu = 0.5)."""
    return simulate(kind="battles", n_models=8, n_prompts=30000, tie_nu=0.5, seed=0)


@pytest.fixture
def vicuna(shared_data):
    return prefkit.load(shared_data / "vicuna80_human_battles").to_battles(ties="keep")


def _expanded(battles, models):
    """The expanded design of fschat's compute_mle_elo (ties: two rows of weight 1/2)."""
    idx = {m: k for k, m in enumerate(models)}
    a = np.array([idx[x] for x in battles["model_a"].to_pylist()])
    b = np.array([idx[x] for x in battles["model_b"].to_pylist()])
    w = np.array(battles["winner"].to_pylist())
    tie = np.char.startswith(w.astype(str), "tie")
    x = np.zeros((len(a), len(models)))
    x[np.arange(len(a)), a] = math.log(10)
    x[np.arange(len(a)), b] = -math.log(10)
    xe = np.vstack([x, x[tie]])
    ye = np.r_[np.where(tie, 1.0, (w == "model_a").astype(float)), np.zeros(tie.sum())]
    we = np.r_[np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)]
    return xe, ye, we


def _sklearn_ratings(battles, models, c=np.inf):
    x, y, w = _expanded(battles, models)
    lr = LogisticRegression(C=c, fit_intercept=False, tol=1e-12, max_iter=10_000)
    r = 400 * lr.fit(x, y, sample_weight=w).coef_[0]
    return r - r.mean() + 1000


# --- golden: scikit-learn ---------------------------------------------------------------------
def test_half_equals_sklearn_on_synth(synth_battles):
    """Max difference observed: 1.6e-6 rating points."""
    bt = BradleyTerry(ties="half").fit(synth_battles)
    golden = _sklearn_ratings(synth_battles, bt.models_)
    assert np.abs(bt.ratings_ - golden).max() < 0.01
    assert bt.converged_ and bt.n_iter_ < 15


@pytest.mark.shared_data
def test_half_equals_sklearn_on_vicuna80(vicuna):
    """7,040 real battles with 804 ties: max difference 1.3e-5 rating points."""
    bt = BradleyTerry(ties="half").fit(vicuna)
    golden = _sklearn_ratings(vicuna, bt.models_)
    assert np.abs(bt.ratings_ - golden).max() < 0.01
    assert bt.ratings_dict()["gpt4"] > bt.ratings_dict()["bard"]


def test_l2_equals_sklearn_penalty(synth_battles):
    """``l2 = 1 / (C · ln(base)²)`` reproduces LogisticRegression(C=C) (max diff 1.4e-6)."""
    c = 0.02
    bt = BradleyTerry(l2=1.0 / (c * math.log(10) ** 2)).fit(synth_battles)
    golden = _sklearn_ratings(synth_battles, bt.models_, c=c)
    assert np.abs(bt.ratings_ - golden).max() < 0.01


# --- golden: choix ----------------------------------------------------------------------------
def _choix_ratings(battles, models):
    idx = {m: k for k, m in enumerate(models)}
    data = [
        (idx[a], idx[b]) if w == "model_a" else (idx[b], idx[a])
        for a, b, w in zip(
            battles["model_a"].to_pylist(),
            battles["model_b"].to_pylist(),
            battles["winner"].to_pylist(),
            strict=True,
        )
        if w in ("model_a", "model_b")
    ]
    theta = choix.ilsr_pairwise(len(models), data, alpha=0.0, max_iter=1000, tol=1e-12)
    return 400 / math.log(10) * theta


def test_drop_agrees_with_choix_on_synth(synth_battles):
    """Up to a constant shift; spread of the differences 2e-12 (vicuna80: 1e-10)."""
    bt = BradleyTerry(ties="drop").fit(synth_battles)
    diff = bt.ratings_ - _choix_ratings(synth_battles, bt.models_)
    assert np.ptp(diff) < 0.01


@pytest.mark.shared_data
def test_drop_agrees_with_choix_on_vicuna80(vicuna):
    bt = BradleyTerry(ties="drop").fit(vicuna)
    diff = bt.ratings_ - _choix_ratings(vicuna, bt.models_)
    assert np.ptp(diff) < 0.01


# --- planted truth ----------------------------------------------------------------------------
def test_davidson_recovers_planted_nu_and_skills(synth_ties):
    """30,000 battles with ν = 0.5: ν̂ = 0.4988 (standard error ≈ 0.0075). Asserted:
    |ν̂ − 0.5| < 0.03 (4 standard errors), ν inside its 95% interval, and every rating
    within 4 standard errors of the planted skill (max |z| observed: 2.0)."""
    counts = BattleCounts.from_dataset(synth_ties)
    bt = BradleyTerry(ties="davidson").fit(counts)
    assert abs(bt.nu_ - 0.5) < 0.03
    res = analytic_intervals(counts, bt)
    assert res.tie_param["lower"] < 0.5 < res.tie_param["upper"]
    skills = synth_ties.manifest.planted["models"]["skills"]
    truth = np.array([skills[m] for m in bt.models_])
    truth = truth - truth.mean() + 1000
    se = (res.upper - res.lower) / (2 * 1.959964)
    assert np.abs((bt.ratings_ - truth) / se).max() < 4


def test_rao_kupper_recovers_planted_theta():
    """Battles drawn from Rao–Kupper with θ = 1.5 (numpy): θ̂ within 0.03 (se ≈ 0.008)."""
    rng = np.random.default_rng(3)
    m, n, theta = 6, 40_000, 1.5
    s = rng.normal(scale=0.6, size=m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    pa_ = 1 / (1 + theta * np.exp(s[b] - s[a]))
    pb = 1 / (1 + theta * np.exp(s[a] - s[b]))
    u = rng.random(n)
    winner = np.where(u < pa_, "model_a", np.where(u < pa_ + pb, "model_b", "tie"))
    names = np.array([f"m{k}" for k in range(m)])
    bt = BradleyTerry(ties="rao-kupper", scale=1, base=math.e, init=0).fit(
        BattleCounts.from_arrays(names[a], names[b], winner)
    )
    assert abs(bt.theta_ - theta) < 0.03
    assert np.abs(bt.ratings_ - (s - s.mean())).max() < 0.1


# --- likelihood -------------------------------------------------------------------------------
@pytest.mark.parametrize("ties", TIES)
def test_gradient_and_hessian_match_finite_differences(ties):
    rng = np.random.default_rng(0)
    m = 5
    i, j = np.triu_indices(m, 1)
    cells = rng.integers(0, 20, size=(1, len(i), 3))
    problem = Problem.from_counts(ties, Graph.build(m, i, j), effective_counts(ties, cells), l2=0.1)
    x = rng.normal(scale=0.5, size=(1, problem.n_params))
    if problem.has_phi:
        x[0, -1] = 0.7
    _, grad, hess = problem.evaluate(x)
    eps, eye = 1e-6, np.eye(problem.n_params)
    num_grad = [
        (problem.objective(x + eps * e) - problem.objective(x - eps * e))[0] / (2 * eps)
        for e in eye
    ]
    num_hess = [
        (problem.gradient(x + eps * e) - problem.gradient(x - eps * e))[0] / (2 * eps) for e in eye
    ]
    np.testing.assert_allclose(grad[0], num_grad, atol=1e-5)
    np.testing.assert_allclose(hess[0], -np.array(num_hess), atol=1e-5)
    res = newton(problem, np.zeros_like(x) + (np.r_[np.zeros(m), 0.5] if problem.has_phi else 0.0))
    assert res.converged[0] and np.abs(problem.gradient(res.x)).max() < 1e-8


# --- scale, anchor, predictions ---------------------------------------------------------------
def test_scale_base_init_and_anchor(synth_battles):
    ref = BradleyTerry().fit(synth_battles)
    nat = BradleyTerry(scale=1.0, base=math.e, init=0.0).fit(synth_battles)
    np.testing.assert_allclose(nat.ratings_, nat.log_strengths_, atol=1e-12)
    np.testing.assert_allclose(ref.ratings_, 1000 + 400 / math.log(10) * nat.ratings_, atol=1e-8)
    assert ref.ratings_.mean() == pytest.approx(1000)
    b2 = BradleyTerry(base=2.0, scale=1.0, init=0.0).fit(synth_battles)
    np.testing.assert_allclose(b2.ratings_, nat.ratings_ / math.log(2), atol=1e-8)
    anchored = BradleyTerry(anchor=("model-03", 1114.0)).fit(synth_battles)
    assert anchored.rating("model-03") == pytest.approx(1114.0)
    np.testing.assert_allclose(np.diff(anchored.ratings_), np.diff(ref.ratings_), atol=1e-8)


def test_predictions(synth_ties):
    half = BradleyTerry().fit(synth_ties)
    w = half.win_matrix()
    off = ~np.eye(len(w), dtype=bool)
    np.testing.assert_allclose((w + w.T)[off], 1.0)
    r = half.ratings_
    assert half.predict_proba(0, 1) == pytest.approx(1 / (1 + 10 ** ((r[1] - r[0]) / 400)))
    assert half.predict_proba("model-00", "model-01") == pytest.approx(half.predict_proba(0, 1))
    for ties in ("davidson", "rao-kupper"):
        bt = BradleyTerry(ties=ties).fit(synth_ties)
        p_win, p_tie = bt.win_matrix(), bt.tie_proba(*np.indices(w.shape))
        np.testing.assert_allclose((p_win + p_win.T + p_tie)[off], 1.0)
        np.testing.assert_allclose(bt.win_matrix(score=True), p_win + p_tie / 2)
    # Observed win rates (ties as half) are close to the predicted expected scores.
    obs = BattleCounts.from_dataset(synth_ties).win_rate("half")
    assert (
        np.nanmax(
            np.abs(obs - BradleyTerry(ties="davidson").fit(synth_ties).win_matrix(score=True))
        )
        < 0.05
    )


def test_inputs_dataset_table_counts_agree(synth_ties):
    battles = synth_ties.to_battles(ties="keep")
    r1 = BradleyTerry().fit(synth_ties).ratings_
    r2 = BradleyTerry().fit(battles).ratings_
    r3 = BradleyTerry().fit(BattleCounts.from_battles(battles)).ratings_
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(r1, r3)


# --- errors and warnings ----------------------------------------------------------------------
def test_disconnected_graph_raises_listing_components():
    c = BattleCounts.from_arrays(
        ["a", "a", "b", "c", "d"],
        ["b", "c", "c", "d", "e"],
        ["model_a", "model_b", "tie", "model_a", "model_b"],
    )
    c = c.select(["a", "b", "d", "e"])  # {a, b} and {d, e}
    with pytest.raises(
        PrefkitError,
        match=r"disconnected: 2 groups(.|\n)*\[1\] 2 models: a, b(.|\n)*\[2\] 2 models: d, e",
    ):
        BradleyTerry().fit(c)
    bt = BradleyTerry(l2=1.0).fit(c)
    assert bt.converged_ and any("disconnected" in w for w in bt.warnings_)


def test_unbeaten_model_raises_unless_prior():
    c = BattleCounts.from_arrays(
        ["a", "a", "b", "c"], ["b", "c", "c", "b"], ["model_a", "model_a", "model_a", "model_a"]
    )
    with pytest.raises(PrefkitError, match="never lost to a model outside their group: a"):
        BradleyTerry().fit(c)
    bt = BradleyTerry(l2=0.5).fit(c)
    assert np.isfinite(bt.ratings_).all() and bt.ratings_dict()["a"] == max(bt.ratings_)
    # A tie is not a loss, but the tie models and "half" use it: the fit exists.
    c2 = BattleCounts.from_arrays(
        ["a", "a", "b", "c"], ["b", "c", "c", "b"], ["model_a", "tie", "model_a", "model_a"]
    )
    for ties in ("half", "davidson", "rao-kupper"):
        assert BradleyTerry(ties=ties).fit(c2).converged_
    with pytest.raises(PrefkitError, match="do not exist"):
        BradleyTerry(ties="drop").fit(c2)


def test_tie_model_without_ties_warns(synth_battles):
    bt = BradleyTerry(ties="davidson").fit(synth_battles)
    assert bt.nu_ == 0.0 and any("no ties" in w for w in bt.warnings_)
    np.testing.assert_allclose(bt.ratings_, BradleyTerry(ties="drop").fit(synth_battles).ratings_)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"ties": "elo"}, "ties='elo'"),
        ({"l2": -1}, "l2=-1"),
        ({"base": 1}, "base=1"),
        ({"anchor": ("x",)}, "anchor"),
    ],
)
def test_bad_parameters(synth_battles, params, match):
    with pytest.raises(PrefkitError, match=match):
        BradleyTerry(**params).fit(synth_battles)


def test_unknown_anchor_and_params(synth_battles):
    with pytest.raises(PrefkitError, match="unknown model 'nope'"):
        BradleyTerry(anchor=("nope", 1000)).fit(synth_battles)
    bt = BradleyTerry().set_params(ties="drop", l2=0.1)
    assert bt.get_params()["ties"] == "drop" and bt.clone().l2 == 0.1
    with pytest.raises(PrefkitError, match="no parameter"):
        bt.set_params(alpha=1)


@pytest.mark.parametrize("ties", TIES)
def test_many_models_fallback_to_lbfgs_agrees(synth_ties, monkeypatch, ties):
    """Above NEWTON_MAX_MODELS the fit uses L-BFGS-B: same ratings within 1e-4."""
    import prefkit.ratings.bradley_terry as module

    newton_fit = BradleyTerry(ties=ties).fit(synth_ties)
    monkeypatch.setattr(module, "NEWTON_MAX_MODELS", 2)
    lbfgs_fit = BradleyTerry(ties=ties).fit(synth_ties)
    assert lbfgs_fit.converged_
    assert np.abs(lbfgs_fit.ratings_ - newton_fit.ratings_).max() < 1e-4
