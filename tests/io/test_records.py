"""Raw record reading: containers, gzip, locations of records, structural errors."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefkit.errors import InputError
from prefkit.io.formats.base import ReadOptions, read_rows
from prefkit.io.records import (
    Record,
    container_of,
    is_bad,
    is_gzip,
    iter_records,
    resolve_container,
)


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _read(path: Path) -> list[Record]:
    return list(iter_records(path))


def _good(recs: list[Record]) -> list[tuple[str, Any]]:
    return [(r.where, r.data) for r in recs if is_bad(r.data) is None]


def _bad(recs: list[Record]) -> list[tuple[str, str]]:
    return [(r.where, is_bad(r.data)) for r in recs if is_bad(r.data) is not None]  # type: ignore[misc]


def _noop(rec: Any, emit: Any) -> None:
    return None


# --- containers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.JSONL.gz", "jsonl"),
        ("a.json", "json"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.csv", "csv"),
        ("a.csv.gz", "csv"),
        ("a.tsv", "tsv"),
        ("a.tab", "tsv"),
        ("train.v2.jsonl", "jsonl"),
        ("a.txt", None),
        ("README", None),
    ],
)
def test_container_of(name: str, kind: str | None) -> None:
    assert container_of(Path(name)) == kind


# --- JSON Lines ---------------------------------------------------------------------------------
def test_jsonl_records_carry_line_numbers_and_raw_bytes(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", '{"x": 1}\n{"x": [2, 3]}\n')
    recs = _read(p)
    assert _good(recs) == [("line 1", {"x": 1}), ("line 2", {"x": [2, 3]})]
    assert recs[0].file == str(p)
    assert recs[0].raw == b'{"x": 1}\n'


def test_blank_lines_are_skipped_and_line_numbers_stay_right(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", '\n{"x": 1}\n\n   \n{"x": 2}\r\n\t\n{"x": 3}')
    assert _good(_read(p)) == [("line 2", {"x": 1}), ("line 5", {"x": 2}), ("line 7", {"x": 3})]


def test_malformed_line_is_a_bad_record_naming_its_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", '{"x": 1}\n\n{"x": \n{"x": 3}\n')
    recs = _read(p)
    assert _good(recs) == [("line 1", {"x": 1}), ("line 4", {"x": 3})]
    (bad,) = _bad(recs)
    assert bad[0] == "line 3"
    assert "malformed JSON" in bad[1]


def test_read_rows_turns_a_parse_problem_into_input_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", '{"x": 1}\n\n{"x": \n')
    with pytest.raises(InputError) as err:
        list(read_rows([p], _noop, ReadOptions()))
    assert err.value.file == str(p)
    assert err.value.where == "line 3"
    assert str(p) in str(err.value) and "line 3" in str(err.value)
    assert "malformed JSON" in str(err.value)


def test_invalid_utf8_in_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", b'{"x": "ok"}\n{"x": "\xff\xfe"}\n')
    recs = _read(p)
    assert _good(recs) == [("line 1", {"x": "ok"})]
    (bad,) = _bad(recs)
    assert bad[0] == "line 2"
    assert "UTF-8" in bad[1]
    with pytest.raises(InputError, match=r"line 2.*UTF-8"):
        list(read_rows([p], _noop, ReadOptions()))


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "a.jsonl", b'\xef\xbb\xbf{"x": 1}\n{"x": 2}\n')
    assert _good(_read(jsonl)) == [("line 1", {"x": 1}), ("line 2", {"x": 2})]
    array = _write(tmp_path / "b.json", b'\xef\xbb\xbf[{"x": 1}]')
    assert _good(_read(array)) == [("item 1", {"x": 1})]
    sheet = _write(tmp_path / "c.csv", b"\xef\xbb\xbfprompt,chosen\nq,a\n")
    assert _good(_read(sheet)) == [("line 2", {"prompt": "q", "chosen": "a"})]


def test_empty_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.jsonl", b"")
    with pytest.raises(InputError, match="empty") as err:
        _read(p)
    assert err.value.file == str(p)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("blank.jsonl", b"\n \n\n"),
        ("nothing.jsonl.gz", gzip.compress(b"", mtime=0)),
        ("nothing.csv.gz", gzip.compress(b"", mtime=0)),
    ],
)
def test_files_without_records_are_empty(tmp_path: Path, name: str, content: bytes) -> None:
    with pytest.raises(InputError, match="empty"):
        _read(_write(tmp_path / name, content))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        _read(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="directory"):
        _read(tmp_path)


# --- gzip ---------------------------------------------------------------------------------------
def _lines(n: int) -> bytes:
    return b"".join(
        orjson.dumps({"i": i, "text": f"row number {i} " * 5}) + b"\n" for i in range(n)
    )


def test_gzip_is_read_by_content(tmp_path: Path) -> None:
    named = _write(tmp_path / "a.jsonl.gz", gzip.compress(_lines(3)))
    unnamed = _write(tmp_path / "b.jsonl", gzip.compress(_lines(3)))  # gzip without .gz
    assert is_gzip(named) and is_gzip(unnamed)
    expected = [(f"line {i + 1}", {"i": i, "text": f"row number {i} " * 5}) for i in range(3)]
    assert _good(_read(named)) == expected
    assert _good(_read(unnamed)) == expected


def test_gzip_cut_off_mid_stream(tmp_path: Path) -> None:
    data = gzip.compress(_lines(2000))
    p = _write(tmp_path / "a.jsonl.gz", data[: len(data) // 2])
    with pytest.raises(InputError, match="gzip") as err:
        _read(p)
    assert err.value.file == str(p)


@pytest.mark.parametrize("name", ["a.json.gz", "data"])
def test_gzip_cut_off_while_sniffing(tmp_path: Path, name: str) -> None:
    # Small enough that sniffing the content already hits the cut.
    data = gzip.compress(_lines(50))
    p = _write(tmp_path / name, data[: len(data) // 2])
    with pytest.raises(InputError, match="gzip"):
        resolve_container(p)
    with pytest.raises(InputError, match="gzip"):
        _read(p)


def test_gzip_with_corrupt_body(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(_lines(2000)))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00" * 16
    with pytest.raises(InputError, match="gzip"):
        _read(_write(tmp_path / "a.jsonl.gz", bytes(data)))


# --- JSON ---------------------------------------------------------------------------------------
def test_json_array_items(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.json", '[{"x": 1},\n {"x": 2}]')
    assert resolve_container(p) == "json"
    assert _good(_read(p)) == [("item 1", {"x": 1}), ("item 2", {"x": 2})]


def test_pretty_printed_json_wrapper_object(tmp_path: Path) -> None:
    body = {"version": 2, "data": [{"x": 1}, {"x": 2}]}
    p = _write(tmp_path / "a.json", orjson.dumps(body, option=orjson.OPT_INDENT_2))
    assert resolve_container(p) == "json"
    assert _good(_read(p)) == [("item 1", {"x": 1}), ("item 2", {"x": 2})]


def test_pretty_printed_single_json_object(tmp_path: Path) -> None:
    body = {"prompt": "q", "chosen": "a", "rejected": "b"}
    p = _write(tmp_path / "a.json", orjson.dumps(body, option=orjson.OPT_INDENT_2))
    assert _good(_read(p)) == [("item 1", body)]


def test_json_that_is_really_jsonl(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.json", '{"x": 1}\n\n{"x": 2}\n')
    assert resolve_container(p) == "jsonl"
    assert _good(_read(p)) == [("line 1", {"x": 1}), ("line 3", {"x": 2})]


def test_malformed_json_array_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.json", '[\n{"x": 1},\n{"x": }\n]')
    with pytest.raises(InputError, match="malformed JSON") as err:
        _read(p)
    assert err.value.where == "line 3"


def test_json_scalar_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.json", '"just text"')
    with pytest.raises(InputError, match="JSON array"):
        list(iter_records(p, "json"))


# --- CSV / TSV ----------------------------------------------------------------------------------
def test_csv_rows_with_header_and_line_numbers(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv", 'prompt,chosen\nq1,a1\n\n"multi\nline",a2\nq3,a3\n')
    assert _good(_read(p)) == [
        ("line 2", {"prompt": "q1", "chosen": "a1"}),
        ("line 4", {"prompt": "multi\nline", "chosen": "a2"}),
        ("line 6", {"prompt": "q3", "chosen": "a3"}),
    ]


def test_csv_with_crlf_line_endings(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv", "prompt,chosen\r\nq1,a1\r\nq2,a2\r\n")
    assert _good(_read(p)) == [
        ("line 2", {"prompt": "q1", "chosen": "a1"}),
        ("line 3", {"prompt": "q2", "chosen": "a2"}),
    ]


def test_csv_with_wrong_field_count(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv", "prompt,chosen\nq1,a1\nq2,a2,extra\nq3\nq4,a4\n")
    recs = _read(p)
    assert _good(recs) == [
        ("line 2", {"prompt": "q1", "chosen": "a1"}),
        ("line 5", {"prompt": "q4", "chosen": "a4"}),
    ]
    assert _bad(recs) == [
        ("line 3", "has 3 fields, the header has 2"),
        ("line 4", "has 1 fields, the header has 2"),
    ]
    with pytest.raises(InputError) as err:
        list(read_rows([p], _noop, ReadOptions()))
    assert err.value.where == "line 3"
    assert "3 fields" in str(err.value)


def test_csv_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    # The bad line is a bad record (reported or quarantined by the reader), the rest read.
    p = _write(tmp_path / "a.csv", b"prompt,chosen\nq1,a1\nq2,\xff\nq3,a3\n")
    recs = _read(p)
    assert _good(recs) == [
        ("line 2", {"prompt": "q1", "chosen": "a1"}),
        ("line 4", {"prompt": "q3", "chosen": "a3"}),
    ]
    [(where, problem)] = _bad(recs)
    assert where == "line 3" and "invalid UTF-8" in problem
    header = _write(tmp_path / "b.csv", b"prompt,\xff\nq1,a1\n")
    with pytest.raises(InputError, match="UTF-8") as err:
        _read(header)
    assert err.value.where == "line 1"


def test_tsv_and_sniffed_csv(tmp_path: Path) -> None:
    tsv = _write(tmp_path / "a.tsv", "prompt\tchosen\nq, with comma\ta1\n")
    assert _good(_read(tsv)) == [("line 2", {"prompt": "q, with comma", "chosen": "a1"})]
    odd = _write(tmp_path / "data.txt", "prompt\tchosen\nq\ta\n")
    assert resolve_container(odd) == "tsv"
    assert _good(_read(odd)) == [("line 2", {"prompt": "q", "chosen": "a"})]


# --- Parquet ------------------------------------------------------------------------------------
def test_parquet_rows(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    table = pa.table({"prompt": [f"q{i}" for i in range(10_000)], "n": list(range(10_000))})
    pq.write_table(table, p, row_group_size=3_000)
    recs = _read(p)
    assert len(recs) == 10_000
    assert (recs[0].where, recs[0].data) == ("row 1", {"prompt": "q0", "n": 0})
    assert (recs[-1].where, recs[-1].data) == ("row 10000", {"prompt": "q9999", "n": 9999})
    assert recs[0].raw is None


def test_parquet_sniffed_without_suffix(tmp_path: Path) -> None:
    p = tmp_path / "blob"
    pq.write_table(pa.table({"x": [1]}), p)
    assert resolve_container(p) == "parquet"
    assert _good(_read(p)) == [("row 1", {"x": 1})]


def test_corrupt_parquet(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.parquet", b"PAR1 this is not parquet PAR1")
    with pytest.raises(InputError, match="Parquet") as err:
        _read(p)
    assert err.value.file == str(p)
