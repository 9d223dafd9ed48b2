"""Style control: Bradley–Terry ratings with per-battle style covariates.

LMSYS, "Does Style Matter? Disentangling style and substance in Chatbot Arena" (Li,
Chiang, Frick, Dunlap, Zhu, Gonzalez, Stoica; blog, 29 Aug 2024), after the logistic
"controlled Bradley–Terry" of ``fschat``'s ``elo_analysis`` (``construct_style_matrices``).
For a battle of model ``a`` against ``b`` with style counts ``x_a``, ``x_b`` (one per
covariate):

    P(a beats b) = σ(θ_a − θ_b + Σ_k γ_k z_k),
    z_k = standardise((x_a,k − x_b,k) / (x_a,k + x_b,k))   over the battles,

so ``γ_k`` is the log-odds change per standard deviation of the normalised difference and
``θ`` are the style-controlled strengths. Ratings are ``init + scale · θ / ln(base)`` with
``θ`` centred; the same fit with no covariates gives the uncontrolled ratings.

Covariates (counted on each response's text, vectorised with Arrow's RE2 kernels):

* ``length``: whitespace-separated words (``length_unit="words"``) or characters;
* ``markdown`` = ``header`` (``^#{1,6}\\s``), ``list`` (ordered ``^\\s*\\d+\\.\\s`` and
  unordered ``^\\s*[-*+]\\s`` items) and ``bold`` (``**x**``, ``__x__``), the blog's three
  counters, counted **outside** fenced code blocks;
* ``citations``: ``[1]``-style references and ``http(s)://`` URLs, outside code blocks;
* any other name: a numeric column, ``responses.<name>`` of a dataset or
  ``<name>_a`` / ``<name>_b`` of a battles table.

Fit: maximum likelihood by Newton's method with a backtracking line search on unique
``(a, b, z, outcome)`` rows with counts (one model is the reference during the fit, then
all are centred). A tie counts as half a win for each side (``ties="half"``, the Chatbot
Arena convention: the target is 1/2) or is dropped. Intervals are analytic, from the
Hessian at the estimate: ``se="sandwich"`` (robust, ``H⁻¹ M H⁻¹`` with ``M`` the sum of the
per-battle score outer products; the half-win targets of ties are not a true likelihood)
or ``se="fisher"`` (``H⁻¹``), with normal quantiles.

Deviations from ``fschat``: length is counted in whitespace words or characters, not
tiktoken tokens; the normalised difference is ``(a − b)/(a + b)`` with 0 when both are 0
(``fschat`` adds 1 to the denominator); a fenced block is removed with its fences, and an
unclosed fence runs to the end of the text (``fschat`` strips the text between the first
pair of fences only); ``fschat`` fits scikit-learn's ``LogisticRegression`` with its
default L2 penalty (``C=1``) on duplicated rows, prefkit fits without a penalty; a covariate
that is constant over the battles cannot be estimated and is reported in
``constant_features_`` with a NaN coefficient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit
from scipy.stats import norm

from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.ratings.elo import battle_arrays

#: Feature name -> the covariates it adds (anything else is a user column).
FEATURES: dict[str, tuple[str, ...]] = {
    "length": ("length",),
    "markdown": ("header", "list", "bold"),
    "header": ("header",),
    "list": ("list",),
    "bold": ("bold",),
    "citations": ("citation",),
}
TIES = ("half", "drop")
SE = ("sandwich", "fisher")
LENGTH_UNITS = ("words", "chars")
MISSING = ("error", "drop")

_CODE_FENCE = r"(?s)```.*?(?:```|\z)"  # a fenced block, or an unclosed fence to the end
_PATTERNS: dict[str, tuple[str, ...]] = {
    "header": (r"(?m)^#{1,6}\s",),
    "list": (r"(?m)^\s*\d+\.\s", r"(?m)^\s*[-*+]\s"),
    "bold": (r"\*\*[^*\n]+\*\*", r"__[^_\n]+__"),
    "citation": (r"\[\d+\]", r"https?://\S+"),
}


# --- counters ---------------------------------------------------------------------------------
def _strings(texts: Any) -> pa.Array:
    arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(list(texts))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.string())


def strip_code_blocks(texts: Any) -> pa.Array:
    """The texts with every fenced code block (```…```, fences included) removed."""
    return pc.replace_substring_regex(_strings(texts), _CODE_FENCE, "")


def count_style(texts: Any, covariate: str, *, length_unit: str = "words") -> np.ndarray:
    """Per-text count of one covariate (``length``, ``header``, ``list``, ``bold`` or
    ``citation``; see the module docstring). Null texts count as NaN.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float counts.
    """
    return style_counts(texts, [covariate], length_unit=length_unit)[covariate]


def style_counts(
    texts: Any, covariates: Sequence[str], *, length_unit: str = "words"
) -> dict[str, np.ndarray]:
    """Per-text counts of several covariates, stripping code blocks once.

    Returns
    -------
    dict[str, numpy.ndarray]
        Covariate name to ``(n,)`` float counts (NaN for null texts).
    """
    arr = _strings(texts)
    prose: pa.Array | None = None
    out: dict[str, np.ndarray] = {}
    for covariate in covariates:
        if covariate == "length":
            if length_unit not in LENGTH_UNITS:
                raise PrefkitError(f"length_unit={length_unit!r}: expected words or chars")
            counts = (
                pc.count_substring_regex(arr, r"\S+")
                if length_unit == "words"
                else pc.utf8_length(arr)
            )
            out[covariate] = _floats(counts)
            continue
        if covariate not in _PATTERNS:
            raise PrefkitError(
                f"unknown style covariate {covariate!r}: expected length, {', '.join(_PATTERNS)}"
            )
        if prose is None:
            prose = strip_code_blocks(arr)
        total = np.zeros(len(arr))
        for pattern in _PATTERNS[covariate]:
            total += _floats(pc.count_substring_regex(prose, pattern))
        out[covariate] = total
    return out


def _floats(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)


def normalised_difference(x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
    """``(x_a − x_b) / (x_a + x_b)``, 0 where both are 0."""
    total = x_a + x_b
    safe = np.where(total == 0, 1.0, total)
    return np.where(total == 0, 0.0, (x_a - x_b) / safe)


def _covariates(features: Sequence[str]) -> list[str]:
    out: list[str] = []
    for f in features:
        for c in FEATURES.get(f, (f,)):
            if c not in out:
                out.append(c)
    return out


# --- inputs -----------------------------------------------------------------------------------
def _response_text(ds: Dataset) -> pa.Array:
    """Each response's text; null where it has no messages (no text to count)."""
    from prefkit.views import messages_text

    msgs = ds.responses.column("messages").combine_chunks()
    text = messages_text(msgs)
    empty = pc.fill_null(pc.equal(pc.list_value_length(msgs), 0), True)
    return pc.if_else(empty, pa.scalar(None, pa.string()), text)


