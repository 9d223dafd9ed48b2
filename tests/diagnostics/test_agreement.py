"""The agreement check: Krippendorff's alpha, pairwise and per-annotator agreement.

Golden values: the ``krippendorff`` package (Castro 2017, a peer implementation of
Krippendorff 2011) on random and real data, to 1e-9; a closed form on a hand-built
dataset; and the planted bad annotators of ``prefkit.synth`` (precision and recall).

``python tests/diagnostics/test_agreement.py`` prints the recovery numbers quoted in
docs/inspect/agreement.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import krippendorff
import numpy as np
import pyarrow as pa
import pytest
from realdata import REAL

from prefkit import Dataset
from prefkit.diagnostics import inspect
from prefkit.diagnostics.checks.agreement import (
    benjamini_hochberg,
    collect_votes,
    krippendorff_alpha,
    observed_expected_agreement,
)
from prefkit.diagnostics.context import Context
from prefkit.schema import TableBuilder, messages
from prefkit.synth import simulate

LEVELS = ("nominal", "ordinal", "interval")


# --- helpers ------------------------------------------------------------------------------------
def _dataset(judgments: list[tuple[str, str, str, int, str | None]]) -> Dataset:
    """One prompt; ``(judgment_id, a, b, outcome, annotator_id)`` rows."""
    responses = sorted({r for _, a, b, _, _ in judgments for r in (a, b)})
    tables: dict[str, pa.Table] = {}
    for name, rows in (
        ("prompts", [{"prompt_id": "p1", "messages": messages(("user", "Q"))}]),
        (
            "responses",
            [
                {"response_id": r, "prompt_id": "p1", "messages": messages(("assistant", r))}
                for r in responses
            ],
        ),
        (
            "judgments",
            [
                {"judgment_id": j, "prompt_id": "p1", "a": a, "b": b, "outcome": o}
                | ({"annotator_id": u} if u else {})
                for j, a, b, o, u in judgments
            ],
        ),
    ):
        builder = TableBuilder(name)
        for row in rows:
            builder.add(**row)
        tables[name] = builder.build()
    return Dataset(tables)


def _units(judgments: pa.Table) -> dict[tuple[str, str, str], list[int]]:
    """Oriented values per item, computed with plain Python (independent of the check)."""
    units: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for row in judgments.select(["prompt_id", "a", "b", "outcome"]).to_pylist():
        a, b, o = row["a"], row["b"], row["outcome"]
        if a == b:  # a response against itself has no orientation; the check skips it
            continue
        lo, hi = sorted((a, b))
        units[(row["prompt_id"], lo, hi)].append(o if a == lo else -o)
    return units


def _reliability(units: dict[Any, list[int]]) -> np.ndarray:
    """The ``krippendorff`` package's input: one column per unit, NaN where no value."""
    cols = [v for v in units.values() if len(v) >= 2]
    data = np.full((max(len(v) for v in cols), len(cols)), np.nan)
    for j, values in enumerate(cols):
        data[: len(values), j] = values
    return data


def _counts(units: dict[Any, list[int]]) -> np.ndarray:
    return np.array([[v.count(-1), v.count(0), v.count(1)] for v in units.values()])


def _finding(report: Any, title: str) -> Any:
    return next(f for f in report.findings if f.title == title)


# --- Krippendorff's alpha against the krippendorff package -----------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_alpha_matches_krippendorff_package_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_units, n_coders = int(rng.integers(5, 300)), int(rng.integers(2, 12))
    data = rng.integers(0, 3, (n_coders, n_units)).astype(float)
    # Correlate coders a little (a shared unit effect) and drop values at random.
    shared = rng.integers(0, 3, n_units)
    data = np.where(rng.random(data.shape) < 0.4, shared, data)
    data[rng.random(data.shape) < rng.uniform(0.0, 0.6)] = np.nan
    counts = np.stack([(data == c).sum(axis=0) for c in range(3)], axis=1)
    if (counts.sum(axis=1) >= 2).sum() < 2 or len(np.unique(data[~np.isnan(data)])) < 2:
        pytest.skip("degenerate draw")
    for level in LEVELS:
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert krippendorff_alpha(counts, level) == pytest.approx(expected, abs=1e-9)


