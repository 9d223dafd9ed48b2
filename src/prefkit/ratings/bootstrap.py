"""Bootstrap intervals for Bradley–Terry ratings, vectorised across rounds.

The nonparametric bootstrap (Efron 1979, "Bootstrap methods: another look at the
jackknife", Ann. Statist. 7) as used for the Chatbot Arena leaderboard (Chiang et al.
2024): resample the battles with replacement, refit, and take percentile intervals of
the refitted ratings. Ranks follow the Chatbot Arena rule (:func:`arena_ranks`).

Resampling battles is the same as drawing the aggregated cell counts — wins of i, wins
of j and ties for every observed pair i < j — from ``Multinomial(N, counts / N)``, and
the fit only needs those cells. Deviations and implementation choices:

* **Exact multinomial, drawn fast.** ``numpy``'s multinomial makes one binomial draw per
  cell. Here each cell is drawn ``Poisson(N p_k)`` (vectorised over rounds), and the
  round is corrected to exactly N battles: a surplus is removed as a uniformly random
  subset of the drawn battles, a deficit is filled with categorical draws. Given its
  total, a Poisson vector is multinomial, and a uniform subsample (or an independent
  top-up) of a multinomial sample is multinomial, so the counts are exactly
  ``Multinomial(N, p)``.
* **All rounds are solved together.** Every round starts from the full-data fit x̂ and
  iterates ``x ← x + H(x̂)⁻¹ ∇ℓ_r(x)`` with the full-data Hessian, factorised once: one
  ``(rounds, K)`` pass and a ``(rounds, m) @ (m, m)`` product per iteration, converging
  linearly at a rate set by how far a resample's Hessian is from the full-data one
  (a few iterations for large data). Rounds that contract too slowly switch to the
  batched damped Newton solver of :mod:`prefkit.ratings.likelihood`.
* **Degenerate rounds.** A resample in which a model never wins or never loses (ties
  count both ways, except for ``ties="drop"``) has no finite maximum-likelihood fit. Such
  rounds are found before fitting (and a group of models that never loses to the rest is
  caught by an exact strongly-connected-components check on rounds that do not
  converge). ``degenerate="pseudo"`` (default) adds ``pseudo`` virtual battles split as
  half a win each way to every pair the affected models played in the full data — the
  virtual draws of Coulom's BayesElo — and refits the round; ``degenerate="drop"``
  leaves the round out of the percentiles. With an ``l2 > 0`` prior every round already
  has a finite fit and is kept as it is (policy ``"prior"``). Either way the result
  reports how many rounds and which models were affected.

Blocks of rounds draw from ``numpy.random.SeedSequence(seed).spawn``, with a block size
that depends only on the data, so the result is the same for any ``n_jobs``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from prefkit.errors import PrefkitError
from prefkit.ratings.battles import BattleCounts
from prefkit.ratings.bradley_terry import BradleyTerry, unbounded_groups
from prefkit.ratings.likelihood import TIE_PARAM, Graph, Problem, newton
from prefkit.ratings.result import ArenaResult, arena_ranks

DEGENERATE = ("pseudo", "drop")
#: Resampled cells per block of rounds (bounds memory at ~100 MB of float64 per block).
BLOCK_CELLS = 1_500_000
#: Fixed-Hessian iterations before a round is handed to Newton's method.
FIXED_ITER = 40
#: Multiply-adds per BLAS call in the fixed-Hessian product (see `_product`).
GEMM_SLICE = 1 << 17
#: A round whose fixed-Hessian step shrinks by less than this factor goes to Newton.
SLOW_RATIO = 0.5


# --- sampling ---------------------------------------------------------------------------------
def multinomial_rows(rng: np.random.Generator, n: int, p: np.ndarray, size: int) -> np.ndarray:
    """``(size, C)`` int64 rows drawn from ``Multinomial(n, p)`` (module docstring).

    Parameters
    ----------
    p
        ``(C,)`` cell probabilities summing to 1.
    """
    x = rng.poisson(n * p, size=(size, len(p)))
    total = x.sum(axis=1)
    for r in np.flatnonzero(total > n):
        # Remove a uniform random subset of the drawn battles (positions in cell order).
        pos = rng.choice(int(total[r]), size=int(total[r] - n), replace=False)
        cells = np.searchsorted(np.cumsum(x[r]), pos, side="right")
        x[r] -= np.bincount(cells, minlength=len(p))
    short = np.flatnonzero(total < n)
    if len(short):
        need = n - total[short]
        cdf = np.cumsum(p)
        last = int(np.flatnonzero(p > 0)[-1])
        cells = np.minimum(np.searchsorted(cdf, rng.random(int(need.sum())), side="right"), last)
        np.add.at(x, (np.repeat(short, need), cells), 1)
    return x


# --- setup shared by the blocks ---------------------------------------------------------------
@dataclass
class _Setup:
    est: BradleyTerry
    ties: str
    graph: Graph
    cells: np.ndarray  # (K, 3)
    n: int
    x_hat: np.ndarray  # (1, p)
    inverse: np.ndarray  # (p, p) gauge-fixed inverse of the full-data negative Hessian
    on_i: sp.csr_matrix  # (K, m) indicator of the pair's first model
    on_j: sp.csr_matrix
    policy: str
    pseudo: float
    tol: float
    max_iter: int


class _Block(NamedTuple):
    x: np.ndarray  # (B, p), NaN rows for dropped rounds
    degenerate: np.ndarray  # (B,) bool
    affected: np.ndarray  # (B, m) bool
    unconverged: np.ndarray  # (B,) bool


def _setup(est: BradleyTerry, policy: str, pseudo: float, tol: float) -> _Setup:
    counts: BattleCounts = est.counts_
    i, j, cells = counts.pairs()
    graph = est.problem_.graph
    x_hat = np.r_[est.log_strengths_, [est.phi_] if est.phi_ is not None else []][None, :]
    _, _, hess = est.problem_.evaluate(x_hat)
    inverse = np.linalg.inv(est.problem_.gauge_matrix(hess)[0])
    k, m = len(i), counts.n_models
    ones = np.ones(k)
    on_i = sp.csr_matrix((ones, (np.arange(k), i)), shape=(k, m))
    on_j = sp.csr_matrix((ones, (np.arange(k), j)), shape=(k, m))
    return _Setup(
        est,
        est.fit_ties_,
        graph,
        cells,
        counts.n_battles,
        x_hat,
        inverse,
        on_i,
        on_j,
        policy,
        pseudo,
        tol,
        est.max_iter,
    )


def _effective(ties: str, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(B, 3, K)`` drawn wins of i, wins of j, ties → effective ``a, b, t`` (``(B, K)``)."""
    won, lost, t = draws[:, 0], draws[:, 1], draws[:, 2]
    if ties == "half":
        half = 0.5 * t
        return won + half, lost + half, np.zeros(won.shape)
    if ties == "drop":
        return won.astype(np.float64), lost.astype(np.float64), np.zeros(won.shape)
    return won.astype(np.float64), lost.astype(np.float64), t.astype(np.float64)


