"""Removing rows without leaving dangling references.

Dropping a prompt drops its responses, judgments and rankings; dropping a response drops
the judgments that compare it and takes it out of every ranking (a tier left empty goes,
a ranking left with fewer than two responses goes). Everything is vectorised with Arrow
compute; rankings are rebuilt from their flattened tiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation.step import Outcome, report_table

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

IdsLike: TypeAlias = "pa.Array | pa.ChunkedArray | Iterable[str] | None"


def _ids(values: IdsLike) -> pa.Array:
    if values is None:
        return pa.array([], pa.string())
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks().cast(pa.string())
    if isinstance(values, pa.Array):
        return values.cast(pa.string())
    return pa.array(list(values), pa.string())


def _keep(table: pa.Table, column: str, gone: pa.Array) -> pa.Array:
    """Mask of rows whose ``column`` is not in ``gone``."""
    if len(gone) == 0:
        return pa.array(np.ones(table.num_rows, bool))
    return pc.invert(pc.fill_null(pc.is_in(table.column(column), value_set=gone), False))


def drop_rows(
    ds: Dataset,
    reason: str,
    *,
    prompts: IdsLike = None,
    responses: IdsLike = None,
    judgments: IdsLike = None,
    rankings: IdsLike = None,
) -> Outcome:
    """An :class:`Outcome` dropping the given ids and everything that refers to them.

    ``reasons`` counts the rows removed per table under ``reason`` (directly) and
    ``"<reason> (cascade)"`` (because something they refer to went); the report lists
    every removed id with the same reason.
    """
    gone_p, gone_r = _ids(prompts), _ids(responses)
    gone_j, gone_k = _ids(judgments), _ids(rankings)
    out: dict[str, pa.Table] = {}
    reasons: dict[str, dict[str, int]] = {}
    reports: list[pa.Table] = []

    def note(table: str, before: pa.Table, mask: pa.Array, direct: pa.Array, why: str) -> None:
        removed = before.filter(pc.invert(mask))
        if removed.num_rows == 0:
            return
        id_col = removed.column(_ID[table])
        is_direct = pc.fill_null(pc.is_in(id_col, value_set=direct), False)
        n_direct = int(pc.sum(is_direct).as_py() or 0)
        counts = {why: n_direct, f"{why} (cascade)": removed.num_rows - n_direct}
        reasons[table] = {k: v for k, v in counts.items() if v}
        reports.append(report_table(table, id_col.filter(is_direct), why))
        reports.append(report_table(table, id_col.filter(pc.invert(is_direct)), f"{why} (cascade)"))

    if len(gone_p):
        p = ds.prompts
        mask = _keep(p, "prompt_id", gone_p)
        note("prompts", p, mask, gone_p, reason)
        out["prompts"] = p.filter(mask)
    r = ds.responses
    r_mask = pc.and_(_keep(r, "response_id", gone_r), _keep(r, "prompt_id", gone_p))
    if not pc.all(r_mask).as_py() and r.num_rows:
        note("responses", r, r_mask, gone_r, reason)
        out["responses"] = r.filter(r_mask)
        gone_r = pc.unique(
            pa.concat_arrays([gone_r, _ids(r.filter(pc.invert(r_mask)).column("response_id"))])
        )
    j = ds.judgments
    if j.num_rows:
        j_mask = _keep(j, "judgment_id", gone_j)
        for column, gone in (("prompt_id", gone_p), ("a", gone_r), ("b", gone_r)):
            j_mask = pc.and_(j_mask, _keep(j, column, gone))
        if not pc.all(j_mask).as_py():
            note("judgments", j, j_mask, gone_j, reason)
            out["judgments"] = j.filter(j_mask)
    k = ds.rankings
    if k.num_rows:
        k_mask = pc.and_(_keep(k, "ranking_id", gone_k), _keep(k, "prompt_id", gone_p))
        kept = k.filter(k_mask)
        if len(gone_r):
            kept, short = _strip_responses(kept, gone_r)
            k_mask = pc.and_(k_mask, pc.invert(pc.is_in(k.column("ranking_id"), value_set=short)))
        if not pc.all(k_mask).as_py() or len(gone_r):
            note("rankings", k, k_mask, gone_k, reason)
            out["rankings"] = kept
    report = pa.concat_tables(reports) if reports else None
    return Outcome(out, reasons=reasons, report=report)


_ID = {"prompts": "prompt_id", "responses": "response_id", "judgments": "judgment_id",
       "rankings": "ranking_id"}  # fmt: skip


def _strip_responses(rankings: pa.Table, gone: pa.Array) -> tuple[pa.Table, pa.Array]:
    """Rankings without the ``gone`` responses: empty tiers removed; returns the kept
    rankings and the ids of those left with fewer than two responses (dropped)."""
    tiers = rankings.column("tiers").combine_chunks()
    tier_lists = pc.list_flatten(tiers)  # one row per tier
    ids = pc.list_flatten(tier_lists)  # one row per response id
    keep_id = pc.invert(pc.fill_null(pc.is_in(ids, value_set=gone), False))
    tier_len = np.asarray(pc.list_value_length(tier_lists).to_numpy(zero_copy_only=False), np.int64)
    tier_of_id = np.repeat(np.arange(len(tier_lists)), tier_len)
    keep_np = np.asarray(keep_id.to_numpy(zero_copy_only=False), bool)
    new_tier_len = np.bincount(tier_of_id[keep_np], minlength=len(tier_lists))
    ranking_tiers = np.asarray(pc.list_value_length(tiers).to_numpy(zero_copy_only=False), np.int64)
    ranking_of_tier = np.repeat(np.arange(len(tiers)), ranking_tiers)
    nonempty = new_tier_len > 0
    new_tiers_per_ranking = np.bincount(ranking_of_tier[nonempty], minlength=len(tiers))
    ids_per_ranking = np.bincount(ranking_of_tier, weights=new_tier_len, minlength=len(tiers))
    inner = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(new_tier_len[nonempty])]).astype(np.int32)),
        ids.filter(keep_id),
    )
    outer = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(new_tiers_per_ranking)]).astype(np.int32)), inner
    )
    table = rankings.set_column(
        rankings.schema.get_field_index("tiers"),
        "tiers",
        outer.cast(rankings.schema.field("tiers").type),
    )
    enough = pa.array(ids_per_ranking >= 2)
    short = table.filter(pc.invert(enough)).column("ranking_id").combine_chunks()
    return table.filter(enough), short


__all__ = ["drop_rows"]