def test_alpha_of_the_check_matches_package_on_synth_with_ties() -> None:
    ds = simulate(n_prompts=400, judgments_per_pair=4, n_annotators=10, tie_threshold=0.3, seed=3)
    units = _units(ds.table("judgments"))
    assert any(0 in v for v in units.values())  # ties present
    metrics = _finding(inspect(ds, checks=["agreement"]), "Annotator agreement").metrics
    data = _reliability(units)
    for level in ("nominal", "ordinal"):
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        # metrics are rounded to 4 decimals for people; compare the full value too
        assert metrics[f"alpha_{level}"] == pytest.approx(expected, abs=1e-4)
        assert krippendorff_alpha(_counts(units), level) == pytest.approx(expected, abs=1e-9)


# --- closed form on a hand-built dataset -----------------------------------------------------------
@pytest.fixture
def tiny() -> Dataset:
    """Three items judged by u1..u4 (orientations mixed):

    (r1, r2): r1, r1 (seen as r2 vs r1), r2, r1      -> values lo, lo, hi, lo
    (r3, r4): tie, tie, r4 (seen as r4 vs r3), tie   -> tie, tie, hi, tie
    (r5, r6): r5 (u1), r6 (u2)                        -> lo, hi: no majority (disputed)
    """
    return _dataset(
        [
            ("j1", "r1", "r2", 1, "u1"),
            ("j2", "r2", "r1", -1, "u2"),
            ("j3", "r1", "r2", -1, "u3"),
            ("j4", "r1", "r2", 1, "u4"),
            ("j5", "r3", "r4", 0, "u1"),
            ("j6", "r3", "r4", 0, "u2"),
            ("j7", "r4", "r3", 1, "u3"),
            ("j8", "r3", "r4", 0, "u4"),
            ("j9", "r5", "r6", 1, "u1"),
            ("j10", "r6", "r5", 1, "u2"),
        ]
    )


def test_closed_form_alpha_and_pairwise_agreement(tiny: Dataset) -> None:
    # Coincidences: n = (hi, tie, lo) = (3, 3, 4), n = 10; off-diagonal sum 6;
    # alpha = 1 - (n - 1) * 6 / (100 - 9 - 9 - 16) = 1 - 54 / 66 = 2 / 11.
    # A_o = 4 / 10 (matching pairable values); A_e = (6 + 6 + 12) / 90.
    report = inspect(tiny, checks=["agreement"])
    m = _finding(report, "Annotator agreement").metrics
    assert m["alpha_nominal"] == pytest.approx(2 / 11, abs=1e-4)
    assert m["pairwise_agreement"] == pytest.approx(0.4, abs=1e-4)
    assert m["chance_agreement"] == pytest.approx(24 / 90, abs=1e-4)
    assert m["multi_judged_items"] == 3
    assert m["disputed_items"] == 1
    counts = collect_votes(Context(tiny)).counts()  # type: ignore[union-attr]
    assert sorted(map(tuple, counts.tolist())) == [(1, 0, 1), (1, 0, 3), (1, 3, 0)]
    a_o, a_e = observed_expected_agreement(counts)
    assert (a_o - a_e) / (1 - a_e) == pytest.approx(2 / 11, abs=1e-12)
    expected_ord = krippendorff.alpha(
        reliability_data=_reliability(_units(tiny.table("judgments"))),
        level_of_measurement="ordinal",
    )
    assert m["alpha_ordinal"] == pytest.approx(expected_ord, abs=1e-4)


def test_disputed_items_give_their_judgment_ids(tiny: Dataset) -> None:
    f = _finding(inspect(tiny, checks=["agreement"]), "Annotator agreement")
    assert sorted(f.ids["judgment_id"]) == ["j10", "j9"]
    assert f.tables[0].rows[0][:4] == ["p1", "r5", "r6", 2]
    assert f.severity == "info"  # only 3 multi-judged items: no verdict on alpha


def test_leave_one_out_agreement_by_hand(tiny: Dataset) -> None:
    # u3 disagrees with the others' majority on both 4-judge items; on (r5, r6) u1 and
    # u2 each disagree with the other's single vote. Nobody is flagged: 4 annotators
    # are fewer than the 5 the median needs.
    f = _finding(
        inspect(tiny, checks=["agreement"], params={"agreement": {"min_items": 1}}),
        "Annotators far below the rest",
    )
    rows = {r[0]: r for r in f.tables[0].rows}
    # columns: annotator_id, judgments, items, scored, agreement, q-value, flagged
    assert rows["u3"][1:5] == [2, 2, 2, 0.0]
    assert rows["u4"][1:5] == [2, 2, 2, 1.0]
    assert rows["u1"][1:5] == [3, 3, 3, pytest.approx(2 / 3, abs=1e-3)]
    assert f.metrics["flagged_annotators"] == 0
    assert f.severity == "info"


