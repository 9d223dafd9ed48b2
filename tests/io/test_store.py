"""The canonical on-disk dataset: round-trips, sharding, atomic writes, manifest checks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import prefkit
from prefkit import Dataset, Manifest, PrefkitError
from prefkit.io import store
from prefkit.io.store import (
    MANIFEST,
    DatasetWriter,
    is_dataset_dir,
    load_dataset_dir,
    read_manifest,
    write_chunks,
)
from prefkit.schema import ID_COLUMN, SCHEMA_VERSION, TABLES, TableBuilder, concat, messages


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    b = TableBuilder(name)
    for r in rows:
        b.add(**r)
    return b.build()


def _full() -> Dataset:
    """Every table non-empty, every kind of column (maps, media, tiers, meta) used."""
    return Dataset(
        {
            "prompts": _table(
                "prompts",
                [
                    {
                        "prompt_id": "p1",
                        "messages": messages(("user", "Q1")),
                        "context": [("persona", "pirate")],
                        "lang": "en",
                    },
                    {"prompt_id": "p2", "messages": messages(("system", "S"), ("user", "Q2"))},
                ],
            ),
            "responses": _table(
                "responses",
                [
                    {
                        "response_id": "r1",
                        "prompt_id": "p1",
                        "messages": messages(("assistant", "A1")),
                        "source": "gpt",
                        "score": 4.5,
                        "attributes": [("helpfulness", 3.0)],
                    },
                    {
                        "response_id": "r2",
                        "prompt_id": "p1",
                        "messages": messages(("assistant", "A2")),
                        "source": "llama",
                        "media": [{"uri": "file://a.png", "mime": "image/png"}],
                    },
                    {
                        "response_id": "r3",
                        "prompt_id": "p2",
                        "messages": messages(("assistant", "A3")),
                    },
                    {
                        "response_id": "r4",
                        "prompt_id": "p2",
                        "messages": messages(("assistant", "A4")),
                    },
                ],
            ),
            "judgments": _table(
                "judgments",
                [
                    {
                        "judgment_id": "f:0",
                        "prompt_id": "p1",
                        "a": "r1",
                        "b": "r2",
                        "outcome": 1,
                        "strength": 0.75,
                        "annotator_id": "u1",
                        "annotator_kind": "human",
                        "rationale": "clearer",
                    },
                    {
                        "judgment_id": "f:1",
                        "prompt_id": "p1",
                        "a": "r2",
                        "b": "r1",
                        "outcome": 0,
                        "tie_kind": "bad",
                        "votes": 3,
                    },
                ],
            ),
            "rankings": _table(
                "rankings",
                [
                    {
                        "ranking_id": "f:2",
                        "prompt_id": "p2",
                        "tiers": [["r3", "r4"]],
                        "annotator_id": "u1",
                    }
                ],
            ),
            "annotators": _table(
                "annotators", [{"annotator_id": "u1", "age": 34, "group": "expert"}]
            ),
        },
        Manifest(
            lineage=[{"step": "load", "params": {"x": 1}}],
            planted={"theta": [0.1, 0.2]},
            source={"path": "x.jsonl"},
        ),
    )


def _assert_same_tables(a: Dataset, b: Dataset) -> None:
    for name in TABLES:
        ta, tb = a.table(name), b.table(name)
        assert ta.schema == tb.schema, name
        assert ta.equals(tb), name


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- round-trips --------------------------------------------------------------------------------
def test_save_load_round_trip_preserves_tables_and_fingerprint(tmp_path: Path) -> None:
    ds = _full()
    out = ds.save(tmp_path / "ds")
    assert out == tmp_path / "ds"
    assert is_dataset_dir(out)
    back = prefkit.load(out)
    _assert_same_tables(ds, back)
    assert back.fingerprint() == ds.fingerprint()
    assert back.table_fingerprints() == ds.table_fingerprints()
    assert back.manifest.lineage == ds.manifest.lineage
    assert back.manifest.planted == ds.manifest.planted
    assert back.manifest.source == ds.manifest.source
    assert _listing(tmp_path) == ["ds"]  # no temp folder left beside it


def test_round_trip_of_an_empty_dataset(tmp_path: Path) -> None:
    back = load_dataset_dir(Dataset().save(tmp_path / "ds"))
    assert back.counts() == dict.fromkeys(TABLES, 0)
    _assert_same_tables(Dataset(), back)


def test_saving_a_loaded_dataset_again_copies_it(tmp_path: Path) -> None:
    first = load_dataset_dir(_full().save(tmp_path / "a"))
    second = load_dataset_dir(first.save(tmp_path / "b"))
    _assert_same_tables(first, second)
    assert second.fingerprint() == first.fingerprint()


def test_prefkit_save_canonical(tmp_path: Path) -> None:
    ds = _full()
    out = prefkit.save(ds, tmp_path / "ds")
    assert load_dataset_dir(out).fingerprint() == ds.fingerprint()


def test_manifest_contents(tmp_path: Path) -> None:
    ds = _full()
    out = ds.save(tmp_path / "ds")
    body = json.loads((out / MANIFEST).read_text())
    assert body["schema_version"] == SCHEMA_VERSION
    assert body["counts"] == {
        "prompts": 2,
        "responses": 4,
        "judgments": 2,
        "rankings": 1,
        "annotators": 1,
    }
    assert body["fingerprint"] == ds.fingerprint()
    assert body["table_fingerprints"] == ds.table_fingerprints()
    assert body["lineage"] == [{"step": "load", "params": {"x": 1}}]
    assert body["planted"] == {"theta": [0.1, 0.2]}
    assert body["prefkit_version"] == prefkit.__version__
    assert set(body["kinds"]) >= {
        "pairwise",
        "ties",
        "rankings",
        "scores",
        "attributes",
        "annotators",
    }
    assert read_manifest(out) == body


def test_tables_stay_on_disk_until_used(tmp_path: Path) -> None:
    back = load_dataset_dir(_full().save(tmp_path / "ds"))
    # Counts and fingerprints run on the Parquet files; reading a table still works.
    assert back.counts()["responses"] == 4
    assert back.responses.num_rows == 4


# --- sharding -----------------------------------------------------------------------------------
def _chunk(i: int, **meta: Any) -> dict[str, pa.Table]:
    pid = f"p{i}"
    return {
        "prompts": _table(
            "prompts", [{"prompt_id": pid, "messages": messages(("user", f"Q{i}")), **meta}]
        ),
        "responses": _table(
            "responses",
            [
                {
                    "response_id": f"r{i}a",
                    "prompt_id": pid,
                    "messages": messages(("assistant", "x")),
                },
                {
                    "response_id": f"r{i}b",
                    "prompt_id": pid,
                    "messages": messages(("assistant", "y")),
                },
            ],
        ),
        "judgments": _table(
            "judgments",
            [
                {
                    "judgment_id": f"f:{i}",
                    "prompt_id": pid,
                    "a": f"r{i}a",
                    "b": f"r{i}b",
                    "outcome": 1,
                    **meta,
                }
            ],
        ),
    }


def _shard_chunks() -> list[dict[str, pa.Table]]:
    # Different meta columns per chunk, one clashing in type ("n": int, then str).
    return [
        _chunk(0, lang="en"),
        _chunk(1, split="train"),
        _chunk(2, lang="de", n=3),
        _chunk(3, n="x"),
    ]


def _in_memory(chunks: list[dict[str, pa.Table]]) -> Dataset:
    return Dataset({name: concat(name, [c[name] for c in chunks if name in c]) for name in TABLES})


def test_writer_with_changing_meta_columns_writes_shards(tmp_path: Path) -> None:
    chunks = _shard_chunks()
    ds = write_chunks(iter(chunks), tmp_path / "ds")
    shards = sorted(os.listdir(tmp_path / "ds" / "prompts"))
    assert len(shards) > 1 and all(s.endswith(".parquet") for s in shards)
    assert _listing(tmp_path) == ["ds"]
    expected = _in_memory(chunks)
    assert ds.counts() == expected.counts()
    for name in TABLES:
        key = [(ID_COLUMN[name], "ascending")]
        got, want = ds.table(name).sort_by(key), expected.table(name).sort_by(key)
        assert got.schema == want.schema, name
        assert got.to_pylist() == want.to_pylist(), name
    # The fingerprint ignores how the rows are split into files.
    assert ds.fingerprint() == expected.fingerprint()
    assert prefkit.load(tmp_path / "ds").fingerprint() == expected.fingerprint()


def test_sharded_dataset_round_trips_through_save(tmp_path: Path) -> None:
    sharded = write_chunks(iter(_shard_chunks()), tmp_path / "a")
    copy = load_dataset_dir(sharded.save(tmp_path / "b"))
    assert (tmp_path / "b" / "prompts").is_dir()
    assert copy.fingerprint() == sharded.fingerprint()
    _assert_same_tables(sharded, copy)


def test_writer_with_one_schema_writes_single_files(tmp_path: Path) -> None:
    ds = write_chunks(iter([_chunk(0), _chunk(1), _chunk(2)]), tmp_path / "ds")
    listing = _listing(tmp_path / "ds")
    assert listing == sorted([MANIFEST, *(f"{n}.parquet" for n in TABLES)])
    assert ds.counts() == {
        "prompts": 3,
        "responses": 6,
        "judgments": 3,
        "rankings": 0,
        "annotators": 0,
    }


def test_writer_deduplicates_content_tables_across_chunks(tmp_path: Path) -> None:
    again = _chunk(0)
    again["judgments"] = _table(
        "judgments",
        [{"judgment_id": "f:9", "prompt_id": "p0", "a": "r0b", "b": "r0a", "outcome": -1}],
    )
    ds = write_chunks(iter([_chunk(0), again]), tmp_path / "ds")
    assert ds.counts() == {
        "prompts": 1,
        "responses": 2,
        "judgments": 2,
        "rankings": 0,
        "annotators": 0,
    }


def test_writer_records_the_manifest(tmp_path: Path) -> None:
    m = Manifest(lineage=[{"step": "load"}], source={"path": "in.jsonl"})
    ds = write_chunks(iter([_chunk(0)]), tmp_path / "ds", manifest=m)
    body = read_manifest(tmp_path / "ds")
    assert body["lineage"] == [{"step": "load"}]
    assert body["source"] == {"path": "in.jsonl"}
    assert body["fingerprint"] == ds.fingerprint()
    assert body["counts"]["judgments"] == 1


# --- overwriting and atomicity ------------------------------------------------------------------
def test_save_refuses_an_existing_path(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    _full().save(target)
    before = (target / MANIFEST).read_bytes()
    with pytest.raises(PrefkitError, match="already exists") as err:
        Dataset().save(target)
    assert str(target) in str(err.value)
    assert (target / MANIFEST).read_bytes() == before
    assert _listing(tmp_path) == ["ds"]


def test_save_refuses_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    target.write_text("keep me")
    with pytest.raises(PrefkitError, match="already exists"):
        Dataset().save(target)
    assert target.read_text() == "keep me"


def test_save_overwrite_replaces(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    _full().save(target)
    small = Dataset(
        {"prompts": _table("prompts", [{"prompt_id": "only", "messages": messages(("user", "x"))}])}
    )
    small.save(target, overwrite=True)
    back = load_dataset_dir(target)
    assert back.counts()["prompts"] == 1
    assert back.fingerprint() == small.fingerprint()
    assert _listing(tmp_path) == ["ds"]  # the old copy is gone, no temp folder left


def test_save_overwrite_onto_itself(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    loaded = load_dataset_dir(_full().save(target))
    fp = loaded.fingerprint()
    loaded.save(target, overwrite=True)
    assert load_dataset_dir(target).fingerprint() == fp
    assert _listing(tmp_path) == ["ds"]


def test_crash_inside_write_chunks_leaves_nothing(tmp_path: Path) -> None:
    def chunks() -> Iterator[dict[str, pa.Table]]:
        yield _chunk(0, lang="en")
        yield _chunk(1, split="x")  # a second shard is already open
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_chunks(chunks(), tmp_path / "ds")
    assert _listing(tmp_path) == []


def test_crash_while_overwriting_keeps_the_old_dataset(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    old = _full()
    old.save(target)

    def chunks() -> Iterator[dict[str, pa.Table]]:
        yield _chunk(0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_chunks(chunks(), target, overwrite=True)
    assert _listing(tmp_path) == ["ds"]
    assert load_dataset_dir(target).fingerprint() == old.fingerprint()


def test_crash_while_finishing_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kw: Any) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(store, "_write_manifest", fail)
    with pytest.raises(OSError, match="no space"):
        write_chunks(iter([_chunk(0)]), tmp_path / "ds")
    assert _listing(tmp_path) == []


def test_crash_inside_save_leaves_nothing(tmp_path: Path) -> None:
    # A dataset whose tables point at Parquet files that vanished: copying them fails.
    gone = Dataset({"prompts": [tmp_path / "gone-1.parquet", tmp_path / "gone-2.parquet"]})
    with pytest.raises(FileNotFoundError):
        gone.save(tmp_path / "ds")
    assert _listing(tmp_path) == []


def test_writer_refuses_an_existing_path_before_writing(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    with pytest.raises(PrefkitError, match="already exists"):
        DatasetWriter(tmp_path / "ds")
    assert _listing(tmp_path) == ["ds"]
    assert _listing(tmp_path / "ds") == []


def test_writer_overwrite_replaces(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    _full().save(target)
    ds = write_chunks(iter([_chunk(0)]), target, overwrite=True)
    assert ds.counts()["prompts"] == 1
    assert _listing(tmp_path) == ["ds"]


# --- reading bad folders ------------------------------------------------------------------------
def _edit_manifest(folder: Path, **changes: Any) -> None:
    body = json.loads((folder / MANIFEST).read_text())
    body.update(changes)
    (folder / MANIFEST).write_text(json.dumps(body))


def test_future_schema_version_is_refused_with_the_path(tmp_path: Path) -> None:
    target = Dataset().save(tmp_path / "ds")
    _edit_manifest(target, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(PrefkitError, match="schema_version") as err:
        prefkit.load(target)
    assert str(target) in str(err.value)


@pytest.mark.parametrize("version", [None, "1", 1.5])
def test_malformed_schema_version_is_refused(tmp_path: Path, version: Any) -> None:
    target = Dataset().save(tmp_path / "ds")
    _edit_manifest(target, schema_version=version)
    with pytest.raises(PrefkitError, match="schema_version"):
        load_dataset_dir(target)


def test_malformed_manifest_json_is_refused_with_the_path(tmp_path: Path) -> None:
    target = Dataset().save(tmp_path / "ds")
    (target / MANIFEST).write_text('{"format": "prefkit-dataset", ')
    with pytest.raises(PrefkitError, match="malformed JSON") as err:
        load_dataset_dir(target)
    assert str(target) in str(err.value)


def test_foreign_manifest_is_refused(tmp_path: Path) -> None:
    target = Dataset().save(tmp_path / "ds")
    _edit_manifest(target, format="something-else")
    with pytest.raises(PrefkitError, match="format") as err:
        load_dataset_dir(target)
    assert str(target) in str(err.value)


def test_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nope").mkdir()
    assert not is_dataset_dir(tmp_path / "nope")
    with pytest.raises(PrefkitError, match="not a prefkit dataset"):
        load_dataset_dir(tmp_path / "nope")


def test_missing_table_file_is_refused_with_table_name(tmp_path: Path) -> None:
    target = _full().save(tmp_path / "ds")
    (target / "rankings.parquet").unlink()
    with pytest.raises(PrefkitError, match="'rankings'") as err:
        load_dataset_dir(target)
    assert str(target) in str(err.value)


def test_dedup_keeps_first_occurrences_in_order_across_shards(tmp_path: Path) -> None:
    # Three chunks; the second has an extra meta column, so the prompts land in two
    # shard files. "b" repeats in both shards, "a" within the first: first copies win.
    def prompts(ids: list[str], **meta: list[Any]) -> pa.Table:
        cols = {
            "prompt_id": ids,
            "messages": [[{"role": "user", "content": i}] for i in ids],
            **meta,
        }
        return pa.table(cols)

    chunks = [
        {"prompts": prompts(["a", "b", "a"])},
        {"prompts": prompts(["c", "b", "d"], lang=["en", "fr", "de"])},
        {"prompts": prompts(["e", "d"], lang=["it", "xx"])},
    ]
    ds = write_chunks(iter(chunks), tmp_path / "ds")
    got = ds.prompts
    assert got.column("prompt_id").to_pylist() == ["a", "b", "c", "d", "e"]
    assert got.column("lang").to_pylist() == [None, None, "en", "de", "it"]
    assert read_manifest(tmp_path / "ds")["fingerprint"] == ds.fingerprint()
