"""The duplicates check: planted copies recovered on synth data, identical sides and
contradictory repeats on hand-built datasets (expected values listed by hand), skipped
findings, and what it finds on every real dataset in ../shared/data."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from realdata import REAL
from scipy.stats import binom

from builders import build
from prefkit import Dataset
from prefkit.diagnostics.findings import Finding
from prefkit.diagnostics.inspect import inspect
from prefkit.diagnostics.minhash import MinHashParams, candidate_probability
from prefkit.schema import messages
from prefkit.synth import simulate
from prefkit.views import messages_text, prompt_text


def _run(ds: Dataset, **params: Any) -> dict[str, Finding]:
    report = inspect(
        ds, checks=["duplicates"], embed="never", params={"duplicates": params} if params else {}
    )
    assert all(f.check == "duplicates" for f in report.findings)
    return {f.title: f for f in report.findings}


def _p(pid: str, text: str, **kw: Any) -> dict[str, Any]:
    return {"prompt_id": pid, "messages": messages(("user", text)), **kw}


def _r(rid: str, pid: str, text: str) -> dict[str, Any]:
    return {"response_id": rid, "prompt_id": pid, "messages": messages(("assistant", text))}


def _j(jid: str, pid: str, a: str, b: str, outcome: int, annotator: str = "u1") -> dict[str, Any]:
    return {
        "judgment_id": jid,
        "prompt_id": pid,
        "a": a,
        "b": b,
        "outcome": outcome,
        "annotator_id": annotator,
    }


def _words(text: str) -> set[str]:
    return set(text.lower().split())


def _jaccard(a: str, b: str) -> float:
    sa, sb = _words(a), _words(b)
    return len(sa & sb) / len(sa | sb)


# --- planted duplicates on synth data -------------------------------------------------------------
@pytest.fixture(scope="module")
def planted() -> tuple[Dataset, dict[str, Finding]]:
    ds = simulate(
        kind="pairwise",
        n_prompts=2000,
        duplicate_rate=0.05,
        near_duplicate_rate=0.05,
        near_duplicate_edits=3,
        seed=1,
    )
    return ds, _run(ds)


def test_planted_exact_copies_all_found_and_all_flags_true(
    planted: tuple[Dataset, dict[str, Finding]],
) -> None:
    """Recall 1.0 on the planted exact copies (prompts and their responses); precision
    1.0 against the texts: every flagged copy repeats the normalised text (and context)
    of an earlier row. Synth prompts are short templates, so some originals coincide by
    chance too; those are true duplicates and are flagged as well."""
    ds, found = planted
    exact = found["Exact duplicates"]
    p, r = ds.prompts, ds.responses
    kind = p["duplicate_kind"].to_pylist()
    pids = p["prompt_id"].to_pylist()
    planted_p = {c for c, k in zip(pids, kind, strict=True) if k == "exact"}
    assert len(planted_p) == 100
    assert planted_p <= set(exact.ids["prompt_id"])
    copy_kind = dict(zip(pids, kind, strict=True))
    planted_r = {
        rid
        for rid, pid, orig in zip(
            r["response_id"].to_pylist(),
            r["prompt_id"].to_pylist(),
            r["duplicate_of"].to_pylist(),
            strict=True,
        )
        if orig and copy_kind[pid] == "exact"
    }
    assert len(planted_r) == 200
    assert planted_r <= set(exact.ids["response_id"])
    # precision against the texts
    texts = [
        " ".join(t.lower().split()) for t in prompt_text(p["messages"].combine_chunks()).to_pylist()
    ]
    seen, expected = set(), set()
    for pid, t in zip(pids, texts, strict=True):
        if t in seen:
            expected.add(pid)
        seen.add(t)
    assert set(exact.ids["prompt_id"]) == expected
    assert exact.metrics["prompt_copies"] == len(expected)
    assert exact.severity == "error"  # > 10 % of the prompts are copies


def test_planted_near_copies_found_as_promised(
    planted: tuple[Dataset, dict[str, Finding]],
) -> None:
    """Planted near copies (3 words replaced) are found at least as often as the LSH
    parameters promise given each pair's exact Jaccard of word sets (sum of
    P(candidate) * P(estimate >= t) per pair, minus 4 binomial standard errors: the synth texts share a 314-word
    vocabulary, so one set of permutations moves all pairs a little together, beyond the
    binomial spread); all with J >= 0.95 are found. Precision: >= 85 % of the flagged near
    copies are planted ones, each within Jaccard 0.7 of its original."""
    ds, found = planted
    near = found["Near duplicates"]
    params = MinHashParams()
    bands, rows = params.band_rows
    need = math.ceil(params.threshold * params.num_perm)
    for table, id_col, render in (
        ("prompts", "prompt_id", prompt_text),
        ("responses", "response_id", messages_text),
    ):
        t = ds.table(table)
        ids = t[id_col].to_pylist()
        text = dict(zip(ids, render(t["messages"].combine_chunks()).to_pylist(), strict=True))
        kind = dict(
            zip(
                ds.prompts["prompt_id"].to_pylist(),
                ds.prompts["duplicate_kind"].to_pylist(),
                strict=True,
            )
        )
        pids = t["prompt_id"].to_pylist()
        pairs = [
            (orig, copy)
            for copy, orig, pid in zip(ids, t["duplicate_of"].to_pylist(), pids, strict=True)
            if orig and kind[pid] == "near"
        ]
        j = np.array([_jaccard(text[a], text[b]) for a, b in pairs])
        flagged = set(near.ids.get(id_col, [])) | set(found["Exact duplicates"].ids.get(id_col, []))
        hit = np.array([b in flagged for _, b in pairs])
        promise = candidate_probability(j, bands, rows) * binom.sf(need - 1, params.num_perm, j)
        slack = 4 * math.sqrt(float(np.sum(promise * (1 - promise))))
        assert hit.sum() >= promise.sum() - slack, table
        assert hit[j >= 0.95].all(), table
        # precision: flagged near copies are planted ones (measured 0.89-1.0 over 9 runs:
        # the templated synth prompts also give chance near copies, true by their text),
        # and a flagged planted copy is close to its original
        planted_copy = {b: a for a, b in pairs}
        flagged_near = near.ids.get(id_col, [])
        assert sum(r in planted_copy for r in flagged_near) >= 0.85 * len(flagged_near)
        for rid in flagged_near:
            if rid in planted_copy:
                assert _jaccard(text[rid], text[planted_copy[rid]]) >= params.threshold - 0.1


def test_planted_copies_give_consistent_repeats(
    planted: tuple[Dataset, dict[str, Finding]],
) -> None:
    """Exact copies repeat the original's judgments with the same outcomes: every copied
    pair is a consistent repeat (info), none contradicts."""
    _, found = planted
    rep = found["Contradictory repeats"]
    assert rep.severity == "info"
    assert rep.metrics["contradictory_pairs"] == 0
    assert rep.metrics["repeated_pairs"] >= 100
    assert found["Identical sides"].severity == "ok"


# --- hand-built datasets --------------------------------------------------------------------------
def test_identical_sides_by_kind() -> None:
    """j1: two ids, identical text; j2: differ in case and spacing only; j3: a = b;
    j4: a real pair; j5: two empty responses (left out, counted as empty-sided)."""
    ds = build(
        prompts=[_p("p1", "Say hello"), _p("p2", "Say nothing")],
        responses=[
            _r("r1", "p1", "Hello world"),
            _r("r2", "p1", "hello   WORLD"),
            _r("r3", "p1", "Hello world"),
            _r("r4", "p1", "Goodbye"),
            _r("r5", "p2", ""),
            _r("r6", "p2", "  "),
        ],
        judgments=[
            _j("j1", "p1", "r1", "r3", 1),
            _j("j2", "p1", "r1", "r2", -1),
            _j("j3", "p1", "r4", "r4", 0),
            _j("j4", "p1", "r1", "r4", 1),
            _j("j5", "p2", "r5", "r6", 1),
        ],
    )
    f = _run(ds)["Identical sides"]
    assert f.ids == {"judgment_id": ["j1", "j2", "j3"]}
    m = f.metrics
    assert (m["identical_sides"], m["identical_text"], m["case_whitespace_only"]) == (3, 1, 1)
    assert (m["same_response"], m["decisive"], m["judgments_with_empty_side"]) == (1, 2, 1)
    assert m["identical_sides_share"] == pytest.approx(3 / 5)
    assert f.severity == "error"
    assert [row[3] for row in f.tables[0].rows] == [
        "identical text",
        "case/whitespace only",
        "same response",
    ]


def _contradiction_ds(second_outcome: int) -> Dataset:
    """q1 and q2 are the same prompt text (case/spacing aside) with the same two answers;
    q2 shows them in the other order. q3 has the same texts but one item judged both ways
    by two annotators (disagreement, not a repeat). q4 has the same text under another
    context (a different prompt)."""
    return build(
        prompts=[
            _p("q1", "Which is better?"),
            _p("q2", "which is   better?"),
            _p("q3", "Another question"),
            _p("q4", "Which is better?", context=[("persona", "pirate")]),
        ],
        responses=[
            _r("a1", "q1", "Answer A"),
            _r("b1", "q1", "Answer B"),
            _r("a2", "q2", "answer a"),
            _r("b2", "q2", "Answer B"),
            _r("a3", "q3", "Answer A"),
            _r("b3", "q3", "Answer B"),
            _r("a4", "q4", "Answer A"),
            _r("b4", "q4", "Answer B"),
        ],
        judgments=[
            _j("j1", "q1", "a1", "b1", 1),  # A wins
            _j("j1b", "q1", "a1", "b1", 1, "u2"),  # A wins again (same item)
            _j("j2", "q2", "b2", "a2", second_outcome),  # +1: B wins, -1: A wins
            _j("j3", "q3", "a3", "b3", 1),
            _j("j4", "q3", "a3", "b3", -1, "u2"),
            _j("j5", "q4", "a4", "b4", -1),
        ],
    )


def test_contradictory_repeats_of_the_same_content_pair() -> None:
    f = _run(_contradiction_ds(second_outcome=1))["Contradictory repeats"]
    assert f.ids == {"judgment_id": ["j1", "j1b", "j2"], "prompt_id": ["q1", "q2"]}
    m = f.metrics
    assert (m["contradictory_pairs"], m["contradictory_judgments"], m["repeated_pairs"]) == (
        1,
        3,
        1,
    )
    assert m["contradictory_share"] == pytest.approx(3 / 6)
    assert f.severity == "error"
    assert {row[0] for row in f.tables[0].rows} == {"q1", "q2"}


def test_consistent_repeats_are_info_and_disagreement_is_not_a_repeat() -> None:
    f = _run(_contradiction_ds(second_outcome=-1))["Contradictory repeats"]
    assert f.severity == "info" and f.ids == {}
    assert (f.metrics["repeated_pairs"], f.metrics["repeated_pair_judgments"]) == (1, 3)
    assert f.metrics["contradictory_pairs"] == 0


def test_exact_prompt_key_includes_context_and_copies_keep_the_first_row() -> None:
    found = _run(_contradiction_ds(second_outcome=1))
    exact = found["Exact duplicates"]
    assert exact.ids["prompt_id"] == ["q2"]  # q4 differs by its context
    # response copies: a2 ("answer a") repeats a1, b2 repeats b1 for the same prompt group;
    # a3/b3/a4/b4 repeat them for other prompts (stock answers, reported not flagged)
    assert sorted(exact.ids["response_id"]) == ["a2", "a3", "a4", "b2", "b3", "b4"]
    m = exact.metrics
    assert (m["response_copies_same_prompt"], m["response_copies_other_prompts"]) == (2, 4)
    assert exact.tables[1].title.startswith("Response texts reused")


def test_near_duplicates_can_be_switched_off_and_parameters_reach_the_engine() -> None:
    ds = _contradiction_ds(1)
    assert "Near duplicates" not in _run(ds, near=False)
    near = _run(ds, threshold=0.5, num_perm=64, ngram=2)["Near duplicates"]
    assert near.metrics["minhash_threshold"] == 0.5
    assert near.metrics["minhash_num_perm"] == 64 and near.metrics["minhash_ngram"] == 2
    assert (near.metrics["minhash_bands"], near.metrics["minhash_rows"]) == MinHashParams(
        num_perm=64, threshold=0.5
    ).band_rows


def test_skipped_without_judgments_or_texts() -> None:
    only_prompts = build(prompts=[_p("p1", "hello there"), _p("p2", "Hello  there")])
    found = _run(only_prompts)
    assert found["Exact duplicates"].ids == {"prompt_id": ["p2"]}
    assert found["Identical sides"].severity == "skipped"
    assert found["Contradictory repeats"].severity == "skipped"
    (nothing,) = inspect(Dataset({}), checks=["duplicates"]).findings
    assert nothing.severity == "skipped"


def test_findings_serialise() -> None:
    report = inspect(_contradiction_ds(1), checks=["duplicates"], embed="never")
    d = report.to_dict()
    assert [f["title"] for f in d["findings"]] == [
        "Exact duplicates",
        "Near duplicates",
        "Identical sides",
        "Contradictory repeats",
    ]


# --- real datasets ------------------------------------------------------------------------------
#: What the check finds on each real dataset (default parameters, seed 0).
REAL_EXPECT: dict[str, Callable[[dict[str, Finding]], None]] = {}


def _expect(
    name: str,
) -> Callable[[Callable[[dict[str, Finding]], None]], Callable[[dict[str, Finding]], None]]:
    def deco(fn: Callable[[dict[str, Finding]], None]) -> Callable[[dict[str, Finding]], None]:
        REAL_EXPECT[name] = fn
        return fn

    return deco


@_expect("hh_rlhf_harmless_test")
def _hh(f: dict[str, Finding]) -> None:
    # no repeated prompt; 59 stock answers ("You’re welcome." 11 times) reused across
    # prompts; the 4 empty responses give 4 judgments with an empty side, none identical
    exact = f["Exact duplicates"]
    assert exact.metrics["prompt_copies"] == 0
    assert exact.metrics["response_copies_other_prompts"] == 59
    assert exact.metrics["response_copies_same_prompt"] == 0
    assert exact.metrics["empty_responses"] == 4
    assert exact.tables[0].rows[0][4] == "You’re welcome." and exact.tables[0].rows[0][3] == 11
    assert f["Identical sides"].metrics["identical_sides"] == 0
    assert f["Identical sides"].metrics["judgments_with_empty_side"] == 4
    # near copies are found with a probability (13-14 with seeds 0-1): a loose bound
    assert 8 <= f["Near duplicates"].metrics["prompt_copies"] <= 20
    assert f["Contradictory repeats"].severity == "ok"


@_expect("ukp_convarg1")
def _ukp(f: dict[str, Finding]) -> None:
    # reposted arguments were merged into one response: 15 pairs x 5 workers compare a
    # response with itself (validate's 75 self-comparisons); the topic prompts repeat
    # across the two stances but their contexts differ, so they are not copies
    same = f["Identical sides"]
    assert same.metrics["identical_sides"] == same.metrics["same_response"] == 75
    assert same.severity == "warning"
    assert f["Exact duplicates"].metrics["prompt_copies"] == 0
    # same topic text under the other stance: identical texts (J = 1), always paired
    assert f["Near duplicates"].metrics["prompt_near_pairs"] == 16
    assert f["Near duplicates"].metrics["prompt_copies"] == 0
    # reworded reposts: three response pairs have word-set Jaccard 0.88, 0.86 and 0.75,
    # found with probability ~0.9, ~0.7 and ~0.05; nothing else is near
    near = f["Near duplicates"]
    reposts = {
        "r_5589b0eed4f7db8c070c21101a1ea82d",  # "I think school uniform is a good idea..."
        "r_6bc56b317ce58d6996a49f14fd683467",  # "HE HAS A BOSS(RAFFLES)..."
        "r_f4fbe6461ddfd12e1eadf13df2e5ec7d",  # "Sir Raffles is the rightful founder..."
    }
    assert set(near.ids.get("response_id", [])) <= reposts


@_expect("llmbar")
def _llmbar(f: dict[str, Finding]) -> None:
    same = f["Identical sides"]
    assert same.ids == {"judgment_id": ["Manual/dataset:39"]}
    assert same.metrics["case_whitespace_only"] == 1


@_expect("vicuna80_human_battles")
def _vicuna(f: dict[str, Finding]) -> None:
    # the four Guanaco models' answers are not shipped: 320 empty responses
    assert f["Exact duplicates"].metrics["empty_responses"] == 320
    assert f["Exact duplicates"].metrics["response_copies"] == 0
    assert f["Identical sides"].metrics["judgments_with_empty_side"] == 5280


@_expect("imagereward_test")
def _imagereward(f: dict[str, Finding]) -> None:
    # responses are images: no text, never grouped; rankings only, no judgments
    assert f["Exact duplicates"].metrics["empty_responses"] == 2720
    assert f["Exact duplicates"].metrics["response_copies"] == 0
    assert f["Identical sides"].severity == "skipped"


@_expect("oasst_en100_trees")
def _oasst(f: dict[str, Finding]) -> None:
    # a prompt is the conversation so far: sibling branches share most of it
    near = f["Near duplicates"]
    assert near.metrics["prompt_copies"] > 100 and near.severity == "error"


@_expect("nlg_emnlp17_ratings")
def _nlg(f: dict[str, Finding]) -> None:
    # templated restaurant descriptions: several systems output the same sentence
    exact = f["Exact duplicates"]
    assert exact.metrics["response_copies"] == 210
    assert exact.metrics["response_copies_same_prompt"] == 80
    assert exact.tables[0].rows[0][4] == "x is a restaurant."


def test_every_real_dataset_has_an_expectation() -> None:
    assert set(REAL_EXPECT) == set(REAL)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_dataset(real_dataset: Callable[[str], Dataset], name: str) -> None:
    found = _run(real_dataset(name))
    assert set(found) == {
        "Exact duplicates",
        "Near duplicates",
        "Identical sides",
        "Contradictory repeats",
    }
    REAL_EXPECT[name](found)
