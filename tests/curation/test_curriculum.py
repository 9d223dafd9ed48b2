"""The ``curriculum`` step: stages monotone in the margin, equal sizes, deterministic ties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import prefkit
from prefkit.curation.step import apply, run_step
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.synth import simulate


@pytest.fixture(scope="module")
def ranked_pairs() -> Dataset:
    ds = simulate(kind="rankings", n_prompts=300, responses_per_prompt=4, seed=5)
    return apply(ds, "pairs", source="rankings", strategy="all-ranked")


@pytest.fixture(scope="module")
def rated() -> Dataset:
    ds = simulate(kind="ratings", n_prompts=300, responses_per_prompt=4, seed=6)
    return apply(ds, "pairs", strategy="all-ranked")


def _check_monotone(margin: np.ndarray, stage: np.ndarray, stages: int) -> None:
    """Stage never decreases as the margin decreases; sizes differ by at most one."""
    for s in range(1, stages):  # every margin in stage s is >= every margin in stage s + 1
        assert margin[stage == s].min() >= margin[stage == s + 1].max()
    sizes = np.bincount(stage, minlength=stages + 1)[1:]
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == len(stage)


@pytest.mark.parametrize("stages", [1, 3, 5])
def test_strength_stages(ranked_pairs: Dataset, stages: int) -> None:
    out = apply(ranked_pairs, "curriculum", stages=stages)
    j = out.judgments
    _check_monotone(j["strength"].to_numpy(), j["stage"].to_numpy(), stages)
    assert j["judgment_id"].to_pylist() == ranked_pairs.judgments["judgment_id"].to_pylist()
    # many equal rank gaps straddle stage boundaries: the split is the same on a re-run,
    # and the same whatever the input order
    assert apply(ranked_pairs, "curriculum", stages=stages).fingerprint() == out.fingerprint()
    shuffled = ranked_pairs.with_tables(
        judgments=ranked_pairs.judgments.take(np.random.default_rng(0).permutation(j.num_rows))
    )
    again = apply(shuffled, "curriculum", stages=stages)
    assert again.table_fingerprints()["judgments"] == out.table_fingerprints()["judgments"]


def test_score_and_rank_gap(rated: Dataset) -> None:
    scores = dict(
        zip(
            rated.responses["response_id"].to_pylist(),
            rated.responses["score"].to_pylist(),
            strict=True,
        )
    )
    out = apply(rated, "curriculum", by="score_gap", stages=4)
    j = out.judgments.to_pylist()
    gap = np.array([r["outcome"] * (scores[r["a"]] - scores[r["b"]]) for r in j])
    _check_monotone(gap, np.array([r["stage"] for r in j]), 4)
    assert np.allclose(gap, [r["strength"] for r in j])  # the pairs step's strength
    rank = apply(rated, "curriculum", by="rank_gap", stages=2)
    stage = rank.judgments["stage"].to_numpy()
    # dense rank gap: an all-ranked pair over 2+ tiers is easier than a neighbouring one
    assert stage.min() == 1 and stage.max() == 2


def test_rank_gap_from_rankings(ranked_pairs: Dataset) -> None:
    out = apply(ranked_pairs, "curriculum", by="rank_gap", stages=3)
    j = out.judgments
    # one ranking per prompt: the mean tier gap is the tier gap = the strength
    _check_monotone(j["strength"].to_numpy(), j["stage"].to_numpy(), 3)


def test_order_and_lineage(ranked_pairs: Dataset, tmp_path: Path) -> None:
    out, _outcome = run_step(ranked_pairs, "curriculum", stages=3, order=True)
    stage = out.judgments["stage"].to_numpy()
    assert np.all(np.diff(stage) >= 0)  # easiest first
    assert np.all(np.diff(out.judgments["strength"].to_numpy()) <= 0)
    # reordering changes no content: same fingerprint as the unordered step
    assert out.fingerprint() == apply(ranked_pairs, "curriculum", stages=3).fingerprint()
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "curriculum" and entry["params"] == {
        "by": "strength",
        "stages": 3,
        "order": True,
    }
    assert entry["removed"] == {} and entry["added"] == {}
    assert [s["stage"] for s in entry["info"]["stages"]] == [1, 2, 3]
    assert entry["info"]["stages"][0]["margin_min"] >= entry["info"]["stages"][1]["margin_max"]
    out.save(tmp_path / "ds")
    back = prefkit.load(tmp_path / "ds")
    assert back.manifest.lineage[-1]["step"] == "curriculum"
    # a dataset read from Parquet stages the same
    assert (
        apply(back, "curriculum", stages=3, order=True).table_fingerprints()["judgments"]
        == (apply(out, "curriculum", stages=3, order=True).table_fingerprints()["judgments"])
    )


def test_null_margin_and_ties() -> None:
    ds = Dataset(
        {
            "judgments": pa.table(
                {
                    "judgment_id": [f"j{i}" for i in range(7)],
                    "prompt_id": ["p"] * 7,
                    "a": ["x"] * 7,
                    "b": ["y"] * 7,
                    "outcome": pa.array([1, 1, 1, 1, 1, 1, 0], pa.int8()),
                    "strength": [0.9, None, 0.5, 0.5, 0.5, 0.1, 0.7],
                }
            )
        }
    )
    out, outcome = run_step(ds, "curriculum", stages=2)
    stage = dict(
        zip(
            out.judgments["judgment_id"].to_pylist(),
            out.judgments["stage"].to_pylist(),
            strict=True,
        )
    )
    assert stage["j1"] is None and outcome.info["unstaged"] == 1
    assert stage["j0"] == stage["j6"] == 1 and stage["j5"] == 2
    assert sorted(stage[k] for k in ("j2", "j3", "j4")) == [1, 2, 2]  # split by id hash


def test_suspicion(ranked_pairs: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # The noise model itself is tested with inspect; here: low suspicion = easy, and a
    # judgment it could not score (null) gets no stage.
    from prefkit.diagnostics.checks import noise

    ids = ranked_pairs.judgments["judgment_id"]
    susp = np.random.default_rng(1).random(len(ids))
    values = pa.array(susp, pa.float64(), mask=np.arange(len(ids)) == 0)
    monkeypatch.setattr(
        noise, "suspicion", lambda ctx: pa.table({"judgment_id": ids, "suspicion": values})
    )
    out, outcome = run_step(ranked_pairs, "curriculum", by="suspicion", stages=4)
    stage = out.judgments["stage"].to_numpy(zero_copy_only=False)
    assert np.isnan(stage[0]) and outcome.info["unstaged"] == 1
    _check_monotone(-susp[1:], stage[1:].astype(int), 4)


@pytest.mark.parametrize(
    ("params", "name"),
    [({"stages": 0}, "stages"), ({"by": "length"}, "by"), ({"stages": 1.5}, "stages")],
)
def test_bad_params(ranked_pairs: Dataset, params: dict, name: str) -> None:
    with pytest.raises(PrefkitError, match=name):
        apply(ranked_pairs, "curriculum", **params)


def test_rank_gap_needs_ranks() -> None:
    ds = simulate(kind="pairwise", n_prompts=50, seed=1)
    with pytest.raises(PrefkitError, match="by"):
        apply(ds, "curriculum", by="rank_gap")
