"""Annotator groups: do some annotators disagree *systematically* with others?

What it detects
    Groups of annotators whose members agree with each other more than with the rest,
    i.e. who hold different preferences (Kirk et al. 2024, "The PRISM Alignment
    Project"; Chen et al. 2024, "PAL: Pluralistic Alignment Framework for Learning from
    Heterogeneous Preferences"). A single reward model trained on such data learns the
    average of the groups, which may be what no group wants; per-group or pluralistic
    models (PAL-style mixtures) are the alternative.

Method
    1. Votes: the oriented values of the multi-judged items (see the agreement check),
       coded ``v = +1`` (lo preferred), ``0`` (tie), ``-1`` (hi preferred); annotators with
       at least ``min_judgments`` such votes (the ``max_annotators`` most active).
    2. Similarity: for annotators i, j, ``S_ij = sum_u v_iu v_ju`` and ``C_ij`` the
       co-judged judgment pairs, both as sparse products ``V V^T`` (no per-judgment loop).
       ``S/C`` is the mean product of their votes: +1 always agree, -1 always opposite.
       It is shrunk towards the overall mean ``R0`` with ``shrinkage`` pseudo-pairs
       (empirical Bayes), ``R_ij = (S_ij + tau R0) / (C_ij + tau)``, so pairs that share
       few or no items sit at the average instead of driving the embedding.
    3. Dimensions by parallel analysis (Horn 1965; permutation version Buja and
       Eyuboglu 1992): the votes are permuted among the judges *within each item*
       (``n_permutations`` times; this keeps every item's votes and who judged what,
       and destroys any annotator structure). The embedding keeps 1 dimension (the
       consensus) plus each following eigenvalue of ``R``, in order, that beats the
       same-rank eigenvalue of every permuted matrix. Careless annotators only scale
       the consensus (a rank-1 effect) and add no dimension.
    4. Spectral clustering (Ng, Jordan and Weiss 2001, "On Spectral Clustering: Analysis
       and an Algorithm"): those eigenvectors scaled by ``sqrt(lambda)``, rows
       normalised to unit length, k-means for k = 2..``max_groups``
       (``scipy.cluster.vq.kmeans2``, k-means++ seeding, best of 5). With one dimension
       the only split is by the sign of the consensus loading (annotators who vote
       against everyone else).
    5. Separation ``T_k``: with ``R[g, h]`` the mean vote product over co-judged pairs
       of a member of g and a member of h, ``T_k = min over g != h of
       min(R[g, g], R[h, h]) - R[g, h]``. Every pair of groups must agree less across
       than either does inside: a cluster of careless annotators (who agree with
       nobody, themselves included) is no group, and neither are two halves of one
       group.
    6. Test and number of groups: the permuted data sets are clustered the same way (same
       dimensions). ``T_k`` is significant when it is positive and its standardised
       value beats the maximum over k of every permutation's standardised values
       (Westfall–Young max-statistic; family-wise level 1 / (B + 1)). The answer is the
       smallest significant k whose gap ``T_k - mean(permuted T_k)`` is within one
       permutation sd of the largest gap (the one-standard-error rule of the gap
       statistic, Tibshirani, Walther and Hastie 2001), or "no groups" (k = 1).

    Reported: group sizes, agreement (three categories, a/b/tie) within and between
    groups, silhouette (Rousseeuw 1987) of the spectral embedding, the eigenvalues and
    separations against their permutation maxima,
    and per group the direction of disagreement on cheap features: how often the
    group picks the longer response and the first-shown (a) response, against the other
    annotators (two-proportion z-test, reported when |z| >= 3 and the gap >= 5 points).

Deviations
    PAL learns a mixture of preference models on response embeddings; this check only
    clusters annotators by their votes (no features needed), so it also works when the
    disagreement is about latent qualities no cheap feature shows.

Parameters (``ctx.param("groups", ...)``)
    ``min_judgments`` (20), ``max_annotators`` (2000), ``max_groups`` (6),
    ``n_permutations`` (19), ``shrinkage`` (5.0), ``strong_gap`` (0.10),
    ``rankings`` (True).

Severity
    ``ok``: no groups. ``info``: groups whose within-minus-between agreement gap (three
    categories, pooled over pairs) is below ``strong_gap`` (0.10). ``warning``: groups
    with a gap of at least 0.10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.cluster.vq import kmeans2
from scipy.linalg import eigh
from scipy.sparse.linalg import eigsh

from prefkit.diagnostics.checks.agreement import Votes, collect_votes
from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.registry import Check, register

NAME = "groups"
TITLE = "Annotator groups"
#: Annotators up to this many: dense eigendecomposition; above it, Lanczos (eigsh).
DENSE_EIGEN = 150
KMEANS_RESTARTS = 5
#: Direction of disagreement is reported when |z| and the gap reach these.
DIRECTION_Z, DIRECTION_GAP = 3.0, 0.05
MIN_GROUP = 2
#: Memory for the permuted vote products kept between the two passes of the search.
KEEP_BYTES = 256 * 2**20


# --- design ---------------------------------------------------------------------------------
@dataclass
class Design:
    """The votes of the selected annotators on items that >= 2 of them judged.

    ``rows`` index the selected annotators (``annotator`` maps them back to
    ``votes.annotator_ids``), ``cols`` the items, ``cat`` the value (0, 1, 2).
    """

    annotator: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    cat: np.ndarray
    co: np.ndarray
    order: np.ndarray
    n_items: int
    indptr: np.ndarray

    @property
    def n(self) -> int:
        return len(self.annotator)

    def matrix(self, values: np.ndarray) -> sp.csr_matrix:
        """``(A, U)`` sparse matrix of per-vote ``values`` (rows are sorted by annotator;
        an annotator's repeat votes on an item stay separate entries, which products sum)."""
        return sp.csr_matrix((values, self.cols, self.indptr), shape=(self.n, self.n_items))

    def permuted(self, rng: np.random.Generator) -> np.ndarray:
        """``cat`` with the values shuffled among the judges of each item."""
        key = self.cols[self.order] + rng.random(len(self.order))  # items stay blocks
        out = np.empty_like(self.cat)
        out[self.order] = self.cat[self.order[np.argsort(key)]]
        return out


def select(votes: Votes, min_judgments: int, max_annotators: int) -> Design | None:
    """The design for annotators with >= ``min_judgments`` votes; None if < 4 of them."""
    known = votes.annotator >= 0
    n_per = np.bincount(votes.annotator[known], minlength=len(votes.annotator_ids))
    ok = np.flatnonzero(n_per >= min_judgments)
    if len(ok) > max_annotators:
        ok = ok[np.argsort(-n_per[ok], kind="stable")[:max_annotators]]
    ok = np.sort(ok)
    if len(ok) < 2 * MIN_GROUP:
        return None
    index = np.full(len(votes.annotator_ids), -1)
    index[ok] = np.arange(len(ok))
    rows_all = np.where(known, index[np.maximum(votes.annotator, 0)], -1)
    keep = rows_all >= 0
    # Only items that >= 2 selected annotators judged carry co-judgments.
    per_item = np.bincount(votes.item[keep], minlength=votes.n_multi)
    keep &= per_item[votes.item] >= 2
    if not keep.any():
        return None
    items, cols = np.unique(votes.item[keep], return_inverse=True)
    rows, cat = rows_all[keep], votes.cat[keep]
    # Row-major order once, so every (permuted) vote matrix is built without sorting.
    rc = np.lexsort((cols, rows))
    rows, cols, cat = rows[rc], cols[rc], cat[rc]
    indptr = np.zeros(len(ok) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(ok)), out=indptr[1:])
    design = Design(
        annotator=ok,
        rows=rows,
        cols=cols,
        cat=cat,
        co=np.zeros((len(ok), len(ok))),
        order=np.argsort(cols, kind="stable"),
        n_items=len(items),
        indptr=indptr,
    )
    m = design.matrix(np.ones(len(rows)))
    design.co = (m @ m.T).toarray()
    np.fill_diagonal(design.co, 0.0)
    return design


