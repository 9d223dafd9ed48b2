"""The ``oasst`` format: OpenAssistant message trees and the flat OASST1 message table."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefkit.dataset import Dataset
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, load, save
from prefkit.io.formats.base import Sample
from prefkit.io.formats.oasst import sniff

TREES = "oasst_en100_trees/en_100_tree.jsonl"
ROLE = {"prompter": "user", "assistant": "assistant"}


# --- independent reading of the raw file -----------------------------------------------------
def raw_trees(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def walk(msg: dict[str, Any], path: tuple = ()):
    """Yield (message, turns up to and including it) in preorder."""
    turns = (*path, (ROLE[msg["role"]], msg["text"]))
    yield msg, turns
    for reply in msg["replies"]:
        yield from walk(reply, turns)


def raw_groups(trees: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
    """parent message id -> expected tiers (texts) for groups with >= 2 ranked replies."""
    out = {}
    for tree in trees:
        for msg, _ in walk(tree["prompt"]):
            ranked = [r for r in msg["replies"] if r.get("rank") is not None]
            if len(ranked) < 2:
                continue
            by_rank: dict[int, list[str]] = {}
            for r in ranked:
                by_rank.setdefault(r["rank"], []).append(r["text"])
            out[msg["message_id"]] = [sorted(by_rank[k]) for k in sorted(by_rank)]
    return out


def tiers_by_text(ds: Dataset) -> dict[str, list[list[str]]]:
    text = {r["response_id"]: r["messages"][0]["content"] for r in ds.responses.to_pylist()}
    return {
        k["parent_id"]: [sorted(text[i] for i in tier) for tier in k["tiers"]]
        for k in ds.rankings.to_pylist()
    }


def content(ds: Dataset) -> tuple[list, list, list]:
    """Prompts, responses and rankings as plain text, independent of ids and order."""
    prompts = {
        p["prompt_id"]: tuple((m["role"], m["content"]) for m in p["messages"])
        for p in ds.prompts.to_pylist()
    }
    resp = {
        r["response_id"]: (
            prompts[r["prompt_id"]],
            tuple((m["role"], m["content"]) for m in r["messages"]),
            r["source"],
        )
        for r in ds.responses.to_pylist()
    }
    rankings = sorted(
        (prompts[k["prompt_id"]], tuple(tuple(sorted(resp[i][1:] for i in t)) for t in k["tiers"]))
        for k in ds.rankings.to_pylist()
    )
    return sorted(prompts.values()), sorted(resp.values()), rankings


def message(mid: str, text: str, role: str, replies=(), **extra: Any) -> dict[str, Any]:
    return {
        "message_id": mid,
        "text": text,
        "role": role,
        "lang": "en",
        "deleted": False,
        "synthetic": False,
        "replies": list(replies),
        **extra,
    }


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def small_tree(tid: str = "t1") -> dict[str, Any]:
    replies = [
        message("a1", "answer one", "assistant", rank=1, parent_id="q"),
        message("a2", "answer two", "assistant", rank=0, parent_id="q", emojis={"+1": 2}),
        message("a3", "answer three", "assistant", rank=1, parent_id="q"),
        message("a4", "unranked answer", "assistant", parent_id="q"),
    ]
    replies[0]["replies"] = [message("f1", "follow-up", "prompter", parent_id="a1")]
    return {
        "message_tree_id": tid,
        "tree_state": "ready_for_export",
        "prompt": message("q", "question", "prompter", replies),
    }


# --- real data -----------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_counts_match_raw_file(shared_data: Path) -> None:
    path = shared_data / TREES
    trees = raw_trees(path)
    msgs = [(m, turns) for t in trees for m, turns in walk(t["prompt"])]
    # The numbers SOURCE.md states, recomputed from the file.
    assert len(trees) == 100
    assert len(msgs) == 1167
    assert sum(len(m["replies"]) >= 2 for m, _ in msgs) == 260
    assert sum(m.get("rank") is not None for m, _ in msgs) == 641
    groups = raw_groups(trees)
    expected_prompts = {turns for m, turns in msgs if m["replies"]}
    expected_prompts |= {((ROLE[t["prompt"]["role"]], t["prompt"]["text"]),) for t in trees}
    expected_responses = {
        turns for t in trees for m, turns in walk(t["prompt"]) if m is not t["prompt"]
    }

    ds = load(path)
    assert ds.manifest.source["format"] == "oasst"
    assert ds.counts()["rankings"] == len(groups) == 212
    assert ds.counts()["prompts"] == len(expected_prompts)
    assert ds.counts()["responses"] == len(expected_responses) == 1167 - 100
    assert ds.counts()["judgments"] == 0
    assert ds.rankings.column("annotator_id").null_count == 212


@pytest.mark.shared_data
def test_tiers_follow_raw_ranks(shared_data: Path) -> None:
    path = shared_data / TREES
    ds = load(path, format="oasst")
    assert tiers_by_text(ds) == raw_groups(raw_trees(path))


@pytest.mark.shared_data
def test_known_record_and_multi_turn_prompts(shared_data: Path) -> None:
    ds = load(shared_data / TREES)
    root = "ea201f57-d24a-40f3-a0a7-ad15b893e538"
    ranking = next(k for k in ds.rankings.to_pylist() if k["parent_id"] == root)
    assert ranking["message_tree_id"] == root
    text = {r["response_id"]: r for r in ds.responses.to_pylist()}
    best = text[ranking["tiers"][0][0]]
    assert best["messages"][0]["content"].startswith(
        "Your eyes are not designed to stare at one thing"
    )
    assert best["message_id"] == "2318748d-8f4c-48a0-a828-8eff5a7b7950"
    assert best["rank"] == 0 and best["source"] is None
    assert json.loads(best["emojis"])["red_flag"] >= 1

    prompts = {p["prompt_id"]: p for p in ds.prompts.to_pylist()}
    depths = Counter(len(prompts[k["prompt_id"]]["messages"]) for k in ds.rankings.to_pylist())
    assert max(depths) >= 3 and 1 in depths
    for p in prompts.values():
        roles = [m["role"] for m in p["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)


@pytest.mark.shared_data
def test_synthetic_replies_carry_model_name(shared_data: Path) -> None:
    trees = raw_trees(shared_data / TREES)
    synthetic = sum(
        m.get("synthetic", False)
        for t in trees
        for m, _ in walk(t["prompt"])
        if m is not t["prompt"]
    )
    ds = load(shared_data / TREES)
    sources = Counter(ds.responses.column("source").to_pylist())
    assert sources["chip20b"] == synthetic > 0
    assert set(sources) == {None, "chip20b"}


@pytest.mark.shared_data
def test_unranked_replies_are_kept_outside_rankings(shared_data: Path) -> None:
    ds = load(shared_data / TREES)
    ranked = {rid for k in ds.rankings.to_pylist() for tier in k["tiers"] for rid in tier}
    rows = ds.responses.to_pylist()
    outside = [r for r in rows if r["response_id"] not in ranked]
    assert len(ranked) == 641
    assert len(outside) == len(rows) - 641
    assert all(r["rank"] is None for r in outside)
    assert any(r["messages"][0]["role"] == "user" for r in outside)  # prompter follow-ups


@pytest.mark.shared_data
@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet", "csv"])
def test_round_trip(shared_data: Path, tmp_path: Path, suffix: str) -> None:
    ds = load(shared_data / TREES)
    out = save(ds, tmp_path / f"out.{suffix}", "oasst")
    assert detect_format(out).name == "oasst"
    back = load(out)
    assert content(back) == content(ds)
    assert back.counts()["rankings"] == ds.counts()["rankings"]


@pytest.mark.shared_data
def test_flat_message_table_reads_like_trees(shared_data: Path, tmp_path: Path) -> None:
    trees = raw_trees(shared_data / TREES)
    rows = []
    for t in trees:
        tree_rows = []
        for m, _ in walk(t["prompt"]):
            row = {k: v for k, v in m.items() if k != "replies"}
            row["message_tree_id"] = t["message_tree_id"]
            row["emojis"] = json.dumps(m["emojis"]) if "emojis" in m else None
            tree_rows.append(row)
        rows.extend(reversed(tree_rows))  # children before parents: order within a tree is free
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "messages.parquet")
    write_jsonl(tmp_path / "messages.jsonl", rows)
    nested = load(shared_data / TREES)
    for name in ("messages.parquet", "messages.jsonl"):
        assert detect_format(tmp_path / name).name == "oasst"
        flat = load(tmp_path / name)
        assert content(flat) == content(nested)
        assert tiers_by_text(flat) == tiers_by_text(nested)


# --- small hand-made inputs ------------------------------------------------------------------------
def test_ties_unranked_and_follow_ups(tmp_path: Path) -> None:
    ds = load(write_jsonl(tmp_path / "t.jsonl", [small_tree()]), format="oasst")
    assert tiers_by_text(ds) == {"q": [["answer two"], ["answer one", "answer three"]]}
    resp = {r["messages"][0]["content"]: r for r in ds.responses.to_pylist()}
    assert set(resp) == {"answer one", "answer two", "answer three", "unranked answer", "follow-up"}
    assert resp["follow-up"]["messages"][0]["role"] == "user"
    assert json.loads(resp["answer two"]["emojis"]) == {"+1": 2}
    prompts = {p["message_id"]: p for p in ds.prompts.to_pylist()}
    assert [m["content"] for m in prompts["a1"]["messages"]] == ["question", "answer one"]


def test_deleted_keep_and_skip(tmp_path: Path) -> None:
    tree = small_tree()
    tree["prompt"]["replies"][0]["deleted"] = True  # "answer one", with its follow-up
    path = write_jsonl(tmp_path / "t.jsonl", [tree])
    kept = load(path, format="oasst")
    assert tiers_by_text(kept)["q"] == [["answer two"], ["answer one", "answer three"]]
    deleted = {r["messages"][0]["content"]: r["deleted"] for r in kept.responses.to_pylist()}
    assert deleted["answer one"] is True and deleted["answer two"] is False
    skipped = load(path, format="oasst", deleted="skip")
    assert tiers_by_text(skipped)["q"] == [["answer two"], ["answer three"]]
    texts = {r["messages"][0]["content"] for r in skipped.responses.to_pylist()}
    assert texts == {"answer two", "answer three", "unranked answer"}
    with pytest.raises(PrefkitError, match="deleted"):
        load(path, format="oasst", deleted="drop")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t["prompt"]["replies"][1].pop("text"), "prompt.replies[1].text"),
        (lambda t: t["prompt"]["replies"][0].update(rank="best"), "prompt.replies[0].rank"),
        (
            lambda t: t["prompt"]["replies"][0]["replies"][0].update(role="system"),
            "prompt.replies[0].replies[0].role",
        ),
        (lambda t: t.pop("message_tree_id"), "message_tree_id"),
        (lambda t: t["prompt"].update(replies="none"), "prompt.replies"),
    ],
)
def test_bad_tree_names_file_line_field(tmp_path: Path, mutate, field: str) -> None:
    bad = small_tree("t2")
    mutate(bad)
    path = write_jsonl(tmp_path / "bad.jsonl", [small_tree("t1"), bad, small_tree("t3")])
    with pytest.raises(InputError) as info:
        load(path, format="oasst")
    err = info.value
    assert err.file == str(path) and err.where == "line 2" and err.field == field
    assert str(path) in str(err) and "line 2" in str(err) and field in str(err)

    q = tmp_path / "q.jsonl"
    ds = load(path, format="oasst", on_error="quarantine", quarantine=q)
    summary = ds.manifest.quarantine
    assert summary["read"] == 3 and summary["kept"] == 2 and summary["quarantined"] == 1
    assert summary["read"] == summary["kept"] + summary["quarantined"]
    assert len(q.read_text().splitlines()) == 1
    # The two good trees have the same content: shared prompt and responses, two rankings.
    assert ds.counts() == {**ds.counts(), "prompts": 2, "responses": 5, "rankings": 2}


def flat_rows(tree: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m, _ in walk(tree["prompt"]):
        row = {k: v for k, v in m.items() if k not in ("replies", "emojis")}
        rows.append({"message_tree_id": tree["message_tree_id"], "parent_id": None, **row})
    return rows


def test_flat_csv_rows_and_errors(tmp_path: Path) -> None:
    rows = flat_rows(small_tree("t1")) + flat_rows(small_tree("t2"))
    fields = [
        "message_tree_id",
        "message_id",
        "parent_id",
        "text",
        "role",
        "rank",
        "lang",
        "deleted",
        "synthetic",
    ]

    def write_csv(name: str, table: list[dict[str, Any]]) -> Path:
        path = tmp_path / name
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(table)
        return path

    good = load(write_csv("good.csv", rows), format="oasst")
    assert good.counts()["rankings"] == 2
    assert tiers_by_text(good) == {"q": [["answer two"], ["answer one", "answer three"]]}

    orphan = [dict(r) for r in rows]
    orphan[2]["parent_id"] = "nowhere"  # third row of tree t1 (lines 2-7)
    with pytest.raises(InputError) as info:
        load(write_csv("orphan.csv", orphan), format="oasst")
    assert info.value.field == "parent_id" and info.value.where == "lines 2-7"
    assert "nowhere" in str(info.value) and "line 4" in str(info.value)

    split = rows[:3] + rows[6:] + rows[3:6]  # tree t1 comes back after t2
    path = write_csv("split.csv", split)
    with pytest.raises(InputError) as info:
        load(path, format="oasst")
    assert info.value.field == "message_tree_id" and "grouped" in str(info.value)
    ds = load(path, format="oasst", on_error="quarantine")
    summary = ds.manifest.quarantine
    assert summary["read"] == 3 and summary["quarantined"] == 1
    assert summary["read"] == summary["kept"] + summary["quarantined"]

    two_roots = [dict(r) for r in rows]
    two_roots[1]["parent_id"] = ""
    with pytest.raises(InputError, match="2 root messages"):
        load(write_csv("roots.csv", two_roots), format="oasst")


def test_writer_refuses_what_trees_cannot_hold(tmp_path: Path) -> None:
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
        save(Dataset({"judgments": judgments}), tmp_path / "o.jsonl", "oasst")
    prompts = pa.table(
        {
            "prompt_id": ["p"],
            "messages": pa.array(
                [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]]
            ),
        }
    )
    with pytest.raises(PrefkitError, match="system"):
        save(Dataset({"prompts": prompts}), tmp_path / "o.jsonl", "oasst")
    assert not (tmp_path / "o.jsonl").exists()
    ds = load(write_jsonl(tmp_path / "t.jsonl", [small_tree()]), format="oasst")
    with pytest.raises(PrefkitError, match="layout"):
        save(ds, tmp_path / "o.parquet", "oasst", layout="trees")


def test_writer_layouts(tmp_path: Path) -> None:
    ds = load(write_jsonl(tmp_path / "t.jsonl", [small_tree()]), format="oasst")
    out = save(ds, tmp_path / "o.jsonl", "oasst")
    trees = raw_trees(out)
    ranked = [t for t in trees if any("rank" in r for r in t["prompt"]["replies"])]
    assert len(ranked) == 1
    ranks = {r["text"]: r.get("rank") for r in ranked[0]["prompt"]["replies"]}
    assert ranks == {"answer two": 0, "answer one": 1, "answer three": 1, "unranked answer": None}
    flat = save(ds, tmp_path / "m.jsonl", "oasst", layout="messages")
    rows = raw_trees(flat)
    assert {"message_tree_id", "message_id", "parent_id", "rank"} <= rows[0].keys()
    assert content(load(flat, format="oasst")) == content(ds)


def test_sniff() -> None:
    tree = small_tree()
    assert sniff(Sample(Path("x.jsonl"), [tree], "jsonl")) >= 0.9
    assert sniff(Sample(Path("x.parquet"), flat_rows(tree), "parquet")) >= 0.9
    assert (
        sniff(Sample(Path("x.json"), [{"prompt": "a", "chosen": "b", "rejected": "c"}], "json"))
        == 0
    )
    assert sniff(Sample(Path("x.json"), [], None)) == 0
    assert sniff(Sample(Path("x.json"), [[1, 2], "text", {"prompt": None}], "json")) == 0
