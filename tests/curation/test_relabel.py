"""reward-augment and length-debias: hand-checked fixture, planted length bias, lineage."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from prefkit.curation import apply, run_step
from prefkit.dataset import Dataset
from prefkit.diagnostics.context import Context
from prefkit.errors import PrefkitError
from prefkit.schema import ids
from prefkit.synth import simulate


def _msgs(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def _fixture() -> Dataset:
    """Two prompts; p1 has r1 (score 8), r2 (score 5), r3 (no score); p2 has two score-4s."""
    prompts = pa.table(
        {"prompt_id": ["p1", "p2"], "messages": [_msgs("user", "Q1"), _msgs("user", "Q2")]}
    )
    responses = pa.table(
        {
            "response_id": ["r1", "r2", "r3", "s1", "s2"],
            "prompt_id": ["p1", "p1", "p1", "p2", "p2"],
            "messages": [_msgs("assistant", t) for t in ["A1", "A2", "A3", "B1", "B2"]],
            "score": [8.0, 5.0, None, 4.0, 4.0],
        }
    )
    judgments = pa.table(
        {
            "judgment_id": ["j1", "j2", "j3", "j4", "j5"],
            "prompt_id": ["p1", "p1", "p1", "p1", "p2"],
            "a": ["r1", "r2", "r1", "r1", "s1"],
            "b": ["r2", "r1", "r2", "r3", "s2"],
            "outcome": pa.array([1, 1, 0, 1, 1], pa.int8()),
        }
    )
    return Dataset({"prompts": prompts, "responses": responses, "judgments": judgments})


def _cond_pid(text: str, score: str) -> str:
    goal = f"Generate a response that has a score of {score}."
    return ids.prompt_id([{"role": "system", "content": goal}, *_msgs("user", text)])


def test_reward_augment_exact_output() -> None:
    ds = _fixture()
    out, outcome = run_step(ds, "reward-augment")
    # j1 (r1 8 > r2 5) and j2 (r2 5 > r1 8, a disagreeing judge) are augmented; j3 tie,
    # j4 unscored, j5 equal scores are skipped.
    assert outcome.info == {
        "judgments": 5,
        "augmented": 2,
        "skipped_tie": 1,
        "skipped_unscored": 1,
        "skipped_equal_scores": 1,
    }
    p8, p5 = _cond_pid("Q1", "8"), _cond_pid("Q1", "5")
    new_p = out.prompts.filter(pa.compute.is_in(out.prompts["prompt_id"], pa.array([p8, p5])))
    rows = {r["prompt_id"]: r for r in new_p.to_pylist()}
    assert set(rows) == {p8, p5}
    assert rows[p8]["messages"][0] == {
        "role": "system",
        "content": "Generate a response that has a score of 8.",
    }
    assert rows[p8]["messages"][1:] == _msgs("user", "Q1")
    assert rows[p8]["conditioned_on"] == "p1" and rows[p8]["target_score"] == 8.0
    assert rows[p5]["target_score"] == 5.0
    # Responses copied under each conditioned prompt with content ids.
    r = {x["response_id"]: x for x in out.responses.to_pylist()}
    r1_8 = ids.response_id(p8, _msgs("assistant", "A1"))
    r2_8 = ids.response_id(p8, _msgs("assistant", "A2"))
    r1_5 = ids.response_id(p5, _msgs("assistant", "A1"))
    r2_5 = ids.response_id(p5, _msgs("assistant", "A2"))
    for rid, orig in ((r1_8, "r1"), (r2_8, "r2"), (r1_5, "r1"), (r2_5, "r2")):
        assert r[rid]["augmented_from"] == orig
        assert r[rid]["score"] == {"r1": 8.0, "r2": 5.0}[orig]
    assert out.num_rows("responses") == 5 + 4
    new_j = {
        x["judgment_id"]: (x["prompt_id"], x["a"], x["b"], x["outcome"], x["target_score"])
        for x in out.judgments.to_pylist()
        if x["augmented_from"] is not None
    }
    assert new_j == {
        "j1:ra:chosen": (p8, r1_8, r2_8, 1, 8.0),  # goal 8: r1 (score 8) stays preferred
        "j1:ra:rejected": (p5, r1_5, r2_5, -1, 5.0),  # goal 5: reversed, r2 preferred
        "j2:ra:chosen": (p5, r2_5, r1_5, 1, 5.0),  # the judge preferred r2 (5): goal 5
        "j2:ra:rejected": (p8, r2_8, r1_8, -1, 8.0),  # goal 8: reversed, r1 preferred
    }
    assert out.num_rows("judgments") == 5 + 4  # originals kept: 2x the augmented ones
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "reward-augment"
    assert entry["added"] == {"prompts": 2, "responses": 4, "judgments": 4}
    assert entry["added_reasons"]["judgments"] == {
        "reward-augment: goal = chosen score": 2,
        "reward-augment: goal = rejected score (pair reversed)": 2,
    }
    assert entry["params"]["template"] == "Generate a response that has a score of {score}."


def test_reward_augment_paper_dataset_and_options() -> None:
    ds = _fixture()
    out = apply(ds, "reward-augment", keep_original=False, template="Target {score}/10")
    kept = set(out.judgments["judgment_id"].to_pylist())
    assert {"j1", "j2"}.isdisjoint(kept) and {"j3", "j4", "j5"} <= kept
    assert out.manifest.lineage[-1]["removed"] == {"judgments": 2}
    texts = {m[0]["content"] for m in out.prompts["messages"].to_pylist()}
    assert {"Target 8/10", "Target 5/10"} <= texts
    # Deterministic, and re-running on the output gives new, distinct conditioned rows.
    again = apply(ds, "reward-augment", keep_original=False, template="Target {score}/10")
    assert again.fingerprint() == out.fingerprint()
    twice = apply(out, "reward-augment", keep_original=False, template="Target {score}/10")
    assert len(set(twice.judgments["judgment_id"].to_pylist())) == twice.num_rows("judgments")


def test_reward_augment_strength_and_attribute() -> None:
    ds = _fixture()
    j = ds.judgments.set_column(
        ds.judgments.schema.get_field_index("strength"),
        "strength",
        pa.array([0.75, None, None, 0.5, 0.9]),
    )
    out, oc = run_step(
        ds.with_tables(judgments=j), "reward-augment", score_key="strength", precision=2
    )
    assert oc.info["augmented"] == 2  # j1 (0.75 vs 0.25) and j5 (0.9 vs 0.1); j4 has 0.5/0.5
    targets = sorted(
        out.judgments.filter(pa.compute.is_valid(out.judgments["target_score"]))[
            "target_score"
        ].to_pylist()
    )
    assert targets == [0.1, 0.25, 0.75, 0.9]
    r = ds.responses.set_column(
        ds.responses.schema.get_field_index("attributes"),
        "attributes",
        pa.array(
            [[("help", 3.0)], [("help", 1.0)], None, None, None], pa.map_(pa.string(), pa.float64())
        ),
    )
    _, oc = run_step(ds.with_tables(responses=r), "reward-augment", score_key="help")
    assert oc.info["augmented"] == 2


def test_reward_augment_bad_params() -> None:
    with pytest.raises(PrefkitError, match="template"):
        apply(_fixture(), "reward-augment", template="no placeholder")
    with pytest.raises(PrefkitError, match="precision"):
        apply(_fixture(), "reward-augment", precision="x")


def _longer_wins(ds: Dataset) -> float:
    f = Context(ds).judgment_frame()
    a, b = np.asarray(f["a_words"]), np.asarray(f["b_words"])
    o = np.asarray(f["outcome"])
    ok = (o != 0) & (a != b)
    win = np.where(o == 1, a, b)[ok]
    lose = np.where(o == 1, b, a)[ok]
    return float(np.mean(win > lose))


@pytest.fixture(scope="module")
def biased() -> Dataset:
    return simulate(n_prompts=3000, length_bias=1.0, seed=3)


def test_length_debias_downsample(biased: Dataset) -> None:
    before = _longer_wins(biased)
    assert before > 0.6
    out, oc = run_step(biased, "length-debias", seed=1)
    assert abs(_longer_wins(out) - 0.5) <= 0.02
    assert abs(oc.info["longer_wins_after"] - 0.5) <= 0.02
    removed = biased.num_rows("judgments") - out.num_rows("judgments")
    entry = out.manifest.lineage[-1]
    assert entry["removed"] == {"judgments": removed} and removed == oc.info["dropped"] > 0
    assert entry["reasons"] == {
        "judgments": {"length-debias: longer response won (downsampled)": removed}
    }
    assert oc.report is not None and oc.report.num_rows == removed
    # Only longer-wins judgments went; seeded, so reproducible.
    assert apply(biased, "length-debias", seed=1).fingerprint() == out.fingerprint()
    assert apply(biased, "length-debias", seed=2).fingerprint() != out.fingerprint()


def test_length_debias_bucketed_and_reweight(biased: Dataset) -> None:
    _out, oc = run_step(biased, "length-debias", bucketed=True, by="chars", target=0.5)
    assert abs(oc.info["longer_wins_after"] - 0.5) <= 0.02
    w_out, w_oc = run_step(biased, "length-debias", mode="reweight")
    assert w_out.num_rows("judgments") == biased.num_rows("judgments")
    assert w_oc.info["longer_wins_after"] == pytest.approx(0.5)
    weight = np.asarray(w_out.judgments["weight"])
    f = Context(biased).judgment_frame()
    a, b, o = np.asarray(f["a_words"]), np.asarray(f["b_words"]), np.asarray(f["outcome"])
    ok = (o != 0) & (a != b)
    longer = ok & (np.where(o == 1, a, b) > np.where(o == 1, b, a))
    assert weight[longer].sum() / weight[ok].sum() == pytest.approx(0.5)
    assert weight[ok].mean() == pytest.approx(1.0)
    with pytest.raises(PrefkitError, match="target"):
        apply(biased, "length-debias", target=1.5)
    with pytest.raises(PrefkitError, match="mode"):
        apply(biased, "length-debias", mode="upsample")
