"""The format registry and the machinery every adapter shares.

An adapter is a :class:`Format` entry: a name, a sniffer that scores how well a file
looks like the format, a reader that yields canonical table chunks, and (when the format
can hold the data) a writer. The registry is the only list of format names: the CLI
help, errors, docs and the contract tests are derived from it.

Most formats are one record per row. Their adapters implement ``convert(record, emit)``
and let :func:`read_rows` handle streaming, batching, error location and quarantine: a
record is *staged* while it converts, and only a record that converts completely reaches
the tables, so a quarantined record never leaves half its rows behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from prefkit.errors import InputError, PrefkitError, RecordError
from prefkit.io.records import Record, is_bad, iter_records
from prefkit.schema import TABLES, TableBuilder
from prefkit.schema import ids as _ids

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

Chunk = dict[str, pa.Table]
BATCH_ROWS = 20_000


# --- options and quarantine ----------------------------------------------------------------
@dataclass
class Quarantine:
    """Collects bad records instead of stopping; counts reconcile: read = kept + quarantined."""

    path: Path | None = None
    read: int = 0
    kept: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    _fh: Any = None

    def add(self, rec: Record, err: RecordError | InputError | str) -> None:
        self.quarantined += 1
        field_ = getattr(err, "field", None)
        message = getattr(err, "message", str(err))
        key = f"{field_}: {message}" if field_ else message
        key = key if len(key) < 120 else key[:117] + "..."
        self.by_reason[key] = self.by_reason.get(key, 0) + 1
        if self.path is not None:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "wb")  # noqa: SIM115 (closed in close())
            raw = rec.raw.decode("utf-8", "replace").rstrip("\n") if rec.raw is not None else None
            entry = {
                "file": rec.file,
                "where": rec.where,
                "field": field_,
                "error": message,
                "record": raw if raw is not None else _jsonable(rec.data),
            }
            self._fh.write(orjson.dumps(entry, default=str) + b"\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def summary(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "file": str(self.path) if self.path else None,
            "reasons": dict(sorted(self.by_reason.items(), key=lambda kv: -kv[1])[:20]),
        }


def _jsonable(data: Any) -> Any:
    return data if isinstance(data, (dict, list, str, int, float, bool, type(None))) else repr(data)


@dataclass
class ReadOptions:
    """What every reader receives.

    ``mapping`` holds format-specific options (column names for the generic format,
    label values, ...). ``quarantine`` is set when the user chose ``on_error=quarantine``.
    """

    mapping: dict[str, Any] = field(default_factory=dict)
    quarantine: Quarantine | None = None
    batch_rows: int = BATCH_ROWS

    def option(self, key: str, default: Any = None) -> Any:
        return self.mapping.get(key, default)


# --- emitting canonical rows -----------------------------------------------------------------
class Emitter:
    """Turns an adapter's calls into canonical rows, with content ids and dedup.

    Prompts, responses and annotators are deduplicated by id across the whole input;
    judgments and rankings get ids ``<stem>:<n>`` in input order.
    """

    def __init__(self, stem: str):
        self.stem = stem
        self._builders = {name: TableBuilder(name) for name in TABLES}
        self._seen: dict[str, set[str]] = {
            "prompts": set(),
            "responses": set(),
            "annotators": set(),
        }
        self._staged: list[tuple[str, dict[str, Any]]] = []
        self._event = 0
        self._staged_events = 0

    # adapter API
    def prompt(
        self,
        messages: list[dict[str, str]],
        context: Mapping[str, str] | None = None,
        **meta: Any,
    ) -> str:
        pid = _ids.prompt_id(messages, context)
        self._stage(
            "prompts", pid, dict(prompt_id=pid, messages=messages, context=_map(context), **meta)
        )
        return pid

    def response(
        self,
        prompt_id: str,
        messages: list[dict[str, str]],
        source: str | None = None,
        score: float | None = None,
        attributes: Mapping[str, float] | None = None,
        media: list[dict[str, Any]] | None = None,
        **meta: Any,
    ) -> str:
        rid = _ids.response_id(prompt_id, messages, source, media)
        row = dict(
            response_id=rid,
            prompt_id=prompt_id,
            messages=messages,
            source=source,
            score=score,
            attributes=_map(attributes),
            media=media,
            **meta,
        )
        self._stage("responses", rid, row)
        return rid

    def judgment(
        self,
        prompt_id: str,
        a: str,
        b: str,
        outcome: int,
        *,
        tie_kind: str | None = None,
        strength: float | None = None,
        annotator_id: str | None = None,
        annotator_kind: str = "unknown",
        rationale: str | None = None,
        **meta: Any,
    ) -> str:
        jid = self._next_event()
        row = dict(
            judgment_id=jid,
            prompt_id=prompt_id,
            a=a,
            b=b,
            outcome=outcome,
            tie_kind=tie_kind,
            strength=strength,
            annotator_id=annotator_id,
            annotator_kind=annotator_kind,
            rationale=rationale,
            **meta,
        )
        self._staged.append(("judgments", row))
        return jid

    def ranking(
        self, prompt_id: str, tiers: list[list[str]], annotator_id: str | None = None, **meta: Any
    ) -> str:
        rid = self._next_event()
        row = dict(
            ranking_id=rid, prompt_id=prompt_id, tiers=tiers, annotator_id=annotator_id, **meta
        )
        self._staged.append(("rankings", row))
        return rid

    def annotator(self, annotator_id: str, **profile: Any) -> str:
        self._stage("annotators", annotator_id, dict(annotator_id=annotator_id, **profile))
        return annotator_id

    # framework API
    def start_file(self, stem: str, first_event: int = 0) -> None:
        """Events from here on are numbered ``<stem>:<first_event>``, ``<stem>:<first_event + 1>``, ..."""
        self.stem = stem
        self._event = first_event

    @property
    def events(self) -> int:
        """How many events (judgments, rankings) this file has committed, plus the start."""
        return self._event

    def _next_event(self) -> str:
        eid = _ids.event_id(self.stem, self._event + self._staged_events)
        self._staged_events += 1
        return eid

    def _stage(self, table: str, key: str, row: dict[str, Any]) -> None:
        if key not in self._seen[table]:
            self._staged.append((table, row))

    def commit(self) -> None:
        """Move the staged rows of one record into the tables."""
        for table, row in self._staged:
            seen = self._seen.get(table)
            if seen is not None:
                key = row[_KEY[table]]
                if key in seen:
                    continue
                seen.add(key)
            self._builders[table].add(**row)
        self._staged.clear()
        self._event += self._staged_events
        self._staged_events = 0

    def rollback(self) -> None:
        self._staged.clear()
        self._staged_events = 0

    def pending(self) -> int:
        return max(len(b) for b in self._builders.values())

    def flush(self) -> Chunk:
        return {name: b.build() for name, b in self._builders.items() if len(b)}


_KEY = {"prompts": "prompt_id", "responses": "response_id", "annotators": "annotator_id"}


def _map(d: Mapping[str, Any] | None) -> list[tuple[str, Any]] | None:
    return list(d.items()) if d else None


# --- the row-reading loop shared by record-per-row formats ------------------------------------
Convert = Callable[[Any, Emitter], None]


def read_rows(
    paths: Iterable[Path],
    convert: Convert,
    options: ReadOptions,
    records: Callable[[Path], Iterator[Record]] = iter_records,
) -> Iterator[Chunk]:
    """Run ``convert`` over every record of every file, yielding table chunks.

    A failing record raises :class:`InputError` naming file, line and field, unless the
    options carry a quarantine, which then receives it.
    """
    q = options.quarantine
    paths = [Path(p) for p in paths]
    emit = Emitter("")
    for path, stem in zip(paths, unique_stems(paths), strict=True):
        emit.start_file(stem)
        for rec in records(path):
            if q is not None:
                q.read += 1
            problem = is_bad(rec.data)
            try:
                if problem is not None:
                    raise RecordError(None, problem)
                convert(rec.data, emit)
            except RecordError as err:
                reject(emit, q, rec, err)
                continue
            except (
                KeyError,
                TypeError,
                ValueError,
                AttributeError,
                IndexError,
                OverflowError,
            ) as exc:
                # An adapter tripping on an unexpected shape is still the record's fault;
                # say which record, not where in prefkit.
                shape = RecordError(None, f"unexpected record shape ({type(exc).__name__}: {exc})")
                reject(emit, q, rec, shape)
                continue
            emit.commit()
            if q is not None:
                q.kept += 1
            if emit.pending() >= options.batch_rows:
                yield emit.flush()
    yield emit.flush()


def reject(emit: Emitter, quarantine: Quarantine | None, rec: Record, err: RecordError) -> None:
    """Drop the rows ``rec`` staged, then quarantine it, or raise an InputError naming it."""
    emit.rollback()
    if quarantine is None:
        raise InputError(rec.file, rec.where, err.field, err.message) from None
    quarantine.add(rec, err)


def unique_stems(paths: list[Path]) -> list[str]:
    """A short, distinct label per file for event ids (``name``, or ``parent/name``)."""
    stems = [p.name.split(".")[0] for p in paths]
    if len(set(stems)) < len(stems):
        stems = [f"{p.parent.name}/{s}" for p, s in zip(paths, stems, strict=True)]
    if len(set(stems)) < len(stems):
        stems = [f"{i}/{s}" for i, s in enumerate(stems)]
    return stems


# --- record field helpers adapters use ---------------------------------------------------------
def need(rec: Any, key: str, kind: type | tuple[type, ...] = str) -> Any:
    """``rec[key]``, insisting it is present and of type ``kind``; else a RecordError."""
    if not isinstance(rec, dict):
        raise RecordError(None, f"expected an object, got {type(rec).__name__}")
    if key not in rec or rec[key] is None:
        raise RecordError(key, "is missing")
    value = rec[key]
    if not isinstance(value, kind) or (
        kind is not bool and isinstance(value, bool) and bool not in _tuple(kind)
    ):
        raise RecordError(key, f"expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def optional(rec: dict[str, Any], key: str, kind: type | tuple[type, ...] = str) -> Any:
    """``rec[key]`` if present and not null (type-checked), else None."""
    if rec.get(key) is None:
        return None
    return need(rec, key, kind)


def number(value: Any, key: str) -> float | None:
    """A float from a number or numeric string; empty string and None give None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RecordError(key, f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RecordError(key, f"expected a number, got {value!r}") from None


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        list: "a list",
        dict: "an object",
        int: "an integer",
        float: "a number",
        bool: "true/false",
    }
    return " or ".join(names.get(k, k.__name__) for k in _tuple(kind))


