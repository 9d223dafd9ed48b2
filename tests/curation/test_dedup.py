"""The dedup step: planted copies on synth data (exact set equality where synth makes no
chance collisions, text-checked precision and LSH-promised recall where it does), the
best-supported copy kept on hand-built fixtures, response copies remapped or dropped,
the report, lineage through save/load, determinism and bad parameters."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from builders import build
from prefkit import Dataset, load
from prefkit.curation.step import apply, run_step
from prefkit.diagnostics.minhash import MinHashParams, candidate_probability
from prefkit.errors import PrefkitError
from prefkit.schema import messages
from prefkit.synth import simulate
from prefkit.views import prompt_text


def _p(pid: str, text: str) -> dict[str, Any]:
    return {"prompt_id": pid, "messages": messages(("user", text))}


def _r(rid: str, pid: str, text: str) -> dict[str, Any]:
    return {"response_id": rid, "prompt_id": pid, "messages": messages(("assistant", text))}


def _j(jid: str, pid: str, a: str, b: str, outcome: int = 1) -> dict[str, Any]:
    return {"judgment_id": jid, "prompt_id": pid, "a": a, "b": b, "outcome": outcome}


def _k(kid: str, pid: str, tiers: list[list[str]]) -> dict[str, Any]:
    return {"ranking_id": kid, "prompt_id": pid, "tiers": tiers}


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _words(text: str) -> set[str]:
    return set(text.lower().split())


def _jaccard(a: str, b: str) -> float:
    sa, sb = _words(a), _words(b)
    return len(sa & sb) / len(sa | sb)


def _report(outcome: Any, table: str) -> dict[str, tuple[str, str]]:
    rows = outcome.report.to_pylist()
    return {r["id"]: (r["reason"], r["detail"]) for r in rows if r["table"] == table}


# --- planted copies on synth data --------------------------------------------------------------
@pytest.fixture(scope="module")
def planted() -> Dataset:
    return simulate(n_prompts=2000, duplicate_rate=0.05, near_duplicate_rate=0.05, seed=1)


def test_short_synth_prompts_dropped_copies_are_copies_and_planted_ones_found(
    planted: Dataset,
) -> None:
    """Synth's 20-word template prompts also collide by chance, so: every dropped prompt
    is a copy of the kept one it names (same normalised text, a planted near copy, or
    within Jaccard 0.7 by its words: a chance near copy), every planted exact copy is
    dropped, and the planted near copies are dropped at least as often as the LSH
    parameters promise (as in the duplicates check's test)."""
    out, o = run_step(planted, "dedup", what="prompts")
    p = planted.prompts
    ids = p["prompt_id"].to_pylist()
    text = dict(zip(ids, prompt_text(p["messages"].combine_chunks()).to_pylist(), strict=True))
    orig = dict(zip(ids, p["duplicate_of"].to_pylist(), strict=True))
    kind = dict(zip(ids, p["duplicate_kind"].to_pylist(), strict=True))
    dropped = _report(o, "prompts")
    kept = set(out.prompts["prompt_id"].to_pylist())
    assert set(ids) - kept == set(dropped)
    root = {i: orig[i] or i for i in ids}
    for d, (reason, k) in dropped.items():
        assert k in kept
        if reason == "duplicate prompt":
            assert _norm(text[d]) == _norm(text[k])
        else:
            assert reason == "near-duplicate prompt"
            assert _norm(text[root[d]]) == _norm(text[root[k]]) or _jaccard(text[d], text[k]) >= 0.7
    exact = {i for i in ids if kind[i] == "exact"}
    assert len(exact) == 100 and exact <= set(dropped)
    # near copies: recall at least the LSH's promise given each pair's word Jaccard
    params = MinHashParams()
    bands, rows = params.band_rows
    pairs = [(orig[i], i) for i in ids if kind[i] == "near"]
    j = np.array([_jaccard(text[a], text[b]) for a, b in pairs])
    hit = np.array([b in dropped or a in dropped for a, b in pairs])
    need = math.ceil(params.threshold * params.num_perm)
    promise = candidate_probability(j, bands, rows) * binom.sf(need - 1, params.num_perm, j)
    slack = 4 * math.sqrt(float(np.sum(promise * (1 - promise))))
    assert hit.sum() >= promise.sum() - slack
    assert hit[j >= 0.95].all()
    # cascade: the dropped prompts' responses and judgments went too
    assert not set(out.responses["prompt_id"].to_pylist()) - kept
    assert not set(out.judgments["prompt_id"].to_pylist()) - kept


def test_long_synth_prompts_drop_exactly_the_planted_copies() -> None:
    """With 80-word prompts synth makes no chance collisions (checked): dedup removes
    exactly the planted exact copies (near=False) and exactly the planted exact and near
    copies (near=True), keeping each original (equal support: first in table order).
    Near copies have one word edited (Jaccard >= 0.9 for the shortest prompts) and the
    threshold is 0.6, so the LSH finds each with probability ~1; at threshold 0.5 chance
    pairs of these template texts appear, at 0.8 with 3 edits a few copies fall below."""
    ds = simulate(
        n_prompts=2000,
        duplicate_rate=0.05,
        near_duplicate_rate=0.05,
        prompt_words=80,
        near_duplicate_edits=1,
        seed=1,
    )
    p = ds.prompts
    ids = p["prompt_id"].to_pylist()
    texts = [_norm(t) for t in prompt_text(p["messages"].combine_chunks()).to_pylist()]
    kind = dict(zip(ids, p["duplicate_kind"].to_pylist(), strict=True))
    orig = dict(zip(ids, p["duplicate_of"].to_pylist(), strict=True))
    originals = [t for t, i in zip(texts, ids, strict=True) if kind[i] is None]
    assert len(set(originals)) == len(originals)  # no chance collision
    exact = {i for i in ids if kind[i] == "exact"}
    near = {i for i in ids if kind[i] == "near"}

    _, o = run_step(ds, "dedup", what="prompts", near=False)
    got = _report(o, "prompts")
    assert set(got) == exact
    assert all(v == ("duplicate prompt", orig[i]) for i, v in got.items())

    out, o = run_step(ds, "dedup", what="prompts", threshold=0.6)
    got = _report(o, "prompts")
    assert set(got) == exact | near
    assert {i for i, v in got.items() if v[0] == "near-duplicate prompt"} == near
    assert all(v[1] == orig[i] for i, v in got.items())
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "dedup"
    assert entry["removed"]["prompts"] == 200
    assert entry["reasons"]["prompts"] == {"duplicate prompt": 100, "near-duplicate prompt": 100}
    assert entry["reasons"]["responses"] == {
        "duplicate prompt (cascade)": 200,
        "near-duplicate prompt (cascade)": 200,
    }


# --- which copy is kept ------------------------------------------------------------------------
def test_best_supported_copy_is_kept() -> None:
    """Group 1: p1 (no labels) and p2 (two judgments) -> p2 kept. Group 2: p3 and p4 tie on
    judgments (1 each), p4 has a ranking -> p4 kept. Group 3: p5 and p6 tie on judgments
    and rankings, p6 has more responses -> p6 kept. Group 4: p7 and p8 tie everywhere ->
    p7 (first in table order) kept."""
    ds = build(
        prompts=[
            _p("p1", "Hello there"),
            _p("p2", "hello   THERE"),
            _p("p3", "Name a color"),
            _p("p4", "name a color"),
            _p("p5", "Tell a joke"),
            _p("p6", "tell a joke"),
            _p("p7", "Write a poem"),
            _p("p8", "write a poem"),
        ],
        responses=[
            _r("r2a", "p2", "Hi"),
            _r("r2b", "p2", "Hello"),
            _r("r3a", "p3", "Red"),
            _r("r3b", "p3", "Blue"),
            _r("r4a", "p4", "Green"),
            _r("r4b", "p4", "Gray"),
            _r("r5a", "p5", "Knock knock"),
            _r("r6a", "p6", "Why did"),
            _r("r6b", "p6", "A man walks"),
        ],
        judgments=[
            _j("j1", "p2", "r2a", "r2b"),
            _j("j2", "p2", "r2b", "r2a"),
            _j("j3", "p3", "r3a", "r3b"),
            _j("j4", "p4", "r4a", "r4b"),
        ],
        rankings=[_k("k1", "p4", [["r4a"], ["r4b"]])],
    )
    out, o = run_step(ds, "dedup", near=False)
    assert _report(o, "prompts") == {
        "p1": ("duplicate prompt", "p2"),
        "p3": ("duplicate prompt", "p4"),
        "p5": ("duplicate prompt", "p6"),
        "p8": ("duplicate prompt", "p7"),
    }
    assert out.prompts["prompt_id"].to_pylist() == ["p2", "p4", "p6", "p7"]
    assert out.judgments["judgment_id"].to_pylist() == ["j1", "j2", "j4"]
    cascade = _report(o, "responses")
    assert cascade == {
        "r3a": ("duplicate prompt (cascade)", None),
        "r3b": ("duplicate prompt (cascade)", None),
        "r5a": ("duplicate prompt (cascade)", None),
    }


# --- response copies within a prompt -----------------------------------------------------------
def _responses_fixture() -> Dataset:
    """p1: r1 and r2 are the same text (r2 better supported: 3 judgments against r1's 2;
    both in 2 rankings), r3 differs; p2's r4 repeats that text for another prompt (a
    stock answer, kept)."""
    return build(
        prompts=[_p("p1", "Say something"), _p("p2", "Say anything else")],
        responses=[
            _r("r1", "p1", "Same answer here"),
            _r("r2", "p1", "same  answer HERE"),
            _r("r3", "p1", "A different answer"),
            _r("r4", "p2", "Same answer here"),
            _r("r5", "p2", "Another one"),
        ],
        judgments=[
            _j("j1", "p1", "r1", "r3", 1),
            _j("j2", "p1", "r2", "r3", -1),
            _j("j3", "p1", "r1", "r2", 0),
            _j("j4", "p2", "r4", "r5", 1),
            _j("j5", "p1", "r3", "r2", 1),
        ],
        rankings=[
            _k("k1", "p1", [["r2"], ["r3"]]),
            _k("k2", "p1", [["r1"], ["r2"]]),
            _k("k3", "p1", [["r3"], ["r1"]]),
        ],
    )


def test_response_copies_remapped_to_the_kept_copy() -> None:
    """Remap (default): r1 goes (kept r2); j1 now compares r2 with r3, j3 (r1 vs r2) is a
    self-comparison and goes; k2 ([r1] > [r2]) is left with one response and goes; k3
    becomes [r3] > [r2]. r4 (same text, other prompt) stays."""
    out, o = run_step(_responses_fixture(), "dedup", what="responses")
    assert _report(o, "responses") == {"r1": ("duplicate response", "r2")}
    assert _report(o, "judgments") == {"j3": ("duplicate response (self-comparison)", "r2")}
    assert _report(o, "rankings") == {
        "k2": ("duplicate response (self-comparison)", "fewer than two responses left")
    }
    assert out.responses["response_id"].to_pylist() == ["r2", "r3", "r4", "r5"]
    j = out.judgments.to_pylist()
    assert [(r["judgment_id"], r["a"], r["b"], r["outcome"]) for r in j] == [
        ("j1", "r2", "r3", 1),
        ("j2", "r2", "r3", -1),
        ("j4", "r4", "r5", 1),
        ("j5", "r3", "r2", 1),
    ]
    k = out.rankings.to_pylist()
    assert [(r["ranking_id"], r["tiers"]) for r in k] == [
        ("k1", [["r2"], ["r3"]]),
        ("k3", [["r3"], ["r2"]]),
    ]
    entry = out.manifest.lineage[-1]
    assert entry["removed"] == {"responses": 1, "judgments": 1, "rankings": 1}
    assert entry["info"]["judgments_remapped"] == 2
    assert entry["info"]["ranking_entries_remapped"] == 2


def test_response_copies_dropped_with_their_judgments() -> None:
    out, o = run_step(_responses_fixture(), "dedup", what="responses", judgments="drop")
    assert _report(o, "responses") == {"r1": ("duplicate response", "r2")}
    assert set(_report(o, "judgments")) == {"j1", "j3"}
    assert out.judgments["judgment_id"].to_pylist() == ["j2", "j4", "j5"]
    # r1 leaves every ranking: k2 and k3 keep one response each and go
    assert out.rankings["ranking_id"].to_pylist() == ["k1"]
    assert out.manifest.lineage[-1]["reasons"]["judgments"] == {"duplicate response (cascade)": 2}


# --- lineage, determinism, parameters ----------------------------------------------------------
def test_lineage_survives_save_load_and_rerun_is_identical(tmp_path: Path) -> None:
    ds = simulate(n_prompts=300, duplicate_rate=0.05, near_duplicate_rate=0.05, seed=3)
    out = apply(ds, "dedup", threshold=0.7)
    again = apply(ds, "dedup", threshold=0.7)
    assert out.fingerprint() == again.fingerprint()
    out.save(tmp_path / "d")
    loaded = load(tmp_path / "d")
    assert loaded.fingerprint() == out.fingerprint()
    assert loaded.manifest.lineage == out.manifest.lineage
    entry = loaded.manifest.lineage[-1]
    assert entry["step"] == "dedup" and entry["params"]["threshold"] == 0.7
    assert entry["removed"]["prompts"] == ds.num_rows("prompts") - out.num_rows("prompts")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"num_perm": 1}, "num_perm"),
        ({"what": "judgments"}, "what"),
        ({"judgments": "keep"}, "judgments"),
        ({"near": "maybe"}, "near"),
        ({"ngram": 0}, "ngram"),
    ],
)
def test_bad_parameters_name_the_parameter(params: dict[str, Any], name: str) -> None:
    ds = _responses_fixture()
    with pytest.raises(PrefkitError, match=name):
        apply(ds, "dedup", **params)
