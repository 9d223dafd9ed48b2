"""The worked example of docs/curation-example.md stays true: the UKPConvArg1 recipe takes
84,445 raw crowd labels to 11,652 clean, majority-labelled pairs."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

import prefkit
from prefkit.curation import run_recipe

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "ukp_recipe.yaml"


@pytest.mark.shared_data
def test_ukp_recipe_gives_the_documented_counts(shared_data: Path, tmp_path: Path) -> None:
    ds = prefkit.load(shared_data / "ukp_convarg1" / "UKPConvArg1-full-XML")
    assert ds.num_rows("judgments") == 84_445
    clean = run_recipe(ds, RECIPE)
    steps = [s["step"] for s in clean.manifest.lineage[1:]]
    assert steps == ["drop-identical", "dedup", "drop-disputed", "majority", "drop-ties"]
    removed = [s["removed"].get("judgments", 0) for s in clean.manifest.lineage[1:]]
    assert removed == [75, 10, 14_644, 56_057, 2_007]
    j = clean.judgments
    assert j.num_rows == 11_652
    assert pc.all(pc.not_equal(j.column("outcome"), 0)).as_py()
    assert pc.all(pc.not_equal(j.column("a"), j.column("b"))).as_py()
    items = {
        (p, min(a, b), max(a, b))
        for p, a, b in zip(*(j.column(c).to_pylist() for c in ("prompt_id", "a", "b")), strict=True)
    }
    assert len(items) == j.num_rows  # one judgment per pair
    prefkit.save(clean, tmp_path / "ukp.jsonl", format="trl")
    assert len((tmp_path / "ukp.jsonl").read_bytes().splitlines()) == 11_652
