"""`BradleyTerry`: maximum-likelihood arena ratings from aggregated battle counts.

The model is Bradley & Terry (1952), "Rank analysis of incomplete block designs: I. The
method of paired comparisons", Biometrika 39 (first in Zermelo 1929):
``P(i beats j) = π_i / (π_i + π_j)``, with the tie conventions

* ``"half"``: a tie is half a win for each side (the Chatbot Arena convention, Chiang
  et al. 2024, "Chatbot Arena: An Open Platform for Evaluating LLMs by Human
  Preference"; fschat's ``compute_mle_elo``);
* ``"davidson"``: Davidson (1970), ``P(tie) ∝ ν √(π_i π_j)``;
* ``"rao-kupper"``: Rao & Kupper (1967), ``P(i beats j) = π_i / (π_i + θ π_j)``, θ ≥ 1;
* ``"drop"``: ties are left out.

The formulas are in :mod:`prefkit.ratings.likelihood`. The fit maximises the
log-likelihood of the aggregated counts (its sufficient statistics) by Newton's method
on the m strengths (plus the tie parameter), with the gauge fixed by ``Σ s = 0``; each
iteration costs O(K + m³) for K observed pairs, whatever the number of battles. (Hunter
2004, "MM algorithms for generalized Bradley–Terry models", Ann. Statist. 32, gives
minorise–maximise updates for the same likelihoods; Newton needs far fewer iterations
here.) Above ``NEWTON_MAX_MODELS`` models scipy's L-BFGS-B with the analytic gradient is
used instead of the dense Newton system.

Ratings are ``init + scale / ln(base) · (s_i − mean(s))`` (``scale=400, base=10,
init=1000``: the Elo scale), or with ``anchor=(model, value)`` the same shifted so that
the anchored model has that value.

The maximum-likelihood ratings exist only when the comparison graph is connected and
every group of models has lost (or tied, when ties are kept) at least once to a model
outside it (Ford 1957, "Solution of a ranking problem from binary comparisons", Amer.
Math. Monthly 64). Otherwise ``fit`` raises :class:`~prefkit.errors.PrefkitError`
naming the components or the groups, unless ``l2 > 0``: the Gaussian prior
``−(l2 / 2) Σ s²`` on the natural-log strengths makes the fit finite, and the problem
is reported in ``warnings_``. ``l2`` relates to scikit-learn's ``C`` on features
``±ln(base)`` by ``l2 = 1 / (C · ln(base)²)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from prefkit.errors import PrefkitError
from prefkit.ratings.battles import BattleCounts, describe_components
from prefkit.ratings.likelihood import (
    PHI_BOUNDS,
    TIE_PARAM,
    TIES,
    Graph,
    NewtonResult,
    Problem,
    effective_counts,
    newton,
)

#: Above this many models the point fit uses L-BFGS-B instead of dense Newton steps.
NEWTON_MAX_MODELS = 2000


# --- helpers ----------------------------------------------------------------------------------
def initial_phi(ties: str, cells: np.ndarray) -> float:
    """Tie parameter that matches the observed tie share when all strengths are equal."""
    share = float(cells[:, 2].sum() / max(cells.sum(), 1.0))
    share = min(max(share, 1e-6), 1.0 - 1e-6)
    if ties == "davidson":  # P(tie) = ν / (2 + ν) at d = 0
        return math.log(2.0 * share / (1.0 - share))
    return math.log((1.0 + share) / (1.0 - share))  # Rao–Kupper: (θ − 1) / (θ + 1)


def unbounded_groups(
    m: int, i: np.ndarray, j: np.ndarray, eff: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Groups of models whose maximum-likelihood strength runs off to ±∞.

    Parameters
    ----------
    eff
        ``(K, 3)`` effective counts ``(a, b, t)`` of the pairs ``i < j``.

    Returns
    -------
    None when the "beat" graph (an edge u → v when u beat or tied v) is strongly
    connected; otherwise ``(top, bottom)``: index arrays of the strongly connected
    components nobody outside ever beat (strength → +∞) and of those that never beat
    anyone outside (strength → −∞).
    """
    fwd = eff[:, 0] + eff[:, 2] > 0  # i beat (or tied) j
    bwd = eff[:, 1] + eff[:, 2] > 0
    src = np.r_[i[fwd], j[bwd]]
    dst = np.r_[j[fwd], i[bwd]]
    graph = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(m, m))
    n, labels = connected_components(graph, directed=True, connection="strong")
    if n == 1:
        return None
    cross = labels[src] != labels[dst]
    beaten = np.zeros(n, dtype=bool)
    beaten[labels[dst[cross]]] = True
    beat_someone = np.zeros(n, dtype=bool)
    beat_someone[labels[src[cross]]] = True
    top = [np.flatnonzero(labels == c) for c in np.flatnonzero(~beaten)]
    bottom = [np.flatnonzero(labels == c) for c in np.flatnonzero(~beat_someone)]
    return top, bottom


