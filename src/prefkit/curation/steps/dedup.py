"""Dedup: drop exact and near-duplicate prompts, and duplicate responses within a prompt,
keeping the best-supported copy of each group.

What
    The groups come from the duplicates check's machinery
    (:func:`prefkit.diagnostics.dupes.scan_prompts` / :func:`~prefkit.diagnostics.dupes.scan_responses`),
    so ``prefkit inspect`` and ``prefkit curate dedup`` agree on what a copy is:

    * exact copies: the same text up to case and whitespace (a prompt's key also holds
      its ``context``: the same question under two personas is not a copy);
    * near copies (``near=True``): MinHash (Broder 1997, "On the resemblance and
      containment of documents") with LSH banding (Indyk & Motwani 1998; Leskovec,
      Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3) over word sets, candidates
      verified by their signature estimate; a group is a connected component of the exact
      and near pairs.

    Response groups are split by prompt: only copies *of a response to the same prompt*
    are dropped. The same text given to different prompts (a stock answer) is not a
    duplicated example, so it stays (the duplicates check reports it apart, too).

Which copy is kept
    The best-supported row of each group: the most judgments referring to it, then the
    most rankings, then (prompts only) the most responses, then the first in table order.
    The check keeps the first row instead; curation prefers the copy carrying the most
    labels, since the labels are what the copies' judgments add.

Judgments on a dropped response (``judgments``)
    ``remap`` (default): a judgment or ranking that referred to a dropped copy refers to
    the kept copy instead, since the texts are the same (or nearly), the label still
    holds. A judgment whose two sides become the same response (a self-comparison) is
    dropped ("duplicate response (self-comparison)"); in a ranking the copy merges into
    the kept response's best tier, and a ranking left with fewer than two responses is
    dropped with the same reason. ``drop``: those judgments go with the copy (cascade),
    and the copy leaves every ranking. Prompt copies always drop their own responses,
    judgments and rankings (cascade): they are separate items, not labels of the kept one.

Deviations
    None from the check's grouping; near groups are transitive (connected components), so
    two rows of one group can be further apart than ``threshold``, as in the check.

Parameters
    what (``both``): ``prompts``, ``responses`` or ``both`` (prompts first, then the
    responses of the prompts that remain); near (True): include near copies;
    threshold (0.8), num_perm (128), ngram (1), seed (1): the MinHash parameters
    (:class:`prefkit.diagnostics.minhash.MinHashParams`); judgments (``remap``): see above.

Lineage and report
    Reasons ``duplicate prompt``, ``near-duplicate prompt``, ``duplicate response``,
    ``near-duplicate response`` (and their ``(cascade)``), ``duplicate response
    (self-comparison)``; the report lists every removed id with the kept id as detail;
    ``info`` holds the group counts, the judgments and rankings remapped and the MinHash
    parameters.
"""

from __future__ import annotations

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
from prefkit.diagnostics.dupes import DupGroups, scan_prompts, scan_responses
from prefkit.diagnostics.minhash import MinHashParams
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

NAME = "dedup"
WHAT = ("prompts", "responses", "both")
JUDGMENTS = ("remap", "drop")
SELF = "duplicate response (self-comparison)"


# --- helpers -----------------------------------------------------------------------------------
def _counts(ids: pa.ChunkedArray | pa.Array, refs: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """How often each of ``ids`` occurs in ``refs`` (int64, aligned with ``ids``)."""
    if len(refs) == 0 or len(ids) == 0:
        return np.zeros(len(ids), np.int64)
    vc = pc.value_counts(refs)
    idx = pc.index_in(ids, value_set=vc.field("values"))
    got = pc.take(vc.field("counts"), idx)
    return np.asarray(pc.fill_null(got, 0).to_numpy(zero_copy_only=False), np.int64)


def _ranking_ids(rankings: pa.Table) -> pa.Array:
    """Every response id of every ranking, flattened."""
    if rankings.num_rows == 0:
        return pa.array([], pa.string())
    tiers = rankings.column("tiers").combine_chunks()
    return pc.list_flatten(pc.list_flatten(tiers))


def _keep_best(labels: np.ndarray, support: list[np.ndarray]) -> np.ndarray:
    """For each row, the kept row of its group: the highest ``support`` (lexicographic,
    first key first), then the lowest row."""
    n = len(labels)
    rows = np.arange(n)
    keys = [rows] + [-s for s in reversed(support)] + [labels]
    order = np.lexsort(keys)
    first = np.r_[True, labels[order][1:] != labels[order][:-1]] if n else np.zeros(0, bool)
    kept_of = np.zeros(int(labels.max()) + 1 if n else 0, np.int64)
    kept_of[labels[order][first]] = order[first]
    return kept_of[labels] if n else np.zeros(0, np.int64)


def _dense(*columns: np.ndarray) -> np.ndarray:
    """Labels ``0..k-1`` of the distinct rows of the stacked columns."""
    if len(columns[0]) == 0:
        return np.zeros(0, np.int64)
    return np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)[1].ravel()