# --- one clustering run -----------------------------------------------------------------------
def products(design: Design, cat: np.ndarray) -> np.ndarray:
    """``(A, A)`` sums of vote products ``S = V V^T`` (zero diagonal)."""
    v = design.matrix((cat - 1).astype(float))
    s = (v @ v.T).toarray()
    np.fill_diagonal(s, 0.0)
    return s


def similarity(s: np.ndarray, co: np.ndarray, tau: float) -> np.ndarray:
    """Shrunk mean vote product ``(S + tau R0) / (C + tau)``, diagonal 1."""
    r0 = s.sum() / max(co.sum(), 1.0)
    r = (s + tau * r0) / (co + tau)
    np.fill_diagonal(r, 1.0)
    return r


def top_eigen(r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) and their eigenvectors ``(A, k)``."""
    n = len(r)
    k = min(k, n - 1)
    if n <= DENSE_EIGEN:
        vals, vecs = eigh(r, subset_by_index=[n - k, n - 1])
    else:
        # A fixed start vector keeps ARPACK (and so the report) deterministic.
        v0 = np.random.default_rng(0).standard_normal(n)
        vals, vecs = eigsh(r, k=k, which="LA", v0=v0)
    order = np.argsort(-vals)
    return vals[order], vecs[:, order]


def embedding(vals: np.ndarray, vecs: np.ndarray, k: int) -> np.ndarray:
    """Rows of the top-k eigenvectors scaled by sqrt(lambda), normalised (NJW 2001)."""
    x = vecs[:, :k] * np.sqrt(np.maximum(vals[:k], 0.0))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Best of ``KMEANS_RESTARTS`` k-means++ runs (lowest within-cluster sum of squares)."""
    best, best_ss = np.zeros(len(x), np.int64), np.inf
    for _ in range(KMEANS_RESTARTS):
        centers, labels = kmeans2(x, k, minit="++", rng=rng)
        ss = float(((x - centers[labels]) ** 2).sum())
        if ss < best_ss:
            best, best_ss = labels.astype(np.int64), ss
    return best


