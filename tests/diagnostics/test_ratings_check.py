"""The `ratings` check: distributions, correlations, overall scores contradicting aspects.

Golden values: Pearson from ``statistics.correlation`` and Spearman from hand-ranked values
(plain Python, no scipy) on hand-built data and on the raw NLG CSV; dominance violations
listed by hand; exact linear scores whose only outlier is the planted one; and on synth
ratings, wrong overall scores planted by editing them, recovered with measured precision
and recall.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from realdata import REAL, SHARED_DATA

import prefkit
from prefkit.dataset import Dataset
from prefkit.diagnostics.checks import ratings
from prefkit.diagnostics.findings import Finding
from prefkit.diagnostics.inspect import inspect
from prefkit.diagnostics.registry import CHECKS
from prefkit.errors import PrefkitError
from prefkit.schema import TableBuilder, messages
from prefkit.synth import simulate


# --- helpers ------------------------------------------------------------------------------
def _rated(rows: list[tuple[str, str, float | None, dict[str, float]]]) -> Dataset:
    """``rows``: (response_id, prompt_id, score, attributes)."""
    prompts, responses = TableBuilder("prompts"), TableBuilder("responses")
    for p in sorted({r[1] for r in rows}):
        prompts.add(prompt_id=p, messages=messages(("user", p)))
    for rid, p, score, attrs in rows:
        responses.add(
            response_id=rid, prompt_id=p, messages=messages(("assistant", rid)), score=score,
            attributes=list(attrs.items()) or None,
        )  # fmt: skip
    return Dataset({"prompts": prompts.build(), "responses": responses.build()})


def _run(ds: Dataset, **params: Any) -> list[Finding]:
    return inspect(ds, checks=["ratings"], params={"ratings": params} if params else {}).findings


def ranks(xs: list[float]) -> list[float]:
    """1-based ranks with ties sharing their average rank (plain Python)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    return statistics.correlation(ranks(x), ranks(y))


def _with_scores(ds: Dataset, score: np.ndarray) -> Dataset:
    r = ds.responses
    return ds.with_tables(
        responses=r.set_column(r.column_names.index("score"), "score", pa.array(score))
    )


def plant_wrong_scores(ds: Dataset, rate: float, seed: int = 0) -> tuple[Dataset, set[str]]:
    """Move ``rate`` of the overall scores to the opposite end of the 0–4 scale, choosing
    among scores at least 3 points from it (so every edit is a 3–4 point change)."""
    r = ds.responses
    score = r.column("score").to_numpy().copy()
    target = np.where(score >= 2, 0.0, 4.0)
    candidates = np.flatnonzero(np.abs(target - score) >= 3)
    rows = np.random.default_rng(seed).choice(candidates, round(rate * len(score)), replace=False)
    score[rows] = target[rows]
    planted = set(r.column("response_id").take(pa.array(rows)).to_pylist())
    return _with_scores(ds, score), planted


def _precision_recall(found: list[str], planted: set[str]) -> tuple[float, float]:
    hit = len(set(found) & planted)
    return hit / max(len(found), 1), hit / len(planted)


# --- registry and not applicable ----------------------------------------------------------
def test_registered() -> None:
    assert CHECKS["ratings"].title == "Ratings"


@pytest.mark.parametrize(
    "ds",
    [
        pytest.param(lambda: simulate(kind="pairwise", n_prompts=30, seed=0), id="pairwise"),
        pytest.param(lambda: Dataset({}), id="empty"),
    ],
)
def test_skipped_without_ratings(ds: Callable[[], Dataset]) -> None:
    findings = _run(ds())
    assert [f.severity for f in findings] == ["skipped"]
    assert "score" in findings[0].verdict


# --- golden values on hand-built data -----------------------------------------------------
HAND = [
    ("r1", "p1", 2.0, {"help": 3.0, "truth": 3.0}),
    ("r2", "p1", 4.0, {"help": 2.0, "truth": 3.0}),  # dominated by r1, yet scores higher
    ("r3", "p1", 1.0, {"help": 1.0, "truth": 1.0}),
    ("r4", "p2", 3.0, {"help": 4.0, "truth": 2.0}),
    ("r5", "p2", 3.5, {"help": 4.0}),  # truth missing: no dominance test, no regression row
    ("r6", "p2", 0.5, {"help": 0.0, "truth": 0.0}),
]


