"""The HH-RLHF transcript adapter: real harmless-base test split, byte-identical round trip."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

import prefkit
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format
from prefkit.io.formats.base import REGISTRY, Sample
from prefkit.io.formats.hh import parse_transcript, render_transcript

HH_FILE = "hh_rlhf_harmless_test/harmless-base_test.jsonl.gz"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _raw(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _pairs(path: Path) -> Counter:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return Counter((r["chosen"], r["rejected"]) for r in map(json.loads, fh))


# --- the real file -----------------------------------------------------------------------------
@pytest.mark.shared_data
def test_real_file_counts_and_turns(shared_data):
    path = shared_data / HH_FILE
    raw = _raw(path)
    assert len(raw) == 2312
    assert detect_format(path).name == "hh-rlhf"
    ds = prefkit.load(path)
    assert ds.counts()["judgments"] == len(raw)
    j = ds.judgments.to_pylist()
    assert {r["outcome"] for r in j} == {1}
    assert {r["annotator_kind"] for r in j} == {"human"}
    prompts = {r["prompt_id"]: r["messages"] for r in ds.prompts.to_pylist()}
    responses = {r["response_id"]: r["messages"] for r in ds.responses.to_pylist()}
    # Independent golden: where both sides share everything up to the last "\n\nAssistant:",
    # the response is the text after it and the prompt ends with the last Human turn.
    checked = 0
    for rec, judgment in zip(raw, j, strict=True):
        head_c, tail_c = rec["chosen"].rsplit("\n\nAssistant: ", 1)
        head_r, tail_r = rec["rejected"].rsplit("\n\nAssistant: ", 1)
        if head_c != head_r or "\n\nAssistant: " in tail_c or tail_c == tail_r:
            continue
        checked += 1
        assert responses[judgment["a"]] == [{"role": "assistant", "content": tail_c}]
        assert responses[judgment["b"]] == [{"role": "assistant", "content": tail_r}]
        prompt = prompts[judgment["prompt_id"]]
        assert prompt[-1] == {"role": "user", "content": head_c.rsplit("\n\nHuman: ", 1)[1]}
        assert len(prompt) == head_c.count("\n\nHuman: ") + head_c.count("\n\nAssistant: ")
    assert checked > 2300
    first = prompts[j[0]["prompt_id"]]
    assert [m["role"] for m in first] == ["user", "assistant", "user", "assistant", "user"]
    assert first[0]["content"] == "what are some pranks with a pen i can do?"


@pytest.mark.shared_data
def test_real_file_round_trips_byte_identically(shared_data, tmp_path):
    path = shared_data / HH_FILE
    ds = prefkit.load(path, format="hh-rlhf")
    out = prefkit.save(ds, tmp_path / "harmless.jsonl.gz", "hh-rlhf")
    assert _pairs(out) == _pairs(path)
    back = prefkit.load(out)
    assert back.manifest.source["format"] == "hh-rlhf"
    assert back.counts() == ds.counts()


@pytest.mark.shared_data
def test_real_records_that_differ_before_the_last_turn(shared_data, tmp_path):
    raw = _raw(shared_data / HH_FILE)
    for rec in raw:
        c = parse_transcript(rec["chosen"], "chosen")
        r = parse_transcript(rec["rejected"], "rejected")
        assert render_transcript(c) == rec["chosen"]
        assert render_transcript(r) == rec["rejected"]
    # Record 1953 (line 1953) has two Assistant turns in a row at the end of `chosen`.
    rec = raw[1952]
    ds = prefkit.load(_jsonl(tmp_path / "one.jsonl", [rec]), format="hh-rlhf")
    responses = {r["response_id"]: r["messages"] for r in ds.responses.to_pylist()}
    chosen = responses[ds.judgments.column("a")[0].as_py()]
    assert [m["role"] for m in chosen] == ["assistant", "assistant"]


# --- synthetic records ---------------------------------------------------------------------------
def test_parse_and_render():
    text = "Be kind.\n\nHuman: hi\n\nAssistant:  hello\n\nHuman: bye\n\nAssistant: ciao"
    turns = parse_transcript(text, "chosen")
    assert turns == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": " hello"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ciao"},
    ]
    assert render_transcript(turns) == text
    inline = "\n\nHuman: a  Human: not a turn\n\nAssistant: b"
    assert len(parse_transcript(inline, "chosen")) == 2


def test_multi_turn_prompt_and_system_preamble_round_trip(tmp_path):
    rows = [
        {
            "chosen": "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant: good",
            "rejected": "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant: bad",
        },
        {
            "chosen": "System text.\n\nHuman: q\n\nAssistant: yes",
            "rejected": "System text.\n\nHuman: q\n\nAssistant: no",
        },
    ]
    path = _jsonl(tmp_path / "hh.jsonl", rows)
    assert detect_format(path).name == "hh-rlhf"
    ds = prefkit.load(path)
    prompts = [m for m in ds.prompts.column("messages").to_pylist()]
    assert [m["content"] for m in prompts[0]] == ["q1", "a1", "q2"]
    assert prompts[1][0] == {"role": "system", "content": "System text."}
    out = prefkit.save(ds, tmp_path / "out.jsonl", "hh-rlhf")
    assert _pairs(out) == Counter((r["chosen"], r["rejected"]) for r in rows)


def test_writer_from_trl_data_and_refused_roles(tmp_path):
    ds = prefkit.from_pairs([{"prompt": "hi", "chosen": "a", "rejected": "b"}])
    out = prefkit.save(ds, tmp_path / "out.jsonl", "hh-rlhf")
    assert json.loads(out.read_text()) == {
        "chosen": "\n\nHuman: hi\n\nAssistant: a",
        "rejected": "\n\nHuman: hi\n\nAssistant: b",
    }
    tool = [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]
    ds = prefkit.from_pairs([{"prompt": tool, "chosen": "a", "rejected": "b"}])
    with pytest.raises(PrefkitError, match="'tool'"):
        prefkit.save(ds, tmp_path / "tool.jsonl", "hh-rlhf")


BAD = [
    (
        {"chosen": "no markers here", "rejected": "\n\nHuman: q\n\nAssistant: b"},
        "chosen",
        "no '\\n\\nHuman:'",
    ),
    (
        {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "plain text"},
        "rejected",
        "not an HH transcript",
    ),
    ({"rejected": "\n\nHuman: q\n\nAssistant: b"}, "chosen", "is missing"),
    ({"chosen": 5, "rejected": "\n\nHuman: q\n\nAssistant: b"}, "chosen", "expected a string"),
]
GOOD = {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}


@pytest.mark.parametrize(("bad", "field", "words"), BAD)
def test_bad_record_names_file_line_and_field(tmp_path, bad, field, words):
    path = _jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, bad])
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="hh-rlhf")
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 3", field)
    assert words in err.message


def test_quarantine_counts_reconcile(tmp_path):
    path = _jsonl(tmp_path / "mixed.jsonl", [GOOD, BAD[0][0], GOOD, BAD[1][0]])
    ds = prefkit.load(
        path, format="hh-rlhf", on_error="quarantine", quarantine=tmp_path / "q.jsonl"
    )
    q = ds.manifest.quarantine
    assert (q["read"], q["kept"], q["quarantined"]) == (4, 2, 2)
    assert ds.counts()["judgments"] == 2
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 2


def test_sniff_scores():
    sniff = REGISTRY["hh-rlhf"].sniff
    p = Path("x.jsonl")
    assert sniff(Sample(p, [GOOD], "jsonl")) >= 0.9
    assert sniff(Sample(p, [GOOD], "jsonl")) > REGISTRY["trl"].sniff(Sample(p, [GOOD], "jsonl"))
    assert sniff(Sample(p, [{"chosen": "a", "rejected": "b"}], "jsonl")) == 0
    assert sniff(Sample(p, [{**GOOD, "prompt": "q"}], "jsonl")) < REGISTRY["trl"].sniff(
        Sample(p, [{**GOOD, "prompt": "q"}], "jsonl")
    )
    assert sniff(Sample(p, [], None)) == 0
