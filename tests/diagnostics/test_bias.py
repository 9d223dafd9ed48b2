"""The bias check: length and position bias.

Golden values come from hand-built datasets (counted by hand in the comments), SciPy's
Wilson interval and exact binomial test as the peer library, planted values from
``prefkit.synth`` (length_bias, position_bias) and independent recounts of the real data
(HH-RLHF straight from its raw jsonl, the others with plain Python over the tables).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from realdata import REAL
from scipy import stats

from prefkit import Dataset, from_pairs
from prefkit.diagnostics import Context, Finding, InspectOptions
from prefkit.diagnostics.checks import bias
from prefkit.schema import messages
from prefkit.synth import simulate


def _run(ds: Dataset, **options: Any) -> list[Finding]:
    return bias.run(Context(ds, InspectOptions(embed="never", **options)))


def _by_title(findings: list[Finding]) -> dict[str, Finding]:
    return {f.title: f for f in findings}


def _text(msgs: list[dict[str, str]] | None) -> str:
    return "\n\n".join(m["content"] or "" for m in msgs or [])


# --- statistics against SciPy ------------------------------------------------------------------
@pytest.mark.parametrize(("k", "n"), [(5, 10), (0, 7), (7, 7), (613, 1000), (3, 40)])
def test_wilson_and_binomial_match_scipy(k: int, n: int) -> None:
    lo, hi = bias.wilson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert lo == pytest.approx(ci.low, abs=1e-9)
    assert hi == pytest.approx(ci.high, abs=1e-9)
    assert float(bias.binom_p(k, n)) == pytest.approx(stats.binomtest(k, n).pvalue, rel=1e-9)


def test_wilson_closed_form() -> None:
    # 5 of 10: centre 0.5, half-width 1.96 * sqrt(0.025 + 1.96²/400) / (1 + 1.96²/10).
    lo, hi = bias.wilson(5, 10)
    assert (float(lo), float(hi)) == pytest.approx((0.236593, 0.763407), abs=1e-6)


# --- hand-built datasets -----------------------------------------------------------------------
# Response word counts: r1 2, r2 4, r3 1, r4 10, r5 2 (same characters as r1), r6 empty.
TEXTS = {"r1": "w w", "r2": "w w w w", "r3": "w", "r4": " ".join(["w"] * 10), "r5": "x x", "r6": ""}


def _hand_dataset(
    judgments: list[tuple[str, str, int]] | None = None, **tables: pa.Table
) -> Dataset:
    prompts = pa.table({"prompt_id": ["p1"], "messages": [messages(("user", "q"))]})
    responses = pa.table(
        {
            "response_id": list(TEXTS),
            "prompt_id": ["p1"] * len(TEXTS),
            "messages": [messages(("assistant", t)) if t else [] for t in TEXTS.values()],
        }
    )
    out = {"prompts": prompts, "responses": responses, **tables}
    if judgments:
        out["judgments"] = pa.table(
            {
                "judgment_id": [f"j{i + 1}" for i in range(len(judgments))],
                "prompt_id": ["p1"] * len(judgments),
                "a": [a for a, _, _ in judgments],
                "b": [b for _, b, _ in judgments],
                "outcome": pa.array([o for _, _, o in judgments], pa.int8()),
            }
        )
    return Dataset(out)


JUDGED = [
    ("r1", "r2", -1),  # j1: r2 (4 words) beats r1 (2): longer wins, ratio 2 -> [2, 3)
    ("r2", "r3", 1),  # j2: r2 (4) beats r3 (1): longer wins, ratio 4 -> [3, inf)
    ("r3", "r4", 1),  # j3: r3 (1) beats r4 (10): shorter wins, ratio 10 -> [3, inf)
    ("r1", "r5", 1),  # j4: equal length (2 vs 2 words, 3 vs 3 chars)
    ("r1", "r2", 0),  # j5: tie
    ("r1", "r6", 1),  # j6: one side has no text: left out of length bias
]


def test_length_bias_golden_values_on_hand_built_judgments() -> None:
    found = _by_title(_run(_hand_dataset(JUDGED)))
    m = found["Length bias"].metrics
    # 4 decisive pairs with text (j1-j4); 3 differ in length; the longer wins 2 of them.
    assert m["decisive_pairs"] == 4
    assert m["pairs_length_differs"] == 3
    assert m["longer_wins"] == pytest.approx(2 / 3)
    lo, hi = stats.binomtest(2, 3).proportion_ci(method="wilson")
    assert (m["longer_wins_ci_low"], m["longer_wins_ci_high"]) == pytest.approx((lo, hi))
    # Baselines: equal-length pairs count half; ties are excluded and reported.
    assert m["pick_longer_accuracy"] == pytest.approx((2 + 0.5) / 4)
    assert m["pick_shorter_accuracy"] == pytest.approx((1 + 0.5) / 4)
    assert m["equal_length_share"] == pytest.approx(1 / 4)
    assert m["ties"] == 1
    assert m["tie_share"] == pytest.approx(1 / 5)
    assert m["pairs_without_text"] == 1
    # Buckets: [2, 3) holds j1 (won by the longer), [3, inf) holds j2 (longer) and j3 (shorter).
    assert m["ratio_2_3_pairs"] == 1 and m["ratio_2_3_longer_wins"] == 1.0
    assert m["ratio_3_inf_pairs"] == 2 and m["ratio_3_inf_longer_wins"] == 0.5
    assert m["ratio_1_1.1_pairs"] == 0
    # Characters: r2 "w w w w" (7) vs r1 "w w" (3), r2 vs r3 (7 vs 1), r3 vs r4 (1 vs 19).
    assert m["longer_wins_chars"] == pytest.approx(2 / 3)
    plot = found["Length bias"].plots[0]
    assert plot.reference == 0.5
    assert plot.series["longer wins (words)"] == [1.0, 0.5]
    # Too few pairs for a significant effect: ok, and then no ids.
    assert found["Length bias"].severity == "ok"
    assert found["Length bias"].ids == {}


def test_position_golden_values_on_hand_built_judgments() -> None:
    pos = _by_title(_run(_hand_dataset(JUDGED)))["Position bias"]
    # Decisive judgments j1, j2, j3, j4, j6: a wins 4 of 5 (the empty side counts here).
    assert pos.metrics["a_wins"] == pytest.approx(4 / 5)
    assert pos.metrics["decisive_judgments"] == 5
    assert pos.metrics["ties"] == 1
    assert pos.severity == "ok"  # the Wilson interval of 4/5 includes 0.5


def test_rankings_and_scores_become_pairs() -> None:
    rankings = pa.table(
        {
            "ranking_id": ["k1", "k2"],
            "prompt_id": ["p1", "p1"],
            # k1: r2 > {r1, r5} > r3 -> 5 pairs, all won by the longer; r1 ~ r5 a tie.
            # k2: r3 > r4 -> won by the shorter.
            "tiers": [[["r2"], ["r1", "r5"], ["r3"]], [["r3"], ["r4"]]],
        }
    )
    ds = _hand_dataset(JUDGED, rankings=rankings)
    scores = ds.responses.set_column(
        ds.responses.column_names.index("score"),
        "score",
        # r2 (3) > r1 (1): longer wins; r5 (3) > r1 (1): equal length; r2 ~ r5 tied.
        pa.array([1.0, 3.0, None, None, 3.0, None]),
    )
    ds = ds.with_tables(responses=scores)
    found = _by_title(_run(ds))
    assert set(found) == {
        "Length bias (judgments)",
        "Length bias (rankings)",
        "Length bias (scores)",
        "Position bias",
    }
    r = found["Length bias (rankings)"].metrics
    assert (r["decisive_pairs"], r["pairs_length_differs"], r["ties"]) == (6, 6, 1)
    assert r["longer_wins"] == pytest.approx(5 / 6)
    s = found["Length bias (scores)"].metrics
    assert (s["decisive_pairs"], s["pairs_length_differs"], s["ties"]) == (2, 1, 1)
    assert s["longer_wins"] == 1.0
    assert s["pick_longer_accuracy"] == pytest.approx((1 + 0.5) / 2)


def test_skips_without_pairs() -> None:
    ds = _hand_dataset()
    (f,) = _run(ds)
    assert f.severity == "skipped"
    assert _run(Dataset())[0].severity == "skipped"


def test_chosen_rejected_files_have_no_meaningful_order() -> None:
    rows = [
        {
            "prompt": f"question {i}",
            "chosen": "good " * (i % 7 + 1),
            "rejected": "bad " * (i % 5 + 1),
        }
        for i in range(30)
    ]
    pos = _by_title(_run(from_pairs(rows)))["Position bias"]
    assert pos.severity == "skipped"
    assert pos.verdict.startswith(
        "order not meaningful: a is always the chosen response (format artifact)"
    )


# --- planted values from synth -----------------------------------------------------------------
def _independent_longer_wins(ds: Dataset) -> tuple[int, int]:
    """(longer wins, decisive pairs whose lengths differ) from the planted word counts."""
    words = dict(
        zip(
            ds.responses.column("response_id").to_pylist(),
            ds.responses.column("n_words").to_pylist(),
            strict=True,
        )
    )
    j = ds.judgments
    aw = np.array([words[x] for x in j.column("a").to_pylist()])
    bw = np.array([words[x] for x in j.column("b").to_pylist()])
    out = np.asarray(j.column("outcome"))
    dec = (out != 0) & (aw != bw)
    longer_won = np.where(out > 0, aw > bw, bw > aw)
    return int(np.count_nonzero(longer_won & dec)), int(np.count_nonzero(dec))


def test_longer_wins_rises_with_planted_length_bias() -> None:
    # 2,000 pairs per run: the Wilson half-width is about 0.022, and each step of
    # length_bias moves the rate by 0.04 or more, so the order is not noise.
    rates = []
    for lb in (0.0, 0.5, 1.0, 2.0):
        ds = simulate(kind="pairwise", n_prompts=2000, length_bias=lb, seed=3)
        f = _by_title(_run(ds))["Length bias"]
        k, m = _independent_longer_wins(ds)
        assert f.metrics["pairs_length_differs"] == m
        assert f.metrics["longer_wins"] == pytest.approx(k / m)
        rates.append(f.metrics["longer_wins"])
        if lb == 0.0:
            assert f.metrics["longer_wins_ci_low"] <= 0.5 <= f.metrics["longer_wins_ci_high"]
            assert f.severity == "ok"
            assert f.ids == {}
        if lb == 2.0:
            assert f.severity in ("warning", "error")
            # ids: every judgment won by the longer response.
            assert len(f.ids["judgment_id"]) == k
    assert rates == sorted(rates) and rates[-1] - rates[0] > 0.2, rates
    # The bucket curve rises too: big length gaps are won by the longer response more often.
    last = f.metrics
    assert last["ratio_2_3_longer_wins"] > last["ratio_1_1.1_longer_wins"]


def test_planted_position_bias_is_recovered() -> None:
    # position_bias = 0.2 forces "a" on 20% of answers; the rest fall on a or b at random
    # (synth shows a random response first), so P(a wins) = 0.2 + 0.8 * 0.5 = 0.6.
    ds = simulate(kind="pairwise", n_prompts=4000, position_bias=0.2, seed=5)
    pos = _by_title(_run(ds))["Position bias"]
    out = np.asarray(ds.judgments.column("outcome"))
    forced = np.asarray(ds.judgments.column("position_biased"))
    dec = out != 0
    assert pos.metrics["a_wins"] == pytest.approx(np.mean(out[dec] > 0))
    assert pos.metrics["a_wins_ci_low"] <= 0.6 <= pos.metrics["a_wins_ci_high"]
    assert abs(pos.metrics["a_wins"] - 0.6) < 0.02
    # The planted column agrees: 20% forced, and the unforced answers are balanced.
    assert abs(forced[dec].mean() - 0.2) < 0.02
    free = dec & ~forced
    lo, hi = bias.wilson(np.count_nonzero(out[free] > 0), np.count_nonzero(free))
    assert lo <= 0.5 <= hi
    assert pos.severity == "warning"  # |0.6 - 0.5| = 0.1 is in the [0.07, 0.15) band
    assert set(pos.ids["judgment_id"]) == set(
        pc.filter(ds.judgments.column("judgment_id"), pa.array(out > 0)).to_pylist()
    )


def test_no_position_bias_is_ok() -> None:
    ds = simulate(kind="pairwise", n_prompts=3000, seed=6)
    pos = _by_title(_run(ds))["Position bias"]
    assert pos.metrics["a_wins_ci_low"] <= 0.5 <= pos.metrics["a_wins_ci_high"]
    assert pos.severity == "ok"
    assert "judgment_id" not in pos.ids


def test_one_side_taking_annotator_is_flagged() -> None:
    ds = simulate(kind="pairwise", n_prompts=3000, n_annotators=10, seed=7)
    j = ds.judgments
    mine = pc.equal(j.column("annotator_id"), "a0003")
    outcome = pc.if_else(mine, pa.scalar(1, pa.int8()), j.column("outcome"))
    ds = ds.with_tables(judgments=j.set_column(j.column_names.index("outcome"), "outcome", outcome))
    pos = _by_title(_run(ds, top=3))["Position bias"]
    assert pos.ids["annotator_id"] == ["a0003"]
    assert pos.tables[0].rows[0][0] == "a0003"
    assert len(pos.tables[0].rows) == 3


def test_battles_position_bias_is_balanced_over_models() -> None:
    ds = simulate(kind="battles", n_prompts=5000, n_models=6, position_bias=0.2, seed=8)
    pos = _by_title(_run(ds))["Position bias"]
    m = pos.metrics
    assert m["model_pairs_both_orders_coverage"] == pytest.approx(1.0)
    assert m["a_wins_model_balanced_ci_low"] <= 0.6 <= m["a_wins_model_balanced_ci_high"]
    assert pos.severity == "warning"


def test_order_tied_to_model_is_not_blamed_on_position() -> None:
    # The strong model is always shown first and wins 27 of 30: a "position" effect that is
    # really model strength.
    n = 30
    prompts = pa.table(
        {"prompt_id": [f"p{i}" for i in range(n)], "messages": [messages(("user", "q"))] * n}
    )
    responses = pa.table(
        {
            "response_id": [f"{s}{i}" for i in range(n) for s in "xy"],
            "prompt_id": [f"p{i}" for i in range(n) for _ in "xy"],
            "messages": [messages(("assistant", "some answer"))] * (2 * n),
            "source": ["strong", "weak"] * n,
        }
    )
    judgments = pa.table(
        {
            "judgment_id": [f"j{i}" for i in range(n)],
            "prompt_id": [f"p{i}" for i in range(n)],
            "a": [f"x{i}" for i in range(n)],
            "b": [f"y{i}" for i in range(n)],
            "outcome": pa.array([1] * 27 + [-1] * 3, pa.int8()),
        }
    )
    ds = Dataset({"prompts": prompts, "responses": responses, "judgments": judgments})
    pos = _by_title(_run(ds))["Position bias"]
    assert pos.metrics["a_wins"] == pytest.approx(0.9)
    assert pos.metrics["model_pairs_both_orders_coverage"] == 0.0
    assert pos.severity == "info"
    assert "cannot be separated" in pos.verdict
    assert "judgment_id" not in pos.ids


# --- real data ---------------------------------------------------------------------------------
def _pairs_from_tables(ds: Dataset) -> tuple[int, int]:
    """(longer wins, decisive judgments with text on both sides and different word counts),
    recounted with plain Python over the tables."""
    words = {
        rid: len(_text(m).split())
        for rid, m in zip(
            ds.responses.column("response_id").to_pylist(),
            ds.responses.column("messages").to_pylist(),
            strict=True,
        )
        if _text(m).strip()
    }
    k = m_ = 0
    for a, b, o in zip(
        ds.judgments.column("a").to_pylist(),
        ds.judgments.column("b").to_pylist(),
        ds.judgments.column("outcome").to_pylist(),
        strict=True,
    ):
        if o == 0 or a not in words or b not in words or words[a] == words[b]:
            continue
        m_ += 1
        k += (words[a] > words[b]) == (o > 0)
    return k, m_


@pytest.mark.shared_data
def test_hh_rlhf_harmless_prefers_shorter_answers(
    real_dataset: Callable[[str], Dataset], shared_data: Path
) -> None:
    # Independent count from the raw file: the response is the last Assistant turn.
    path = shared_data / "hh_rlhf_harmless_test" / "harmless-base_test.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    last = [
        (r["chosen"].rsplit("\n\nAssistant:", 1)[1], r["rejected"].rsplit("\n\nAssistant:", 1)[1])
        for r in rows
    ]
    c = np.array([len(x.split()) for x, _ in last])
    r = np.array([len(y.split()) for _, y in last])
    full = np.array([bool(x.strip()) and bool(y.strip()) for x, y in last])
    differ = full & (c != r)
    raw_rate = float(np.mean(c[differ] > r[differ]))
    assert c[full].mean() < r[full].mean()  # chosen answers are shorter in harmless-base

    found = _by_title(_run(real_dataset("hh_rlhf_harmless_test")))
    m = found["Length bias"].metrics
    # A few transcripts differ before the last turn, so the loader's response can span more
    # than the last turn: allow 2 pairs in 2,263 of difference.
    assert m["longer_wins"] == pytest.approx(raw_rate, abs=0.002)
    assert abs(m["pairs_length_differs"] - int(differ.sum())) <= 2
    assert m["pairs_without_text"] == int((~full).sum()) == 4
    assert m["longer_wins_ci_high"] < 0.5
    assert m["winner_mean_words"] < m["loser_mean_words"]
    assert found["Length bias"].severity == "info"
    assert "shorter response wins" in found["Length bias"].verdict
    pos = found["Position bias"]
    assert pos.severity == "skipped"
    assert "a is always the chosen response (format artifact)" in pos.verdict


@pytest.mark.shared_data
def test_vicuna80_human_judges_favour_longer_answers(
    real_dataset: Callable[[str], Dataset], shared_data: Path
) -> None:
    gens = shared_data / "vicuna80_human_battles" / "generations"
    mean_words = {}
    for f in gens.glob("answer_*.jsonl"):
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        mean_words[f.stem.removeprefix("answer_")] = np.mean(
            [len(x["text"].split()) for x in lines]
        )
    others = [v for k, v in mean_words.items() if k != "gpt4"]
    assert mean_words["gpt4"] > max(others)  # GPT-4 writes the longest answers

    ds = real_dataset("vicuna80_human_battles")
    found = _by_title(_run(ds))
    m = found["Length bias"].metrics
    k, n = _pairs_from_tables(ds)
    assert (m["pairs_length_differs"], m["longer_wins"]) == (n, pytest.approx(k / n))
    assert m["longer_wins_ci_low"] > 0.6
    assert found["Length bias"].severity in ("warning", "error")
    # Guanaco answers are not in the data: their 4,680 decisive judgments have an empty side.
    assert m["pairs_without_text"] == 4680
    pos = found["Position bias"]
    # Every model pair is shown in both orders (except the Claude files): the balanced
    # estimate is used and shows no order effect.
    assert pos.metrics["model_pairs_both_orders_coverage"] > 0.9
    assert (
        pos.metrics["a_wins_model_balanced_ci_low"]
        <= 0.5
        <= pos.metrics["a_wins_model_balanced_ci_high"]
    )
    assert pos.severity == "ok"


@pytest.mark.shared_data
def test_ukp_convarg_longer_arguments_convince(real_dataset: Callable[[str], Dataset]) -> None:
    ds = real_dataset("ukp_convarg1")
    found = _by_title(_run(ds))
    m = found["Length bias"].metrics
    k, n = _pairs_from_tables(ds)
    assert m["pairs_length_differs"] == n
    assert m["longer_wins"] == pytest.approx(k / n)
    assert m["longer_wins_ci_low"] > 0.65
    # Worker labels: a1 32,849 / a2 32,491 / equal 19,105 (SOURCE.md).
    assert m["ties"] == 19_105
    assert m["tie_share"] == pytest.approx(19_105 / 84_445)
    pos = found["Position bias"]
    assert pos.metrics["a_wins"] == pytest.approx(32_849 / (32_849 + 32_491))
    assert pos.severity in ("ok", "info")
    assert pos.metrics["annotators_tested"] > 100


@pytest.mark.shared_data
def test_oasst_rankings_favour_longer_replies(real_dataset: Callable[[str], Dataset]) -> None:
    ds = real_dataset("oasst_en100_trees")
    words = {
        rid: len(_text(msgs).split())
        for rid, msgs in zip(
            ds.responses.column("response_id").to_pylist(),
            ds.responses.column("messages").to_pylist(),
            strict=True,
        )
    }
    k = n = 0
    for tiers in ds.rankings.column("tiers").to_pylist():
        for i, hi in enumerate(tiers):
            for lo in tiers[i + 1 :]:
                for w in hi:
                    for v in lo:
                        if words[w] and words[v] and words[w] != words[v]:
                            n += 1
                            k += words[w] > words[v]
    m = _by_title(_run(ds))["Length bias"].metrics
    assert (m["pairs_length_differs"], m["longer_wins"]) == (n, pytest.approx(k / n))
    assert m["longer_wins_ci_low"] > 0.5


@pytest.mark.shared_data
@pytest.mark.parametrize("data", sorted(REAL))
def test_runs_on_every_real_dataset(real_dataset: Callable[[str], Dataset], data: str) -> None:
    ds = real_dataset(data)
    found = _run(ds, top=5)
    assert all(f.check == "bias" for f in found)
    titles = {f.title: f for f in found}
    if data in ("imagereward_test",):  # images: no text to measure
        assert titles["Length bias"].severity == "skipped"
        assert "without text" in titles["Length bias"].verdict
    elif data == "nlg_emnlp17_ratings":  # ratings only (attributes), no pairs
        assert [f.severity for f in found] == ["skipped"]
    else:
        lb = next(f for t, f in titles.items() if t.startswith("Length bias"))
        assert 0 < lb.metrics["longer_wins"] < 1
        assert not math.isnan(lb.metrics["pick_longer_accuracy"])
    if data == "llmbar":  # LLMBar's adversarial pairs: the better answer is often shorter
        k, n = _pairs_from_tables(ds)
        assert titles["Length bias"].metrics["longer_wins"] == pytest.approx(k / n)
        assert titles["Length bias"].metrics["longer_wins_ci_high"] < 0.5
