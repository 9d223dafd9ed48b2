"""Every real dataset in ../shared/data loads by auto-detection, converts to a canonical
dataset and back, and validates with exactly the problems the data really has."""

from __future__ import annotations

from pathlib import Path

import pytest

import prefkit
from prefkit.io.api import detect_format
from prefkit.schema.validate import validate

# folder -> (format detected, counts that must hold, problems validate must report)
EXPECTED = {
    "hh_rlhf_harmless_test": ("hh-rlhf", {"judgments": 2312}, {"empty-response": 4}),
    "imagereward_test": ("imagereward", {"rankings": 466, "responses": 2720}, {}),
    "nlg_emnlp17_ratings": ("likert", {"responses": 2460}, {}),
    "oasst_en100_trees": ("oasst", {"rankings": 212}, {}),
    # Reposted arguments (same text, two ids) make 15 pairs compare one response with itself.
    "ukp_convarg1": (
        "ukp-convarg",
        {"judgments": 84445, "annotators": 3815},
        {"self-comparison": 75},
    ),
    # The four Guanaco models' answers are not shipped: 4 x 80 responses without text.
    "vicuna80_human_battles": ("prd-battles", {"judgments": 7040}, {"empty-response": 320}),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_dataset_loads_validates_and_round_trips(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    fmt, counts, problems = EXPECTED[name]
    path = shared_data / name
    assert detect_format(path).name == fmt
    ds = prefkit.convert(path, tmp_path / "ds")
    for table, n in counts.items():
        assert ds.num_rows(table) == n, table
    found = {p.code: p.count for p in validate(ds)}
    assert found == problems
    again = prefkit.load(tmp_path / "ds")
    assert again.fingerprint() == ds.fingerprint()
    assert again.manifest.lineage[0]["params"]["format"] == fmt


@pytest.mark.shared_data
def test_llmbar_loads_through_the_generic_mapping(shared_data: Path) -> None:
    ds = prefkit.load(
        shared_data / "llmbar",
        "generic",
        prompt="input",
        a="output_1",
        b="output_2",
        label="label",
        a_value="1",
        b_value="2",
    )
    assert ds.num_rows("judgments") == 619
    assert validate(ds) == []
