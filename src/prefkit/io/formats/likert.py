"""Likert rating tables: one rated output per row, one column per rating criterion.

The layout is the common one for human evaluation of generated text: a column with the
input (prompt), a column with the system output, a column naming the system, and one
numeric column per criterion. The reference layout is the NLG evaluation data of
Novikova et al., "Why We Need New Evaluation Metrics for NLG" (EMNLP 2017): columns
``mr`` (meaning representation), ``sys_ref`` (system output), ``system`` and the median
crowd ratings ``informativeness``, ``naturalness``, ``quality`` on a 1–6 scale.

Ratings become the response's ``attributes`` (floats). A missing rating is absent from
the map, never a zero. Each file's columns are resolved once, from its first records, so
a column is either numeric for every row or text for every row.

The helpers in the "shared by the rating adapters" section are also used by the
``helpsteer`` and ``ultrafeedback`` adapters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from prefkit.errors import InputError, PrefkitError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    number,
    read_rows,
    register,
)
from prefkit.io.formats.sinks import output_container, write_records
from prefkit.io.records import is_bad, iter_records
from prefkit.schema import CORE, text_of

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

PROMPT_COLUMNS = ("prompt", "input", "mr", "question", "instruction")
RESPONSE_COLUMNS = ("response", "output", "sys_ref", "text", "completion")
SOURCE_COLUMNS = ("system", "source", "model")
NLG_RATINGS = ("informativeness", "naturalness", "quality")
NLG_SCALE = "1-6"
CONTEXT_PREFIX = "context."
HEAD_RECORDS = 100
PAIRWISE_KEYS = {"chosen", "rejected", "response_1", "response_2", "completions", "winner"}
WRITE_BATCH = 10_000

# Names a meta keyword must not take: the emitters' own parameters and core columns.
RESERVED = {f.name for schema in CORE.values() for f in schema} | {"annotator_kind"}
_NOT_NAME = re.compile(r"[^0-9a-zA-Z]+")
_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|–|\.\.|:|,|to)\s*(-?\d+(?:\.\d+)?)\s*$")


# --- shared by the rating adapters ---------------------------------------------------------------
def snake(name: str) -> str:
    """``"sim.mr.sys"`` -> ``"sim_mr_sys"``, ``"Bleu_1"`` -> ``"bleu_1"``."""
    return _NOT_NAME.sub("_", name).strip("_").lower() or "column"


class MetaNames:
    """Column name -> meta keyword: snake_case, never a core/emitter name, never repeated.

    Names are handed out as columns are first met, so columns that only appear in later
    records are kept too (with a stable name).
    """

    def __init__(self, taken: Iterable[str] = ()):
        self._used = set(RESERVED) | set(taken)
        self._names: dict[str, str] = {}

    def __call__(self, column: str) -> str:
        key = self._names.get(column)
        if key is None:
            key = snake(column)
            if key in self._used:
                key = f"raw_{key}"
            base, i = key, 2
            while key in self._used:
                key, i = f"{base}_{i}", i + 1
            self._used.add(key)
            self._names[column] = key
        return key


def split_names(value: Any) -> list[str] | None:
    """An option given as ``"a,b"`` or a list -> list of names; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def is_numeric(value: Any) -> bool | None:
    """True for a finite number or numeric string, False for other text, None for empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if not isinstance(value, str):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def numeric_columns(records: list[dict[str, Any]], columns: Iterable[str]) -> list[str]:
    """Columns whose non-empty values in ``records`` are all numbers (at least one present)."""
    out = []
    for col in columns:
        kinds = {is_numeric(r.get(col)) for r in records} - {None}
        if kinds == {True}:
            out.append(col)
    return out


def head(path: Path, n: int = HEAD_RECORDS) -> list[dict[str, Any]]:
    """The first ``n`` parseable object records of a file (for resolving its layout)."""
    out: list[dict[str, Any]] = []
    for rec in iter_records(path):
        if not is_bad(rec.data) and isinstance(rec.data, dict):
            out.append(rec.data)
        if len(out) >= n:
            break
    return out


def keys_of(records: list[dict[str, Any]]) -> list[str]:
    """Every key in ``records``, in first-seen order."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    return list(seen)


