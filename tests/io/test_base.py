"""The machinery every adapter shares: Emitter, read_rows, Quarantine, field helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from prefkit.errors import InputError, PrefkitError, RecordError
from prefkit.io.formats.base import (
    REGISTRY,
    Emitter,
    Quarantine,
    ReadOptions,
    get_format,
    need,
    number,
    optional,
    read_rows,
    unique_stems,
)
from prefkit.schema import CORE, TABLES, concat, messages
from prefkit.schema import ids as _ids


def _jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _convert(rec: dict[str, Any], emit: Emitter) -> None:
    """A tiny pairwise adapter: {"prompt", "chosen", "rejected"} -> one judgment."""
    prompt = need(rec, "prompt")
    pid = emit.prompt(messages(("user", prompt)))
    chosen = need(rec, "chosen")
    rejected = need(rec, "rejected")
    a = emit.response(pid, messages(("assistant", chosen)))
    b = emit.response(pid, messages(("assistant", rejected)))
    emit.judgment(pid, a, b, 1, annotator_id=optional(rec, "judge"))


def _collect(chunks: Any) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {name: [] for name in TABLES}
    for chunk in chunks:
        for name, table in chunk.items():
            assert table.schema.names[: len(CORE[name])] == CORE[name].names
            parts[name].append(table)
    return {name: concat(name, ts) for name, ts in parts.items()}


def _rec(i: int, **kw: Any) -> dict[str, Any]:
    return {"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", **kw}


# --- happy path ---------------------------------------------------------------------------------
def test_read_rows_builds_the_tables(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "train.jsonl", [_rec(0), _rec(1, judge="u1")])
    t = _collect(read_rows([p], _convert, ReadOptions()))
    assert t["prompts"].num_rows == 2
    assert t["responses"].num_rows == 4
    assert t["judgments"].column("judgment_id").to_pylist() == ["train:0", "train:1"]
    assert t["judgments"].column("annotator_id").to_pylist() == [None, "u1"]
    pid = _ids.prompt_id(messages(("user", "q0")))
    chosen = _ids.response_id(pid, messages(("assistant", "good 0")))
    first = t["judgments"].to_pylist()[0]
    assert (first["prompt_id"], first["a"], first["outcome"]) == (pid, chosen, 1)
    assert first["annotator_kind"] == "unknown"


def test_duplicate_prompts_and_responses_are_emitted_once(tmp_path: Path) -> None:
    # Same prompt in every record; same chosen answer twice. Small batches force several
    # chunks, so the dedup must hold across chunks too.
    records = [
        {"prompt": "same", "chosen": "A", "rejected": "B"},
        {"prompt": "same", "chosen": "A", "rejected": "C"},
        {"prompt": "same", "chosen": "D", "rejected": "B"},
        {"prompt": "other", "chosen": "A", "rejected": "B"},
    ]
    p = _jsonl(tmp_path / "d.jsonl", records)
    chunks = list(read_rows([p], _convert, ReadOptions(batch_rows=1)))
    assert len(chunks) > 1
    t = _collect(chunks)
    # By plain Python over the input.
    prompts = {r["prompt"] for r in records}
    responses = {(r["prompt"], r[k]) for r in records for k in ("chosen", "rejected")}
    assert t["prompts"].num_rows == len(prompts) == 2
    assert t["responses"].num_rows == len(responses) == 6
    assert t["judgments"].num_rows == len(records)
    assert len(set(t["prompts"].column("prompt_id").to_pylist())) == 2
    assert len(set(t["responses"].column("response_id").to_pylist())) == 6


def test_judgment_ids_are_consecutive_per_file(tmp_path: Path) -> None:
    def two_each(rec: dict[str, Any], emit: Emitter) -> None:
        _convert(rec, emit)
        pid = emit.prompt(messages(("user", rec["prompt"])))
        emit.ranking(pid, [[_ids.response_id(pid, messages(("assistant", rec["chosen"])))]])

    a = _jsonl(tmp_path / "a.jsonl", [_rec(0), _rec(1)])
    b = _jsonl(tmp_path / "b.jsonl.gz", [_rec(2)])
    t = _collect(read_rows([a, b], two_each, ReadOptions()))
    assert t["judgments"].column("judgment_id").to_pylist() == ["a:0", "a:2", "b:0"]
    assert t["rankings"].column("ranking_id").to_pylist() == ["a:1", "a:3", "b:1"]


def test_event_ids_skip_nothing_after_a_quarantined_record(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "f.jsonl", [_rec(0), {"prompt": "x"}, _rec(2), _rec(3)])
    q = Quarantine()
    t = _collect(read_rows([p], _convert, ReadOptions(quarantine=q)))
    assert t["judgments"].column("judgment_id").to_pylist() == ["f:0", "f:1", "f:2"]


def test_emitter_meta_columns_and_annotators() -> None:
    emit = Emitter("s")
    pid = emit.prompt(messages(("user", "q")), context={"persona": "pirate"}, lang="en")
    rid = emit.response(
        pid, messages(("assistant", "a")), source="gpt", score=3, attributes={"h": 1.0}
    )
    emit.annotator("u1", age=30)
    emit.annotator("u1", age=30)
    emit.commit()
    t = emit.flush()
    prompt = t["prompts"].to_pylist()[0]
    assert prompt["context"] == [("persona", "pirate")]
    assert prompt["lang"] == "en"
    assert prompt["prompt_id"] == _ids.prompt_id(messages(("user", "q")), {"persona": "pirate"})
    response = t["responses"].to_pylist()[0]
    assert response["response_id"] == rid
    assert (response["source"], response["score"], response["attributes"]) == (
        "gpt",
        3.0,
        [("h", 1.0)],
    )
    assert t["annotators"].to_pylist() == [{"annotator_id": "u1", "age": 30}]
    assert "judgments" not in t  # only tables with rows


# --- errors -------------------------------------------------------------------------------------
def test_bad_record_without_quarantine_names_file_line_and_field(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "in.jsonl", [_rec(0), _rec(1), {"prompt": "q2", "chosen": "x"}])
    with pytest.raises(InputError) as err:
        list(read_rows([p], _convert, ReadOptions()))
    e = err.value
    assert (e.file, e.where, e.field) == (str(p), "line 3", "rejected")
    assert e.message == "is missing"
    assert str(e) == f"{p}, line 3, field 'rejected': is missing"


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "in.jsonl", [_rec(0, chosen=5)])
    with pytest.raises(InputError, match="field 'chosen': expected a string, got int"):
        list(read_rows([p], _convert, ReadOptions()))


def test_adapter_tripping_on_a_shape_is_blamed_on_the_record(tmp_path: Path) -> None:
    def fragile(rec: Any, emit: Emitter) -> None:
        emit.prompt(messages(("user", rec["prompt"]["text"])))

    p = _jsonl(tmp_path / "in.jsonl", [{"prompt": {"text": "ok"}}, {"prompt": "flat"}])
    with pytest.raises(InputError) as err:
        list(read_rows([p], fragile, ReadOptions()))
    assert err.value.where == "line 2"
    assert "unexpected record shape" in err.value.message


def test_quarantine_file_and_counts_reconcile(tmp_path: Path) -> None:
    records: list[Any] = [
        _rec(0),
        {"prompt": "q1", "chosen": "x"},  # missing rejected
        _rec(2),
        {"prompt": 7, "chosen": "x", "rejected": "y"},  # wrong type
        _rec(4),
    ]
    p = _jsonl(tmp_path / "in.jsonl", records)
    with p.open("ab") as fh:
        fh.write(b'{"prompt": "broken\n')  # line 6: not even JSON
    qpath = tmp_path / "out" / "quarantine.jsonl"
    q = Quarantine(qpath)
    t = _collect(read_rows([p], _convert, ReadOptions(quarantine=q)))
    q.close()
    assert t["judgments"].num_rows == 3
    assert (q.read, q.kept, q.quarantined) == (6, 3, 3)
    assert q.read == q.kept + q.quarantined
    lines = [orjson.loads(line) for line in qpath.read_bytes().splitlines()]
    assert [(e["file"], e["where"], e["field"]) for e in lines] == [
        (str(p), "line 2", "rejected"),
        (str(p), "line 4", "prompt"),
        (str(p), "line 6", None),
    ]
    assert lines[0]["error"] == "is missing"
    assert "expected a string" in lines[1]["error"]
    assert "malformed JSON" in lines[2]["error"]
    # The record is the original line, so it can be fixed and re-read.
    assert orjson.loads(lines[0]["record"]) == records[1]
    assert lines[2]["record"] == '{"prompt": "broken'
    summary = q.summary()
    assert summary["read"] == 6 and summary["kept"] == 3 and summary["quarantined"] == 3
    assert summary["file"] == str(qpath)
    assert summary["reasons"]["rejected: is missing"] == 1
    assert sum(summary["reasons"].values()) == 3


def test_quarantine_without_a_file_still_counts(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "in.jsonl", [_rec(0), {"prompt": "q"}])
    q = Quarantine()
    list(read_rows([p], _convert, ReadOptions(quarantine=q)))
    assert (q.read, q.kept, q.quarantined) == (2, 1, 1)
    assert q.summary()["file"] is None


def test_quarantine_of_a_non_jsonl_record_keeps_its_data(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("prompt,chosen,rejected\nq0,a,b\nq1,a,a,extra\nq2,,b\n")

    def strict(rec: dict[str, Any], emit: Emitter) -> None:
        if not rec["chosen"]:
            raise RecordError("chosen", "is empty")
        _convert(rec, emit)

    qpath = tmp_path / "q.jsonl"
    q = Quarantine(qpath)
    list(read_rows([p], strict, ReadOptions(quarantine=q)))
    q.close()
    lines = [orjson.loads(line) for line in qpath.read_bytes().splitlines()]
    assert [(e["where"], e["field"]) for e in lines] == [("line 3", None), ("line 4", "chosen")]
    assert lines[1]["record"] == {"prompt": "q2", "chosen": "", "rejected": "b"}
    assert (q.read, q.kept, q.quarantined) == (3, 1, 2)


def test_record_failing_halfway_leaves_no_rows(tmp_path: Path) -> None:
    def halfway(rec: dict[str, Any], emit: Emitter) -> None:
        pid = emit.prompt(messages(("user", rec["prompt"])), tag="staged")
        rid = emit.response(pid, messages(("assistant", "partial")))
        emit.judgment(pid, rid, rid, 1)
        emit.annotator("judge-" + rec["prompt"])
        if rec.get("fail"):
            raise RecordError("fail", "asked to fail")

    p = _jsonl(tmp_path / "in.jsonl", [{"prompt": "kept"}, {"prompt": "dropped", "fail": True}])
    q = Quarantine()
    t = _collect(read_rows([p], halfway, ReadOptions(quarantine=q)))
    assert t["prompts"].column("prompt_id").to_pylist() == [
        _ids.prompt_id(messages(("user", "kept")))
    ]
    assert t["responses"].num_rows == 1
    assert t["judgments"].num_rows == 1
    assert t["annotators"].column("annotator_id").to_pylist() == ["judge-kept"]
    assert q.quarantined == 1


def test_rolled_back_prompt_can_still_be_emitted_later(tmp_path: Path) -> None:
    # A prompt first seen in a failing record must not count as "seen" afterwards.
    records = [{"prompt": "q", "chosen": "a"}, _rec(0, prompt="q")]
    p = _jsonl(tmp_path / "in.jsonl", records)
    t = _collect(read_rows([p], _convert, ReadOptions(quarantine=Quarantine())))
    assert t["prompts"].num_rows == 1
    assert t["responses"].num_rows == 2


def test_same_prompt_twice_in_one_record_is_one_row() -> None:
    emit = Emitter("s")
    a = emit.prompt(messages(("user", "q")))
    b = emit.prompt(messages(("user", "q")))
    emit.commit()
    assert a == b
    assert emit.flush()["prompts"].num_rows == 1


# --- stems --------------------------------------------------------------------------------------
def test_unique_stems() -> None:
    assert unique_stems([Path("d/train.jsonl"), Path("d/test.jsonl.gz")]) == ["train", "test"]
    assert unique_stems([Path("a/train.jsonl"), Path("b/train.jsonl")]) == ["a/train", "b/train"]
    same_parent = unique_stems([Path("a/train.jsonl"), Path("a/train.csv")])
    assert len(set(same_parent)) == 2
    assert all("train" in s for s in same_parent)
    assert unique_stems([]) == []


def test_files_with_the_same_name_get_distinct_event_ids(tmp_path: Path) -> None:
    a = _jsonl(tmp_path / "en" / "train.jsonl", [_rec(0)])
    b = _jsonl(tmp_path / "de" / "train.jsonl", [_rec(1)])
    t = _collect(read_rows([a, b], _convert, ReadOptions()))
    assert t["judgments"].column("judgment_id").to_pylist() == ["en/train:0", "de/train:0"]


# --- field helpers and registry -----------------------------------------------------------------
def test_need_and_optional() -> None:
    rec = {"s": "x", "n": 3, "b": True, "l": [1], "none": None}
    assert need(rec, "s") == "x"
    assert need(rec, "n", (int, float)) == 3
    assert need(rec, "b", bool) is True
    assert optional(rec, "none") is None
    assert optional(rec, "absent") is None
    assert optional(rec, "l", list) == [1]
    with pytest.raises(RecordError) as err:
        need(rec, "none")
    assert err.value.field == "none" and err.value.message == "is missing"
    with pytest.raises(RecordError, match="expected an integer, got bool"):
        need(rec, "b", int)  # a bool is not an integer here
    with pytest.raises(RecordError, match="expected a list, got str"):
        optional(rec, "s", list)
    with pytest.raises(RecordError, match="expected an object"):
        need(["not", "a", "dict"], "s")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("  ", None), ("2.5", 2.5), (3, 3.0), (1.5, 1.5)],
)
def test_number(value: Any, expected: float | None) -> None:
    assert number(value, "score") == expected


@pytest.mark.parametrize("value", ["high", True, [1]])
def test_number_refuses(value: Any) -> None:
    with pytest.raises(RecordError) as err:
        number(value, "score")
    assert err.value.field == "score"


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(PrefkitError, match="unknown format 'nope'") as err:
        get_format("nope")
    for name in REGISTRY:
        assert name in str(err.value)
