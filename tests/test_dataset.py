"""`Dataset`: construction, counts, kinds, fingerprints and lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from prefkit import Dataset, Manifest
from prefkit.dataset import KINDS
from prefkit.io.store import load_dataset_dir
from prefkit.schema import CORE, TABLES, SchemaError, TableBuilder, messages


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    b = TableBuilder(name)
    for r in rows:
        b.add(**r)
    return b.build()


def _prompts(n: int = 3, **meta: list[Any]) -> pa.Table:
    rows = []
    for i in range(n):
        row = {"prompt_id": f"p{i}", "messages": messages(("user", f"question {i}"))}
        row.update({k: v[i] for k, v in meta.items()})
        rows.append(row)
    return _table("prompts", rows)


def _responses() -> pa.Table:
    return _table(
        "responses",
        [
            {
                "response_id": "r1",
                "prompt_id": "p0",
                "messages": messages(("assistant", "a")),
                "score": 1.0,
            },
            {
                "response_id": "r2",
                "prompt_id": "p0",
                "messages": messages(("assistant", "b")),
                "score": 2.0,
            },
            {
                "response_id": "r3",
                "prompt_id": "p1",
                "messages": messages(("assistant", "c")),
                "score": 3.0,
            },
        ],
    )


def _ds() -> Dataset:
    return Dataset({"prompts": _prompts(lang=["en", "de", None]), "responses": _responses()})


# --- construction -------------------------------------------------------------------------------
def test_missing_tables_are_empty() -> None:
    ds = Dataset()
    for name in TABLES:
        assert ds.table(name).schema == CORE[name]
    assert ds.counts() == dict.fromkeys(TABLES, 0)
    assert ds.kinds() == []
    assert repr(ds) == "Dataset(empty)"


def test_unknown_table_name_is_refused() -> None:
    with pytest.raises(ValueError, match="votes"):
        Dataset({"votes": pa.table({"x": [1]})})


def test_tables_are_conformed() -> None:
    raw = pa.table({"lang": ["en"], "prompt_id": ["p0"]})
    ds = Dataset({"prompts": raw})
    assert ds.prompts.schema.names == [*CORE["prompts"].names, "lang"]


def test_bad_table_raises_schema_error() -> None:
    with pytest.raises(SchemaError, match="'responses'"):
        Dataset({"responses": pa.table({"response_id": ["r1"]})})


def test_properties_and_counts() -> None:
    ds = _ds()
    assert ds.prompts.num_rows == 3
    assert ds.responses.num_rows == 3
    assert ds.judgments.num_rows == ds.rankings.num_rows == ds.annotators.num_rows == 0
    assert ds.counts() == {
        "prompts": 3,
        "responses": 3,
        "judgments": 0,
        "rankings": 0,
        "annotators": 0,
    }
    assert repr(ds) == "Dataset(prompts=3, responses=3)"


def test_kinds_follow_the_data() -> None:
    j = _table(
        "judgments",
        [
            {
                "judgment_id": "j1",
                "prompt_id": "p0",
                "a": "r1",
                "b": "r2",
                "outcome": 0,
                "annotator_id": "u1",
            },
        ],
    )
    ds = Dataset({"prompts": _prompts(), "responses": _responses(), "judgments": j})
    assert ds.kinds() == ["pairwise", "ties", "scores", "annotators"]
    assert set(ds.kinds()) <= set(KINDS)
    with_source = ds.responses.set_column(
        ds.responses.column_names.index("source"), "source", pa.array(["m1", "m2", "m3"])
    )
    assert "battles" in ds.with_tables(responses=with_source).kinds()
    r = _table("rankings", [{"ranking_id": "k", "prompt_id": "p0", "tiers": [["r1"], ["r2"]]}])
    assert "rankings" in Dataset({"rankings": r}).kinds()
    attrs = _table(
        "responses",
        [{"response_id": "r1", "prompt_id": "p0", "attributes": [("helpfulness", 2.0)]}],
    )
    assert Dataset({"responses": attrs}).kinds() == ["attributes"]


# --- fingerprints -------------------------------------------------------------------------------
def test_fingerprint_is_stable() -> None:
    assert _ds().fingerprint() == _ds().fingerprint()
    assert _ds().table_fingerprints() == _ds().table_fingerprints()
    assert set(_ds().table_fingerprints()) == set(TABLES)


def test_fingerprint_ignores_row_order() -> None:
    ds = _ds()
    shuffled = Dataset(
        {"prompts": ds.prompts.take([2, 0, 1]), "responses": ds.responses.take([1, 2, 0])}
    )
    assert shuffled.fingerprint() == ds.fingerprint()


@pytest.mark.parametrize(
    ("table", "column", "row", "value"),
    [
        ("responses", "score", 1, 2.5),
        ("responses", "response_id", 0, "r9"),
        ("prompts", "lang", 2, "fr"),
        ("prompts", "lang", 0, None),
    ],
)
def test_fingerprint_changes_when_one_value_changes(
    table: str, column: str, row: int, value: Any
) -> None:
    ds = _ds()
    t = ds.table(table)
    values = t.column(column).to_pylist()
    values[row] = value
    changed = t.set_column(
        t.column_names.index(column), column, pa.array(values, t.schema.field(column).type)
    )
    other = ds.with_tables(**{table: changed})
    assert other.fingerprint() != ds.fingerprint()
    fps, base = other.table_fingerprints(), ds.table_fingerprints()
    assert [n for n in TABLES if fps[n] != base[n]] == [table]


def test_fingerprint_changes_when_a_row_is_added_or_duplicated() -> None:
    ds = _ds()
    doubled = ds.with_tables(responses=pa.concat_tables([ds.responses, ds.responses.slice(0, 1)]))
    assert doubled.fingerprint() != ds.fingerprint()
    assert (
        Dataset({"prompts": _prompts(2)}).fingerprint()
        != Dataset({"prompts": _prompts(3)}).fingerprint()
    )


def test_fingerprint_tells_tables_apart() -> None:
    # Empty tables of different kinds have different fingerprints (the name is hashed in).
    assert len(set(Dataset().table_fingerprints().values())) == len(TABLES)
    a = Dataset({"annotators": _table("annotators", [{"annotator_id": "u1"}])})
    b = Dataset({"annotators": _table("annotators", [{"annotator_id": "u2"}])})
    assert len({a.fingerprint(), b.fingerprint(), Dataset().fingerprint()}) == 3


def test_fingerprint_changes_when_a_meta_column_is_renamed() -> None:
    ds = _ds()
    names = [("language" if n == "lang" else n) for n in ds.prompts.column_names]
    renamed = ds.with_tables(prompts=ds.prompts.rename_columns(names))
    assert renamed.fingerprint() != ds.fingerprint()


def test_fingerprint_is_the_same_on_disk(tmp_path: Path) -> None:
    ds = _ds()
    assert load_dataset_dir(ds.save(tmp_path / "ds")).fingerprint() == ds.fingerprint()


# --- lineage ------------------------------------------------------------------------------------
def test_with_tables_appends_a_lineage_step() -> None:
    ds = Dataset({"prompts": _prompts()}, Manifest(lineage=[{"step": "load"}]))
    new = ds.with_tables({"step": "drop", "params": {"n": 1}}, prompts=ds.prompts.slice(0, 2))
    assert new.counts()["prompts"] == 2
    assert new.manifest.lineage[0] == {"step": "load"}
    step = new.manifest.lineage[-1]
    assert step["step"] == "drop"
    assert step["params"] == {"n": 1}
    assert step["inputs"] == [ds.fingerprint()]
    assert step["output"] == new.fingerprint()
    assert step["inputs"] != [step["output"]]
    # The original is untouched.
    assert ds.manifest.lineage == [{"step": "load"}]
    assert ds.counts()["prompts"] == 3


def test_with_tables_without_a_step_keeps_lineage() -> None:
    ds = Dataset({"prompts": _prompts()}, Manifest(lineage=[{"step": "load"}]))
    new = ds.with_tables(responses=_responses())
    assert new.manifest.lineage == [{"step": "load"}]
    assert new.manifest is not ds.manifest
    assert new.prompts.equals(ds.prompts)


def test_lineage_survives_saving(tmp_path: Path) -> None:
    ds = Dataset({"prompts": _prompts()}).with_tables({"step": "x"}, prompts=_prompts(1))
    back = load_dataset_dir(ds.save(tmp_path / "ds"))
    assert back.manifest.lineage == ds.manifest.lineage
    assert back.manifest.lineage[-1]["output"] == back.fingerprint()


def test_manifest_dict_round_trip() -> None:
    m = Manifest(
        lineage=[{"step": "load"}],
        planted={"theta": [1.0]},
        quarantine={"read": 3, "kept": 2, "quarantined": 1},
        source={"path": "x"},
    )
    assert Manifest.from_dict(m.to_dict()) == m
    assert Manifest().to_dict() == {"lineage": []}


# --- frames -------------------------------------------------------------------------------------
def test_pandas_round_trip() -> None:
    pytest.importorskip("pandas")
    ds = _ds()
    frames = ds.to_pandas()
    assert set(frames) == set(TABLES)
    assert len(frames["prompts"]) == 3
    back = Dataset.from_frames({"prompts": frames["prompts"][["prompt_id", "lang"]]})
    assert back.prompts.column("lang").to_pylist() == ["en", "de", None]
    assert back.prompts.column("prompt_id").to_pylist() == ["p0", "p1", "p2"]


def test_polars_round_trip() -> None:
    pytest.importorskip("polars")
    ds = _ds()
    frames = ds.to_polars()
    back = Dataset.from_frames(frames)
    assert back.fingerprint() == ds.fingerprint()


def test_from_frames_accepts_arrow() -> None:
    ds = _ds()
    assert Dataset.from_frames({"responses": ds.responses}).responses.equals(ds.responses)