def _dataset_counts(
    ds: Dataset, covs: list[str], unit: str
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    battles = ds.to_battles(ties="keep")
    model_a, model_b, score = battle_arrays(battles)
    responses = ds.responses
    ia = pc.index_in(battles.column("a"), responses.column("response_id")).to_numpy()
    ib = pc.index_in(battles.column("b"), responses.column("response_id")).to_numpy()
    text = _response_text(ds)
    builtin = [c for c in covs if c in _PATTERNS or c == "length"]
    counts = style_counts(text, builtin, length_unit=unit)
    per_response = np.empty((responses.num_rows, len(covs)))
    for j, c in enumerate(covs):
        if c in counts:
            per_response[:, j] = counts[c]
        elif c in responses.column_names:
            per_response[:, j] = _numeric(responses.column(c), f"responses.{c}")
        else:
            raise PrefkitError(
                f"style feature {c!r} is neither one of {', '.join(FEATURES)} nor a responses "
                "column"
            )
    return model_a, model_b, score, per_response[ia], per_response[ib]


def _numeric(col: Any, what: str) -> np.ndarray:
    arr = col if isinstance(col, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(col))
    try:
        arr = arr.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise PrefkitError(f"style feature {what} is not numeric: {err}") from None
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)


def _table_counts(
    data: Any, covs: list[str], unit: str
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    model_a, model_b, score = battle_arrays(data)
    cols = set(data.column_names if isinstance(data, pa.Table) else data.keys())
    xa, xb = np.empty((len(score), len(covs))), np.empty((len(score), len(covs)))
    from_text = [
        c for c in covs if (c in _PATTERNS or c == "length") and not {f"{c}_a", f"{c}_b"} <= cols
    ]
    if from_text and {"text_a", "text_b"} <= cols:
        ca = style_counts(data["text_a"], from_text, length_unit=unit)
        cb = style_counts(data["text_b"], from_text, length_unit=unit)
    else:
        ca = cb = {}
    for j, c in enumerate(covs):
        if f"{c}_a" in cols and f"{c}_b" in cols:
            xa[:, j] = _numeric(data[f"{c}_a"], f"{c}_a")
            xb[:, j] = _numeric(data[f"{c}_b"], f"{c}_b")
        elif c in ca:
            xa[:, j], xb[:, j] = ca[c], cb[c]
        else:
            raise PrefkitError(
                f"style feature {c!r}: the battles need columns {c}_a and {c}_b"
                + (" or text_a and text_b" if c in _PATTERNS or c == "length" else "")
            )
    return model_a, model_b, score, xa, xb


# --- core -------------------------------------------------------------------------------------
def _design(ia: np.ndarray, ib: np.ndarray, z: np.ndarray, p: int) -> csr_matrix:
    """``(rows, p − 1 + k)``: +1 for model a, −1 for model b (model 0 is the reference),
    then the standardised covariates."""
    n, k = z.shape
    rows, cols, vals = [], [], []
    for idx, sign in ((ia, 1.0), (ib, -1.0)):
        keep = idx > 0
        rows.append(np.flatnonzero(keep))
        cols.append(idx[keep] - 1)
        vals.append(np.full(int(keep.sum()), sign))
    rows.append(np.repeat(np.arange(n), k))
    cols.append(np.tile(np.arange(p - 1, p - 1 + k), n))
    vals.append(z.ravel())
    return coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, p - 1 + k),
    ).tocsr()


