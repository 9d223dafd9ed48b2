"""Plackett–Luce (Hunter's MM) against choix, closed forms and planted truth."""

from __future__ import annotations

import itertools
import math

import choix
import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

import prefkit
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.ratings.plackett_luce import PlackettLuce
from prefkit.synth import simulate


def _pl_rankings(rng, theta, n_rankings, sizes=(3, 7)):
    """Partial Plackett–Luce rankings (Gumbel-max) over random subsets of the items."""
    out = []
    for _ in range(n_rankings):
        k = int(rng.integers(*sizes))
        sub = rng.choice(len(theta), k, replace=False)
        keys = theta[sub] + rng.gumbel(size=k)
        out.append(tuple(int(i) for i in sub[np.argsort(-keys)]))
    return out


@pytest.fixture(scope="module")
def strict():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=12)
    return theta, _pl_rankings(rng, theta, 400)


def test_matches_choix_ilsr_without_ties(strict):
    _, data = strict
    fit = PlackettLuce().fit([list(r) for r in data])
    assert fit.converged_ and fit.items_ == list(range(12))
    ref = choix.ilsr_rankings(12, data, tol=1e-12, max_iter=1000)
    assert np.max(np.abs(fit.theta_ - (ref - ref.mean()))) < 1e-7  # measured 9e-10
    # ratings are the same numbers on the Elo scale
    np.testing.assert_allclose(fit.ratings_, 1000 + 400 * fit.theta_ / math.log(10))
    # and the log-likelihood is choix's objective
    assert fit.loglik_ == pytest.approx(
        -choix.opt.Top1Fcts.from_rankings(data, 0.0).objective(ref), rel=1e-10
    )


def test_prior_is_choix_penalised_optimum(strict):
    _, data = strict
    alpha = 0.1  # choix's penalty alpha·Σθ² is (l2/2)·Σθ²
    fit = PlackettLuce(l2=2 * alpha).fit([list(r) for r in data])
    # choix.opt_rankings minimises this objective (slowly: its logsumexp runs per ranking);
    # its gradient is zero at prefkit's estimate, so the two optima coincide
    fcts = choix.opt.Top1Fcts.from_rankings(data, alpha)
    assert np.max(np.abs(fcts.gradient(fit.theta_))) < 1e-6  # measured 5e-8
    assert fit.converged_ and abs(fit.theta_.mean()) < 1e-12


def test_ties_methods_agree_on_strict_rankings(strict):
    _, data = strict
    a = PlackettLuce(ties="efron").fit([list(r) for r in data])
    b = PlackettLuce(ties="breslow").fit([list(r) for r in data])
    np.testing.assert_allclose(a.theta_, b.theta_, atol=1e-9)


def test_pairwise_rankings_are_bradley_terry():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=6)
    pairs = [r for r in _pl_rankings(rng, theta, 600, sizes=(2, 3))]
    fit = PlackettLuce().fit([list(p) for p in pairs])
    bt = choix.ilsr_pairwise(6, pairs, tol=1e-12, max_iter=1000)
    assert np.max(np.abs(fit.theta_ - (bt - bt.mean()))) < 1e-7


def test_tie_of_two_counts_as_a_win_each():
    # 3× A ≻ B, 1× B ≻ A, 2× A = B: both tie rules give p_A = (3 + 2) / (3 + 1 + 2·2) = 5/8
    data = [["A", "B"]] * 3 + [["B", "A"]] + [[["A", "B"]]] * 2
    for ties in ("efron", "breslow"):
        fit = PlackettLuce(ties=ties).fit(data)
        assert fit.theta_[0] - fit.theta_[1] == pytest.approx(math.log(5 / 3), abs=1e-9)
        assert fit.ratings_[0] - fit.ratings_[1] == pytest.approx(400 * math.log10(5 / 3))
    # = Bradley–Terry where every tie is one win for each side
    bt = choix.ilsr_pairwise(2, [(0, 1)] * 3 + [(1, 0)] + [(0, 1), (1, 0)] * 2, tol=1e-12)
    assert fit.theta_[0] - fit.theta_[1] == pytest.approx(bt[0] - bt[1], abs=1e-9)


def test_tie_terms_hand_computed():
    data = [
        ["A", ["B", "C"]],
        [["A", "B"], "C"],
        ["C", "B", "A"],
        ["B", "A", "C"],
        ["A", "C"],
    ]
    for ties in ("efron", "breslow"):
        fit = PlackettLuce(ties=ties).fit(data)
        wa, wb, wc = np.exp(fit.theta_)
        s = wa + wb + wc
        if ties == "efron":
            low_tie = math.log(wb * wc / ((wb + wc) * (wb + wc) / 2))
            top_tie = math.log(wa * wb / (s * (s - (wa + wb) / 2)))
        else:
            low_tie = math.log(wb * wc / (wb + wc) ** 2)
            top_tie = math.log(wa * wb / s**2)
        first = math.log(wa / s) + low_tie
        second = top_tie  # the last tier "C" is a certain choice
        third = math.log(wc / s) + math.log(wb / (wa + wb))
        fourth = math.log(wb / s) + math.log(wa / (wa + wc))
        fifth = math.log(wa / (wa + wc))
        assert fit.score([data[0]]) == pytest.approx(first, rel=1e-12)
        assert fit.score([data[1]]) == pytest.approx(second, rel=1e-12)
        assert fit.loglik_ == pytest.approx(first + second + third + fourth + fifth, rel=1e-12)
        # at the maximum the score (gradient) is zero: no nearby point does better
        for d in np.eye(3) * 1e-4:
            probe = PlackettLuce(ties=ties).fit(data)
            probe.theta_ = fit.theta_ + d
            assert probe.score(data) <= fit.loglik_ + 1e-12


