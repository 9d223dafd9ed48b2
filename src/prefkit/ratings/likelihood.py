"""Bradley–Terry log-likelihoods with ties on aggregated counts, and a batched Newton solver.

Parameters are natural-log strengths ``s`` (one per model, ``π_i = exp(s_i)``) and, for
the tie models, one tie parameter ``φ``. For a pair ``i < j`` that met with ``a`` wins
of i, ``b`` wins of j and ``t`` ties, the log-likelihood depends on the strengths only
through ``d = s_i − s_j``:

* Bradley–Terry (Bradley & Terry 1952; Zermelo 1929):
  ``ℓ = a log σ(d) + b log σ(−d)``. Ties are entered as half a win each way
  (``"half"``, the Chatbot Arena convention) or left out (``"drop"``).
* Davidson (1970), "On extending the Bradley–Terry model to accommodate ties in paired
  comparison experiments", JASA 65: ``P(i) ∝ π_i``, ``P(j) ∝ π_j``,
  ``P(tie) ∝ ν √(π_i π_j)``; ``φ = log ν``. With ``c = d / 2``:
  ``ℓ = (a − b) c + t φ − n log(e^c + e^−c + ν)``.
* Rao & Kupper (1967), "Ties in paired-comparison experiments: a generalization of the
  Bradley–Terry model", JASA 62: ``P(i) = π_i / (π_i + θ π_j)``, θ ≥ 1; ``φ = log θ``.
  ``P(tie) = (θ² − 1) σ(d − φ) σ(−d − φ)``, so
  ``ℓ = (a + t) log σ(d − φ) + (b + t) log σ(−d − φ) + t log(e^{2φ} − 1)``.

All three are concave in ``(s, φ)`` (log-sum-exp of affine functions; for Rao–Kupper
``log(e^{2φ} − 1)`` is concave on φ > 0), so Newton's method with a backtracking line
search converges from any start when the maximum exists. The likelihood is invariant
under ``s → s + c``; the solver keeps ``Σ s = 0`` and adds ``c · 11ᵀ/m`` to the negative
Hessian to make the Newton system non-singular without changing the step (the gradient
is orthogonal to ``1``). An optional Gaussian prior ``−(l2 / 2) Σ s²`` is added.

Every quantity is computed per observed pair (``K`` pairs) and scattered to the models
with a sparse ``(K, m)`` incidence matrix, for ``R`` problems at once (``(R, K)`` arrays):
the point fit is ``R = 1`` and the bootstrap solves all its rounds together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

#: Tie conventions, in the order the CLI lists them.
TIES = ("half", "davidson", "rao-kupper", "drop")
#: Name of the tie parameter of the tie models.
TIE_PARAM = {"davidson": "nu", "rao-kupper": "theta"}
#: Relative ridge added to Newton systems (see `newton`).
RIDGE = 1e-10
#: Bounds of φ (log ν, log θ): ν in [1e-13, 1e13], θ in (1 + 2e-9, e^30].
PHI_BOUNDS = {"davidson": (-30.0, 30.0), "rao-kupper": (1e-9, 30.0)}


# --- data -------------------------------------------------------------------------------------
def effective_counts(ties: str, cells: np.ndarray) -> np.ndarray:
    """``(..., K, 3)`` wins of i, wins of j, ties → the ``(a, b, t)`` each model uses.

    ``"half"`` turns a tie into half a win each way, ``"drop"`` removes it; the tie
    models keep it.
    """
    cells = np.asarray(cells, dtype=np.float64)
    out = cells.copy()
    if ties == "half":
        out[..., 0] += 0.5 * cells[..., 2]
        out[..., 1] += 0.5 * cells[..., 2]
        out[..., 2] = 0.0
    elif ties == "drop":
        out[..., 2] = 0.0
    return out


@dataclass(frozen=True)
class Graph:
    """K observed pairs ``i < j`` of m models with their ``(K, m)`` incidence matrices."""

    m: int
    i: np.ndarray
    j: np.ndarray
    signed: sp.csr_matrix
    unsigned: sp.csr_matrix

    @classmethod
    def build(cls, m: int, i: np.ndarray, j: np.ndarray) -> Graph:
        k = len(i)
        rows = np.r_[np.arange(k), np.arange(k)]
        cols = np.r_[i, j]
        signed = sp.csr_matrix((np.r_[np.ones(k), -np.ones(k)], (rows, cols)), shape=(k, m))
        unsigned = sp.csr_matrix((np.ones(2 * k), (rows, cols)), shape=(k, m))
        return cls(m, np.asarray(i), np.asarray(j), signed, unsigned)

    def scatter(self, v: np.ndarray) -> np.ndarray:
        """``(R, K)`` pair values → ``(R, m)``: ``+v`` to model i, ``−v`` to model j."""
        return np.asarray((self.signed.T @ v.T).T)

    def scatter_abs(self, v: np.ndarray) -> np.ndarray:
        """``(R, K)`` pair values → ``(R, m)``: ``+v`` to both models of the pair."""
        return np.asarray((self.unsigned.T @ v.T).T)


class Terms(NamedTuple):
    """Per-pair log-likelihood and its derivatives in ``d`` and ``φ`` (``(R, K)`` each)."""

    ll: np.ndarray | None
    ld: np.ndarray
    lp: np.ndarray | None
    ldd: np.ndarray | None
    lpp: np.ndarray | None
    ldp: np.ndarray | None


# --- per-pair terms ---------------------------------------------------------------------------
def pair_terms(
    ties: str,
    d: np.ndarray,
    phi: np.ndarray | None,
    a: np.ndarray,
    b: np.ndarray,
    t: np.ndarray,
    order: int = 2,
    n: np.ndarray | None = None,
) -> Terms:
    """Log-likelihood terms of each pair (module docstring); ``order`` 1 skips ``ll`` and
    the second derivatives. ``phi`` is ``(R, 1)`` (ignored for ``half``/``drop``); ``n``
    is ``a + b + t`` when the caller has it."""
    n = a + b + t if n is None else n
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if ties in ("half", "drop"):
            return _bt_terms(d, a, b, n, order)
        assert phi is not None
        if ties == "davidson":
            return _davidson_terms(d, phi, a, b, t, n, order)
        return _rao_kupper_terms(d, phi, a, b, t, order)


def _bt_terms(d: np.ndarray, a: np.ndarray, b: np.ndarray, n: np.ndarray, order: int) -> Terms:
    # n = a + b (t is 0 for these conventions). p = σ(d), computed in place; exp overflow
    # for d < −709 gives p = 0 as it should.
    p = np.exp(-d)
    p += 1.0
    np.reciprocal(p, out=p)
    ld = a - n * p
    if order < 2:
        return Terms(None, ld, None, None, None, None)
    ll = -(a * np.logaddexp(0.0, -d) + b * np.logaddexp(0.0, d))
    return Terms(ll, ld, None, -n * p * (1.0 - p), None, None)


def _davidson_terms(
    d: np.ndarray,
    phi: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    t: np.ndarray,
    n: np.ndarray,
    order: int,
) -> Terms:
    c = 0.5 * d
    nu = np.exp(phi)
    two_cosh = 2.0 * np.cosh(c)  # overflows to inf for huge |c|; the ratios below stay finite
    r = np.tanh(c) / (1.0 + nu / two_cosh)  # P(i) − P(j)
    p_tie = 1.0 / (1.0 + two_cosh / nu)
    ld = 0.5 * (a - b) - 0.5 * n * r
    lp = t - n * p_tie
    if order < 2:
        return Terms(None, ld, lp, None, None, None)
    log_z = np.logaddexp(np.logaddexp(c, -c), phi)
    ll = (a - b) * c + t * phi - n * log_z
    ldd = -0.25 * n * ((1.0 - p_tie) - r * r)
    lpp = -n * p_tie * (1.0 - p_tie)
    ldp = 0.5 * n * r * p_tie
    return Terms(ll, ld, lp, ldd, lpp, ldp)


def _rao_kupper_terms(
    d: np.ndarray, phi: np.ndarray, a: np.ndarray, b: np.ndarray, t: np.ndarray, order: int
) -> Terms:
    u, v = d - phi, -d - phi
    wa, wb = a + t, b + t
    qu, qv = expit(-u), expit(-v)  # 1 − σ(u), 1 − σ(v)
    em = -np.expm1(-2.0 * phi)  # 1 − e^{−2φ} > 0
    ld = wa * qu - wb * qv
    lp = -wa * qu - wb * qv + t * 2.0 / em
    if order < 2:
        return Terms(None, ld, lp, None, None, None)
    ll = -(wa * np.logaddexp(0.0, -u) + wb * np.logaddexp(0.0, -v))
    ll = ll + t * (2.0 * phi + np.log(em))  # log(e^{2φ} − 1)
    cu, cv = wa * qu * (1.0 - qu), wb * qv * (1.0 - qv)
    ldd = -cu - cv
    lpp = -cu - cv - t * 4.0 * np.exp(-2.0 * phi) / (em * em)
    ldp = cu - cv
    return Terms(ll, ld, lp, ldd, lpp, ldp)


# --- problems ---------------------------------------------------------------------------------
@dataclass
class Problem:
    """R penalised log-likelihoods over one comparison graph.

    ``a, b, t`` are ``(R, K)`` *effective* counts (see :func:`effective_counts`); with
    ``R = 1`` they are shared by every row of ``x``.
    """

    ties: str
    graph: Graph
    a: np.ndarray
    b: np.ndarray
    t: np.ndarray
    l2: float = 0.0

    def __post_init__(self) -> None:
        self.n = self.a + self.b + self.t

    @classmethod
    def from_counts(cls, ties: str, graph: Graph, counts: np.ndarray, l2: float = 0.0) -> Problem:
        """From ``(R, K, 3)`` effective counts (contiguous copies of the three columns: the
        per-pair ufuncs run faster than on strided views)."""
        c = np.asarray(counts, dtype=np.float64)
        a, b, t = (np.ascontiguousarray(c[..., k]) for k in range(3))
        return cls(ties, graph, a, b, t, l2)

    @property
    def has_phi(self) -> bool:
        return self.ties in TIE_PARAM

    @property
    def n_params(self) -> int:
        return self.graph.m + int(self.has_phi)

    def _terms(self, x: np.ndarray, rows: np.ndarray | None, order: int) -> Terms:
        g = self.graph
        a, b, t, n = self.a, self.b, self.t, self.n
        if rows is not None and len(a) > 1 and not (len(rows) == len(a) and _is_range(rows)):
            a, b, t, n = a[rows], b[rows], t[rows], n[rows]
        d = np.take(x, g.i, axis=1)
        d -= np.take(x, g.j, axis=1)
        phi = x[:, g.m : g.m + 1] if self.has_phi else None
        return pair_terms(self.ties, d, phi, a, b, t, order, n)

    def objective(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``(R,)`` penalised log-likelihood at ``x`` (``(R, p)``)."""
        terms = self._terms(x, rows, order=2)
        assert terms.ll is not None
        out = terms.ll.sum(axis=1)
        if self.l2:
            out = out - 0.5 * self.l2 * np.einsum(
                "rk,rk->r", x[:, : self.graph.m], x[:, : self.graph.m]
            )
        return np.asarray(out)

    def gradient(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``(R, p)`` gradient of the penalised log-likelihood."""
        terms = self._terms(x, rows, order=1)
        return self._grad(x, terms)

    def _grad(self, x: np.ndarray, terms: Terms) -> np.ndarray:
        m = self.graph.m
        g = np.empty((len(x), self.n_params))
        g[:, :m] = self.graph.scatter(terms.ld)
        if self.l2:
            g[:, :m] -= self.l2 * x[:, :m]
        if self.has_phi:
            assert terms.lp is not None
            g[:, m] = terms.lp.sum(axis=1)
        return g

    def evaluate(
        self, x: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Objective ``(R,)``, gradient ``(R, p)`` and negative Hessian ``(R, p, p)``."""
        terms = self._terms(x, rows, order=2)
        assert terms.ll is not None and terms.ldd is not None
        m, gr = self.graph.m, self.graph
        ll = terms.ll.sum(axis=1)
        if self.l2:
            ll = ll - 0.5 * self.l2 * np.einsum("rk,rk->r", x[:, :m], x[:, :m])
        grad = self._grad(x, terms)
        hess = np.zeros((len(x), self.n_params, self.n_params))
        hess[:, gr.i, gr.j] = terms.ldd  # −H_ij = +ldd: ∂d/∂s_i ∂d/∂s_j = −1
        hess[:, gr.j, gr.i] = terms.ldd
        diag = -gr.scatter_abs(terms.ldd) + self.l2
        hess[:, np.arange(m), np.arange(m)] = diag
        if self.has_phi:
            assert terms.lpp is not None and terms.ldp is not None
            cross = -gr.scatter(terms.ldp)
            hess[:, :m, m] = cross
            hess[:, m, :m] = cross
            hess[:, m, m] = -terms.lpp.sum(axis=1)
        return ll, grad, hess

    def project(self, x: np.ndarray) -> np.ndarray:
        """Fix the gauge (``Σ s = 0``) and keep φ inside its bounds, in place."""
        m = self.graph.m
        x[:, :m] -= x[:, :m].mean(axis=1, keepdims=True)
        if self.has_phi:
            lo, hi = PHI_BOUNDS[self.ties]
            np.clip(x[:, m], lo, hi, out=x[:, m])
        return x

    def gauge_matrix(self, hess: np.ndarray, ridge: float = 0.0) -> np.ndarray:
        """``hess + c · 11ᵀ / m`` on the strength block (``c`` = mean diagonal), plus
        ``ridge · c`` on the diagonal when asked."""
        m = self.graph.m
        out = hess.copy()
        c = np.maximum(np.einsum("rii->r", hess[:, :m, :m]) / m, 1e-12)
        out[:, :m, :m] += c[:, None, None] / m
        if ridge:
            idx = np.arange(out.shape[1])
            out[:, idx, idx] += ridge * c[:, None]
        return out


def _is_range(rows: np.ndarray) -> bool:
    return bool(rows[0] == 0 and (np.diff(rows) == 1).all())


class NewtonResult(NamedTuple):
    x: np.ndarray
    objective: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray


# --- solver -----------------------------------------------------------------------------------
def newton(
    problem: Problem,
    x0: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    rows: np.ndarray | None = None,
) -> NewtonResult:
    """Damped Newton ascent for R problems at once.

    Parameters
    ----------
    x0
        ``(R, p)`` starting points (copied).
    tol
        A problem has converged when its accepted step is below ``tol`` in every
        coordinate (natural-log units).
    rows
        Which rows of ``problem.counts`` the R problems use (default: all, in order).

    Returns
    -------
    NewtonResult
        Solutions, objectives, iterations used and convergence flags (``(R,)`` each).
    """
    x = problem.project(np.array(x0, dtype=np.float64, copy=True))
    r = len(x)
    count_rows = np.arange(r) if rows is None else np.asarray(rows)
    n_iter = np.zeros(r, dtype=np.int64)
    converged = np.zeros(r, dtype=bool)
    obj = np.full(r, -np.inf)
    active = np.arange(r)
    for _ in range(max_iter):
        if not len(active):
            break
        crow = count_rows[active]
        ll, grad, hess = problem.evaluate(x[active], crow)
        obj[active] = ll
        # The tiny ridge keeps the system solvable when a round drifts towards a
        # degenerate fit (cross-group win probabilities underflow); it does not move the
        # fixed point (the gradient is 0 there).
        step = np.linalg.solve(problem.gauge_matrix(hess, RIDGE), grad[..., None])[..., 0]
        alpha = np.ones(len(active))
        x_new = problem.project(x[active] + step)
        ll_new = problem.objective(x_new, crow)
        slack = 1e-12 * (1.0 + np.abs(ll))
        # Backtracking (halving) for the rows whose objective went down.
        for _ in range(50):
            bad = ~(ll_new >= ll - slack)
            if not bad.any():
                break
            alpha[bad] *= 0.5
            x_new[bad] = problem.project(x[active[bad]] + alpha[bad, None] * step[bad])
            ll_new[bad] = problem.objective(x_new[bad], crow[bad])
        moved = np.abs(x_new - x[active]).max(axis=1)
        x[active] = x_new
        obj[active] = ll_new
        n_iter[active] += 1
        done = moved < tol
        converged[active[done]] = True
        active = active[~done]
    return NewtonResult(x, obj, n_iter, converged)
