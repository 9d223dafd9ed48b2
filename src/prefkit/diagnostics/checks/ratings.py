"""Ratings: how responses' scores and aspect ratings are distributed, how the aspects
correlate, and overall scores that contradict their aspect ratings.

What it detects
    Responses may carry an overall ``score`` and named aspect ratings (``attributes``),
    the multi-attribute setup of HelpSteer (Wang et al. 2023, "HelpSteer: Multi-attribute
    Helpfulness Dataset for SteerLM") and of UltraFeedback, whose fine-grained aspect
    ratings sit beside a separate overall score (Cui et al. 2023, "UltraFeedback:
    Boosting Language Models with High-quality Feedback"). Preference pairs are often
    binarized from these ratings, so a score that contradicts its aspects becomes a
    wrong label.

    1. *Distribution* of the score and of each aspect: count, share missing, mean, std,
       min, quantiles, max, a bar/histogram plot.
    2. *Correlation* between every two of them: Pearson and Spearman (``scipy.stats``),
       on the responses that have both (pairwise deletion). Near-1 correlations mean
       redundant aspects; a negative correlation with the overall score is suspicious.
    3. *Inconsistencies*, two complementary definitions:

       * **Residual outliers.** Ordinary least squares of the overall score on the aspects
         (with intercept) over responses with all of them; a response whose residual is
         beyond ``residual_k`` robust standard deviations (1.4826 × MAD, Rousseeuw and
         Croux 1993, "Alternatives to the Median Absolute Deviation") is flagged. The fit
         is repeated without the flagged rows until they no longer change, and the robust
         SD is floored at one step of the score's scale (on discrete ratings the MAD
         collapses). It needs no sibling response and catches a score off either way.
       * **Dominance violations.** Two responses to the same prompt where one rates at
         least as high on every aspect and strictly higher on one, yet gets a lower
         overall score (by more than ``dominance_gap``). This is assumption-free (only
         "higher aspect = better"), but needs a comparable sibling and flags a pair; the
         response blamed (listed in the ids) is the one whose overall score is further
         from what its aspects predict (both when the regression cannot be fitted).

Overall score
    ``score`` when any response has one; otherwise, with ``overall="auto"``, an attribute
    named ``overall``, ``overall_score``, ``overall_quality`` or ``quality`` (the NLG
    ratings of Novikova et al. 2017 rate informativeness, naturalness and overall quality)
    plays that role and the remaining attributes are the aspects.

Deviations
    Dominance assumes every aspect is "higher is better"; aspects that are not (HelpSteer's
    verbosity, complexity) should be left out with ``aspects=...``.

Parameters (``ctx.param("ratings", key, default)``)
    ``overall`` ("auto"): ``auto``, ``none`` (no inconsistency check) or an attribute name.
    ``aspects`` (""): comma-separated aspect names to use; empty = every attribute.
    ``residual_k`` (3.0): robust standard deviations beyond which a residual is flagged.
    ``dominance_gap`` (0.0): how much lower the dominating response's score must be.
    ``max_group`` (100): prompts with more rated responses are left out of the
    (quadratic) dominance check and counted.
    ``max_attributes`` (20): most frequent attributes analysed.
    ``warn_share`` (0.05), ``error_share`` (0.15): severity on the share of flagged
    responses (below 0.01 is ``ok``, else ``info``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.registry import Check, register
from prefkit.engine import row
from prefkit.errors import PrefkitError

NAME = "ratings"
TITLE = "Ratings"
OVERALL_NAMES = ("overall", "overall_score", "overall_quality", "quality")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Rousseeuw & Croux's consistency constant: 1.4826 × MAD estimates a normal std.
MAD_TO_SD = 1.4826
#: Distinct values up to which a rating is drawn as a bar per value rather than a histogram.
MAX_LEVELS = 30
HIST_BINS = 20
OK_SHARE = 0.01
MAX_CORRELATION_BARS = 45
#: A score that is there: not null and not NaN (a NaN from pandas means missing).
HAS_SCORE = "score IS NOT NULL AND NOT isnan(score)"
#: More distinct values than this make a score continuous (no scale step).
MAX_STEP_LEVELS = 100


# --- helpers ------------------------------------------------------------------------------
@dataclass
class Ratings:
    """Rated responses as columns: ``values[:, 0]`` is the overall score (NaN when there is
    none), ``values[:, 1:]`` the aspects, NaN where missing. Row ``i`` is row ``i`` of the
    DuckDB table ``_ratings_vals`` (which holds the ids; see :func:`_ids_of`)."""

    values: np.ndarray  # (R, 1 + K)
    overall: str | None  # where the overall score comes from, None when there is none
    aspects: list[str]
    dropped: list[str]  # attributes beyond max_attributes
    copies: list[str]  # attributes equal to the score wherever both exist (left out)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _load(ctx: Context) -> Ratings | None:
    """Fetch the rated responses; None when no response has a score or an attribute."""
    con = ctx.con
    n_score, n_attr = row(
        con,
        f"SELECT count(*) FILTER ({HAS_SCORE}), count(*) FILTER (cardinality(attributes) > 0) "
        "FROM _responses",
    )
    if not n_score and not n_attr:
        return None
    names = [
        str(k)
        for k, _ in con.execute(
            """SELECT k, count(*) AS n FROM (SELECT unnest(map_keys(attributes)) AS k
               FROM _responses WHERE cardinality(attributes) > 0) GROUP BY k ORDER BY n DESC, k"""
        ).fetchall()
    ]
    keep = ctx.param(NAME, "max_attributes", 20)
    names, dropped = names[:keep], names[keep:]
    chosen = [a.strip() for a in ctx.param(NAME, "aspects", "").split(",") if a.strip()]
    unknown = [a for a in chosen if a not in names]
    if unknown:
        raise PrefkitError(f"ratings: aspects {unknown} not among the attributes {names}")
    want = ctx.param(NAME, "overall", "auto")
    overall: str | None = None
    if n_score and want in ("auto", "score"):
        overall = "score"
    elif want == "auto":
        overall = next((a for a in names if a.lower() in OVERALL_NAMES and a not in chosen), None)
    elif want not in ("none", "score"):
        if want not in names:
            raise PrefkitError(f"ratings: overall {want!r} is not an attribute ({names})")
        overall = want
    aspects = chosen or [a for a in names if a != overall]
    # Column 0: the overall score; the plain score (maybe all null) when there is none.
    first = "score" if overall in (None, "score") else f"attributes[{_quote(overall)}]"
    cols = ", ".join(
        f"nullif(({e})::DOUBLE, 'NaN'::DOUBLE) AS v{i}"  # NaN = missing, as NULL
        for i, e in enumerate([first, *(f"attributes[{_quote(a)}]" for a in aspects)])
    )
    ctx.con.sql(
        f"""CREATE OR REPLACE TEMP TABLE _ratings_vals AS
            SELECT (row_number() OVER () - 1)::BIGINT AS row, response_id, prompt_id, {cols}
            FROM _responses WHERE {HAS_SCORE} OR cardinality(attributes) > 0"""
    )
    # Only the numbers come to Python; ids stay in DuckDB until a row is reported.
    v_cols = ", ".join(f"v{i}" for i in range(len(aspects) + 1))
    t = ctx.con.sql(f"SELECT row, {v_cols} FROM _ratings_vals").to_arrow_table()
    values = np.empty((t.num_rows, len(aspects) + 1))  # (R, 1 + K)
    at = t.column("row").to_numpy()
    for i in range(len(aspects) + 1):
        values[at, i] = t.column(f"v{i}").to_numpy(zero_copy_only=False)
    del t
    values += 0.0  # -0.0 (e.g. a clipped rating) prints as 0
    # An attribute that repeats the score (a loader may keep both) is not an aspect of it.
    both = ~np.isnan(values[:, :1]) & ~np.isnan(values[:, 1:])  # (R, K)
    same = (both.any(axis=0) & ((values[:, 1:] == values[:, :1]) | ~both).all(axis=0)).tolist()
    if overall == "score" and not chosen and any(same):
        copies = [a for a, dup in zip(aspects, same, strict=True) if dup]
        values = values[:, [0] + [k + 1 for k, dup in enumerate(same) if not dup]]
        aspects = [a for a, dup in zip(aspects, same, strict=True) if not dup]
    else:
        copies = []
    return Ratings(values, overall, aspects, dropped, copies)


def _ids_of(ctx: Context, rows: np.ndarray) -> tuple[list[str], list[str]]:
    """``(response_ids, prompt_ids)`` of rows of :class:`Ratings`, in the order given."""
    ctx.con.register(
        "_ratings_rows",
        pa.table({"row": pa.array(rows, pa.int64()), "k": pa.array(np.arange(len(rows)))}),
    )
    t = ctx.con.sql(
        """SELECT v.response_id, v.prompt_id FROM _ratings_rows r
           JOIN _ratings_vals v USING (row) ORDER BY r.k"""
    ).to_arrow_table()
    ctx.con.unregister("_ratings_rows")
    return t.column(0).to_pylist(), t.column(1).to_pylist()


def _label(x: float) -> str:
    return f"{x + 0.0:g}"  # + 0.0 turns -0.0 into 0.0


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def describe(x: np.ndarray) -> dict[str, float]:
    """Count, share missing, mean, std, min, quantiles, max and distinct values (NaN = missing)."""
    ok = x[~np.isnan(x)]
    out = {"n": float(len(ok)), "missing_share": 1 - len(ok) / len(x) if len(x) else 0.0}
    if len(ok):
        q = np.quantile(ok, QUANTILES)
        out["mean"] = float(ok.mean())
        out["std"] = float(ok.std(ddof=1)) if len(ok) > 1 else 0.0
        out["min"] = float(ok.min())
        out.update({f"p{round(p * 100)}": float(v) for p, v in zip(QUANTILES, q, strict=True)})
        out["max"] = float(ok.max())
        out["distinct"] = float(len(np.unique(ok)))
    return out


def _distribution_plot(title: str, cols: dict[str, np.ndarray]) -> Plot | None:
    """One bar per rating value (few distinct values) or a shared-bin histogram."""
    cols = {k: x[~np.isnan(x)] for k, x in cols.items()}
    cols = {k: x for k, x in cols.items() if len(x)}
    if not cols:
        return None
    levels = np.unique(np.concatenate(list(cols.values())))
    if len(levels) <= MAX_LEVELS:
        series = {
            k: (np.bincount(np.searchsorted(levels, x), minlength=len(levels)) / len(x)).tolist()
            for k, x in cols.items()
        }
        return Plot("bar", title, [_label(v) for v in levels], series, "rating", "share")
    edges = np.linspace(float(levels[0]), float(levels[-1]), HIST_BINS + 1)
    series = {k: np.histogram(x, edges)[0].astype(float).tolist() for k, x in cols.items()}
    return Plot("hist", title, edges.tolist(), series, "rating", "responses")


@dataclass
class Correlation:
    a: str
    b: str
    pearson: float | None
    spearman: float | None
    n: int


def correlations(values: np.ndarray, names: list[str]) -> list[Correlation]:
    """Pearson and Spearman between every two columns (NaN = missing, pairwise deletion);
    None where fewer than 3 responses have both or one is constant."""
    present = ~np.isnan(values)
    ranks: dict[int, np.ndarray] = {}
    out = []
    for i in range(values.shape[1]):
        for j in range(i + 1, values.shape[1]):
            m = present[:, i] & present[:, j]
            x, y = values[m, i], values[m, j]
            if len(x) < 3 or x.min() == x.max() or y.min() == y.max():
                out.append(Correlation(names[i], names[j], None, None, len(x)))
                continue
            pearson = float(stats.pearsonr(x, y).statistic)
            if len(x) == present[:, i].sum() == present[:, j].sum():
                # Neither column misses a value the other has: rank each column once.
                for c in (i, j):
                    if c not in ranks:
                        ranks[c] = stats.rankdata(values[present[:, c], c])
                spearman = float(stats.pearsonr(ranks[i], ranks[j]).statistic)
            else:
                spearman = float(stats.spearmanr(x, y).statistic)
            out.append(Correlation(names[i], names[j], pearson, spearman, len(x)))
    return out


def _severity(ctx: Context, share: float) -> str:
    if share >= ctx.param(NAME, "error_share", 0.15):
        return "error"
    if share >= ctx.param(NAME, "warn_share", 0.05):
        return "warning"
    return "info" if share >= OK_SHARE else "ok"


def _aspect_text(r: Ratings, i: int) -> str:
    """``name=value, ...`` of row ``i``'s aspects."""
    return ", ".join(
        f"{a}={_label(r.values[i, k + 1])}"
        for k, a in enumerate(r.aspects)
        if not np.isnan(r.values[i, k + 1])
    )


