"""Shape: what is in the dataset, how long its texts are, who wrote and who judged it.

The descriptive statistics every preference-data paper reports before anything else
(e.g. the dataset tables of Bai et al., 2022, "Training a Helpful and Harmless Assistant
with RLHF", and Cui et al., 2023, "UltraFeedback"): rows per table, feedback kinds, text
lengths, responses per source model, labels per annotator, ties and judges per item. No
model is fitted; every number is a count or a quantile, so the findings double as a
reference the other checks can be read against.

Findings (all ``check="shape"``):

* **Counts** (info): rows per table, feedback kinds (:meth:`Dataset.kinds`), responses per
  prompt, judges per item (an item is a prompt and an unordered response pair; the share
  judged by several judges tells whether agreement can be measured).
* **Text lengths** (info): quantiles p5/p50/p95/max and mean of prompts and responses in
  characters and whitespace words, and in model tokens when ``options.tokenizer`` names a
  Hugging Face tokenizer (``AutoTokenizer.from_pretrained``; fast tokenizer over batches,
  no special tokens). Histograms use log-spaced bins (geometric edges from the shortest
  non-empty text to the longest; empty texts are left out of the picture), since text
  lengths are roughly log-normal.
* **Empty texts**: responses and prompts without any non-whitespace character. A response
  that carries media (images) is not empty. warning when any response is empty (a pair with
  an empty side teaches a reward model nothing but "say something"); info when only prompts
  are; ok otherwise.
* **Sources** (info): responses per ``source`` (model) and how often each source is judged;
  skipped when no response has a source.
* **Annotators**: labels (judgments + rankings) per annotator, the top annotator's share,
  the top-5 share and the Gini coefficient of the label counts (0 = everyone labels the
  same amount, → 1 = one annotator does everything; Gini, 1912). warning when there are at
  least 2 annotators and one gives at least ``dominant_share`` (0.5) of the labels: the
  data then mostly measures that person's taste. Skipped when no label has an annotator.
* **Ties**: share of judgments that are ties (outcome 0), by ``tie_kind`` (good/bad/
  unspecified), and the share of tied response pairs inside rankings. warning when the tie
  rate is at least ``tie_warning`` (0.35): over a third of the judgments carry no
  preference and are dropped by ``to_pairs``; info when there are ties; ok when none.
  Skipped when there are no judgments or rankings.

Parameters (``ctx.param("shape", key, default)``): ``dominant_share`` (0.5),
``tie_warning`` (0.35), ``bins`` (30, histogram bins).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped
from prefkit.diagnostics.registry import Check, register
from prefkit.engine import row, scalar
from prefkit.errors import PrefkitError

NAME = "shape"
TITLE = "Shape"
QUANTILES = (0.05, 0.5, 0.95)
TABLE_NAMES = ("prompts", "responses", "judgments", "rankings", "annotators")


# --- helpers ------------------------------------------------------------------------------------
def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal; (n-1)/n = one holds everything)."""
    x = np.sort(np.asarray(counts, dtype=float))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    # G = sum_i (2i - n - 1) x_(i) / (n sum x), i = 1..n over the sorted values.
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * x.sum()))


def describe(values: np.ndarray) -> dict[str, float]:
    """p5, p50, p95, max and mean of a length column (NaN when empty)."""
    if not len(values):
        return {"p5": math.nan, "p50": math.nan, "p95": math.nan, "max": math.nan, "mean": math.nan}
    q = np.quantile(values, QUANTILES)
    return {
        "p5": float(q[0]),
        "p50": float(q[1]),
        "p95": float(q[2]),
        "max": float(values.max()),
        "mean": float(values.mean()),
    }


