"""Length and position bias: does the longer answer, or the first-shown one, win?

**Length bias.** Human and AI judges prefer longer answers more often than quality
explains, and reward models trained on such labels learn verbosity (Singhal, Goyal, Xu and
Durrett, 2023, "A Long Way to Go: Investigating Length Correlations in RLHF"; Dubois et al.,
2024, "Length-Controlled AlpacaEval"). Following Singhal et al. we measure the share of
decisive comparisons (a winner, no tie) won by the longer response, overall and by how much
longer it is, and the accuracy of the length-only baselines "pick the longer" and "pick the
shorter" response.

* Length is counted in whitespace words (the headline) and in characters (reported beside
  it); both come from :meth:`Context.lengths`.
* Every pair with a winner counts: judgments (ties left out and their share reported),
  rankings (every pair from different tiers, as ``to_pairs(rankings="all")``) and scored
  responses (every pair of a prompt's responses with different ``score``, as
  ``to_pairs(scores="all")``). Each source of pairs gets its own finding.
* ``longer_wins`` = wins of the longer response / decisive pairs whose lengths differ, with
  a Wilson (1927) score interval. The baselines are scored on all decisive pairs: a pair
  of equal length counts as half right (the baseline must guess), ties are excluded.
* Buckets by the length ratio longer/shorter (words, shorter length floored at 1):
  [1, 1.1), [1.1, 1.25), [1.25, 1.5), [1.5, 2), [2, 3), [3, ∞). Fixed ratios read
  plainly ("30 % longer") and do not move with the data, unlike quantile buckets.

**Position bias.** The share of decisive judgments won by the response shown first (``a``),
with a Wilson interval (the order effect of Wang et al., 2023, "Large Language Models are
not Fair Evaluators"). Order is only meaningful when ``a`` is the response shown first:
when every decisive judgment is won by the same side, ``a``/``b`` encode the label rather
than the display order (a chosen/rejected file converted to judgments puts the chosen
answer in ``a``), and the finding is skipped with that reason. When responses have a
``source`` (arena battles) and the same model pairs appear in both orders, the
model-balanced share ``mean over model pairs of (P(a wins | X first) + P(a wins | Y
first)) / 2`` removes the models' strength from the estimate (it is ``0.5 + δ`` for a
constant order effect δ); it decides the severity when most judgments are in such pairs.
Per annotator (at least ``min_judgments`` decisive judgments) a two-sided exact binomial
test against 0.5 with a Bonferroni correction flags judges who favour one side.

Severity (``dev`` = rate − 0.5; only when the 95 % interval excludes 0.5):

* length: ok ``|dev| < 0.05``; info ``< 0.10``; warning ``< 0.25``; error ``≥ 0.25``
  (the longer, or the shorter, answer wins 75 % or more).
* position: ok ``|dev| < 0.03``; info ``< 0.07``; warning ``< 0.15``; error ``≥ 0.15``.
  Flagged annotators raise an otherwise ok finding to info.

``ids`` hold the rows that go the way of the bias (judgments/rankings/prompts won by the
longer — or shorter — response; judgments won by the favoured position and the flagged
annotators), empty when the severity is ok.

Parameters (``ctx.param("bias", key, default)``): ``score_key`` (``"score"``, or an
attribute name to rank scored responses by), ``min_judgments`` (20), ``alpha`` (0.05).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.registry import Check, register
from prefkit.engine import scalar
from prefkit.views import score_expr

NAME = "bias"
TITLE = "Length and position bias"
#: Edges of the length-ratio buckets (longer / shorter, in words).
RATIO_EDGES = (1.0, 1.1, 1.25, 1.5, 2.0, 3.0, math.inf)
#: Severity cut-offs on |rate - 0.5| for (info, warning, error).
LENGTH_LEVELS = (0.05, 0.10, 0.25)
POSITION_LEVELS = (0.03, 0.07, 0.15)
Z95 = 1.959963984540054
#: Most annotators drawn in the position funnel plot (the busiest ones).
MAX_FUNNEL = 2000


# --- statistics -------------------------------------------------------------------------------
def wilson(k: Any, n: Any, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``k`` successes in ``n`` trials (vectorised; NaN at n = 0)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        mid = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def binom_p(k: Any, n: Any) -> np.ndarray:
    """Two-sided exact binomial p-value against 0.5 (vectorised; symmetric, so twice the
    smaller tail)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    lo = np.minimum(k, n - k)
    return np.asarray(np.minimum(1.0, 2 * stats.binom.cdf(lo, n, 0.5)))


