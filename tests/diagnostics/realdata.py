"""Every real dataset in ../shared/data, and how to load it (``prefkit.convert`` options)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(
    os.environ.get("PREFKIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)

REAL: dict[str, dict[str, str]] = {
    "hh_rlhf_harmless_test": {},
    "imagereward_test": {},
    "nlg_emnlp17_ratings": {},
    "oasst_en100_trees": {},
    "ukp_convarg1": {},
    "vicuna80_human_battles": {},
    "llmbar": {
        "format": "generic",
        "prompt": "input",
        "a": "output_1",
        "b": "output_2",
        "label": "label",
        "a_value": "1",
        "b_value": "2",
    },
}
