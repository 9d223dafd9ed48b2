"""Vectorised reader for the hot path: standard TRL JSON Lines (``prompt``/``chosen``/``rejected``
strings and nothing else).

The file is cut into ~16 MiB blocks at line boundaries; each block is parsed by Arrow's
JSON reader against an explicit schema and turned into canonical columns without
per-row Python objects, except for the content ids, which hash the same canonical bytes
:mod:`prefkit.schema.ids` hashes (so ids equal the row-by-row path's). A block that
Arrow cannot parse, or whose rows are not plain strings, is handed to the row-by-row
converter with its true line numbers, so errors and quarantine behave exactly as on the
slow path. Duplicate prompts and responses are left to the store, which de-duplicates
on close.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from prefkit.errors import InputError, RecordError
from prefkit.io.formats.base import Chunk, Emitter, Quarantine, reject
from prefkit.io.records import Record, json_problem, open_binary
from prefkit.schema import ids as _ids
from prefkit.schema.tables import MESSAGES

BLOCK_BYTES = 16 << 20
FIELDS = ("prompt", "chosen", "rejected")
_SCHEMA = pa.schema([(f, pa.string()) for f in FIELDS])


def _blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) blocks of whole lines."""
    line = 1
    rest = b""
    with open_binary(path) as fh:
        while True:
            try:
                data = fh.read(BLOCK_BYTES)
            except EOFError as exc:
                raise InputError(
                    str(path), None, None, f"the gzip stream is cut off ({exc})"
                ) from None
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            yield line, block
            line += block.count(b"\n")
    if rest.strip():
        yield line, rest


def _messages(texts: pa.Array, role: str) -> pa.Array:
    """One-turn message lists ``[{role, content}]`` from a string array, zero-copy on text."""
    n = len(texts)
    structs = pa.StructArray.from_arrays(
        [pa.repeat(role, n).cast(pa.string()), texts], names=["role", "content"]
    )
    offsets = pa.array(range(n + 1), pa.int32())
    return pa.ListArray.from_arrays(offsets, structs, type=MESSAGES)


def _vector_chunk(table: pa.Table, stem: str, first_event: int) -> Chunk:
    cols = [table.column(f).combine_chunks() for f in FIELDS]
    p, c, r = cols
    pids = _ids.one_turn_prompt_ids(p.to_pylist())
    cids = _ids.one_turn_response_ids(pids, c.to_pylist())
    rids = _ids.one_turn_response_ids(pids, r.to_pylist())
    n = len(p)
    pid_arr = pa.array(pids, pa.string())
    events = pc.cast(pa.array(range(first_event, first_event + n), pa.int64()), pa.string())
    jids = pc.binary_join_element_wise(pa.repeat(stem, n).cast(pa.string()), events, ":")
    responses = pa.table(
        {
            "response_id": pa.concat_arrays(
                [pa.array(cids, pa.string()), pa.array(rids, pa.string())]
            ),
            "prompt_id": pa.concat_arrays([pid_arr, pid_arr]),
            "messages": pa.concat_arrays([_messages(c, "assistant"), _messages(r, "assistant")]),
        }
    )
    return {
        "prompts": pa.table({"prompt_id": pid_arr, "messages": _messages(p, "user")}),
        "responses": responses,
        "judgments": pa.table(
            {
                "judgment_id": jids,
                "prompt_id": pid_arr,
                "a": pa.array(cids, pa.string()),
                "b": pa.array(rids, pa.string()),
                "outcome": pa.repeat(1, n).cast(pa.int8()),
                "annotator_kind": pa.repeat("unknown", n).cast(pa.string()),
            }
        ),
    }


def _plain(block: bytes) -> pa.Table | None:
    """The block as a table of three non-null string columns, or None if it is anything else."""
    try:
        table = pajson.read_json(
            io.BytesIO(block),
            parse_options=pajson.ParseOptions(
                explicit_schema=_SCHEMA, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if any(table.column(f).null_count for f in FIELDS):
        return None
    return table


def read_fast(
    path: Path,
    stem: str,
    convert: Callable[[Any, Emitter], None],
    quarantine: Quarantine | None,
) -> Iterator[Chunk]:
    """Chunks for one standard-TRL JSONL file; slow path for blocks that need it."""
    name = str(path)
    event = 0
    for first_line, block in _blocks(path):
        table = _plain(block)
        if table is not None:
            if quarantine is not None:
                quarantine.read += table.num_rows
                quarantine.kept += table.num_rows
            yield _vector_chunk(table, stem, event)
            event += table.num_rows
            continue
        emit = Emitter(stem)
        emit.start_file(stem, event)
        for offset, raw in enumerate(block.splitlines()):
            if not raw.strip():
                continue
            rec = Record(name, f"line {first_line + offset}", None, raw)
            if quarantine is not None:
                quarantine.read += 1
            try:
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise RecordError(None, json_problem(raw, exc)) from None
                convert(data, emit)
            except RecordError as err:
                reject(emit, quarantine, rec, err)
                continue
            emit.commit()
            if quarantine is not None:
                quarantine.kept += 1
        event = emit.events
        yield emit.flush()
