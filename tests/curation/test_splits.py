"""The ``split`` step: one split per prompt, stratified proportions, duplicates together,
determinism, lineage."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import prefkit
from prefkit.curation.step import apply, run_step
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.synth import simulate

CATEGORIES = ("code", "math", "chat", "safety")


@pytest.fixture(scope="module")
def synth() -> Dataset:
    ds = simulate(kind="pairwise", n_prompts=2000, duplicate_rate=0.1, seed=3)
    p = ds.prompts
    # a skewed category column to stratify by
    # (a copy has its original's category, as real duplicates would)
    base = pa.compute.coalesce(p["duplicate_of"], p["prompt_id"]).to_pylist()
    draw = np.random.default_rng(0).random(p.num_rows)
    u = np.array([draw[int(b[1:]) % p.num_rows] for b in base])
    cat = np.searchsorted(np.cumsum([0.6, 0.25, 0.1, 0.05]), u)
    cats = pa.array(np.asarray(CATEGORIES, dtype=object)[cat], pa.string())
    return ds.with_tables(prompts=p.append_column("category", cats))


@pytest.fixture(scope="module")
def split_ds(synth: Dataset) -> Dataset:
    return apply(synth, "split", stratify="category", seed=1)


def _split_of(ds: Dataset) -> dict[str, str]:
    return dict(
        zip(ds.prompts["prompt_id"].to_pylist(), ds.prompts["split"].to_pylist(), strict=True)
    )


def test_one_split_per_prompt(split_ds: Dataset) -> None:
    of = _split_of(split_ds)
    assert set(of.values()) == {"train", "validation", "test"}
    for name in ("responses", "judgments"):
        t = split_ds.table(name)
        assert t.num_rows and t["split"].null_count == 0
        # every row is in its prompt's split: no prompt's rows in two splits
        assert all(
            of[p] == s
            for p, s in zip(t["prompt_id"].to_pylist(), t["split"].to_pylist(), strict=True)
        )
    pairs = {
        (p, s)
        for p, s in zip(
            split_ds.judgments["prompt_id"].to_pylist(),
            split_ds.judgments["split"].to_pylist(),
            strict=True,
        )
    }
    assert len({p for p, _ in pairs}) == len(pairs)


def test_stratified_proportions(split_ds: Dataset) -> None:
    rows = split_ds.prompts.select(["category", "split"]).to_pylist()
    for cat in CATEGORIES:
        got = Counter(r["split"] for r in rows if r["category"] == cat)
        n = sum(got.values())
        for name, frac in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
            # up to one unit (duplicate groups are small) plus rounding
            assert abs(got[name] - frac * n) <= 4, (cat, name, got)


def test_duplicates_never_straddle(synth: Dataset, split_ds: Dataset) -> None:
    p = split_ds.prompts.to_pylist()
    of = _split_of(split_ds)
    exact = [r for r in p if r["duplicate_kind"] == "exact"]
    assert len(exact) == 200
    assert all(of[r["prompt_id"]] == of[r["duplicate_of"]] for r in exact)
    # without grouping, copies do straddle (the test would notice a no-op)
    loose = _split_of(apply(synth, "split", group_duplicates=False, seed=1))
    assert any(loose[r["prompt_id"]] != loose[r["duplicate_of"]] for r in exact)


def test_near_duplicates_together() -> None:
    ds = simulate(
        kind="pairwise", n_prompts=600, duplicate_rate=0.0, near_duplicate_rate=0.1, seed=4
    )
    out = apply(ds, "split", near=True, threshold=0.5, fractions="0.5,0.5", names="train,test")
    of = _split_of(out)
    near = [r for r in out.prompts.to_pylist() if r["duplicate_kind"] == "near"]
    together = sum(of[r["prompt_id"]] == of[r["duplicate_of"]] for r in near)
    assert together >= 0.9 * len(near)  # MinHash recall, not exact


def test_deterministic(synth: Dataset, split_ds: Dataset) -> None:
    again = apply(synth, "split", stratify="category", seed=1)
    assert again.fingerprint() == split_ds.fingerprint()
    shuffled = synth.with_tables(
        prompts=synth.prompts.take(np.random.default_rng(2).permutation(synth.prompts.num_rows))
    )
    assert _split_of(apply(shuffled, "split", stratify="category", seed=1)) == _split_of(split_ds)
    other = apply(synth, "split", stratify="category", seed=2)
    assert _split_of(other) != _split_of(split_ds)


def test_stratify_by_response_source_and_lineage(tmp_path: Path) -> None:
    ds = simulate(kind="battles", n_prompts=400, seed=5)
    out, _outcome = run_step(ds, "split", stratify="source", fractions="0.5,0.25,0.25")
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "split" and entry["params"]["stratify"] == "source"
    assert entry["removed"] == {} and entry["added"] == {}
    counts = entry["info"]["splits"]["prompts"]
    assert sum(counts.values()) == ds.prompts.num_rows
    assert abs(counts["train"] - 200) <= entry["info"]["strata"]
    out.save(tmp_path / "ds")
    back = prefkit.load(tmp_path / "ds")
    assert back.manifest.lineage[-1]["info"]["splits"] == entry["info"]["splits"]
    assert back.fingerprint() == out.fingerprint()


def test_rankings_get_split() -> None:
    ds = simulate(kind="rankings", n_prompts=200, seed=6)
    out = apply(ds, "split")
    of = _split_of(out)
    k = out.rankings
    assert all(
        of[p] == s for p, s in zip(k["prompt_id"].to_pylist(), k["split"].to_pylist(), strict=True)
    )


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"fractions": "0.8,0.1"}, "fractions"),
        ({"fractions": "0.8,x,0.1"}, "fractions"),
        ({"fractions": "1.2,-0.1,-0.1"}, "fractions"),
        ({"names": "train,test"}, "names"),
        ({"stratify": "nope"}, "stratify"),
        ({"group_duplicates": "maybe"}, "group_duplicates"),
    ],
)
def test_bad_params(params: dict, name: str) -> None:
    ds = simulate(kind="pairwise", n_prompts=50, seed=1)
    with pytest.raises(PrefkitError, match=name):
        apply(ds, "split", **params)
