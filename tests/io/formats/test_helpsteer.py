"""The ``helpsteer`` adapter: HelpSteer/HelpSteer2 ratings and HelpSteer2 preferences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefkit.dataset import Dataset
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, load, save
from prefkit.io.formats.base import Emitter, Sample
from prefkit.io.formats.helpsteer import ATTRIBUTES, join_turns, parse_turns, sniff
from prefkit.schema import A_WINS, B_WINS, TIE

MULTI_TURN = (
    "I want to plan a trip to Japan.\n<extra_id_1>Assistant\nGreat! When would you like to go?"
    "\n<extra_id_1>User\nIn April, for cherry blossoms."
)
RATINGS: list[dict[str, Any]] = [
    {
        "prompt": "c#",
        "response": "C# is a high-level, object-oriented programming language developed by Microsoft.",
        "helpfulness": 3,
        "correctness": 4,
        "coherence": 4,
        "complexity": 2,
        "verbosity": 1,
    },
    {
        "prompt": "c#",
        "response": "C# (pronounced C sharp) is a programming language.",
        "helpfulness": 2,
        "correctness": 3,
        "coherence": 4,
        "complexity": 1,
        "verbosity": 1,
    },
    {
        "prompt": MULTI_TURN,
        "response": "April is peak season; book early and visit Kyoto.",
        "helpfulness": 4,
        "correctness": 4,
        "coherence": 4,
        "complexity": 2,
        "verbosity": 2,
    },
    {
        "prompt": MULTI_TURN,
        "response": "Japan is in Asia.",
        "helpfulness": 0,
        "correctness": 1,
        "coherence": 3,
        "complexity": 0,
        "verbosity": 0,
    },
    {
        "prompt": "Define Signal",
        "response": "A signal carries information.",
        "helpfulness": 2,
        "correctness": 2,
        "coherence": 4,
        "complexity": 1,
        "verbosity": 0,
    },
    {
        "prompt": "Define Signal",
        "response": "A signal is a function conveying information about a phenomenon.",
        "helpfulness": 3,
        "correctness": 3,
        "coherence": 4,
        "complexity": 2,
        "verbosity": 1,
    },
]


def _pref(prompt: str, r1: str, r2: str, strength: int, individual: list[int]) -> dict[str, Any]:
    return {
        "split": "train",
        "prompt": prompt,
        "response_1": r1,
        "response_2": r2,
        "preference_strength": strength,
        "preference_statement": f"@Response {'1' if strength < 0 else '2'} is better.",
        "preference_elaboration": "It is more complete.",
        "three_most_similar_preferences": [
            {"statement": "s", "elaboration": "e", "strength": s} for s in individual[:3]
        ],
        "all_preferences_unprocessed": [
            {"strength": s, "justification": f"vote {s}"} for s in individual
        ],
    }


PREFERENCES = [
    _pref("c#", RATINGS[0]["response"], RATINGS[1]["response"], -2, [-2, -1, -3]),
    _pref(MULTI_TURN, RATINGS[2]["response"], RATINGS[3]["response"], 3, [3, 3, 2, 3]),
    _pref("Define Signal", RATINGS[4]["response"], RATINGS[5]["response"], 0, [0, 1, -1]),
]


def _write(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def ratings_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "train.jsonl", RATINGS)


@pytest.fixture
def preference_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "preference" / "preference.jsonl", PREFERENCES)


def _attrs(value: Any) -> dict[str, float]:
    return dict(value or [])


def _by_text(ds: Dataset) -> dict[str, dict[str, Any]]:
    return {r["messages"][0]["content"]: r for r in ds.responses.to_pylist()}


def test_detects_both_layouts(ratings_file: Path, preference_file: Path) -> None:
    assert detect_format(ratings_file).name == "helpsteer"
    assert detect_format(preference_file).name == "helpsteer"


def test_ratings_mapping(ratings_file: Path) -> None:
    ds = load(ratings_file)
    assert ds.num_rows("responses") == len(RATINGS)
    assert ds.num_rows("prompts") == len({r["prompt"] for r in RATINGS})
    assert ds.num_rows("judgments") == 0
    got = _by_text(ds)
    for row in RATINGS:
        r = got[row["response"]]
        assert _attrs(r["attributes"]) == {a: float(row[a]) for a in ATTRIBUTES}
        assert r["score"] is None
        assert r["source"] is None
        assert r["messages"] == [{"role": "assistant", "content": row["response"]}]


def test_multi_turn_prompt_is_split_into_turns(ratings_file: Path) -> None:
    ds = load(ratings_file)
    turns = [p["messages"] for p in ds.prompts.to_pylist() if len(p["messages"]) > 1]
    assert turns == [
        [
            {"role": "user", "content": "I want to plan a trip to Japan."},
            {"role": "assistant", "content": "Great! When would you like to go?"},
            {"role": "user", "content": "In April, for cherry blossoms."},
        ]
    ]


@pytest.mark.parametrize(
    "text",
    [
        "plain prompt",
        MULTI_TURN,
        "ends with newline\n\n<extra_id_1>Assistant\n\nstarts with newline\n<extra_id_1>User\nlast",
        "<extra_id_0>System\nBe brief.\n<extra_id_1>User\nhello\n<extra_id_1>Assistant\nhi\n<extra_id_1>User\nbye",
    ],
)
def test_turn_markers_round_trip(text: str) -> None:
    assert join_turns(parse_turns(text)) == text


def test_system_turn_is_parsed() -> None:
    msgs = parse_turns("<extra_id_0>System\nBe brief.\n<extra_id_1>User\nhello")
    assert msgs == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]


def test_missing_rating_is_absent_not_zero(tmp_path: Path) -> None:
    rows = [
        dict(RATINGS[0], verbosity=None),
        {k: v for k, v in RATINGS[1].items() if k != "coherence"},
    ]
    ds = load(_write(tmp_path / "m.jsonl", rows), format="helpsteer")
    got = _by_text(ds)
    assert "verbosity" not in _attrs(got[RATINGS[0]["response"]]["attributes"])
    assert "coherence" not in _attrs(got[RATINGS[1]["response"]]["attributes"])
    assert _attrs(got[RATINGS[1]["response"]]["attributes"])["helpfulness"] == 2.0


def test_attributes_option(ratings_file: Path) -> None:
    ds = load(ratings_file, attributes="helpfulness,correctness")
    for row in RATINGS:
        assert _attrs(_by_text(ds)[row["response"]]["attributes"]) == {
            "helpfulness": float(row["helpfulness"]),
            "correctness": float(row["correctness"]),
        }
    # The other rating columns are kept as meta columns, not dropped.
    assert set(ds.responses.column_names) >= {"coherence", "complexity", "verbosity"}
    with pytest.raises(InputError) as info:
        load(ratings_file, attributes="helpfulness,harmlessness")
    assert info.value.field == "attributes" and "harmlessness" in info.value.message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "outside the scale"),
        ("good", "expected a number"),
        ([3, 4, 4], "per-annotator"),
        (-1, "outside"),
    ],
)
def test_bad_rating_names_file_line_and_field(tmp_path: Path, value: Any, text: str) -> None:
    rows = [dict(r) for r in RATINGS]
    rows[3]["correctness"] = value
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as info:
        load(path, format="helpsteer")
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 4", "correctness")
    assert text in err.message
    assert "bad.jsonl, line 4, field 'correctness'" in str(err)


def test_quarantine_counts_reconcile(tmp_path: Path) -> None:
    rows: list[Any] = [dict(r) for r in RATINGS]
    rows[0]["helpfulness"] = 9
    rows[4].pop("prompt")
    rows.append([1, 2])
    path = _write(tmp_path / "q.jsonl", rows)
    ds = load(path, format="helpsteer", on_error="quarantine", quarantine=tmp_path / "q.out.jsonl")
    q = ds.manifest.quarantine
    assert q is not None
    assert (q["read"], q["kept"], q["quarantined"]) == (7, 4, 3)
    assert ds.num_rows("responses") == 4
    lines = [json.loads(x) for x in (tmp_path / "q.out.jsonl").read_text().splitlines()]
    assert [(x["where"], x["field"]) for x in lines] == [
        ("line 1", "helpfulness"),
        ("line 5", "prompt"),
        ("line 7", None),
    ]


def test_preference_mapping(preference_file: Path) -> None:
    ds = load(preference_file)
    assert ds.num_rows("judgments") == len(PREFERENCES)
    assert ds.num_rows("responses") == 2 * len(PREFERENCES)
    texts = {r["response_id"]: r["messages"][0]["content"] for r in ds.responses.to_pylist()}
    judgments = ds.judgments.to_pylist()
    for row, j in zip(PREFERENCES, judgments, strict=True):
        assert texts[j["a"]] == row["response_1"] and texts[j["b"]] == row["response_2"]
        assert j["strength"] == abs(row["preference_strength"])
        assert j["annotator_kind"] == "human"
        assert (
            j["rationale"] == row["preference_statement"] + "\n\n" + row["preference_elaboration"]
        )
        assert j["split"] == "train"
        assert j["individual_strengths"] == [
            float(p["strength"]) for p in row["all_preferences_unprocessed"]
        ]
    # -3 means "response 1 is much better": negative strength -> a (= response_1) wins.
    assert [j["outcome"] for j in judgments] == [A_WINS, B_WINS, TIE]


def test_individual_preferences(preference_file: Path) -> None:
    ds = load(preference_file, preferences="individual")
    votes = [p for row in PREFERENCES for p in row["all_preferences_unprocessed"]]
    judgments = ds.judgments.to_pylist()
    assert len(judgments) == len(votes)
    want = [
        (A_WINS if v["strength"] < 0 else B_WINS if v["strength"] > 0 else TIE, abs(v["strength"]))
        for v in votes
    ]
    assert [(j["outcome"], j["strength"]) for j in judgments] == want
    assert [j["rationale"] for j in judgments] == [v["justification"] for v in votes]
    with pytest.raises(PrefkitError, match="preferences must be one of"):
        load(preference_file, preferences="mean")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.update(preference_strength=5), "preference_strength"),
        (lambda r: r.update(preference_strength=None), "preference_strength"),
        (lambda r: r.update(response_2=r["response_1"]), "response_2"),
        (lambda r: r.pop("response_1"), "response_1"),
    ],
)
def test_bad_preferences(tmp_path: Path, change: Any, field: str) -> None:
    rows = json.loads(json.dumps(PREFERENCES))
    change(rows[1])
    with pytest.raises(InputError) as info:
        load(_write(tmp_path / "p.jsonl", rows), format="helpsteer")
    assert (info.value.where, info.value.field) == ("line 2", field)


def test_folder_keeps_ratings_of_compared_responses(
    tmp_path: Path, ratings_file: Path, preference_file: Path
) -> None:
    # "preference/preference.jsonl" sorts before "train.jsonl"; ratings must still win.
    ds = load(tmp_path, format="helpsteer")
    assert ds.num_rows("responses") == len(RATINGS)
    assert ds.num_rows("judgments") == len(PREFERENCES)
    rated = {r["response_id"] for r in ds.responses.to_pylist() if r["attributes"]}
    assert rated == set(ds.responses.column("response_id").to_pylist())
    ids = {x for j in ds.judgments.to_pylist() for x in (j["a"], j["b"])}
    assert ids <= rated


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_ratings_round_trip(ratings_file: Path, tmp_path: Path, suffix: str) -> None:
    ds = load(ratings_file)
    out = save(ds, tmp_path / f"out{suffix}", format="helpsteer")
    again = load(out, format="helpsteer")

    def view(d: Dataset) -> list[tuple]:
        return sorted(
            (r["response_id"], r["prompt_id"], sorted(_attrs(r["attributes"]).items()), r["score"])
            for r in d.responses.to_pylist()
        )

    assert view(again) == view(ds)
    assert sorted(map(str, again.prompts.column("messages").to_pylist())) == sorted(
        map(str, ds.prompts.column("messages").to_pylist())
    )


def test_written_rows_match_input(ratings_file: Path, tmp_path: Path) -> None:
    out = save(load(ratings_file), tmp_path / "w.jsonl", format="helpsteer")
    assert [json.loads(x) for x in out.read_text().splitlines()] == RATINGS


def test_preference_round_trip(preference_file: Path, tmp_path: Path) -> None:
    ds = load(preference_file)
    out = save(ds, tmp_path / "p.jsonl", format="helpsteer", layout="preference")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["preference_strength"] for r in rows] == [
        p["preference_strength"] for p in PREFERENCES
    ]
    again = load(out)
    cols = ["prompt_id", "a", "b", "outcome", "strength", "rationale"]
    assert again.judgments.select(cols).to_pylist() == ds.judgments.select(cols).to_pylist()


def test_writer_refusals(preference_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PrefkitError, match="layout='preference'"):
        save(load(preference_file), tmp_path / "x.jsonl", format="helpsteer")
    emit = Emitter("x")
    pid = emit.prompt([{"role": "user", "content": "q"}])
    a = emit.response(pid, [{"role": "assistant", "content": "a"}])
    b = emit.response(pid, [{"role": "assistant", "content": "b"}])
    emit.judgment(pid, a, b, 1)
    emit.commit()
    with pytest.raises(PrefkitError, match="needs a strength"):
        save(Dataset(emit.flush()), tmp_path / "y.jsonl", format="helpsteer", layout="preference")
    assert not (tmp_path / "y.jsonl").exists()


def test_reads_parquet(tmp_path: Path) -> None:
    path = tmp_path / "helpsteer.parquet"
    pq.write_table(pa.Table.from_pylist(RATINGS), path)
    ds = load(path)
    assert ds.num_rows("responses") == len(RATINGS)
    assert _attrs(_by_text(ds)[RATINGS[0]["response"]]["attributes"])["correctness"] == 4.0


def test_sniff() -> None:
    assert sniff(Sample(Path("t.jsonl"), RATINGS[:2], "jsonl")) >= 0.9
    assert sniff(Sample(Path("p.jsonl"), PREFERENCES[:1], "jsonl")) >= 0.9
    assert (
        sniff(Sample(Path("t.jsonl"), [{"prompt": "p", "chosen": "c", "rejected": "r"}], "jsonl"))
        == 0.0
    )
    assert sniff(Sample(Path("t.jsonl"), [], None)) == 0.0


def test_preference_round_trip_gives_the_same_pairs(preference_file: Path, tmp_path: Path) -> None:
    ds = load(preference_file)
    again = load(save(ds, tmp_path / "p.parquet", format="helpsteer", layout="preference"))

    def pairs(d: Dataset) -> list[tuple]:
        t = d.to_pairs(ties="drop")
        cols = ("prompt_id", "chosen_id", "rejected_id", "strength")
        return sorted(zip(*(t.column(c).to_pylist() for c in cols), strict=True))

    assert len(pairs(ds)) == 2
    assert pairs(again) == pairs(ds)
