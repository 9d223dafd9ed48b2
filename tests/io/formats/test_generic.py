"""The generic column-mapping adapter: LLMBar files, every option, errors, writer round trip."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

import prefkit
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format
from prefkit.io.formats.base import REGISTRY, Sample

LLMBAR = {"input": "input", "a": "output_1", "b": "output_2", "label": "label"}
# From llmbar/SOURCE.md: file -> (pairs, label 1, label 2)
LLMBAR_COUNTS = {
    "LLMBar/Natural/dataset.json": (100, 42, 58),
    "LLMBar/Adversarial/Neighbor/dataset.json": (134, 75, 59),
    "LLMBar/Adversarial/GPTInst/dataset.json": (92, 45, 47),
    "LLMBar/Adversarial/GPTOut/dataset.json": (47, 22, 25),
    "LLMBar/Adversarial/Manual/dataset.json": (46, 22, 24),
    "Processed/MT-Bench/dataset.json": (200, 101, 99),
}


def _llmbar(path: Path) -> prefkit.Dataset:
    return prefkit.load(
        path,
        format="generic",
        prompt="input",
        a="output_1",
        b="output_2",
        label="label",
        a_value="1",
        b_value="2",
    )


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


# --- real data ---------------------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(LLMBAR_COUNTS))
def test_llmbar_counts_and_label_balance(shared_data, name):
    path = shared_data / "llmbar" / name
    raw = json.loads(path.read_text())
    n, ones, twos = LLMBAR_COUNTS[name]
    assert len(raw) == n
    ds = _llmbar(path)
    outcomes = ds.judgments.column("outcome").to_pylist()
    assert len(outcomes) == n
    assert (outcomes.count(1), outcomes.count(-1)) == (ones, twos)
    prompts = {r["prompt_id"]: r["messages"] for r in ds.prompts.to_pylist()}
    responses = {r["response_id"]: r["messages"] for r in ds.responses.to_pylist()}
    for rec, j in zip(raw, ds.judgments.to_pylist(), strict=True):
        assert prompts[j["prompt_id"]] == [{"role": "user", "content": rec["input"]}]
        assert responses[j["a"]] == [{"role": "assistant", "content": rec["output_1"]}]
        assert responses[j["b"]] == [{"role": "assistant", "content": rec["output_2"]}]
        assert j["outcome"] == (1 if rec["label"] == 1 else -1)


@pytest.mark.shared_data
def test_llmbar_folder_and_round_trip(shared_data, tmp_path):
    ds = _llmbar(shared_data / "llmbar")
    assert ds.counts()["judgments"] == sum(n for n, _, _ in LLMBAR_COUNTS.values())
    out = prefkit.save(ds, tmp_path / "llmbar.csv", "generic")
    back = prefkit.load(out, format="generic", a="a", b="b", label="label")
    each = {"annotators": "each"}
    assert sorted(back.to_pairs(**each).to_pylist(), key=str) == sorted(
        ds.to_pairs(**each).to_pylist(), key=str
    )


# --- options -------------------------------------------------------------------------------------
ROWS = [
    {
        "rid": 1,
        "q": "Hi",
        "sys": "Be kind.",
        "x": "Hello",
        "y": "Go",
        "w": 1,
        "who": "ann1",
        "ma": "m1",
        "mb": "m2",
        "sa": 4,
        "sb": 1,
        "conf": 0.9,
    },
    {
        "rid": 2,
        "q": "Hi",
        "sys": "",
        "x": "Hey",
        "y": "Yo",
        "w": "2",
        "who": "ann2",
        "ma": "m1",
        "mb": "m3",
        "sa": 2,
        "sb": 3,
        "conf": 0.6,
    },
    {
        "rid": 3,
        "q": "Sum?",
        "sys": None,
        "x": "4",
        "y": "5",
        "w": "=",
        "who": "ann1",
        "ma": "m2",
        "mb": "m3",
        "sa": None,
        "sb": None,
        "conf": None,
    },
    {
        "rid": 4,
        "q": "Sum?",
        "sys": None,
        "x": "44",
        "y": "55",
        "w": 2.0,
        "who": None,
        "ma": "m2",
        "mb": "m3",
        "sa": None,
        "sb": None,
        "conf": None,
    },
    {
        "rid": 5,
        "q": "Sum?",
        "sys": None,
        "x": "x",
        "y": "y",
        "w": "both bad",
        "who": "ann2",
        "ma": "m1",
        "mb": "m2",
        "sa": None,
        "sb": None,
        "conf": None,
    },
]
FULL = dict(
    prompt="q",
    a="x",
    b="y",
    label="w",
    a_value=1,
    b_value="2",
    tie_value="=",
    tie_bad_value="both bad",
    annotator="who",
    annotator_kind="human",
    score_a="sa",
    score_b="sb",
    model_a="ma",
    model_b="mb",
    strength="conf",
    system="sys",
    id="rid",
)


def test_every_option(tmp_path):
    ds = prefkit.load(_jsonl(tmp_path / "t.jsonl", ROWS), format="generic", **FULL)
    j = ds.judgments.to_pylist()
    assert [r["outcome"] for r in j] == [1, -1, 0, -1, 0]
    assert [r["tie_kind"] for r in j] == [None, None, None, None, "bad"]
    assert [r["annotator_id"] for r in j] == ["ann1", "ann2", "ann1", None, "ann2"]
    assert {r["annotator_kind"] for r in j} == {"human"}
    assert [r["strength"] for r in j] == [0.9, 0.6, None, None, None]
    assert [r["rid"] for r in j] == [1, 2, 3, 4, 5]
    assert sorted(ds.annotators.column("annotator_id").to_pylist()) == ["ann1", "ann2"]
    prompts = {r["prompt_id"]: r["messages"] for r in ds.prompts.to_pylist()}
    assert prompts[j[0]["prompt_id"]] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
    ]
    assert prompts[j[1]["prompt_id"]] == [{"role": "user", "content": "Hi"}]
    responses = {r["response_id"]: r for r in ds.responses.to_pylist()}
    assert (responses[j[0]["a"]]["source"], responses[j[0]["a"]]["score"]) == ("m1", 4.0)
    assert (responses[j[1]["b"]]["source"], responses[j[1]["b"]]["score"]) == ("m3", 3.0)


def test_chosen_rejected_mapping(tmp_path):
    path = _jsonl(tmp_path / "cr.jsonl", [{"question": "q", "good": "a", "bad": "b"}])
    ds = prefkit.load(path, format="generic", prompt="question", chosen="good", rejected="bad")
    pair = ds.to_pairs().to_pylist()[0]
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ("q", "a", "b")


def test_default_label_values(tmp_path):
    rows = [{"prompt": "p", "a": "1", "b": "2", "label": v} for v in ("a", "b", "tie", "tie_bad")]
    ds = prefkit.load(
        _jsonl(tmp_path / "d.jsonl", rows), format="generic", a="a", b="b", label="label"
    )
    assert ds.judgments.column("outcome").to_pylist() == [1, -1, 0, 0]
    assert ds.judgments.column("tie_kind").to_pylist() == [None, None, None, "bad"]


# --- errors --------------------------------------------------------------------------------------
def test_unknown_label_value_names_field_and_expected_values(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [ROWS[0], {**ROWS[1], "w": "B"}])
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="generic", **FULL)
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 2", "w")
    for value in ("'1'", "'2'", "'='", "'both bad'", "'B'"):
        assert value in err.message


@pytest.mark.parametrize("option", ["prompt", "a", "label", "annotator", "score_b", "id"])
def test_missing_column_names_the_column(tmp_path, option):
    path = _jsonl(tmp_path / "t.jsonl", ROWS)
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="generic", **{**FULL, option: "nope"})
    assert info.value.field == "nope" and info.value.where == "line 1"
    assert f"{option}=" in info.value.message


def test_bad_values(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", [ROWS[0], {**ROWS[1], "sa": "lots"}])
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="generic", **FULL)
    assert (info.value.where, info.value.field) == ("line 2", "sa")
    path = _jsonl(tmp_path / "n.jsonl", [{**ROWS[0], "x": None}])
    with pytest.raises(InputError, match="is missing") as info:
        prefkit.load(path, format="generic", **FULL)
    assert info.value.field == "x"


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        ({"a": "x", "b": "y"}, "label="),
        ({"chosen": "x"}, "both chosen"),
        ({"chosen": "x", "rejected": "y", "label": "w"}, "label="),
        ({"a": "x", "b": "y", "label": "w", "annotator_kind": "crowd"}, "annotator_kind"),
        ({"a": "x", "b": "y", "label": "w", "a_value": "1", "b_value": 1}, "must differ"),
        ({"a": "x", "b": "y", "label": "w", "colour": "red"}, "no option"),
    ],
)
def test_bad_mapping(tmp_path, mapping, words):
    with pytest.raises(PrefkitError, match=words):
        prefkit.load(_jsonl(tmp_path / "t.jsonl", ROWS), format="generic", **mapping)


def test_quarantine_counts_reconcile(tmp_path):
    rows = [ROWS[0], {**ROWS[1], "w": "?"}, ROWS[2], {**ROWS[3], "w": None}, ROWS[4]]
    ds = prefkit.load(
        _jsonl(tmp_path / "q.jsonl", rows), format="generic", on_error="quarantine", **FULL
    )
    q = ds.manifest.quarantine
    assert (q["read"], q["kept"], q["quarantined"]) == (5, 3, 2)


def test_never_sniffed(tmp_path):
    assert REGISTRY["generic"].sniff(Sample(tmp_path, ROWS, "jsonl")) == 0
    with pytest.raises(PrefkitError, match="generic"):
        detect_format(_jsonl(tmp_path / "t.jsonl", ROWS))


# --- writing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_write_read_round_trip(tmp_path, suffix):
    ds = prefkit.load(_jsonl(tmp_path / "t.jsonl", ROWS), format="generic", **FULL)
    out = prefkit.save(ds, tmp_path / f"out.{suffix}", "generic")
    from prefkit.io.records import iter_records

    written = [r.data for r in iter_records(out)]
    assert list(written[0]) == [
        "prompt",
        "system",
        "a",
        "b",
        "label",
        "annotator",
        "model_a",
        "model_b",
        "score_a",
        "score_b",
        "strength",
    ]
    assert [r["label"] for r in written] == ["a", "b", "tie", "b", "tie_bad"]
    back = prefkit.load(
        out,
        format="generic",
        a="a",
        b="b",
        label="label",
        system="system",
        annotator="annotator",
        annotator_kind="human",
        model_a="model_a",
        model_b="model_b",
        score_a="score_a",
        score_b="score_b",
        strength="strength",
    )
    cols = [
        "prompt_id",
        "a",
        "b",
        "outcome",
        "tie_kind",
        "strength",
        "annotator_id",
        "annotator_kind",
    ]
    assert back.judgments.select(cols).to_pylist() == ds.judgments.select(cols).to_pylist()
    assert back.prompts.select(["prompt_id", "messages"]).sort_by("prompt_id") == ds.prompts.select(
        ["prompt_id", "messages"]
    ).sort_by("prompt_id")
    core = ["response_id", "messages", "source", "score"]
    assert back.responses.select(core).sort_by("response_id") == ds.responses.select(core).sort_by(
        "response_id"
    )


def test_writer_minimal_columns_and_multi_turn_prompt(tmp_path):
    turns = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    ds = prefkit.from_pairs([{"prompt": turns, "chosen": "yes", "rejected": "no"}])
    out = prefkit.save(ds, tmp_path / "out.jsonl", "generic")
    assert json.loads(out.read_text()) == {
        "prompt": "Human: q1\n\nAssistant: a1\n\nHuman: q2",
        "a": "yes",
        "b": "no",
        "label": "a",
    }


def test_writer_needs_judgments(tmp_path):
    ds = prefkit.from_pairs([{"prompt": "q", "chosen": "a", "rejected": "b"}])
    empty = prefkit.Dataset({"prompts": ds.prompts, "responses": ds.responses})
    with pytest.raises(PrefkitError, match="no"):
        prefkit.save(empty, tmp_path / "out.jsonl", "generic")
