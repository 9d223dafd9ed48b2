"""The ``pairs`` step: hand-checked pairs per strategy on a small UltraFeedback fixture,
equality with ``views.to_pairs`` where strategies coincide, rankings, lineage, errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import prefkit
from prefkit.curation.step import apply, run_step
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.synth import simulate
from prefkit.views import to_pairs

FIXTURE = Path(__file__).parent / "fixtures" / "ultrafeedback_small.jsonl"
G, L, A, P = "gpt-4", "llama-2-7b-chat", "alpaca-7b", "pythia-12b"
# Prompts by their UltraFeedback source. Overall scores (gpt-4, llama, alpaca, pythia):
#   evol: 9 6 6 2 (tie in the middle)   false: 8 8 5 3 (tie at the top)
#   flan: 7 4 4 4 (tie at the bottom)   share: 5 5 5 5 (all tie)
EVOL, FALSE, FLAN, SHARE = "evol_instruct", "false_qa", "flan_v2", "sharegpt"

BEST_VS_WORST = {
    (EVOL, G, P, 7.0),
    (FALSE, G, P, 5.0),
    (FALSE, L, P, 5.0),
    (FLAN, G, L, 3.0),
    (FLAN, G, A, 3.0),
    (FLAN, G, P, 3.0),
}
ALL_RANKED = {
    (EVOL, G, L, 3.0),
    (EVOL, G, A, 3.0),
    (EVOL, G, P, 7.0),
    (EVOL, L, P, 4.0),
    (EVOL, A, P, 4.0),
    (FALSE, G, A, 3.0),
    (FALSE, G, P, 5.0),
    (FALSE, L, A, 3.0),
    (FALSE, L, P, 5.0),
    (FALSE, A, P, 2.0),
    (FLAN, G, L, 3.0),
    (FLAN, G, A, 3.0),
    (FLAN, G, P, 3.0),
}
ADJACENT = {
    (EVOL, G, L, 3.0),
    (EVOL, G, A, 3.0),
    (EVOL, L, P, 4.0),
    (EVOL, A, P, 4.0),
    (FALSE, G, A, 3.0),
    (FALSE, L, A, 3.0),
    (FALSE, A, P, 2.0),
    (FLAN, G, L, 3.0),
    (FLAN, G, A, 3.0),
    (FLAN, G, P, 3.0),
}
ABOVE_4 = {
    (EVOL, G, P, 7.0),
    (EVOL, L, P, 4.0),
    (EVOL, A, P, 4.0),
    (FALSE, G, P, 5.0),
    (FALSE, L, P, 5.0),
}
# Same-tier pairs (unordered), as tie judgments under ties="keep".
TIES_ALL = {
    (EVOL, frozenset((L, A))),
    (FALSE, frozenset((G, L))),
    (FLAN, frozenset((L, A))),
    (FLAN, frozenset((L, P))),
    (FLAN, frozenset((A, P))),
    *((SHARE, frozenset(p)) for p in [(G, L), (G, A), (G, P), (L, A), (L, P), (A, P)]),
}


@pytest.fixture(scope="module")
def uf() -> Dataset:
    return prefkit.load(FIXTURE)


def _names(ds: Dataset) -> tuple[dict[str, str], dict[str, str]]:
    prompt = dict(
        zip(
            ds.prompts.column("prompt_id").to_pylist(),
            ds.prompts.column("source").to_pylist(),
            strict=True,
        )
    )
    model = dict(
        zip(
            ds.responses.column("response_id").to_pylist(),
            ds.responses.column("source").to_pylist(),
            strict=True,
        )
    )
    return prompt, model


def _decisive(ds: Dataset) -> set[tuple[str, str, str, float]]:
    prompt, model = _names(ds)
    return {
        (prompt[j["prompt_id"]], model[j["a"]], model[j["b"]], j["strength"])
        for j in ds.judgments.to_pylist()
        if j["outcome"] == 1
    }


def _ties(ds: Dataset) -> set[tuple[str, frozenset[str]]]:
    prompt, model = _names(ds)
    return {
        (prompt[j["prompt_id"]], frozenset((model[j["a"]], model[j["b"]])))
        for j in ds.judgments.to_pylist()
        if j["outcome"] == 0
    }


@pytest.mark.parametrize(
    ("strategy", "params", "expected"),
    [
        ("best-vs-worst", {}, BEST_VS_WORST),
        ("all-ranked", {}, ALL_RANKED),
        ("adjacent", {}, ADJACENT),
        ("all-above-margin", {"margin": 4}, ABOVE_4),
        ("all-above-margin", {"margin": 3}, ALL_RANKED - {(FALSE, A, P, 2.0)}),
    ],
)
def test_hand_checked_pairs(uf: Dataset, strategy: str, params: dict, expected: set) -> None:
    out = apply(uf, "pairs", strategy=strategy, **params)
    assert _decisive(out) == expected
    assert out.judgments.num_rows == len(expected)
    j = out.judgments
    assert set(j.column("annotator_kind").to_pylist()) == {"rule"}
    assert set(j.column("origin").to_pylist()) == {"scores"}
    assert set(j.column("strategy").to_pylist()) == {strategy}
    assert len(set(j.column("judgment_id").to_pylist())) == j.num_rows


def test_ties_keep(uf: Dataset) -> None:
    out = apply(uf, "pairs", strategy="all-ranked", ties="keep")
    assert _decisive(out) == ALL_RANKED
    assert _ties(out) == TIES_ALL
    assert set(
        out.judgments.filter(pa.compute.equal(out.judgments["outcome"], 0))["strength"].to_pylist()
    ) == {0.0}
    bvw = apply(uf, "pairs", strategy="best-vs-worst", ties="keep")
    assert _decisive(bvw) == BEST_VS_WORST
    # only the all-tied prompt has best = worst
    assert _ties(bvw) == {t for t in TIES_ALL if t[0] == SHARE}
    above = apply(uf, "pairs", strategy="all-above-margin", margin=4, ties="keep")
    assert _ties(above) == TIES_ALL


def test_best_vs_random(uf: Dataset) -> None:
    top = {EVOL: {G}, FALSE: {G, L}, FLAN: {G}}
    picks = set()
    for seed in range(8):
        out = apply(uf, "pairs", strategy="best-vs-random", seed=seed)
        got = _decisive(out)
        assert sorted(p[0] for p in got) == [EVOL, FALSE, FLAN]  # one pair per prompt
        assert got <= ALL_RANKED  # chosen beats rejected, strength = score gap
        assert all(p[1] in top[p[0]] for p in got)
        picks.add(frozenset(got))
        again = apply(uf, "pairs", strategy="best-vs-random", seed=seed)
        assert again.fingerprint() == out.fingerprint()
    assert len(picks) > 1  # the draw depends on the seed
    keep = apply(uf, "pairs", strategy="best-vs-random", ties="keep", seed=3)
    # with ties kept, the all-tied prompt gets one tie judgment too
    assert sum(1 for t in _ties(keep) if t[0] == SHARE) == 1


def test_score_key_attribute(uf: Dataset) -> None:
    out = apply(uf, "pairs", score_key="helpfulness")
    assert _decisive(out) == {
        (EVOL, G, P, 4.0),
        (FALSE, L, P, 3.0),
        (FLAN, G, L, 2.0),
        (FLAN, G, P, 2.0),
    }


def test_weights(uf: Dataset) -> None:
    out = apply(uf, "pairs", weights="helpfulness=1,honesty=0.5")
    prompt, model = _names(out)
    ws = {
        (prompt[r["prompt_id"]], model[r["response_id"]]): r["weighted_score"]
        for r in out.responses.to_pylist()
    }
    # llama on flan has honesty "N/A": no weighted score
    assert ws[(EVOL, G)] == 7.5 and ws[(EVOL, A)] == 5.5 and ws[(EVOL, P)] == 2.0
    assert ws[(FALSE, L)] == 6.5 and ws[(FLAN, L)] is None and ws[(SHARE, L)] == 5.0
    assert _decisive(out) == {
        (EVOL, G, P, 5.5),
        (FALSE, L, P, 4.0),
        (FLAN, G, P, 3.5),
        (SHARE, L, G, 0.5),
        (SHARE, L, A, 0.5),
        (SHARE, L, P, 0.5),
    }


@pytest.mark.parametrize("strategy", ["best-vs-worst", "all-ranked", "adjacent"])
def test_equals_view(strategy: str) -> None:
    view = {"best-vs-worst": "best_vs_worst", "all-ranked": "all", "adjacent": "adjacent"}
    for kind, source in (("ratings", "scores"), ("rankings", "rankings")):
        ds = simulate(kind=kind, n_prompts=150, responses_per_prompt=4, seed=2)
        expected = to_pairs(ds, **{source: view[strategy]})
        out = apply(ds, "pairs", source=source, strategy=strategy, replace=True)
        got = to_pairs(out, annotators="each")
        cols = ["prompt_id", "chosen_id", "rejected_id", "strength"]
        assert sorted(got.select(cols).to_pylist(), key=str) == sorted(
            expected.select(cols).to_pylist(), key=str
        )


def test_rankings_hand_checked() -> None:
    ds = Dataset(
        {
            "prompts": pa.table({"prompt_id": ["p"]}),
            "responses": pa.table(
                {"response_id": ["r1", "r2", "r3", "r4"], "prompt_id": ["p"] * 4}
            ),
            "rankings": pa.table(
                {
                    "ranking_id": ["k1", "k2"],
                    "prompt_id": ["p", "p"],
                    "tiers": [[["r1"], ["r2", "r3"], ["r4"]], [["r2"], ["r1"], ["r3"]]],
                    "annotator_id": ["ann1", "ann2"],
                }
            ),
        }
    )
    out = apply(ds, "pairs", source="rankings", strategy="all-ranked")
    got = {(j["annotator_id"], j["a"], j["b"], j["strength"]) for j in out.judgments.to_pylist()}
    assert got == {
        ("ann1", "r1", "r2", 1.0),
        ("ann1", "r1", "r3", 1.0),
        ("ann1", "r1", "r4", 2.0),
        ("ann1", "r2", "r4", 1.0),
        ("ann1", "r3", "r4", 1.0),
        ("ann2", "r2", "r1", 1.0),
        ("ann2", "r2", "r3", 2.0),
        ("ann2", "r1", "r3", 1.0),
    }
    assert out.judgments.num_rows == 8  # r1>r3 twice: two rankings, two ids
    bvw = apply(ds, "pairs", source="rankings", strategy="best-vs-worst", ties="keep")
    got = {(j["a"], j["b"], j["outcome"]) for j in bvw.judgments.to_pylist()}
    assert got == {("r1", "r4", 1), ("r2", "r3", 1)}
    assert set(out.judgments.column("origin").to_pylist()) == {"rankings"}


def test_replace_keep_and_lineage(uf: Dataset) -> None:
    first = apply(uf, "pairs", strategy="best-vs-worst")
    # keep: the all-ranked pairs are added, the 6 best-vs-worst pairs (same ids) not twice
    both, outcome = run_step(first, "pairs", strategy="all-ranked")
    assert both.judgments.num_rows == 13
    assert set(both.judgments.column("strategy").to_pylist()) == {"best-vs-worst", "all-ranked"}
    entry = both.manifest.lineage[-1]
    assert entry["step"] == "pairs" and entry["params"]["strategy"] == "all-ranked"
    assert entry["added"] == {"judgments": 7}
    assert outcome.info == {"pairs": 13, "ties": 0}
    replaced = apply(first, "pairs", strategy="adjacent", replace=True)
    assert _decisive(replaced) == ADJACENT
    entry = replaced.manifest.lineage[-1]
    assert entry["reasons"] == {"judgments": {"replaced by pairs": 6}}
    assert entry["removed"] == {"judgments": 3}  # the 3 flan pairs are adjacent too
    assert apply(uf, "pairs").fingerprint() == first.fingerprint()


def test_lineage_survives_save_load(uf: Dataset, tmp_path: Path) -> None:
    out = apply(uf, "pairs", strategy="all-ranked", ties="keep")
    out.save(tmp_path / "ds")
    back = prefkit.load(tmp_path / "ds")
    assert back.manifest.lineage[-1]["params"]["strategy"] == "all-ranked"
    assert back.fingerprint() == out.fingerprint()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"strategy": "best-vs-worst", "margin": 1}, "margin"),
        ({"strategy": "all-above-margin", "margin": -1}, "margin"),
        ({"weights": "helpfulness"}, "weights"),
        ({"weights": "helpfulness=x"}, "weights"),
        ({"source": "rankings", "weights": "helpfulness=1"}, "weights"),
        ({"source": "rankings"}, "rankings"),
        ({"score_key": "nope"}, "score_key"),
        ({"strategy": "best"}, "strategy"),
        ({"ties": "maybe"}, "ties"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_params(uf: Dataset, params: dict, name: str) -> None:
    with pytest.raises(PrefkitError, match=name):
        apply(uf, "pairs", **params)
