"""Exact and near-duplicate groups of prompts and responses, judgments with identical
sides, and content pairs repeated as separate items: the computations behind the
duplicates check (:mod:`prefkit.diagnostics.checks.duplicates`), reused by curation for
dedup. They return row indices, labels, flags and small Arrow tables; no findings.

What
    Per table (prompts or responses, :func:`scan_prompts`, :func:`scan_responses`):
    each row's exact key, the groups of rows with the same key, the verified
    near-duplicate pairs and the groups they form with the exact pairs, and which rows
    a dedup drops (all but the first row of a group, table order). For responses, the
    group of each response's prompt, which tells a duplicated example from a stock
    answer reused for other prompts (:func:`reused_answers`). Over the judgments: the
    ones whose two sides have the same text (:func:`identical_sides`) and the content
    pairs judged as several items (:func:`content_pair_repeats`).

Method
    * Exact keys: texts are lowercased and split on whitespace, and reduced to a 64-bit
      hash of their word sequence (:func:`prefkit.diagnostics.minhash.text_hashes`) in
      one streaming pass. A prompt's key also holds its ``context`` (persona, system,
      stance): the same question under two stances is not a copy. Rows are grouped in
      DuckDB by a window over the keys (``min(i) OVER (PARTITION BY key)``, 8 bytes a
      row), never on the text. Empty texts get a key of their own: never grouped. A
      DuckDB ``hash()`` of the raw text tells identical texts from case/whitespace-only
      ones.
    * Near pairs: MinHash (Broder, 1997, "On the resemblance and containment of
      documents") with LSH banding (Indyk & Motwani, 1998, "Approximate nearest
      neighbors: towards removing the curse of dimensionality"; Leskovec, Rajaraman &
      Ullman, "Mining of Massive Datasets", ch. 3) on word sets, candidates verified by
      the signature estimate (:mod:`prefkit.diagnostics.lsh`). Groups are the connected
      components of the exact and near pairs; a prompt's near pairs must share its
      context.
    * Content pairs: an item is a prompt id with an unordered pair of response ids; its
      label is the sign of its summed votes, orientated to the content pair (prompt key
      and the two response keys ordered by hash). Several judges on one item are
      disagreement (the agreement check), not repeats.

Memory
    Per text about 60 bytes in RAM (id, hashes, labels, flags), plus the near-duplicate
    engine's temporary files (:mod:`prefkit.diagnostics.lsh`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.lsh import NearDupIndex, NearDuplicates, components, pipelined
from prefkit.diagnostics.minhash import MinHashParams, concat, mix64, text_hashes, tokenize
from prefkit.engine import row, scalar

if TYPE_CHECKING:
    import duckdb


# --- DuckDB helpers ----------------------------------------------------------------------------
@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **tables: pa.Table) -> Iterator[None]:
    """Arrow tables registered as DuckDB views under their keyword names for the block."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield
    finally:
        for name in tables:
            con.unregister(name)


def _with_index(ids: pa.ChunkedArray) -> pa.Table:
    return pa.table({"id": ids, "i": pa.array(np.arange(len(ids), dtype=np.int64))})


def raw_hashes(con: duckdb.DuckDBPyConnection, texts: pa.Array) -> np.ndarray:
    """DuckDB's 64-bit hash of each text as it is (tells identical from case-only)."""
    with registered(con, _dup_texts=pa.table({"t": texts})):
        out = con.sql("SELECT hash(coalesce(t, '')) AS h FROM _dup_texts").to_arrow_table()
    return np.asarray(out.column(0).to_numpy(), np.uint64)


def exact_first(con: duckdb.DuckDBPyConnection, key: np.ndarray) -> np.ndarray:
    """For each row, the first row with the same key: a DuckDB window over the hashes
    (8 bytes a row, never the text)."""
    if len(key) == 0:
        return np.zeros(0, np.int64)
    keys = pa.table({"i": pa.array(np.arange(len(key))), "k": pa.array(key)})
    with registered(con, _dup_keys=keys):
        out = con.sql("SELECT i, min(i) OVER (PARTITION BY k) AS f FROM _dup_keys").fetchnumpy()
    first = np.empty(len(key), np.int64)
    first[np.asarray(out["i"], np.int64)] = np.asarray(out["f"], np.int64)
    return first


