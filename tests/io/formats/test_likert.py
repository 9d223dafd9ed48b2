"""The ``likert`` adapter: one rated output per row (EMNLP'17 NLG ratings and generic tables)."""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from prefkit.dataset import Dataset
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, load, save
from prefkit.io.formats.base import Emitter, Sample
from prefkit.io.formats.likert import sniff

NLG = "nlg_emnlp17_ratings/emnlp_data_medians.csv"
RATINGS = ("informativeness", "naturalness", "quality")


def _attrs(value: Any) -> dict[str, float]:
    return dict(value or [])


def _csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, delimiter=delimiter)
        out.writerow(header)
        out.writerows(rows)
    return path


# --- the real EMNLP'17 data ----------------------------------------------------------------------
@pytest.fixture
def nlg(shared_data: Path) -> Path:
    return shared_data / NLG


@pytest.fixture
def nlg_rows(nlg: Path) -> list[dict[str, str]]:
    with nlg.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


_LOADED: dict[Path, Dataset] = {}


@pytest.fixture
def nlg_ds(nlg: Path) -> Dataset:
    if nlg not in _LOADED:
        _LOADED[nlg] = load(nlg)
    return _LOADED[nlg]


@pytest.mark.shared_data
def test_nlg_counts_match_the_file(
    nlg: Path, nlg_rows: list[dict[str, str]], nlg_ds: Dataset
) -> None:
    assert detect_format(nlg).name == "likert"
    assert len(nlg_rows) == 2460
    assert nlg_ds.num_rows("responses") == len(nlg_rows)
    sources = collections.Counter(nlg_ds.responses.column("source").to_pylist())
    assert sources == collections.Counter(r["system"] for r in nlg_rows)
    assert sources == {"LOLS": 1181, "WEN": 1077, "Dusek": 202}  # as SOURCE.md states
    assert nlg_ds.num_rows("judgments") == 0


@pytest.mark.shared_data
def test_nlg_prompts_are_mrs_within_a_dataset(
    nlg_rows: list[dict[str, str]], nlg_ds: Dataset
) -> None:
    # 1,174 distinct mr strings; six of them occur in both SFHOT and SFRES with different
    # ratings of identical outputs, so the dataset is part of the prompt's context.
    assert nlg_ds.num_rows("prompts") == len({(r["dataset"], r["mr"]) for r in nlg_rows}) == 1180
    prompts = nlg_ds.prompts.to_pylist()
    assert (
        len({p["messages"][0]["content"] for p in prompts})
        == len({r["mr"] for r in nlg_rows})
        == 1174
    )
    want = {(r["dataset"], r["mr"]): (r["mr_type"], r["domain"]) for r in nlg_rows}
    got = {
        (_attrs(p["context"])["dataset"], p["messages"][0]["content"]): (p["mr_type"], p["domain"])
        for p in prompts
    }
    assert got == want
    assert all(p["messages"][0]["role"] == "user" and len(p["messages"]) == 1 for p in prompts)


@pytest.mark.shared_data
def test_nlg_ratings_are_the_file_values(nlg_rows: list[dict[str, str]], nlg_ds: Dataset) -> None:
    context = {p["prompt_id"]: _attrs(p["context"])["dataset"] for p in nlg_ds.prompts.to_pylist()}
    mr = {p["prompt_id"]: p["messages"][0]["content"] for p in nlg_ds.prompts.to_pylist()}
    got = {
        (
            context[r["prompt_id"]],
            mr[r["prompt_id"]],
            r["messages"][0]["content"],
            r["source"],
        ): _attrs(r["attributes"])
        for r in nlg_ds.responses.to_pylist()
    }
    want = {
        (r["dataset"], r["mr"], r["sys_ref"], r["system"]): {k: float(r[k]) for k in RATINGS}
        for r in nlg_rows
    }
    assert got == want
    values = {v for attrs in got.values() for v in attrs.values()}
    assert 5.5 in values and 1.5 in values  # medians of three workers: half points occur
    assert min(values) >= 1.0 and max(values) <= 6.0
    assert all(r["score"] is None for r in nlg_ds.responses.to_pylist())


