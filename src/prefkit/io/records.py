"""Read raw records (dicts) from JSONL, JSON, Parquet and CSV/TSV files, gzip or not.

Records stream: JSONL, CSV and Parquet are read incrementally, so memory does not grow
with the file. Each record carries where it came from (``line 12`` for text formats,
``row 7`` for Parquet, ``item 3`` for a JSON array) so errors can name it. Structural
problems (bad JSON, invalid UTF-8, a gzip stream cut off) raise
:class:`~prefkit.errors.InputError` or, when a quarantine is given, are sent there.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow.parquet as pq

from prefkit.errors import InputError

#: Container kinds this module understands, by file suffix (after an optional ``.gz``).
CONTAINERS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
}
csv.field_size_limit(1 << 30)
#: Byte order mark some editors (Excel, Notepad) put at the start of UTF-8 files.
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Record:
    """One raw record and where it was read."""

    file: str
    where: str
    data: Any
    raw: bytes | None = None  # the original bytes, when the container has them (JSONL)


def container_of(path: Path) -> str | None:
    """The container kind of ``path`` from its suffixes (``.jsonl.gz`` -> ``jsonl``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return CONTAINERS.get(suffixes[-1]) if suffixes else None


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for binary reading, decompressing gzip by content, not by name."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _sniff_text_container(path: Path) -> str:
    """For files without a telling suffix: JSON array, JSONL, or CSV/TSV by content."""
    with open_binary(path) as fh:
        head = fh.read(65536).removeprefix(BOM)
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl" if _first_line_is_json(path) else "json"
    first = head.split(b"\n", 1)[0]
    return "tsv" if first.count(b"\t") > first.count(b",") else "csv"


def _first_line_is_json(path: Path) -> bool:
    """Whether the first non-blank line is a JSON value on its own (JSON Lines), rather
    than the start of one object spread over several lines (pretty-printed JSON)."""
    with open_binary(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    orjson.loads(line.removeprefix(BOM))
                except orjson.JSONDecodeError:
                    return False
                return True
    return False


def resolve_container(path: Path) -> str:
    """The container kind of ``path``: from its suffix, or sniffed from its content.

    Raises
    ------
    InputError
        When the content cannot be read to sniff it (a gzip stream cut off).
    """
    kind = container_of(path)
    try:
        if kind is None:
            with open(path, "rb") as fh:
                if fh.read(4) == b"PAR1":
                    return "parquet"
            return _sniff_text_container(path)
        if kind == "json":
            # Many ".json" files are really JSON Lines; look before choosing.
            return _sniff_text_container(path)
    except EOFError as exc:
        raise InputError(str(path), None, None, f"the gzip stream is cut off ({exc})") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(str(path), None, None, f"corrupt gzip data ({exc})") from None
    return kind


def iter_records(path: str | Path, container: str | None = None) -> Iterator[Record]:
    """Yield every record of a file as a :class:`Record`.

    Raises
    ------
    InputError
        For an unreadable container: invalid JSON (with line), invalid UTF-8, a gzip
        stream cut off, a CSV with a broken quote. Per-record *content* problems are the
        format adapter's to report.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise InputError(name, None, None, "no such file")
    if path.is_dir():
        raise InputError(name, None, None, "is a directory, expected a file")
    if path.stat().st_size == 0:
        raise InputError(name, None, None, "the file is empty")
    kind = container or resolve_container(path)
    try:
        if kind == "jsonl":
            yield from _iter_jsonl(path, name)
        elif kind == "json":
            yield from _iter_json(path, name)
        elif kind == "parquet":
            yield from _iter_parquet(path, name)
        elif kind in ("csv", "tsv"):
            yield from _iter_csv(path, name, "\t" if kind == "tsv" else ",")
        else:
            raise InputError(name, None, None, f"unknown container {kind!r}")
    except EOFError as exc:
        raise InputError(name, None, None, f"the gzip stream is cut off ({exc})") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(name, None, None, f"corrupt gzip data ({exc})") from None


def _iter_jsonl(path: Path, name: str) -> Iterator[Record]:
    empty = True
    with open_binary(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue
            empty = False
            where = f"line {lineno}"
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield Record(name, where, _BadRecord(json_problem(line, exc)), line)
                continue
            yield Record(name, where, data, line)
    if empty:
        # A gzip file of nothing, or only blank lines: as empty as a zero-byte file.
        raise InputError(name, None, None, "the file is empty (no records)")


def json_problem(raw: bytes, exc: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as ude:
        return f"invalid UTF-8 at byte {ude.start}"
    return f"malformed JSON ({exc})"


class _BadRecord:
    """Stands in for a record that could not even be parsed; adapters never see it."""

    def __init__(self, problem: str):
        self.problem = problem


def bad_record(problem: str) -> Any:
    """A stand-in record for a line that could not be parsed (readers yield it; the row
    loop reports or quarantines it with its line)."""
    return _BadRecord(problem)


def is_bad(data: Any) -> str | None:
    """The parse problem of a record, or None if it parsed."""
    return data.problem if isinstance(data, _BadRecord) else None


def _iter_json(path: Path, name: str) -> Iterator[Record]:
    with open_binary(path) as fh:
        raw = fh.read().removeprefix(BOM)
    if not raw.strip():
        raise InputError(name, None, None, "the file is empty (no records)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        line = raw[: getattr(exc, "pos", 0)].count(b"\n") + 1
        raise InputError(name, f"line {line}", None, json_problem(raw, exc)) from None
    if isinstance(data, dict):
        # A single object: either one record or {"data": [...]}-style wrapper.
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        data = lists[0] if len(lists) == 1 and len(data) <= 3 else [data]
    if not isinstance(data, list):
        raise InputError(name, None, None, "expected a JSON array of records or JSON Lines")
    for i, item in enumerate(data, start=1):
        yield Record(name, f"item {i}", item)


def _iter_parquet(path: Path, name: str) -> Iterator[Record]:
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(name, None, None, f"not a readable Parquet file ({exc})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        for item in batch.to_pylist():
            row += 1
            yield Record(name, f"row {row}", item)


def _decoded_lines(fb: IO[bytes], name: str, bad: dict[int, str]) -> Iterator[str]:
    """Text lines of a binary file, decoded one at a time so a problem names its line.

    (A text wrapper decodes whole blocks ahead of the CSV parser, so its errors would
    name the wrong line.) Invalid UTF-8 in the header stops the read; in a later line it
    is noted in ``bad`` (line -> problem) and the line decoded with replacement
    characters, so the record holding it is reported, or quarantined, by line.
    """
    for lineno, raw in enumerate(fb, start=1):
        try:
            yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            problem = f"invalid UTF-8 at byte {exc.start} ({exc.reason})"
            if lineno == 1:
                raise InputError(name, "line 1", None, problem) from None
            bad[lineno] = problem
            yield raw.decode("utf-8", errors="replace")


def _iter_csv(path: Path, name: str, delimiter: str) -> Iterator[Record]:
    bad: dict[int, str] = {}
    with open_binary(path) as fb:
        reader = csv.reader(_decoded_lines(fb, name, bad), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(name, None, None, "the file is empty") from None
        except csv.Error as exc:
            raise InputError(name, "line 1", None, f"malformed CSV ({exc})") from None
        header = [h.strip().lstrip("#").strip() for h in header]
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputError(name, f"line {start}", None, f"malformed CSV ({exc})") from None
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            where = f"line {start}"
            broken = [bad[n] for n in range(start, reader.line_num + 1) if n in bad]
            if broken:
                yield Record(name, where, _BadRecord(broken[0]), delimiter.join(values).encode())
                continue
            if len(values) != len(header):
                yield Record(
                    name,
                    where,
                    _BadRecord(f"has {len(values)} fields, the header has {len(header)}"),
                    delimiter.join(values).encode(),
                )
                continue
            yield Record(name, where, dict(zip(header, values, strict=True)))
