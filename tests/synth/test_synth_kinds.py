"""Battles, rankings and ratings: planted skills, orders and attribute ratings."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from prefkit.synth import simulate
from prefkit.synth.world import ELO_TO_NAT


def _source(ds) -> dict[str, str]:
    r = ds.responses
    return dict(
        zip(r.column("response_id").to_pylist(), r.column("source").to_pylist(), strict=True)
    )


def _win_rates(ds) -> dict[str, float]:
    source = _source(ds)
    j = ds.judgments
    points: Counter[str] = Counter()
    games: Counter[str] = Counter()
    for a, b, o in zip(j.column("a").to_pylist(), j.column("b").to_pylist(), j.column("outcome").to_pylist(), strict=True):  # fmt: skip
        ma, mb = source[a], source[b]
        games[ma] += 1
        games[mb] += 1
        points[ma] += (o + 1) / 2
        points[mb] += (1 - o) / 2
    return {m: points[m] / games[m] for m in games}


def test_battles_recover_skill_order(check_model):
    ds = simulate(kind="battles", n_prompts=20000, n_models=5, skill_spread=200.0, seed=1)
    check_model(ds)
    skills = ds.manifest.planted["models"]["skills"]
    rates = _win_rates(ds)
    assert sorted(skills, key=skills.get) == sorted(rates, key=rates.get)
    assert set(_source(ds).values()) == set(skills)
    assert "battles" in ds.kinds()
    battles = ds.to_battles(ties="keep")
    assert battles.num_rows == ds.judgments.num_rows


def test_battle_ties_follow_davidson():
    nu = 0.8
    ds = simulate(kind="battles", n_prompts=20000, n_models=6, tie_nu=nu, seed=2)
    skills = ds.manifest.planted["models"]["skills"]
    assert ds.manifest.planted["models"]["tie_nu"] == nu
    source = _source(ds)
    j = ds.judgments
    d = np.array([(skills[source[a]] - skills[source[b]]) * ELO_TO_NAT for a, b in zip(j.column("a").to_pylist(), j.column("b").to_pylist(), strict=True)])  # fmt: skip
    p_tie = nu / (np.exp(d / 2) + np.exp(-d / 2) + nu)
    tie = np.asarray(j.column("outcome")) == 0
    assert abs(tie.mean() - p_tie.mean()) < 0.015
    # Against a model of equal strength, ties come at rate nu / (2 + nu).
    assert p_tie.max() <= nu / (2 + nu) + 1e-12


def test_skewed_matchups_follow_popularity():
    ds = simulate(kind="battles", n_prompts=20000, n_models=6, matchup_skew=1.5, seed=3)
    popularity = ds.manifest.planted["models"]["popularity"]
    appearances = Counter(ds.responses.column("source").to_pylist())
    order = sorted(popularity, key=popularity.get)
    assert appearances[order[-1]] > 3 * appearances[order[0]]
    uniform = simulate(kind="battles", n_prompts=20000, n_models=6, seed=3)
    counts = np.array(list(Counter(uniform.responses.column("source").to_pylist()).values()))
    assert counts.max() / counts.min() < 1.1


def test_battles_with_several_models_per_prompt(check_model):
    ds = simulate(kind="battles", n_prompts=200, n_models=5, responses_per_prompt=3, seed=4)
    check_model(ds)
    r = ds.responses
    per_prompt: dict[str, list[str]] = {}
    for p, s in zip(r.column("prompt_id").to_pylist(), r.column("source").to_pylist(), strict=True):
        per_prompt.setdefault(p, []).append(s)
    assert all(len(set(v)) == 3 for v in per_prompt.values())
    assert ds.judgments.num_rows == 200 * 3


def _tiers_and_rewards(ds):
    r = ds.responses
    reward = dict(
        zip(r.column("response_id").to_pylist(), r.column("true_reward").to_pylist(), strict=True)
    )
    return ds.rankings.column("tiers").to_pylist(), reward


def test_rational_rankings_sort_by_reward(check_model):
    ds = simulate(kind="rankings", n_prompts=500, responses_per_prompt=4, beta=math.inf, seed=5)
    check_model(ds)
    tiers, reward = _tiers_and_rewards(ds)
    assert len(tiers) == 500
    for ranking in tiers:
        assert all(len(t) == 1 for t in ranking)
        values = [reward[t[0]] for t in ranking]
        assert values == sorted(values, reverse=True)


def test_ranking_ties_within_threshold(check_model):
    ds = simulate(kind="rankings", n_prompts=500, responses_per_prompt=5, beta=math.inf,
                  tie_threshold=0.2, judgments_per_pair=2, seed=6)  # fmt: skip
    check_model(ds)
    tiers, reward = _tiers_and_rewards(ds)
    n_tied = 0
    for ranking in tiers:
        flat = [reward[x] for t in ranking for x in sorted(t, key=reward.get, reverse=True)]
        assert flat == sorted(flat, reverse=True)
        for upper, lower in itertools.pairwise(ranking):
            assert min(reward[x] for x in upper) - max(reward[x] for x in lower) >= 0.2
        for t in ranking:
            vals = sorted(reward[x] for x in t)
            n_tied += len(t) > 1
            assert all(b - a < 0.2 for a, b in itertools.pairwise(vals))
    assert n_tied > 50


def test_plackett_luce_rankings_are_noisy_but_informative():
    ds = simulate(kind="rankings", n_prompts=4000, responses_per_prompt=3, beta=1.0, seed=7)
    tiers, reward = _tiers_and_rewards(ds)
    top_is_best = [
        ranking[0][0] == max((x for t in ranking for x in t), key=reward.get) for ranking in tiers
    ]
    assert 0.45 < np.mean(top_is_best) < 0.95


def test_ranking_mistakes_swap_neighbours():
    ds = simulate(kind="rankings", n_prompts=4000, responses_per_prompt=4, beta=math.inf,
                  flip_rate=0.25, seed=8)  # fmt: skip
    tiers, reward = _tiers_and_rewards(ds)
    flipped = ds.rankings.column("flipped").to_pylist()
    assert abs(np.mean(flipped) - 0.25) < 0.02
    for ranking, f in zip(tiers, flipped, strict=True):
        values = [reward[t[0]] for t in ranking]
        inversions = sum(a < b for a, b in itertools.pairwise(values))
        assert inversions == int(f)


def test_rankings_skip_threshold():
    ds = simulate(
        kind="rankings", n_prompts=2000, responses_per_prompt=2, skip_threshold=-0.5, seed=9
    )
    tiers, reward = _tiers_and_rewards(ds)
    assert ds.manifest.planted["counts"]["skipped"] + len(tiers) == 2000
    assert all(max(reward[x] for t in r for x in t) >= -0.5 for r in tiers)


def test_ratings_follow_latent_attributes(check_model):
    ds = simulate(kind="ratings", n_prompts=2000, responses_per_prompt=4, seed=10)
    check_model(ds)
    r = ds.responses
    assert ds.judgments.num_rows == 0 and ds.annotators.num_rows == 0
    attrs = r.column("attributes").to_pylist()
    names = ("helpfulness", "correctness", "coherence")
    assert all(tuple(k for k, _ in a) == names for a in attrs)
    values = np.array([[v for _, v in a] for a in attrs])
    assert set(np.unique(values)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    latent = np.array(r.column("latent").to_pylist())
    for k in range(3):
        assert np.corrcoef(values[:, k], latent[:, k])[0, 1] > 0.7
    score = np.asarray(r.column("score"))
    assert set(np.unique(score * 2)) <= set(range(9))
    assert np.corrcoef(score, np.asarray(r.column("true_reward")))[0, 1] > 0.7
    assert {"scores", "attributes"} <= set(ds.kinds())


@pytest.mark.parametrize("kind", ["ratings", "rankings"])
def test_copies_for_other_kinds(kind, check_model):
    ds = simulate(kind=kind, n_prompts=100, responses_per_prompt=3, duplicate_rate=0.1,
                  near_duplicate_rate=0.1, seed=11)  # fmt: skip
    check_model(ds)
    r = ds.responses
    by_id = {
        x["response_id"]: x
        for x in r.select(["response_id", "score", "true_reward", "duplicate_of"]).to_pylist()
    }
    copies = [x for x in by_id.values() if x["duplicate_of"]]
    assert len(copies) == 20 * 3
    for c in copies:
        orig = by_id[c["duplicate_of"]]
        assert (orig["score"], orig["true_reward"]) == (c["score"], c["true_reward"])
    if kind == "rankings":
        assert ds.rankings.num_rows == 100
