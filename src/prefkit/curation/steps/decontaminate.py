"""Decontaminate: drop training prompts (and optionally responses) that overlap the
prompts of an eval/benchmark file.

What
    The eval prompts are read with :func:`prefkit.diagnostics.evalset.read_prompts` (a
    ``.txt`` file, JSON Lines/JSON/CSV/Parquet records with the prompt in ``field``, a
    dataset, or a folder), exactly as ``prefkit inspect --against`` reads them, so the
    coverage check's contamination finding and this step flag the same training rows.

Methods
    ``ngram`` (default): GPT-3's test (Brown et al. 2020, *Language Models are Few-Shot
    Learners*, §4 and Appendix C) through :func:`prefkit.diagnostics.ngrams.find_overlaps`:
    a training prompt goes when it shares a word ``n``-gram (13) with an eval prompt and
    holds at least ``min_share`` of that eval prompt's distinct n-grams (0: any one, as in
    GPT-3; ``n=8, min_share=0.7`` is PaLM's rule, Chowdhery et al. 2022, §8, counted per
    training prompt). An eval prompt shorter than ``n`` words matches a training prompt
    only when their normalised texts are equal (deviation from GPT-3, see
    :mod:`prefkit.diagnostics.ngrams`).

    ``embedding``: cosine similarity of all-MiniLM-L6-v2 sentence embeddings (Reimers &
    Gurevych 2019, *Sentence-BERT*; :func:`prefkit.diagnostics.embed.load_encoder`) on the
    first ``max_chars`` characters; a training prompt goes when its nearest eval prompt
    reaches ``threshold`` (0.8: "the same task reworded" on the real-data pairs read for
    the coverage check, docs/inspect/coverage.md). Encoding runs at roughly 100-300
    prompts/s on two CPU cores, so at most ``max_embed`` (20,000) training texts are
    encoded; above the cap the step raises rather than decontaminate a sample (use
    ``ngram``, or raise the cap knowingly).

Responses
    With ``responses=True`` the response texts are checked the same way and a response
    quoting an eval prompt is dropped (with its judgments, and out of its rankings): it
    is the response text that carries the leak, so its prompt stays.

Lineage and report
    Reasons ``eval overlap`` (prompts), ``eval overlap (response)`` and their
    ``(cascade)``. The report lists each dropped id with the matching eval prompt as
    detail: ``<eval id> (<n>-gram share 0.85): <snippet>`` or ``<eval id> (cosine
    0.91): <snippet>`` (the strongest match). ``info`` holds the eval file, its prompt
    count, and the eval prompts matched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation.cascade import drop_rows
from prefkit.curation.step import (
    REPORT_SCHEMA,
    Outcome,
    Param,
    Step,
    merge_reasons,
    register,
    report_table,
)
from prefkit.diagnostics.context import Context
from prefkit.diagnostics.evalset import EvalPrompts, read_prompts
from prefkit.diagnostics.ngrams import DEFAULT_N, EvalIndex, find_overlaps
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

NAME = "decontaminate"
METHODS = ("ngram", "embedding")
SNIPPET = 80
ENCODE_BATCH = 256
REASON = {"prompts": "eval overlap", "responses": "eval overlap (response)"}


# --- helpers -----------------------------------------------------------------------------------
def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def _detail(ev: EvalPrompts, k: int, score: str) -> str:
    return f"{ev.ids[k]} ({score}): {_snippet(ev.texts[k])}"


def _texts_of(ctx: Context, name: str, ids: pa.Array) -> pa.Array:
    """The rendered texts of the rows ``ids`` of ``name``, in ``ids`` order."""
    parts_id, parts_text = [], []
    for batch_ids, texts in ctx.texts(name):
        m = pc.is_in(batch_ids, value_set=ids)
        parts_id.append(batch_ids.filter(m))
        parts_text.append(texts.filter(m))
    got_ids = pa.concat_arrays(parts_id) if parts_id else pa.array([], pa.string())
    got = pa.concat_arrays(parts_text) if parts_text else pa.array([], pa.string())
    return pc.take(got, pc.index_in(ids, value_set=got_ids))


# --- n-grams -----------------------------------------------------------------------------------
def _ngram_matches(
    ctx: Context, name: str, index: EvalIndex, min_share: float, n: int, ev: EvalPrompts
) -> tuple[pa.Array, list[str], int]:
    """Ids of ``name`` rows overlapping an eval prompt, their details and the eval prompts
    matched. The stream scan is the coverage check's; the (few) flagged rows are then
    paired again to name their strongest eval prompt."""
    over = find_overlaps(index, ctx.texts(name), min_share)
    ids = pa.array(list(dict.fromkeys(over.flagged_ids)), pa.string())
    if not len(ids):
        return ids, [], 0
    p = index.pairs(_texts_of(ctx, name, ids))
    ok = p.share >= min_share
    train, evi, share = p.train[ok], p.eval[ok], p.share[ok]
    order = np.lexsort((evi, -share, train))  # per training row: highest share, first eval
    first = order[np.r_[True, train[order][1:] != train[order][:-1]]]
    details = [""] * len(ids)
    for t in first.tolist():
        details[int(train[t])] = _detail(ev, int(evi[t]), f"{n}-gram share {share[t]:.2f}")
    return ids, details, int(over.contaminated.sum())


# --- embeddings --------------------------------------------------------------------------------
def _embed_matches(
    ctx: Context, name: str, ev: EvalPrompts, threshold: float, max_chars: int, max_embed: int
) -> tuple[pa.Array, list[str], int]:
    from prefkit.diagnostics.embed import load_encoder

    if ctx.count(name) > max_embed:
        raise PrefkitError(
            f"curate {NAME}: method 'embedding' would encode {ctx.count(name):,} {name}, more "
            f"than max_embed={max_embed:,} (about 100-300 texts/s on CPU); use method 'ngram' "
            "or raise max_embed"
        )
    encode = load_encoder(required=True)
    assert encode is not None

    def cut(texts: pa.Array) -> list[str]:
        return pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, max_chars).to_pylist()

    q = encode(cut(pa.array(ev.texts, pa.string())))  # (E, d), unit rows
    ids: list[str] = []
    details: list[str] = []
    matched = np.zeros(len(ev), bool)
    for batch_ids, texts in _rebatch(ctx.texts(name)):
        x = encode(cut(texts))  # (B, d)
        sim = x @ q.T  # (B, E)
        best = sim.argmax(axis=1)
        s = sim[np.arange(len(best)), best]
        hit = np.flatnonzero(s >= threshold)
        matched |= (sim >= threshold).any(axis=0)
        ids.extend(pc.take(batch_ids, pa.array(hit)).to_pylist())
        details.extend(_detail(ev, int(best[i]), f"cosine {s[i]:.2f}") for i in hit)
    return pa.array(ids, pa.string()), details, int(matched.sum())


def _rebatch(batches: Iterator[tuple[pa.Array, pa.Array]]) -> Iterator[tuple[pa.Array, pa.Array]]:
    for ids, texts in batches:
        for lo in range(0, len(ids), ENCODE_BATCH):
            yield ids.slice(lo, ENCODE_BATCH), texts.slice(lo, ENCODE_BATCH)


# --- entry point -------------------------------------------------------------------------------
def run(
    ds: Dataset,
    *,
    against: str,
    field: str | None,
    method: str,
    n: int,
    min_share: float,
    threshold: float,
    responses: bool,
    max_chars: int,
    max_embed: int,
) -> Outcome:
    """Drop training prompts (and responses) overlapping the eval prompts in ``against``."""
    if n < 1:
        raise PrefkitError(f"curate {NAME}: parameter 'n' must be >= 1, got {n}")
    if not 0.0 <= min_share <= 1.0:
        raise PrefkitError(
            f"curate {NAME}: parameter 'min_share' must be in [0, 1], got {min_share}"
        )
    if not -1.0 <= threshold <= 1.0:
        raise PrefkitError(
            f"curate {NAME}: parameter 'threshold' must be in [-1, 1], got {threshold}"
        )
    if max_chars < 1 or max_embed < 1:
        bad = "max_chars" if max_chars < 1 else "max_embed"
        raise PrefkitError(f"curate {NAME}: parameter {bad!r} must be >= 1")
    ev = read_prompts(against, field)
    ctx = Context(ds)
    index = EvalIndex.build(ev.texts, n) if method == "ngram" else None
    info: dict[str, Any] = {"against": str(against), "eval_prompts": len(ev)}
    found: dict[str, tuple[pa.Array, list[str]]] = {}
    for name in ("prompts", "responses") if responses else ("prompts",):
        if not ctx.count(name):
            continue
        if index is not None:
            ids, details, matched = _ngram_matches(ctx, name, index, min_share, n, ev)
        else:
            ids, details, matched = _embed_matches(ctx, name, ev, threshold, max_chars, max_embed)
        info[f"eval_prompts_matched_by_{name}"] = matched
        info[f"{name}_flagged"] = len(ids)
        found[name] = (ids, details)
    parts: list[Outcome] = []
    tables: dict[str, pa.Table] = {}
    for name in ("prompts", "responses"):
        if name not in found or not len(found[name][0]):
            continue
        ids, details = found[name]
        if name == "responses" and "prompts" in found:  # already gone with their prompt
            still = pc.is_in(ids, value_set=ds.responses.column("response_id"))
            ids, details = (
                ids.filter(still),
                [d for d, k in zip(details, still.to_pylist(), strict=True) if k],
            )
        o = drop_rows(ds, REASON[name], **{name: ids})
        direct = report_table(name, ids, REASON[name], details)
        cascade = (
            o.report.filter(pc.ends_with(o.report.column("reason"), "(cascade)"))
            if o.report is not None
            else REPORT_SCHEMA.empty_table()
        )
        o.report = pa.concat_tables([direct, cascade])
        ds = ds.with_tables(**o.tables)
        tables.update(o.tables)
        parts.append(o)
    reasons = merge_reasons(parts)
    reports = [o.report for o in parts if o.report is not None]
    report = pa.concat_tables(reports) if reports else REPORT_SCHEMA.empty_table()
    return Outcome(tables, reasons=reasons, report=report, info=info)


register(
    Step(
        name=NAME,
        summary="drop training prompts overlapping an eval/benchmark prompt file "
        "(word n-grams or embedding similarity)",
        run=run,
        params=(
            Param(
                "against",
                None,
                "eval prompt file or folder (txt, JSONL/JSON/CSV/Parquet, a dataset)",
                required=True,
            ),
            Param(
                "field",
                None,
                "record field holding the eval prompt (default: prompt, question, instruction, ...)",
            ),
            Param(
                "method",
                "ngram",
                "ngram (GPT-3 13-gram test) or embedding (MiniLM cosine)",
                METHODS,
            ),
            Param("n", DEFAULT_N, "words per n-gram (ngram)"),
            Param(
                "min_share",
                0.0,
                "share of the eval prompt's n-grams one training text must hold (ngram)",
            ),
            Param(
                "threshold",
                0.8,
                "cosine similarity from which a text matches an eval prompt (embedding)",
            ),
            Param("responses", False, "also drop responses that overlap an eval prompt"),
            Param("max_chars", 512, "characters of each text given to the encoder (embedding)"),
            Param(
                "max_embed", 20_000, "most training texts encoded (embedding); more raise an error"
            ),
        ),
        paper="Brown et al. 2020, Language Models are Few-Shot Learners (GPT-3), §4 and Appendix C",
    )
)