# --- distribution and correlation ---------------------------------------------------------
DESCRIBE_COLUMNS = {
    "n": "n", "missing_share": "missing", "mean": "mean", "std": "std", "min": "min",
    "p5": "p5", "p25": "p25", "p50": "median", "p75": "p75", "p95": "p95", "max": "max",
}  # fmt: skip


def _distribution(ctx: Context, r: Ratings) -> Finding:
    score = r.overall or ("score" if not np.isnan(r.values[:, 0]).all() else None)
    names, cols = list(r.aspects), list(range(1, len(r.aspects) + 1))
    if score:
        names, cols = [score, *names], [0, *cols]
    desc = {n: describe(r.values[:, c]) for n, c in zip(names, cols, strict=True)}
    corr = correlations(r.values[:, cols], names)
    metrics: dict[str, float | None] = {
        "rated_responses": len(r.values),
        "aspects": len(r.aspects),
    }
    for n, d in desc.items():
        metrics.update({f"{n}.{k}": d.get(k) for k in ("mean", "std", "missing_share")})
    for c in corr:
        metrics[f"pearson.{c.a}~{c.b}"] = c.pearson
        metrics[f"spearman.{c.a}~{c.b}"] = c.spearman
    if r.dropped:
        metrics["attributes_not_analysed"] = len(r.dropped)
    if r.copies:
        metrics["attributes_equal_to_score"] = len(r.copies)
    rows = [
        [n, int(d["n"]), *(_round(d.get(k)) for k in list(DESCRIBE_COLUMNS)[1:])]
        for n, d in desc.items()
    ]
    tables = [Table("Distribution of each rating", ["rating", *DESCRIBE_COLUMNS.values()], rows)]
    strongest = sorted(corr, key=lambda c: -abs(c.spearman) if c.spearman is not None else 1.0)
    if corr:
        tables.append(
            Table(
                "Correlation between ratings (strongest first)",
                ["rating", "rating", "pearson", "spearman", "n"],
                [
                    [c.a, c.b, _round(c.pearson), _round(c.spearman), c.n]
                    for c in strongest[: ctx.options.top]
                ],
                note="Pairwise deletion: each pair over the responses rated on both.",
            )
        )
    plots = [
        p
        for p in (
            _distribution_plot(
                "Aspect ratings", {a: r.values[:, k + 1] for k, a in enumerate(r.aspects)}
            ),
            _distribution_plot(f"Overall score ({score})", {score: r.values[:, 0]})
            if score
            else None,
        )
        if p is not None
    ]
    if corr:
        shown = corr[:MAX_CORRELATION_BARS]
        nan = float("nan")
        plots.append(
            Plot(
                "bar",
                "Correlation between ratings",
                [f"{c.a} ~ {c.b}" for c in shown],
                {
                    "pearson": [nan if c.pearson is None else c.pearson for c in shown],
                    "spearman": [nan if c.spearman is None else c.spearman for c in shown],
                },
                ylabel="correlation",
            )
        )
    flat = [n for n, d in desc.items() if d.get("std") == 0]
    sparse = [n for n, d in desc.items() if d["missing_share"] >= 0.5]
    redundant = [f"{c.a} ~ {c.b}" for c in corr if c.spearman is not None and c.spearman >= 0.95]
    head = f"{len(r.values):,} rated responses"
    if r.aspects:
        head += f", {len(r.aspects)} aspect rating(s)"
    if score:
        head += f" and an overall score ({score})"
    if r.copies:
        head += f" ({', '.join(r.copies)} repeats the score and is left out)"
    parts = [head]
    spearman = [c.spearman for c in corr if c.spearman is not None]
    if spearman:
        parts.append(f"Spearman ρ between ratings from {min(spearman):.2f} to {max(spearman):.2f}")
    if redundant:
        parts.append(f"near-redundant (ρ ≥ 0.95): {', '.join(redundant)}")
    if flat:
        parts.append(f"constant, so useless as a training signal: {', '.join(flat)}")
    if sparse:
        parts.append(f"missing for half or more of the rated responses: {', '.join(sparse)}")
    return Finding(
        NAME,
        f"{TITLE}: distribution and correlation",
        "warning" if flat or sparse else "info",
        "; ".join(parts) + ".",
        metrics,
        tables,
        plots,
        {},
    )


