"""Hugging Face TRL preference datasets: ``prompt`` / ``chosen`` / ``rejected``.

Implements the *preference* dataset type of the TRL documentation ("Dataset formats and
types", huggingface.co/docs/trl): each row holds one prompt and two completions, the
preferred one in ``chosen``. Four shapes are read:

* standard, explicit prompt: ``{"prompt": str, "chosen": str, "rejected": str}``
* conversational, explicit prompt: the same keys holding lists of ``{role, content}``
* conversational, implicit prompt: only ``chosen`` / ``rejected``, whole conversations whose
  shared leading turns are the prompt
* standard, implicit prompt: only ``chosen`` / ``rejected`` strings; the prompt is their
  common leading text, split exactly as ``trl.data_utils.extract_prompt`` does

Optional columns ``score_chosen`` / ``score_rejected`` become response scores; other
scalar columns (``margin``, ids, ...) are kept as judgment meta columns.

This module also holds the small helpers the other flat pairwise adapters share
(message checking, shared-prefix splitting); the output container and the streaming
writer live in :mod:`prefkit.io.formats.sinks` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefkit.errors import InputError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    number,
    read_rows,
    register,
    unique_stems,
)
from prefkit.io.formats.fastpairs import read_fast

# Re-exported: these used to live here, and code outside prefkit may import them from here.
from prefkit.io.formats.sinks import write_table
from prefkit.io.records import iter_records, resolve_container
from prefkit.schema import A_WINS

PROMPT, CHOSEN, REJECTED = "prompt", "chosen", "rejected"
SCORE_CHOSEN, SCORE_REJECTED = "score_chosen", "score_rejected"
#: Policies a pairs writer passes on to :func:`prefkit.views.to_pairs`.
PAIR_POLICIES = (
    "ties",
    "annotators",
    "rankings",
    "scores",
    "score_key",
    "margin",
    "conversational",
)
#: Judgment keywords an extra input column must not shadow.
_JUDGMENT_CORE = frozenset(
    {"judgment_id", "prompt_id", "a", "b", "outcome", "tie_kind", "strength", "annotator_id"}
    | {"annotator_kind", "rationale"}
)
_SCALARS = (str, int, float, bool)


# --- helpers shared by the flat pairwise adapters ------------------------------------------------
def as_messages(value: Any, field: str, role: str) -> list[dict[str, str]]:
    """A messages list from a string (one ``role`` turn) or a list of ``{role, content}``.

    Raises
    ------
    RecordError
        When the value is missing, null, of another type, or a turn is malformed.
    """
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if value is None:
        raise RecordError(field, "is missing")
    if not isinstance(value, list):
        raise RecordError(
            field,
            f"expected a string or a list of {{role, content}} messages, got {type(value).__name__}",
        )
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RecordError(
                field,
                f"message {i} is {type(turn).__name__}, expected an object with role and content",
            )
        r, c = turn.get("role"), turn.get("content")
        if not isinstance(r, str):
            raise RecordError(field, f"message {i} has no string 'role'")
        if not isinstance(c, str):
            what = (
                "no 'content'"
                if c is None
                else f"'content' of type {type(c).__name__} (only text is supported)"
            )
            raise RecordError(field, f"message {i} has {what}")
        out.append({"role": r, "content": c})
    return out


def split_shared(first: list[Any], second: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Split two turn lists into (shared leading turns, rest of first, rest of second).

    As in ``trl.data_utils.extract_prompt``, the shared part never swallows a whole side:
    each side keeps at least its last turn.
    """
    limit = min(len(first), len(second))
    k = 0
    while k < limit and first[k] == second[k]:
        k += 1
    k = min(k, max(limit - 1, 0))
    return first[:k], first[k:], second[k:]


def split_shared_text(first: str, second: str) -> tuple[str, str, str]:
    """TRL's implicit-prompt split of two strings at their first differing character.

    A space right before the split goes with the completions, and when one string is a
    prefix of the other the last shared character stays with the completions (both as in
    ``trl.data_utils.extract_prompt``).
    """
    limit = min(len(first), len(second))
    k = 0
    while k < limit and first[k] == second[k]:
        k += 1
    if k == limit:
        k = max(limit - 1, 0)
    elif k > 0 and first[k - 1] == " ":
        k -= 1
    return first[:k], first[k:], second[k:]