def read_per_file(
    paths: list[Path],
    options: ReadOptions,
    setup: Callable[[Path, list[dict[str, Any]]], Callable[[Any, Emitter], None]],
) -> Iterator[Chunk]:
    """:func:`read_rows`, with each file's converter built from that file's first records."""
    state: dict[str, Callable[[Any, Emitter], None]] = {}

    def records(path: Path) -> Iterator[Any]:
        state["convert"] = setup(path, head(path))
        return iter_records(path)

    def convert(rec: Any, emit: Emitter) -> None:
        state["convert"](rec, emit)

    return read_rows(paths, convert, options, records=records)


@dataclass
class RatingLedger:
    """Remembers the ratings given to each response id.

    Responses are keyed by content, so two rows rating the same output (same prompt,
    text and source) would collapse into one. Identical ratings merge; different ones
    are an error instead of a silent drop. Use ``begin`` before a record and ``commit``
    after it converted, so a failed record leaves nothing behind.
    """

    _seen: dict[str, int] = field(default_factory=dict)
    _pending: dict[str, int] = field(default_factory=dict)

    def begin(self) -> None:
        self._pending.clear()

    def check(
        self, rid: str, score: float | None, attributes: Mapping[str, float] | None, where: str
    ) -> None:
        sig = hash((score, tuple(sorted((attributes or {}).items()))))
        old = self._pending.get(rid, self._seen.get(rid))
        if old is not None and old != sig:
            raise RecordError(
                where,
                "rates an output (same prompt, text and source) that was already rated "
                "differently earlier in the input; prefkit keeps one rating set per "
                "response, so aggregate per-rater rows first",
            )
        self._pending[rid] = sig

    def commit(self) -> None:
        self._seen.update(self._pending)
        self._pending.clear()


def parse_scale(value: Any) -> tuple[float, float] | None:
    """``"1-6"`` -> ``(1.0, 6.0)``; None/empty -> None; anything else is a PrefkitError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        m = _SCALE.match(str(value))
        if not m:
            raise PrefkitError(f"scale must look like '1-6' (low-high), got {value!r}")
        lo, hi = float(m.group(1)), float(m.group(2))
    if lo >= hi:
        raise PrefkitError(f"scale {value!r}: the low end must be below the high end")
    return lo, hi


def check_scale(value: float, scale: tuple[float, float] | None, name: str) -> float:
    if scale is not None and not scale[0] <= value <= scale[1]:
        raise RecordError(name, f"rating {value:g} is outside the scale {scale[0]:g}-{scale[1]:g}")
    return value


def fmt_number(value: float) -> str:
    """``4.0`` -> ``"4"``, ``4.5`` -> ``"4.5"`` (shortest round-tripping text)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def refuse_events(ds: Dataset, fmt: str, hint: str = "") -> None:
    """Raise when ``ds`` holds judgments or rankings, which a rating format cannot hold."""
    n_j, n_r = ds.num_rows("judgments"), ds.num_rows("rankings")
    if n_j or n_r:
        raise PrefkitError(
            f"format {fmt!r} holds rated responses only; this dataset also has {n_j:,} "
            f"judgment(s) and {n_r:,} ranking(s), which it cannot hold{hint}. Write them "
            "with a pairwise format (e.g. 'trl') or the canonical format, or drop them first "
            "(ds.with_tables(judgments=..., rankings=...))"
        )


def attribute_names(con: duckdb.DuckDBPyConnection, first: Iterable[str] = ()) -> list[str]:
    """Attribute keys used in the ``resp`` view: ``first`` (if used) in order, then sorted."""
    rows = con.sql("SELECT DISTINCT unnest(map_keys(attributes)) AS k FROM resp").fetchall()
    found = {r[0] for r in rows if r[0] is not None}
    lead = [a for a in first if a in found]
    return lead + sorted(found - set(lead))


