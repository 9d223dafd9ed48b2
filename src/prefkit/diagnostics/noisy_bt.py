"""The noisy Bradley–Terry model behind the label-noise check.

Bradley–Terry with covariates (Bradley and Terry 1952; Springall 1973) inside the
symmetric label-flip model (Natarajan, Dhillon, Ravikumar and Tewari 2013, "Learning with
Noisy Labels"; Chowdhury, Kini and Natarajan 2024, "Provably Robust DPO"), with a per-item
random effect integrated by adaptive Gauss–Hermite quadrature. The model, its fitting,
profile-likelihood interval and posterior flip scores are documented in
:mod:`prefkit.diagnostics.checks.noise`, which applies it to a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

#: Gauss–Hermite nodes for the item random effect u ~ N(0, τ²).
NODES = 30
_T, _W = np.polynomial.hermite.hermgauss(NODES)
U = np.sqrt(2.0) * _T  # (G,) nodes for a standard normal
LOG_OMEGA = np.log(_W / np.sqrt(np.pi))  # (G,) their log weights (sum to 1)
LOG_GH = np.log(_W) + _T**2  # (G,) log of w_g·exp(t_g²), for shifted and scaled nodes
#: Adaptive quadrature: optimisation rounds (nodes re-centred before each), fixed-point
#: updates of each item's posterior mean and sd per centring, and the smallest sd.
ADAPT_ROUNDS = 2
ADAPT_STEPS = 3
SD_FLOOR = 1e-3
EPS_MAX = 0.5
TAU_MIN, TAU_MAX = 0.01, 10.0
#: L2 penalty on the standardised weights: a N(0, 2.5²) prior on the effect of one standard
#: deviation of a feature (weakly informative, after Gelman, Jakulin, Pittau and Su 2008).
#: Without it, collinear length features ran off to ±40 on vicuna80.
RIDGE = 1.0 / 2.5**2
#: Bounded truncated Newton (SciPy TNC). L-BFGS-B gave the same fits but its internal
#: BLAS calls ran ten times slower on a busy 2-core machine (threads spinning). ``ftol``
#: stops at a change of 1e-3 in the negative log-likelihood (deviances to 2e-3).
METHOD = "TNC"
OPTIONS = {"maxfun": 1000, "ftol": 1e-3}
#: Bisections of the bracket where the profile deviance crosses the cut.
BISECTIONS = 2
#: χ²₁ 95% quantile: the profile-likelihood interval's deviance cut.
CHI2_95 = 3.841458820694124
#: Judgments per block when scoring (bounds the (n, NODES) temporaries).
SCORE_BLOCK = 200_000


# --- data ----------------------------------------------------------------------------------------
@dataclass
class PairData:
    """Non-tie judgments grouped by item, the input of :class:`NoisyBT`.

    Judgments of one item with the same label and the same display order have the same
    likelihood, so each such group is one row with a ``count`` (a pair judged by 30
    people becomes at most 4 rows).

    Attributes
    ----------
    X
        ``(m, d)`` standardised features of each item (canonical first − second).
    item
        ``(n,)`` item of each row, sorted (rows of an item are contiguous).
    sign
        ``(n,)`` +1 when the row's judgments preferred the canonical first response.
    pos
        ``(n,)`` +1 when they showed the canonical first response as ``a``, else −1.
    count
        ``(n,)`` judgments in the row.
    """

    X: np.ndarray
    item: np.ndarray
    sign: np.ndarray
    pos: np.ndarray
    count: np.ndarray
    starts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        new_item = np.r_[True, self.item[1:] != self.item[:-1]] if len(self.item) else []
        self.starts = np.flatnonzero(new_item)

    def subset(self, items: np.ndarray) -> tuple[PairData, np.ndarray]:
        """The data of ``items`` (sorted item indices) and the rows they keep."""
        rows = np.flatnonzero(np.isin(self.item, items))
        new = np.searchsorted(items, self.item[rows])
        sub = PairData(self.X[items], new, self.sign[rows], self.pos[rows], self.count[rows])
        return sub, rows

    def judgments_per_item(self) -> np.ndarray:
        return np.add.reduceat(self.count, self.starts) if len(self.item) else self.count[:0]

    @property
    def n_judgments(self) -> int:
        return int(self.count.sum())


# --- model ---------------------------------------------------------------------------------------
# Products with a tall matrix use einsum, not BLAS: OpenBLAS threads woken by a matrix-vector
# product spin afterwards and, on a busy 2-core machine, slowed the fits down ten-fold.
def _matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("ij,j->i", m, v)


def _vecmat(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.einsum("i,ij->j", v, m)


@dataclass
class Grid:
    """Quadrature over each item's random effect: nodes ``u`` ``(m, G)`` and the parts of
    their log weights that do not depend on τ."""

    u: np.ndarray
    base: np.ndarray


class NoisyBT:
    """Bradley–Terry on features with an item random effect and symmetric label flips.

    The integral over each item's u uses adaptive Gauss–Hermite quadrature (Liu and
    Pierce 1994, "A note on Gauss–Hermite quadrature"; with the posterior mean and
    standard deviation of u as centre and scale, as in Rabe-Hesketh, Skrondal and Pickles
    2005): a pair judged by 30 people has a sharp posterior in u that fixed nodes miss.
    Nodes are re-centred at the start of each of ``ADAPT_ROUNDS`` optimisation rounds
    and held fixed within one, so the objective an optimiser sees is smooth.

    Parameters
    ----------
    free_position
        Fit the position effect γ (else γ = 0).
    free_tau
        Fit the item random-effect scale τ (else τ = 0 and no quadrature is needed).
    ridge
        L2 penalty on w.

    Attributes
    ----------
    w_, gamma_, tau_, eps_
        Fitted feature weights ``(d,)``, position effect, random-effect scale, flip rate.
    theta_
        All of them as one vector ``(w, γ, τ, ε)``.
    nll_
        Penalised negative log-likelihood at the fit.
    """

    def __init__(self, free_position: bool = True, free_tau: bool = True, ridge: float = RIDGE):
        self.free_position = free_position
        self.free_tau = free_tau
        self.ridge = ridge

    # --- likelihood --------------------------------------------------------------------------
    def _grid(self, theta: np.ndarray, data: PairData) -> Grid:
        """Nodes centred on each item's posterior of u at ``theta`` (a few fixed-point
        updates of its mean and standard deviation, starting from the prior)."""
        m = len(data.starts)
        if not self.free_tau:
            return Grid(np.zeros((m, 1)), np.zeros((m, 1)))
        tau = max(float(theta[data.X.shape[1] + 1]), TAU_MIN)
        mu, sd = np.zeros(m), np.full(m, tau)
        for _ in range(ADAPT_STEPS):
            grid = Grid(
                mu[:, None] + sd[:, None] * U[None, :],
                LOG_GH[None, :] + np.log(np.sqrt(2.0) * sd)[:, None] - 0.5 * np.log(2 * np.pi),
            )
            _, _, item_ll = self._terms(theta, data, grid)
            post = np.exp(item_ll - logsumexp(item_ll, axis=1, keepdims=True))  # (m, G)
            mu = (post * grid.u).sum(axis=1)
            sd = np.sqrt(np.maximum((post * grid.u**2).sum(axis=1) - mu**2, SD_FLOOR**2))
        return Grid(
            mu[:, None] + sd[:, None] * U[None, :],
            LOG_GH[None, :] + np.log(np.sqrt(2.0) * sd)[:, None] - 0.5 * np.log(2 * np.pi),
        )

    def _terms(
        self, theta: np.ndarray, data: PairData, grid: Grid
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """σ and p per row and node ``(n, G)``, and the log joint per item and node ``(m, G)``."""
        d = data.X.shape[1]
        w, gamma, tau, eps = theta[:d], theta[d], theta[d + 1], theta[d + 2]
        eta = _matvec(data.X, w)[data.item] + gamma * data.pos  # (n,)
        sig = expit(data.sign[:, None] * (eta[:, None] + grid.u[data.item]))  # (n, G)
        p = np.maximum(eps + (1.0 - 2.0 * eps) * sig, 1e-300)  # P(recorded label | u)
        item_ll = np.add.reduceat(np.log(p) * data.count[:, None], data.starts, axis=0)
        if self.free_tau:
            tau = max(float(tau), TAU_MIN)
            item_ll += grid.base - np.log(tau) - grid.u**2 / (2.0 * tau**2)  # log N(u; 0, τ²)
        return sig, p, item_ll

    def _nll(self, theta: np.ndarray, data: PairData, grid: Grid) -> tuple[float, np.ndarray]:
        d = data.X.shape[1]
        w, tau, eps = theta[:d], max(float(theta[d + 1]), TAU_MIN), theta[d + 2]
        sig, p, item_ll = self._terms(theta, data, grid)
        ll = logsumexp(item_ll, axis=1)  # (m,)
        post = np.exp(item_ll - ll[:, None])  # (m, G) posterior weight of each node
        r = post[data.item] * (data.count[:, None] / p)  # (n, G) d log L / d p
        dz = r * ((1.0 - 2.0 * eps) * sig * (1.0 - sig))
        a = dz.sum(axis=1) * data.sign  # d log L / d η per row
        grad = np.empty_like(theta)
        grad[:d] = -_vecmat(np.add.reduceat(a, data.starts), data.X) + self.ridge * w
        grad[d] = -(a * data.pos).sum()
        grad[d + 1] = -(post * (grid.u**2 / tau**3 - 1.0 / tau)).sum() if self.free_tau else 0.0
        grad[d + 2] = -(r * (1.0 - 2.0 * sig)).sum()
        return float(-ll.sum() + 0.5 * self.ridge * w @ w), grad

    # --- fitting -----------------------------------------------------------------------------
    def _bounds(self, d: int, fix_eps: float | None) -> list[tuple[float, float]]:
        inf = np.inf
        return [
            *[(-inf, inf)] * d,
            (-inf, inf) if self.free_position else (0.0, 0.0),
            (TAU_MIN, TAU_MAX) if self.free_tau else (0.0, 0.0),
            (fix_eps, fix_eps) if fix_eps is not None else (0.0, EPS_MAX),
        ]

    def _minimize(
        self, data: PairData, start: np.ndarray, fix_eps: float | None = None
    ) -> tuple[np.ndarray, float]:
        bounds = self._bounds(data.X.shape[1], fix_eps)
        theta = np.clip(start, [b[0] for b in bounds], [b[1] for b in bounds])
        nll = np.inf
        for _ in range(ADAPT_ROUNDS if self.free_tau else 1):
            grid = self._grid(theta, data)
            res = minimize(
                self._nll,
                theta,
                args=(data, grid),
                jac=True,
                method=METHOD,
                bounds=[
                    (None if np.isinf(a) else a, None if np.isinf(b) else b) for a, b in bounds
                ],
                options=OPTIONS,
            )
            theta, nll = np.asarray(res.x), float(res.fun)
        return theta, nll

    def fit(self, data: PairData, start: np.ndarray | None = None) -> NoisyBT:
        """Maximum likelihood; from ``start`` (a θ vector) or from two default starts."""
        d = data.X.shape[1]
        starts = (
            [start]
            if start is not None
            else [np.r_[np.zeros(d), 0.0, 1.0, e] for e in (0.05, 0.25)]
        )
        best = min((self._minimize(data, s) for s in starts), key=lambda r: r[1])
        self.theta_, self.nll_ = best
        self.w_ = self.theta_[:d]
        self.gamma_, self.tau_, self.eps_ = (float(v) for v in self.theta_[d:])
        return self

    def profile_interval(self, data: PairData) -> tuple[float, float, list[tuple[float, float]]]:
        """95% profile-likelihood interval of ε, and the ``(ε, deviance)`` points visited.

        From ε̂ outwards each side is scanned at steps 0.02, 0.05, 0.1, 0.2, 0.35, 0.5
        (w, γ, τ refitted, warm-started); the crossing of the deviance cut is bisected
        ``BISECTIONS`` times and then interpolated linearly.
        """
        eps0, points = self.eps_, [(self.eps_, 0.0)]
        ends = []
        for side in (-1.0, 1.0):
            prev, prev_dev, theta = eps0, 0.0, self.theta_
            end = 0.0 if side < 0 else EPS_MAX
            for step in (0.02, 0.05, 0.1, 0.2, 0.35, 0.5):
                e = float(np.clip(eps0 + side * step, 0.0, EPS_MAX))
                if e == prev:
                    break
                theta, nll = self._minimize(data, theta, fix_eps=e)
                dev = max(2.0 * (nll - self.nll_), 0.0)
                points.append((e, dev))
                if dev <= CHI2_95:
                    prev, prev_dev = e, dev
                    continue
                inside, outside, out_dev = prev, e, dev
                for _ in range(BISECTIONS):
                    mid = 0.5 * (inside + outside)
                    theta, nll = self._minimize(data, theta, fix_eps=mid)
                    mid_dev = max(2.0 * (nll - self.nll_), 0.0)
                    points.append((mid, mid_dev))
                    if mid_dev <= CHI2_95:
                        inside, prev_dev = mid, mid_dev
                    else:
                        outside, out_dev = mid, mid_dev
                frac = (CHI2_95 - prev_dev) / max(out_dev - prev_dev, 1e-12)
                end = inside + (outside - inside) * float(np.clip(frac, 0.0, 1.0))
                break
            ends.append(end)
        return min(ends[0], eps0), max(ends[1], eps0), sorted(points)

    # --- scoring -----------------------------------------------------------------------------
    def score(self, data: PairData) -> tuple[np.ndarray, np.ndarray]:
        """Posterior flip probability and the features-only probability that the recorded
        label is right (``P(clean agrees)`` averaged over the prior of u), per row of
        ``data`` (the same for every judgment of a row)."""
        eps, n = self.eps_, len(data.item)
        post, p_model = np.empty(n), np.empty(n)
        bounds = np.r_[data.starts, n]
        lo = 0
        while lo < len(data.starts):
            # Whole items per block, about SCORE_BLOCK rows each.
            hi = int(np.searchsorted(bounds, bounds[lo] + SCORE_BLOCK, side="right")) - 1
            hi = max(hi, lo + 1)
            r0, r1 = int(bounds[lo]), int(bounds[hi])
            block = PairData(
                data.X[lo:hi],
                data.item[r0:r1] - lo,
                data.sign[r0:r1],
                data.pos[r0:r1],
                data.count[r0:r1],
            )
            sig, p, item_ll = self._terms(self.theta_, block, self._grid(self.theta_, block))
            joint = np.exp(item_ll - item_ll.max(axis=1, keepdims=True))[block.item]  # (b, G)
            post[r0:r1] = (joint * (eps * (1.0 - sig) / p)).sum(axis=1) / joint.sum(axis=1)
            eta = _matvec(block.X, self.w_)[block.item] + self.gamma_ * block.pos
            prior_u = self.tau_ * U if self.free_tau else np.zeros(1)
            omega = np.exp(LOG_OMEGA) if self.free_tau else np.ones(1)
            p_model[r0:r1] = _matvec(expit(block.sign[:, None] * (eta[:, None] + prior_u)), omega)
            lo = hi
        return post, p_model