def _severity(rate: float, lo: float, hi: float, levels: tuple[float, float, float]) -> str:
    dev = abs(rate - 0.5)
    if not (lo > 0.5 or hi < 0.5) or dev < levels[0]:
        return "ok"
    return "info" if dev < levels[1] else "warning" if dev < levels[2] else "error"


def _bucket_key(i: int) -> str:
    """Metric-name prefix of bucket ``i``: ``ratio_1.5_2`` or ``ratio_3_inf``."""
    lo, hi = RATIO_EDGES[i], RATIO_EDGES[i + 1]
    return f"ratio_{lo:g}_{hi:g}"


def _bucket_mids() -> list[float]:
    # Geometric middle of each bucket; the open last bucket is drawn at 1.5× its edge.
    return [
        math.sqrt(lo * hi) if math.isfinite(hi) else lo * 1.5
        for lo, hi in itertools.pairwise(RATIO_EDGES)
    ]


# --- length bias --------------------------------------------------------------------------------
@dataclass
class Pairs:
    """Decisive pairs of one origin: winner and loser lengths, the row id of each pair."""

    origin: str  # "judgments" | "rankings" | "scores"
    id_kind: str
    ids: pa.Array | pa.ChunkedArray
    win_words: np.ndarray
    lose_words: np.ndarray
    win_chars: np.ndarray
    lose_chars: np.ndarray
    n_ties: int
    n_empty: int = 0  # decisive pairs left out because a side has no text


def length_stats(p: Pairs) -> dict[str, Any]:
    """The length-bias numbers of one set of pairs (see the module docstring)."""
    n = len(p.win_words)
    out: dict[str, Any] = {"n_decisive": n, "n_ties": p.n_ties, "n_empty": p.n_empty}
    for unit, w, lo_ in (
        ("words", p.win_words, p.lose_words),
        ("chars", p.win_chars, p.lose_chars),
    ):
        differ = w != lo_
        k = int(np.count_nonzero(w > lo_))
        m = int(np.count_nonzero(differ))
        ci = wilson(k, m)
        out[unit] = {
            "k": k,
            "m": m,
            "rate": k / m if m else math.nan,
            "lo": float(ci[0]),
            "hi": float(ci[1]),
            "pick_longer": (k + 0.5 * (n - m)) / n if n else math.nan,
            "pick_shorter": (m - k + 0.5 * (n - m)) / n if n else math.nan,
            "equal_share": (n - m) / n if n else math.nan,
        }
    # Buckets by word ratio.
    longer = np.maximum(p.win_words, p.lose_words)
    shorter = np.maximum(np.minimum(p.win_words, p.lose_words), 1)
    differ = p.win_words != p.lose_words
    ratio = longer[differ] / shorter[differ]
    won = (p.win_words > p.lose_words)[differ]
    idx = np.searchsorted(np.asarray(RATIO_EDGES[1:-1]), ratio, side="right")
    nb = len(RATIO_EDGES) - 1
    bn = np.bincount(idx, minlength=nb)
    bk = np.bincount(idx, weights=won, minlength=nb)
    blo, bhi = wilson(bk, bn)
    out["buckets"] = {"n": bn, "k": bk, "lo": blo, "hi": bhi}
    out["p_value"] = (
        float(binom_p(out["words"]["k"], out["words"]["m"])) if out["words"]["m"] else 1.0
    )
    return out