@pytest.mark.shared_data
def test_nlg_known_record_and_meta_types(nlg_ds: Dataset) -> None:
    # The example record quoted in SOURCE.md.
    mr = "inform(name=none,area=citycentre,near='X')"
    prompt = [p for p in nlg_ds.prompts.to_pylist() if p["messages"][0]["content"] == mr]
    assert len(prompt) == 1
    assert _attrs(prompt[0]["context"]) == {"dataset": "BAGEL"}
    assert (prompt[0]["mr_type"], prompt[0]["domain"]) == ("inform", "REST")
    text = "there is sorry no information matching constraints near x."
    rows = [
        r
        for r in nlg_ds.responses.to_pylist()
        if r["prompt_id"] == prompt[0]["prompt_id"] and r["messages"][0]["content"] == text
    ]
    assert len(rows) == 1
    r = rows[0]
    assert r["source"] == "Dusek"
    assert _attrs(r["attributes"]) == {"informativeness": 6.0, "naturalness": 4.0, "quality": 5.0}
    assert r["ter"] == pytest.approx(0.827586207)
    assert r["bleu_2"] == pytest.approx(4.28e-9)
    assert r["lev_dist"] == 44.0
    assert r["inf_bin"] == "good" and r["qual_bin2"] == "Good+Avg"
    schema = nlg_ds.responses.schema
    assert str(schema.field("sim_mr_sys").type) == "double"
    assert str(schema.field("nat_bin").type) == "string"
    assert "informativeness" not in schema.names and "system" not in schema.names


@pytest.mark.shared_data
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_nlg_round_trip(nlg_ds: Dataset, tmp_path: Path, suffix: str) -> None:
    out = save(nlg_ds, tmp_path / f"ratings{suffix}", format="likert")
    assert detect_format(out).name == "likert"
    again = load(out)

    def view(d: Dataset) -> list[tuple]:
        return sorted(
            (
                r["response_id"],
                r["prompt_id"],
                r["source"],
                sorted(_attrs(r["attributes"]).items()),
                r["score"],
            )
            for r in d.responses.to_pylist()
        )

    assert view(again) == view(nlg_ds)
    assert sorted(again.prompts.column("prompt_id").to_pylist()) == sorted(
        nlg_ds.prompts.column("prompt_id").to_pylist()
    )


# --- generic tables ---------------------------------------------------------------------------------
HEADER = ["id", "input", "output", "model", "fluency", "adequacy", "note"]
ROWS = [
    [1, "Summarise: the cat sat.", "A cat sat.", "sys-a", "4", "5", "ok"],
    [2, "Summarise: the cat sat.", "The cat.", "sys-b", "3", "2", ""],
    [3, "Translate: hola", "hello", "sys-a", "5", "4.5", "short"],
    [4, "Translate: hola", "hi there", "sys-b", "", "3", "missing fluency"],
]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return _csv(tmp_path / "ratings.csv", HEADER, ROWS)


def test_generic_layout_is_inferred(table: Path) -> None:
    assert detect_format(table).name == "likert"
    ds = load(table)
    assert ds.num_rows("prompts") == 2
    assert ds.num_rows("responses") == 4
    by_text = {r["messages"][0]["content"]: r for r in ds.responses.to_pylist()}
    assert _attrs(by_text["A cat sat."]["attributes"]) == {"fluency": 4.0, "adequacy": 5.0}
    assert by_text["A cat sat."]["source"] == "sys-a"
    assert by_text["A cat sat."]["id"] == "1"  # an id column is meta text, not a rating
    assert by_text["The cat."]["note"] is None
    # An empty rating is absent, not zero.
    assert _attrs(by_text["hi there"]["attributes"]) == {"adequacy": 3.0}