def test_tie_in_the_others_vote_is_not_scored() -> None:
    # (r1, r2): u1 lo; u2 lo; u3 hi. For u1 the others split 1-1: not scored.
    ds = _dataset(
        [("j1", "r1", "r2", 1, "u1"), ("j2", "r1", "r2", 1, "u2"), ("j3", "r1", "r2", -1, "u3")]
    )
    f = _finding(
        inspect(ds, checks=["agreement"], params={"agreement": {"min_items": 1}}),
        "Annotators far below the rest",
    )
    rows = {r[0]: r for r in f.tables[0].rows}
    assert rows["u3"][3:5] == [1, 0.0]  # others: lo, lo -> majority lo, u3 said hi
    assert "u1" not in rows and "u2" not in rows  # 0 scored judgments: not eligible
    assert f.metrics["unscored_tied_majority"] == 2


def test_benjamini_hochberg_matches_hand_values() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted: 0.01*4/1=0.04, 0.03*4/2=0.06, 0.04*4/3=0.0533, 0.2 -> monotone from the top
    assert benjamini_hochberg(p).tolist() == pytest.approx([0.04, 0.05333, 0.05333, 0.2], abs=1e-4)


# --- planted bad annotators ------------------------------------------------------------------------
def _recovery(seed: int, n_prompts: int) -> tuple[int, int, int]:
    ds = simulate(
        n_prompts=n_prompts,
        judgments_per_pair=5,
        n_annotators=40,
        bad_annotator_fraction=0.1,
        bad_flip_rate=0.45,
        seed=seed,
    )
    f = _finding(inspect(ds, checks=["agreement"]), "Annotators far below the rest")
    ann = ds.table("annotators")
    ids, planted = ann["annotator_id"].to_pylist(), ann["bad"].to_pylist()
    bad = {a for a, b in zip(ids, planted, strict=True) if b}
    flagged = set(f.ids.get("annotator_id", []))
    if flagged:
        flagged_judgments = set(f.ids["judgment_id"])
        j = ds.table("judgments")
        pairs = zip(j["judgment_id"].to_pylist(), j["annotator_id"].to_pylist(), strict=True)
        by_flagged = {jid for jid, a in pairs if a in flagged}
        assert flagged_judgments == by_flagged
    return len(flagged & bad), len(flagged - bad), len(bad - flagged)


def test_planted_bad_annotators_are_recovered() -> None:
    # 2000 pairs x 5 judges / 40 annotators = 250 judgments each. Measured over 10 seeds:
    # precision 1.0, recall 0.975 (39 of 40); here 3 seeds, each: no false flag and at
    # most one of the 4 bad annotators missed.
    for seed in range(3):
        tp, fp, fn = _recovery(seed, 2000)
        assert fp == 0
        assert fn <= 1 and tp >= 3


def test_no_flags_without_bad_annotators() -> None:
    ds = simulate(n_prompts=1000, judgments_per_pair=5, n_annotators=40, seed=5)
    f = _finding(inspect(ds, checks=["agreement"]), "Annotators far below the rest")
    assert f.severity == "ok" and f.metrics["flagged_annotators"] == 0
    assert f.plots and f.plots[0].kind == "hist"


def test_anonymous_judgments_give_alpha_but_no_annotators() -> None:
    ds = simulate(n_prompts=200, judgments_per_pair=3, n_annotators=6, seed=1)
    j = ds.table("judgments")
    anon = ds.with_tables(
        judgments=j.set_column(
            j.schema.get_field_index("annotator_id"),
            "annotator_id",
            pa.nulls(j.num_rows, pa.string()),
        )
    )
    report = inspect(anon, checks=["agreement"])
    assert _finding(report, "Annotator agreement").metrics["multi_judged_items"] == 200
    assert _finding(report, "Annotators far below the rest").severity == "skipped"
    assert _finding(inspect(ds, checks=["agreement"]), "Annotator agreement").metrics == (
        _finding(report, "Annotator agreement").metrics
    )


