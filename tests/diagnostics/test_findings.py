"""Findings are plain data: they validate their fields and survive a JSON round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from prefkit.diagnostics.findings import Finding, InspectReport, Plot, Table, skipped


def _report() -> InspectReport:
    finding = Finding(
        "bias",
        "Length bias",
        "warning",
        "The longer response wins 70% of the time.",
        metrics={"longer_wins": np.float64(0.7), "n": np.int64(12), "ci": (0.6, math.nan)},
        tables=[Table("Worst", ["judgment_id", "p"], [["j1", 0.9]])],
        plots=[Plot("hist", "Lengths", [0, 1, 2], {"prompts": [3, 4]}, reference=0.5)],
        ids={"judgment_id": ["j1", "j2"]},
    )
    return InspectReport(
        dataset="d",
        fingerprint="f",
        counts={"judgments": 12},
        kinds=["pairwise"],
        findings=[finding, skipped("agreement", "Agreement", "one judge per item")],
        seconds={"bias": 0.1},
    )


def test_json_round_trip_turns_numpy_and_nan_into_plain_values(tmp_path: Path) -> None:
    report = _report()
    report.to_json(tmp_path / "r.json")
    data = orjson.loads((tmp_path / "r.json").read_bytes())
    metrics = data["findings"][0]["metrics"]
    assert metrics == {"longer_wins": 0.7, "n": 12, "ci": [0.6, None]}
    assert data["severity"] == "warning"
    again = InspectReport.from_dict(data)
    assert again.findings[0].plots[0].series == {"prompts": [3, 4]}
    assert again.findings[1].severity == "skipped"
    assert again.to_dict() == data


def test_worst_severity_and_counts() -> None:
    report = _report()
    assert report.severity == "warning"
    assert report.by_severity()["skipped"] == 1
    assert [f.check for f in report.findings_of("bias")] == ["bias"]
    empty = InspectReport("d", "f", {}, [], [])
    assert empty.severity == "ok"


def test_bad_severity_and_mismatched_plot_are_rejected() -> None:
    with pytest.raises(ValueError, match="severity"):
        Finding("x", "X", "fatal", "")
    with pytest.raises(ValueError, match="kind"):
        Plot("pie", "P", [1], {"s": [1]})
    with pytest.raises(ValueError, match="series 's' has 2 values"):
        Plot("bar", "P", ["a"], {"s": [1, 2]})
    with pytest.raises(ValueError, match="series 's' has 3 values, x 2"):
        Plot("hist", "P", [0, 1, 2], {"s": [1, 2, 3]})  # 3 edges hold 2 counts
