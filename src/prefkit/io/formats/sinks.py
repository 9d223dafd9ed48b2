"""Where a writer's rows go: the output container and the streaming writers.

Every format writer picks its container the same way (:func:`output_container`: the
``container`` option, else the file name's suffix, else a default; a ``.gz`` name
compresses the text containers) and writes through one of two helpers:

* :func:`write_table` for an Arrow table or a stream of record batches;
* :func:`write_records` for row dicts (nested JSON trees included), batched here.

Both write JSON Lines, a JSON array, Parquet or CSV/TSV batch by batch, so memory does
not grow with the output. The layout of the rows (which columns, in which order, what a
row holds) stays with each format's adapter.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from prefkit.errors import PrefkitError
from prefkit.io.records import container_of

#: Containers a writer can produce (a format may allow fewer).
OUTPUT_CONTAINERS = ("jsonl", "json", "parquet", "csv", "tsv")
#: pa.Table | pa.RecordBatchReader per batch when a table is written.
WRITE_BATCH = 50_000
#: pa.Table | pa.RecordBatchReader per batch when row dicts are written.
RECORD_BATCH = 10_000


def output_container(
    path: Path,
    options: Mapping[str, Any],
    default: str = "jsonl",
    *,
    allowed: tuple[str, ...] = OUTPUT_CONTAINERS,
    fmt: str | None = None,
) -> tuple[str, bool]:
    """(container, gzip?) for writing ``path``.

    The container is ``options["container"]``, else the one the path's suffixes name
    (``.jsonl.gz`` -> ``jsonl``), else ``default``; gzip is on for a text container whose
    file name ends in ``.gz``.

    Raises
    ------
    PrefkitError
        When the container is not one of ``allowed`` (named after ``fmt`` when given).
    """
    chosen = options.get("container") or container_of(Path(path)) or default
    if chosen not in allowed:
        where = f"{fmt}: " if fmt else ""
        raise PrefkitError(
            f"{where}cannot write container {chosen!r}; use one of {', '.join(allowed)}"
        )
    return str(chosen), chosen != "parquet" and Path(path).name.lower().endswith(".gz")


def write_table(
    table: pa.Table | pa.RecordBatchReader,
    path: Path,
    options: Mapping[str, Any],
    *,
    fmt: str,
    default: str = "jsonl",
    json_cells: bool = False,
) -> None:
    """Write ``table`` (or a stream of batches) to ``path`` as JSONL, JSON, Parquet or
    CSV/TSV, batch by batch, in the container :func:`output_container` picks.

    With ``json_cells``, list and struct columns are written to CSV/TSV as JSON text.

    Raises
    ------
    PrefkitError
        For CSV/TSV output of list-valued (conversational) columns without ``json_cells``.
    """
    container, gz = output_container(path, options, default, fmt=fmt)
    if container in ("jsonl", "json"):
        _write_json(_json_lines(table), path, container, gz)
    else:
        _write_arrow(_batches(table), table.schema, path, container, gz, fmt, json_cells)


def write_records(
    rows: Iterable[Mapping[str, Any]],
    path: Path,
    options: Mapping[str, Any],
    *,
    fmt: str,
    schema: pa.Schema | None = None,
    default: str = "jsonl",
    json_cells: bool = False,
) -> None:
    """Write row dicts to ``path`` like :func:`write_table`, :data:`RECORD_BATCH` at a time.

    JSON and JSON Lines get each row as it is (nested values included). Parquet and
    CSV/TSV get the rows as Arrow batches of ``schema`` (without one, the first batch's
    inferred schema).
    """
    container, gz = output_container(path, options, default, fmt=fmt)
    chunks = _chunks(rows, RECORD_BATCH)
    if container in ("jsonl", "json"):
        dumps = orjson.dumps
        _write_json(([dumps(r) for r in chunk] for chunk in chunks), path, container, gz)
        return
    first = next(chunks, None)
    if schema is None:
        schema = pa.Table.from_pylist(first).schema if first else pa.schema([])
    tables = (pa.Table.from_pylist(c, schema=schema) for c in _prepend(first, chunks))
    batches = (b for t in tables for b in t.to_batches())
    _write_arrow(batches, schema, path, container, gz, fmt, json_cells)


# --- the containers ---------------------------------------------------------------------------
def _write_json(blocks: Iterable[list[bytes]], path: Path, container: str, gz: bool) -> None:
    """Lines of JSON (in non-empty blocks) as JSON Lines or as one JSON array."""
    with gzip.open(path, "wb") if gz else open(path, "wb") as fh:
        if container == "json":
            fh.write(b"[")
            first = True
            for block in blocks:
                fh.write((b"\n" if first else b",\n") + b",\n".join(block))
                first = False
            fh.write(b"\n]\n")
        else:
            for block in blocks:
                fh.write(b"\n".join(block) + b"\n")


def _write_arrow(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    container: str,
    gz: bool,
    fmt: str,
    json_cells: bool,
) -> None:
    """Record batches as Parquet or CSV/TSV."""
    if container == "parquet":
        with pq.ParquetWriter(path, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return
    nested = [f.name for f in schema if _is_nested(f.type)]
    if nested and not json_cells:
        raise PrefkitError(
            f"{fmt}: columns {nested} hold conversations (lists of messages), which CSV cannot "
            "hold; pass conversational=False to write plain text, or write .jsonl/.json/.parquet"
        )
    if nested:
        schema = pa.schema(
            [pa.field(f.name, pa.string()) if f.name in nested else f for f in schema]
        )
        batches = (_as_json_text(b, nested, schema) for b in batches)
    sink = pa.CompressedOutputStream(str(path), "gzip") if gz else pa.OSFile(str(path), "wb")
    opts = pacsv.WriteOptions(delimiter="\t" if container == "tsv" else ",")
    with sink, pacsv.CSVWriter(sink, schema, write_options=opts) as writer:
        for batch in batches:
            writer.write_batch(batch)


def _as_json_text(batch: pa.RecordBatch, columns: list[str], schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``columns`` as JSON text (nulls stay null)."""
    dumps = orjson.dumps
    arrays = [
        pa.array(
            [None if v is None else dumps(v).decode() for v in batch.column(name).to_pylist()],
            pa.string(),
        )
        if name in columns
        else batch.column(name)
        for name in schema.names
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _is_nested(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
    )


def _batches(table: pa.Table | pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    if isinstance(table, pa.Table):
        yield from table.to_batches(max_chunksize=WRITE_BATCH)
    else:
        yield from table


def _json_lines(table: pa.Table | pa.RecordBatchReader) -> Iterator[list[bytes]]:
    # Column-wise to_pylist + zip is ~20% faster than RecordBatch.to_pylist on wide text.
    dumps = orjson.dumps
    names = table.schema.names
    for batch in _batches(table):
        if batch.num_rows:
            cols = [c.to_pylist() for c in batch.columns]
            yield [dumps(dict(zip(names, row, strict=True))) for row in zip(*cols, strict=True)]


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def _prepend(first: list[Any] | None, rest: Iterator[list[Any]]) -> Iterator[list[Any]]:
    if first is not None:
        yield first
    yield from rest