def block_sums(m: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``(k, k)`` sums of ``m`` over the pairs of groups."""
    masks = [labels == g for g in range(k)]
    cols = np.stack([m[:, mask].sum(axis=1) for mask in masks], axis=1)  # (A, k)
    return np.stack([cols[mask].sum(axis=0) for mask in masks])


def separation(
    s: np.ndarray, co: np.ndarray, labels: np.ndarray, k: int
) -> tuple[float, np.ndarray]:
    """``(T, R)``: the separation of a grouping and the ``(k, k)`` mean vote products.

    ``R[g, h]`` is the mean vote product over co-judged pairs of a member of g and a
    member of h (``R[g, g]``: two members of g). ``T = min over g != h of
    min(R[g, g], R[h, h]) - R[g, h]``: every *pair* of groups must agree less across
    than either agrees inside, so splitting a real group in two halves (whose members
    still agree across the split) does not pay. Pairs of groups that share no item are
    left out; -inf when a group has < 2 members or no pair can be compared.
    """
    bs, bc = block_sums(s, labels, k), block_sums(co, labels, k)
    sizes = np.bincount(labels, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(bc > 0, bs / bc, np.nan)
    inside = np.diag(r)
    if (sizes < MIN_GROUP).any() or not np.isfinite(inside).all():
        return -np.inf, r
    gaps = np.minimum(inside[:, None], inside[None, :]) - r  # (k, k)
    gaps = gaps[~np.eye(k, dtype=bool) & np.isfinite(r)]
    return (float(gaps.min()) if len(gaps) else -np.inf), r


@dataclass
class Spectrum:
    """Vote products and the top of the similarity spectrum of one set of votes."""

    s: np.ndarray
    vals: np.ndarray
    vecs: np.ndarray


def spectrum(design: Design, cat: np.ndarray, n_eigen: int, tau: float) -> Spectrum:
    s = products(design, cat)
    vals, vecs = top_eigen(similarity(s, design.co, tau), n_eigen)
    return Spectrum(s, vals, vecs)


def clusterings(
    spec: Spectrum, co: np.ndarray, dims: int, max_groups: int, rng: np.random.Generator,
    with_silhouette: bool = True,
) -> dict[int, tuple[np.ndarray, float, float]]:  # fmt: skip
    """``k -> (labels, T_k, silhouette)`` in the ``dims``-dimensional embedding.

    With one dimension the only split is by the sign of the leading eigenvector
    (annotators whose votes run against the consensus); else k-means for k = 2..max.
    """
    if dims == 1:
        x = spec.vecs[:, :1] * np.sqrt(max(spec.vals[0], 0.0))
        x = x if x.sum() >= 0 else -x  # orient the consensus positive
        splits = {2: (x[:, 0] < 0).astype(np.int64)}
    else:
        x = embedding(spec.vals, spec.vecs, dims)
        splits = {k: kmeans(x, k, rng) for k in range(2, max_groups + 1)}
    return {
        k: (
            labels,
            separation(spec.s, co, labels, k)[0],
            silhouette(x, labels) if with_silhouette else float("nan"),
        )
        for k, labels in splits.items()
    }


def parallel_analysis(observed: np.ndarray, null: np.ndarray, max_dims: int) -> int:
    """Embedding dimensions: 1 (the consensus) plus each following eigenvalue, in order,
    that exceeds the same-rank eigenvalue of every permuted data set (Horn 1965;
    Buja and Eyuboglu 1992)."""
    dims = 1
    while dims < min(max_dims, len(observed)) and observed[dims] > null[:, dims].max():
        dims += 1
    return dims


def significant_separations(
    observed: dict[int, float], null: dict[int, np.ndarray]
) -> tuple[list[int], dict[int, tuple[float, float]]]:
    """The k whose separation is significant, and the permutation mean and sd of ``T_k``.

    Westfall–Young max-statistic over k: each ``T_k`` is standardised by the mean and sd
    of its permuted values, ``z_k``; k is significant when ``T_k > 0`` and ``z_k``
    exceeds ``max_k z_k`` of every permutation (family-wise level 1 / (B + 1)).
    Degenerate clusterings (a group of < 2 members) have ``T = -inf`` and are left out
    of the moments.
    """
    moments = {}
    for k, values in null.items():
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if len(finite) else 0.0
        sd = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
        moments[k] = (mean, max(sd, 1e-6))
    z_null = np.max(
        [(v - moments[k][0]) / moments[k][1] for k, v in null.items()], axis=0
    )  # (B,) max over k, -inf for all-degenerate permutations
    bound = float(z_null.max()) if len(z_null) else np.inf
    significant = [
        k
        for k, t in observed.items()
        if np.isfinite(t) and t > 0 and (t - moments[k][0]) / moments[k][1] > bound
    ]
    return significant, moments


def choose_k(
    observed: dict[int, float], significant: list[int], moments: dict[int, tuple[float, float]]
) -> int:
    """The number of groups by the one-standard-error rule of the gap statistic.

    ``gap_k = T_k - mean(permuted T_k)``; the answer is the smallest significant k whose
    gap is within one permutation sd of the largest gap (1 when none is significant):
    extra groups must earn their place.
    """
    if not significant:
        return 1
    gap = {j: observed[j] - moments[j][0] for j in significant}
    best = max(significant, key=lambda j: gap[j])
    return min(j for j in significant if gap[j] >= gap[best] - moments[best][1])


@dataclass
class Result:
    """The outcome of the group search (see the module docstring)."""

    k: int
    dims: int
    vals: np.ndarray
    null_vals: np.ndarray
    spec: Spectrum
    clusters: dict[int, tuple[np.ndarray, float, float]]
    null_t: dict[int, np.ndarray]
    significant: list[int]


def search(ctx: Context, design: Design, max_groups: int, tau: float, n_perm: int) -> Result:
    """Parallel analysis for the dimensions, clustering, permutation test per k."""
    rng = ctx.rng("groups")
    n_eigen = min(max_groups + 1, design.n - 1)
    observed = spectrum(design, design.cat, n_eigen, tau)
    seeds = rng.integers(0, 2**63 - 1, n_perm)
    # Keep the permuted spectra (n x n products each) within KEEP_BYTES; else recompute.
    keep = design.n**2 * 8 * n_perm <= KEEP_BYTES
    kept: list[Spectrum] = []
    null_vals = []
    for seed in ctx.track(seeds.tolist(), "groups: permuted spectra", n_perm):
        spec = spectrum(design, design.permuted(np.random.default_rng(seed)), n_eigen, tau)
        null_vals.append(spec.vals)
        if keep:
            kept.append(spec)
    null = np.array(null_vals)
    dims = parallel_analysis(observed.vals, null, max_groups)
    clusters = clusterings(observed, design.co, dims, max_groups, rng)
    null_t: dict[int, list[float]] = {k: [] for k in clusters}
    for b, seed in enumerate(ctx.track(seeds.tolist(), "groups: permuted clusterings", n_perm)):
        spec = (
            kept[b]
            if keep
            else spectrum(design, design.permuted(np.random.default_rng(seed)), n_eigen, tau)
        )
        for k, (_, t, _) in clusterings(spec, design.co, dims, max_groups, rng, False).items():
            null_t[k].append(t)
    nt = {k: np.array(v) for k, v in null_t.items()}
    separations = {k: c[1] for k, c in clusters.items()}
    significant, moments = significant_separations(separations, nt)
    k = choose_k(separations, significant, moments)
    return Result(k, dims, observed.vals, null, observed, clusters, nt, significant)


# --- reporting helpers ------------------------------------------------------------------------
def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw 1987) with Euclidean distances; NaN for one cluster."""
    k = int(labels.max()) + 1
    if len(np.unique(labels)) < 2:
        return float("nan")
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))  # (A, A)
    z = np.zeros((len(labels), k))
    z[np.arange(len(labels)), labels] = 1.0
    sizes = z.sum(axis=0)
    sums = d @ z  # (A, k) summed distance to each cluster
    own = sizes[labels]
    a = sums[np.arange(len(labels)), labels] / np.maximum(own - 1, 1)
    mean_other = np.where(sizes > 0, sums / np.maximum(sizes, 1), np.inf)
    mean_other[np.arange(len(labels)), labels] = np.inf
    b = mean_other.min(axis=1)
    sil = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(sil.mean())


