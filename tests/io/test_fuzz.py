"""Garbage in, PrefkitError out: property-based tests over every registered format.

Whatever bytes a user points prefkit at, ``prefkit.load`` either reads them or raises
:class:`~prefkit.errors.PrefkitError` (an ``InputError`` for a bad record) whose message
names the file; no ``KeyError``, ``TypeError``, ``UnicodeDecodeError``, ``ArrowInvalid``,
``ParseError`` or other internal exception may escape. Every test is parametrised over the
registry, so a new format is fuzzed as soon as it is registered (its minimal example, in
``test_registry_contract.py``, seeds the almost-valid inputs). Directory formats get their
folder layout with one file corrupted.

With ``on_error="quarantine"`` bad records never stop the read, and the counts reconcile:
read = kept + quarantined (DESIGN.md §4).
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import os
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

# The minimal valid example of every format, and how to write records in its layout.
from test_registry_contract import (
    BAD_UTF8,
    EXAMPLES,
    encode_text,
    json_array,
    json_lines,
    load_example,
    write_example,
)

import prefkit
from prefkit.errors import InputError, PrefkitError
from prefkit.io.formats.base import REGISTRY

FORMATS = sorted(REGISTRY)
#: Examples per test and format; raise it (e.g. PREFKIT_FUZZ_EXAMPLES=1000) for a deep run.
FUZZ = settings(
    max_examples=int(os.environ.get("PREFKIT_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- strategies ----------------------------------------------------------------------------------
def _keys_of(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _keys_of(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys_of(v)


#: Field names the adapters look for, so garbage records reach past the first lookup.
KNOWN_KEYS = sorted({k for records in EXAMPLES.values() for k in _keys_of(records)})
KEYS = st.sampled_from(KNOWN_KEYS) | st.text(string.ascii_letters + "_", min_size=1, max_size=8)


ANY_TEXT = st.text(max_size=12)
#: Text that is valid in every container (no control characters, nothing XML refuses).
SAFE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn", "Co")), max_size=12
)


def json_values(text: st.SearchStrategy[str] = ANY_TEXT) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        # Up to 2**64 - 1 orjson reads an int (beyond int64); it reads 2**70 as a float.
        | st.integers(-(2**63), 2**64 - 1)
        | st.just(2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
        max_leaves=15,
    )


def garbage_records(text: st.SearchStrategy[str] = ANY_TEXT) -> st.SearchStrategy[list[Any]]:
    """Lists of records: mostly objects with known field names, some bare JSON values."""
    values = json_values(text)
    return st.lists(st.dictionaries(KEYS, values, max_size=8) | values, min_size=1, max_size=5)


#: One-field mutations of a valid record: (kind, replacement values).
MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "delete": st.just(None),
    "none": st.just(None),
    "number": st.integers(-3, 5) | st.sampled_from([2**63, 2**70, -(2**63)]) | st.floats(-1e3, 1e3),
    "list": st.sampled_from([[], [1], ["x", None], [{"role": "user"}], [[]]]),
    "object": st.sampled_from([{}, {"x": 1}, {"role": "user", "content": None}]),
    "bool": st.booleans(),
    "empty": st.sampled_from(["", " ", "\n"]),
    "text": st.text(max_size=8),
    "numeric_text": st.sampled_from(["inf", "-inf", "nan", "1e400", "1e30", "1.5", "-1", "007"]),
    "bad_utf8": st.sampled_from([BAD_UTF8, "ok " + BAD_UTF8]),
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key or index path in a nested structure (parents before children)."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    out = []
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def mutate(records: list[Any], path: tuple[Any, ...], kind: str, value: Any) -> list[Any]:
    records = copy.deepcopy(records)
    parent: Any = records
    for step in path[:-1]:
        parent = parent[step]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return records


# --- helpers -------------------------------------------------------------------------------------
@contextmanager
def workdir() -> Iterator[Path]:
    # Hypothesis runs many examples per test call, so no function-scoped tmp_path.
    with tempfile.TemporaryDirectory(prefix="prefkit-fuzz-") as tmp:
        yield Path(tmp)


def corrupt(name: str, root: Path, data: bytes, suffix: str | None = None) -> tuple[Path, Path]:
    """Write format ``name``'s valid layout, then replace its main data file by ``data``.

    ``suffix`` renames the data file of single-file formats (the container follows the
    suffix). Returns (path to load, the corrupted file).
    """
    path, data_file = write_example(name, root)
    if suffix is not None and path == data_file:
        data_file.unlink()
        data_file = path = data_file.with_name("garbage" + suffix)
    data_file.write_bytes(data)
    return path, data_file


def expect_clean(name: str | None, path: Path, quarantine: bool = False) -> None:
    """Load ``path``: it may succeed or raise PrefkitError naming the file; nothing else.

    Any other exception propagates, so hypothesis reports (and shrinks) it. With
    ``quarantine``, a load that succeeds must have reconciling counts.
    """
    kwargs: dict[str, Any] = {"on_error": "quarantine"} if quarantine else {}
    try:
        ds = prefkit.load(path, **kwargs) if name is None else load_example(name, path, **kwargs)
    except PrefkitError as exc:
        # A folder's error may name the folder or a file in it: both contain the path.
        assert str(path) in str(exc), f"the message does not name {path}: {exc}"
        if isinstance(exc, InputError):
            assert exc.file.startswith(str(path)), exc.file
        return
    if quarantine:
        reconciles(ds)


def reconciles(ds: prefkit.Dataset) -> dict[str, Any]:
    q = ds.manifest.quarantine
    assert q is not None
    assert q["read"] == q["kept"] + q["quarantined"], q
    return q


# --- garbage of every kind, for every format -----------------------------------------------------
@pytest.mark.parametrize("name", FORMATS)
@FUZZ
@given(
    data=st.binary(max_size=400),
    head=st.sampled_from([b"", b"PAR1", b"\x1f\x8b", b"\xef\xbb\xbf", b"{", b"[", b"<"]),
    keep_first_line=st.booleans(),
    suffix=st.sampled_from([".jsonl", ".json", ".parquet", ".csv", ".tsv", ".xml", ""]),
    quarantine=st.booleans(),
)
def test_random_bytes(
    name: str, data: bytes, head: bytes, keep_first_line: bool, suffix: str, quarantine: bool
):
    with workdir() as tmp:
        if keep_first_line:  # a valid header or first record, then garbage
            _, valid = write_example(name, tmp / "valid")
            head = valid.read_bytes().split(b"\n", 1)[0] + b"\n" + head
        path, _ = corrupt(name, tmp / "in", head + data, suffix)
        expect_clean(name, path, quarantine)


@pytest.mark.parametrize("name", FORMATS)
@FUZZ
@given(records=garbage_records(), container=st.sampled_from(["jsonl", "json", "parquet"]))
def test_random_json(name: str, records: list[Any], container: str):
    if container == "parquet":
        records = [r if isinstance(r, dict) else {"value": r} for r in records]
    data = json_lines(records) if container == "jsonl" else in_container(records, container)
    with workdir() as tmp:
        path, _ = corrupt(name, tmp / "in", data, f".{container}")
        expect_clean(name, path)


@pytest.mark.parametrize("name", FORMATS)
@FUZZ
@given(data=st.data())
def test_almost_valid_record(name: str, data: st.DataObject):
    """The format's own valid example with one field deleted or set to a wrong value.

    Single-file JSON layouts are also written as a JSON array, CSV and Parquet.
    """
    records = EXAMPLES[name]
    path = data.draw(st.sampled_from(_paths(records)), label="path")
    kind = data.draw(st.sampled_from(sorted(MUTATIONS)), label="mutation")
    value = data.draw(MUTATIONS[kind], label="value")
    container = data.draw(st.sampled_from(["jsonl", "json", "csv", "parquet"]), label="container")
    quarantine = data.draw(st.booleans(), label="quarantine")
    records = mutate(records, path, kind, value)
    with workdir() as tmp:
        target, data_file = write_example(name, tmp / "in", records)
        if container != "jsonl" and target == data_file and data_file.suffix == ".jsonl":
            data_file.unlink()
            target = data_file.with_suffix(f".{container}")
            target.write_bytes(in_container(records, container))
        expect_clean(name, target, quarantine)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def in_container(records: list[Any], container: str) -> bytes:
    """``records`` as a JSON array, a CSV table (nested values as JSON text) or Parquet."""
    if container == "json":
        return json_array(records)
    assume(all(isinstance(r, dict) for r in records))
    if container == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, list(dict.fromkeys(k for r in records for k in r)))
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in records)
        return encode_text(buf.getvalue())
    try:
        table = pa.Table.from_pylist(records)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        assume(False)  # pyarrow cannot type this mix; nothing to read
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("name", FORMATS)
def test_integer_beyond_int64(name: str, tmp_path: Path):
    """2**63 in any one field: orjson reads it as an int, XML/TSV text goes through int().

    Adapters that convert to int64 must refuse it, and meta columns must still build.
    """
    records = EXAMPLES[name]
    for i, path in enumerate(_paths(records)):
        target, _ = write_example(name, tmp_path / str(i), mutate(records, path, "number", 2**63))
        expect_clean(name, target)


@pytest.mark.parametrize("name", FORMATS)
@FUZZ
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_gzip(name: str, cut: float):
    with workdir() as tmp:
        path, data_file = write_example(name, tmp / "in")
        packed = gzip.compress(data_file.read_bytes())
        data_file.unlink()
        gz = data_file.with_name(data_file.name + ".gz")
        gz.write_bytes(packed[: int(cut * len(packed))])
        with pytest.raises(PrefkitError) as info:
            load_example(name, gz if path == data_file else path)
        assert str(path if path != data_file else gz) in str(info.value)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("data", [b"", b"\n  \n\n"], ids=["empty", "blank"])
def test_empty_file(name: str, data: bytes, tmp_path: Path):
    path, _ = corrupt(name, tmp_path, data)
    with pytest.raises(PrefkitError) as info:
        load_example(name, path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", [*FORMATS, None])
def test_mixed_formats_in_one_file(name: str | None, tmp_path: Path):
    """A valid TRL line followed by a valid arena line: read, or refused cleanly."""
    data = json_lines([EXAMPLES["trl"][0], EXAMPLES["arena"][0]])
    if name is None:
        path = tmp_path / "mixed.jsonl"
        path.write_bytes(data)
    else:
        path, _ = corrupt(name, tmp_path, data)
    expect_clean(name, path)


@FUZZ
@given(records=garbage_records())
def test_sniffing_garbage(records: list[Any]):
    """Without format=, garbage is recognised as something or refused cleanly."""
    with workdir() as tmp:
        path = tmp / "garbage.jsonl"
        path.write_bytes(json_lines(records))
        expect_clean(None, path)


@FUZZ
@given(
    garbage=garbage_records() | st.lists(st.binary(min_size=1, max_size=40), min_size=1),
    quarantine=st.booleans(),
)
def test_trl_fast_path_garbage(garbage: list[Any], quarantine: bool):
    """Garbage after 20 plain pairs: the vectorised TRL reader hands it to the slow one."""
    lines = [
        g.replace(b"\n", b" ") + b"\n" if isinstance(g, bytes) else json_lines([g]) for g in garbage
    ]
    data = json_lines(EXAMPLES["trl"][:1] * 20) + b"".join(lines)
    with workdir() as tmp:
        path = tmp / "pairs.jsonl"
        path.write_bytes(data)
        if not quarantine:
            expect_clean("trl", path)
            return
        q = reconciles(load_example("trl", path, on_error="quarantine"))
        assert q["kept"] >= 20, q


# --- quarantine: bad records never stop the read, and the counts reconcile -----------------------
#: Formats that pick their columns from the first records: a garbage record with, say, a
#: ``response`` key makes that the response column, and the valid example is then the bad one.
LAYOUT_FROM_RECORDS = {"likert"}
#: How a garbage record enters each layout (PRD: as a rating line; its side files stay valid).
WRAP = {"prd-battles": lambda g: {"rating": g}}


@pytest.mark.parametrize("name", FORMATS)
@FUZZ
@given(garbage=garbage_records(SAFE_TEXT))
def test_quarantine_reconciles(name: str, garbage: list[Any]):
    """The valid example, then garbage records in the format's layout: nothing raises.

    (Text without control characters, so XML stays well-formed: malformed XML or an
    undecodable CSV line stops the whole file, by design.)
    """
    wrap = WRAP.get(name, lambda g: g)
    records = [*EXAMPLES[name], *(wrap(g) for g in garbage)]
    with workdir() as tmp:
        path, data_file = write_example(name, tmp / "in", records)
        qfile = tmp / "quarantine.jsonl"
        q = reconciles(load_example(name, path, on_error="quarantine", quarantine=qfile))
        if name not in LAYOUT_FROM_RECORDS:
            assert q["kept"] >= 1, q  # the valid example comes first
        if data_file.suffix == ".jsonl":  # one record per line
            assert q["read"] == len(records), q
        written = qfile.read_bytes().splitlines() if qfile.exists() else []
        assert len(written) == q["quarantined"]
        for line in written:
            assert json.loads(line)["file"].startswith(str(path))