def _length_finding(p: Pairs, top: int, title: str) -> Finding:
    s = length_stats(p)
    w, c = s["words"], s["chars"]
    total = s["n_decisive"] + s["n_ties"]
    if not w["m"]:
        if s["n_decisive"]:
            why = f"no decisive pair from {p.origin} has responses of different lengths"
        elif s["n_empty"]:
            why = (
                f"every decisive pair from {p.origin} has a response without text "
                f"({s['n_empty']:,} pairs; image or missing answers?)"
            )
        else:
            why = f"no decisive pairs from {p.origin}"
        return skipped(NAME, title, why)
    severity = _severity(w["rate"], w["lo"], w["hi"], LENGTH_LEVELS)
    towards_longer = w["rate"] >= 0.5
    side = "longer" if towards_longer else "shorter"
    side_rate = w["rate"] if towards_longer else 1 - w["rate"]
    ci_txt = (
        f"{w['lo']:.0%}–{w['hi']:.0%}" if towards_longer else f"{1 - w['hi']:.0%}–{1 - w['lo']:.0%}"
    )
    acc = w["pick_longer"] if towards_longer else w["pick_shorter"]
    if severity == "ok":
        verdict = (
            f"Length barely predicts the winner: the longer response wins {w['rate']:.1%} of "
            f"{w['m']:,} decisive pairs from {p.origin} (95% CI {w['lo']:.1%}–{w['hi']:.1%}), "
            "so a reward model has little length shortcut to learn."
        )
    else:
        habit = "verbosity" if towards_longer else "brevity"
        verdict = (
            f"The {side} response wins {side_rate:.0%} of {w['m']:,} decisive pairs from {p.origin} "
            f"(95% CI {ci_txt}); picking the {side} answer alone is {acc:.0%} accurate, so a "
            f"reward model or DPO policy trained on this will learn to reward {habit}."
        )
    b = s["buckets"]
    with np.errstate(invalid="ignore", divide="ignore"):
        brate = b["k"] / b["n"]
    filled = np.flatnonzero(b["n"] > 0)
    mids = _bucket_mids()
    plot = Plot(
        kind="line",
        title=f"Win rate of the longer response by length ratio ({p.origin})",
        x=[mids[i] for i in filled],
        series={
            "longer wins (words)": [float(brate[i]) for i in filled],
            "95% CI low": [float(b["lo"][i]) for i in filled],
            "95% CI high": [float(b["hi"][i]) for i in filled],
        },
        xlabel="length ratio longer/shorter (words; bucket middle)",
        ylabel="share won by the longer response",
        reference=0.5,
    )
    tables: list[Table] = []
    # Worst offenders: the pairs won by the favoured side with the largest length ratio.
    fav = (p.win_words > p.lose_words) if towards_longer else (p.win_words < p.lose_words)
    ratio_all = np.maximum(p.win_words, p.lose_words) / np.maximum(
        np.minimum(p.win_words, p.lose_words), 1
    )
    cand = np.flatnonzero(fav)
    if len(cand):
        k = min(top, len(cand))
        pick = cand[np.argpartition(-ratio_all[cand], k - 1)[:k]]
        pick = pick[np.argsort(-ratio_all[pick], kind="stable")]
        ids_pick = p.ids.take(pa.array(pick)).to_pylist()
        tables.append(
            Table(
                title=f"Largest length gaps won by the {side} response",
                columns=[p.id_kind, "winner words", "loser words", "ratio"],
                rows=[
                    [i, int(p.win_words[j]), int(p.lose_words[j]), round(float(ratio_all[j]), 2)]
                    for i, j in zip(ids_pick, pick, strict=True)
                ],
            )
        )
    ids: dict[str, list[str]] = {}
    if severity != "ok":
        kept = pc.filter(p.ids, pa.array(fav))
        ids[p.id_kind] = (
            kept.to_pylist() if p.id_kind == "judgment_id" else pc.unique(kept).to_pylist()
        )
    metrics = {
        "longer_wins": w["rate"],
        "longer_wins_ci_low": w["lo"],
        "longer_wins_ci_high": w["hi"],
        "pick_longer_accuracy": w["pick_longer"],
        "pick_shorter_accuracy": w["pick_shorter"],
        "p_value": s["p_value"],
        "decisive_pairs": s["n_decisive"],
        "pairs_length_differs": w["m"],
        "equal_length_share": w["equal_share"],
        "tie_share": s["n_ties"] / total if total else 0.0,
        "ties": s["n_ties"],
        "pairs_without_text": s["n_empty"],
        "longer_wins_chars": c["rate"],
        "longer_wins_chars_ci_low": c["lo"],
        "longer_wins_chars_ci_high": c["hi"],
        "pick_longer_accuracy_chars": c["pick_longer"],
        "winner_mean_words": float(p.win_words.mean()) if len(p.win_words) else math.nan,
        "loser_mean_words": float(p.lose_words.mean()) if len(p.lose_words) else math.nan,
    }
    # Per length-ratio bucket (words): pairs and longer-wins rate with its interval.
    for i in range(len(RATIO_EDGES) - 1):
        key = _bucket_key(i)
        metrics[f"{key}_pairs"] = int(b["n"][i])
        metrics[f"{key}_longer_wins"] = float(brate[i])
        metrics[f"{key}_ci_low"] = float(b["lo"][i])
        metrics[f"{key}_ci_high"] = float(b["hi"][i])
    return Finding(NAME, title, severity, verdict, metrics, tables, [plot], ids)