def test_options(table: Path) -> None:
    ds = load(table, ratings="adequacy", score="fluency", system="", scale="1-5")
    r = {x["messages"][0]["content"]: x for x in ds.responses.to_pylist()}
    assert _attrs(r["hello"]["attributes"]) == {"adequacy": 4.5}
    assert r["hello"]["score"] == 5.0
    assert r["hello"]["source"] is None
    assert r["hello"]["model"] == "sys-a"  # no longer the source: kept as meta
    assert r["hi there"]["score"] is None
    ds = load(table, prompt="note", response="input", ratings="fluency,adequacy")
    assert {p["messages"][0]["content"] for p in ds.prompts.to_pylist()} == {
        "ok",
        "",
        "short",
        "missing fluency",
    }


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"prompt": "question"}, "prompt"),
        ({"ratings": "fluency,grammar"}, "ratings"),
        ({"system": "author"}, "system"),
        ({"score": "overall"}, "score"),
    ],
)
def test_bad_options_name_the_option(table: Path, options: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as info:
        load(table, format="likert", **options)
    assert info.value.field == field and info.value.file == str(table)


def test_bad_scale_option(table: Path) -> None:
    with pytest.raises(PrefkitError, match="scale"):
        load(table, scale="high")


def test_no_prompt_column(tmp_path: Path) -> None:
    path = _csv(tmp_path / "x.csv", ["a", "output", "r1"], [["x", "y", "1"]])
    with pytest.raises(InputError) as info:
        load(path, format="likert")
    assert info.value.field == "prompt" and "pass prompt=" in info.value.message


@pytest.mark.parametrize(
    ("value", "text"),
    [("7", "outside the scale 1-5"), ("n/a", "expected a number"), ("0", "outside")],
)
def test_bad_rating_names_file_line_and_field(tmp_path: Path, value: str, text: str) -> None:
    rows = [list(r) for r in ROWS]
    rows[2][5] = value
    path = _csv(tmp_path / "bad.csv", HEADER, rows)
    with pytest.raises(InputError) as info:
        load(path, format="likert", ratings="fluency,adequacy", scale="1-5")
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 4", "adequacy")
    assert text in err.message
    assert "bad.csv, line 4, field 'adequacy'" in str(err)


def test_quarantine_counts_reconcile(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows[0][4] = "9"
    rows[3][5] = "lots"
    path = _csv(tmp_path / "q.csv", HEADER, rows)
    with path.open("a") as fh:
        fh.write("5,too,few\n")
    ds = load(
        path,
        format="likert",
        ratings="fluency,adequacy",
        scale="1-5",
        on_error="quarantine",
        quarantine=tmp_path / "q.jsonl",
    )
    q = ds.manifest.quarantine
    assert q is not None
    assert (q["read"], q["kept"], q["quarantined"]) == (5, 2, 3)
    assert ds.num_rows("responses") == 2
    lines = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(x["where"], x["field"]) for x in lines] == [
        ("line 2", "fluency"),
        ("line 5", "adequacy"),
        ("line 6", None),
    ]


def test_inferred_ratings_need_numbers_in_the_first_records(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows[1][5] = "poor"
    ds = load(_csv(tmp_path / "t.csv", HEADER, rows), format="likert")
    # "adequacy" is not all-numeric in the first records, so it is text meta for every row.
    assert str(ds.responses.schema.field("adequacy").type) == "string"
    assert all(set(_attrs(a)) <= {"fluency"} for a in ds.responses.column("attributes").to_pylist())


def test_conflicting_duplicate_ratings_are_an_error(tmp_path: Path) -> None:
    rows = [list(r) for r in ROWS] + [
        [5, "Translate: hola", "hello", "sys-a", "1", "1", "second rater"]
    ]
    with pytest.raises(InputError) as info:
        load(_csv(tmp_path / "dup.csv", HEADER, rows))
    assert info.value.where == "line 6" and "already rated" in info.value.message


def test_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = load(_csv(tmp_path / "r.tsv", HEADER, ROWS, delimiter="\t"))
    rows = [dict(zip(HEADER, r, strict=True)) for r in ROWS]
    for r in rows:
        r["fluency"] = float(r["fluency"]) if r["fluency"] else None
        r["adequacy"] = float(r["adequacy"])
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    js = load(path, format="likert")
    for ds in (tsv, js):
        assert ds.num_rows("responses") == 4
    assert sorted(tsv.responses.column("response_id").to_pylist()) == sorted(
        js.responses.column("response_id").to_pylist()
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_generic_round_trip(table: Path, tmp_path: Path, suffix: str) -> None:
    ds = load(table, score="adequacy")
    out = save(ds, tmp_path / f"out{suffix}", format="likert")
    again = load(out, format="likert")

    def view(d: Dataset) -> list[tuple]:
        return sorted(
            (
                r["response_id"],
                r["prompt_id"],
                r["source"],
                sorted(_attrs(r["attributes"]).items()),
                r["score"],
            )
            for r in d.responses.to_pylist()
        )

    assert view(again) == view(ds)


def test_writer_columns(table: Path, tmp_path: Path) -> None:
    out = save(load(table), tmp_path / "w.csv", format="likert")
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["prompt", "response", "source", "adequacy", "fluency", "score"]
    assert rows[0] == {
        "prompt": "Summarise: the cat sat.",
        "response": "A cat sat.",
        "source": "sys-a",
        "adequacy": "5",
        "fluency": "4",
        "score": "",
    }
    assert rows[3]["fluency"] == ""


def test_writer_refuses_judgments(tmp_path: Path) -> None:
    emit = Emitter("x")
    pid = emit.prompt([{"role": "user", "content": "q"}])
    a = emit.response(pid, [{"role": "assistant", "content": "a"}])
    b = emit.response(pid, [{"role": "assistant", "content": "b"}])
    emit.judgment(pid, a, b, 1)
    emit.commit()
    with pytest.raises(PrefkitError, match="judgment"):
        save(Dataset(emit.flush()), tmp_path / "j.csv", format="likert")
    assert not (tmp_path / "j.csv").exists()


def test_sniff() -> None:
    nlg = {
        "dataset": "BAGEL",
        "system": "Dusek",
        "mr": "inform(x)",
        "sys_ref": "y",
        "informativeness": "6",
        "naturalness": "4",
        "quality": "5",
    }
    assert sniff(Sample(Path("a.csv"), [nlg], "csv")) >= 0.9
    generic = [dict(zip(HEADER, map(str, r), strict=True)) for r in ROWS]
    assert 0.2 <= sniff(Sample(Path("a.csv"), generic, "csv")) < 0.9
    pairs = {"prompt": "p", "chosen": "c", "rejected": "r", "score": "1"}
    assert sniff(Sample(Path("a.csv"), [pairs], "csv")) == 0.0
    assert sniff(Sample(Path("a.csv"), [{"prompt": "p", "response": "r"}], "csv")) == 0.0
    assert sniff(Sample(Path("a.csv"), [], None)) == 0.0


@pytest.mark.shared_data
def test_nlg_round_trip_gives_the_same_pairs(nlg_ds: Dataset, tmp_path: Path) -> None:
    again = load(save(nlg_ds, tmp_path / "ratings.csv", format="likert"))

    def pairs(d: Dataset) -> list[tuple]:
        t = d.to_pairs(scores="all", score_key="quality", margin=1)
        return sorted(
            zip(
                *(t.column(c).to_pylist() for c in ("prompt_id", "chosen_id", "rejected_id")),
                strict=True,
            )
        )

    assert pairs(nlg_ds)
    assert pairs(again) == pairs(nlg_ds)


def test_header_only_and_rows_without_columns(tmp_path: Path) -> None:
    empty = _csv(tmp_path / "empty.csv", ["prompt", "response", "fluency"], [])
    assert load(empty, format="likert").counts()["responses"] == 0
    lists = tmp_path / "lists.jsonl"
    lists.write_text("[1, 2]\n[3]\n")
    with pytest.raises(InputError) as info:
        load(lists, format="likert")
    assert info.value.where == "line 1" and "named columns" in info.value.message
    q = load(lists, format="likert", on_error="quarantine").manifest.quarantine
    assert q is not None and (q["read"], q["kept"], q["quarantined"]) == (2, 0, 2)