# --- the registry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """What a sniffer sees: the path and the first few parsed records (may be empty)."""

    path: Path
    records: list[Any]
    container: str | None


Reader = Callable[[list[Path], ReadOptions], Iterator[Chunk]]
Writer = Callable[["Dataset", Path, dict[str, Any]], None]


@dataclass(frozen=True)
class Format:
    """One registered format.

    Attributes
    ----------
    name
        The name users pass to ``--from``/``--to`` and ``format=``.
    summary
        One line for help text and docs.
    kinds
        Feedback kinds the format carries (see :data:`prefkit.dataset.KINDS`).
    sniff
        Score in [0, 1] for how surely a sample is this format; 0 means no.
    read
        Yields canonical table chunks from the given files.
    write
        Writes a dataset in this format, or None when the format cannot hold the data.
    cannot_write
        Why there is no writer (shown to users asking for one).
    options
        Format options accepted through ``mapping`` (name -> help), for docs and the CLI.
    """

    name: str
    summary: str
    kinds: tuple[str, ...]
    sniff: Callable[[Sample], float]
    read: Reader
    write: Writer | None = None
    cannot_write: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    directory: bool = False  # reads a whole folder layout rather than single files


REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in REGISTRY:
        raise ValueError(f"format {fmt.name!r} registered twice")
    REGISTRY[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    try:
        return REGISTRY[name]
    except KeyError:
        raise PrefkitError(
            f"unknown format {name!r}; known formats: {', '.join(sorted(REGISTRY))}"
        ) from None
