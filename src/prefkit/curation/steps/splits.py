"""Splits: train/validation/test by prompt, stratified, with duplicates kept together.

What
    Every prompt gets a split (``train``, ``validation``, ``test`` by default) written as
    the meta column ``split`` on ``prompts`` and, through the prompt, on ``responses``,
    ``judgments`` and ``rankings`` (so exports can filter any table). A prompt is in one
    split only, so its responses and pairs are too: nothing a model trains on shares a
    prompt with what it is evaluated on.

Method
    1. Units: with ``group_duplicates`` (default), prompts that are copies of each other
       form one unit: exact duplicates (same normalised text and context, the inspect
       machinery's exact keys, :func:`prefkit.diagnostics.dupes.scan_prompts`) and, with
       ``near=true``, MinHash/LSH near duplicates too. A unit never straddles splits,
       which is what keeps a test prompt's copy out of train (Lee et al., 2022,
       "Deduplicating Training Data Makes Language Models Better", on train/test overlap
       from near duplicates).
    2. Strata: with ``stratify``, a unit's stratum is the value of that prompt meta column
       (e.g. ``category``, ``source``) for its first prompt; a column of the responses
       instead (e.g. ``source``: the model) gives the set of values of the prompt's
       responses, sorted and joined by ``+``. Nulls are a stratum of their own.
    3. Within each stratum, units are ordered by a seeded hash of their first prompt id
       (not by input order) and laid end to end, weighted by their prompt count; a unit
       goes to the split its midpoint falls in. Each stratum's proportions therefore
       match ``fractions`` up to one unit.

Deterministic: the same data and ``seed`` give the same splits, whatever the row order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation.step import Outcome, Param, Step, register
from prefkit.diagnostics.dupes import first_of, scan_prompts
from prefkit.engine import connect
from prefkit.errors import PrefkitError
from prefkit.schema import CORE

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

NAME = "split"
COLUMN = "split"


# --- helpers ---------------------------------------------------------------------------------
def parse_fractions(text: str, names: str) -> tuple[np.ndarray, list[str]]:
    """Fractions and split names, checked: as many of each, non-negative, summing to 1."""
    try:
        fractions = np.array([float(x) for x in text.split(",") if x.strip()], np.float64)
    except ValueError:
        raise PrefkitError(
            f"curate {NAME}: parameter 'fractions' expects numbers separated by commas, "
            f"got {text!r}"
        ) from None
    labels = [n.strip() for n in names.split(",") if n.strip()]
    if len(fractions) == 0 or (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-6:
        raise PrefkitError(
            f"curate {NAME}: parameter 'fractions' must be non-negative and sum to 1, got {text!r}"
        )
    if len(labels) != len(fractions) or len(set(labels)) != len(labels):
        raise PrefkitError(
            f"curate {NAME}: parameter 'names' must give {len(fractions)} distinct names "
            f"(one per fraction), got {names!r}"
        )
    return fractions, labels


def _units(ds: Dataset, group: bool, near: bool, threshold: float) -> np.ndarray:
    """Per prompt row, the row of the first prompt of its duplicate unit."""
    n = ds.num_rows("prompts")
    if not group or n == 0:
        return np.arange(n)
    from prefkit.diagnostics.context import Context
    from prefkit.diagnostics.minhash import MinHashParams

    ctx = Context(ds)
    try:
        scan = scan_prompts(ctx, MinHashParams(threshold=threshold), near=near)
    finally:
        if ctx._con is not None:
            ctx._con.close()
    return first_of(scan.group)


def _strata(ds: Dataset, column: str | None, ids: pa.ChunkedArray) -> np.ndarray:
    """Per prompt row, an integer stratum code."""
    n = len(ids)
    if not column:
        return np.zeros(n, np.int64)
    prompts = ds.prompts
    if column in prompts.column_names and column not in CORE["prompts"].names:
        values = prompts.column(column).cast(pa.string())
    elif column in ds.responses.column_names and column not in ("response_id", "prompt_id"):
        con = connect()
        try:
            con.register("_r", ds.relation(con, "responses"))
            agg = con.sql(
                f"""SELECT prompt_id, string_agg(DISTINCT "{column}"::VARCHAR, '+'
                                                 ORDER BY "{column}"::VARCHAR) AS v
                    FROM _r GROUP BY prompt_id"""
            ).to_arrow_table()
        finally:
            con.close()
        values = agg.column("v").take(pc.index_in(ids, value_set=agg.column("prompt_id")))
    else:
        raise PrefkitError(
            f"curate {NAME}: parameter 'stratify': no prompt meta column or responses column "
            f"{column!r}"
        )
    values = pc.fill_null(values, "\x00null")
    return np.asarray(pc.dictionary_encode(values).combine_chunks().indices, np.int64)


def _hash_keys(ids: pa.ChunkedArray, seed: int) -> np.ndarray:
    """A seeded 64-bit hash of each id (DuckDB, vectorised)."""
    con = connect()
    try:
        con.register("_ids", pa.table({"id": ids}))
        out = con.sql(f"SELECT hash(id || '|{int(seed)}') AS h FROM _ids").fetchnumpy()
    finally:
        con.close()
    return np.asarray(out["h"], np.uint64)


def assign(
    unit: np.ndarray, stratum: np.ndarray, key: np.ndarray, fractions: np.ndarray
) -> np.ndarray:
    """Split index of every row: units laid end to end per stratum in ``key`` order,
    each to the split its midpoint falls in. A unit is represented by its member with the
    smallest key (its key and stratum), so the result does not depend on row order."""
    n = len(unit)
    if n == 0:
        return np.zeros(0, np.int64)
    by_unit = np.lexsort((key, unit))
    starts = np.flatnonzero(np.concatenate([[True], unit[by_unit][1:] != unit[by_unit][:-1]]))
    rep = by_unit[starts]  # (U,) representative row of each unit
    size = np.diff(np.concatenate([starts, [n]])).astype(np.float64)
    order = np.lexsort((key[rep], stratum[rep]))
    s, st = size[order], stratum[rep][order]
    start_of = np.concatenate([[0.0], np.cumsum(s)[:-1]])
    new = np.concatenate([[True], st[1:] != st[:-1]])
    base = np.maximum.accumulate(np.where(new, start_of, 0.0))  # stratum start
    index = np.cumsum(new) - 1
    totals = np.bincount(index, weights=s)[index]  # prompts in the unit's stratum
    mid = (start_of - base + s / 2) / totals
    bounds = np.cumsum(fractions)[:-1] / fractions.sum()
    which = np.empty(len(rep), np.int64)
    which[order] = np.searchsorted(bounds, mid, side="right")
    split_of = np.empty(n, np.int64)
    split_of[unit[rep]] = which
    return split_of[unit]


def _labelled(table: pa.Table, labels: pa.Array) -> pa.Table:
    if COLUMN in table.column_names:
        table = table.drop_columns([COLUMN])
    return table.append_column(COLUMN, labels)


# --- core ------------------------------------------------------------------------------------
def run(
    ds: Dataset,
    *,
    fractions: str,
    names: str,
    stratify: str | None,
    seed: int,
    group_duplicates: bool,
    near: bool,
    threshold: float,
) -> Outcome:
    """Write ``split`` on every table by prompt (see the module docstring)."""
    fracs, labels = parse_fractions(fractions, names)
    prompts = ds.prompts
    ids = prompts.column("prompt_id")
    unit = _units(ds, group_duplicates, near, threshold)
    stratum = _strata(ds, stratify, ids)
    which = assign(unit, stratum, _hash_keys(ids, seed), fracs)
    split = pa.array(np.asarray(labels, dtype=object)[which] if len(which) else [], pa.string())
    tables = {"prompts": _labelled(prompts, split)}
    counts: dict[str, dict[str, int]] = {}
    for name in ("responses", "judgments", "rankings"):
        table = ds.table(name)
        if not table.num_rows and name != "responses":
            continue
        rows = pc.index_in(table.column("prompt_id"), value_set=ids)
        col = split.take(rows)
        tables[name] = _labelled(table, col)
        counts[name] = _counts(col, labels)
    counts["prompts"] = _counts(split, labels)
    info = {
        "splits": counts,
        "strata": len(np.unique(stratum)) if len(stratum) else 0,
        "units": len(np.unique(unit)),
        "prompts_grouped_with_a_copy": int((unit != np.arange(len(unit))).sum()),
    }
    return Outcome(tables, info=info)


def _counts(col: pa.Array, labels: list[str]) -> dict[str, int]:
    vc = {d["values"]: d["counts"] for d in pc.value_counts(col).to_pylist()}
    out = {name: int(vc.get(name, 0)) for name in labels}
    if vc.get(None):
        out["(no prompt)"] = int(vc[None])
    return out


# --- entry point -----------------------------------------------------------------------------
register(
    Step(
        name=NAME,
        summary="Train/validation/test split by prompt (stratified, duplicates kept together) "
        "as a 'split' column on every table",
        run=run,
        params=(
            Param("fractions", "0.8,0.1,0.1", "fraction of prompts per split, summing to 1"),
            Param("names", "train,validation,test", "split names, one per fraction"),
            Param(
                "stratify",
                None,
                "prompt meta column (category, source) or responses column (source) to stratify by",
            ),
            Param("seed", 0, "seed of the assignment"),
            Param("group_duplicates", True, "exact duplicate prompts go to one split"),
            Param("near", False, "with group_duplicates: near duplicates (MinHash) too"),
            Param(
                "threshold",
                0.8,
                "near: word-set Jaccard similarity from which prompts are near duplicates",
            ),
        ),
        paper="",
    )
)