def test_skipped_without_repeated_judges() -> None:
    single = simulate(n_prompts=100, seed=0)
    ratings = simulate(kind="ratings", n_prompts=50, seed=0)
    for ds in (single, ratings):
        (f,) = inspect(ds, checks=["agreement"]).findings
        assert f.severity == "skipped"


def test_rankings_count_as_pairwise_values() -> None:
    ds = simulate(
        kind="rankings",
        n_prompts=150,
        responses_per_prompt=3,
        judgments_per_pair=3,
        n_annotators=8,
        tie_threshold=0.3,
        seed=2,
    )
    units: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for row in ds.table("rankings").to_pylist():
        tier_of = {r: t for t, tier in enumerate(row["tiers"]) for r in tier}
        for x in tier_of:
            for y in tier_of:
                if x < y:
                    units[(row["prompt_id"], x, y)].append(int(np.sign(tier_of[y] - tier_of[x])))
    f = _finding(inspect(ds, checks=["agreement"]), "Annotator agreement")
    expected = krippendorff.alpha(
        reliability_data=_reliability(units), level_of_measurement="nominal"
    )
    assert f.metrics["alpha_nominal"] == pytest.approx(expected, abs=1e-4)
    assert f.metrics["multi_judged_items"] == 450
    assert set(f.ids) <= {"ranking_id"}


# --- real data ---------------------------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_datasets(name: str, real_dataset: Callable[[str], Dataset]) -> None:
    ds = real_dataset(name)
    report = inspect(ds, checks=["agreement"])
    titles = {f.title: f for f in report.findings}
    overall = titles.get("Annotator agreement")
    if name in (
        "hh_rlhf_harmless_test",
        "imagereward_test",
        "nlg_emnlp17_ratings",
        "oasst_en100_trees",
    ):
        # one judgment (or ranking) per pair: nothing to agree on
        assert overall is not None and overall.severity == "skipped"
        return
    assert overall is not None and overall.severity != "skipped"
    units = _units(ds.table("judgments"))
    expected = krippendorff.alpha(
        reliability_data=_reliability(units), level_of_measurement="nominal"
    )
    assert krippendorff_alpha(_counts(units), "nominal") == pytest.approx(expected, abs=1e-9)
    assert overall.metrics["alpha_nominal"] == pytest.approx(expected, abs=1e-4)
    annotators = titles["Annotators far below the rest"]
    if name == "ukp_convarg1":
        # 5 crowd labels per pair with "equal" ties: noisy but above chance.
        assert 0.2 < overall.metrics["alpha_nominal"] < 0.35
        assert overall.metrics["alpha_ordinal"] > overall.metrics["alpha_nominal"]
        assert overall.severity == "warning"
        assert overall.metrics["multi_judged_items"] == 16_466
        assert overall.metrics["self_pairs_left_out"] == 75  # 15 pairs of identical texts
        assert annotators.metrics["eligible_annotators"] > 400
        # a handful of workers at most; the rule is conservative
        assert annotators.metrics["flagged_judgment_share"] < 0.02
    elif name == "vicuna80_human_battles":
        # 2,240 (pair, question) items with 3 anonymous judges each (the Claude files: 1)
        assert overall.metrics["multi_judged_items"] == 2240
        assert Counter(len(v) for v in units.values()) == {3: 2240, 1: 320}
        assert annotators.severity == "skipped"
        assert 0.1 < overall.metrics["alpha_nominal"] < 0.3
    elif name == "llmbar":
        # a few pairs appear twice with the same gold label: too few items to judge
        assert overall.severity == "info" and overall.metrics["alpha_nominal"] == 1.0


if __name__ == "__main__":
    for n_prompts in (1000, 2000):
        tp = fp = fn = 0
        for seed in range(10):
            a, b, c = _recovery(seed, n_prompts)
            tp, fp, fn = tp + a, fp + b, fn + c
        print(
            f"n_prompts={n_prompts} (x5 judges / 40 annotators), 10 seeds: "
            f"precision {tp / max(tp + fp, 1):.3f}, recall {tp / (tp + fn):.3f} "
            f"(tp {tp}, fp {fp}, fn {fn})"
        )