def _np(col: pa.ChunkedArray | pa.Array, fill: int = -1) -> np.ndarray:
    return np.asarray(pc.fill_null(col, fill).to_numpy(zero_copy_only=False))


def _judgment_pairs(ctx: Context) -> Pairs:
    f = ctx.judgment_frame()
    outcome = _np(f.column("outcome"), 0).astype(np.int8)
    aw, bw = _np(f.column("a_words")), _np(f.column("b_words"))
    ac, bc = _np(f.column("a_chars")), _np(f.column("b_chars"))
    # A side without text (missing answer, image response) says nothing about length.
    known = (ac > 0) & (bc > 0)
    dec = (outcome != 0) & known
    a_won = outcome[dec] > 0
    return Pairs(
        origin="judgments",
        id_kind="judgment_id",
        ids=pc.filter(f.column("judgment_id"), pa.array(dec)),
        win_words=np.where(a_won, aw[dec], bw[dec]),
        lose_words=np.where(a_won, bw[dec], aw[dec]),
        win_chars=np.where(a_won, ac[dec], bc[dec]),
        lose_chars=np.where(a_won, bc[dec], ac[dec]),
        n_ties=int(np.count_nonzero((outcome == 0) & known)),
        n_empty=int(np.count_nonzero((outcome != 0) & ~known)),
    )


def _tiered_pairs(ctx: Context, origin: str, tiers_sql: str, id_kind: str) -> Pairs:
    """Pairs from ``(group_id, response_id, tier)`` rows (tier 1 = best); same-tier pairs
    are ties."""
    con = ctx.con
    con.register("_bias_len", ctx.lengths("responses"))
    q = f"""WITH t AS ({tiers_sql}),
            l AS (SELECT t.group_id, t.tier, n.n_words, n.n_chars
                  FROM t JOIN _bias_len n ON n.id = t.response_id)
            SELECT x.group_id AS id, x.n_words AS ww, y.n_words AS lw,
                   x.n_chars AS wc, y.n_chars AS lc
            FROM l x JOIN l y ON x.group_id = y.group_id AND x.tier < y.tier"""
    tab = con.sql(q).to_arrow_table()
    n_ties = scalar(
        con,
        f"""WITH t AS ({tiers_sql}),
            l AS (SELECT t.group_id, t.tier FROM t JOIN _bias_len n ON n.id = t.response_id
                  WHERE n.n_chars > 0),
            c AS (SELECT count(*) AS k FROM l GROUP BY group_id, tier)
            SELECT coalesce(sum(k * (k - 1) // 2), 0) FROM c""",
    )
    wc, lc = _np(tab.column("wc")), _np(tab.column("lc"))
    known = (wc > 0) & (lc > 0)
    return Pairs(
        origin=origin,
        id_kind=id_kind,
        ids=pc.filter(tab.column("id"), pa.array(known)),
        win_words=_np(tab.column("ww"))[known],
        lose_words=_np(tab.column("lw"))[known],
        win_chars=wc[known],
        lose_chars=lc[known],
        n_ties=int(n_ties),
        n_empty=int(np.count_nonzero(~known)),
    )


def _ranking_tiers() -> str:
    return """SELECT ranking_id AS group_id, unnest(ids) AS response_id, tier
              FROM (SELECT ranking_id, unnest(tiers) AS ids,
                           generate_subscripts(tiers, 1) AS tier FROM _rankings)"""


def _score_tiers(score_key: str) -> str:
    # views.score_tiers needs the ordered relation (__ord); here the plain one suffices.
    expr = score_expr(score_key)
    return f"""SELECT prompt_id AS group_id, response_id,
                      dense_rank() OVER (PARTITION BY prompt_id ORDER BY s DESC) AS tier
               FROM (SELECT prompt_id, response_id, {expr} AS s FROM _responses)
               WHERE s IS NOT NULL"""