def _newton(
    x: csr_matrix, y: np.ndarray, w: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int, bool]:
    """Weighted logistic maximum likelihood with soft targets ``y``.

    Returns the estimate, the Hessian ``H`` and the score outer-product sum ``M`` at it,
    the log-likelihood, the iterations and whether it converged.
    """

    def nll(beta: np.ndarray) -> float:
        eta = x @ beta
        return -float(w @ (y * log_expit(eta) + (1 - y) * log_expit(-eta)))

    beta = np.zeros(x.shape[1])
    f = nll(beta)
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
        prob = expit(x @ beta)
        grad = x.T @ (w * (prob - y))
        hess = (x.T @ x.multiply((w * prob * (1 - prob))[:, None])).toarray()
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:  # Armijo backtracking
            cand = beta - t * step
            f_new = nll(cand)
            if f_new <= f - 1e-4 * t * float(grad @ step) or t < 1e-10:
                break
            t /= 2
        beta, f = cand, f_new
        if float(np.max(np.abs(t * step), initial=0.0)) < tol:
            converged = True
            break
    prob = expit(x @ beta)
    hess = (x.T @ x.multiply((w * prob * (1 - prob))[:, None])).toarray()
    meat = (x.T @ x.multiply((w * (y - prob) ** 2)[:, None])).toarray()
    return beta, hess, meat, -f, it, converged