def _names(models: tuple[str, ...], idx: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(models[k] for k in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def _lbfgs(problem: Problem, x0: np.ndarray, max_iter: int, tol: float) -> NewtonResult:
    """Fallback for many models: L-BFGS-B on the negative objective."""

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        x = v[None, :]
        return -float(problem.objective(x)[0]), -problem.gradient(x)[0]

    bounds = None
    if problem.has_phi:
        bounds = [(None, None)] * problem.graph.m + [PHI_BOUNDS[problem.ties]]
    res = minimize(
        fun,
        x0[0],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter * 50, "gtol": tol, "ftol": 0.0},
    )
    x = problem.project(res.x[None, :].copy())
    obj = problem.objective(x)
    # L-BFGS-B often stops on "no progress in the line search" at machine precision; a
    # gradient this small relative to the number of battles is converged all the same.
    small = np.abs(problem.gradient(x)).max() <= 1e-7 * max(1.0, float(problem.n.sum()))
    return NewtonResult(x, obj, np.array([res.nit]), np.array([bool(res.success or small)]))


# --- estimator --------------------------------------------------------------------------------
class BradleyTerry:
    """Bradley–Terry ratings with a tie convention, fitted by maximum likelihood.

    Parameters
    ----------
    ties
        ``"half"`` (default), ``"davidson"``, ``"rao-kupper"`` or ``"drop"``.
    l2
        Precision of a Gaussian prior on the natural-log strengths (0 = none).
    scale, base, init
        Rating scale: ``rating = init + scale · log_base(π_i / geometric mean π)``.
    anchor
        ``(model, value)``: shift the ratings so that this model has this rating.
    max_iter, tol
        Newton iterations and the step size (natural-log units) that ends them.

    Attributes
    ----------
    models_ : list of str
        Model names, in the order of every array below.
    ratings_ : numpy.ndarray
        ``(m,)`` ratings on the configured scale.
    log_strengths_ : numpy.ndarray
        ``(m,)`` natural-log strengths, mean zero.
    nu_, theta_ : float or None
        Davidson ν / Rao–Kupper θ (None for the other conventions).
    loglik_ : float
        Log-likelihood at the fit (without the prior).
    n_iter_, converged_ : int, bool
        Solver iterations and whether the last step was below ``tol``.
    battles_ : numpy.ndarray
        ``(m,)`` battles per model (ties included).
    counts_ : BattleCounts
        The aggregated battles the model was fitted on.
    warnings_ : list of str
        What the fit had to work around (disconnected graph held by the prior, ...).
    """

    def __init__(
        self,
        ties: str = "half",
        l2: float = 0.0,
        scale: float = 400.0,
        base: float = 10.0,
        init: float = 1000.0,
        anchor: tuple[str, float] | None = None,
        max_iter: int = 100,
        tol: float = 1e-10,
    ) -> None:
        self.ties = ties
        self.l2 = l2
        self.scale = scale
        self.base = base
        self.init = init
        self.anchor = anchor
        self.max_iter = max_iter
        self.tol = tol

    # --- scikit-learn plumbing ------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = ("ties", "l2", "scale", "base", "init", "anchor", "max_iter", "tol")
        return {k: getattr(self, k) for k in names}

    def set_params(self, **params: Any) -> BradleyTerry:
        for k, v in params.items():
            if k not in self.get_params():
                raise PrefkitError(f"BradleyTerry has no parameter {k!r}")
            setattr(self, k, v)
        return self

    def clone(self) -> BradleyTerry:
        """An unfitted copy with the same hyper-parameters."""
        return BradleyTerry(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"BradleyTerry({args})"

    def _validate(self) -> None:
        if self.ties not in TIES:
            raise PrefkitError(f"ties={self.ties!r}: choose one of {', '.join(TIES)}")
        if not self.l2 >= 0:
            raise PrefkitError(f"l2={self.l2!r} must be >= 0")
        if not (self.scale > 0 and self.base > 1):
            raise PrefkitError(f"scale={self.scale!r} must be > 0 and base={self.base!r} > 1")
        if self.anchor is not None and len(self.anchor) != 2:
            raise PrefkitError(f"anchor={self.anchor!r} must be (model, value)")

    # --- fitting --------------------------------------------------------------------------
    @property
    def factor(self) -> float:
        """Rating points per natural-log unit of strength: ``scale / ln(base)``."""
        return float(self.scale / math.log(self.base))

    def fit(self, data: Any) -> BradleyTerry:
        """Fit on `BattleCounts`, a battle table or a `Dataset` with battles."""
        self._validate()
        counts = BattleCounts.coerce(data)
        if counts.n_models < 2:
            raise PrefkitError(
                f"ratings need battles between at least 2 models, got {counts.n_models}"
            )
        i, j, cells = counts.pairs()
        ties = self.ties
        warns: list[str] = []
        if ties in TIE_PARAM and counts.n_ties == 0:
            warns.append(
                f"ties={ties!r}: the battles have no ties, so the tie model reduces to "
                "Bradley–Terry (nu = 0 / theta = 1)"
            )
            ties = "drop"
        eff = effective_counts(ties, cells)
        if eff.sum() == 0:
            raise PrefkitError(f"ties={self.ties!r}: no battles left to fit (all are ties)")
        self._check_graph(counts, i, j, eff, warns)
        graph = Graph.build(counts.n_models, i, j)
        problem = Problem.from_counts(ties, graph, eff[None], float(self.l2))
        x0 = np.zeros((1, problem.n_params))
        if problem.has_phi:
            x0[0, -1] = initial_phi(ties, cells)
        if counts.n_models > NEWTON_MAX_MODELS:
            res = _lbfgs(problem, x0, self.max_iter, self.tol)
        else:
            res = newton(problem, x0, max_iter=self.max_iter, tol=self.tol)
        if problem.has_phi and np.isclose(res.x[0, -1], PHI_BOUNDS[ties]).any():
            name = TIE_PARAM[ties]
            warns.append(
                f"{name} is at the edge of its range ({math.exp(res.x[0, -1]):.3g}): "
                "the data have (almost) only ties or (almost) none"
            )
        if not res.converged[0]:
            warns.append(
                f"the solver stopped after {int(res.n_iter[0])} iterations without "
                f"converging to tol={self.tol}"
            )
        self._set_fitted(counts, problem, res, ties, warns)
        return self

    def _check_graph(
        self, counts: BattleCounts, i: np.ndarray, j: np.ndarray, eff: np.ndarray, warns: list[str]
    ) -> None:
        used = eff.sum(axis=1) > 0
        sub = BattleCounts(
            models=counts.models,
            a=i[used].astype(np.int32),
            b=j[used].astype(np.int32),
            outcome=np.ones(int(used.sum()), np.int8),
            count=np.ones(int(used.sum()), np.int64),
            bothbad=np.zeros(int(used.sum()), bool),
        )
        comps = sub.components()
        if len(comps) > 1:
            msg = (
                f"the comparison graph is disconnected: {len(comps)} groups of models never "
                f"met each other, so their ratings are not comparable\n"
                f"{describe_components(comps)}"
            )
            if not self.l2:
                raise PrefkitError(msg + "\nfit each group separately, or pass l2 > 0 for a prior")
            warns.append(msg + f"\nthe l2={self.l2} prior alone places the groups")
            return
        groups = unbounded_groups(counts.n_models, i, j, eff)
        if groups is None:
            return
        top, bottom = groups
        parts = [
            f"never lost to a model outside their group: {_names(counts.models, g)}" for g in top
        ]
        parts += [
            f"never beat a model outside their group: {_names(counts.models, g)}" for g in bottom
        ]
        msg = (
            "the maximum-likelihood ratings do not exist (they run off to ±infinity): "
            + "; ".join(parts)
        )
        if not self.l2:
            raise PrefkitError(msg + "\npass l2 > 0 for a prior that keeps them finite")
        warns.append(msg + f"\nthe l2={self.l2} prior keeps them finite")

    def _set_fitted(
        self, counts: BattleCounts, problem: Problem, res: NewtonResult, ties: str, warns: list[str]
    ) -> None:
        m = counts.n_models
        x = res.x[0]
        self.counts_ = counts
        self.models_ = list(counts.models)
        self.log_strengths_ = x[:m].copy()
        self.phi_ = float(x[m]) if problem.has_phi else None
        self.nu_ = math.exp(x[m]) if self.ties == "davidson" and problem.has_phi else None
        self.theta_ = math.exp(x[m]) if self.ties == "rao-kupper" and problem.has_phi else None
        if self.ties == "davidson" and not problem.has_phi:
            self.nu_ = 0.0
        if self.ties == "rao-kupper" and not problem.has_phi:
            self.theta_ = 1.0
        self.fit_ties_ = ties
        self.problem_ = problem
        self.ratings_ = self.to_ratings(self.log_strengths_)
        prior = 0.5 * problem.l2 * float(x[:m] @ x[:m])
        self.loglik_ = float(res.objective[0]) + prior
        self.n_iter_ = int(res.n_iter[0])
        self.converged_ = bool(res.converged[0])
        self.battles_ = counts.battles_per_model()
        self.n_battles_ = counts.n_battles
        self.warnings_ = warns

    # --- outputs --------------------------------------------------------------------------
    def to_ratings(self, log_strengths: np.ndarray) -> np.ndarray:
        """Natural-log strengths ``(..., m)`` → ratings on the configured scale and gauge."""
        s = np.asarray(log_strengths, dtype=np.float64)
        if self.anchor is None:
            return self.init + self.factor * (s - s.mean(axis=-1, keepdims=True))
        model, value = self.anchor
        k = self._index(model)
        return float(value) + self.factor * (s - s[..., k : k + 1])

    def _index(self, model: str | int) -> int:
        counts: BattleCounts | None = getattr(self, "counts_", None)
        if counts is None:
            raise PrefkitError("BradleyTerry is not fitted yet: call fit() first")
        return counts.index(model)

    def rating(self, model: str) -> float:
        """The rating of one model."""
        return float(self.ratings_[self._index(model)])

    def ratings_dict(self) -> dict[str, float]:
        """``{model: rating}``, best first."""
        order = np.argsort(-self.ratings_, kind="stable")
        return {self.models_[k]: float(self.ratings_[k]) for k in order}

    def _d_phi(self, i: Any, j: Any) -> tuple[np.ndarray, float]:
        ii = np.vectorize(self._index, otypes=[np.int64])(np.asarray(i, dtype=object))
        jj = np.vectorize(self._index, otypes=[np.int64])(np.asarray(j, dtype=object))
        s = self.log_strengths_
        return s[ii] - s[jj], (self.phi_ if self.phi_ is not None else 0.0)

    def predict_proba(self, i: Any, j: Any) -> Any:
        """Probability that model ``i`` beats model ``j`` (names or indices, arrays allowed).

        For the tie models this is the probability of a win, not counting ties.
        """
        d, phi = self._d_phi(i, j)
        with np.errstate(over="ignore"):
            if self.fit_ties_ == "davidson":
                p = 1.0 / (1.0 + np.exp(-d) + np.exp(phi - 0.5 * d))
            elif self.fit_ties_ == "rao-kupper":
                p = expit(d - phi)
            else:
                p = expit(d)
        return p if np.ndim(p) else float(p)

    def tie_proba(self, i: Any, j: Any) -> Any:
        """Probability of a tie between ``i`` and ``j`` (0 for ``half`` and ``drop``)."""
        d, phi = self._d_phi(i, j)
        with np.errstate(over="ignore"):
            if self.fit_ties_ == "davidson":
                p = 1.0 / (1.0 + 2.0 * np.cosh(0.5 * d) / np.exp(phi))
            elif self.fit_ties_ == "rao-kupper":
                p = 1.0 - expit(d - phi) - expit(-d - phi)
            else:
                p = np.zeros_like(d)
        return p if np.ndim(p) else float(p)

    def win_matrix(self, score: bool = False) -> np.ndarray:
        """``(m, m)`` predicted probability that row beats column (diagonal NaN).

        Parameters
        ----------
        score
            Expected score ``P(win) + P(tie) / 2`` instead of the win probability (the
            same for ``half`` and ``drop``), comparable with observed win rates that count
            ties as half.
        """
        m = len(self.models_)
        ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        p = np.asarray(self.predict_proba(ii, jj))
        if score:
            p = p + 0.5 * np.asarray(self.tie_proba(ii, jj))
        p[np.arange(m), np.arange(m)] = np.nan
        return p