# --- position bias ------------------------------------------------------------------------------
def _balanced(ctx: Context) -> dict[str, float] | None:
    """Model-balanced a-win share over source pairs judged in both orders (None if none)."""
    con = ctx.con
    if not scalar(con, "SELECT count(source) FROM _responses"):
        return None
    rows = con.sql(
        """SELECT ra.source AS sa, rb.source AS sb, count(*) AS n,
                  count(*) FILTER (j.outcome > 0) AS na
           FROM _judgments j JOIN _responses ra ON ra.response_id = j.a
                             JOIN _responses rb ON rb.response_id = j.b
           WHERE j.outcome <> 0 AND ra.source IS NOT NULL AND rb.source IS NOT NULL
                 AND ra.source <> rb.source
           GROUP BY ALL"""
    ).fetchall()
    cells = {(sa, sb): (n, na) for sa, sb, n, na in rows}
    total = sum(n for n, _ in cells.values())
    if not total:
        return None
    est, var, wsum, covered = 0.0, 0.0, 0.0, 0
    for (sa, sb), (n1, k1) in cells.items():
        if sa > sb or (sb, sa) not in cells:
            continue
        n2, k2 = cells[(sb, sa)]
        p1, p2 = k1 / n1, k2 / n2
        w = n1 * n2 / (n1 + n2)
        est += w * (p1 + p2) / 2
        var += w * w * (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2) / 4
        wsum += w
        covered += n1 + n2
    if not wsum:
        return {"coverage": 0.0, "model_pairs_judged": float(len(cells))}
    share = est / wsum
    se = math.sqrt(var) / wsum
    return {
        "share": share,
        "lo": share - Z95 * se,
        "hi": share + Z95 * se,
        "coverage": covered / total,
        "model_pairs_judged": float(len(cells)),
    }


def _position_finding(ctx: Context) -> Finding:
    title = "Position bias"
    f = ctx.judgment_frame()
    outcome = _np(f.column("outcome"), 0)
    dec = outcome != 0
    n = int(np.count_nonzero(dec))
    if not n:
        return skipped(NAME, title, "no decisive judgments (all ties)")
    k = int(np.count_nonzero(outcome > 0))
    if n >= 10 and k in (0, n):
        side = "a" if k == n else "b"
        return skipped(
            NAME,
            title,
            f"order not meaningful: {side} is always the chosen response (format artifact); "
            f"all {n:,} decisive judgments are won by {side}",
        )
    share = k / n
    lo, hi = (float(v) for v in wilson(k, n))
    metrics: dict[str, Any] = {
        "a_wins": share,
        "a_wins_ci_low": lo,
        "a_wins_ci_high": hi,
        "p_value": float(binom_p(k, n)),
        "decisive_judgments": n,
        "ties": int(np.count_nonzero(~dec)),
    }
    basis, sev_share, sev_lo, sev_hi = "raw", share, lo, hi
    bal = _balanced(ctx)
    confounded = False
    if bal is not None:
        metrics["model_pairs_both_orders_coverage"] = bal["coverage"]
        if "share" in bal:
            metrics["a_wins_model_balanced"] = bal["share"]
            metrics["a_wins_model_balanced_ci_low"] = bal["lo"]
            metrics["a_wins_model_balanced_ci_high"] = bal["hi"]
        if bal["coverage"] >= 0.5 and "share" in bal:
            basis, sev_share, sev_lo, sev_hi = "balanced", bal["share"], bal["lo"], bal["hi"]
        else:
            confounded = True
    severity = _severity(sev_share, sev_lo, sev_hi, POSITION_LEVELS)
    if confounded and severity in ("warning", "error"):
        severity = "info"  # model strength and display order cannot be told apart
    # Per annotator.
    min_n = ctx.param(NAME, "min_judgments", 20)
    alpha = ctx.param(NAME, "alpha", 0.05)
    rows = ctx.con.sql(
        """SELECT annotator_id, count(*) AS n, count(*) FILTER (outcome > 0) AS na
           FROM _judgments WHERE outcome <> 0 AND annotator_id IS NOT NULL
           GROUP BY annotator_id"""
    ).to_arrow_table()
    tables: list[Table] = []
    plots: list[Plot] = []
    flagged: list[str] = []
    if rows.num_rows:
        an = _np(rows.column("n"), 0)
        ak = _np(rows.column("na"), 0)
        big = np.flatnonzero(an >= min_n)
        if len(big):
            aid = rows.column("annotator_id").take(pa.array(big)).to_pylist()
            an, ak = an[big], ak[big]
            pv = binom_p(ak, an)
            bad = pv < alpha / len(big)
            flagged = [a for a, b in zip(aid, bad, strict=True) if b]
            rate = ak / an
            alo, ahi = wilson(ak, an)
            order = np.lexsort((np.asarray(aid, dtype=object).astype(str), -np.abs(rate - 0.5)))
            order = order[: ctx.options.top]
            tables.append(
                Table(
                    title="Annotators furthest from 50% a-wins",
                    columns=[
                        "annotator_id",
                        "decisive",
                        "a wins",
                        "95% CI low",
                        "95% CI high",
                        "p (Bonferroni-flagged *)",
                    ],
                    rows=[
                        [
                            aid[i],
                            int(an[i]),
                            round(float(rate[i]), 4),
                            round(float(alo[i]), 4),
                            round(float(ahi[i]), 4),
                            f"{pv[i]:.2g}{' *' if bad[i] else ''}",
                        ]
                        for i in order
                    ],
                    note=f"Annotators with at least {min_n} decisive judgments; * = two-sided "
                    f"binomial p < {alpha:g} / {len(big)} (Bonferroni).",
                )
            )
            # Funnel plot: a-share against judgments per annotator, with the range an
            # unbiased judge stays in 95% of the time (normal approximation).
            busiest = np.argsort(-an, kind="stable")[:MAX_FUNNEL]
            busiest = busiest[np.argsort(an[busiest], kind="stable")]
            half = Z95 * np.sqrt(0.25 / an[busiest])
            plots.append(
                Plot(
                    kind="scatter",
                    title="Share won by a per annotator (funnel)",
                    x=[int(v) for v in an[busiest]],
                    series={
                        "annotator": [float(v) for v in rate[busiest]],
                        "unbiased 95% low": [float(v) for v in 0.5 - half],
                        "unbiased 95% high": [float(v) for v in 0.5 + half],
                    },
                    xlabel="decisive judgments by the annotator",
                    ylabel="share won by a",
                    reference=0.5,
                )
            )
            metrics["annotators_tested"] = len(big)
            metrics["annotators_flagged"] = len(flagged)
    overall = severity
    if severity == "ok" and flagged:
        severity = "info"
    if basis == "balanced":
        head = (
            f"Balanced over models shown in both orders, the first-shown response wins "
            f"{sev_share:.1%} (95% CI {sev_lo:.1%}–{sev_hi:.1%}; raw {share:.1%} of {n:,})"
        )
    else:
        head = f"Response a wins {share:.1%} of {n:,} decisive judgments (95% CI {lo:.1%}–{hi:.1%})"
    if overall == "ok":
        verdict = head + ": no sign that display order sways the judges overall."
    elif confounded:
        verdict = (
            head + "; but a/b order is tied to which model answered, so model strength and "
            "position cannot be separated."
        )
    else:
        fav = "first" if sev_share > 0.5 else "second"
        verdict = (
            head + f": judges favour the {fav}-shown answer, noise a reward model learns as "
            "signal unless each pair is also shown in the other order."
        )
    if flagged:
        verdict += (
            f" {len(flagged)} annotator(s) favour one side significantly (Bonferroni-corrected)."
        )
    ids: dict[str, list[str]] = {}
    if overall != "ok" and not confounded:
        won = outcome > 0 if sev_share > 0.5 else outcome < 0
        ids["judgment_id"] = pc.filter(f.column("judgment_id"), pa.array(won)).to_pylist()
    if flagged:
        ids["annotator_id"] = flagged
    return Finding(NAME, title, severity, verdict, metrics, tables, plots, ids)