class StyleControl:
    """Style-controlled Bradley–Terry ratings (LMSYS "Does style matter?", 2024).

    Parameters
    ----------
    features
        Style features: ``length``, ``markdown`` (= ``header``, ``list``, ``bold``),
        ``citations``, or any numeric column (see the module docstring).
    ties
        ``"half"`` (a tie is half a win for each side) or ``"drop"``.
    length_unit
        ``"words"`` (whitespace-separated) or ``"chars"``.
    se
        ``"sandwich"`` or ``"fisher"`` standard errors (analytic, from the Hessian).
    level
        Coverage of the normal intervals.
    missing
        Battles whose covariates cannot be computed (a response without text):
        ``"error"`` or ``"drop"`` (counted in ``n_dropped_``).
    max_iter, tol
        Newton iterations and the step size at which they stop.
    scale, base, init
        Elo-scale ratings ``init + scale · θ / ln(base)``, ``θ`` centred.

    Attributes
    ----------
    items_ : list[str]
        Model names, sorted.
    ratings_, ratings_uncontrolled_ : numpy.ndarray
        ``(n_models,)`` ratings with and without the style covariates.
    ratings_ci_, ratings_uncontrolled_ci_ : numpy.ndarray
        ``(n_models, 2)`` intervals (of the centred ratings).
    feature_names_ : list[str]
        The covariates, aligned with the ``coef_*`` arrays.
    coef_, coef_se_, coef_ci_, coef_pvalue_ : numpy.ndarray
        Log-odds per standard deviation of each normalised difference, its standard
        error, interval ``(k, 2)`` and two-sided p-value (NaN for a constant covariate).
    constant_features_ : list[str]
        Covariates equal in every battle, left out of the fit.
    feature_mean_, feature_std_ : numpy.ndarray
        The standardisation of the normalised differences.
    loglik_, loglik_uncontrolled_ : float
        Log-likelihoods (ties as half wins).
    n_battles_, n_dropped_, n_iter_ : int
    converged_ : bool
    """

    def __init__(
        self,
        features: Sequence[str] = ("length", "markdown"),
        *,
        ties: str = "half",
        length_unit: str = "words",
        se: str = "sandwich",
        level: float = 0.95,
        missing: str = "error",
        max_iter: int = 100,
        tol: float = 1e-10,
        scale: float = 400.0,
        base: float = 10.0,
        init: float = 1000.0,
    ) -> None:
        self.features = features
        self.ties = ties
        self.length_unit = length_unit
        self.se = se
        self.level = level
        self.missing = missing
        self.max_iter = max_iter
        self.tol = tol
        self.scale = scale
        self.base = base
        self.init = init

    def _validate(self) -> None:
        for name, value, allowed in (
            ("ties", self.ties, TIES),
            ("se", self.se, SE),
            ("length_unit", self.length_unit, LENGTH_UNITS),
            ("missing", self.missing, MISSING),
        ):
            if value not in allowed:
                raise PrefkitError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
        if isinstance(self.features, str) or not len(self.features):
            raise PrefkitError("features: give a non-empty list, e.g. ('length', 'markdown')")
        if not 0 < self.level < 1:
            raise PrefkitError(f"level={self.level!r}: expected a number in (0, 1)")

    def fit(self, battles: Any) -> StyleControl:
        """Fit the controlled and uncontrolled ratings.

        Parameters
        ----------
        battles
            A :class:`~prefkit.dataset.Dataset` whose responses have ``source`` and texts,
            or a battles table / mapping with ``model_a``, ``model_b``, ``winner`` and
            either ``text_a`` / ``text_b`` or ``<covariate>_a`` / ``<covariate>_b``
            counts.

        Returns
        -------
        StyleControl
            ``self``, fitted.
        """
        self._validate()
        covs = _covariates(self.features)
        reader = _dataset_counts if isinstance(battles, Dataset) else _table_counts
        model_a, model_b, score, xa, xb = reader(battles, covs, self.length_unit)
        bad = np.isnan(xa).any(axis=1) | np.isnan(xb).any(axis=1)
        if bad.any() and self.missing == "error":
            row = int(np.flatnonzero(bad)[0])
            raise PrefkitError(
                f"{int(bad.sum()):,} battles have a response without text or value for "
                f"{', '.join(covs)} (first: row {row}); pass missing='drop' to leave them out"
            )
        keep = ~bad
        if self.ties == "drop":
            keep &= score != 0.5
        self.n_dropped_ = int(bad.sum())
        mask = pa.array(keep)
        model_a, model_b = model_a.filter(mask), model_b.filter(mask)
        score, xa, xb = score[keep], xa[keep], xb[keep]
        if not len(score):
            raise PrefkitError("no battles left to fit")
        names = pc.unique(pa.concat_arrays([model_a, model_b]))
        names = names.take(pc.array_sort_indices(names))
        ia = pc.index_in(model_a, names).to_numpy().astype(np.int64)
        ib = pc.index_in(model_b, names).to_numpy().astype(np.int64)
        p = len(names)
        _check_connected(ia, ib, p)
        diff = normalised_difference(xa, xb)  # (n, k)
        mean, std = diff.mean(axis=0), diff.std(axis=0)
        varying = std > 0
        z = (diff[:, varying] - mean[varying]) / std[varying]
        self.items_ = names.to_pylist()
        self.feature_names_ = covs
        self.constant_features_ = [c for c, v in zip(covs, varying, strict=True) if not v]
        self.feature_mean_, self.feature_std_ = mean, std
        self.n_battles_ = len(score)

        full = self._fit(ia, ib, z, score, p)
        base = self._fit(ia, ib, np.empty((len(score), 0)), score, p)
        k = len(covs)
        self.coef_ = np.full(k, np.nan)
        self.coef_se_ = np.full(k, np.nan)
        self.coef_[varying] = full["beta"][p - 1 :]
        self.coef_se_[varying] = np.sqrt(np.diag(full["cov"])[p - 1 :])
        q = norm.ppf(0.5 + self.level / 2)
        self.coef_ci_ = np.stack(
            [self.coef_ - q * self.coef_se_, self.coef_ + q * self.coef_se_], 1
        )
        self.coef_pvalue_ = 2 * norm.sf(np.abs(self.coef_ / self.coef_se_))
        self.ratings_, self.ratings_ci_ = self._ratings(full, p, q)
        self.ratings_uncontrolled_, self.ratings_uncontrolled_ci_ = self._ratings(base, p, q)
        self.loglik_, self.loglik_uncontrolled_ = full["loglik"], base["loglik"]
        self.n_iter_ = int(full["n_iter"])
        self.converged_ = bool(full["converged"] and base["converged"])
        return self

    def _fit(
        self, ia: np.ndarray, ib: np.ndarray, z: np.ndarray, y: np.ndarray, p: int
    ) -> dict[str, Any]:
        # Unique (a, b, z, y) rows with counts: battles often repeat exactly (no covariates,
        # or integer counts), and the sufficient statistics only need the counts.
        rows = np.column_stack([ia, ib, y, z])
        uniq, counts = np.unique(rows, axis=0, return_counts=True)
        x = _design(uniq[:, 0].astype(np.int64), uniq[:, 1].astype(np.int64), uniq[:, 3:], p)
        beta, hess, meat, loglik, it, ok = _newton(
            x, uniq[:, 2], counts.astype(float), self.max_iter, self.tol
        )
        try:
            inv = np.linalg.inv(hess)
        except np.linalg.LinAlgError:
            inv = np.full_like(hess, np.nan)
        cov = inv if self.se == "fisher" else inv @ meat @ inv
        return {"beta": beta, "cov": cov, "loglik": loglik, "n_iter": it, "converged": ok}

    def _ratings(self, fit: dict[str, Any], p: int, q: float) -> tuple[np.ndarray, np.ndarray]:
        # θ = (0, β_1..β_{p−1}) centred: C = I − 1/p applied to the embedded covariance.
        theta = np.concatenate([[0.0], fit["beta"][: p - 1]])
        emb = np.zeros((p, p))
        emb[1:, 1:] = fit["cov"][: p - 1, : p - 1]
        centre = np.eye(p) - 1.0 / p
        se = np.sqrt(np.clip(np.diag(centre @ emb @ centre.T), 0, None))
        unit = self.scale / math.log(self.base)
        ratings = self.init + unit * (theta - theta.mean())
        return ratings, np.stack([ratings - q * unit * se, ratings + q * unit * se], 1)

    def as_dict(self) -> dict[str, float]:
        """``{model: controlled rating}``, best first."""
        order = np.argsort(-self.ratings_, kind="stable")
        return {self.items_[i]: float(self.ratings_[i]) for i in order}


def _check_connected(ia: np.ndarray, ib: np.ndarray, p: int) -> None:
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(p, p))
    n_comp, _ = connected_components(graph, directed=False)
    if n_comp > 1:
        raise PrefkitError(
            f"the battles split the {p} models into {n_comp} groups that never meet, so "
            "their ratings cannot be compared: fit each group on its own"
        )


__all__ = [
    "FEATURES",
    "StyleControl",
    "count_style",
    "normalised_difference",
    "strip_code_blocks",
    "style_counts",
]