def _affected(s: _Setup, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(B, m)``: models with no win or no loss in each round (ties count both ways)."""
    fwd, bwd = a + t, b + t  # (B, K): the pair's first / second model won or tied
    out = np.zeros((len(a), s.graph.m), dtype=bool)
    # Rounds where every pair went both ways cannot have such a model; check the others.
    rows = np.flatnonzero(~((fwd > 0) & (bwd > 0)).all(axis=1))
    if len(rows):
        f, g = fwd[rows].T, bwd[rows].T
        won = s.on_i.T @ f + s.on_j.T @ g  # (m, rows)
        lost = s.on_i.T @ g + s.on_j.T @ f
        out[rows] = ((won <= 0) | (lost <= 0)).T
    return out


def _add_pseudo(
    s: _Setup, a: np.ndarray, b: np.ndarray, rows: np.ndarray, affected: np.ndarray
) -> None:
    """Virtual half-wins each way on every pair touching an affected model, in place."""
    pairs = affected[:, s.graph.i] | affected[:, s.graph.j]  # (len(rows), K)
    a[rows] += 0.5 * s.pseudo * pairs
    b[rows] += 0.5 * s.pseudo * pairs


def _product(g: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``g @ inverse`` in slices of rows small enough for BLAS to run them on one
    thread: a threaded BLAS would spin between the many small calls and take the cores
    from the bootstrap's own threads."""
    p = inverse.shape[0]
    rows = max(1, GEMM_SLICE // (p * p))
    if len(g) <= rows:
        return g @ inverse
    return np.concatenate([g[k : k + rows] @ inverse for k in range(0, len(g), rows)])


def _fixed_hessian(s: _Setup, problem: Problem, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Iterate ``x ← x + H(x̂)⁻¹ ∇`` on ``rows``; returns the rows that converged."""
    converged = np.zeros(len(x), dtype=bool)
    prev = np.full(len(x), np.inf)
    active = rows
    for _ in range(FIXED_ITER):
        if not len(active):
            break
        step = _product(problem.gradient(x[active], rows=active), s.inverse)
        x[active] = problem.project(x[active] + step)
        size = np.abs(step).max(axis=1)
        done = size < s.tol
        slow = ~done & ((size > SLOW_RATIO * prev[active]) | ~np.isfinite(size))
        prev[active] = size
        converged[active[done]] = True
        x[active[slow]] = s.x_hat  # restart Newton from the full-data fit
        active = active[~done & ~slow]
    return converged


def _solve(s: _Setup, problem: Problem, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Fit ``rows`` in place; returns which of them converged."""
    converged = _fixed_hessian(s, problem, x, rows)
    rest = rows[~converged[rows]]
    if len(rest):
        res = newton(problem, x[rest], max_iter=s.max_iter, tol=s.tol, rows=rest)
        x[rest] = res.x
        converged[rest] = res.converged
    return converged


def _run_block(s: _Setup, seed: np.random.SeedSequence, size: int) -> _Block:
    rng = np.random.Generator(np.random.SFC64(seed))
    k, m = len(s.cells), s.graph.m
    # Cells ordered (outcome, pair) so that each outcome is a (B, K) slab.
    draws = multinomial_rows(rng, s.n, (s.cells.T / s.n).ravel(), size).reshape(size, 3, k)
    a, b, t = _effective(s.ties, draws)
    affected = _affected(s, a, b, t)
    degenerate = np.asarray(affected.any(axis=1), dtype=bool)
    dropped = degenerate.copy() if s.policy == "drop" else np.zeros(size, dtype=bool)
    if s.policy == "pseudo" and degenerate.any():
        rows = np.flatnonzero(degenerate)
        _add_pseudo(s, a, b, rows, affected[rows])
    l2 = s.est.problem_.l2
    problem = Problem(s.ties, s.graph, a, b, t, l2)
    x = np.repeat(s.x_hat, size, axis=0)
    converged = _solve(s, problem, x, np.flatnonzero(~dropped))
    # A group of models that never lost (or never won) against the rest: exact check on
    # the rounds that did not converge.
    unconverged = ~converged & ~dropped
    redo = []
    for r in np.flatnonzero(unconverged if s.policy != "prior" else []):
        groups = unbounded_groups(m, s.graph.i, s.graph.j, np.stack([a[r], b[r], t[r]], axis=1))
        if groups is None:
            continue
        members = np.concatenate([*groups[0], *groups[1]])
        affected[r, members] = True
        degenerate[r] = True
        if s.policy == "drop":
            dropped[r] = True
        else:
            _add_pseudo(s, a, b, np.array([r]), affected[r : r + 1])
            redo.append(r)
    unconverged &= ~degenerate
    if redo:
        rows = np.array(redo)
        problem = Problem(s.ties, s.graph, a, b, t, l2)
        x[rows] = s.x_hat
        res = newton(problem, x[rows], max_iter=s.max_iter, tol=s.tol, rows=rows)
        x[rows] = res.x
        unconverged[rows] = ~res.converged
    x[dropped] = np.nan
    return _Block(x, degenerate, affected & degenerate[:, None], unconverged)


# --- entry point ------------------------------------------------------------------------------
def bootstrap(
    counts: Any,
    model: BradleyTerry | None = None,
    rounds: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    *,
    degenerate: str = "pseudo",
    pseudo: float = 1.0,
    tol: float = 1e-7,
    n_jobs: int | None = None,
    keep_samples: bool = True,
) -> ArenaResult:
    """Bootstrap percentile intervals and Chatbot Arena ranks for Bradley–Terry ratings.

    Parameters
    ----------
    counts
        `BattleCounts`, a battle table or a `Dataset`.
    model
        The estimator and its hyper-parameters (default ``BradleyTerry()``). It is
        fitted on ``counts`` unless it already was.
    rounds, seed
        Bootstrap rounds and the random seed.
    ci
        Interval level; the bounds are the ``(1 − ci) / 2`` and ``(1 + ci) / 2``
        percentiles of the bootstrap ratings.
    degenerate
        ``"pseudo"`` refits rounds without a finite fit with ``pseudo`` virtual battles
        (half a win each way) per pair of each affected model; ``"drop"`` leaves those
        rounds out. When the model has an ``l2`` prior every round has a finite fit, so
        ``"pseudo"`` only reports them (policy ``"prior"`` in the result).
    tol
        Convergence tolerance per round (natural-log units; 1e-7 ≈ 2e-5 rating points).
    n_jobs
        Threads (default: the CPU count). The result does not depend on it.
    keep_samples
        Keep the ``(rounds, m)`` bootstrap ratings in ``ArenaResult.samples``.
    """
    if degenerate not in DEGENERATE:
        raise PrefkitError(f"degenerate={degenerate!r}: choose one of {', '.join(DEGENERATE)}")
    if rounds < 1:
        raise PrefkitError(f"rounds={rounds} must be >= 1")
    if not 0 < ci < 1:
        raise PrefkitError(f"ci={ci} must be between 0 and 1")
    data = BattleCounts.coerce(counts)
    est = model if model is not None else BradleyTerry()
    if getattr(est, "counts_", None) is not data:
        est = est.clone().fit(data)
    # With a prior every round has a finite fit: degenerate rounds are only reported
    # (policy "prior"), so that the rounds and the point estimate use the same model.
    policy = "prior" if degenerate == "pseudo" and est.problem_.l2 > 0 else degenerate
    s = _setup(est, policy, float(pseudo), float(tol))
    block = int(np.clip(BLOCK_CELLS // (3 * len(s.cells)), 1, 256))
    sizes = [min(block, rounds - start) for start in range(0, rounds, block)]
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    jobs = max(1, min(n_jobs or os.cpu_count() or 1, len(sizes)))
    if jobs == 1:
        blocks = [_run_block(s, sq, n) for sq, n in zip(seeds, sizes, strict=True)]
    else:
        with ThreadPoolExecutor(jobs) as pool:
            blocks = list(pool.map(lambda a: _run_block(s, *a), zip(seeds, sizes, strict=True)))
    return _summarise(s, blocks, rounds, seed, ci, keep_samples)


def _summarise(
    s: _Setup, blocks: list[_Block], rounds: int, seed: int, ci: float, keep: bool
) -> ArenaResult:
    est, m = s.est, s.graph.m
    x = np.concatenate([b.x for b in blocks])
    degenerate = np.concatenate([b.degenerate for b in blocks])
    affected = np.concatenate([b.affected for b in blocks])
    unconverged = np.concatenate([b.unconverged for b in blocks])
    samples = est.to_ratings(x[:, :m])
    kept = ~np.isnan(samples).any(axis=1)
    warns = list(est.warnings_)
    q = [(1 - ci) / 2, 0.5, (1 + ci) / 2]
    if kept.any():
        lower, median, upper = np.quantile(samples[kept], q, axis=0)
    else:
        lower = median = upper = np.full(m, np.nan)
        warns.append("every bootstrap round was degenerate and dropped: no intervals")
    n_deg = int(degenerate.sum())
    if n_deg:
        how = {
            "pseudo": "refitted with virtual ties",
            "drop": "left out",
            "prior": f"kept finite by the l2={est.l2} prior",
        }[s.policy]
        warns.append(f"{n_deg} of {rounds} bootstrap rounds had no finite fit ({how})")
    if unconverged.any():
        warns.append(f"{int(unconverged.sum())} bootstrap rounds did not converge to tol={s.tol}")
    tie_param = None
    if est.ties in TIE_PARAM:
        name = TIE_PARAM[est.ties]
        value = getattr(est, f"{name}_")
        if est.phi_ is not None and kept.any():
            lo, hi = np.exp(np.quantile(x[kept, m], [q[0], q[2]]))
        else:
            lo = hi = value
        tie_param = {"name": name, "value": value, "lower": float(lo), "upper": float(hi)}
    per_model = affected.sum(axis=0)
    return ArenaResult(
        models=list(est.models_),
        rating=est.ratings_.copy(),
        lower=lower,
        upper=upper,
        median=median,
        rank=arena_ranks(lower, upper),
        battles=est.battles_.copy(),
        method="bootstrap",
        ci=ci,
        ties=est.ties,
        rounds=rounds,
        seed=seed,
        degenerate_rounds=n_deg,
        degenerate_models={est.models_[k]: int(per_model[k]) for k in np.flatnonzero(per_model)},
        degenerate_policy=s.policy,
        unconverged_rounds=int(unconverged.sum()),
        tie_param=tie_param,
        scale=est.scale,
        base=est.base,
        init=est.init,
        anchor=est.anchor,
        samples=samples if keep else None,
        warnings=warns,
    )