# --- entry point ------------------------------------------------------------------------------
def run(ctx: Context) -> list[Finding]:
    has_j = ctx.count("judgments") > 0
    has_r = ctx.count("rankings") > 0
    score_key = ctx.param(NAME, "score_key", "score")
    has_s = False
    if ctx.count("responses"):
        has_s = bool(scalar(ctx.con, f"SELECT count(*) FROM ({_score_tiers(score_key)})"))
    if not (has_j or has_r or has_s):
        return [skipped(NAME, TITLE, "no judgments, rankings or scored responses to compare")]
    sources: list[Pairs] = []
    if has_j:
        sources.append(_judgment_pairs(ctx))
    if has_r:
        sources.append(_tiered_pairs(ctx, "rankings", _ranking_tiers(), "ranking_id"))
    if has_s:
        sources.append(_tiered_pairs(ctx, "scores", _score_tiers(score_key), "prompt_id"))
    findings = []
    for p in sources:
        title = "Length bias" if len(sources) == 1 else f"Length bias ({p.origin})"
        findings.append(_length_finding(p, ctx.options.top, title))
    if has_j:
        findings.append(_position_finding(ctx))
    return findings


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="how often the longer (or first-shown) response wins, with length-only baselines",
        run=run,
    )
)

__all__ = ["RATIO_EDGES", "binom_p", "length_stats", "run", "wilson"]