def context_hashes(ctx: Context, ids: pa.ChunkedArray) -> np.ndarray:
    """DuckDB hash of each prompt's ``context``, in ``ids`` order (0 without the column)."""
    cols = ctx.con.sql("SELECT * FROM _prompts LIMIT 0").columns
    h = np.zeros(len(ids), np.uint64)
    if "context" not in cols or not len(ids):
        return h
    with registered(ctx.con, _dup_ids=_with_index(ids)):
        out = ctx.con.sql(
            """SELECT d.i, any_value(hash(p.context)) AS h FROM _dup_ids d
               JOIN _prompts p ON p.prompt_id = d.id GROUP BY d.i"""
        ).fetchnumpy()
    h[np.asarray(out["i"], np.int64)] = np.asarray(out["h"], np.uint64)
    return h


def prompt_rows(ctx: Context, responses: pa.ChunkedArray, prompts: pa.ChunkedArray) -> np.ndarray:
    """Row (in ``prompts``) of each response's prompt; -1 when unknown."""
    with registered(ctx.con, _dup_r=_with_index(responses), _dup_p=_with_index(prompts)):
        out = ctx.con.sql(
            """SELECT d.i, any_value(p.i) AS p FROM _dup_r d
               JOIN _responses r ON r.response_id = d.id
               JOIN _dup_p p ON p.id = r.prompt_id GROUP BY d.i"""
        ).fetchnumpy()
    rows = np.full(len(responses), -1, np.int64)
    rows[np.asarray(out["i"], np.int64)] = np.asarray(out["p"], np.int64)
    return rows


