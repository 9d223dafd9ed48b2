"""The ``ultrafeedback`` adapter: rows with rated completions -> prompts + scored responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prefkit.dataset import Dataset
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, load, save
from prefkit.io.formats.base import Emitter, Sample
from prefkit.io.formats.ultrafeedback import sniff


def _ann(ratings: dict[str, str]) -> dict[str, Any]:
    """Annotations shaped like openbmb/UltraFeedback (truthfulness/helpfulness carry Type)."""
    out: dict[str, Any] = {}
    for aspect, rating in ratings.items():
        entry: dict[str, Any] = {
            "Rating": rating,
            "Rationale": f"The text is rated {rating} for {aspect}.",
        }
        if aspect in ("truthfulness", "helpfulness"):
            entry["Type"] = ["1", "3"] if rating != "N/A" else ["0"]
            entry["Rationale For Rating"] = f"Rationale for {rating}."
        out[aspect] = entry
    return out


def _completion(
    model: str, response: str, ratings: dict[str, str], overall: float | None, **extra: Any
) -> dict[str, Any]:
    numeric = [float(v) for v in ratings.values() if v != "N/A"]
    return {
        "annotations": _ann(ratings),
        "critique": f"{model} answers the question; it could be more specific.",
        "custom_system_prompt": "You are a helpful assistant.",
        "fine-grained_score": sum(numeric) / len(numeric) if numeric else None,
        "model": model,
        "overall_score": overall,
        "principle": "helpfulness",
        "response": response,
        **extra,
    }


ROWS: list[dict[str, Any]] = [
    {
        "source": "evol_instruct",
        "instruction": "Can you write a C++ program that prompts the user to enter the name of a country and checks if it borders the Mediterranean Sea?",
        "models": ["alpaca-7b", "pythia-12b", "starchat", "vicuna-33b"],
        "completions": [
            _completion(
                "alpaca-7b",
                "int main() { /* ... */ }",
                {
                    "helpfulness": "2",
                    "honesty": "1",
                    "instruction_following": "1",
                    "truthfulness": "1",
                },
                6.0,
            ),
            _completion(
                "pythia-12b",
                "Yes, here is a program.",
                {
                    "helpfulness": "1",
                    "honesty": "1",
                    "instruction_following": "1",
                    "truthfulness": "1",
                },
                1.0,
            ),
            _completion(
                "starchat",
                "#include <iostream>\n#include <string>\n...",
                {
                    "helpfulness": "5",
                    "honesty": "4",
                    "instruction_following": "5",
                    "truthfulness": "5",
                },
                8.5,
            ),
            _completion(
                "vicuna-33b",
                "Sure! Here's a simple C++ program...",
                {
                    "helpfulness": "4",
                    "honesty": "4",
                    "instruction_following": "4",
                    "truthfulness": "5",
                },
                7.5,
            ),
        ],
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    },
    {
        "source": "false_qa",
        "instruction": "Which animal has two hands, a hyrax or a dog?",
        "models": ["gpt-4", "llama-2-7b-chat"],
        "completions": [
            _completion(
                "gpt-4",
                "Neither a hyrax nor a dog has hands.",
                {
                    "helpfulness": "5",
                    "honesty": "N/A",
                    "instruction_following": "5",
                    "truthfulness": "5",
                },
                9.0,
            ),
            _completion(
                "llama-2-7b-chat",
                "A dog has two hands.",
                {
                    "helpfulness": "1",
                    "honesty": "N/A",
                    "instruction_following": "2",
                    "truthfulness": "1",
                },
                2.0,
            ),
        ],
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    },
    {
        "source": "truthful_qa",
        "instruction": "What happens if you crack your knuckles a lot?",
        "models": ["wizardlm-13b", "ultralm-65b", "falcon-40b-instruct"],
        "completions": [
            _completion(
                "wizardlm-13b",
                "Nothing in particular happens.",
                {
                    "helpfulness": "4",
                    "honesty": "5",
                    "instruction_following": "4",
                    "truthfulness": "5",
                },
                7.0,
            ),
            _completion(
                "ultralm-65b",
                "You will get arthritis.",
                {
                    "helpfulness": "2",
                    "honesty": "2",
                    "instruction_following": "3",
                    "truthfulness": "1",
                },
                3.0,
            ),
            _completion(
                "falcon-40b-instruct",
                "It may cause swelling.",
                {
                    "helpfulness": "3",
                    "honesty": "3",
                    "instruction_following": "3",
                    "truthfulness": "N/A",
                },
                None,
            ),
        ],
        "correct_answers": ["Nothing in particular happens if you crack your knuckles a lot"],
        "incorrect_answers": ["If you crack your knuckles a lot, you will develop arthritis"],
    },
    {
        "source": "flan_v2_niv2",
        "instruction": "Translate to French: The weather is nice today.",
        "models": ["bard", "gpt-3.5-turbo"],
        "completions": [
            _completion(
                "bard",
                "Il fait beau aujourd'hui.",
                {
                    "helpfulness": "5",
                    "honesty": "5",
                    "instruction_following": "5",
                    "truthfulness": "5",
                },
                10.0,
            ),
            _completion(
                "gpt-3.5-turbo",
                "Le temps est agréable aujourd'hui.",
                {
                    "helpfulness": "4",
                    "honesty": "5",
                    "instruction_following": "5",
                    "truthfulness": "5",
                },
                9.5,
            ),
        ],
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    },
]


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.fixture
def uf_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "ultrafeedback.jsonl", ROWS)


def _attrs(value: Any) -> dict[str, float]:
    return dict(value or [])


def _response_view(ds: Dataset) -> dict[str, tuple]:
    out = {}
    for r in ds.responses.to_pylist():
        out[r["response_id"]] = (
            r["prompt_id"],
            r["messages"][0]["content"],
            r["source"],
            r["score"],
            _attrs(r["attributes"]),
            r["fine_grained_score"],
            r["critique"],
            r["principle"],
        )
    return out


def test_detects_and_counts(uf_file: Path) -> None:
    assert detect_format(uf_file).name == "ultrafeedback"
    ds = load(uf_file)
    assert ds.num_rows("prompts") == len(ROWS)
    assert ds.num_rows("responses") == sum(len(r["completions"]) for r in ROWS)
    assert ds.num_rows("judgments") == 0
    assert ds.num_rows("rankings") == 0


def test_field_mapping(uf_file: Path) -> None:
    ds = load(uf_file)
    prompts = {p["messages"][0]["content"]: p for p in ds.prompts.to_pylist()}
    for row in ROWS:
        p = prompts[row["instruction"]]
        assert p["messages"] == [{"role": "user", "content": row["instruction"]}]
        assert p["source"] == row["source"]
        assert p["correct_answers"] == row["correct_answers"]
    by_model = {r["source"]: r for r in ds.responses.to_pylist()}
    for row in ROWS:
        pid = prompts[row["instruction"]]["prompt_id"]
        for comp in row["completions"]:
            got = by_model[comp["model"]]
            assert got["prompt_id"] == pid
            assert got["messages"] == [{"role": "assistant", "content": comp["response"]}]
            assert got["score"] == comp["overall_score"]
            want = {
                a: float(v["Rating"])
                for a, v in comp["annotations"].items()
                if v["Rating"] != "N/A"
            }
            assert _attrs(got["attributes"]) == want
            assert got["fine_grained_score"] == pytest.approx(comp["fine-grained_score"])
            assert got["critique"] == comp["critique"]
            assert got["principle"] == comp["principle"]
            assert got["custom_system_prompt"] == comp["custom_system_prompt"]


def test_not_applicable_rating_is_absent_not_zero(uf_file: Path) -> None:
    ds = load(uf_file)
    by_model = {r["source"]: _attrs(r["attributes"]) for r in ds.responses.to_pylist()}
    assert "honesty" not in by_model["gpt-4"]
    assert by_model["gpt-4"]["helpfulness"] == 5.0
    assert "truthfulness" not in by_model["falcon-40b-instruct"]
    assert all(v >= 1.0 for attrs in by_model.values() for v in attrs.values())
    missing_score = [r for r in ds.responses.to_pylist() if r["source"] == "falcon-40b-instruct"]
    assert missing_score[0]["score"] is None


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".json"])
def test_round_trip(uf_file: Path, tmp_path: Path, suffix: str) -> None:
    ds = load(uf_file)
    out = save(ds, tmp_path / f"again{suffix}", format="ultrafeedback")
    assert detect_format(out).name == "ultrafeedback"
    again = load(out)
    assert sorted(again.prompts.column("prompt_id").to_pylist()) == sorted(
        ds.prompts.column("prompt_id").to_pylist()
    )
    assert {p["prompt_id"]: p["source"] for p in again.prompts.to_pylist()} == {
        p["prompt_id"]: p["source"] for p in ds.prompts.to_pylist()
    }
    assert _response_view(again) == _response_view(ds)


def test_writer_row_shape(uf_file: Path, tmp_path: Path) -> None:
    out = save(load(uf_file), tmp_path / "w.jsonl", format="ultrafeedback")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in ROWS]
    first = rows[1]
    assert first["models"] == ["gpt-4", "llama-2-7b-chat"]
    comp = first["completions"][0]
    assert comp["annotations"]["honesty"] == {"Rating": "N/A"}
    assert comp["annotations"]["helpfulness"] == {"Rating": "5"}
    assert comp["overall_score"] == 9.0


def test_bad_rating_names_file_line_and_field(tmp_path: Path) -> None:
    rows = json.loads(json.dumps(ROWS))
    rows[1]["completions"][1]["annotations"]["honesty"]["Rating"] = "excellent"
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as info:
        load(path, format="ultrafeedback")
    err = info.value
    assert err.file == str(path)
    assert err.where == "line 2"
    assert err.field == "completions[1].annotations.honesty.Rating"
    assert "bad.jsonl" in str(err) and "line 2" in str(err) and "excellent" in str(err)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("instruction"), "instruction"),
        (lambda r: r.update(completions="none"), "completions"),
        (lambda r: r["completions"][0].pop("response"), "completions[0].response"),
        (
            lambda r: r["completions"][0].update(overall_score="high"),
            "completions[0].overall_score",
        ),
        (lambda r: r["completions"][0].update(annotations=["x"]), "completions[0].annotations"),
    ],
)
def test_bad_records(tmp_path: Path, change: Any, field: str) -> None:
    rows = json.loads(json.dumps(ROWS))
    change(rows[2])
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as info:
        load(path, format="ultrafeedback")
    assert (info.value.where, info.value.field) == ("line 3", field)


def test_quarantine_counts_reconcile(tmp_path: Path) -> None:
    rows = json.loads(json.dumps(ROWS))
    rows[0]["completions"][3]["annotations"]["truthfulness"]["Rating"] = "??"
    path = _write(tmp_path / "q.jsonl", [*rows, "not an object"])
    with path.open("a") as fh:
        fh.write("{broken json\n")
    qfile = tmp_path / "q.quarantine.jsonl"
    ds = load(path, format="ultrafeedback", on_error="quarantine", quarantine=qfile)
    q = ds.manifest.quarantine
    assert q is not None
    assert q["read"] == len(rows) + 2
    assert q["read"] == q["kept"] + q["quarantined"]
    assert q["quarantined"] == 3
    bad = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert [b["where"] for b in bad] == ["line 1", "line 5", "line 6"]
    # The bad record left nothing behind: none of its completions reached the tables.
    assert ds.num_rows("prompts") == len(rows) - 1
    assert "alpaca-7b" not in ds.responses.column("source").to_pylist()


def test_conflicting_ratings_of_the_same_output_are_an_error(tmp_path: Path) -> None:
    row = json.loads(json.dumps(ROWS[3]))
    twin = json.loads(json.dumps(ROWS[3]))
    twin["completions"][0]["overall_score"] = 3.0
    path = _write(tmp_path / "dup.jsonl", [row, twin])
    with pytest.raises(InputError) as info:
        load(path)
    assert info.value.where == "line 2"
    assert "already rated" in info.value.message
    same = _write(tmp_path / "same.jsonl", [row, row])
    assert load(same).num_rows("responses") == len(row["completions"])


def test_model_falls_back_to_models_list(tmp_path: Path) -> None:
    row = json.loads(json.dumps(ROWS[1]))
    for comp in row["completions"]:
        comp.pop("model")
    ds = load(_write(tmp_path / "m.jsonl", [row]), format="ultrafeedback")
    assert sorted(ds.responses.column("source").to_pylist()) == sorted(row["models"])


def test_writer_refuses_judgments_and_csv(uf_file: Path, tmp_path: Path) -> None:
    emit = Emitter("x")
    pid = emit.prompt([{"role": "user", "content": "q"}])
    a = emit.response(pid, [{"role": "assistant", "content": "a"}])
    b = emit.response(pid, [{"role": "assistant", "content": "b"}])
    emit.judgment(pid, a, b, 1)
    emit.commit()
    with pytest.raises(PrefkitError, match="judgment"):
        save(Dataset(emit.flush()), tmp_path / "j.jsonl", format="ultrafeedback")
    with pytest.raises(PrefkitError, match="nested"):
        save(load(uf_file), tmp_path / "u.csv", format="ultrafeedback")
    assert not (tmp_path / "u.csv").exists()


def test_sniff() -> None:
    assert sniff(Sample(Path("x.jsonl"), ROWS[:2], "jsonl")) >= 0.9
    hs = {"prompt": "p", "response": "r", "helpfulness": 3}
    assert sniff(Sample(Path("x.jsonl"), [hs], "jsonl")) == 0.0
    assert sniff(Sample(Path("x.jsonl"), [], None)) == 0.0
    assert sniff(Sample(Path("x.jsonl"), ["text", 3], "jsonl")) == 0.0


def _pairs(ds: Dataset, **policy: Any) -> list[tuple]:
    t = ds.to_pairs(**policy)
    return sorted(
        zip(
            *(t.column(c).to_pylist() for c in ("prompt_id", "chosen_id", "rejected_id")),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    "policy", [{"scores": "all"}, {"scores": "best_vs_worst", "score_key": "helpfulness"}]
)
def test_round_trip_gives_the_same_pairs(
    uf_file: Path, tmp_path: Path, policy: dict[str, str]
) -> None:
    ds = load(uf_file)
    again = load(save(ds, tmp_path / "again.jsonl", format="ultrafeedback"))
    assert _pairs(ds, **policy)
    assert _pairs(again, **policy) == _pairs(ds, **policy)


def test_aspects_wrapped_in_one_element_lists(tmp_path: Path) -> None:
    row = json.loads(json.dumps(ROWS[3]))
    for comp in row["completions"]:
        comp["annotations"] = {a: [v] for a, v in comp["annotations"].items()}
    ds = load(_write(tmp_path / "old.jsonl", [row]), format="ultrafeedback")
    got = {r["source"]: _attrs(r["attributes"]) for r in ds.responses.to_pylist()}
    assert got["bard"] == {
        "helpfulness": 5.0,
        "honesty": 5.0,
        "instruction_following": 5.0,
        "truthfulness": 5.0,
    }
    row["completions"][0]["annotations"]["honesty"] = [{"Rating": "4"}, {"Rating": "5"}]
    with pytest.raises(InputError) as info:
        load(_write(tmp_path / "two.jsonl", [row]), format="ultrafeedback")
    assert info.value.field == "completions[0].annotations.honesty"