def category_agreement(design: Design, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(k, k)`` three-category agreement rates between and within groups, and counts."""
    agree = np.zeros((design.n, design.n))
    for value in range(3):
        hot = design.matrix((design.cat == value).astype(float))
        agree += (hot @ hot.T).toarray()
    np.fill_diagonal(agree, 0.0)
    a, c = block_sums(agree, labels, k), block_sums(design.co, labels, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, a / c, np.nan), c


def directions(
    ctx: Context, votes: Votes, design: Design, labels: np.ndarray, k: int
) -> list[dict[str, float]]:
    """Per group: share of decisive judgments won by the longer / the first-shown response.

    Compared with the other clustered annotators by a two-proportion z-test.
    """
    if not ctx.count("judgments"):
        return []
    frame = ctx.judgment_frame().select(["annotator_id", "outcome", "a_chars", "b_chars"])
    members = votes.annotator_ids.take(pa.array(design.annotator))
    pos = pc.index_in(frame.column("annotator_id"), value_set=members)
    idx = pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    outcome = frame.column("outcome").to_numpy(zero_copy_only=False).astype(np.int64)
    a_len = pc.fill_null(frame.column("a_chars"), 0).to_numpy(zero_copy_only=False)
    b_len = pc.fill_null(frame.column("b_chars"), 0).to_numpy(zero_copy_only=False)
    decisive = (idx >= 0) & (outcome != 0)
    group = np.where(idx >= 0, labels[np.maximum(idx, 0)], -1)
    out = []
    for name, mask, hit in (
        ("longer", decisive & (a_len != b_len), (outcome > 0) == (a_len > b_len)),
        ("first_shown", decisive, outcome > 0),
    ):
        g = group[mask]
        n = np.bincount(g, minlength=k).astype(float)
        wins = np.bincount(g, weights=hit[mask], minlength=k)
        for j in range(k):
            n_rest, w_rest = n.sum() - n[j], wins.sum() - wins[j]
            if n[j] == 0 or n_rest == 0:
                continue
            p, q = wins[j] / n[j], w_rest / n_rest
            pool = (wins[j] + w_rest) / (n[j] + n_rest)
            se = np.sqrt(max(pool * (1 - pool) * (1 / n[j] + 1 / n_rest), 1e-300))
            out.append(
                {"group": j, "feature": name, "rate": p, "rest": q, "z": (p - q) / se, "n": n[j]}
            )
    return out


# --- entry point -----------------------------------------------------------------------------
def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd) if np.isfinite(x) else float("nan")


@dataclass
class Analysis:
    """Everything the finding reports: the votes, the selected annotators, the search."""

    votes: Votes
    design: Design
    result: Result
    min_judgments: int

    def labels(self) -> np.ndarray:
        """``(design.n,)`` group of each clustered annotator, 0 = the largest group."""
        result = self.result
        if result.k == 1:
            return np.zeros(self.design.n, np.int64)
        labels = result.clusters[result.k][0]
        rank = np.empty(result.k, np.int64)
        rank[np.argsort(-np.bincount(labels, minlength=result.k), kind="stable")] = np.arange(
            result.k
        )
        return rank[labels]

    def assignments(self) -> dict[str, int]:
        """Annotator id -> group (0 = largest) for every clustered annotator."""
        ids = self.votes.annotator_ids.take(pa.array(self.design.annotator)).to_pylist()
        return dict(zip(ids, self.labels().tolist(), strict=True))


def analyse(ctx: Context) -> Analysis | str:
    """The group search on ``ctx``'s data, or the reason it does not apply (cached)."""
    return ctx.cached(f"{NAME}.analysis", lambda: _analyse(ctx))


def _analyse(ctx: Context) -> Analysis | str:
    votes = collect_votes(ctx, ctx.param(NAME, "rankings", True))
    if votes is None:
        return "no item (prompt and response pair) has two or more judges"
    if not (votes.annotator >= 0).any():
        return "the judgments of multi-judged items have no annotator ids"
    min_judgments = ctx.param(NAME, "min_judgments", 20)
    design = select(votes, min_judgments, ctx.param(NAME, "max_annotators", 2000))
    if design is None:
        return (
            f"fewer than {2 * MIN_GROUP} annotators with >= {min_judgments} judgments on "
            "items they share with others"
        )
    max_groups = max(2, min(ctx.param(NAME, "max_groups", 6), design.n // MIN_GROUP))
    result = search(
        ctx,
        design,
        max_groups,
        ctx.param(NAME, "shrinkage", 5.0),
        max(1, ctx.param(NAME, "n_permutations", 19)),
    )
    return Analysis(votes, design, result, min_judgments)


def run(ctx: Context) -> list[Finding]:
    analysis = analyse(ctx)
    if isinstance(analysis, str):
        return [skipped(NAME, TITLE, analysis)]
    return [_finding(ctx, analysis)]


def _plots(result: Result) -> list[Plot]:
    ranks = list(range(1, len(result.vals) + 1))
    plots = [
        Plot(
            "line",
            "Eigenvalues of the annotator similarity: observed vs permuted votes (max)",
            ranks,
            {
                "observed": [_r(v) for v in result.vals],
                "permuted max": [_r(v) for v in result.null_vals.max(axis=0)],
            },
            xlabel="component",
            ylabel="eigenvalue",
        )
    ]
    ks = sorted(result.clusters)
    if ks:
        plots.append(
            Plot(
                "line",
                "Separation of k groups (min within - between vote product)",
                ks,
                {
                    "observed": [_r(result.clusters[k][1]) for k in ks],
                    "permuted max": [_r(float(result.null_t[k].max())) for k in ks],
                },
                xlabel="k (groups)",
                ylabel="separation",
            )
        )
    return plots


def _finding(ctx: Context, analysis: Analysis) -> Finding:
    votes, design, result = analysis.votes, analysis.design, analysis.result
    min_judgments = analysis.min_judgments
    ids = votes.annotator_ids.take(pa.array(design.annotator))
    k = result.k
    test = {
        "embedding_dims": result.dims,
        "significant_k": result.significant,
        "separation_by_k": {str(j): _r(c[1]) for j, c in result.clusters.items()},
        "permutation_max_by_k": {str(j): _r(float(v.max())) for j, v in result.null_t.items()},
        "silhouette_by_k": {str(j): _r(c[2]) for j, c in result.clusters.items()},
        "items_with_shared_judges": design.n_items,
    }
    plots = _plots(result)
    if k == 1:
        agree, _ = category_agreement(design, np.zeros(design.n, np.int64), 1)
        verdict = (
            f"No annotator groups: among {design.n} annotators with >= {min_judgments} "
            "judgments, no split agrees more inside than with outsiders beyond what "
            "permuted votes give. One reward model for everyone is consistent with the data."
        )
        metrics = {
            "groups": 1,
            "annotators_clustered": design.n,
            "agreement_between_annotators": _r(agree[0, 0]),
            **test,
        }
        return Finding(NAME, TITLE, "ok", verdict, metrics=metrics, plots=plots)
    _, separation_k, sil = result.clusters[k]
    labels = analysis.labels()
    sizes = np.bincount(labels, minlength=k)
    agree, pairs = category_agreement(design, labels, k)
    hits = np.nan_to_num(agree) * pairs
    within = float(np.trace(hits) / max(np.trace(pairs), 1.0))
    between = float((hits.sum() - np.trace(hits)) / max(pairs.sum() - np.trace(pairs), 1.0))
    gap = within - between
    severity = "warning" if gap >= ctx.param(NAME, "strong_gap", 0.10) else "info"
    dirs = directions(ctx, votes, design, labels, k)
    notes = [
        f"group {d['group'] + 1} picks the "
        + ("longer" if d["feature"] == "longer" else "first-shown")
        + f" response in {d['rate']:.0%} of decisive judgments (others {d['rest']:.0%})"
        for d in dirs
        if abs(d["z"]) >= DIRECTION_Z and abs(d["rate"] - d["rest"]) >= DIRECTION_GAP
    ]
    size_text = ", ".join(str(int(n)) for n in sizes)
    if severity == "warning":
        verdict = (
            f"{k} annotator groups (sizes {size_text}) disagree systematically: members "
            f"agree on {within:.0%} of shared items within a group and {between:.0%} across "
            "groups. A single reward model averages their preferences; consider per-group "
            "or pluralistic (PAL-style) models, or check the groups' instructions."
        )
    else:
        verdict = (
            f"{k} weakly separated annotator groups (sizes {size_text}): members agree on "
            f"{within:.0%} of shared items within a group and {between:.0%} across groups. "
            "Mild differences in taste (or chance at the 5% level); no action needed "
            "unless the groups match a known split of the annotator pool."
        )
    if notes:
        verdict += " " + "; ".join(notes).capitalize() + "."
    metrics = {
        "groups": k,
        "agreement_gap": _r(gap),
        "agreement_within": _r(within),
        "agreement_between": _r(between),
        "silhouette": _r(sil),
        "group_sizes": [int(n) for n in sizes],
        "annotators_clustered": design.n,
        "separation": _r(separation_k),
        "permutation_max": _r(float(result.null_t[k].max())),
        **test,
    }
    n_judged = np.bincount(design.rows, minlength=design.n)
    group_rows: list[list[object]] = []
    for g in range(k):
        members = np.flatnonzero(labels == g)
        top = members[np.argsort(-n_judged[members], kind="stable")][:5]
        others = np.arange(k) != g
        row: list[object] = [
            g + 1,
            int(sizes[g]),
            _r(agree[g, g], 3),
            _r(float(hits[g, others].sum() / max(pairs[g, others].sum(), 1.0)), 3),
        ]
        for feature in ("longer", "first_shown"):
            d = next((d for d in dirs if d["group"] == g and d["feature"] == feature), None)
            row.append(_r(d["rate"], 3) if d else None)
        row.append(", ".join(ids.take(pa.array(top)).to_pylist()))
        group_rows.append(row)
    order = np.lexsort((-n_judged, labels))[: ctx.options.top]
    tables = [
        Table(
            "Annotator groups",
            [
                "group",
                "annotators",
                "agreement within",
                "agreement with others",
                "longer wins",
                "first shown wins",
                "most active members",
            ],
            group_rows[: ctx.options.top],
            note="Agreement = share of co-judged items with the same value (a, b or tie); "
            "wins = share of the group's decisive judgments.",
        ),
        Table(
            "Annotators by group",
            ["annotator_id", "group", "judgments"],
            [[ids[i].as_py(), int(labels[i]) + 1, int(n_judged[i])] for i in order.tolist()],
            note="Groups are numbered by size; ids lists the members of groups 2 and up.",
        ),
    ]
    return Finding(
        NAME,
        TITLE,
        severity,
        verdict,
        metrics=metrics,
        tables=tables,
        plots=plots,
        ids={"annotator_id": ids.take(pa.array(np.flatnonzero(labels != 0))).to_pylist()},
    )


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="spectral clustering of annotators by their votes; groups that agree "
        "more inside than across, calibrated by permutation",
        run=run,
    )
)