# --- inconsistencies ----------------------------------------------------------------------
@dataclass
class Residuals:
    rows: np.ndarray  # (M,) rows of Ratings used
    predicted: np.ndarray  # (M,)
    z: np.ndarray  # (M,) residual / robust sd
    coef: np.ndarray  # (1 + K,) intercept first
    r2: float
    sd: float


def scale_step(x: np.ndarray) -> float:
    """Resolution of a rating scale: the smallest gap between distinct observed values
    (0 for a continuous score, i.e. more than ``MAX_STEP_LEVELS`` distinct values)."""
    levels = np.unique(x[~np.isnan(x)])
    if len(levels) < 2 or len(levels) > MAX_STEP_LEVELS:
        return 0.0
    return float(np.diff(levels).min())


def residual_outliers(values: np.ndarray, k: float = 3.0, max_iter: int = 10) -> Residuals | None:
    """Least squares of column 0 on the other columns (rows with all present), robust z.

    The fit is refitted without the rows beyond ``k`` robust SDs until the flagged set no
    longer changes (iterative outlier rejection), so a large share of wrong scores does
    not drag the fit towards them. The robust SD is 1.4826 × MAD of all residuals,
    floored at one step of the overall score's scale: on a discrete scale the residuals
    cluster on multiples of the step and the MAD collapses (half of them may be ~0),
    while a one-step residual is ordinary rating noise.
    """
    rows = np.flatnonzero(~np.isnan(values).any(axis=1))
    n_aspects = values.shape[1] - 1
    if len(rows) < n_aspects + 10:
        return None
    y = values[rows, 0]
    x = np.column_stack([np.ones(len(rows)), values[rows, 1:]])  # (M, 1 + K)
    floor = max(scale_step(y), 1e-3 * float(y.std()), 1e-9)
    inlier = np.ones(len(rows), bool)
    for _ in range(max_iter):
        coef, *_ = np.linalg.lstsq(x[inlier], y[inlier], rcond=None)
        resid = y - x @ coef
        sd = max(MAD_TO_SD * float(np.median(np.abs(resid - np.median(resid)))), floor)
        keep = np.abs(resid) <= k * sd
        if np.array_equal(keep, inlier) or keep.sum() < n_aspects + 10:
            break
        inlier = keep
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((resid**2).sum()) / total if total else float("nan")
    return Residuals(rows, x @ coef, resid / sd, coef, r2, sd)


