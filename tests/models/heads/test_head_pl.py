"""The listwise Plackett–Luce head: closed forms, ties, batching, planted truth, choix."""

from __future__ import annotations

import math

import choix
import numpy as np
import pytest
import torch

import prefkit.models.heads.pl  # registers "pl"
from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import Lists, from_arrays
from prefkit.models.heads.base import ListBatch, PairBatch, build_head
from prefkit.models.heads.bt import BradleyTerry
from prefkit.models.reward_model import RewardModel

PlackettLuce = prefkit.models.heads.pl.PlackettLuce


def identity_head(cls: type, **params: object) -> torch.nn.Module:
    """A linear head on 1-d features with reward(x) = x[:, 0]."""
    head = cls(1, **params)
    with torch.no_grad():
        head.net.weight.fill_(1.0)
        head.net.bias.zero_()
    return head


def list_loss(rewards: list[float], list_id: list[int], tier: list[int], **params: object) -> float:
    head = identity_head(PlackettLuce, **params)
    x = torch.tensor(rewards, dtype=torch.float64)[:, None]
    head.double()
    batch = ListBatch(x, torch.tensor(list_id), torch.tensor(tier))
    return float(head.loss(batch).detach())


def lse(values: list[float]) -> float:
    return math.log(sum(math.exp(v) for v in values))


def pl_nll(ranked: list[float]) -> float:
    """Hand-written Plackett–Luce NLL of rewards given best first."""
    return -sum(ranked[i] - lse(ranked[i:]) for i in range(len(ranked)))


def test_three_and_four_item_rankings_match_the_closed_form():
    # Items in input order with tiers: ranking is item 1 > item 2 > item 0.
    r3 = [0.4, 1.3, -0.7]
    want3 = -(
        (1.3 - math.log(math.exp(0.4) + math.exp(1.3) + math.exp(-0.7)))
        + (-0.7 - math.log(math.exp(0.4) + math.exp(-0.7)))
    )
    assert list_loss(r3, [0, 0, 0], [3, 1, 2]) == pytest.approx(want3, abs=1e-6)
    r4 = [2.0, -1.0, 0.5, 0.1]  # tiers 2, 4, 1, 3: order 2 > 0 > 3 > 1
    want4 = pl_nll([0.5, 2.0, 0.1, -1.0])
    assert list_loss(r4, [0, 0, 0, 0], [2, 4, 1, 3]) == pytest.approx(want4, abs=1e-6)
    # normalize divides by K - 1 choices
    got = list_loss(r4, [0, 0, 0, 0], [2, 4, 1, 3], normalize=True)
    assert got == pytest.approx(want4 / 3, abs=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_two_item_list_is_the_bt_loss(normalize):
    rng = np.random.default_rng(0)
    ra, rb = rng.normal(size=6) * 2, rng.normal(size=6) * 2
    # 6 lists of two items, winner listed second half of the time
    rewards, lid, tier = [], [], []
    for i in range(6):
        if i % 2:
            rewards += [ra[i], rb[i]]
            tier += [1, 2]
        else:
            rewards += [rb[i], ra[i]]
            tier += [2, 1]
        lid += [i, i]
    got = list_loss(rewards, lid, tier, normalize=normalize)
    bt = identity_head(BradleyTerry).double()
    batch = PairBatch(
        torch.tensor(ra)[:, None],
        torch.tensor(rb)[:, None],
        torch.ones(6, dtype=torch.float64),
        torch.full((6,), float("nan"), dtype=torch.float64),
        torch.full((6,), -1),
        torch.ones(6, dtype=torch.float64),
    )
    assert got == pytest.approx(float(bt.loss(batch).detach()), abs=1e-7)
    assert got == pytest.approx(float(np.mean(np.log1p(np.exp(-(ra - rb))))), abs=1e-7)


def test_ties_follow_the_documented_formulas():
    # One list: tier 1 = {a}, tier 2 = {b, c} (tied), tier 3 = {d}; then a list whose
    # bottom tier is a tie {e, f}.
    a, b, c, d, e, f = 0.3, 1.1, -0.5, 0.2, 0.7, -0.9
    r = [b, a, d, c, e, f]
    lid = [0, 0, 0, 0, 1, 1]
    tier = [2, 1, 3, 2, 1, 1]
    # exclude: each tied item against itself and the tiers below only
    l0 = (a - lse([a, b, c, d])) + (b - lse([b, d])) + (c - lse([c, d])) + 0.0
    l1 = 0.0  # a bottom tie: e - e and f - f
    assert list_loss(r, lid, tier) == pytest.approx(-(l0 + l1) / 2, abs=1e-6)
    # breslow: each tied item against its whole tier and below
    l0 = (a - lse([a, b, c, d])) + (b - lse([b, c, d])) + (c - lse([b, c, d])) + 0.0
    l1 = (e - lse([e, f])) + (f - lse([e, f]))
    assert list_loss(r, lid, tier, ties="breslow") == pytest.approx(-(l0 + l1) / 2, abs=1e-6)


def test_a_batch_is_the_mean_of_its_lists_in_any_row_order():
    rng = np.random.default_rng(1)
    sizes = [2, 5, 3, 1, 4]
    r, lid, tier, singles = [], [], [], []
    for i, k in enumerate(sizes):
        ri = list(rng.normal(size=k))
        ti = list(rng.integers(1, 4, size=k))  # ties included
        r += ri
        lid += [i] * k
        tier += ti
        singles.append(list_loss(ri, [0] * k, ti))
    perm = rng.permutation(len(r))
    shuffled = list_loss([r[p] for p in perm], [lid[p] for p in perm], [tier[p] for p in perm])
    assert shuffled == pytest.approx(float(np.mean(singles)), abs=1e-9)
    assert singles[3] == 0.0  # a one-item list carries no information


def test_gradients_are_finite_with_ties_and_singletons():
    head = PlackettLuce(3)
    x = torch.randn(9, 3)
    batch = ListBatch(
        x, torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 3]), torch.tensor([1, 1, 2, 1, 1, 2, 2, 3, 1])
    )
    head.loss(batch).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


