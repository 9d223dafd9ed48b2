"""select (FiFA-style): exact top-k by margin, monotone diversity trade-off, lineage."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from prefkit.curation import apply, run_step
from prefkit.curation.pairframe import frame
from prefkit.curation.steps.select import knn_entropy, ngram_vectors, qualities
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.synth import simulate

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]
CLUSTERS = {
    "bread": ("how do i bake a loaf of sourdough bread with wild yeast at home", 0.9),
    "physics": ("explain the basic ideas of quantum entanglement to a curious student", 0.5),
    "football": ("which football club won the most league titles in the last decade", 0.3),
}


def _clustered() -> Dataset:
    """Three prompt clusters of 12 near-identical prompts; margins (strength) planted by
    cluster, highest in 'bread', with a small decreasing offset inside each cluster."""
    p, r, j = [], [], []
    for c, (text, m) in CLUSTERS.items():
        for i, w in enumerate(WORDS):
            pid = f"{c}{i}"
            p.append({"prompt_id": pid, "messages": [{"role": "user", "content": f"{text} {w}"}]})
            for s in "ab":
                r.append(
                    {
                        "response_id": f"{pid}{s}",
                        "prompt_id": pid,
                        "messages": [{"role": "assistant", "content": f"answer {s}"}],
                    }
                )
            j.append(
                {
                    "judgment_id": f"j_{pid}",
                    "prompt_id": pid,
                    "a": f"{pid}a",
                    "b": f"{pid}b",
                    "outcome": 1,
                    "strength": m - 0.01 * i,
                }
            )
    j.append(
        {
            "judgment_id": "tie",
            "prompt_id": "bread0",
            "a": "bread0a",
            "b": "bread0b",
            "outcome": 0,
            "strength": 5.0,
        }
    )
    jt = pa.Table.from_pylist(j)
    jt = jt.set_column(
        jt.schema.get_field_index("outcome"), "outcome", jt.column("outcome").cast(pa.int8())
    )
    return Dataset(
        {"prompts": pa.Table.from_pylist(p), "responses": pa.Table.from_pylist(r), "judgments": jt}
    )


def test_top_k_by_planted_margin_when_no_diversity() -> None:
    ds = simulate(n_prompts=400, seed=5)
    out, oc = run_step(ds, "select", k=50, w_diversity=0, margin_from="margin")
    margin = np.abs(np.asarray(ds.judgments["margin"]))
    top = set(np.asarray(ds.judgments["judgment_id"])[np.argsort(-margin, kind="stable")[:50]])
    assert set(out.judgments["judgment_id"].to_pylist()) == top
    order = np.asarray(out.judgments["select_order"])
    picked = np.abs(np.asarray(out.judgments["margin"]))[np.argsort(order)]
    assert sorted(order) == list(range(50)) and np.all(np.diff(picked) <= 0)
    entry = out.manifest.lineage[-1]
    assert entry["removed"]["judgments"] == ds.num_rows("judgments") - 50
    assert entry["reasons"]["judgments"] == {"select: not selected": ds.num_rows("judgments") - 50}
    # pruning drops the prompts (and their responses) left without a pair
    assert out.num_rows("prompts") == len(set(out.judgments["prompt_id"].to_pylist()))
    assert "select: prompt without a selected pair" in entry["reasons"]["prompts"]
    assert oc.info["selected"] == 50 and len(oc.info["curve"]) == 5
    assert oc.info["mean_margin"] == pytest.approx(np.sort(margin)[::-1][:50].mean())


def test_diversity_trades_margin_for_entropy() -> None:
    ds = _clustered()
    weights = [0.0, 0.5, 1.0, 2.0, 4.0]
    out, oc = run_step(
        ds, "select", k=6, quality_from="none", w_diversity=0, curve=",".join(map(str, weights))
    )
    kept = out.judgments["judgment_id"].to_pylist()
    assert sorted(kept) == sorted(f"j_bread{i}" for i in range(6))  # exact top-6 margins
    curve = oc.info["curve"]
    assert [pt["w_diversity"] for pt in curve] == weights
    ent = [pt["entropy"] for pt in curve]
    mm = [pt["mean_margin"] for pt in curve]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ent))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(mm))
    assert ent[-1] > ent[0] and mm[-1] < mm[0]
    high, _ = run_step(ds, "select", k=6, quality_from="none", w_diversity=4.0)
    clusters = {pid.rstrip("0123456789") for pid in high.judgments["prompt_id"].to_pylist()}
    assert clusters == set(CLUSTERS)
    # deterministic with a seed
    again = apply(ds, "select", k=6, quality_from="none", w_diversity=4.0)
    assert again.fingerprint() == high.fingerprint()


def test_pool_fraction_score_and_quality() -> None:
    ds = simulate(n_prompts=300, seed=2, flip_rate=0.3)
    j = ds.judgments
    ds = ds.with_tables(judgments=j.append_column("ok", pa.compute.invert(j["flipped"])))
    params: dict[str, Any] = {
        "fraction": 0.2,
        "max_candidates": 100,
        "w_quality": 1.0,
        "quality_from": "ok",
        "margin_from": "margin",
        "seed": 4,
    }
    out, oc = run_step(ds, "select", **params)
    assert not any(out.judgments["flipped"].to_pylist())  # quality outweighs margin
    n_dec = int(np.sum(np.asarray(ds.judgments["outcome"]) != 0))
    assert out.num_rows("judgments") == round(0.2 * n_dec)
    assert oc.info["pool"] == 100
    again = apply(ds, "select", **params)
    assert again.fingerprint() == out.fingerprint()


def test_helpers() -> None:
    v = ngram_vectors(["the cat sat", "the cat sat", "quantum physics lecture", ""])
    assert v.shape == (4, 256)
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(v[0] @ v[2])) < 0.5
    rng = np.random.default_rng(0)
    # Kozachenko-Leonenko on a 2-d standard normal: H = log(2 pi e) = 2.8379
    assert knn_entropy(rng.normal(size=(3000, 2)), k=3) == pytest.approx(2.8379, abs=0.1)


def test_bad_params() -> None:
    ds = _clustered()
    with pytest.raises(PrefkitError, match="margin_from"):
        apply(ds, "select", k=3, margin_from="nope")
    with pytest.raises(PrefkitError, match="w_diversity"):
        apply(ds, "select", k=3, w_diversity=-1)
    with pytest.raises(PrefkitError, match="curve"):
        apply(ds, "select", k=3, curve="a,b")
    with pytest.raises(PrefkitError, match="'k'"):
        apply(ds, "select", k="x")


def test_suspicion_quality_is_one_minus_the_filter_column() -> None:
    """quality_from=suspicion reads the same noise fit as the filter's ``suspicion``
    column (no embedding features unless embed=true); 0.5 where there is none."""
    ds = simulate(kind="pairwise", n_prompts=60, flip_rate=0.2, tie_threshold=0.2, seed=4)
    sus = frame(ds, ["suspicion"]).column("suspicion").to_pylist()
    assert any(s is None for s in sus) and any(s is not None for s in sus)
    expected = [0.5 if s is None else 1.0 - s for s in sus]
    np.testing.assert_allclose(qualities(ds, ds.judgments, "suspicion"), expected)
