"""Annotator agreement: Krippendorff's alpha, pairwise agreement, and per-annotator outliers.

What it detects
    Where an *item* (a prompt and an unordered pair of responses) has several judges, how
    often they agree, and which annotators agree with the others much less than the rest
    do. Low agreement caps what a reward model can learn (the labels are partly noise);
    a few annotators far below the rest are the cheapest labels to drop or re-collect.

Items and values
    A judgment of ``(a, b)`` is oriented to the item ``(prompt, lo, hi)`` with
    ``lo = min(a, b)``: the value is the outcome when ``a = lo`` and the flipped outcome
    otherwise, so ``(b, a)`` with "b preferred" counts as ``(a, b)`` with "a preferred".
    Values are three categories ``hi preferred < tie < lo preferred`` (both tie kinds,
    good and bad, are one "tie"). Judgments of a response against itself (``a = b``)
    have no orientation and are left out (counted in ``self_pairs_left_out``). Rankings
    count too: each ranking gives one value per pair of its responses (a pair in the same
    tier is a tie), with the ranking's id.

Method
    * Krippendorff's alpha (Krippendorff 2004, "Content Analysis", ch. 11, and 2011,
      "Computing Krippendorff's Alpha-Reliability"), from the coincidence matrix
      ``o_ck = sum_u (n_uc n_uk - [c=k] n_uc) / (m_u - 1)`` over the units ``u`` with
      ``m_u >= 2`` values; ``alpha = 1 - (n - 1) sum o_ck d_ck / sum n_c n_k d_ck``.
      The nominal metric is the headline; the ordinal metric (which counts "a vs tie" as
      a smaller disagreement than "a vs b") is reported too. Alpha needs no annotator
      identities, so it is computed on anonymous judgments as well.
    * Pairwise agreement ``A_o = 1 - D_o`` (nominal): the chance that two judgments of
      the same item agree, items weighted by their number of judgments as in alpha; the
      chance agreement ``A_e`` is reported with it (``alpha = (A_o - A_e) / (1 - A_e)``).
    * Per annotator: each judgment is compared with the plurality value of the *other*
      annotators' judgments on the same item (leave-one-out; the annotator's own repeat
      judgments of the item are left out too). When the others' top value is shared (a
      tie in the vote, e.g. 1-1), the judgment is not scored: it counts in ``n`` but not
      in ``scored``; the agreement rate is ``agree / scored``.
    * Flag rule (robust, with a noise guard): among annotators with at least
      ``min_items`` scored judgments, an annotator is flagged when its rate is below
      ``median - max(mad_k * 1.4826 * MAD, min_gap)`` *and* a one-sided binomial test of
      its agreements against the median rate is significant after Benjamini–Hochberg
      (1995) correction at ``fdr``. Fewer than 5 eligible annotators: nobody is flagged.
    * Disputed items: no value has a strict majority (top count * 2 <= judgments).

Deviations
    The binomial test treats an annotator's scored judgments as independent trials with
    the median annotator's success rate; items differ in difficulty, so the test is a
    noise guard (annotators with few items are not flagged on luck), not an exact test.

Parameters (``ctx.param("agreement", ...)``)
    ``min_items`` (20), ``mad_k`` (3.0), ``min_gap`` (0.05), ``fdr`` (0.05),
    ``rankings`` (True: use rankings as pairwise values).

Severity
    Overall (with at least 30 multi-judged items; fewer: ``info``, alpha reported but not
    judged): ``ok`` alpha >= 0.667 (Krippendorff's lowest acceptable reliability),
    ``info`` >= 0.4, ``warning`` >= 0.1, ``error`` below 0.1 (labels barely better than
    chance). Annotators: ``ok`` none flagged, ``warning`` some flagged, ``error`` when
    flagged annotators wrote >= 10% of the multi-judged judgments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.registry import Check, register

NAME = "agreement"
TITLE = "Annotator agreement"
#: Value categories in ordinal order (index = oriented outcome + 1).
CATEGORIES = ("hi preferred", "tie", "lo preferred")
#: 1.4826 * MAD estimates the standard deviation of normal data.
MAD_SCALE = 1.4826
#: Fewer eligible annotators than this: the median is no reference, nobody is flagged.
MIN_ANNOTATORS = 5
ALPHA_OK, ALPHA_INFO, ALPHA_WARNING = 0.667, 0.4, 0.1
FLAGGED_ERROR_SHARE = 0.10
#: Fewer multi-judged items than this: alpha is reported but gives no verdict ("info").
MIN_ITEMS = 30
CACHE_KEY = "agreement.votes"


# --- votes ------------------------------------------------------------------------------
@dataclass
class Votes:
    """Oriented values of the items with >= 2 values (one row per judgment or ranking pair).

    Attributes
    ----------
    item
        ``(n,)`` item index ``0..U-1``.
    cat
        ``(n,)`` value: 0 hi preferred, 1 tie, 2 lo preferred.
    annotator
        ``(n,)`` index into ``annotator_ids``; -1 where the judge is unknown.
    vote_id, ranked
        The judgment id (or ranking id where ``ranked``) of each row.
    prompt_id, lo, hi
        ``(U,)`` the item keys.
    n_votes, n_items
        All values and all items, single-judged ones included.
    n_self
        Judgments of a response against itself (``a = b``), left out: no orientation.
    """

    item: np.ndarray
    cat: np.ndarray
    annotator: np.ndarray
    annotator_ids: pa.Array
    vote_id: pa.Array
    ranked: np.ndarray
    prompt_id: pa.Array
    lo: pa.Array
    hi: pa.Array
    n_votes: int
    n_items: int
    n_self: int = 0

    @property
    def n_multi(self) -> int:
        return len(self.prompt_id)

    def counts(self) -> np.ndarray:
        """``(U, 3)`` values per item and category."""
        return np.bincount(self.item * 3 + self.cat, minlength=self.n_multi * 3).reshape(-1, 3)

    def ids(self, rows: np.ndarray) -> dict[str, list[str]]:
        """The vote ids of ``rows`` by kind (``judgment_id`` / ``ranking_id``)."""
        out: dict[str, list[str]] = {}
        for kind, mask in (("judgment_id", ~self.ranked[rows]), ("ranking_id", self.ranked[rows])):
            if mask.any():
                out[kind] = list(dict.fromkeys(self.vote_id.take(pa.array(rows[mask])).to_pylist()))
        return out


_JUDGMENT_VOTES = """
    SELECT judgment_id AS vid, FALSE AS ranked, prompt_id,
           least(a, b) AS lo, greatest(a, b) AS hi,
           (CASE WHEN a < b THEN outcome ELSE -outcome END)::TINYINT AS value, annotator_id
    FROM _judgments WHERE a <> b AND outcome IS NOT NULL"""


def ranking_pairs_sql(where: str = "") -> str:
    """Rankings as oriented pairwise values, one row per pair of distinct responses of a
    ranking: ``ranking_id, prompt_id, annotator_id, lo, hi, value`` with ``lo < hi`` and
    ``value`` +1 when ``lo`` is in the better (lower) tier, -1 when ``hi`` is, 0 in the
    same tier. ``where`` filters ``_rankings``."""
    return f"""
        WITH t AS (SELECT ranking_id, prompt_id, annotator_id,
                          unnest(tiers) AS tier, generate_subscripts(tiers, 1) AS r
                   FROM _rankings {where}),
             m AS (SELECT ranking_id, prompt_id, annotator_id, r, unnest(tier) AS rid FROM t)
        SELECT x.ranking_id, x.prompt_id, x.annotator_id, x.rid AS lo, y.rid AS hi,
               sign(y.r - x.r)::TINYINT AS value
        FROM m x JOIN m y ON x.ranking_id = y.ranking_id AND x.rid < y.rid"""


_RANKING_VOTES = f"""
    SELECT ranking_id AS vid, TRUE AS ranked, prompt_id, lo, hi, value, annotator_id
    FROM ({ranking_pairs_sql()})"""


def collect_votes(ctx: Context, rankings: bool = True) -> Votes | None:
    """The oriented values of every multi-judged item (cached per run); None when none.

    All the global work (orientation, item keys, counts) runs in DuckDB; only the rows of
    items with >= 2 values come back, as integer arrays plus their ids.
    """
    key = f"{CACHE_KEY}:{rankings}"
    return ctx.cached(key, lambda: _collect(ctx, rankings))


def _collect(ctx: Context, rankings: bool) -> Votes | None:
    con = ctx.con
    parts, n_self = [], 0
    if ctx.count("judgments"):
        parts.append(_JUDGMENT_VOTES)
        n_self = int(con.execute("SELECT count(*) FROM _judgments WHERE a = b").fetchall()[0][0])
    if rankings and ctx.count("rankings"):
        parts.append(_RANKING_VOTES)
    if not parts:
        return None
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _agr_votes AS SELECT *, hash(prompt_id, lo, hi) AS key "
        f"FROM ({' UNION ALL '.join(parts)})"
    )
    n_votes, n_items = con.execute(
        "SELECT count(*), count(DISTINCT key) FROM _agr_votes"
    ).fetchall()[0]
    table = con.sql(
        """SELECT v.vid, v.ranked, v.prompt_id, v.lo, v.hi, v.value, v.annotator_id, v.key
           FROM _agr_votes v
           SEMI JOIN (SELECT key FROM _agr_votes GROUP BY key HAVING count(*) >= 2) m
           USING (key)"""
    ).to_arrow_table()
    con.execute("DROP TABLE _agr_votes")
    if table.num_rows == 0:
        return None
    keys = table.column("key").to_numpy()
    _, first, item = np.unique(keys, return_index=True, return_inverse=True)
    encoded = pc.dictionary_encode(table.column("annotator_id")).combine_chunks()
    annotator = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    first_rows = pa.array(first)
    return Votes(
        item=item.astype(np.int64),
        cat=(table.column("value").to_numpy() + 1).astype(np.int64),
        annotator=annotator,
        annotator_ids=encoded.dictionary,
        vote_id=table.column("vid").combine_chunks(),
        ranked=table.column("ranked").to_numpy(),
        prompt_id=table.column("prompt_id").take(first_rows).combine_chunks(),
        lo=table.column("lo").take(first_rows).combine_chunks(),
        hi=table.column("hi").take(first_rows).combine_chunks(),
        n_votes=int(n_votes),
        n_items=int(n_items),
        n_self=n_self,
    )


# --- Krippendorff's alpha -----------------------------------------------------------------
def coincidences(counts: np.ndarray) -> np.ndarray:
    """``(C, C)`` coincidence matrix of ``(U, C)`` value counts (units with m >= 2 only)."""
    counts = np.asarray(counts, float)
    m = counts.sum(axis=1)
    counts = counts[m >= 2]
    w = 1.0 / (m[m >= 2] - 1.0)  # (U,)
    weighted = counts * w[:, None]
    return weighted.T @ counts - np.diag(weighted.sum(axis=0))


def metric(n_c: np.ndarray, kind: str) -> np.ndarray:
    """``(C, C)`` squared distances ``d_ck`` between ordered categories.

    ``nominal``: 1 when different. ``ordinal`` (Krippendorff 2011, eq. for ordinal data):
    ``(sum_{g=c..k} n_g - (n_c + n_k) / 2) ** 2`` with the marginal counts ``n_g``.
    ``interval``: ``(c - k) ** 2``.
    """
    c = len(n_c)
    if kind == "nominal":
        return 1.0 - np.eye(c)
    idx = np.arange(c)
    if kind == "interval":
        return np.asarray((idx[:, None] - idx[None, :]) ** 2, float)
    if kind == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        lo, hi = np.minimum(idx[:, None], idx[None, :]), np.maximum(idx[:, None], idx[None, :])
        between = cum[hi + 1] - cum[lo]  # sum of n_g for g in [lo, hi]
        return np.asarray((between - (n_c[:, None] + n_c[None, :]) / 2.0) ** 2, float)
    raise ValueError(f"unknown metric {kind!r}")


def krippendorff_alpha(counts: np.ndarray, kind: str = "nominal") -> float:
    """Krippendorff's alpha from ``(U, C)`` value counts per unit (columns in order).

    Returns NaN when there is no pairable value or no variation (expected disagreement 0).
    """
    o = coincidences(counts)
    n_c = o.sum(axis=0)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    d = metric(n_c, kind)
    expected = float((np.outer(n_c, n_c) * d).sum())
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * float((o * d).sum()) / expected)


def observed_expected_agreement(counts: np.ndarray) -> tuple[float, float]:
    """Nominal ``(A_o, A_e)``: pairwise agreement and its chance level, as in alpha."""
    o = coincidences(counts)
    n_c = o.sum(axis=0)
    n = n_c.sum()
    if n <= 1:
        return float("nan"), float("nan")
    return float(np.trace(o) / n), float(((n_c * (n_c - 1)).sum()) / (n * (n - 1)))


# --- per annotator --------------------------------------------------------------------------
@dataclass
class AnnotatorStats:
    """Per-annotator leave-one-out agreement (arrays over ``annotator_ids``)."""

    n: np.ndarray
    items: np.ndarray
    scored: np.ndarray
    agree: np.ndarray
    rate: np.ndarray
    eligible: np.ndarray
    p_value: np.ndarray
    q_value: np.ndarray
    flagged: np.ndarray
    median: float
    mad: float
    threshold: float
    tied_majority: int


def leave_one_out(votes: Votes, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row with a known annotator: ``(rows, scored, agree)``.

    ``scored`` is False where the other annotators' top value is shared or absent.
    """
    rows = np.flatnonzero(votes.annotator >= 0)
    n_ann = len(votes.annotator_ids)
    pair = votes.item[rows] * n_ann + votes.annotator[rows]
    uniq, inv = np.unique(pair, return_inverse=True)
    own = np.bincount(inv * 3 + votes.cat[rows], minlength=len(uniq) * 3).reshape(-1, 3)
    other = counts[votes.item[rows]] - own[inv]  # (n, 3)
    top = other.max(axis=1)
    scored = (top > 0) & ((other == top[:, None]).sum(axis=1) == 1)
    agree = scored & (other.argmax(axis=1) == votes.cat[rows])
    return rows, scored, agree


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg (1995) adjusted p-values (q-values) of ``p``."""
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def annotator_stats(
    votes: Votes, counts: np.ndarray, min_items: int, mad_k: float, min_gap: float, fdr: float
) -> AnnotatorStats:
    """Leave-one-out agreement per annotator and the flag rule (module docstring)."""
    n_ann = len(votes.annotator_ids)
    rows, scored, agree = leave_one_out(votes, counts)
    ann = votes.annotator[rows]
    n = np.bincount(ann, minlength=n_ann)
    n_scored = np.bincount(ann, weights=scored, minlength=n_ann).astype(np.int64)
    n_agree = np.bincount(ann, weights=agree, minlength=n_ann).astype(np.int64)
    items = np.bincount(np.unique(votes.item[rows] * n_ann + ann) % n_ann, minlength=n_ann)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n_scored > 0, n_agree / np.maximum(n_scored, 1), np.nan)
    eligible = n_scored >= min_items
    p_value = np.full(n_ann, np.nan)
    q_value = np.full(n_ann, np.nan)
    flagged = np.zeros(n_ann, bool)
    median = mad = threshold = float("nan")
    if eligible.sum() >= MIN_ANNOTATORS:
        median = float(np.median(rate[eligible]))
        mad = float(MAD_SCALE * np.median(np.abs(rate[eligible] - median)))
        threshold = median - max(mad_k * mad, min_gap)
        idx = np.flatnonzero(eligible)
        p_value[idx] = stats.binom.cdf(n_agree[idx], n_scored[idx], median)
        q_value[idx] = benjamini_hochberg(p_value[idx])
        flagged = eligible & (rate < threshold) & (q_value <= fdr)
    return AnnotatorStats(
        n=n,
        items=items,
        scored=n_scored,
        agree=n_agree,
        rate=rate,
        eligible=eligible,
        p_value=p_value,
        q_value=q_value,
        flagged=flagged,
        median=median,
        mad=mad,
        threshold=threshold,
        tied_majority=int((~scored).sum()),
    )


# --- findings ---------------------------------------------------------------------------------
def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd) if np.isfinite(x) else float("nan")


def _overall(ctx: Context, votes: Votes, counts: np.ndarray) -> Finding:
    m = counts.sum(axis=1)
    alpha = krippendorff_alpha(counts, "nominal")
    alpha_ord = krippendorff_alpha(counts, "ordinal")
    a_o, a_e = observed_expected_agreement(counts)
    top = counts.max(axis=1)
    disputed = top * 2 <= m
    top_share = top / m
    if votes.n_multi < MIN_ITEMS:
        severity = "info"
        verdict = (
            f"Only {votes.n_multi} items have several judges (often repeated pairs); too few "
            f"for a reliable agreement estimate (alpha {alpha:.2f})."
        )
    elif not np.isfinite(alpha):
        severity = "ok"
        verdict = "All judges gave every multi-judged item the same value; alpha is undefined."
    else:
        severity = (
            "ok" if alpha >= ALPHA_OK else "info" if alpha >= ALPHA_INFO
            else "warning" if alpha >= ALPHA_WARNING else "error"
        )  # fmt: skip
        quality = {
            "ok": "reliable labels",
            "info": "moderately reliable labels",
            "warning": "noisy labels",
            "error": "labels barely better than chance",
        }[severity]
        verdict = (
            f"Judges of the same item agree {a_o:.0%} of the time (chance {a_e:.0%}), "
            f"Krippendorff's alpha {alpha:.2f}: {quality}. "
            + (
                "Aggregate the votes (majority or soft labels) rather than training on "
                "single judgments"
                + (f"; {int(disputed.sum()):,} items have no majority." if disputed.any() else ".")
                if severity != "ok"
                else "Single judgments are a fair training signal."
            )
        )
    order = np.lexsort((-m, top_share))[: ctx.options.top]
    order = order[disputed[order]]
    table = Table(
        "Most disputed items",
        ["prompt_id", "lo", "hi", "judges", "lo preferred", "tie", "hi preferred", "top share"],
        [
            [
                votes.prompt_id[i].as_py(),
                votes.lo[i].as_py(),
                votes.hi[i].as_py(),
                int(m[i]),
                int(counts[i, 2]),
                int(counts[i, 1]),
                int(counts[i, 0]),
                _r(top_share[i], 3),
            ]
            for i in order.tolist()
        ],
        note="Items with no strict majority, lowest top-value share first; lo/hi are the "
        "response ids in sorted order.",
    )
    edges = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 + 1e-9]
    hist = np.histogram(top_share, bins=edges)[0]
    plot = Plot(
        "hist",
        "Share of the judges behind each item's top value",
        [round(e, 2) for e in edges],
        {"items": hist.astype(float).tolist()},
        xlabel="top-value share",
        ylabel="items",
    )
    disputed_rows = np.flatnonzero(disputed[votes.item])
    return Finding(
        NAME,
        TITLE,
        severity,
        verdict,
        metrics={
            "alpha_nominal": _r(alpha),
            "alpha_ordinal": _r(alpha_ord),
            "pairwise_agreement": _r(a_o),
            "chance_agreement": _r(a_e),
            "multi_judged_items": votes.n_multi,
            "items": votes.n_items,
            "judgments_on_multi_judged_items": len(votes.item),
            "mean_judges_per_multi_judged_item": _r(float(m.mean()), 3),
            "disputed_items": int(disputed.sum()),
            "disputed_share": _r(float(disputed.mean())),
            "tie_share": _r(float(counts[:, 1].sum() / m.sum())),
            "self_pairs_left_out": votes.n_self,
        },
        tables=[table],
        plots=[plot],
        ids=votes.ids(disputed_rows),
    )


def _annotators(ctx: Context, votes: Votes, counts: np.ndarray) -> Finding:
    title = "Annotators far below the rest"
    if not (votes.annotator >= 0).any():
        return skipped(NAME, title, "judgments of multi-judged items have no annotator ids")
    min_items = ctx.param(NAME, "min_items", 20)
    s = annotator_stats(
        votes,
        counts,
        min_items=min_items,
        mad_k=ctx.param(NAME, "mad_k", 3.0),
        min_gap=ctx.param(NAME, "min_gap", 0.05),
        fdr=ctx.param(NAME, "fdr", 0.05),
    )
    ids = votes.annotator_ids
    n_eligible = int(s.eligible.sum())
    flagged = np.flatnonzero(s.flagged)
    known = votes.annotator >= 0
    flagged_rows = np.flatnonzero(known & s.flagged[np.maximum(votes.annotator, 0)])
    share = len(flagged_rows) / max(int(known.sum()), 1)
    if n_eligible < MIN_ANNOTATORS:
        severity = "info"
        verdict = (
            f"Only {n_eligible} annotators have >= {min_items} scored "
            "judgments; too few to tell who is far below the rest."
        )
    elif not len(flagged):
        severity = "ok"
        verdict = (
            f"No annotator is far below the rest: median agreement with the others' majority "
            f"is {s.median:.0%} over {n_eligible} annotators with enough items."
        )
    else:
        severity = "error" if share >= FLAGGED_ERROR_SHARE else "warning"
        verdict = (
            f"{len(flagged)} of {n_eligible} annotators agree with the others' majority far "
            f"less than the median {s.median:.0%} (below {s.threshold:.0%}); they wrote "
            f"{share:.1%} of the multi-judged judgments. Review or drop their labels."
        )
    cand = np.flatnonzero(s.eligible)
    order = cand[np.lexsort((s.rate[cand], ~s.flagged[cand]))][: ctx.options.top]
    table = Table(
        "Worst annotators",
        ["annotator_id", "judgments", "items", "scored", "agreement", "q-value", "flagged"],
        [
            [
                ids[i].as_py(),
                int(s.n[i]),
                int(s.items[i]),
                int(s.scored[i]),
                _r(s.rate[i], 3),
                float(f"{s.q_value[i]:.3g}") if np.isfinite(s.q_value[i]) else None,
                bool(s.flagged[i]),
            ]
            for i in order.tolist()
        ],
        note="Agreement = share of scored judgments that match the leave-one-out plurality "
        "of the other judges; q-value = Benjamini–Hochberg adjusted binomial p-value.",
    )
    plots = []
    if n_eligible:
        edges = np.linspace(0.0, 1.0, 21)
        plots.append(
            Plot(
                "hist",
                f"Agreement with the others' majority ({n_eligible} annotators with "
                f">= {min_items} scored judgments)",
                [round(float(e), 3) for e in edges],
                {
                    "annotators": np.histogram(s.rate[s.eligible], edges)[0].astype(float).tolist(),
                    **(
                        {
                            "flagged": np.histogram(s.rate[s.flagged], edges)[0]
                            .astype(float)
                            .tolist()
                        }
                        if len(flagged)
                        else {}
                    ),
                },
                xlabel="agreement with leave-one-out majority",
                ylabel="annotators",
            )
        )
    out_ids: dict[str, list[str]] = {}
    if len(flagged):
        out_ids["annotator_id"] = ids.take(pa.array(flagged)).to_pylist()
        out_ids.update(votes.ids(flagged_rows))
    return Finding(
        NAME,
        title,
        severity,
        verdict,
        metrics={
            "flagged_annotators": len(flagged),
            "flagged_judgment_share": _r(share),
            "annotators": len(ids),
            "eligible_annotators": n_eligible,
            "median_agreement": _r(s.median),
            "mad_agreement": _r(s.mad),
            "flag_threshold": _r(s.threshold),
            "unscored_tied_majority": s.tied_majority,
        },
        tables=[table],
        plots=plots,
        ids=out_ids,
    )


def run(ctx: Context) -> list[Finding]:
    votes = collect_votes(ctx, ctx.param(NAME, "rankings", True))
    if votes is None:
        return [skipped(NAME, TITLE, "no item (prompt and response pair) has two or more judges")]
    counts = votes.counts()
    return [_overall(ctx, votes, counts), _annotators(ctx, votes, counts)]


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="Krippendorff's alpha and pairwise agreement on multi-judged items; "
        "annotators far below the leave-one-out majority",
        run=run,
    )
)
