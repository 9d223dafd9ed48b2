"""The noise check: flip-rate estimate, per-judgment suspicion, strength, and its features.

Golden values: the likelihood and posterior of :class:`NoisyBT` against direct numerical
integration (``scipy.integrate.quad``) and its gradient against finite differences; the
lexical-overlap features against plain Python sets; planted flip rates from
``prefkit.synth``; vote agreement on the real datasets recounted with plain Python.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from realdata import REAL
from scipy import integrate, optimize
from scipy.special import expit

from prefkit import Dataset, from_pairs
from prefkit.diagnostics import Context, Finding, InspectOptions
from prefkit.diagnostics.checks import noise
from prefkit.diagnostics.features import judgment_features, response_overlap
from prefkit.diagnostics.noisy_bt import NoisyBT, PairData
from prefkit.synth import simulate

#: Synth settings where the cheap features carry signal: length adds 2 reward units per
#: standard deviation of words, so the length features explain about half of the reward
#: difference and the flip floor is identifiable (docs/inspect/noise.md).
SIGNAL = dict(kind="pairwise", length_bias=2.0, n_annotators=20)
N_JUDGMENTS = 6000
#: |ε̂ − planted|: 6,000 judgments give profile intervals of ±0.03–0.05 (about 2 standard
#: errors); over 3 seeds × 4 rates × (1 and 5 judges) the largest error measured was
#: 0.021, so 0.05 is about 4–5 standard errors.
TOLERANCE = 0.05


def _ctx(ds: Dataset, **params: Any) -> Context:
    return Context(ds, InspectOptions(embed="never", top=5, params={"noise": params}))


def _planted(ds: Dataset) -> float:
    j = ds.judgments
    outcome = np.asarray(j.column("outcome"))
    return float(np.asarray(j.column("flipped"))[outcome != 0].mean())


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- the model against numerical integration ------------------------------------------------------
def _one_item(signs: Sequence[float], x: float) -> PairData:
    n = len(signs)
    return PairData(
        np.array([[x]]),
        np.zeros(n, np.int64),
        np.asarray(signs, float),
        np.ones(n),
        np.ones(n),
    )


def _set(model: NoisyBT, w: float, gamma: float, tau: float, eps: float) -> NoisyBT:
    model.theta_ = np.array([w, gamma, tau, eps])
    model.w_ = model.theta_[:1]
    model.gamma_, model.tau_, model.eps_ = gamma, tau, eps
    return model


@pytest.mark.parametrize(
    ("tau", "eps", "votes"),
    [(0.0, 0.1, (2, 1)), (1.3, 0.2, (2, 1)), (2.5, 0.05, (2, 1)), (2.5, 0.05, (20, 10)),
     (5.0, 0.1, (4, 1))],
)  # fmt: skip
def test_likelihood_and_posterior_match_direct_integration(
    tau: float, eps: float, votes: tuple[int, int]
) -> None:
    # One pair; votes[0] judges prefer the canonical first response, votes[1] the second.
    # Fixed Gauss–Hermite nodes were off by 3% (3 votes, τ = 2.5) to 130% (30 votes) here.
    w, x, signs = 0.8, 0.7, [1.0] * votes[0] + [-1.0] * votes[1]
    data = _one_item(signs, x)
    model = _set(NoisyBT(free_position=False, free_tau=tau > 0, ridge=0.0), w, 0.0, tau, eps)

    def p(sign: float, u: float) -> float:
        return eps + (1 - 2 * eps) * float(expit(sign * (w * x + u)))

    def density(u: float) -> float:
        return math.exp(-0.5 * (u / tau) ** 2) / (tau * math.sqrt(2 * math.pi))

    def integral(f: Callable[[float], float]) -> float:
        if tau == 0:
            return f(0.0)
        # Split where the integrand turns (the logistic's centre, the posterior's bulk).
        points = [-w * x, *np.linspace(-3 * tau, 3 * tau, 7)]
        return integrate.quad(
            lambda u: f(u) * density(u), -12 * tau, 12 * tau, limit=400, points=points
        )[0]

    # 30 adaptive nodes: ~1e-6 relative at τ ≤ 2.5, ~1e-2 at τ = 5 (a step-like integrand).
    rel = 1e-3 if tau < 5 else 1e-2
    like = integral(lambda u: math.prod(p(s, u) for s in signs))
    nll, _ = model._nll(model.theta_, data, model._grid(model.theta_, data))
    assert nll == pytest.approx(-math.log(like), rel=rel)
    post, p_model = model.score(data)
    for k in (0, len(signs) - 1):
        s = signs[k]
        others = [t for i, t in enumerate(signs) if i != k]

        def flipped(u: float, s: float = s, others: list[float] = others) -> float:
            clean_disagrees = 1 - float(expit(s * (w * x + u)))
            return eps * clean_disagrees * math.prod(p(t, u) for t in others)

        assert post[k] == pytest.approx(integral(flipped) / like, rel=rel)
        assert p_model[k] == pytest.approx(integral(lambda u, s=s: expit(s * (w * x + u))), rel)


def test_posterior_closed_form_without_random_effect() -> None:
    # τ = 0: P(flip | y) = ε(1 − σ) / (ε(1 − σ) + (1 − ε)σ), σ = σ(±wx), votes irrelevant.
    model = _set(NoisyBT(free_position=False, free_tau=False), 1.5, 0.0, 0.0, 0.2)
    post, _ = model.score(_one_item([1.0, -1.0], 1.0))
    sig = expit(1.5)
    assert post[0] == pytest.approx(0.2 * (1 - sig) / (0.2 * (1 - sig) + 0.8 * sig))
    assert post[1] == pytest.approx(0.2 * sig / (0.2 * sig + 0.8 * (1 - sig)))


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    m, d = 40, 3
    item = np.sort(rng.integers(0, m, 120))
    _, item = np.unique(item, return_inverse=True)
    m = int(item.max()) + 1
    data = PairData(
        rng.normal(size=(m, d)),
        item,
        rng.choice([-1.0, 1.0], len(item)),
        rng.choice([-1.0, 1.0], len(item)),
        rng.integers(1, 4, len(item)).astype(float),
    )
    model = NoisyBT()
    theta = np.r_[rng.normal(size=d) * 0.5, 0.2, 1.1, 0.15]
    grid = model._grid(theta, data)  # nodes are held fixed during one optimisation round
    err = optimize.check_grad(
        lambda t: model._nll(t, data, grid)[0], lambda t: model._nll(t, data, grid)[1], theta
    )
    assert err < 1e-4 * (1 + np.abs(model._nll(theta, data, grid)[1]).max())


# --- planted flip rates ---------------------------------------------------------------------------
@pytest.mark.parametrize("judges", [1, 5])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.3])
def test_estimate_recovers_the_planted_flip_rate(judges: int, rate: float) -> None:
    ds = simulate(
        **SIGNAL, n_prompts=N_JUDGMENTS // judges, judgments_per_pair=judges,
        flip_rate=rate, seed=0,
    )  # fmt: skip
    res = noise.compute(_ctx(ds, folds=2))
    assert not isinstance(res, str)
    planted = _planted(ds)
    assert abs(res.model.eps_ - planted) <= TOLERANCE
    assert res.low - 0.005 <= planted <= res.high + 0.005  # the 95% interval covers it
    assert res.model.free_tau == (judges > 1)


def test_suspicion_finds_the_flipped_judgments() -> None:
    ds = simulate(**SIGNAL, n_prompts=1000, judgments_per_pair=5, flip_rate=0.2, seed=1)
    ctx = _ctx(ds, folds=3)
    findings = noise.run(ctx)
    f = findings[0]
    table = ctx.cached("noise:suspicion", lambda: pytest.fail("not cached"))
    assert table.column_names == ["judgment_id", "suspicion"]
    assert table.column("judgment_id").equals(ds.judgments.column("judgment_id"))
    s = np.asarray(table.column("suspicion"))
    flipped = np.asarray(ds.judgments.column("flipped"))
    # Votes of 4 other judges plus the length model separate flips well (measured 0.86).
    assert _auc(s, flipped) > 0.75
    flagged = set(f.ids["judgment_id"])
    ids = np.asarray(table.column("judgment_id"))
    assert flagged == set(ids[s > 0.5])
    assert flipped[s > 0.5].mean() > 0.6  # most flagged ones were really flipped (0.80)
    # At the maximum-likelihood fit the mean posterior equals ε̂ (the EM fixed point);
    # out-of-fold fits move it a little.
    assert f.metrics["mean_suspicion"] == pytest.approx(f.metrics["flip_share"], abs=0.02)
    assert f.severity in ("warning", "error")
    assert [p.kind for p in f.plots] == ["hist", "line"]
    assert sum(f.plots[0].series["judgments"]) == f.metrics["scored_judgments"]
    rows = f.tables[0].rows
    assert [r[-1] for r in rows] == sorted((r[-1] for r in rows), reverse=True)
    assert len(findings) == 1  # no strength column


def test_weak_features_cannot_tell() -> None:
    # Length does not matter and the synthetic words are invisible to the cheap features:
    # nothing separates a flipped label from a hard pair.
    ds = simulate(kind="pairwise", n_prompts=3000, flip_rate=0.2, seed=0)
    f = noise.run(_ctx(ds, folds=2))[0]
    assert f.metrics["identifiable"] is False
    assert f.metrics["flip_share_high"] - f.metrics["flip_share_low"] > 0.2
    assert f.severity == "info"
    assert "Cannot tell" in f.verdict


def test_ties_are_not_scored_and_position_bias_is_a_parameter() -> None:
    ds = simulate(
        **SIGNAL, n_prompts=3000, flip_rate=0.1, tie_threshold=0.2, position_bias=0.3, seed=2
    )
    ctx = _ctx(ds, folds=2)
    res = noise.compute(ctx)
    assert not isinstance(res, str)
    outcome = np.asarray(ds.judgments.column("outcome"))
    s = np.asarray(noise.suspicion(ctx).column("suspicion").to_numpy(zero_copy_only=False))
    assert np.isnan(s[outcome == 0]).all() and not np.isnan(s[outcome != 0]).any()
    assert res.model.free_position and res.model.gamma_ > 0.5  # "a" forced 30% of the time


# --- strength -------------------------------------------------------------------------------------
def test_strength_buckets_show_weak_labels_are_noisier() -> None:
    ds = simulate(**SIGNAL, n_prompts=3000, flip_rate=0.2, seed=4)
    flipped = np.asarray(ds.judgments.column("flipped"))
    rng = np.random.default_rng(0)
    # Flipped labels were given with less conviction: strength 1 (weak) to 3 (strong).
    strength = np.where(
        flipped, rng.choice([1, 2], len(flipped)), rng.choice([1, 2, 3], len(flipped))
    )
    judgments = ds.judgments.drop_columns(["strength"]).append_column(
        "strength", pa.array(strength.astype(float))
    )
    findings = noise.run(_ctx(ds.with_tables(judgments=judgments), folds=2))
    assert [f.title for f in findings] == ["Label noise", "Label strength"]
    st = findings[1]
    assert [r[0] for r in st.tables[0].rows] == ["1", "2", "3"]
    assert sum(r[1] for r in st.tables[0].rows) == len(flipped)
    assert st.metrics["flagged_share_weakest"] > st.metrics["flagged_share_strongest"]
    assert st.metrics["spearman_strength_suspicion"] < 0
    assert st.severity == "info"


# --- skips ----------------------------------------------------------------------------------------
def test_skips_without_judgments_or_with_only_ties() -> None:
    assert noise.run(_ctx(Dataset()))[0].severity == "skipped"
    ratings = simulate(kind="ratings", n_prompts=20)
    assert noise.run(_ctx(ratings))[0].severity == "skipped"
    ties = simulate(kind="pairwise", n_prompts=40, tie_threshold=100.0)
    f = noise.run(_ctx(ties))[0]
    assert f.severity == "skipped" and "non-tie" in f.verdict
    table = noise.suspicion(_ctx(ties))
    assert table.num_rows == 40 and table.column("suspicion").null_count == 40


# --- features -------------------------------------------------------------------------------------
def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.lower()))


def test_overlap_features_match_python_sets() -> None:
    rows = [
        ("What is the Capital of France?", "The capital of France is Paris.", "Paris!"),
        ("Écris un poème sur la mer", "La mer, la MER: un poème", "no idea"),
        ("Explain snake_case names", "snake case splits at the underscore", ""),
        ("What is the Capital of France?", "France's capital: Paris", "capital capital"),
    ]
    ds = from_pairs([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in rows])
    ctx = _ctx(ds)
    got = {r["response_id"]: r for r in response_overlap(ctx).to_pylist()}
    prompts = dict(zip(ds.prompts.column("prompt_id").to_pylist(),
                       (m[0]["content"] for m in ds.prompts.column("messages").to_pylist()),
                       strict=True))  # fmt: skip
    for r in ds.responses.to_pylist():
        words = _words(r["messages"][0]["content"])
        pw = _words(prompts[r["prompt_id"]])
        shared = len(words & pw)
        g = got[r["response_id"]]
        assert (g["n_unique"], g["shared"]) == (len(words), shared)
        assert g["jaccard"] == pytest.approx(shared / len(words | pw))
        assert g["prompt_recall"] == pytest.approx(shared / len(pw))
    frame = judgment_features(ctx)
    # from_pairs puts chosen in a: log_words is log(1 + words of a) − log(1 + words of b).
    assert frame.column("log_words")[0].as_py() == pytest.approx(math.log(7) - math.log(2))


def test_duplicated_prompts_share_a_fold() -> None:
    text = ["Same prompt here", "same   PROMPT here!", "Another one", "Third prompt"] * 5
    ds = from_pairs(
        [{"prompt": t, "chosen": f"a{i}", "rejected": f"b{i}"} for i, t in enumerate(text)]
    )
    ctx = _ctx(ds)
    folds = noise._prompt_folds(ctx, ds.judgments.column("prompt_id"), 3)
    by_text: dict[str, set[int]] = defaultdict(set)
    for t, f in zip(text, folds.tolist(), strict=True):
        by_text[" ".join(_words(t))].add(f)
    assert all(len(v) == 1 for v in by_text.values())


def test_embedding_feature_is_used_when_an_encoder_is_given() -> None:
    ds = simulate(**SIGNAL, n_prompts=300, flip_rate=0.1, seed=5)
    ctx = Context(ds, InspectOptions(embed="auto", top=5))

    def encode(texts: Sequence[str]) -> np.ndarray:
        # A stand-in encoder: normalised letter counts.
        out = np.array([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"]
                        for t in texts], float) + 1e-3  # fmt: skip
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    ctx._cache["embedder"] = encode
    f = noise.run(ctx)[0]
    assert f.metrics["embeddings_used"] is True
    assert "cos" in [r[0] for r in f.tables[1].rows]
    small = Context(ds, InspectOptions(embed="auto", params={"noise": {"embed_max_texts": 10}}))
    small._cache["embedder"] = encode
    assert noise.run(small)[0].metrics["embeddings_used"] is False


# --- real data ------------------------------------------------------------------------------------
def _raw_votes(ds: Dataset) -> tuple[float, int]:
    """Pairwise agreement of non-tie judges of the same item, and the tie count, counted
    with plain Python over the judgments table."""
    items: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    ties = 0
    for r in ds.judgments.select(["prompt_id", "a", "b", "outcome"]).to_pylist():
        if r["outcome"] == 0:
            ties += 1
            continue
        first = min(r["a"], r["b"])
        says_first = (r["outcome"] == 1) == (r["a"] == first)
        items[(r["prompt_id"], first, max(r["a"], r["b"]))].append(int(says_first))
    agree = pairs = 0
    for votes in items.values():
        k, n = sum(votes), len(votes)
        agree += k * (k - 1) + (n - k) * (n - k - 1)
        pairs += n * (n - 1)
    return (agree / pairs if pairs else float("nan")), ties


def _check_real(ds: Dataset, **params: Any) -> Finding:
    findings = noise.run(_ctx(ds, **params))
    assert len(findings) == 1
    return findings[0]


@pytest.mark.shared_data
@pytest.mark.parametrize("data", sorted(REAL))
def test_real_datasets(real_dataset: Callable[[str], Dataset], data: str) -> None:
    ds = real_dataset(data)
    if ds.num_rows("judgments") == 0:
        # imagereward, oasst (rankings) and nlg (ratings) have no pairwise judgments.
        f = _check_real(ds)
        assert f.severity == "skipped"
        return
    # Smaller fits keep the test fast; docs/inspect/noise.md reports the defaults.
    f = _check_real(ds, max_fit=5_000, folds=2)
    m = f.metrics
    agreement, ties = _raw_votes(ds)
    assert m["ties_not_scored"] == ties
    assert m["scored_judgments"] == ds.num_rows("judgments") - ties
    assert 0.0 <= m["flip_share_low"] <= m["flip_share"] <= m["flip_share_high"] <= 0.5
    if data == "hh_rlhf_harmless_test":
        # One label per pair, chosen always stored as a: no votes, no position effect, and
        # length/overlap predict the harmless labels barely (longer loses slightly).
        assert m["items_with_several_judges"] == 0
        assert m["random_effect_sd"] == 0.0 and m["position_effect"] == 0.0
        assert m["vote_agreement"] is None
        assert m["identifiable"] is False and f.severity == "info"
    if data in ("ukp_convarg1", "vicuna80_human_battles"):
        assert m["vote_agreement"] == pytest.approx(agreement, abs=1e-9)
        # Were every disagreement a flip of a deterministic preference, two judges would
        # agree with probability ε² + (1 − ε)²: that ε bounds the flip share from above.
        bound = (1 - math.sqrt(max(1 - 2 * (1 - agreement), 0.0))) / 2
        assert m["flip_share"] <= bound
        assert m["identifiable"] is True
    if data == "ukp_convarg1":
        # 5 crowd votes per pair: most disagreement is explained by close pairs, not flips.
        assert 0.727 < agreement < 0.731 and m["flip_share"] < 0.05
        assert m["items_with_several_judges"] > 15_000
    if data == "vicuna80_human_battles":
        assert 0.63 < agreement < 0.64 and 0.05 < m["flip_share"] < 0.25
