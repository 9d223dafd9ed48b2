"""Budgeted selection of preference pairs (FiFA-style).

Implements the selection objective of FiFA: Yang, Kim, Jung, Bae, Kim, Yun and Lee (2024,
ICLR 2025), "Automated Filtering of Human Feedback Data for Aligning Text-to-Image
Diffusion Models" (arXiv 2410.10166): keep a budget of ``k`` pairs that maximises a
weighted sum of preference margin, text quality and prompt diversity, diversity measured
by the k-nearest-neighbour (Kozachenko–Leonenko) entropy of the selected prompts.

Candidates are the decisive judgments (a winner; ties are never selected). Per pair:

* ``margin`` (``margin_from``): ``strength`` (the judgment's strength), ``score``
  (``|score_a - score_b|`` of its two responses), or the name of a numeric judgment
  column (absolute value, e.g. a reward-model margin); nulls count as 0. Min-max
  scaled to [0, 1] over the candidates.
* ``quality`` (``quality_from``): ``suspicion`` (``1 -`` the noise check's posterior flip
  probability, :func:`prefkit.diagnostics.checks.noise.suspicion`; 0.5 where it has none;
  it runs the noise check, which is slow), ``none`` (the default: 0), or a numeric
  judgment column; min-max scaled. FiFA asks an LLM to rate
  the prompt; a label-quality proxy is the deviation here.
* ``diversity``: prompts as unit vectors, sentence embeddings (``embed=true``, when the
  ``embed`` extra is installed) or hashed word 1–2-gram TF-IDF vectors sketched to 256
  signed dimensions (the hashing trick: a random projection, via scipy.sparse). The
  greedy gain of a candidate is half its Euclidean distance to the nearest selected
  prompt (1 before anything is selected), a facility-location style coverage term.

Selection: with ``w_diversity = 0`` the score is additive and the top ``k`` by
``w_margin * margin + w_quality * quality`` are taken exactly (stable order, ties broken
by table order). Otherwise greedy: each round adds the candidates with the best
``w_margin * margin + w_quality * quality + w_diversity * gain`` and updates every
remaining candidate's distance to its nearest selected prompt (vectorised). FiFA instead
scores each pair once (its approximation to the set objective); the greedy gain
accounts for what is already selected. Cost bounds (documented deviations):

* Greedy runs on a pool of at most ``max_candidates`` pairs: when there are more, half
  the pool is the best by margin/quality and half a seeded random sample of the rest.
  When ``k`` exceeds the pool, the rest of the budget is filled by margin/quality.
* Rounds add ``ceil(k / 256)`` pairs each (one at a time for k <= 256).

The trade-off curve in the lineage ``info`` gives, for each weight in ``curve`` (and the
chosen one), the mean raw margin of the selected pairs and the k-NN entropy of their
prompt vectors (``knn`` neighbours, at most 5,000 selected pairs, distances floored at
1e-6 so repeated prompts count as very close rather than minus infinity).

The unselected judgments are dropped (reason ``select: not selected``); with ``prune``
also the prompts (with their responses) left with neither a judgment nor a ranking. Kept
judgments get ``select_order`` (0 = picked first).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from scipy import sparse
from scipy.special import digamma, gammaln

from prefkit.curation.cascade import drop_rows
from prefkit.curation.step import Outcome, Param, Step, register
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.views import prompt_text

PAPER = (
    "Yang, Kim, Jung, Bae, Kim, Yun, Lee (2024, ICLR 2025), Automated Filtering of Human "
    "Feedback Data for Aligning Text-to-Image Diffusion Models (FiFA)"
)
#: Hashed n-gram space for document frequencies, and the sketch dimension.
HASH_BUCKETS = 1 << 20
SKETCH_DIM = 256
#: Most greedy rounds, and most selected pairs the entropy is estimated on.
MAX_ROUNDS = 256
ENTROPY_CAP = 5000
MIN_DIST = 1e-6
STEP = "select"


# --- features ---------------------------------------------------------------------------------
def _scale(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _column(j: pa.Table, name: str, param: str) -> np.ndarray:
    if name not in j.column_names:
        raise PrefkitError(f"curate {STEP}: parameter {param!r}: judgments have no column {name!r}")
    col = j.column(name)
    if not (
        pa.types.is_integer(col.type)
        or pa.types.is_floating(col.type)
        or pa.types.is_boolean(col.type)
    ):
        raise PrefkitError(f"curate {STEP}: parameter {param!r}: column {name!r} is not numeric")
    return np.asarray(pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False))


def margins(ds: Dataset, j: pa.Table, margin_from: str) -> np.ndarray:
    """Raw margin of every judgment in ``j`` (NaN where unknown)."""
    if margin_from == "strength":
        return np.abs(_column(j, "strength", "margin_from"))
    if margin_from == "score":
        r = ds.responses
        rid = r.column("response_id")
        score = np.asarray(
            pc.fill_null(r.column("score"), np.nan).to_numpy(zero_copy_only=False), float
        )
        out = []
        for side in ("a", "b"):
            idx = pc.index_in(j.column(side), value_set=rid)
            vals = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), np.int64)
            out.append(np.where(vals >= 0, score[vals], np.nan))
        return np.abs(out[0] - out[1])
    return np.abs(_column(j, margin_from, "margin_from"))


def qualities(ds: Dataset, j: pa.Table, quality_from: str, embed: bool = False) -> np.ndarray:
    if quality_from == "none":
        return np.zeros(j.num_rows)
    if quality_from == "suspicion":
        from prefkit.diagnostics.checks import noise
        from prefkit.diagnostics.context import Context, InspectOptions

        # Embedding features only when asked for (as the filter's ``suspicion`` column).
        sus = noise.suspicion(Context(ds, InspectOptions(embed="auto" if embed else "never")))
        idx = pc.index_in(j.column("judgment_id"), value_set=sus.column("judgment_id"))
        vals = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), np.int64)
        s = np.asarray(
            pc.fill_null(sus.column("suspicion"), np.nan).to_numpy(zero_copy_only=False), float
        )
        q = np.where(vals >= 0, 1.0 - s[np.maximum(vals, 0)], np.nan)
        return np.where(np.isnan(q), 0.5, q)
    return _column(j, quality_from, "quality_from")


def ngram_vectors(texts: list[str]) -> np.ndarray:
    """Unit rows: hashed word 1-2-gram TF-IDF, sketched to SKETCH_DIM signed dimensions."""
    rows, cols = [], []
    h = xxhash.xxh64_intdigest
    for i, text in enumerate(texts):
        words = text.lower().split()
        grams = words + [f"{x} {y}" for x, y in itertools.pairwise(words)]
        for g in grams:
            cols.append(h(g.encode()) % HASH_BUCKETS)
        rows.extend([i] * len(grams))
    n = len(texts)
    if not cols:
        return np.zeros((n, SKETCH_DIM), np.float32)
    counts = sparse.csr_matrix(
        (np.ones(len(cols)), (np.asarray(rows), np.asarray(cols))), shape=(n, HASH_BUCKETS)
    )
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=HASH_BUCKETS)
    idf = np.log((1 + n) / (1 + df)) + 1.0
    coo = counts.tocoo()
    values = (1 + np.log(coo.data)) * idf[coo.col]
    # Sketch: bucket -> (dimension, sign); a signed hash projection preserves inner
    # products in expectation (Weinberger et al., 2009).
    dim = coo.col % SKETCH_DIM
    sign = np.where((coo.col // SKETCH_DIM) % 2 == 0, 1.0, -1.0)
    dense = sparse.csr_matrix((values * sign, (coo.row, dim)), shape=(n, SKETCH_DIM)).toarray()
    norm = np.linalg.norm(dense, axis=1, keepdims=True)
    return (dense / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def knn_entropy(x: np.ndarray, k: int = 3) -> float:
    """Kozachenko–Leonenko estimate of the differential entropy of the rows of ``x``:
    ``psi(n) - psi(k) + log V_d + d * mean(log rho_k)``, rho_k the distance to the k-th
    nearest other row (floored at MIN_DIST), V_d the volume of the unit d-ball."""
    n, d = x.shape
    if n <= k:
        return float("nan")
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))  # (n, n)
    np.fill_diagonal(dist, np.inf)
    rho = np.partition(dist, k - 1, axis=1)[:, k - 1]
    log_vd = (d / 2) * math.log(math.pi) - gammaln(d / 2 + 1)
    return float(digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(np.maximum(rho, MIN_DIST))))


# --- selection --------------------------------------------------------------------------------
def greedy(base: np.ndarray, vecs: np.ndarray, k: int, w_div: float) -> np.ndarray:
    """Indices (in pick order) of ``k`` rows chosen greedily by ``base + w_div * gain``,
    gain = distance to the nearest selected row / 2 (rows are unit vectors)."""
    n = len(base)
    k = min(k, n)
    if w_div == 0 or k == 0:
        return np.lexsort((np.arange(n), -base))[:k]
    batch = max(1, math.ceil(k / MAX_ROUNDS))
    gain = np.ones(n)
    free = np.ones(n, bool)
    order: list[np.ndarray] = []
    picked = 0
    while picked < k:
        score = np.where(free, base + w_div * gain, -np.inf)
        take = min(batch, k - picked)
        best = np.lexsort((np.arange(n), -score))[:take]
        order.append(best)
        free[best] = False
        picked += take
        d = np.sqrt(np.maximum(2.0 - 2.0 * (vecs @ vecs[best].T), 0.0)) / 2  # (n, take)
        gain = np.minimum(gain, d.min(axis=1))
    return np.concatenate(order)


def select(
    ds: Dataset,
    *,
    k: int,
    fraction: float,
    w_margin: float,
    w_quality: float,
    w_diversity: float,
    margin_from: str,
    quality_from: str,
    embed: bool,
    max_candidates: int,
    knn: int,
    curve: list[str],
    prune: bool,
    seed: int,
) -> Outcome:
    j = ds.judgments
    if j.num_rows == 0:
        raise PrefkitError(f"curate {STEP}: no judgments to select from (build pairs first)")
    for name, w in (("w_margin", w_margin), ("w_quality", w_quality), ("w_diversity", w_diversity)):
        if w < 0:
            raise PrefkitError(f"curate {STEP}: parameter {name!r} must be >= 0, got {w}")
    if knn < 1:
        raise PrefkitError(f"curate {STEP}: parameter 'knn' must be >= 1, got {knn}")
    if max_candidates < 2:
        raise PrefkitError(f"curate {STEP}: parameter 'max_candidates' must be >= 2")
    try:
        curve_w = [float(x) for x in curve]
    except ValueError:
        raise PrefkitError(
            f"curate {STEP}: parameter 'curve' expects numbers, got {curve!r}"
        ) from None
    outcome = np.asarray(j.column("outcome").to_numpy(), np.int64)
    cand = np.flatnonzero(outcome != 0)
    if k > 0:
        budget = k
    elif 0 < fraction <= 1:
        budget = round(fraction * len(cand))
    else:
        raise PrefkitError(f"curate {STEP}: give parameter 'k' > 0 or 'fraction' in (0, 1]")
    budget = min(budget, len(cand))
    jc = j.take(pa.array(cand, pa.int64()))
    raw_margin = np.nan_to_num(margins(ds, jc, margin_from), nan=0.0)
    quality = qualities(ds, jc, quality_from, embed) if w_quality > 0 else np.zeros(len(cand))
    base = w_margin * _scale(raw_margin) + w_quality * _scale(np.nan_to_num(quality, nan=0.0))

    # Candidate pool for the greedy (and for the curve): best half + random half.
    n = len(cand)
    if n > max_candidates:
        rng = np.random.default_rng(seed)
        top = np.lexsort((np.arange(n), -base))[: max_candidates // 2]
        rest = np.setdiff1d(np.arange(n), top)
        pool = np.sort(np.concatenate([top, rng.choice(rest, max_candidates - len(top), False)]))
    else:
        pool = np.arange(n)
    vecs = _prompt_vectors(ds, jc.column("prompt_id").take(pa.array(pool)), embed)

    def run(w_div: float) -> np.ndarray:
        if w_div == 0:
            return np.lexsort((np.arange(n), -base))[:budget]
        chosen = pool[greedy(base[pool], vecs, budget, w_div)]
        if len(chosen) < budget:
            left = np.setdiff1d(np.arange(n), chosen)
            fill = left[np.lexsort((left, -base[left]))][: budget - len(chosen)]
            chosen = np.concatenate([chosen, fill])
        return chosen

    pos_in_pool = np.full(n, -1)
    pos_in_pool[pool] = np.arange(len(pool))

    def entropy(chosen: np.ndarray) -> float:
        rows = pos_in_pool[chosen]
        rows = rows[rows >= 0][:ENTROPY_CAP]
        return knn_entropy(vecs[rows].astype(np.float64), knn)

    points = []
    for w in sorted(set(curve_w) | {w_diversity}):
        chosen = run(w)
        points.append(
            {
                "w_diversity": w,
                "mean_margin": float(raw_margin[chosen].mean()) if len(chosen) else float("nan"),
                "entropy": entropy(chosen),
            }
        )
    selected = run(w_diversity)
    info: dict[str, Any] = {
        "candidates": n,
        "pool": len(pool),
        "selected": len(selected),
        "mean_margin_all": float(raw_margin.mean()) if n else float("nan"),
        "mean_margin": float(raw_margin[selected].mean()) if len(selected) else float("nan"),
        "entropy": entropy(selected),
        "curve": points,
    }

    keep_rows = cand[selected]
    order = np.full(j.num_rows, -1, np.int64)
    order[keep_rows] = np.arange(len(keep_rows))
    jid = j.column("judgment_id").combine_chunks()
    gone = jid.filter(pa.array(order < 0))
    out = drop_rows(ds, "select: not selected", judgments=gone)
    kept_j = j.filter(pa.array(order >= 0))
    if "select_order" in kept_j.column_names:
        kept_j = kept_j.drop_columns(["select_order"])
    kept_j = kept_j.append_column("select_order", pa.array(order[order >= 0]))
    tables = {**out.tables, "judgments": kept_j}
    reasons, reports = dict(out.reasons), [out.report] if out.report is not None else []
    if prune:
        used = pa.concat_arrays(
            [
                kept_j.column("prompt_id").combine_chunks(),
                ds.rankings.column("prompt_id").combine_chunks(),
            ]
        )
        orphan = ds.prompts.filter(
            pc.invert(pc.is_in(ds.prompts.column("prompt_id"), value_set=used))
        ).column("prompt_id")
        if len(orphan):
            ds1 = ds.with_tables(**tables)
            pruned = drop_rows(ds1, "select: prompt without a selected pair", prompts=orphan)
            tables.update(pruned.tables)
            reasons.update({t: {**reasons.get(t, {}), **v} for t, v in pruned.reasons.items()})
            if pruned.report is not None:
                reports.append(pruned.report)
    report = pa.concat_tables(reports) if reports else None
    return Outcome(tables, reasons=reasons, report=report, info=info)


def _prompt_vectors(ds: Dataset, prompt_ids: pa.Array, embed: bool) -> np.ndarray:
    """Unit vectors of the prompts (one row per id, repeats included)."""
    uniq = pc.unique(prompt_ids)
    p = ds.prompts
    idx = pc.index_in(uniq, value_set=p.column("prompt_id"))
    texts = prompt_text(p.column("messages").combine_chunks().take(idx)).to_pylist()
    texts = [t or "" for t in texts]
    vecs = None
    if embed:
        from prefkit.diagnostics.embed import load_encoder

        encoder = load_encoder(required=False)
        if encoder is not None:
            vecs = np.asarray(encoder(texts), np.float32)
    if vecs is None:
        vecs = ngram_vectors(texts)
    where = np.asarray(pc.index_in(prompt_ids, value_set=uniq).to_numpy(zero_copy_only=False))
    return vecs[where.astype(np.int64)]


def run_select(ds: Dataset, **params: Any) -> Outcome:
    return select(ds, **params)


register(
    Step(
        STEP,
        "choose k pairs maximising margin, quality and prompt diversity (FiFA)",
        run_select,
        (
            Param("k", 0, "pairs to keep (0: use fraction)"),
            Param("fraction", 0.1, "share of decisive pairs to keep when k is 0"),
            Param("w_margin", 1.0, "weight of the preference margin"),
            Param("w_quality", 0.0, "weight of the quality proxy"),
            Param("w_diversity", 0.5, "weight of the diversity gain"),
            Param("margin_from", "strength", "strength, score, or a numeric judgment column"),
            Param(
                "quality_from",
                "none",
                "none, suspicion (runs the noise check), or a numeric judgment column",
            ),
            Param("embed", False, "sentence embeddings for diversity when installed"),
            Param("max_candidates", 20000, "largest greedy candidate pool"),
            Param("knn", 3, "neighbours of the k-NN entropy estimate"),
            Param(
                "curve", ["0", "0.25", "0.5", "1", "2"], "diversity weights of the trade-off curve"
            ),
            Param("prune", True, "drop prompts left without a selected pair"),
            Param("seed", 0, "seed of the candidate-pool sample"),
        ),
        PAPER,
    )
)