def test_bad_ties_value_is_a_user_error():
    with pytest.raises(PrefkitError, match="ties"):
        build_head("pl", 4, ties="efron")
    with pytest.raises(PrefkitError, match="no parameter"):
        build_head("pl", 4, margin=1.0)


def sample_rankings(
    rng: np.random.Generator, strength: np.ndarray, n_lists: int, k_range: tuple[int, int]
) -> tuple[list[tuple[int, ...]], Lists]:
    """Plackett–Luce rankings by the Gumbel trick: sort strength + Gumbel noise."""
    n = len(strength)
    rankings, items, lids, tiers = [], [], [], []
    for i in range(n_lists):
        k = int(rng.integers(*k_range))
        chosen = rng.choice(n, k, replace=False)
        order = chosen[np.argsort(-(strength[chosen] + rng.gumbel(size=k)))]
        rankings.append(tuple(int(j) for j in order))
        items.append(order)
        lids.append(np.full(k, i))
        tiers.append(np.arange(1, k + 1))
    item = np.concatenate(items)
    return rankings, Lists(item, np.concatenate(lids), np.concatenate(tiers), item)


def test_planted_features_recover_the_reward(tmp_path):
    rng = np.random.default_rng(2)
    n = 300
    X = rng.normal(size=(n, 6))
    r = X @ rng.normal(size=6) * 0.7
    _, lists = sample_rankings(rng, r, 800, (2, 7))
    data = from_arrays(n, lists=lists)
    model = RewardModel("pl", ArrayBackbone(X), epochs=30, lr=0.02).fit(data)
    got = model.rewards(data)
    assert np.corrcoef(got, r)[0, 1] > 0.95  # measured 0.999
    loaded = RewardModel.load(model.save(tmp_path / "pl"))
    np.testing.assert_array_equal(loaded.rewards(data), got)


def test_one_hot_strengths_match_choix_ilsr():
    rng = np.random.default_rng(3)
    n = 8
    s = rng.normal(size=n)
    rankings, lists = sample_rankings(rng, s, 400, (2, 6))
    ref = choix.ilsr_rankings(n, rankings, tol=1e-12, max_iter=1000)  # the exact PL MLE
    # measured max abs difference 0.002
    data = from_arrays(n, lists=lists)
    model = RewardModel(
        "pl", ArrayBackbone(np.eye(n)), epochs=150, lr=0.05, batch_size=400, weight_decay=0.0
    ).fit(data)
    got = model.rewards(data)
    np.testing.assert_allclose(got - got.mean(), ref - ref.mean(), atol=0.05)