def test_hand_built_distribution_and_correlation() -> None:
    dist = _run(_rated(HAND))[0]
    assert dist.title == "Ratings: distribution and correlation"
    m = dist.metrics
    assert m["rated_responses"] == 6 and m["aspects"] == 2
    score = [h[2] for h in HAND]
    help_ = [h[3]["help"] for h in HAND]
    assert m["score.mean"] == pytest.approx(statistics.mean(score))
    assert m["score.std"] == pytest.approx(statistics.stdev(score))
    assert m["truth.missing_share"] == pytest.approx(1 / 6)
    assert m["pearson.score~help"] == pytest.approx(statistics.correlation(score, help_))
    assert m["spearman.score~help"] == pytest.approx(spearman(score, help_))
    # Pairwise deletion: truth is missing for r5.
    full = [h for h in HAND if "truth" in h[3]]
    truth = [h[3]["truth"] for h in full]
    assert m["pearson.help~truth"] == pytest.approx(
        statistics.correlation([h[3]["help"] for h in full], truth)
    )
    assert m["spearman.score~truth"] == pytest.approx(spearman([h[2] for h in full], truth))
    table = {row[0]: row for row in dist.tables[0].rows}
    assert table["truth"][1:3] == [5, pytest.approx(1 / 6, abs=1e-4)]
    bars = dist.plots[0]
    assert bars.kind == "bar" and bars.x == ["0", "1", "2", "3", "4"]
    assert bars.series["help"] == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 6, 2 / 6])


def test_hand_built_dominance_violation() -> None:
    """p1: r1 ≥ r2 on both aspects (help strictly) but scores 2 < 4: one violation among
    the three dominating pairs of p1 (r1>r2, r1>r3, r2>r3); p2: r4 dominates r6, fine."""
    f = _run(_rated(HAND))[1]
    m = f.metrics
    assert m["dominance_violations"] == 1
    assert m["dominating_pairs"] == 4
    assert m["dominance_violation_rate"] == pytest.approx(1 / 4)
    assert m["responses_checked"] == 5
    row = f.tables[-1].rows[0]
    assert row[:5] == ["p1", "r1", "2", "r2", "4"]
    assert row[5:] == ["help=3, truth=3", "help=2, truth=3"]
    assert len(f.ids["response_id"]) >= 1 and set(f.ids["response_id"]) <= {"r1", "r2"}
    # A required gap larger than the difference removes it.
    assert _run(_rated(HAND), dominance_gap=2.0)[1].metrics["dominance_violations"] == 0


