"""`summarize`: counts, outcome mix, judges per pair, sources, rankings, scores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from builders import build
from prefkit import Dataset, Manifest
from prefkit.info import TOP, Info, summarize
from prefkit.io.store import load_dataset_dir
from prefkit.schema import TABLES, messages

PROMPTS = [
    {"prompt_id": "p1", "messages": messages(("user", "Q1"))},
    {"prompt_id": "p2", "messages": messages(("user", "Q2"))},
]
RESPONSES = [
    {
        "response_id": "r1",
        "prompt_id": "p1",
        "source": "gpt",
        "score": 1.0,
        "attributes": [("h", 2.0), ("c", 1.0)],
    },
    {
        "response_id": "r2",
        "prompt_id": "p1",
        "source": "llama",
        "score": 3.0,
        "attributes": [("h", 4.0)],
    },
    {"response_id": "r3", "prompt_id": "p1", "source": "gpt"},
    {"response_id": "r4", "prompt_id": "p2", "source": "gpt", "score": 5.0},
    {"response_id": "r5", "prompt_id": "p2"},
]
JUDGMENTS = [
    {
        "judgment_id": "j1",
        "prompt_id": "p1",
        "a": "r1",
        "b": "r2",
        "outcome": 1,
        "annotator_id": "u1",
        "annotator_kind": "human",
    },
    {
        "judgment_id": "j2",
        "prompt_id": "p1",
        "a": "r2",
        "b": "r1",
        "outcome": 1,
        "annotator_id": "u2",
        "annotator_kind": "human",
    },
    {
        "judgment_id": "j3",
        "prompt_id": "p1",
        "a": "r1",
        "b": "r3",
        "outcome": -1,
        "annotator_kind": "ai",
    },
    {
        "judgment_id": "j4",
        "prompt_id": "p1",
        "a": "r2",
        "b": "r3",
        "outcome": 0,
        "tie_kind": "good",
        "annotator_id": "u1",
    },
    {"judgment_id": "j5", "prompt_id": "p1", "a": "r3", "b": "r2", "outcome": 0, "tie_kind": "bad"},
    {"judgment_id": "j6", "prompt_id": "p2", "a": "r4", "b": "r5", "outcome": 0},
]
RANKINGS = [
    {"ranking_id": "k1", "prompt_id": "p1", "tiers": [["r1"], ["r2", "r3"]]},
    {"ranking_id": "k2", "prompt_id": "p2", "tiers": [["r4"], ["r5"]]},
]
ANNOTATORS = [{"annotator_id": "u1", "group": "experts"}]


@pytest.fixture
def ds() -> Dataset:
    return build(
        Manifest(
            lineage=[{"step": "load"}, {"step": "dedup"}],
            planted={"theta": [1.0], "abilities": [0.5]},
            quarantine={"read": 7, "kept": 6, "quarantined": 1},
            source={"path": "in.jsonl", "format": "hh"},
        ),
        prompts=PROMPTS,
        responses=RESPONSES,
        judgments=JUDGMENTS,
        rankings=RANKINGS,
        annotators=ANNOTATORS,
    )


def test_counts_kinds_and_fingerprint(ds: Dataset) -> None:
    info = summarize(ds)
    assert isinstance(info, Info)
    assert info.counts == {
        "prompts": len(PROMPTS),
        "responses": len(RESPONSES),
        "judgments": len(JUDGMENTS),
        "rankings": len(RANKINGS),
        "annotators": len(ANNOTATORS),
    }
    assert info.kinds == ds.kinds()
    assert info.fingerprint == ds.fingerprint()


def test_outcome_mix(ds: Dataset) -> None:
    outcomes = summarize(ds).outcomes
    # By plain Python over the input.
    expected = {
        "a_wins": sum(j["outcome"] > 0 for j in JUDGMENTS),
        "b_wins": sum(j["outcome"] < 0 for j in JUDGMENTS),
        "tie_good": sum(j["outcome"] == 0 and j.get("tie_kind") == "good" for j in JUDGMENTS),
        "tie_bad": sum(j["outcome"] == 0 and j.get("tie_kind") == "bad" for j in JUDGMENTS),
        "tie": sum(j["outcome"] == 0 and j.get("tie_kind") is None for j in JUDGMENTS),
    }
    assert outcomes == expected == {"a_wins": 2, "b_wins": 1, "tie_good": 1, "tie_bad": 1, "tie": 1}
    assert sum(outcomes.values()) == len(JUDGMENTS)


def test_judges_per_pair_count_both_orders_as_one_pair(ds: Dataset) -> None:
    per_pair = Counter((j["prompt_id"], *sorted((j["a"], j["b"]))) for j in JUDGMENTS)
    info = summarize(ds)
    assert info.judges_per_pair == {
        "pairs": len(per_pair),
        "mean": round(len(JUDGMENTS) / len(per_pair), 3),
        "max": max(per_pair.values()),
    }
    assert info.judges_per_pair == {"pairs": 4, "mean": 1.5, "max": 2}


def test_annotators(ds: Dataset) -> None:
    a = summarize(ds).annotators
    assert a["distinct_in_judgments"] == 2
    assert a["in_table"] == 1
    assert a["judgments_with_annotator"] == 3
    assert a["kinds"] == {"human": 2, "ai": 1, "unknown": 3}


def test_sources(ds: Dataset) -> None:
    info = summarize(ds)
    assert info.n_sources == 2
    assert info.sources == {"gpt": 3, "llama": 1}


def test_rankings(ds: Dataset) -> None:
    assert summarize(ds).rankings == {
        "mean_responses": 2.5,
        "mean_tiers": 2.0,
        "share_with_ties": 0.5,
    }


def test_scores_and_attributes(ds: Dataset) -> None:
    info = summarize(ds)
    scores = [r["score"] for r in RESPONSES if r.get("score") is not None]
    assert info.scores == {
        "n": len(scores),
        "min": min(scores),
        "max": max(scores),
        "mean": round(sum(scores) / len(scores), 4),
    }
    assert info.attributes == {
        "c": {"n": 1, "min": 1.0, "max": 1.0, "mean": 1.0},
        "h": {"n": 2, "min": 2.0, "max": 4.0, "mean": 3.0},
    }


def test_origin(ds: Dataset) -> None:
    origin = summarize(ds).origin
    assert origin["source"] == {"path": "in.jsonl", "format": "hh"}
    assert origin["lineage"] == ["load", "dedup"]
    assert origin["quarantine"] == {"read": 7, "kept": 6, "quarantined": 1}
    assert origin["planted"] == ["abilities", "theta"]


def test_sources_are_capped_at_top() -> None:
    n = TOP + 5
    responses = [
        {"response_id": f"r{i}", "prompt_id": "p1", "source": f"m{i:02d}"} for i in range(n)
    ] + [{"response_id": "extra", "prompt_id": "p1", "source": "m07"}]
    info = summarize(build(prompts=PROMPTS[:1], responses=responses))
    assert info.n_sources == n
    assert len(info.sources) == TOP
    assert next(iter(info.sources.items())) == ("m07", 2)


def test_empty_dataset() -> None:
    info = summarize(Dataset())
    assert info.counts == dict.fromkeys(TABLES, 0)
    assert info.kinds == []
    assert info.outcomes == {} and info.judges_per_pair == {} and info.annotators == {}
    assert info.rankings == {} and info.scores == {} and info.attributes == {}
    assert info.n_sources == 0 and info.sources == {}
    assert info.origin == {"source": None, "lineage": [], "quarantine": None, "planted": []}


def test_summary_of_a_saved_dataset_matches(ds: Dataset, tmp_path: Path) -> None:
    on_disk = load_dataset_dir(ds.save(tmp_path / "ds"))
    assert summarize(on_disk).to_dict() == summarize(ds).to_dict()