def open_views(ds: Dataset) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views ``resp`` and ``prom`` (with input order ``__i``)."""
    con = duckdb.connect()
    ds.relation(con, "responses").create_view("resp_raw")
    ds.relation(con, "prompts").create_view("prom_raw")
    con.sql("CREATE VIEW resp AS SELECT *, row_number() OVER () AS __i FROM resp_raw")
    con.sql("CREATE VIEW prom AS SELECT *, row_number() OVER () AS __i FROM prom_raw")
    return con


def as_dict(value: Any) -> dict[str, Any]:
    """An Arrow map value (list of pairs, dict or None) as a dict."""
    if not value:
        return {}
    return dict(value) if not isinstance(value, dict) else value


def batches_of(con: duckdb.DuckDBPyConnection, query: str) -> Iterator[list[dict[str, Any]]]:
    for batch in con.sql(query).to_arrow_reader(WRITE_BATCH):
        yield batch.to_pylist()


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- resolving a file's layout --------------------------------------------------------------------
@dataclass
class _Layout:
    prompt: str
    response: str
    source: str | None
    score: str | None
    ratings: list[str]
    context: dict[str, str]  # column -> context key
    prompt_meta: dict[str, str]  # column -> meta key
    numeric: set[str]  # meta columns read as numbers
    known: set[str]  # columns with a role other than response meta
    scale: tuple[float, float] | None


def _pick(name: str, given: Any, candidates: tuple[str, ...], keys: list[str], file: str) -> str:
    if given:
        if given not in keys:
            raise InputError(file, None, name, f"no column {given!r} (columns: {', '.join(keys)})")
        return str(given)
    for c in candidates:
        if c in keys:
            return c
    raise InputError(
        file,
        None,
        name,
        f"no {name} column found (looked for {', '.join(candidates)}); pass {name}=<column>",
    )


def _columns_option(name: str, value: Any, keys: list[str], file: str) -> list[str] | None:
    names = split_names(value)
    missing = [c for c in names or [] if c not in keys]
    if missing:
        raise InputError(file, None, name, f"no column(s) {missing} (columns: {', '.join(keys)})")
    return names


def _id_like(col: str) -> bool:
    s = snake(col)
    return s in ("id", "index", "idx", "column") or s.endswith("_id") or s.startswith("unnamed")


def resolve_layout(path: Path, sample: list[dict[str, Any]], opts: ReadOptions) -> _Layout:
    """Decide, from a file's first records and the options, what every column is."""
    file, keys = str(path), keys_of(sample)
    nlg = {"mr", "sys_ref"} <= set(keys)
    prompt = _pick("prompt", opts.option("prompt"), PROMPT_COLUMNS, keys, file)
    response = _pick("response", opts.option("response"), RESPONSE_COLUMNS, keys, file)
    system_opt = opts.option("system")
    if system_opt == "":
        source = None
    elif system_opt:
        source = _pick("system", system_opt, SOURCE_COLUMNS, keys, file)
    else:
        source = next((c for c in SOURCE_COLUMNS if c in keys), None)
    ctx = _columns_option("context", opts.option("context"), keys, file)
    if ctx is None:
        ctx = [c for c in keys if c.startswith(CONTEXT_PREFIX)] + (
            ["dataset"] if nlg and "dataset" in keys else []
        )
    pmeta = _columns_option("prompt_meta", opts.option("prompt_meta"), keys, file)
    if pmeta is None:
        pmeta = [c for c in ("mr_type", "domain") if nlg and c in keys]
    used = {prompt, response, source, *ctx, *pmeta}
    score_opt = opts.option("score")
    ratings = _columns_option("ratings", opts.option("ratings"), keys, file)
    if ratings is None:
        if nlg and set(NLG_RATINGS) <= set(keys):
            ratings = list(NLG_RATINGS)
        else:
            skip = used | {"score", score_opt}
            ratings = numeric_columns(
                sample, [c for c in keys if c not in skip and not _id_like(c)]
            )
    score: str | None
    if score_opt:
        if score_opt not in keys:
            raise InputError(
                file, None, "score", f"no column {score_opt!r} (columns: {', '.join(keys)})"
            )
        score = str(score_opt)
    else:
        score = "score" if score_opt is None and "score" in keys and "score" not in used else None
    if not ratings and score is None:
        raise InputError(
            file, None, "ratings", "no rating columns found; pass ratings=<col1,col2,...>"
        )
    rest = [c for c in keys if c not in used | set(ratings) | {score}]
    pnames = MetaNames()
    scale = parse_scale(
        opts.option("scale", NLG_SCALE if nlg and ratings == list(NLG_RATINGS) else None)
    )
    return _Layout(
        prompt=prompt,
        response=response,
        source=source,
        score=score,
        ratings=ratings,
        context={c: c[len(CONTEXT_PREFIX) :] if c.startswith(CONTEXT_PREFIX) else c for c in ctx},
        prompt_meta={c: pnames(c) for c in pmeta},
        numeric=set(numeric_columns(sample, [c for c in rest if not _id_like(c)])),
        known={c for c in (prompt, response, source, score, *ctx, *pmeta, *ratings) if c},
        scale=scale,
    )