def _merge(parts: list[Outcome]) -> tuple[dict[str, dict[str, int]], pa.Table | None]:
    reasons = merge_reasons(parts)
    reports = [o.report for o in parts if o.report is not None and o.report.num_rows]
    return reasons, pa.concat_tables(reports) if reports else None


def _with_detail(o: Outcome, direct: pa.Table) -> Outcome:
    """``o`` with its direct report rows replaced by ``direct`` (which carry the kept id)."""
    cascade = []
    if o.report is not None:
        cascade = [o.report.filter(pc.ends_with(o.report.column("reason"), "(cascade)"))]
    o.report = pa.concat_tables([direct, *cascade])
    return o


def _chosen(
    scan: DupGroups, labels: np.ndarray, support: list[np.ndarray], noun: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dropped rows, their kept rows and their reasons (exact or near copy)."""
    kept = _keep_best(labels, support)
    rows = np.arange(scan.n)
    drop = np.flatnonzero(kept != rows)
    exact = scan.key[drop] == scan.key[kept[drop]]
    why = np.where(exact, f"duplicate {noun}", f"near-duplicate {noun}")
    return drop, kept[drop], why


def _direct_report(
    table: str, ids: pa.ChunkedArray, drop: np.ndarray, kept: np.ndarray, why: np.ndarray
) -> pa.Table:
    """Report rows of the directly dropped copies, the kept id as detail."""
    noun = table[:-1]
    parts = [REPORT_SCHEMA.empty_table()]
    for reason in (f"duplicate {noun}", f"near-duplicate {noun}"):
        m = why == reason
        if m.any():
            dropped = pc.take(ids, pa.array(drop[m])).combine_chunks()
            parts.append(
                report_table(
                    table, dropped, reason, pc.take(ids, pa.array(kept[m])).combine_chunks()
                )
            )
    return pa.concat_tables(parts)


# --- prompts -----------------------------------------------------------------------------------
def _dedup_prompts(
    ds: Dataset, params: MinHashParams, near: bool
) -> tuple[Outcome, dict[str, Any]]:
    scan = scan_prompts(Context(ds), params, near)
    labels = scan.group if near else scan.exact_label
    support = [
        _counts(scan.ids, ds.judgments.column("prompt_id")),
        _counts(scan.ids, ds.rankings.column("prompt_id")),
        _counts(scan.ids, ds.responses.column("prompt_id")),
    ]
    drop, kept, why = _chosen(scan, labels, support, "prompt")
    outcomes = []
    for reason in ("duplicate prompt", "near-duplicate prompt"):
        m = why == reason
        if m.any():
            o = drop_rows(ds, reason, prompts=pc.take(scan.ids, pa.array(drop[m])))
            ds = ds.with_tables(**o.tables)
            outcomes.append(o)
    reasons, report = _merge(outcomes)
    direct = _direct_report("prompts", scan.ids, drop, kept, why)
    tables: dict[str, pa.Table] = {}
    for o in outcomes:
        tables.update(o.tables)
    out = _with_detail(Outcome(tables, reasons=reasons, report=report), direct)
    info = {
        "prompt_groups": len(np.unique(labels[kept])) if len(kept) else 0,
        "prompts_dropped": len(drop),
    }
    return out, info


# --- responses ---------------------------------------------------------------------------------
def _remap(column: pa.ChunkedArray, old: pa.Array, new: pa.Array) -> pa.Array:
    col = column.combine_chunks()
    return pc.coalesce(pc.take(new, pc.index_in(col, value_set=old)), col)


def _remap_rankings(
    rankings: pa.Table, old: pa.Array, new: pa.Array
) -> tuple[pa.Table, pa.Array, int]:
    """Rankings with ``old`` ids replaced by ``new``; a response met twice keeps its best
    (first) tier; empty tiers go. Returns the table, the ids of rankings left with fewer
    than two responses (still in the table), and the number of ids replaced."""
    tiers = rankings.column("tiers").combine_chunks()
    tier_lists = pc.list_flatten(tiers)  # one row per tier
    ids = pc.list_flatten(tier_lists)  # one row per response id
    hit = pc.fill_null(pc.is_in(ids, value_set=old), False)
    n_hit = int(pc.sum(hit).as_py() or 0)
    mapped = pc.coalesce(pc.take(new, pc.index_in(ids, value_set=old)), ids)
    tier_len = np.asarray(pc.list_value_length(tier_lists).to_numpy(zero_copy_only=False), np.int64)
    ranking_tiers = np.asarray(pc.list_value_length(tiers).to_numpy(zero_copy_only=False), np.int64)
    ranking_of_tier = np.repeat(np.arange(len(tiers)), ranking_tiers)
    tier_of_id = np.repeat(np.arange(len(tier_lists)), tier_len)
    code = np.asarray(pc.dictionary_encode(mapped).indices.to_numpy(zero_copy_only=False), np.int64)
    key = ranking_of_tier[tier_of_id] * np.int64(max(1, int(code.max(initial=0)) + 1)) + code
    keep = np.zeros(len(code), bool)
    keep[np.unique(key, return_index=True)[1]] = True  # first (best-tier) occurrence
    new_tier_len = np.bincount(tier_of_id[keep], minlength=len(tier_lists))
    nonempty = new_tier_len > 0
    per_ranking = np.bincount(ranking_of_tier[nonempty], minlength=len(tiers))
    n_ids = np.bincount(ranking_of_tier, weights=new_tier_len, minlength=len(tiers))
    inner = pa.ListArray.from_arrays(
        pa.array(np.r_[0, np.cumsum(new_tier_len[nonempty])].astype(np.int32)),
        mapped.filter(pa.array(keep)),
    )
    outer = pa.ListArray.from_arrays(
        pa.array(np.r_[0, np.cumsum(per_ranking)].astype(np.int32)), inner
    )
    i = rankings.schema.get_field_index("tiers")
    table = rankings.set_column(i, "tiers", outer.cast(rankings.schema.field("tiers").type))
    short = table.filter(pa.array(n_ids < 2)).column("ranking_id").combine_chunks()
    return table, short, n_hit


def _dedup_responses(
    ds: Dataset, params: MinHashParams, near: bool, judgments: str
) -> tuple[Outcome, dict[str, Any]]:
    scan = scan_responses(Context(ds), params, near)
    r = ds.responses
    # each scanned response's prompt, as a dense integer (copies count within a prompt)
    row = pc.index_in(scan.ids, value_set=r.column("response_id"))
    prompt_of = pc.take(r.column("prompt_id"), row).combine_chunks()
    prompt_code = np.asarray(
        pc.dictionary_encode(pc.fill_null(prompt_of, "")).indices.to_numpy(zero_copy_only=False),
        np.int64,
    )
    labels = _dense(scan.group if near else scan.exact_label, prompt_code)
    j = ds.judgments
    sides = pa.concat_arrays([j.column("a").combine_chunks(), j.column("b").combine_chunks()])
    support = [_counts(scan.ids, sides), _counts(scan.ids, _ranking_ids(ds.rankings))]
    drop, kept, why = _chosen(scan, labels, support, "response")
    direct = _direct_report("responses", scan.ids, drop, kept, why)
    info: dict[str, Any] = {"responses_dropped": len(drop)}
    if not len(drop):
        return Outcome({}), info
    old = pc.take(scan.ids, pa.array(drop)).combine_chunks()
    new = pc.take(scan.ids, pa.array(kept)).combine_chunks()
    outcomes: list[Outcome] = []
    tables: dict[str, pa.Table] = {}
    if judgments == "remap":
        changed: dict[str, pa.Table] = {}
        self_ids = pa.array([], pa.string())
        if j.num_rows:
            a, b = _remap(j.column("a"), old, new), _remap(j.column("b"), old, new)
            was_diff = pc.not_equal(j.column("a"), j.column("b"))
            self_mask = pc.fill_null(pc.and_(was_diff, pc.equal(a, b)), False)
            moved = pc.or_(pc.not_equal(a, j.column("a")), pc.not_equal(b, j.column("b")))
            info["judgments_remapped"] = int(pc.sum(pc.fill_null(moved, False)).as_py() or 0)
            changed["judgments"] = j.set_column(j.schema.get_field_index("a"), "a", a).set_column(
                j.schema.get_field_index("b"), "b", b
            )
            self_ids = j.filter(self_mask).column("judgment_id").combine_chunks()
        short = pa.array([], pa.string())
        if ds.rankings.num_rows:
            changed["rankings"], short, info["ranking_entries_remapped"] = _remap_rankings(
                ds.rankings, old, new
            )
        if changed:
            ds = ds.with_tables(**changed)
            tables.update(changed)
        if len(self_ids) or len(short):
            o = drop_rows(ds, SELF, judgments=self_ids, rankings=short)
            detail = (
                pc.take(
                    changed["judgments"].column("a"),
                    pc.index_in(self_ids, value_set=changed["judgments"].column("judgment_id")),
                )
                if len(self_ids)
                else pa.array([], pa.string())
            )
            o.report = pa.concat_tables(
                [
                    report_table("judgments", self_ids, SELF, detail),
                    report_table("rankings", short, SELF, "fewer than two responses left"),
                ]
            )
            ds = ds.with_tables(**o.tables)
            outcomes.append(o)
    for reason in ("duplicate response", "near-duplicate response"):
        m = why == reason
        if m.any():
            o = drop_rows(ds, reason, responses=pc.take(scan.ids, pa.array(drop[m])))
            ds = ds.with_tables(**o.tables)
            outcomes.append(
                _with_detail(o, direct.filter(pc.equal(direct.column("reason"), reason)))
            )
    for o in outcomes:
        tables.update(o.tables)
    reasons, report = _merge(outcomes)
    return Outcome(tables, reasons=reasons, report=report), info


# --- entry point -------------------------------------------------------------------------------
def run(
    ds: Dataset,
    *,
    what: str,
    near: bool,
    threshold: float,
    num_perm: int,
    ngram: int,
    seed: int,
    judgments: str,
) -> Outcome:
    """Drop duplicate prompts and/or responses (see the module docstring)."""
    try:
        params = MinHashParams(num_perm=num_perm, ngram=ngram, threshold=threshold, seed=seed)
    except PrefkitError as exc:
        raise PrefkitError(f"curate {NAME}: {exc}") from None
    parts: list[Outcome] = []
    info: dict[str, Any] = {"minhash": params.to_dict() if near else None}
    tables: dict[str, pa.Table] = {}
    if what in ("prompts", "both") and ds.num_rows("prompts"):
        o, i = _dedup_prompts(ds, params, near)
        parts.append(o)
        info.update(i)
        tables.update(o.tables)
        ds = ds.with_tables(**o.tables)
    if what in ("responses", "both") and ds.num_rows("responses"):
        o, i = _dedup_responses(ds, params, near, judgments)
        parts.append(o)
        info.update(i)
        tables.update(o.tables)
    reasons, report = _merge(parts)
    return Outcome(
        tables,
        reasons=reasons,
        report=report if report is not None else REPORT_SCHEMA.empty_table(),
        info=info,
    )


register(
    Step(
        name=NAME,
        summary="drop exact and near-duplicate prompts and responses (MinHash/LSH), keeping "
        "the best-supported copy of each group",
        run=run,
        params=(
            Param(
                "what", "both", "what to dedup: prompts, responses (within a prompt) or both", WHAT
            ),
            Param("near", True, "also drop near copies (MinHash/LSH), not only exact ones"),
            Param(
                "threshold", 0.8, "Jaccard similarity of word sets from which texts are near copies"
            ),
            Param("num_perm", 128, "MinHash permutations (signature length)"),
            Param("ngram", 1, "words per MinHash shingle"),
            Param("seed", 1, "seed of the MinHash permutations"),
            Param(
                "judgments",
                "remap",
                "judgments/rankings of a dropped response copy: remap to the kept copy, or drop",
                JUDGMENTS,
            ),
        ),
        paper="Broder 1997, On the resemblance and containment of documents (MinHash); "
        "Indyk & Motwani 1998 (LSH)",
    )
)