def extra_meta(rec: Mapping[str, Any], known: frozenset[str] | set[str]) -> dict[str, Any]:
    """Scalar columns outside ``known``, as judgment meta (names clashing with core get ``orig_``).

    List- or object-valued extra columns are not kept (documented per format).
    """
    out = {}
    for key, value in rec.items():
        if key in known or value is None or not isinstance(value, _SCALARS):
            continue
        out["orig_" + key if key in _JUDGMENT_CORE else key] = value
    return out


def pairs_view(ds: Any, options: Mapping[str, Any], **forced: Any) -> pa.Table:
    """``to_pairs`` with the user's policies from ``options`` (``forced`` overrides)."""
    from prefkit.views import to_pairs

    policy = {k: options[k] for k in PAIR_POLICIES if options.get(k) is not None}
    policy.update(forced)
    return to_pairs(ds, **policy)


def query_table(con: Any, sql: str) -> pa.Table:
    """Run ``sql`` on a DuckDB connection and return an Arrow table with plain string columns."""
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None)
    table = fetch() if fetch is not None else rel.arrow()
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    fields = [
        pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def keep_filled(table: pa.Table, required: Iterable[str]) -> pa.Table:
    """``table`` without the optional columns that are null in every row."""
    need = set(required)
    return table.select(
        [c for c in table.column_names if c in need or table.column(c).null_count < table.num_rows]
    )


# --- reading -------------------------------------------------------------------------------------
def make_converter(prompt: str = PROMPT, chosen: str = CHOSEN, rejected: str = REJECTED) -> Any:
    """A ``convert(record, emit)`` for TRL rows whose columns have the given names."""
    known = frozenset({prompt, chosen, rejected, SCORE_CHOSEN, SCORE_REJECTED})

    def convert(rec: Any, emit: Emitter) -> None:
        if not isinstance(rec, dict):
            raise RecordError(None, f"expected an object, got {type(rec).__name__}")
        c, r = rec.get(chosen), rec.get(rejected)
        if c is None:
            raise RecordError(chosen, "is missing")
        if r is None:
            raise RecordError(rejected, "is missing")
        if prompt in rec:
            p = rec[prompt]
            if p is None:
                raise RecordError(prompt, "is null (leave the column out for implicit-prompt data)")
            p_msgs = as_messages(p, prompt, "user")
            c_msgs = as_messages(c, chosen, "assistant")
            r_msgs = as_messages(r, rejected, "assistant")
        elif isinstance(c, str) and isinstance(r, str):
            p_text, c_text, r_text = split_shared_text(c, r)
            p_msgs = [{"role": "user", "content": p_text}]
            c_msgs = [{"role": "assistant", "content": c_text}]
            r_msgs = [{"role": "assistant", "content": r_text}]
        else:
            c_all = as_messages(c, chosen, "assistant")
            r_all = as_messages(r, rejected, "assistant")
            if isinstance(c, str) or isinstance(r, str):
                raise RecordError(
                    chosen if isinstance(c, str) else rejected,
                    "without a prompt column, chosen and rejected must both be strings or both be conversations",
                )
            p_msgs, c_msgs, r_msgs = split_shared(c_all, r_all)
        pid = emit.prompt(p_msgs)
        sc = rec.get(SCORE_CHOSEN)
        sr = rec.get(SCORE_REJECTED)
        a = emit.response(pid, c_msgs, score=None if sc is None else number(sc, SCORE_CHOSEN))
        b = emit.response(pid, r_msgs, score=None if sr is None else number(sr, SCORE_REJECTED))
        emit.judgment(pid, a, b, A_WINS, **extra_meta(rec, known))

    return convert


def pairs_to_chunk(
    rows: Iterable[Mapping[str, Any]],
    *,
    prompt: str = PROMPT,
    chosen: str = CHOSEN,
    rejected: str = REJECTED,
) -> Chunk:
    """Canonical tables from in-memory (prompt, chosen, rejected) rows.

    Parameters
    ----------
    rows
        Dicts with string or conversational values; without a ``prompt`` key the prompt
        is the shared start of ``chosen`` and ``rejected`` (TRL's implicit prompt).
    prompt, chosen, rejected
        Column names.

    Returns
    -------
    dict
        Table name to Arrow table (only tables with rows).

    Raises
    ------
    InputError
        For a bad row, naming the row (1-based) and the field.
    """
    convert = make_converter(prompt, chosen, rejected)
    emit = Emitter("pairs")
    emit.start_file("pairs")
    for i, row in enumerate(rows, start=1):
        try:
            convert(row, emit)
        except RecordError as err:
            raise InputError("<pairs>", f"row {i}", err.field, err.message) from None
        emit.commit()
    return emit.flush()


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read TRL preference files (JSONL/JSON/Parquet/CSV) into canonical chunks."""
    convert = make_converter(
        options.option("prompt", PROMPT),
        options.option("chosen", CHOSEN),
        options.option("rejected", REJECTED),
    )
    if options.mapping or not all(_is_standard_jsonl(p) for p in paths):
        return read_rows(paths, convert, options)
    return _read_fast(paths, convert, options)


def _is_standard_jsonl(path: Path) -> bool:
    """JSON Lines whose first records are exactly prompt/chosen/rejected strings."""
    if resolve_container(path) != "jsonl":
        return False
    recs = []
    try:
        for rec in iter_records(path, "jsonl"):
            recs.append(rec.data)
            if len(recs) >= 20:
                break
    except InputError:
        return False
    return bool(recs) and all(
        isinstance(r, dict)
        and set(r) == {PROMPT, CHOSEN, REJECTED}
        and all(isinstance(v, str) for v in r.values())
        for r in recs
    )


def _read_fast(paths: list[Path], convert: Any, options: ReadOptions) -> Iterator[Chunk]:
    for path, stem in zip(paths, unique_stems(paths), strict=True):
        yield from read_fast(path, stem, convert, options.quarantine)


def sniff(sample: Sample) -> float:
    """High for rows with ``chosen``/``rejected`` strings or conversations."""
    recs = [r for r in sample.records if isinstance(r, dict)]
    # Most records, not all: a file with a few broken records is still TRL, and the
    # reader then reports exactly which records are broken.
    matching = [r for r in recs if CHOSEN in r and REJECTED in r]
    if not matching or len(matching) * 2 < len(sample.records):
        return 0.0
    first = matching[0]
    values = (first.get(CHOSEN), first.get(REJECTED))
    if not all(isinstance(v, (str, list)) for v in values):
        return 0.0
    if PROMPT in first:
        return 0.85
    if isinstance(values[0], str) and "\n\nHuman:" in values[0]:
        return 0.5  # Anthropic transcripts: the hh-rlhf adapter reads them better
    return 0.8


# --- writing -------------------------------------------------------------------------------------
def write(ds: Any, path: Path, options: dict[str, Any]) -> None:
    """Write ``prompt``, ``chosen``, ``rejected`` columns (strings or conversations).

    ``options`` carries the ``to_pairs`` policies (``ties``, ``annotators``, ``rankings``,
    ``scores``, ``score_key``, ``margin``, ``conversational``) and optionally ``container``.
    """
    from prefkit.views import pairs_reader

    policy = {k: options[k] for k in PAIR_POLICIES if options.get(k) is not None}
    reader = pairs_reader(ds, **policy)
    columns = [PROMPT, CHOSEN, REJECTED]
    schema = pa.schema([reader.schema.field(c) for c in columns])
    stream = pa.RecordBatchReader.from_batches(schema, (b.select(columns) for b in reader))
    write_table(stream, path, options, fmt="trl")


register(
    Format(
        name="trl",
        summary="Hugging Face TRL preference rows: prompt/chosen/rejected, standard or conversational",
        kinds=("pairwise", "scores"),
        sniff=sniff,
        read=read,
        write=write,
        options={
            "prompt": "column holding the prompt (default 'prompt'; absent = implicit prompt)",
            "chosen": "column holding the preferred completion (default 'chosen')",
            "rejected": "column holding the other completion (default 'rejected')",
        },
    )
)