# --- labels ------------------------------------------------------------------------------------
def first_rows(labels: np.ndarray) -> np.ndarray:
    """The first row (lowest index) of each label ``0 .. max`` (``n`` for an unused one)."""
    n = len(labels)
    first = np.full(int(labels.max()) + 1, n, np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first


def first_of(labels: np.ndarray) -> np.ndarray:
    """For each row, the first row (lowest index) with the same label."""
    return first_rows(labels)[labels] if len(labels) else np.zeros(0, np.int64)


def mix_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A hash of two uint64 columns."""
    h = a * np.uint64(0x9E3779B97F4A7C15)
    h ^= mix64(b + np.uint64(0x632BE59BD9B4E019))
    return mix64(h)


def groups_with_copies(labels: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the groups with a copy (``member`` marks copies) and their sizes."""
    if not member.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    has = np.unique(labels[member])
    sizes = np.bincount(labels, minlength=labels.max() + 1)[has]
    return has, sizes


def largest_groups(
    labels: np.ndarray, copy: np.ndarray, groups: np.ndarray, sizes: np.ndarray, top: int
) -> list[tuple[int, int, int]]:
    """``(size, kept row, first copy row)`` of the ``top`` largest of ``groups`` (from
    :func:`groups_with_copies`), largest first."""
    order = np.argsort(-sizes, kind="stable")[:top]
    chosen, chosen_sizes = groups[order], sizes[order]
    if not len(chosen):
        return []
    in_chosen = np.flatnonzero(copy & np.isin(labels, chosen))  # ascending rows
    label_of, first = np.unique(labels[in_chosen], return_index=True)
    first_copy = dict(zip(label_of.tolist(), in_chosen[first].tolist(), strict=True))
    kept = first_of(labels)
    out = []
    for g, size in zip(chosen.tolist(), chosen_sizes.tolist(), strict=True):
        c = first_copy[g]
        out.append((size, int(kept[c]), c))
    return out


# --- scanning a table --------------------------------------------------------------------------
@dataclass
class TextKeys:
    """One table's texts reduced to keys in one pass: ids, normalised-text hashes, raw
    hashes, words per text and (when asked) the verified near-duplicate pairs."""

    ids: pa.ChunkedArray
    text_hash: np.ndarray
    raw: np.ndarray
    n_tokens: np.ndarray
    near: NearDuplicates | None


@dataclass
class DupGroups:
    """How one table's rows group into copies.

    ``key`` (n,) uint64: exact key (normalised-text hash, plus the context for prompts);
    ``raw`` hash of the text as it is; ``empty`` texts get a key of their own (never
    grouped). ``exact_label`` groups rows with the same key; ``group`` is the connected
    component over exact and near pairs; ``exact_copy`` / ``near_copy`` mark the rows a
    dedup drops (all but the first row of an exact group / of a group, beyond the exact
    copies). ``prompt_group`` (responses only) is the group of each response's prompt
    (-1 when unknown); a response copy whose kept row answers a prompt of another group
    is a reused (stock) answer rather than a duplicated example.
    """

    name: str
    ids: pa.ChunkedArray
    key: np.ndarray
    raw: np.ndarray
    empty: np.ndarray
    near: NearDuplicates | None
    exact_label: np.ndarray
    group: np.ndarray
    exact_copy: np.ndarray
    near_copy: np.ndarray
    prompt_group: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.key)

    def copies(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """``(copy, labels)`` for ``kind`` "exact" (exact groups) or "near" (groups over
        exact and near pairs, copies beyond the exact ones)."""
        if kind == "exact":
            return self.exact_copy, self.exact_label
        return self.near_copy, self.group

    def other_prompt(self, copy: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Which ``copy`` rows answer another prompt group than their group's kept row."""
        if self.prompt_group is None:
            return np.zeros(self.n, bool)
        kept = first_of(labels)
        return copy & (self.prompt_group != self.prompt_group[kept])


def read_texts(ctx: Context, name: str, params: MinHashParams, near: bool = True) -> TextKeys:
    """Stream one table's texts once: ids, normalised and raw hashes, words, near pairs.

    Batches are tokenised and signed in worker threads; hashes and files are written in
    the main thread in table order (DuckDB connections are not shared across threads)."""
    total = ctx.n_batches(name)
    batches = ctx.track(ctx.texts(name), f"duplicates: {name}", total)
    ids, raws = [], []
    if near:
        with NearDupIndex(params) as index:
            signing = pipelined(batches, lambda b: index.sign(b[1]), index.threads)
            for (batch_ids, texts), signed in signing:
                index.write(batch_ids, signed)
                ids.append(batch_ids)
                raws.append(raw_hashes(ctx.con, texts))
            res = index.finish()
        return TextKeys(
            pa.chunked_array(ids, pa.string()),
            res.text_hash,
            concat(raws, np.uint64),
            res.n_tokens.astype(np.int64),
            res,
        )
    hashes, counts = [], []
    for batch_ids, texts in batches:
        tokens = tokenize(texts)
        ids.append(batch_ids)
        hashes.append(text_hashes(tokens))
        counts.append(tokens.counts)
        raws.append(raw_hashes(ctx.con, texts))
    return TextKeys(
        pa.chunked_array(ids, pa.string()),
        concat(hashes, np.uint64),
        concat(raws, np.uint64),
        concat(counts, np.int64),
        None,
    )


def group_rows(
    ctx: Context, name: str, read: TextKeys, key: np.ndarray, same: np.ndarray
) -> DupGroups:
    """Group a table's rows: exact groups by key, then components with the verified near
    pairs whose two rows have equal ``same`` (the context of a prompt)."""
    n = len(key)
    empty = read.n_tokens == 0
    key = key.copy()
    # empty texts are never grouped: give each a key of its own
    key[empty] = mix64(np.arange(int(empty.sum()), dtype=np.uint64) + np.uint64(0x5BD1E995))
    exact_label = exact_first(ctx.con, key)  # a group is labelled by its first row
    rows = np.arange(n)
    exact_copy = exact_label != rows
    left, right = [rows[exact_copy]], [exact_label[exact_copy]]
    near = read.near
    if near is not None and len(near.left):
        ok = same[near.left] == same[near.right]
        left.append(near.left[ok])
        right.append(near.right[ok])
    group = components(n, np.concatenate(left), np.concatenate(right))
    near_copy = (first_of(group) != rows) & ~exact_copy
    return DupGroups(
        name, read.ids, key, read.raw, empty, near, exact_label, group, exact_copy, near_copy
    )


def scan_prompts(ctx: Context, params: MinHashParams, near: bool = True) -> DupGroups:
    """Exact and near groups of the prompts (a prompt's key holds its context)."""
    read = read_texts(ctx, "prompts", params, near)
    context = context_hashes(ctx, read.ids)
    return group_rows(ctx, "prompts", read, mix_keys(read.text_hash, context), context)


def scan_responses(
    ctx: Context, params: MinHashParams, near: bool = True, prompts: DupGroups | None = None
) -> DupGroups:
    """Exact and near groups of the responses, with the group of each one's prompt."""
    read = read_texts(ctx, "responses", params, near)
    n = len(read.text_hash)
    scan = group_rows(ctx, "responses", read, read.text_hash, np.zeros(n, np.int64))
    if prompts is None:
        scan.prompt_group = np.full(n, -1, np.int64)
    else:
        rows = prompt_rows(ctx, read.ids, prompts.ids)
        scan.prompt_group = np.where(rows >= 0, prompts.group[np.maximum(rows, 0)], -1)
    return scan


def reused_answers(scan: DupGroups, top: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Exact response copies whose kept row answers another prompt group (stock answers):
    how many, and the most reused texts as ``(kept row, prompt groups, rows)``."""
    labels = scan.exact_label
    other = scan.other_prompt(scan.exact_copy, labels)
    if not other.any() or scan.prompt_group is None:
        return 0, []
    reused = np.unique(labels[other])
    inside = np.isin(labels, reused)
    width = int(scan.prompt_group.max()) + 2
    pairs = np.unique(labels[inside] * width + scan.prompt_group[inside] + 1)
    spread = np.bincount(pairs // width, minlength=int(labels.max()) + 1)
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    first = first_rows(labels)
    order = reused[np.argsort(-size[reused], kind="stable")][:top]
    return int(other.sum()), [(int(first[g]), int(spread[g]), int(size[g])) for g in order]


# --- judgments: identical sides and repeated content pairs -------------------------------------
@contextmanager
def judgment_keys(ctx: Context, prompts: DupGroups | None, responses: DupGroups) -> Iterator[None]:
    """The keys the judgment queries join on, for the block: ``_dup_rk`` (responses:
    ``id, h`` key, ``raw``, ``empty``, row ``i``) and ``_dup_pk`` (prompts: ``id, h``;
    a hash of the prompt id when there is no prompts table)."""
    rk = pa.table(
        {
            "id": responses.ids,
            "h": pa.array(responses.key, pa.uint64()),
            "raw": pa.array(responses.raw, pa.uint64()),
            "empty": pa.array(responses.empty),
            "i": pa.array(np.arange(responses.n)),
        }
    )
    if prompts is not None:
        pk = pa.table({"id": prompts.ids, "h": pa.array(prompts.key, pa.uint64())})
    else:
        pk = ctx.con.sql(
            "SELECT DISTINCT prompt_id AS id, hash(prompt_id) AS h FROM _judgments"
        ).to_arrow_table()
    with registered(ctx.con, _dup_rk=rk, _dup_pk=pk):
        yield


def identical_sides(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Judgments whose sides are one response or texts equal up to case/whitespace
    (empty texts left out): ``judgment_id, prompt_id, a, b, outcome, kind`` with kind
    'same response', 'identical text' or 'case/whitespace only'. Needs
    :func:`judgment_keys`."""
    return con.sql(
        """SELECT j.judgment_id, j.prompt_id, j.a, j.b, j.outcome,
                  CASE WHEN j.a = j.b THEN 'same response'
                       WHEN ra.raw = rb.raw THEN 'identical text'
                       ELSE 'case/whitespace only' END AS kind
           FROM _judgments j
           JOIN _dup_rk ra ON ra.id = j.a JOIN _dup_rk rb ON rb.id = j.b
           WHERE j.a = j.b OR (ra.h = rb.h AND NOT ra.empty)
           ORDER BY j.judgment_id"""
    ).to_arrow_table()


def empty_side_judgments(con: duckdb.DuckDBPyConnection) -> int:
    """Judgments with an empty text on a side. Needs :func:`judgment_keys`."""
    return int(
        scalar(
            con,
            """SELECT count(*) FROM _judgments j
               JOIN _dup_rk ra ON ra.id = j.a JOIN _dup_rk rb ON rb.id = j.b
               WHERE ra.empty OR rb.empty""",
        )
    )


def near_identical_sides(con: duckdb.DuckDBPyConnection, responses: DupGroups) -> int:
    """Judgments whose two sides are a verified near-duplicate pair (not identical).
    Needs :func:`judgment_keys`."""
    near = responses.near
    if near is None or not len(near.left):
        return 0
    distinct = responses.key[near.left] != responses.key[near.right]
    pairs = pa.table({"l": pa.array(near.left[distinct]), "r": pa.array(near.right[distinct])})
    with registered(con, _dup_np=pairs):
        return int(
            scalar(
                con,
                """SELECT count(*) FROM _judgments j
                   JOIN _dup_rk ra ON ra.id = j.a JOIN _dup_rk rb ON rb.id = j.b
                   JOIN _dup_np p ON p.l = least(ra.i, rb.i) AND p.r = greatest(ra.i, rb.i)""",
            )
        )


@dataclass
class Repeats:
    """Content pairs judged as two or more items (:func:`content_pair_repeats`).

    ``pairs`` repeated content pairs and ``judgments`` in them; ``contradictory`` pairs
    with one item won by the first text and one by the second, ``contradictory_judgments``
    in them; ``tie_vs_win`` pairs with a tie against a win (not contradictory). ``items``
    of the contradictory pairs: ``pk, h1, h2, prompt_id, i1, i2, label, judgments,
    items``, largest pairs first.
    """

    pairs: int
    judgments: int
    contradictory: int
    contradictory_judgments: int
    tie_vs_win: int
    items: pa.Table


def content_pair_repeats(con: duckdb.DuckDBPyConnection) -> Repeats:
    """Items (prompt id, unordered response ids) grouped by content pair (prompt key,
    the two response keys ordered by hash), with pairs of distinct non-empty texts only.
    Leaves the temporary tables ``_dup_items`` and ``_dup_groups``. Needs
    :func:`judgment_keys`."""
    con.sql(
        """CREATE OR REPLACE TEMP TABLE _dup_items AS
           WITH j AS (
             SELECT j.judgment_id, j.prompt_id, j.a, j.b, j.outcome, p.h AS pk,
                    ra.h AS ha, rb.h AS hb
             FROM _judgments j
             JOIN _dup_pk p ON p.id = j.prompt_id
             JOIN _dup_rk ra ON ra.id = j.a JOIN _dup_rk rb ON rb.id = j.b
             WHERE ra.h <> rb.h AND NOT ra.empty AND NOT rb.empty
           )
           SELECT pk, least(ha, hb) AS h1, greatest(ha, hb) AS h2, prompt_id,
                  least(a, b) AS i1, greatest(a, b) AS i2,
                  sign(sum(CASE WHEN ha < hb THEN outcome ELSE -outcome END)) AS label,
                  count(*) AS n, list(judgment_id ORDER BY judgment_id) AS judgments
           FROM j GROUP BY ALL"""
    )
    con.sql(
        """CREATE OR REPLACE TEMP TABLE _dup_groups AS
           SELECT pk, h1, h2, count(*) AS items, sum(n) AS judgments,
                  max(label) = 1 AND min(label) = -1 AS contradicts,
                  (max(label) <> min(label)) AND NOT (max(label) = 1 AND min(label) = -1) AS tie_vs_win
           FROM _dup_items GROUP BY pk, h1, h2 HAVING count(*) >= 2"""
    )
    (pairs, judgments, contra, contra_judgments, tie_vs_win) = row(
        con,
        """SELECT count(*), coalesce(sum(judgments), 0),
                  count(*) FILTER (contradicts), coalesce(sum(judgments) FILTER (contradicts), 0),
                  count(*) FILTER (tie_vs_win)
           FROM _dup_groups""",
    )
    items = con.sql(
        """SELECT i.pk, i.h1, i.h2, i.prompt_id, i.i1, i.i2, i.label, i.judgments, g.items
           FROM _dup_items i JOIN _dup_groups g USING (pk, h1, h2)
           WHERE g.contradicts ORDER BY g.judgments DESC, i.pk, i.h1, i.h2, i.prompt_id, i.i1"""
    ).to_arrow_table()
    return Repeats(
        int(pairs), int(judgments), int(contra), int(contra_judgments), int(tie_vs_win), items
    )


__all__ = [
    "DupGroups",
    "Repeats",
    "TextKeys",
    "content_pair_repeats",
    "context_hashes",
    "empty_side_judgments",
    "exact_first",
    "first_of",
    "first_rows",
    "group_rows",
    "groups_with_copies",
    "identical_sides",
    "judgment_keys",
    "largest_groups",
    "mix_keys",
    "near_identical_sides",
    "prompt_rows",
    "raw_hashes",
    "read_texts",
    "reused_answers",
    "scan_prompts",
    "scan_responses",
]