def log_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Geometric histogram edges from the smallest positive value to past the largest."""
    pos = values[values > 0]
    if not len(pos):
        return np.array([0.0, 1.0])
    return np.unique(np.geomspace(float(pos.min()), float(pos.max()) + 1, bins + 1))


def _hist(values: np.ndarray, bins: int, title: str, unit: str) -> Plot:
    # Empty texts are left out (a [0, x) bin would stretch a log axis); "Empty texts"
    # reports them.
    pos = values[values > 0]
    edges = log_edges(pos, bins)
    counts, _ = np.histogram(pos, edges)
    n_empty = len(values) - len(pos)
    return Plot(
        kind="hist",
        title=title + (f", {n_empty:,} empty not shown" if n_empty else ""),
        x=[float(e) for e in edges],
        series={"count": [int(c) for c in counts]},
        xlabel=f"{unit} (log-spaced bins)",
        ylabel="texts",
    )


def media_only(ctx: Context) -> pa.Array:
    """Ids of responses that carry media (e.g. an image): no text is expected of them."""

    def make() -> pa.Array:
        if not ctx.count("responses"):
            return pa.array([], pa.string())
        return (
            ctx.con.sql("SELECT response_id FROM _responses WHERE coalesce(len(media), 0) > 0")
            .to_arrow_table()
            .column(0)
            .combine_chunks()
        )

    return ctx.cached("shape:media_ids", make)


def token_lengths(ctx: Context, name: str) -> np.ndarray:
    """Model-token length of every prompt or response (no special tokens), cached."""

    def make() -> np.ndarray:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise PrefkitError(
                "token lengths need transformers (pip install 'prefkit[train]')"
            ) from exc
        tok = AutoTokenizer.from_pretrained(ctx.options.tokenizer)
        parts = []
        for _, texts in ctx.track(
            ctx.texts(name, 4096), f"tokens ({name})", ctx.n_batches(name, 4096)
        ):
            enc = tok(
                texts.to_pylist(),
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                return_length=True,
            )
            parts.append(np.asarray(enc["length"], dtype=np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    return ctx.cached(f"tokens:{name}", make)


# --- findings -----------------------------------------------------------------------------------
def _counts(ctx: Context, kinds: list[str]) -> Finding:
    counts = {n: ctx.count(n) for n in TABLE_NAMES}
    metrics: dict[str, Any] = {n: counts[n] for n in TABLE_NAMES}
    if counts["prompts"] and counts["responses"]:
        per = row(
            ctx.con,
            "SELECT avg(c), max(c) FROM (SELECT count(*) AS c FROM _responses GROUP BY prompt_id)",
        )
        metrics["responses_per_prompt_mean"] = float(per[0])
        metrics["responses_per_prompt_max"] = int(per[1])
    if counts["judgments"]:
        items, mean, mx, multi = row(
            ctx.con,
            """SELECT count(*), avg(c), max(c), count(*) FILTER (c > 1)
               FROM (SELECT count(*) AS c FROM _judgments
                     GROUP BY prompt_id, least(a, b), greatest(a, b))""",
        )
        metrics["judged_items"] = int(items)
        metrics["judges_per_item_mean"] = float(mean)
        metrics["judges_per_item_max"] = int(mx)
        metrics["items_with_several_judges_share"] = multi / items
    if counts["rankings"]:
        per = row(
            ctx.con,
            "SELECT avg(c), max(c) FROM (SELECT count(*) AS c FROM _rankings GROUP BY prompt_id)",
        )
        metrics["rankings_per_prompt_mean"] = float(per[0])
        metrics["rankings_per_prompt_max"] = int(per[1])
    total = sum(counts.values())
    kinds_txt = ", ".join(kinds) if kinds else "no feedback"
    parts = [f"{counts[n]:,} {n}" for n in TABLE_NAMES if counts[n]]
    verdict = (
        f"{'; '.join(parts) if parts else 'No rows'}. Feedback kinds: {kinds_txt}."
        if total
        else "The dataset is empty."
    )
    if "judges_per_item_mean" in metrics:
        share = metrics["items_with_several_judges_share"]
        if share >= 0.1:
            verdict += (
                f" {share:.0%} of judged pairs have several judges, so agreement can be measured."
            )
        elif share:
            verdict += f" Only {share:.1%} of judged pairs have several judges."
        else:
            verdict += " Every pair has one judge, so label noise cannot be measured by agreement."
    table = Table(
        title="Rows per table",
        columns=["table", "rows"],
        rows=[[n, counts[n]] for n in TABLE_NAMES if counts[n]][: ctx.options.top],
        note=f"Feedback kinds: {kinds_txt}.",
    )
    return Finding(NAME, "Counts", "info" if total else "ok", verdict, metrics, [table])


def _lengths(ctx: Context, bins: int) -> tuple[Finding, dict[str, pa.Table]]:
    lengths = {n: ctx.lengths(n) for n in ("prompts", "responses") if ctx.count(n)}
    metrics: dict[str, Any] = {}
    rows: list[list[Any]] = []
    plots: list[Plot] = []
    series: list[tuple[str, str, np.ndarray]] = []
    n_media = 0
    for name, tab in lengths.items():
        chars = _arr(tab.column("n_chars"))
        keep = np.ones(len(chars), bool)
        if name == "responses" and len(media_only(ctx)):
            # Media responses (images) have no text by design: leave them out of the lengths.
            media = np.asarray(pc.is_in(tab.column("id"), media_only(ctx)).to_numpy(False))
            keep = ~(media & (chars == 0))
            n_media = int(np.count_nonzero(~keep))
            if not keep.any():
                continue
        series.append((name, "chars", chars[keep]))
        series.append((name, "words", _arr(tab.column("n_words"))[keep]))
        if ctx.options.tokenizer:
            series.append((name, "tokens", token_lengths(ctx, name)[keep]))
    order = {"responses": 0, "prompts": 1}
    series.sort(key=lambda s: (order[s[0]], s[1] != "words"))
    for name, unit, values in series:
        d = describe(values)
        for key, value in d.items():
            metrics[f"{name[:-1]}_{unit}_{key}"] = value
        rows.append([name, unit, *(round(d[k], 1) for k in ("p5", "p50", "p95", "max", "mean"))])
        if unit in ("words", "tokens"):
            plots.append(_hist(values, bins, f"{name.capitalize()} length ({unit})", unit))
    if not series:
        return skipped(NAME, "Text lengths", "no prompts or responses"), lengths
    parts = []
    for name in sorted({s_[0] for s_ in series}, key=order.__getitem__):
        key = name[:-1]
        parts.append(
            f"{name} have a median of {metrics[f'{key}_words_p50']:,.0f} words "
            f"(p95 {metrics[f'{key}_words_p95']:,.0f}, max {metrics[f'{key}_words_max']:,.0f})"
        )
    verdict = "; ".join(parts) + "."
    verdict = verdict[0].upper() + verdict[1:]
    if n_media:
        verdict += f" {n_media:,} responses are media only (e.g. images) and are left out."
    if ctx.options.tokenizer and "response_tokens_p95" in metrics:
        verdict += (
            f" In {ctx.options.tokenizer} tokens, 95% of responses fit in "
            f"{metrics['response_tokens_p95']:,.0f}."
        )
    tables = [
        Table(
            title=f"Length quantiles: {name}",
            columns=["unit", "p5", "p50", "p95", "max", "mean"],
            rows=[r[1:] for r in rows if r[0] == name],
            note="Words are whitespace tokens; tokens are model tokens without special tokens.",
        )
        for name in sorted({r[0] for r in rows}, key=order.__getitem__)
    ]
    return Finding(NAME, "Text lengths", "info", verdict, metrics, tables, plots), lengths


def _arr(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(col, 0).to_numpy(zero_copy_only=False))


def _empty(ctx: Context, lengths: dict[str, pa.Table], top: int) -> Finding:
    title = "Empty texts"
    ids: dict[str, list[str]] = {}
    metrics: dict[str, Any] = {}
    for name, tab in lengths.items():
        empty = pc.equal(tab.column("n_words"), 0)
        if name == "responses" and pc.any(empty).as_py():
            # A response with media (an image) and no text is not empty.
            media = media_only(ctx)
            if len(media):
                empty = pc.and_(empty, pc.invert(pc.is_in(tab.column("id"), media)))
        found = pc.filter(tab.column("id"), empty)
        metrics[f"empty_{name}"] = len(found)
        metrics[f"empty_{name}_share"] = len(found) / tab.num_rows if tab.num_rows else 0.0
        if len(found):
            ids["response_id" if name == "responses" else "prompt_id"] = found.to_pylist()
    n_r, n_p = metrics.get("empty_responses", 0), metrics.get("empty_prompts", 0)
    if n_r:
        severity = "warning"
        verdict = (
            f"{n_r:,} responses ({metrics['empty_responses_share']:.1%}) have no text; pairs "
            "with an empty side only teach a model to say something. Drop them or fix the "
            "loader (a missing answer field?)."
        )
    elif n_p:
        severity = "info"
        verdict = f"{n_p:,} prompts have no text; responses to them are judged without context."
    else:
        severity = "ok"
        verdict = "Every prompt and response has text" + (
            " or media." if len(media_only(ctx)) else "."
        )
    tables = [
        Table(
            title=f"Empty {kind.removesuffix('_id')}s",
            columns=[kind],
            rows=[[i] for i in v[:top]],
            note=f"{len(v):,} in all" if len(v) > top else "",
        )
        for kind, v in ids.items()
    ]
    return Finding(NAME, title, severity, verdict, metrics, tables, [], ids)


def _sources(ctx: Context, top: int) -> Finding:
    title = "Sources"
    n_src = scalar(ctx.con, "SELECT count(source) FROM _responses") if ctx.count("responses") else 0
    if not n_src:
        return skipped(NAME, title, "no response has a source (model) name")
    counts = ctx.con.sql(
        """SELECT coalesce(source, '(none)') AS source, count(*) AS n
           FROM _responses GROUP BY 1 ORDER BY n DESC, source"""
    ).to_arrow_table()
    judged_by: dict[str, int] = {}
    if ctx.count("judgments"):
        judged_by = dict(
            ctx.con.sql(
                """SELECT coalesce(r.source, '(none)'), count(*)
                   FROM (SELECT a AS id FROM _judgments UNION ALL SELECT b FROM _judgments) x
                   JOIN _responses r ON r.response_id = x.id GROUP BY 1"""
            ).fetchall()
        )
    names = counts.column("source").to_pylist()
    n = _arr(counts.column("n"))
    total = int(n.sum())
    named = [s for s in names if s != "(none)"]
    metrics: dict[str, Any] = {
        "sources": len(named),
        "responses_with_source_share": n_src / total,
        "gini": gini(n[[s != "(none)" for s in names]]),
    }
    rows = [
        [s, int(c), round(float(c / total), 4), judged_by.get(s, 0)]
        for s, c in zip(names[:top], n[:top], strict=True)
    ]
    plot = Plot(
        kind="bar",
        title="Responses per source",
        x=[r[0] for r in rows],
        series={"responses": [float(r[1]) for r in rows]},
        xlabel="source",
        ylabel="responses",
    )
    top_named = max(named, key=lambda s_: int(n[names.index(s_)]))
    share_named = float(n[names.index(top_named)] / total)
    metrics["top_source_share"] = share_named
    verdict = (
        f"{len(named)} source{'s' if len(named) > 1 else ''} wrote the responses; the largest, "
        f"{top_named}, wrote {share_named:.0%}."
    )
    if n_src < total:
        verdict += f" {total - n_src:,} responses ({1 - n_src / total:.0%}) have no source."
    table = Table(
        title="Responses per source",
        columns=["source", "responses", "share", "times judged"],
        rows=rows,
        note=f"{len(names) - top} more sources" if len(names) > top else "",
    )
    return Finding(NAME, title, "info", verdict, metrics, [table], [plot])


def _annotators(ctx: Context, top: int, dominant: float) -> Finding:
    title = "Annotators"
    parts = []
    if ctx.count("judgments"):
        parts.append("SELECT annotator_id FROM _judgments")
    if ctx.count("rankings"):
        parts.append("SELECT annotator_id FROM _rankings")
    if not parts:
        return skipped(NAME, title, "no judgments or rankings")
    union = " UNION ALL ".join(parts)
    labels, with_id = row(ctx.con, f"SELECT count(*), count(annotator_id) FROM ({union})")
    if not with_id:
        return skipped(NAME, title, f"none of the {labels:,} labels names its annotator")
    counts = ctx.con.sql(
        f"""SELECT annotator_id, count(*) AS n FROM ({union}) WHERE annotator_id IS NOT NULL
            GROUP BY 1 ORDER BY n DESC, annotator_id"""
    ).to_arrow_table()
    ids = counts.column("annotator_id")
    n = _arr(counts.column("n"))
    k = len(n)
    top_share = float(n[0] / with_id)
    metrics: dict[str, Any] = {
        "annotators": k,
        "top_annotator_share": top_share,
        "top5_share": float(n[:5].sum() / with_id),
        "gini": gini(n),
        "labels_per_annotator_median": float(np.median(n)),
        "labels_per_annotator_max": int(n[0]),
        "labels_with_annotator_share": with_id / labels,
    }
    if ctx.count("annotators"):
        idle = scalar(
            ctx.con,
            f"""SELECT count(*) FROM _annotators WHERE annotator_id NOT IN
                (SELECT annotator_id FROM ({union}) WHERE annotator_id IS NOT NULL)""",
        )
        metrics["annotators_without_labels"] = int(idle)
    flagged: list[str] = []
    if k >= 2 and top_share >= dominant:
        severity = "warning"
        flagged = [str(ids[0])]
        verdict = (
            f"One annotator, {ids[0]}, gave {top_share:.0%} of the labels; the data mostly "
            "reflects one person's taste. Reweight or cap per-annotator labels."
        )
    elif k == 1:
        severity = "info"
        verdict = f"A single judge ({ids[0]}) gave every labelled judgment."
    else:
        severity = "info"
        verdict = (
            f"{k:,} annotators; the busiest gave {top_share:.1%} of the labels, the top 5 "
            f"{metrics['top5_share']:.0%} (Gini {metrics['gini']:.2f})."
        )
    if with_id < labels:
        verdict += f" {labels - with_id:,} labels have no annotator id."
    m = min(top, k)
    table = Table(
        title="Labels per annotator",
        columns=["annotator_id", "labels", "share"],
        rows=[[ids[i].as_py(), int(n[i]), round(float(n[i] / with_id), 4)] for i in range(m)],
        note=f"{k - m:,} more annotators" if k > m else "",
    )
    plot = Plot(
        kind="bar",
        title="Labels per annotator (busiest first)",
        x=[ids[i].as_py() for i in range(m)],
        series={"labels": [float(n[i]) for i in range(m)]},
        xlabel="annotator",
        ylabel="labels",
    )
    out_ids = {"annotator_id": flagged} if flagged else {}
    return Finding(NAME, title, severity, verdict, metrics, [table], [plot], out_ids)


def _ties(ctx: Context, warn: float, top: int) -> Finding:
    title = "Ties"
    n_j, n_r = ctx.count("judgments"), ctx.count("rankings")
    if not (n_j or n_r):
        return skipped(NAME, title, "no judgments or rankings")
    metrics: dict[str, Any] = {}
    ids: dict[str, list[str]] = {}
    rate = 0.0
    if n_j:
        ties, good, bad = row(
            ctx.con,
            """SELECT count(*) FILTER (outcome = 0), count(*) FILTER (outcome = 0 AND tie_kind = 'good'),
                      count(*) FILTER (outcome = 0 AND tie_kind = 'bad') FROM _judgments""",
        )
        rate = ties / n_j
        metrics.update(
            tie_rate=rate,
            ties=int(ties),
            good_ties=int(good),
            bad_ties=int(bad),
            unspecified_ties=int(ties - good - bad),
            judgments=n_j,
        )
        if ties:
            ids["judgment_id"] = (
                ctx.con.sql("SELECT judgment_id FROM _judgments WHERE outcome = 0")
                .to_arrow_table()
                .column(0)
                .to_pylist()
            )
    if n_r:
        tied, pairs, with_tie = row(
            ctx.con,
            """SELECT coalesce(sum(tp), 0), coalesce(sum(n * (n - 1) // 2), 0),
                      count(*) FILTER (tp > 0)
               FROM (SELECT len(flatten(tiers)) AS n,
                            list_sum(list_transform(tiers, lambda t: len(t) * (len(t) - 1) // 2)) AS tp
                     FROM _rankings)""",
        )
        metrics["ranking_tied_pair_share"] = tied / pairs if pairs else 0.0
        metrics["rankings_with_tie_share"] = with_tie / n_r
        metrics["ranking_tied_pairs"] = int(tied)
        metrics["ranking_pairs"] = int(pairs)
    bits = []
    if n_j:
        bits.append(
            f"{rate:.1%} of judgments are ties ({metrics['good_ties']:,} good, "
            f"{metrics['bad_ties']:,} bad, {metrics['unspecified_ties']:,} unspecified)"
        )
    if n_r:
        bits.append(
            f"{metrics['ranking_tied_pair_share']:.1%} of response pairs inside rankings are tied"
        )
    verdict = "; ".join(bits) + "."
    any_ties = metrics.get("ties", 0) or metrics.get("ranking_tied_pairs", 0)
    if n_j and rate >= warn:
        severity = "warning"
        verdict += (
            " That many ties carry no preference: to_pairs(ties='drop') discards them; a tie-aware"
            " loss or model (Davidson / Rao–Kupper) keeps their information."
        )
    else:
        severity = "info" if any_ties else "ok"
    tables = []
    if n_j:
        outcomes = ctx.con.sql(
            """SELECT CASE outcome WHEN 1 THEN 'a preferred' WHEN -1 THEN 'b preferred'
                      ELSE 'tie (' || coalesce(tie_kind, 'unspecified') || ')' END, count(*)
               FROM _judgments GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        tables.append(
            Table("Judgment outcomes", ["outcome", "judgments"], [list(r) for r in outcomes][:top])
        )
    return Finding(NAME, title, severity, verdict, metrics, tables, [], ids)


# --- entry point ------------------------------------------------------------------------------
def run(ctx: Context) -> list[Finding]:
    if not any(ctx.count(n) for n in TABLE_NAMES):
        return [skipped(NAME, TITLE, "the dataset has no rows")]
    top = ctx.options.top
    bins = ctx.param(NAME, "bins", 30)
    findings = [_counts(ctx, ctx.ds.kinds())]
    length_finding, lengths = _lengths(ctx, bins)
    findings.append(length_finding)
    if lengths:
        findings.append(_empty(ctx, lengths, top))
    findings.append(_sources(ctx, top))
    findings.append(_annotators(ctx, top, ctx.param(NAME, "dominant_share", 0.5)))
    findings.append(_ties(ctx, ctx.param(NAME, "tie_warning", 0.35), top))
    return findings


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="counts, feedback kinds, text lengths, sources, annotators and ties",
        run=run,
    )
)

__all__ = ["describe", "gini", "log_edges", "run", "token_lengths"]
