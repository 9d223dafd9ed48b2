"""Arena battle rows and the PRD / QLoRA Vicuna-80 human-battle folder."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import orjson
import pytest

import prefkit
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, save
from prefkit.io.formats.base import REGISTRY, Sample

VICUNA = "vicuna80_human_battles"
RATING = re.compile(r"^answer_(.+?)-vs-answer_(.+?)-human-reviewer_threeclass\.jsonl$")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _conv(question: str, answer: str, *more: str) -> list[dict]:
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    for i, text in enumerate(more):
        turns.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return turns


BATTLES = [
    {
        "question_id": "q1",
        "model_a": "gpt-4",
        "model_b": "vicuna-13b",
        "winner": "model_a",
        "judge": "arena_user_1",
        "conversation_a": _conv("What is 2+2?", "4"),
        "conversation_b": _conv("What is 2+2?", "5"),
        "turn": 1,
        "language": "English",
        "anony": True,
        "tstamp": 1682351591.1322,
    },
    {
        "question_id": "q1",
        "model_a": "vicuna-13b",
        "model_b": "gpt-4",
        "winner": "tie",
        "judge": "arena_user_2",
        "conversation_a": _conv("What is 2+2?", "5"),
        "conversation_b": _conv("What is 2+2?", "4"),
    },
    {
        "question_id": "q2",
        "model_a": "claude-v1",
        "model_b": "gpt-4",
        "winner": "tie (bothbad)",
        "judge": "arena_user_1",
        "conversation_a": _conv("Hi", "Hello!", "Name a colour.", "Red."),
        "conversation_b": _conv("Hi", "Hey.", "Name a colour.", "Blue."),
        "turn": 2,
    },
    {
        "question_id": "q3",
        "model_a": "claude-v1",
        "model_b": "vicuna-13b",
        "winner": "model_b",
        "conversation_a": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris, the capital."},
        ],
        "conversation_b": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
        ],
    },
]


@pytest.fixture
def battles_file(tmp_path: Path) -> Path:
    return _jsonl(tmp_path / "battles.jsonl", BATTLES)


def _judgments(ds: prefkit.Dataset) -> list[tuple]:
    sources = dict(
        zip(
            ds.responses["response_id"].to_pylist(), ds.responses["source"].to_pylist(), strict=True
        )
    )
    return [
        (sources[j["a"]], sources[j["b"]], j["outcome"], j["tie_kind"], j["annotator_id"])
        for j in ds.judgments.to_pylist()
    ]


# --- arena rows --------------------------------------------------------------------------------
def test_arena_mapping(battles_file: Path):
    assert detect_format(battles_file).name == "arena"
    ds = prefkit.load(battles_file)
    assert ds.counts() == {
        "prompts": 3,
        "responses": 6,
        "judgments": 4,
        "rankings": 0,
        "annotators": 0,
    }
    assert _judgments(ds) == [
        ("gpt-4", "vicuna-13b", 1, None, "arena_user_1"),
        ("vicuna-13b", "gpt-4", 0, "good", "arena_user_2"),
        ("claude-v1", "gpt-4", 0, "bad", "arena_user_1"),
        ("claude-v1", "vicuna-13b", -1, None, None),
    ]
    j = ds.judgments.to_pylist()
    assert {r["annotator_kind"] for r in j} == {"human"}
    assert j[0]["turn"] == 1 and j[0]["language"] == "English" and j[0]["anony"] is True
    assert j[0]["tstamp"] == pytest.approx(1682351591.1322)
    assert j[2]["turn"] == 2 and j[1]["turn"] is None
    prompts = {p["prompt_id"]: p for p in ds.prompts.to_pylist()}
    responses = {r["response_id"]: r for r in ds.responses.to_pylist()}
    # The prompt is the shared leading user/system turns; the response is the rest.
    assert prompts[j[0]["prompt_id"]]["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert prompts[j[0]["prompt_id"]]["question_id"] == "q1"
    assert responses[j[0]["a"]]["messages"] == [{"role": "assistant", "content": "4"}]
    # The same (prompt, model, answer) in two battles is one response.
    assert j[0]["a"] == j[1]["b"] and j[0]["b"] == j[1]["a"]
    assert [m["content"] for m in responses[j[2]["a"]]["messages"]] == [
        "Hello!",
        "Name a colour.",
        "Red.",
    ]
    assert [m["role"] for m in prompts[j[3]["prompt_id"]]["messages"]] == ["system", "user"]
    assert responses[j[3]["b"]]["messages"] == [{"role": "assistant", "content": "Paris."}]


def test_arena_annotator_kind_option(battles_file: Path):
    ds = prefkit.load(battles_file, format="arena", annotator_kind="ai")
    assert set(ds.judgments["annotator_kind"].to_pylist()) == {"ai"}
    with pytest.raises(PrefkitError, match="annotator_kind"):
        prefkit.load(battles_file, format="arena", annotator_kind="robot")


def test_arena_without_conversations(tmp_path: Path):
    rows = [
        {"question_id": 81, "model_a": "a", "model_b": "b", "winner": "model_a"},
        {"question_id": 81, "model_a": "b", "model_b": "a", "winner": "model_a"},
        {"question_id": 82, "model_a": "a", "model_b": "b", "winner": "tie"},
    ]
    ds = prefkit.load(_jsonl(tmp_path / "b.jsonl", rows), format="arena")
    assert ds.counts()["prompts"] == 2
    assert ds.counts()["responses"] == 4  # one per (question, model)
    prompts = ds.prompts.to_pylist()
    assert {p["question_id"] for p in prompts} == {"81", "82"}
    assert all(p["messages"] == [] for p in prompts)
    assert all(r["messages"] == [] for r in ds.responses.to_pylist())
    j = ds.judgments.to_pylist()
    assert j[0]["a"] == j[1]["b"] and j[0]["b"] == j[1]["a"]
    assert j[0]["prompt_id"] != j[2]["prompt_id"] and j[0]["a"] != j[2]["a"]


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"winner": "model_c"}, "winner", "'model_a', 'model_b', 'tie', 'tie (bothbad)'"),
        ({"model_a": None}, "model_a", "is missing"),
        ({"conversation_b": None}, "conversation_b", "is missing"),
        (
            {"conversation_b": _conv("Other question", "x")},
            "conversation_b",
            "same user/system turns",
        ),
        ({"conversation_a": [{"role": "user"}]}, "conversation_a[0].content", "expected a string"),
        ({"turn": "first"}, "turn", "expected a number"),
        (
            {"conversation_a": None, "conversation_b": None, "question_id": None},
            "question_id",
            "identifies the prompt",
        ),
        (
            {"model_b": "gpt-4", "conversation_b": _conv("What is 2+2?", "4")},
            "model_b",
            "same model",
        ),
    ],
)
def test_arena_bad_rows(tmp_path: Path, row: dict, field: str, message: str):
    bad = {**BATTLES[0], **row}
    path = _jsonl(tmp_path / "bad.jsonl", [BATTLES[1], bad])
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="arena")
    err = info.value
    assert err.file == str(path) and err.where == "line 2" and err.field == field
    assert message in str(err)


def test_arena_quarantine_reconciles(tmp_path: Path):
    rows = [*BATTLES, {**BATTLES[0], "winner": "draw"}, {"model_a": "x"}]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"{not json\n")
    qfile = tmp_path / "q.jsonl"
    ds = prefkit.load(path, format="arena", on_error="quarantine", quarantine=qfile)
    q = ds.manifest.quarantine
    assert q["read"] == 7 and q["kept"] == 4 and q["quarantined"] == 3
    assert q["read"] == q["kept"] + q["quarantined"] == ds.counts()["judgments"] + 3
    bad = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [b["where"] for b in bad] == ["line 5", "line 6", "line 7"]
    assert bad[0]["field"] == "winner"


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_arena_round_trip(battles_file: Path, tmp_path: Path, suffix: str):
    ds = prefkit.load(battles_file)
    out = save(ds, tmp_path / f"out{suffix}", "arena", ties="keep")
    back = prefkit.load(out, format="arena")
    assert _judgments(back) == _judgments(ds)
    for table in ("prompts", "responses"):
        key = f"{table[:-1]}_id"
        assert sorted(back.table(table)[key].to_pylist()) == sorted(
            ds.table(table)[key].to_pylist()
        )
    j, jb = ds.judgments.to_pylist(), back.judgments.to_pylist()
    assert [(r["turn"], r["language"], r["anony"]) for r in jb] == [
        (r["turn"], r["language"], r["anony"]) for r in j
    ]


def test_arena_writer_rows_and_policies(battles_file: Path, tmp_path: Path):
    ds = prefkit.load(battles_file)
    with pytest.raises(PrefkitError, match="ties"):
        save(ds, tmp_path / "x.jsonl", "arena")
    out = save(ds, tmp_path / "drop.data", "arena", ties="drop", container="jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["model_a"], r["model_b"], r["winner"]) for r in rows] == [
        ("gpt-4", "vicuna-13b", "model_a"),
        ("claude-v1", "vicuna-13b", "model_b"),
    ]
    assert rows[0]["judge"] == "arena_user_1" and rows[0]["question_id"].startswith("p_")
    assert rows[0]["conversation_a"] == BATTLES[0]["conversation_a"]
    assert rows[1]["conversation_b"] == BATTLES[3]["conversation_b"]
    kept = save(ds, tmp_path / "keep.jsonl", "arena", battle_ties="keep")  # the CLI's key
    assert len(kept.read_text().splitlines()) == len(BATTLES)
    with pytest.raises(PrefkitError, match="tie"):
        save(ds, tmp_path / "err.jsonl", "arena", ties="error")
    with pytest.raises(PrefkitError, match="container"):
        save(ds, tmp_path / "y.jsonl", "arena", ties="keep", container="xml")


def test_arena_writer_without_texts_omits_conversations(tmp_path: Path):
    rows = [{"question_id": 1, "model_a": "a", "model_b": "b", "winner": "model_b"}]
    ds = prefkit.load(_jsonl(tmp_path / "b.jsonl", rows), format="arena")
    out = save(ds, tmp_path / "o.jsonl", "arena")
    written = json.loads(out.read_text())
    assert "conversation_a" not in written and written["winner"] == "model_b"
    back = prefkit.load(out, format="arena")
    assert _judgments(back) == _judgments(ds)


def test_arena_sniffer():
    sniff = REGISTRY["arena"].sniff
    assert (
        sniff(Sample(Path("x.jsonl"), [{"model_a": 1, "model_b": 2, "winner": "tie"}], "jsonl"))
        >= 0.9
    )
    assert (
        sniff(Sample(Path("x.jsonl"), [{"prompt": "p", "chosen": "c", "rejected": "r"}], "jsonl"))
        == 0
    )
    assert sniff(Sample(Path("x.jsonl"), [], None)) == 0
    assert sniff(Sample(Path("x.jsonl"), ["not a dict", 3], "json")) == 0


# --- PRD / QLoRA Vicuna-80 ---------------------------------------------------------------------
def _raw_ratings(root: Path) -> dict[str, list[dict]]:
    return {
        p.name: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for p in sorted((root / "ratings-human").iterdir())
    }


@pytest.fixture
def small_prd(shared_data: Path, tmp_path: Path) -> Path:
    """A copy of the layout with two rating files (one with an answerless model)."""
    src = shared_data / VICUNA
    root = tmp_path / "prd"
    shutil.copytree(src / "prompts", root / "prompts")
    shutil.copytree(src / "generations", root / "generations")
    (root / "ratings-human").mkdir()
    for name in [
        "answer_gpt4-vs-answer_vicuna-13b-human-reviewer_threeclass.jsonl",
        "answer_gpt35-vs-answer_guanaco-33b-human-reviewer_threeclass.jsonl",
    ]:
        shutil.copy(src / "ratings-human" / name, root / "ratings-human" / name)
    return root


@pytest.mark.shared_data
def test_prd_real_counts(shared_data: Path):
    root = shared_data / VICUNA
    raw = _raw_ratings(root)
    assert detect_format(root).name == "prd-battles"
    ds = prefkit.load(root)
    n = sum(len(v) for v in raw.values())
    scores = Counter(r["score"] for rows in raw.values() for r in rows)
    models = {m for name in raw for m in RATING.match(name).groups()}
    questions = {r["question_id"] for rows in raw.values() for r in rows}
    assert (n, len(models), len(questions)) == (7040, 9, 80)
    assert scores == {1: 3211, 2: 3025, 3: 804}
    assert ds.counts()["judgments"] == n
    assert ds.counts()["prompts"] == len(questions)
    assert ds.counts()["responses"] == len(questions) * len(models)
    j = ds.judgments.to_pylist()
    assert Counter(r["outcome"] for r in j) == {1: scores[1], -1: scores[2], 0: scores[3]}
    assert {r["tie_kind"] for r in j} == {None}
    assert {r["annotator_kind"] for r in j} == {"human"} and {r["annotator_id"] for r in j} == {
        None
    }
    responses = {r["response_id"]: r for r in ds.responses.to_pylist()}
    assert {r["source"] for r in responses.values()} == models
    # Each file's judgments: a = the first model in the file name, outcomes as its scores.
    by_file: dict[str, list[dict]] = {}
    for r in j:
        by_file.setdefault(r["rating_file"], []).append(r)
    for name, rows in raw.items():
        m1, m2 = RATING.match(name).groups()
        got = by_file[name]
        assert [(responses[g["a"]]["source"], responses[g["b"]]["source"]) for g in got] == [
            (m1, m2)
        ] * len(rows)
        assert [g["outcome"] for g in got] == [{1: 1, 2: -1, 3: 0}[r["score"]] for r in rows]
        seen: Counter = Counter()
        expected_index = []
        for r in rows:
            expected_index.append(seen[r["question_id"]])
            seen[r["question_id"]] += 1
        assert [g["judge_index"] for g in got] == expected_index
    # SOURCE.md: gpt4-vs-vicuna-13b gives 1 -> 94, 2 -> 26, 3 -> 9.
    name = "answer_gpt4-vs-answer_vicuna-13b-human-reviewer_threeclass.jsonl"
    assert Counter(g["outcome"] for g in by_file[name]) == {1: 94, -1: 26, 0: 9}


@pytest.mark.shared_data
def test_prd_texts_prompts_and_answers(shared_data: Path):
    root = shared_data / VICUNA
    ds = prefkit.load(root, format="prd-battles")
    questions = {
        q["question_id"]: q
        for q in map(json.loads, (root / "prompts/vicuna_questions.jsonl").read_text().splitlines())
    }
    prompts = ds.prompts.to_pylist()
    for p in prompts:
        q = questions[p["question_id"]]
        assert p["messages"] == [{"role": "user", "content": q["text"]}]
        assert p["category"] == q["category"]
    answers = {}
    for path in (root / "generations").glob("answer_*.jsonl"):
        model = path.name[len("answer_") : -len(".jsonl")]
        for rec in map(json.loads, path.read_text().splitlines()):
            answers[model, rec["question_id"]] = rec["text"]
    qid_of = {p["prompt_id"]: p["question_id"] for p in prompts}
    with_text = 0
    for r in ds.responses.to_pylist():
        expected = answers.get((r["source"], qid_of[r["prompt_id"]]))
        if expected is None:
            assert r["source"].startswith("guanaco") and r["messages"] == []
        else:
            with_text += 1
            assert r["messages"] == [{"role": "assistant", "content": expected}]
    assert with_text == 5 * 80


@pytest.mark.shared_data
def test_prd_to_arena_round_trip(small_prd: Path, tmp_path: Path):
    ds = prefkit.load(small_prd)
    assert ds.counts()["judgments"] == sum(len(v) for v in _raw_ratings(small_prd).values())
    out = save(ds, tmp_path / "battles.parquet", "arena", ties="keep")
    back = prefkit.load(out)
    assert back.manifest.source["format"] == "arena"
    # The arena format has no "tie of unknown kind": PRD ties come back as plain "tie".
    # The writer orders rows by judgment id, so compare as multisets.
    expected = [(a, b, o, "good" if o == 0 else None, ann) for a, b, o, _, ann in _judgments(ds)]
    assert Counter(_judgments(back)) == Counter(expected)
    key = ("prompt_id", "a", "b", "outcome")
    assert Counter(tuple(r[k] for k in key) for r in back.judgments.to_pylist()) == Counter(
        tuple(r[k] for k in key) for r in ds.judgments.to_pylist()
    )
    assert sorted(back.responses["response_id"].to_pylist()) == sorted(
        ds.responses["response_id"].to_pylist()
    )


@pytest.mark.shared_data
def test_prd_layout_variants(small_prd: Path):
    whole = prefkit.load(small_prd, format="prd-battles")
    ratings = prefkit.load(small_prd / "ratings-human", format="prd-battles")
    assert ratings.counts() == whole.counts()
    one = (
        small_prd
        / "ratings-human"
        / "answer_gpt4-vs-answer_vicuna-13b-human-reviewer_threeclass.jsonl"
    )
    single = prefkit.load(one, format="prd-battles")
    assert single.counts()["judgments"] == len(one.read_text().splitlines())
    assert single.prompts["category"].null_count == 0


@pytest.mark.shared_data
def test_prd_bad_file_name(small_prd: Path):
    bad = small_prd / "ratings-human" / "gpt4_vs_bard.jsonl"
    bad.write_text('{"question_id": 1, "text": "x", "score": 1}\n')
    with pytest.raises(InputError) as info:
        prefkit.load(small_prd)
    assert info.value.file == str(bad) and "answer_<M1>-vs-answer_<M2>" in str(info.value)


@pytest.mark.shared_data
def test_prd_bad_records_and_quarantine(small_prd: Path, tmp_path: Path):
    name = "answer_claude-vs-answer_gpt4-human-reviewer_threeclass.jsonl"
    path = small_prd / "ratings-human" / name
    good = {"question_id": 1, "text": "How can I improve my time management skills?", "score": 2}
    _jsonl(
        path, [good, {**good, "score": 4}, {**good, "text": "Other"}, {**good, "question_id": "1"}]
    )
    with pytest.raises(InputError) as info:
        prefkit.load(small_prd)
    assert (info.value.file, info.value.where, info.value.field) == (str(path), "line 2", "score")
    ds = prefkit.load(small_prd, on_error="quarantine", quarantine=tmp_path / "q.jsonl")
    q = ds.manifest.quarantine
    assert q["quarantined"] == 3 and q["read"] == q["kept"] + q["quarantined"]
    assert q["kept"] == ds.counts()["judgments"]
    reasons = " ".join(q["reasons"])
    assert "score" in reasons and "text" in reasons and "question_id" in reasons


@pytest.mark.shared_data
def test_prd_cannot_write_and_sniff(small_prd: Path, tmp_path: Path):
    ds = prefkit.load(small_prd)
    with pytest.raises(PrefkitError, match="arena"):
        save(ds, tmp_path / "out", "prd-battles")
    sniff = REGISTRY["prd-battles"].sniff
    assert sniff(Sample(small_prd, [], None)) >= 0.9
    assert sniff(Sample(small_prd / "ratings-human", [], None)) >= 0.9
    assert sniff(Sample(small_prd / "prompts", [], None)) == 0
    assert sniff(Sample(tmp_path / "missing", [], None)) == 0
