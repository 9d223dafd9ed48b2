"""Analytic (normal) intervals for Bradley–Terry ratings: inverse Fisher information or
the sandwich estimator, with the same output as the bootstrap.

At the maximum-likelihood fit x̂ = (s, φ) the ratings are asymptotically normal with
covariance

* ``"fisher"``: the inverse observed information ``A⁻¹``, ``A = −∇²ℓ(x̂)`` (plus the
  ``l2`` prior on the strengths);
* ``"sandwich"``: ``A⁻¹ J A⁻¹`` with ``J = Σ_battles ∇ℓ_b ∇ℓ_bᵀ`` the outer products of
  the per-battle scores (Huber 1967, "The behavior of maximum likelihood estimates under
  nonstandard conditions"; White 1982, "Maximum likelihood estimation of misspecified
  models", Econometrica 50). It stays valid when the model is wrong, in particular for
  ``ties="half"``, which is not the likelihood of any tie-generating model: a tie
  contributes less variance than the Bernoulli the half-win convention pretends, so the
  Fisher intervals are then too wide and the sandwich ones match the bootstrap. Both
  are computed from the aggregated counts (one score per pair and outcome).

The likelihood does not identify a common shift of the strengths, so ``A`` is singular
along ``1``; the covariance of any gauge-fixed ratings ``G s`` (``G = I − 11ᵀ/m`` for the
mean gauge, ``G = I − 1 e_aᵀ`` for an anchor a) is ``G A⁺ Gᵀ`` with ``A⁺`` any
generalised inverse; here ``(A + c 11ᵀ/m)⁻¹`` (Cox & Hinkley 1974, §9.2 on
identifiability constraints). Intervals are ``rating ± z σ``; the tie parameter's
interval is computed on the log scale and exponentiated. Ranks follow the Chatbot Arena
rule (:func:`~prefkit.ratings.result.arena_ranks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm

from prefkit.errors import PrefkitError
from prefkit.ratings.battles import BattleCounts
from prefkit.ratings.bradley_terry import BradleyTerry
from prefkit.ratings.likelihood import TIE_PARAM, pair_terms
from prefkit.ratings.result import ArenaResult, arena_ranks

METHODS = ("fisher", "sandwich")
#: Effective ``(a, b, t)`` of one battle won by i, won by j, tied — per tie convention.
_UNIT = {
    "half": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.5, 0.5, 0.0)),
    "drop": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.0)),
    "davidson": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "rao-kupper": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}


def score_outer(est: BradleyTerry) -> np.ndarray:
    """``J = Σ_battles g gᵀ`` at the fit, from the counts (``(p, p)``)."""
    problem = est.problem_
    gr, m, p = problem.graph, problem.graph.m, problem.n_params
    _, _, cells = est.counts_.pairs()
    d = (est.log_strengths_[gr.i] - est.log_strengths_[gr.j])[None, :]
    phi = np.array([[est.phi_]]) if est.phi_ is not None else None
    w_ss = np.zeros(len(gr.i))
    w_sp = np.zeros(len(gr.i))
    w_pp = 0.0
    for o, (ua, ub, ut) in enumerate(_UNIT[est.fit_ties_]):
        one = np.ones_like(d)
        terms = pair_terms(est.fit_ties_, d, phi, ua * one, ub * one, ut * one, order=1)
        ld = terms.ld[0]
        lp = terms.lp[0] if terms.lp is not None else np.zeros_like(ld)
        c = cells[:, o].astype(np.float64)
        w_ss += c * ld * ld
        w_sp += c * ld * lp
        w_pp += float((c * lp * lp).sum())
    meat = np.zeros((p, p))
    # Σ_k w_k (e_i − e_j)(e_i − e_j)ᵀ: a weighted graph Laplacian.
    np.add.at(meat, (gr.i, gr.i), w_ss)
    np.add.at(meat, (gr.j, gr.j), w_ss)
    np.add.at(meat, (gr.i, gr.j), -w_ss)
    np.add.at(meat, (gr.j, gr.i), -w_ss)
    if problem.has_phi:
        cross = gr.scatter(w_sp[None, :])[0]
        meat[:m, m] = cross
        meat[m, :m] = cross
        meat[m, m] = w_pp
    return meat


def covariance(est: BradleyTerry, method: str = "fisher") -> np.ndarray:
    """``(p, p)`` covariance of the natural-log strengths (mean gauge) and φ."""
    if method not in METHODS:
        raise PrefkitError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    problem = est.problem_
    m = problem.graph.m
    x = np.r_[est.log_strengths_, [est.phi_] if est.phi_ is not None else []][None, :]
    _, _, hess = problem.evaluate(x)
    bread = np.linalg.inv(problem.gauge_matrix(hess)[0])
    cov = bread if method == "fisher" else bread @ score_outer(est) @ bread
    # Project the strength block onto the mean gauge (removes the c·11ᵀ/m part).
    g = np.eye(len(cov))
    g[:m, :m] -= 1.0 / m
    return np.asarray(g @ cov @ g.T)


def analytic_intervals(
    counts: Any,
    model: BradleyTerry | None = None,
    *,
    method: str = "fisher",
    ci: float = 0.95,
) -> ArenaResult:
    """Normal intervals from the inverse Fisher information or the sandwich estimator.

    Parameters
    ----------
    counts
        `BattleCounts`, a battle table or a `Dataset`.
    model
        The estimator (default ``BradleyTerry()``), fitted on ``counts`` unless it
        already was.
    method
        ``"fisher"`` or ``"sandwich"`` (module docstring).
    ci
        Interval level.

    Returns
    -------
    ArenaResult
        ``method`` is the method used; ``median`` equals ``rating``.
    """
    if not 0 < ci < 1:
        raise PrefkitError(f"ci={ci} must be between 0 and 1")
    data = BattleCounts.coerce(counts)
    est = model if model is not None else BradleyTerry()
    if getattr(est, "counts_", None) is not data:
        est = est.clone().fit(data)
    m = len(est.models_)
    cov = covariance(est, method)
    cov_s = cov[:m, :m]
    if est.anchor is not None:
        # Ratings relative to the anchor: G = I − 1 e_aᵀ (its own variance is 0).
        k = est.counts_.index(est.anchor[0])
        g = np.eye(m)
        g[:, k] -= 1.0
        cov_s = g @ cov_s @ g.T
    sd = est.factor * np.sqrt(np.clip(np.diag(cov_s), 0.0, None))
    z = float(norm.ppf(0.5 + ci / 2))
    lower, upper = est.ratings_ - z * sd, est.ratings_ + z * sd
    tie_param = None
    if est.ties in TIE_PARAM:
        name = TIE_PARAM[est.ties]
        value = getattr(est, f"{name}_")
        lo = hi = value
        if est.phi_ is not None:
            sd_phi = float(np.sqrt(max(cov[m, m], 0.0)))
            lo, hi = np.exp(est.phi_ - z * sd_phi), np.exp(est.phi_ + z * sd_phi)
        tie_param = {"name": name, "value": value, "lower": float(lo), "upper": float(hi)}
    return ArenaResult(
        models=list(est.models_),
        rating=est.ratings_.copy(),
        lower=lower,
        upper=upper,
        median=est.ratings_.copy(),
        rank=arena_ranks(lower, upper),
        battles=est.battles_.copy(),
        method=method,
        ci=ci,
        ties=est.ties,
        tie_param=tie_param,
        scale=est.scale,
        base=est.base,
        init=est.init,
        anchor=est.anchor,
        warnings=list(est.warnings_),
    )