def test_exact_linear_scores_flag_only_the_planted_outlier() -> None:
    """score = 1 + a + 2b exactly on an integer scale, one score raised by 6: the fit
    (refitted without the outlier) recovers the coefficients exactly and flags only it."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        a, b = (float(v) for v in rng.integers(0, 5, 2))
        rows.append(
            (f"r{i:02d}", f"p{i // 2:02d}", 1 + a + 2 * b + (6 if i == 17 else 0), {"a": a, "b": b})
        )
    f = _run(_rated(rows), dominance_gap=100.0)[1]
    assert f.ids["response_id"] == ["r17"]
    assert f.metrics["intercept"] == pytest.approx(1)
    assert f.metrics["coef.a"] == pytest.approx(1) and f.metrics["coef.b"] == pytest.approx(2)
    assert f.tables[0].rows[0][0] == "r17"


def test_parameters_choose_overall_and_aspects() -> None:
    rows = [
        (f"r{i}", f"p{i // 2}", None, {"quality": float(i % 5), "fluency": float((i * 3) % 5), "len": float(i)})
        for i in range(20)
    ]  # fmt: skip
    ds = _rated(rows)
    dist, inc = _run(ds)
    assert "overall score (quality)" in dist.verdict
    assert inc.severity != "skipped" and "coef.fluency" in inc.metrics
    assert _run(ds, overall="none")[1].severity == "skipped"
    only = _run(ds, aspects="fluency")[1]
    assert "coef.fluency" in only.metrics and "coef.len" not in only.metrics
    with pytest.raises(PrefkitError, match="aspects"):
        _run(ds, aspects="nope")
    with pytest.raises(PrefkitError, match="overall"):
        _run(ds, overall="nope")


def test_attribute_repeating_the_score_is_left_out() -> None:
    rows = [
        (f"r{i}", f"p{i}", float(i % 4), {"quality": float(i % 4), "x": float(i % 3)})
        for i in range(20)
    ]
    dist, inc = _run(_rated(rows))
    assert "quality repeats the score" in dist.verdict
    assert dist.metrics["attributes_equal_to_score"] == 1
    assert "coef.quality" not in inc.metrics and "coef.x" in inc.metrics


# --- synth: planted wrong overall scores --------------------------------------------------
def test_synth_planted_wrong_scores_precision_recall() -> None:
    """Synth ratings (rating_noise 0.3, 3 responses per prompt) with 3 % of overall scores
    moved 3–4 points. The residual method alone (dominance off) must reach precision ≥ 0.95
    and recall ≥ 0.85 (measured 1.00 / 0.96 here; a 3-point edit is ~6 natural residual
    SDs, so misses are edits that the clipped 0–4 aspects happen to agree with). Adding
    dominance violations can only raise recall; on clean data the residual rule flags at
    most 0.5 % of responses (measured 0)."""
    ds = simulate(kind="ratings", n_prompts=1000, responses_per_prompt=3, rating_noise=0.3, seed=2)
    bad, planted = plant_wrong_scores(ds, 0.03)
    residual_only = _run(bad, dominance_gap=100.0)[1]
    precision, recall = _precision_recall(residual_only.ids["response_id"], planted)
    assert precision >= 0.95 and recall >= 0.85
    both = _run(bad)[1]
    assert _precision_recall(both.ids["response_id"], planted)[1] >= recall
    clean = _run(ds, dominance_gap=100.0)[1]
    assert clean.metrics["residual_outliers"] <= 0.005 * ds.num_rows("responses")
    assert clean.severity == "ok"
    assert residual_only.severity == "info"  # ~3 % flagged: between 1 % and warn_share


def test_synth_score_only_and_aspects_only() -> None:
    ds = simulate(kind="ratings", n_prompts=50, seed=1)
    r = ds.responses
    no_attr = ds.with_tables(
        responses=r.set_column(
            r.column_names.index("attributes"),
            "attributes",
            pa.nulls(r.num_rows, r.schema.field("attributes").type),
        )
    )
    dist, inc = _run(no_attr)
    assert dist.metrics["aspects"] == 0 and "score.mean" in dist.metrics
    assert inc.severity == "skipped" and "aspect" in inc.verdict
    no_score = _with_scores(ds, np.full(r.num_rows, np.nan))
    dist, inc = _run(no_score)
    assert "score.mean" not in dist.metrics and dist.metrics["aspects"] == 3
    assert inc.severity == "skipped" and "overall" in inc.verdict


def test_scale_step_and_describe() -> None:
    assert ratings.scale_step(np.array([1.0, 1.5, 3.0, np.nan])) == 0.5
    assert ratings.scale_step(np.linspace(0, 1, 1000)) == 0.0
    d = ratings.describe(np.array([1.0, 2.0, np.nan, 3.0]))
    assert d["n"] == 3 and d["missing_share"] == 0.25 and d["p50"] == 2.0


# --- real data ----------------------------------------------------------------------------
def _nlg_csv() -> dict[str, list[float]]:
    with (SHARED_DATA / "nlg_emnlp17_ratings" / "emnlp_data_medians.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r[k]) for r in rows] for k in ("informativeness", "naturalness", "quality")}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_datasets(name: str, real_dataset: Callable[[str], Dataset]) -> None:
    findings = _run(real_dataset(name))
    if name != "nlg_emnlp17_ratings":
        # No other shared dataset carries scores or aspect ratings.
        assert [f.severity for f in findings] == ["skipped"]
        return
    dist, inc = findings
    raw = _nlg_csv()
    assert dist.metrics["rated_responses"] == len(raw["quality"]) == 2460
    # 'quality' is the overall rating; the two other criteria are its aspects.
    assert "overall score (quality)" in dist.verdict
    for a, b in (
        ("quality", "informativeness"),
        ("quality", "naturalness"),
        ("informativeness", "naturalness"),
    ):
        assert dist.metrics[f"pearson.{a}~{b}"] == pytest.approx(
            statistics.correlation(raw[a], raw[b]), abs=1e-12
        )
        assert dist.metrics[f"spearman.{a}~{b}"] == pytest.approx(
            spearman(raw[a], raw[b]), abs=1e-12
        )
    for k, xs in raw.items():
        assert dist.metrics[f"{k}.mean"] == pytest.approx(statistics.mean(xs))
    # Quality follows naturalness more than informativeness (ρ 0.69 vs 0.47).
    assert (
        dist.metrics["spearman.quality~naturalness"]
        > dist.metrics["spearman.quality~informativeness"] + 0.1
    )
    m = inc.metrics
    assert m["coef.naturalness"] > m["coef.informativeness"] > 0
    assert 0.4 < m["r2"] < 0.7
    # Median-of-3 crowd ratings: a few % of quality ratings contradict their aspects.
    assert 0.02 < m["inconsistent_share"] < 0.15
    assert m["residual_outliers"] > 0 and m["dominance_violations"] > 0
    assert inc.severity in ("info", "warning")
    # The top residual: quality 1 with informativeness 6 and naturalness 5.
    top = inc.tables[0].rows[0]
    assert top[2] == "1" and top[5] == "informativeness=6, naturalness=5"


@pytest.mark.shared_data
def test_nlg_loaded_with_quality_as_score_agrees(
    real_dataset: Callable[[str], Dataset], tmp_path: Path
) -> None:
    """The adapter's ``score=quality`` option (quality also stays an attribute) gives the
    same inconsistencies as the automatic choice of the 'quality' attribute."""
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data absent")
    auto = _run(real_dataset("nlg_emnlp17_ratings"))[1]
    ds = prefkit.convert(
        SHARED_DATA / "nlg_emnlp17_ratings", tmp_path / "ds", read_options={"score": "quality"}
    )
    explicit = _run(ds)[1]
    assert math.isclose(auto.metrics["r2"], explicit.metrics["r2"])
    assert len(auto.ids["response_id"]) == len(explicit.ids["response_id"])
