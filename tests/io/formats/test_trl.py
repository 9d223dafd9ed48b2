"""The TRL preference adapter: the four row shapes, containers, errors, writer round-trips."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prefkit
from prefkit import Dataset
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format
from prefkit.io.formats.base import REGISTRY, Sample
from prefkit.io.formats.trl import pairs_to_chunk, split_shared, split_shared_text

SYS = {"role": "system", "content": "Be brief."}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _triples(ds: Dataset, **policy) -> list[str]:
    """The pairs of a dataset as sortable JSON strings (prompt, chosen, rejected)."""
    t = ds.to_pairs(conversational=True, **policy)
    cols = [t.column(c).to_pylist() for c in ("prompt", "chosen", "rejected")]
    return sorted(json.dumps(row) for row in zip(*cols, strict=True))


def _by_id(table: pa.Table, key: str) -> dict[str, dict]:
    return {r[key]: r for r in table.to_pylist()}


STANDARD = [
    {"prompt": "What colour is the sky?", "chosen": "Blue.", "rejected": "Green."},
    {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1.5, "id": "x2"},
    {
        "prompt": "2+2?",
        "chosen": "four",
        "rejected": "22",
        "score_chosen": 9,
        "score_rejected": 2.5,
    },
]
CONVERSATIONAL = [
    {
        "prompt": [SYS, {"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    },
    {
        "prompt": [
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "7"},
            {"role": "user", "content": "Another?"},
        ],
        "chosen": [{"role": "assistant", "content": "11"}],
        "rejected": [{"role": "assistant", "content": "12"}],
    },
]


# --- reading the four shapes -------------------------------------------------------------------
def test_standard_explicit(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "std.jsonl", STANDARD))
    assert ds.manifest.source["format"] == "trl"
    assert ds.counts()["judgments"] == 3
    assert ds.counts()["prompts"] == 2  # "2+2?" twice is one prompt
    assert ds.counts()["responses"] == 6
    prompts = _by_id(ds.prompts, "prompt_id")
    responses = _by_id(ds.responses, "response_id")
    for j, rec in zip(ds.judgments.to_pylist(), STANDARD, strict=True):
        assert j["outcome"] == 1
        assert j["annotator_kind"] == "unknown"
        assert prompts[j["prompt_id"]]["messages"] == [{"role": "user", "content": rec["prompt"]}]
        assert responses[j["a"]]["messages"] == [{"role": "assistant", "content": rec["chosen"]}]
        assert responses[j["b"]]["messages"] == [{"role": "assistant", "content": rec["rejected"]}]
    j = ds.judgments.to_pylist()
    assert [r["margin"] for r in j] == [None, 1.5, None]
    assert [r["id"] for r in j] == [None, "x2", None]
    assert responses[j[2]["a"]]["score"] == 9.0
    assert responses[j[2]["b"]]["score"] == 2.5


def test_conversational_explicit_keeps_system_in_prompt(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL))
    prompts = _by_id(ds.prompts, "prompt_id")
    responses = _by_id(ds.responses, "response_id")
    j = ds.judgments.to_pylist()
    assert prompts[j[0]["prompt_id"]]["messages"] == CONVERSATIONAL[0]["prompt"]
    assert prompts[j[0]["prompt_id"]]["context"] is None
    assert prompts[j[1]["prompt_id"]]["messages"] == CONVERSATIONAL[1]["prompt"]
    assert responses[j[1]["a"]]["messages"] == CONVERSATIONAL[1]["chosen"]


def test_conversational_implicit_prompt_is_shared_turns(tmp_path):
    shared = [
        SYS,
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
        {"role": "user", "content": "Joke?"},
    ]
    rows = [
        {
            "chosen": [*shared, {"role": "assistant", "content": "Knock knock."}],
            "rejected": [*shared, {"role": "assistant", "content": "No."}],
        },
        # differing before the last turn: everything from the first difference is response
        {
            "chosen": [
                shared[1],
                {"role": "assistant", "content": "A"},
                {"role": "user", "content": "B"},
                {"role": "assistant", "content": "C"},
            ],
            "rejected": [shared[1], {"role": "assistant", "content": "X"}],
        },
    ]
    ds = prefkit.load(_jsonl(tmp_path / "implicit.jsonl", rows))
    prompts = _by_id(ds.prompts, "prompt_id")
    responses = _by_id(ds.responses, "response_id")
    j = ds.judgments.to_pylist()
    assert prompts[j[0]["prompt_id"]]["messages"] == shared
    assert responses[j[0]["a"]]["messages"] == [{"role": "assistant", "content": "Knock knock."}]
    assert prompts[j[1]["prompt_id"]]["messages"] == [shared[1]]
    assert responses[j[1]["a"]]["messages"] == rows[1]["chosen"][1:]
    assert responses[j[1]["b"]]["messages"] == [{"role": "assistant", "content": "X"}]


def test_standard_implicit_matches_trl_extract_prompt(tmp_path):
    # The example of trl.data_utils.extract_prompt's docstring.
    ds = prefkit.load(
        _jsonl(
            tmp_path / "s.jsonl", [{"chosen": "The sky is blue.", "rejected": "The sky is green."}]
        )
    )
    pair = ds.to_pairs(conversational=False).to_pylist()[0]
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ("The sky is", " blue.", " green.")


def test_split_helpers_keep_a_turn_on_each_side():
    assert split_shared([1, 2, 3], [1, 2, 3]) == ([1, 2], [3], [3])
    assert split_shared([1, 2], [1, 2, 3]) == ([1], [2], [2, 3])
    assert split_shared([1], [2]) == ([], [1], [2])
    assert split_shared_text("abc", "abd") == ("ab", "c", "d")
    assert split_shared_text("ab", "abc") == ("a", "b", "bc")
    assert split_shared_text("", "x") == ("", "", "x")


@pytest.mark.parametrize("container", ["csv", "parquet", "json", "jsonl.gz"])
def test_containers_give_the_same_pairs(tmp_path, container):
    ref = prefkit.load(_jsonl(tmp_path / "ref.jsonl", STANDARD))
    path = tmp_path / f"pairs.{container}"
    if container == "csv":
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["prompt", "chosen", "rejected"], extrasaction="ignore")
            w.writeheader()
            w.writerows(STANDARD)
    elif container == "parquet":
        pq.write_table(
            pa.Table.from_pylist(
                [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in STANDARD]
            ),
            path,
        )
    elif container == "json":
        path.write_text(json.dumps(STANDARD))
    else:
        path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in STANDARD)))
    ds = prefkit.load(path, format="trl")
    assert _triples(ds) == _triples(ref)


def test_csv_scores_are_parsed_as_numbers(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("prompt,chosen,rejected,score_chosen,score_rejected\nq,a,b,7.5,\n")
    ds = prefkit.load(path, format="trl")
    assert sorted(ds.responses.column("score").to_pylist(), key=str) == [7.5, None]


def test_empty_text_is_read(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "e.jsonl", [{"prompt": "", "chosen": "", "rejected": "x"}]))
    assert ds.counts()["judgments"] == 1


# --- bad input -----------------------------------------------------------------------------------
BAD = [
    ({"prompt": "q", "rejected": "b"}, "chosen", "is missing"),
    ({"prompt": "q", "chosen": None, "rejected": "b"}, "chosen", "is missing"),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "chosen", "got int"),
    ({"prompt": "q", "chosen": "a"}, "rejected", "is missing"),
    ({"prompt": "q", "chosen": "a", "rejected": ["b"]}, "rejected", "message 0"),
    ({"prompt": "q", "chosen": [{"role": "assistant"}], "rejected": "b"}, "chosen", "no 'content'"),
    ({"prompt": None, "chosen": "a", "rejected": "b"}, "prompt", "null"),
    ({"chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]}, "chosen", "both"),
    (
        {"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": "high"},
        "score_chosen",
        "number",
    ),
]


@pytest.mark.parametrize(("bad", "field", "words"), BAD)
def test_bad_record_names_file_line_and_field(tmp_path, bad, field, words):
    path = _jsonl(tmp_path / "bad.jsonl", [STANDARD[0], bad])
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="trl")
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 2", field)
    assert words in err.message
    assert str(path) in str(err) and "line 2" in str(err) and field in str(err)


def test_quarantine_counts_reconcile(tmp_path):
    rows = [STANDARD[0], BAD[0][0], STANDARD[1], BAD[2][0], STANDARD[2]]
    q = tmp_path / "q.jsonl"
    ds = prefkit.load(
        _jsonl(tmp_path / "mixed.jsonl", rows), format="trl", on_error="quarantine", quarantine=q
    )
    summary = ds.manifest.quarantine
    assert (summary["read"], summary["kept"], summary["quarantined"]) == (5, 3, 2)
    assert ds.counts()["judgments"] == 3
    entries = [json.loads(line) for line in q.read_text().splitlines()]
    assert [(e["where"], e["field"]) for e in entries] == [
        ("line 2", "chosen"),
        ("line 4", "chosen"),
    ]


def test_pairs_to_chunk_and_from_pairs():
    chunk = pairs_to_chunk(STANDARD)
    assert chunk["judgments"].num_rows == 3
    rows = [{"q": "hi", "good": "hello", "bad": "bye"}]
    ds = prefkit.from_pairs(rows, prompt="q", chosen="good", rejected="bad")
    assert ds.to_pairs().to_pylist()[0]["chosen"] == "hello"
    with pytest.raises(InputError) as info:
        pairs_to_chunk([STANDARD[0], {"prompt": "q", "chosen": 1, "rejected": "b"}])
    assert info.value.where == "row 2" and info.value.field == "chosen"


# --- sniffing ----------------------------------------------------------------------------------
def test_sniff(tmp_path):
    assert detect_format(_jsonl(tmp_path / "a.jsonl", STANDARD)).name == "trl"
    assert detect_format(_jsonl(tmp_path / "b.jsonl", CONVERSATIONAL)).name == "trl"
    sniff = REGISTRY["trl"].sniff
    assert sniff(Sample(tmp_path, [{"question": "q", "answer": "a"}], "jsonl")) == 0
    assert sniff(Sample(tmp_path, [], None)) == 0
    hh = [{"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"}]
    assert sniff(Sample(tmp_path, hh, "jsonl")) < REGISTRY["hh-rlhf"].sniff(
        Sample(tmp_path, hh, "jsonl")
    )


# --- writing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet", "jsonl.gz"])
@pytest.mark.parametrize("rows", [STANDARD, CONVERSATIONAL], ids=["standard", "conversational"])
def test_write_read_round_trip(tmp_path, rows, suffix):
    ds = prefkit.load(_jsonl(tmp_path / "in.jsonl", rows))
    out = prefkit.save(ds, tmp_path / f"out.{suffix}", "trl")
    back = prefkit.load(out)
    assert back.manifest.source["format"] == "trl"
    assert _triples(back) == _triples(ds)


def test_writer_columns_and_string_values(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "in.jsonl", STANDARD))
    out = prefkit.save(ds, tmp_path / "out.jsonl", "trl")
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(list(r) == ["prompt", "chosen", "rejected"] for r in written)
    expected = sorted((r["prompt"], r["chosen"], r["rejected"]) for r in STANDARD)
    assert sorted((r["prompt"], r["chosen"], r["rejected"]) for r in written) == expected


def test_conversational_csv_is_refused_unless_flattened(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "in.jsonl", CONVERSATIONAL))
    with pytest.raises(PrefkitError, match="conversational=False"):
        prefkit.save(ds, tmp_path / "out.csv", "trl")
    assert not (tmp_path / "out.csv").exists()
    out = prefkit.save(ds, tmp_path / "out.csv", "trl", conversational=False)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {r["chosen"] for r in rows} == {"Hello!", "11"}


def test_container_option_overrides_suffix(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "in.jsonl", STANDARD))
    out = prefkit.save(ds, tmp_path / "out.data", "trl", container="parquet")
    assert pq.read_table(out).num_rows == 3
    with pytest.raises(PrefkitError, match="container"):
        prefkit.save(ds, tmp_path / "out2.data", "trl", container="xml")


def test_writer_needs_a_tie_policy(tmp_path):
    path = tmp_path / "ties.jsonl"
    _jsonl(
        path,
        [{"q": "q1", "x": "a", "y": "b", "w": "tie"}, {"q": "q2", "x": "c", "y": "d", "w": "a"}],
    )
    ds = prefkit.load(path, format="generic", prompt="q", a="x", b="y", label="w")
    with pytest.raises(PrefkitError, match="ties"):
        prefkit.save(ds, tmp_path / "out.jsonl", "trl")
    out = prefkit.save(ds, tmp_path / "out.jsonl", "trl", ties="drop")
    assert [json.loads(line)["chosen"] for line in out.read_text().splitlines()] == ["c"]


def test_fast_path_and_row_path_give_identical_datasets(tmp_path: Path) -> None:
    # Standard TRL JSONL goes through the vectorised reader; naming the columns
    # explicitly forces the row-by-row reader. Both must produce the same content.
    rows = [
        {"prompt": f'p{i % 7} ü "q"\n', "chosen": f"c{i}\t✓", "rejected": f"r{i}\\"}
        for i in range(50)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    fast = prefkit.load(path, "trl")
    rows_path = prefkit.load(path, "trl", prompt="prompt", chosen="chosen", rejected="rejected")
    assert (
        fast.counts()
        == rows_path.counts()
        == {
            "prompts": 7,
            "responses": 100,
            "judgments": 50,
            "rankings": 0,
            "annotators": 0,
        }
    )
    assert fast.fingerprint() == rows_path.fingerprint()
