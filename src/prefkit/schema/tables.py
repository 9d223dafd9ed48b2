"""The canonical preference data model: five Arrow tables and their column contracts.

A dataset is a small set of Arrow tables (see DESIGN.md §1):

* ``prompts``    one context to respond to
* ``responses``  one candidate answer to a prompt
* ``judgments``  one pairwise comparison by one judge
* ``rankings``   one ordering (with ties) by one judge
* ``annotators`` one judge and its profile

Every table has a fixed set of *core* columns with fixed Arrow types. Any other column
is a free *meta* column (source file, category, language, split, ...) and is carried
through untouched. This module holds no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1

# --- outcome encoding -------------------------------------------------------------------
A_WINS = 1
B_WINS = -1
TIE = 0
OUTCOMES = (A_WINS, TIE, B_WINS)
TIE_KINDS = ("good", "bad")
ANNOTATOR_KINDS = ("human", "ai", "rule", "unknown")

# --- column types -----------------------------------------------------------------------
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
STR_MAP = pa.map_(pa.string(), pa.string())
NUM_MAP = pa.map_(pa.string(), pa.float64())
MEDIA = pa.list_(pa.struct([("uri", pa.string()), ("mime", pa.string())]))
TIERS = pa.list_(pa.list_(pa.string()))

CORE: dict[str, pa.Schema] = {
    "prompts": pa.schema(
        [
            pa.field("prompt_id", pa.string(), nullable=False),
            pa.field("messages", MESSAGES),
            pa.field("context", STR_MAP),
        ]
    ),
    "responses": pa.schema(
        [
            pa.field("response_id", pa.string(), nullable=False),
            pa.field("prompt_id", pa.string(), nullable=False),
            pa.field("messages", MESSAGES),
            pa.field("source", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("attributes", NUM_MAP),
            pa.field("media", MEDIA),
        ]
    ),
    "judgments": pa.schema(
        [
            pa.field("judgment_id", pa.string(), nullable=False),
            pa.field("prompt_id", pa.string(), nullable=False),
            pa.field("a", pa.string(), nullable=False),
            pa.field("b", pa.string(), nullable=False),
            pa.field("outcome", pa.int8(), nullable=False),
            pa.field("tie_kind", pa.string()),
            pa.field("strength", pa.float64()),
            pa.field("annotator_id", pa.string()),
            pa.field("annotator_kind", pa.string()),
            pa.field("rationale", pa.string()),
        ]
    ),
    "rankings": pa.schema(
        [
            pa.field("ranking_id", pa.string(), nullable=False),
            pa.field("prompt_id", pa.string(), nullable=False),
            pa.field("tiers", TIERS),
            pa.field("annotator_id", pa.string()),
        ]
    ),
    "annotators": pa.schema(
        [
            pa.field("annotator_id", pa.string(), nullable=False),
        ]
    ),
}
TABLES: tuple[str, ...] = tuple(CORE)
ID_COLUMN = {
    "prompts": "prompt_id",
    "responses": "response_id",
    "judgments": "judgment_id",
    "rankings": "ranking_id",
    "annotators": "annotator_id",
}


class SchemaError(ValueError):
    """A table does not satisfy the data model's column contract."""


def empty_table(name: str) -> pa.Table:
    """An empty table with the core schema of ``name``."""
    return CORE[name].empty_table()


def conform(name: str, table: pa.Table) -> pa.Table:
    """Return ``table`` with core columns in canonical order and types, meta columns after.

    Missing nullable core columns are added as nulls; a missing id/key column or a column
    that cannot be cast raises :class:`SchemaError` naming the table and column.
    """
    core = CORE[name]
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for field in core:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaError(
                        f"table {name!r}: column {field.name!r} has type {col.type}, "
                        f"expected {field.type}"
                    ) from exc
            if not field.nullable and col.null_count:
                raise SchemaError(f"table {name!r}: column {field.name!r} has null values")
        elif field.nullable:
            col = pa.nulls(table.num_rows, field.type)
        else:
            raise SchemaError(f"table {name!r}: required column {field.name!r} is missing")
        columns.append(col)
        fields.append(field)
    for meta_name in table.column_names:
        if meta_name not in core.names:
            columns.append(table.column(meta_name))
            fields.append(table.schema.field(meta_name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def meta_columns(name: str, table: pa.Table) -> list[str]:
    """Names of the free meta columns of a table (everything that is not core)."""
    return [c for c in table.column_names if c not in CORE[name].names]


def messages(*turns: tuple[str, str]) -> list[dict[str, str]]:
    """Build a messages list from ``(role, content)`` pairs."""
    return [{"role": role, "content": content} for role, content in turns]


def text_of(msgs: Sequence[Mapping[str, Any]] | None) -> str:
    """Plain text of a messages list: the contents joined by blank lines."""
    if not msgs:
        return ""
    return "\n\n".join(str(m.get("content") or "") for m in msgs)


class TableBuilder:
    """Accumulates rows for one table column-wise, meta columns included.

    Meta columns may appear at any row; earlier rows get nulls. ``build`` returns a
    conformed Arrow table and resets the builder, so it can be used batch by batch.
    """

    def __init__(self, name: str):
        self.name = name
        self._core = CORE[name].names
        self._cols: dict[str, list[Any]] = {c: [] for c in self._core}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, **row: Any) -> None:
        for key, value in row.items():
            col = self._cols.get(key)
            if col is None:
                col = self._cols[key] = [None] * self._n
            col.append(value)
        self._n += 1
        for col in self._cols.values():
            if len(col) < self._n:
                col.append(None)

    def build(self) -> pa.Table:
        arrays = {}
        for key, values in self._cols.items():
            if key in self._core:
                arrays[key] = pa.array(values, type=CORE[self.name].field(key).type)
            else:
                arrays[key] = _infer_array(values)
        table = conform(self.name, pa.table(arrays) if arrays else empty_table(self.name))
        self._cols = {c: [] for c in self._core}
        self._n = 0
        return table


def _infer_array(values: list[Any]) -> pa.Array:
    """Arrow array for a meta column; mixed scalar types, and integers beyond 64 bits, fall
    back to strings (their exact decimal text, so nothing is lost)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def concat(name: str, tables: Iterable[pa.Table]) -> pa.Table:
    """Concatenate tables of one kind, unifying meta columns (missing ones become null)."""
    parts = [t for t in tables if t.num_rows or t.num_columns]
    if not parts:
        return empty_table(name)
    try:
        out = pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Meta columns with clashing types across parts: fall back to strings for those.
        clash = _clashing_meta(name, parts)
        parts = [_stringify(t, clash) for t in parts]
        out = pa.concat_tables(parts, promote_options="permissive")
    return conform(name, out)


def _clashing_meta(name: str, parts: list[pa.Table]) -> set[str]:
    seen: dict[str, pa.DataType] = {}
    clash: set[str] = set()
    for t in parts:
        for f in t.schema:
            if f.name in CORE[name].names or pa.types.is_null(f.type):
                continue
            if f.name in seen and seen[f.name] != f.type:
                clash.add(f.name)
            seen.setdefault(f.name, f.type)
    return clash


def _stringify(table: pa.Table, names: set[str]) -> pa.Table:
    for n in names & set(table.column_names):
        i = table.column_names.index(n)
        col = table.column(n)
        try:
            new = col.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            new = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        table = table.set_column(i, n, new)
    return table