# --- reading ------------------------------------------------------------------------------------
def _text(rec: dict[str, Any], col: str) -> str:
    value = rec.get(col)
    if value is None:
        raise RecordError(col, "is missing")
    if isinstance(value, (dict, list, bool)):
        raise RecordError(col, f"expected text, got {type(value).__name__}")
    return str(value)


def _plain(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _converter(layout: _Layout, ledger: RatingLedger) -> Callable[[Any, Emitter], None]:
    names = MetaNames()

    def convert(rec: Any, emit: Emitter) -> None:
        if not isinstance(rec, dict):
            raise RecordError(None, f"expected an object, got {type(rec).__name__}")
        ledger.begin()
        context = {
            key: str(rec[c]) for c, key in layout.context.items() if _plain(rec.get(c)) is not None
        }
        pmeta = {key: _plain(rec.get(c)) for c, key in layout.prompt_meta.items()}
        pid = emit.prompt(
            [{"role": "user", "content": _text(rec, layout.prompt)}], context or None, **pmeta
        )
        attributes = {}
        for col in layout.ratings:
            value = number(rec.get(col), col)
            if value is not None:
                attributes[col] = check_scale(value, layout.scale, col)
        score = number(rec.get(layout.score), layout.score) if layout.score else None
        source = _plain(rec.get(layout.source)) if layout.source else None
        meta: dict[str, Any] = {}
        for col, value in rec.items():
            if col not in layout.known:
                meta[names(col)] = number(value, col) if col in layout.numeric else _plain(value)
        messages = [{"role": "assistant", "content": _text(rec, layout.response)}]
        rid = emit.response(
            pid,
            messages,
            source=None if source is None else str(source),
            score=score,
            attributes=attributes,
            **meta,
        )
        ledger.check(rid, score, attributes, layout.response)
        ledger.commit()

    return convert


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read Likert rating tables; each file's columns are resolved from its first records."""
    ledger = RatingLedger()

    def setup(path: Path, sample: list[dict[str, Any]]) -> Callable[[Any, Emitter], None]:
        if not sample:  # no object records at all: nothing to resolve columns from
            return _no_columns
        return _converter(resolve_layout(path, sample, options), ledger)

    return read_per_file(paths, options, setup)


def _no_columns(rec: Any, emit: Emitter) -> None:
    raise RecordError(None, f"expected a row with named columns, got {type(rec).__name__}")


def sniff(sample: Sample) -> float:
    """High for the EMNLP'17 NLG layout; moderate for text + several numeric columns."""
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs:
        return 0.0
    keys = keys_of(recs)
    if PAIRWISE_KEYS & set(keys):
        return 0.0
    if {"mr", "sys_ref"} <= set(keys):
        return 0.95 if set(NLG_RATINGS) <= set(keys) else 0.8
    prompt = next((c for c in PROMPT_COLUMNS if c in keys), None)
    response = next((c for c in RESPONSE_COLUMNS if c in keys), None)
    if prompt is None or response is None:
        return 0.0
    rest = [c for c in keys if c not in (prompt, response, *SOURCE_COLUMNS) and not _id_like(c)]
    n = len(numeric_columns(recs, rest))
    if n == 0:
        return 0.0
    tabular = sample.container in ("csv", "tsv")
    return (0.45 if tabular else 0.3) if n >= 2 else (0.35 if tabular else 0.2)


# --- writing ------------------------------------------------------------------------------------
def write(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    """Write one row per response: prompt, response, source, one column per attribute, score.

    Prompt context keys become ``context.<key>`` columns so a re-read restores them.
    Multi-turn prompts and responses are flattened to text (turns joined by blank lines).
    """
    refuse_events(ds, "likert")
    output_container(path, options, "csv", fmt="likert")
    con = open_views(ds)
    attrs = attribute_names(con, NLG_RATINGS)
    ctx_rows = con.sql("SELECT DISTINCT unnest(map_keys(context)) FROM prom_raw").fetchall()
    ctx_keys = sorted(r[0] for r in ctx_rows if r[0] is not None)
    query = (
        "SELECT p.messages AS pm, p.context AS ctx, r.messages AS rm, r.source, r.score, r.attributes "
        "FROM resp r LEFT JOIN prom p USING (prompt_id) ORDER BY r.__i"
    )

    def rows() -> Iterator[dict[str, Any]]:
        for batch in batches_of(con, query):
            for row in batch:
                values = as_dict(row["attributes"])
                ctx = as_dict(row["ctx"])
                item: dict[str, Any] = {
                    "prompt": text_of(row["pm"]),
                    "response": text_of(row["rm"]),
                    "source": row["source"],
                }
                item.update({a: values.get(a) for a in attrs})
                item["score"] = row["score"]
                item.update({CONTEXT_PREFIX + k: ctx.get(k) for k in ctx_keys})
                yield item

    schema = pa.schema(
        [("prompt", pa.string()), ("response", pa.string()), ("source", pa.string())]
        + [(a, pa.float64()) for a in attrs]
        + [("score", pa.float64())]
        + [(CONTEXT_PREFIX + k, pa.string()) for k in ctx_keys]
    )
    try:
        write_records(rows(), path, options, fmt="likert", schema=schema, default="csv")
    finally:
        con.close()


register(
    Format(
        name="likert",
        summary="Likert rating tables: one rated output per row, one column per criterion (e.g. EMNLP'17 NLG ratings)",
        kinds=("attributes", "scores"),
        sniff=sniff,
        read=read,
        write=write,
        options={
            "prompt": "column with the input (default: first of prompt, input, mr, question, instruction)",
            "response": "column with the rated output (default: first of response, output, sys_ref, text, completion)",
            "ratings": "comma-separated rating columns (default: informativeness,naturalness,quality for the "
            "EMNLP'17 layout, else every numeric column of the first records)",
            "system": "column naming the system/model that wrote the output, stored as the response source "
            "(default: system, source or model if present; '' for none)",
            "score": "column (or one of the ratings) used as the overall score (default: a 'score' column if present)",
            "scale": "rating scale 'low-high', e.g. '1-6'; a rating outside it is an error (default 1-6 for the EMNLP'17 layout)",
            "context": "comma-separated columns stored in the prompt context (default: context.* columns; 'dataset' for EMNLP'17)",
            "prompt_meta": "comma-separated columns stored as prompt meta (default: mr_type,domain for EMNLP'17)",
        },
    )
)
