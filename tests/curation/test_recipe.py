"""YAML recipes: parsing (errors name the step), reproducible re-runs, lineage on disk."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import prefkit
from prefkit.curation import (
    STEPS,
    Outcome,
    Param,
    Step,
    drop_rows,
    parse_recipe,
    run_recipe,
)
from prefkit.errors import PrefkitError
from prefkit.synth import simulate
from tinysteps import registered


def _sample(ds: Any, fraction: float, seed: int) -> Outcome:
    ids = ds.prompts.column("prompt_id").to_numpy(zero_copy_only=False)
    rng = np.random.default_rng(seed)
    return drop_rows(ds, "sampled out", prompts=list(ids[rng.random(len(ids)) >= fraction]))


def _ties(ds: Any) -> Outcome:
    import pyarrow.compute as pc

    j = ds.judgments
    return drop_rows(ds, "tie", judgments=j.filter(pc.equal(j.column("outcome"), 0)).column(0))


TINY = (
    Step(
        "r_sample",
        "Keep a random share of prompts.",
        _sample,
        (Param("fraction", 0.5, "share"), Param("seed", 0, "seed")),
    ),
    Step("r_ties", "Drop ties.", _ties),
)


@pytest.fixture(autouse=True)
def tiny() -> Iterator[None]:
    with registered(TINY):
        yield


@pytest.fixture(scope="module")
def ds() -> prefkit.Dataset:
    return simulate(kind="pairwise", n_prompts=60, tie_threshold=0.3, seed=2)


RECIPE = """\
steps:
  - r_ties
  - r_sample: {fraction: 0.7, seed: 4}
  - step: r_sample
    fraction: 0.9
"""


def test_parse_forms() -> None:
    assert parse_recipe(RECIPE) == [
        ("r_ties", {}),
        ("r_sample", {"fraction": 0.7, "seed": 4}),
        ("r_sample", {"fraction": 0.9}),
    ]
    assert parse_recipe([{"r_ties": None}]) == [("r_ties", {})]
    assert parse_recipe({"steps": ["r_ties"]}) == [("r_ties", {})]


def test_parse_from_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    assert len(parse_recipe(path)) == 3 == len(parse_recipe(str(path)))
    path.write_text("steps: [r_ties\n")
    with pytest.raises(PrefkitError, match="not valid YAML"):
        parse_recipe(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("steps:\n  - r_ties\n  - nope\n", r"step 2: unknown curation step 'nope'"),
        (
            "steps:\n  - r_sample: {fraction: lots}\n",
            r"step 1: curate r_sample: parameter 'fraction' expects float",
        ),
        (
            "steps:\n  - r_ties\n  - r_ties\n  - r_sample: {bogus: 1}\n",
            r"step 3: curate r_sample: unknown parameter\(s\) bogus",
        ),
        (
            "steps:\n  - r_ties\n  - r_sample: 3\n",
            r"step 2 \(r_sample\): parameters must be a mapping",
        ),
        ("steps:\n  - {a: 1, b: 2}\n", r"step 1: expected"),
        ("steps: []\n", r"non-empty list of steps"),
        ("just: text\n", r"non-empty list of steps"),
    ],
)
def test_parse_errors_name_the_step(text: str, match: str) -> None:
    with pytest.raises(PrefkitError, match=match):
        parse_recipe(text)


def test_rerun_gives_the_same_fingerprint(ds: Any) -> None:
    a = run_recipe(ds, RECIPE)
    b = run_recipe(ds, RECIPE)
    assert a.fingerprint() == b.fingerprint() != ds.fingerprint()
    assert a.manifest.lineage == b.manifest.lineage
    steps = a.manifest.lineage[-3:]
    assert [e["step"] for e in steps] == ["r_ties", "r_sample", "r_sample"]
    assert steps[1]["params"] == {"fraction": 0.7, "seed": 4}
    assert steps[2]["params"] == {"fraction": 0.9, "seed": 0}
    # the fingerprints chain: each step's input is the previous step's output
    assert steps[0]["inputs"] == [ds.fingerprint()]
    for prev, nxt in itertools.pairwise(steps):
        assert nxt["inputs"] == [prev["output"]]
    assert steps[-1]["output"] == a.fingerprint()
    # another seed, another output
    other = run_recipe(ds, RECIPE.replace("seed: 4", "seed: 5"))
    assert other.fingerprint() != a.fingerprint()


def test_on_step_callback(ds: Any) -> None:
    seen: list[tuple[int, str, int]] = []
    run_recipe(
        ds, RECIPE, lambda i, name, new, outcome: seen.append((i, name, new.num_rows("prompts")))
    )
    assert [s[:2] for s in seen] == [(1, "r_ties"), (2, "r_sample"), (3, "r_sample")]
    assert seen[0][2] == ds.num_rows("prompts") > seen[1][2] >= seen[2][2]


def test_lineage_survives_save_and_load_and_reruns_from_disk(ds: Any, tmp_path: Path) -> None:
    ds.save(tmp_path / "in")
    loaded = prefkit.load(tmp_path / "in")
    out = run_recipe(loaded, RECIPE)
    out.save(tmp_path / "out")
    back = prefkit.load(tmp_path / "out")
    assert back.manifest.lineage == out.manifest.lineage
    assert back.fingerprint() == out.fingerprint() == run_recipe(ds, RECIPE).fingerprint()


def test_docs_steps_table_is_current() -> None:
    from prefkit.curation.doc import steps_table_markdown

    for step in TINY:  # only the real steps
        STEPS.pop(step.name)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "curation.md").read_text()
    table = steps_table_markdown()
    assert table.strip() in doc, "regenerate the steps table in docs/curation.md"