def _dominance(ctx: Context, k: int) -> tuple[pa.Table, int, int]:
    """Dominance violations ``(table, comparable pairs, prompts left out)``."""
    max_group = ctx.param(NAME, "max_group", 100)
    gap = ctx.param(NAME, "dominance_gap", 0.0)
    ge = " AND ".join(f"i.v{c} >= j.v{c}" for c in range(1, k + 1))
    gt = " OR ".join(f"i.v{c} > j.v{c}" for c in range(1, k + 1))
    full = " AND ".join(f"v{c} IS NOT NULL" for c in range(0, k + 1))
    con = ctx.con
    con.sql(
        f"""CREATE OR REPLACE TEMP TABLE _ratings_full AS
            SELECT *, count(*) OVER (PARTITION BY prompt_id) AS n_group
            FROM _ratings_vals WHERE {full}"""
    )
    left_out = int(
        row(
            con, f"SELECT count(DISTINCT prompt_id) FROM _ratings_full WHERE n_group > {max_group}"
        )[0]
    )
    dominating = f"""FROM _ratings_full i JOIN _ratings_full j
                     ON i.prompt_id = j.prompt_id AND i.response_id <> j.response_id
                     WHERE i.n_group <= {max_group} AND {ge} AND ({gt})"""
    comparable = int(row(con, f"SELECT count(*) {dominating}")[0])
    violations = con.sql(
        f"""SELECT i.prompt_id, i.response_id AS better, i.v0 AS better_overall,
                   j.response_id AS worse, j.v0 AS worse_overall,
                   i.row AS better_row, j.row AS worse_row
            {dominating} AND i.v0 < j.v0 - {gap}
            ORDER BY j.v0 - i.v0 DESC, i.prompt_id, i.response_id, j.response_id"""
    ).to_arrow_table()
    con.sql("DROP TABLE IF EXISTS _ratings_full")
    return violations, comparable, left_out