def test_no_maximum_likelihood_without_prior():
    with pytest.raises(PrefkitError, match="l2 > 0"):
        PlackettLuce().fit([["A", "B"], ["A", "C"], ["B", "C"]])  # A never loses
    fit = PlackettLuce(l2=1.0).fit([["A", "B"], ["A", "C"], ["B", "C"]])
    assert fit.converged_ and list(np.argsort(-fit.ratings_)) == [0, 1, 2]


def test_recovers_planted_rewards_on_synth_rankings():
    ds = simulate(
        kind="rankings",
        n_prompts=150,
        responses_per_prompt=5,
        judgments_per_pair=60,
        n_annotators=80,
        seed=1,
    )
    fit = PlackettLuce(items="response").fit(ds)
    assert fit.converged_ and fit.items_kind_ == "response"
    # responses of different prompts are never compared: one component per prompt, and
    # utilities are identified within a prompt only (compare prompt-centred values)
    assert fit.n_components_ == 150
    resp = ds.responses
    where = {r: i for i, r in enumerate(resp.column("response_id").to_pylist())}
    rows = np.array([where[r] for r in fit.items_])
    reward = resp.column("true_reward").to_numpy()[rows]
    prompt = np.unique(np.array(resp.column("prompt_id").to_pylist())[rows], return_inverse=True)[1]

    def centred(x):
        return x - (np.bincount(prompt, x) / np.bincount(prompt))[prompt]

    rho = spearmanr(centred(reward), centred(fit.theta_)).statistic
    assert rho > 0.95  # measured 0.985


def test_recovers_model_utilities_from_sources():
    rng = np.random.default_rng(2)
    theta = rng.normal(size=8)
    models = [f"m{i}" for i in range(8)]
    rankings, responses = [], {"response_id": [], "prompt_id": [], "source": []}
    for k, order in enumerate(_pl_rankings(rng, theta, 1500, sizes=(2, 6))):
        ids = [f"r{k}-{m}" for m in order]
        responses["response_id"] += ids
        responses["prompt_id"] += [f"p{k}"] * len(ids)
        responses["source"] += [models[m] for m in order]
        tiers = [[i] for i in ids]
        if len(tiers) > 3 and k % 4 == 0:  # some ties, so the tie code path runs too
            tiers = [tiers[0], tiers[1] + tiers[2], *tiers[3:]]
        rankings.append(tiers)
    ds = Dataset(
        {
            "responses": pa.table(responses),
            "rankings": pa.table(
                {
                    "ranking_id": [f"k{k}" for k in range(len(rankings))],
                    "prompt_id": [f"p{k}" for k in range(len(rankings))],
                    "tiers": rankings,
                }
            ),
        }
    )
    fit = PlackettLuce().fit(ds)  # items="auto": every response has a source
    assert fit.items_kind_ == "source" and fit.items_ == models
    assert spearmanr(fit.theta_, theta).statistic > 0.95
    assert np.max(np.abs(fit.theta_ - (theta - theta.mean()))) < 0.25
    by_response = PlackettLuce(items="response", l2=1.0).fit(ds)
    assert by_response.items_kind_ == "response" and len(by_response.items_) > 1500


def test_items_source_needs_sources():
    ds = simulate(kind="rankings", n_prompts=5, responses_per_prompt=3, seed=0)
    with pytest.raises(PrefkitError, match="items='response'"):
        PlackettLuce(items="source", l2=1.0).fit(ds)
    with pytest.raises(PrefkitError, match="ties="):
        PlackettLuce(ties="davidson").fit(ds)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["imagereward_test", "oasst_en100_trees"])
def test_real_rankings_fit_and_keep_tier_order(shared_data, name):
    ds = prefkit.load(shared_data / name)
    with pytest.raises(PrefkitError, match="Assumption 1"):
        PlackettLuce(items="response").fit(ds)  # the last tier never wins: no MLE
    fit = PlackettLuce(items="response", l2=1.0).fit(ds)
    assert fit.converged_ and fit.items_kind_ == "response"
    assert fit.n_rankings_ == ds.num_rows("rankings")
    rating = dict(zip(fit.items_, fit.ratings_, strict=True))
    # every response is in one ranking, so its prior-regularised rating follows its tier:
    # strictly lower tier by tier, equal within a tier
    for tiers in ds.rankings.column("tiers").to_pylist():
        values = [[rating[r] for r in tier] for tier in tiers]
        for tier in values:
            assert max(tier) - min(tier) < 1e-6
        for better, worse in itertools.pairwise(values):
            assert min(better) > max(worse)
