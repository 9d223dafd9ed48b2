"""The ``imagereward`` format: ranked text-to-image generations with ties."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from prefkit.dataset import Dataset
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, load, save
from prefkit.io.formats.base import Sample
from prefkit.io.formats.imagereward import mime_of, sniff

TEST_JSON = "imagereward_test/test.json"


def raw_items(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def raw_tiers(item: dict[str, Any]) -> list[list[str]]:
    """Expected tiers (image paths) of one raw item: equal ranks tie, lower is better."""
    values = sorted(set(item["ranking"]))
    return [
        sorted(g for g, r in zip(item["generations"], item["ranking"], strict=True) if r == v)
        for v in values
    ]


def tiers_by_item(ds: Dataset) -> dict[str, list[list[str]]]:
    uri = {r["response_id"]: r["media"][0]["uri"] for r in ds.responses.to_pylist()}
    return {
        k["item_id"]: [sorted(uri[i] for i in tier) for tier in k["tiers"]]
        for k in ds.rankings.to_pylist()
    }


def content(ds: Dataset) -> list[tuple]:
    """Each ranking as (prompt text, tiers of image paths), independent of ids and order."""
    prompts = {p["prompt_id"]: p["messages"][0]["content"] for p in ds.prompts.to_pylist()}
    uri = {r["response_id"]: r["media"][0]["uri"] for r in ds.responses.to_pylist()}
    return sorted(
        (prompts[k["prompt_id"]], tuple(tuple(sorted(uri[i] for i in t)) for t in k["tiers"]))
        for k in ds.rankings.to_pylist()
    )


def item(i: int, n: int = 3, ranking: list[Any] | None = None) -> dict[str, Any]:
    return {
        "id": f"item-{i}",
        "prompt": f"a picture of thing {i}",
        "generations": [f"part/{i}/img{j}.png" for j in range(n)],
        "ranking": ranking if ranking is not None else list(range(1, n + 1)),
    }


def write_json(path: Path, items: list[Any]) -> Path:
    path.write_text(json.dumps(items, indent=2), encoding="utf-8")
    return path


# --- real data -----------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_counts_match_raw_file(shared_data: Path) -> None:
    path = shared_data / TEST_JSON
    items = raw_items(path)
    sizes = Counter(len(it["generations"]) for it in items)
    ties = sum(len(set(it["ranking"])) < len(it["ranking"]) for it in items)
    # The numbers SOURCE.md states, recomputed from the file.
    assert len(items) == 466
    assert sum(sizes.values()) == 466 and sum(k * v for k, v in sizes.items()) == 2720
    assert sizes == {4: 194, 5: 2, 6: 45, 7: 159, 8: 43, 9: 23}
    assert ties == 349

    ds = load(path)
    assert ds.manifest.source["format"] == "imagereward"
    counts = ds.counts()
    assert counts["rankings"] == len(items)
    assert counts["prompts"] == len({it["prompt"] for it in items})  # 3 prompt texts repeat
    assert counts["responses"] == len(
        {(it["prompt"], g) for it in items for g in it["generations"]}
    )
    assert counts["judgments"] == 0
    got_sizes = Counter(sum(len(t) for t in k["tiers"]) for k in ds.rankings.to_pylist())
    assert got_sizes == sizes
    got_ties = sum(any(len(t) > 1 for t in k["tiers"]) for k in ds.rankings.to_pylist())
    assert got_ties == ties


@pytest.mark.shared_data
def test_tiers_follow_raw_ranks(shared_data: Path) -> None:
    path = shared_data / TEST_JSON
    items = raw_items(path)
    ds = load(path, format="imagereward")
    assert tiers_by_item(ds) == {it["id"]: raw_tiers(it) for it in items}


@pytest.mark.shared_data
def test_known_record(shared_data: Path) -> None:
    ds = load(shared_data / TEST_JSON)
    # 005658-0040: ranking [1, 2, 5, 3], not dense: image 3 (rank 3) beats image 2 (rank 5).
    g = [
        "part-005658/images/0040/45b0de4d-5a57-4ae3-8810-ffbd328204fd.webp",
        "part-005658/images/0040/7d4cc31d-2451-4a9d-99e6-3bdc157aaf2d.webp",
        "part-005658/images/0040/f24a2c01-b1ed-4d4f-ba23-5ba5755b1ce7.webp",
        "part-005658/images/0040/e77d096b-cc89-49cc-ae9a-39679ae23aeb.webp",
    ]
    assert tiers_by_item(ds)["005658-0040"] == [[g[0]], [g[1]], [g[3]], [g[2]]]
    responses = {r["image_path"]: r for r in ds.responses.to_pylist()}
    r = responses[g[0]]
    assert r["messages"] == [] and r["source"] is None
    assert r["media"] == [{"uri": g[0], "mime": "image/webp"}]
    prompts = {p["item_id"]: p for p in ds.prompts.to_pylist()}
    assert prompts["005658-0040"]["messages"] == [
        {"role": "user", "content": raw_items(shared_data / TEST_JSON)[0]["prompt"]}
    ]


@pytest.mark.shared_data
@pytest.mark.parametrize("suffix", ["json", "jsonl", "parquet", "csv"])
def test_round_trip(shared_data: Path, tmp_path: Path, suffix: str) -> None:
    ds = load(shared_data / TEST_JSON)
    out = save(ds, tmp_path / f"out.{suffix}", "imagereward")
    assert detect_format(out).name == "imagereward"
    back = load(out)
    assert content(back) == content(ds)
    assert tiers_by_item(back) == tiers_by_item(ds)
    assert back.counts() == ds.counts()


@pytest.mark.shared_data
def test_written_ranks_are_dense_tier_numbers(shared_data: Path, tmp_path: Path) -> None:
    ds = load(shared_data / TEST_JSON)
    out = raw_items(save(ds, tmp_path / "out.json", "imagereward"))
    by_id = {it["id"]: it for it in out}
    assert by_id["005658-0040"]["ranking"] == [1, 2, 3, 4]
    for it in out:
        assert it["ranking"] == sorted(it["ranking"])
        assert sorted(set(it["ranking"])) == list(range(1, max(it["ranking"]) + 1))


# --- small hand-made inputs ------------------------------------------------------------------------
def test_ties_and_sparse_ranks(tmp_path: Path) -> None:
    path = write_json(tmp_path / "t.json", [item(0, 4, [3, 1, 3, 7])])
    ds = load(path)
    assert tiers_by_item(ds) == {
        "item-0": [["part/0/img1.png"], ["part/0/img0.png", "part/0/img2.png"], ["part/0/img3.png"]]
    }
    assert set(ds.responses.column("media").to_pylist()[0][0].values()) == {
        "part/0/img0.png",
        "image/png",
    }


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({**item(1), "ranking": [1, 2]}, "ranking"),
        ({**item(1), "ranking": [1, "two", 3]}, "ranking"),
        ({**item(1), "generations": []}, "generations"),
        ({**item(1), "generations": ["a.png", "a.png", "b.png"]}, "generations"),
        ({**item(1), "prompt": None}, "prompt"),
        ({k: v for k, v in item(1).items() if k != "id"}, "id"),
    ],
)
def test_bad_item_names_file_item_field(tmp_path: Path, bad: dict[str, Any], field: str) -> None:
    path = write_json(tmp_path / "bad.json", [item(0), bad, item(2)])
    with pytest.raises(InputError) as info:
        load(path, format="imagereward")
    err = info.value
    assert err.file == str(path) and err.where == "item 2" and err.field == field
    assert str(path) in str(err) and "item 2" in str(err) and repr(field) in str(err)

    q = tmp_path / "q.jsonl"
    ds = load(path, format="imagereward", on_error="quarantine", quarantine=q)
    summary = ds.manifest.quarantine
    assert summary["read"] == 3 and summary["kept"] == 2 and summary["quarantined"] == 1
    assert summary["read"] == summary["kept"] + summary["quarantined"]
    assert json.loads(q.read_text())["where"] == "item 2"
    assert ds.counts()["rankings"] == 2 and ds.counts()["responses"] == 6


def test_length_mismatch_message(tmp_path: Path) -> None:
    path = write_json(tmp_path / "bad.json", [{**item(0, 4), "ranking": [1, 2, 3]}])
    with pytest.raises(
        InputError, match=r"item 1, field 'ranking': has 3 values for 4 generations"
    ):
        load(path, format="imagereward")


def test_writer_refuses_what_the_layout_cannot_hold(tmp_path: Path) -> None:
    judgments = pa.table(
        {
            "judgment_id": ["j"],
            "prompt_id": ["p"],
            "a": ["x"],
            "b": ["y"],
            "outcome": pa.array([1], pa.int8()),
        }
    )
    with pytest.raises(PrefkitError, match="judgments"):
        save(Dataset({"judgments": judgments}), tmp_path / "o.json", "imagereward")

    ds = load(write_json(tmp_path / "t.json", [item(0)]))
    unranked = ds.responses.slice(0, 1).to_pylist()[0]
    extra = pa.Table.from_pylist(
        [{**unranked, "response_id": "r_extra"}], schema=ds.responses.schema
    )
    more = ds.with_tables(responses=pa.concat_tables([ds.responses, extra]))
    with pytest.raises(PrefkitError, match="1 responses are in no ranking"):
        save(more, tmp_path / "o.json", "imagereward")

    text = ds.with_tables(
        responses=ds.responses.set_column(
            ds.responses.schema.get_field_index("media"),
            "media",
            pa.nulls(ds.responses.num_rows, ds.responses.schema.field("media").type),
        )
    )
    with pytest.raises(PrefkitError, match="exactly one image"):
        save(text, tmp_path / "o.json", "imagereward")
    assert not (tmp_path / "o.json").exists()


def test_mime_and_sniff() -> None:
    assert mime_of("a/b.WEBP") == "image/webp"
    assert mime_of("a/b.jpg") == "image/jpeg"
    assert mime_of("a/b.unknown-ext") is None
    assert sniff(Sample(Path("t.json"), [item(0), item(1)], "json")) >= 0.9
    assert sniff(Sample(Path("t.json"), [{"prompt": "a", "chosen": "b"}], "json")) == 0
    assert sniff(Sample(Path("t.json"), [], None)) == 0
    assert sniff(Sample(Path("t.json"), ["x", 3, None], "json")) == 0