def _blame(r: Ratings, res: Residuals | None, violations: pa.Table) -> list[str]:
    """The response to blame in each dominance violation: the one whose overall score is
    further from what its aspects predict (both when there is no regression)."""
    better, worse = violations.column("better"), violations.column("worse")
    if res is None or not violations.num_rows:
        return sorted(set(better.to_pylist()) | set(worse.to_pylist()))
    z = np.full(len(r.values), np.nan)
    z[res.rows] = np.abs(res.z)
    zb = z[violations.column("better_row").to_numpy()]
    zw = z[violations.column("worse_row").to_numpy()]
    pick = pc.if_else(pa.array(zb >= zw), better, worse)
    return sorted(set(pick.to_pylist()))


def _inconsistency(ctx: Context, r: Ratings) -> Finding:
    title = f"{TITLE}: overall score vs aspects"
    if r.overall is None:
        return skipped(
            NAME, title, "no overall score (responses.score or an 'overall'/'quality' attribute)"
        )
    if not r.aspects:
        return skipped(
            NAME, title, "no aspect ratings (responses.attributes) beside the overall score"
        )
    k = len(r.aspects)
    cut = ctx.param(NAME, "residual_k", 3.0)
    res = residual_outliers(r.values, cut)
    violations, comparable, left_out = _dominance(ctx, k)
    flagged_rows = res.rows[np.abs(res.z) > cut] if res is not None else np.zeros(0, np.int64)
    residual_ids = _ids_of(ctx, flagged_rows)[0]
    dom_ids = _blame(r, res, violations)
    all_ids = sorted(set(residual_ids) | set(dom_ids))
    checked = int((~np.isnan(r.values).any(axis=1)).sum())
    share = len(all_ids) / checked if checked else 0.0
    metrics: dict[str, float | None] = {
        "inconsistent_share": share,
        "inconsistent_responses": len(all_ids),
        "responses_checked": checked,
        "residual_outliers": len(residual_ids),
        "residual_k": cut,
        "dominance_violations": violations.num_rows,
        "dominance_responses": len(dom_ids),
        "dominating_pairs": comparable,
        "dominance_violation_rate": violations.num_rows / comparable if comparable else None,
        "prompts_left_out": left_out,
    }
    tables, plots = [], []
    if res is not None:
        metrics.update(r2=res.r2, robust_sd=res.sd, intercept=float(res.coef[0]))
        for a, c in zip(r.aspects, res.coef[1:], strict=True):
            metrics[f"coef.{a}"] = float(c)
        order = np.argsort(-np.abs(res.z))
        order = order[np.abs(res.z[order]) > cut][: ctx.options.top]
        rids, pids = _ids_of(ctx, res.rows[order])
        rows = []
        for n, o in enumerate(order):
            i = int(res.rows[o])
            rows.append(
                [
                    rids[n],
                    pids[n],
                    _label(r.values[i, 0]),
                    round(float(res.predicted[o]), 3),
                    round(float(res.z[o]), 2),
                    _aspect_text(r, i),
                ]
            )
        if rows:
            tables.append(
                Table(
                    "Overall scores far from what their aspects predict",
                    ["response_id", "prompt_id", "overall", "predicted", "robust z", "aspects"],
                    rows,
                    note=f"Least squares of the overall score on the aspects; |z| > {cut:g} "
                    f"robust SDs (1.4826 × MAD, at least one scale step: {res.sd:.3g}).",
                )
            )
        lim = max(8.0, float(np.ceil(min(np.abs(res.z).max(), 20))))
        edges = np.linspace(-lim, lim, 33)
        plots.append(
            Plot(
                "hist",
                f"Residual of the overall score (robust z; flagged beyond ±{cut:g})",
                edges.tolist(),
                {
                    "responses": np.histogram(np.clip(res.z, -lim, lim), edges)[0]
                    .astype(float)
                    .tolist()
                },
                xlabel="robust z",
                ylabel="responses",
            )
        )
    if violations.num_rows:
        top = violations.slice(0, ctx.options.top)
        at = {side: top.column(f"{side}_row").to_pylist() for side in ("better", "worse")}
        rows = []
        for n, v in enumerate(top.to_pylist()):
            rows.append(
                [
                    v["prompt_id"],
                    v["better"],
                    _label(v["better_overall"]),
                    v["worse"],
                    _label(v["worse_overall"]),
                    _aspect_text(r, at["better"][n]),
                    _aspect_text(r, at["worse"][n]),
                ]
            )
        tables.append(
            Table(
                "Dominance violations: at least as good on every aspect, lower overall",
                [
                    "prompt_id",
                    "dominating",
                    "overall (dominating)",
                    "dominated",
                    "overall (dominated)",
                    "aspects (dominating)",
                    "aspects (dominated)",
                ],
                rows,
                note="Same prompt; the first response rates >= on every aspect and > on one.",
            )
        )
    if not all_ids:
        verdict = (
            f"Every one of the {checked:,} overall scores agrees with its aspect ratings "
            "(no residual outlier, no dominance violation)."
        )
    else:
        verdict = (
            f"{len(all_ids):,} of {checked:,} responses ({share:.1%}) have an overall score "
            f"({r.overall}) "
            f"that contradicts their aspects ({len(residual_ids):,} residual outliers, "
            f"{violations.num_rows:,} dominance violations); pairs binarized from these "
            "scores may be mislabelled — check or drop them."
        )
    return Finding(
        NAME,
        title,
        _severity(ctx, share),
        verdict,
        metrics,
        tables,
        plots,
        {"response_id": all_ids},
    )


# --- entry point --------------------------------------------------------------------------
def run(ctx: Context) -> list[Finding]:
    r = _load(ctx)
    if r is None:
        return [skipped(NAME, TITLE, "no response has a score or attribute ratings")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            return [_distribution(ctx, r), _inconsistency(ctx, r)]
    finally:
        ctx.con.sql("DROP TABLE IF EXISTS _ratings_vals")


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="distribution of scores and aspect ratings, their correlations, and overall "
        "scores contradicting their aspects (regression residuals, dominance violations)",
        run=run,
    )
)
