"""The ``pal`` head (Chen et al. 2024, PAL-A): invariants on random inputs, rewards,
probabilities and loss of a fixed tiny configuration against hand-computed values, the
population weights for unknown annotators, few-shot adaptation on a planted user, and
bad inputs. Tolerances: 1e-6 (float32 arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import prefkit.models.heads.bt  # registers the heads
import prefkit.models.heads.pal  # noqa: F401
from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import from_arrays
from prefkit.models.heads.base import PairBatch, build_head
from prefkit.models.heads.pal import PAL, adapt_annotator, prob_with_weights
from prefkit.models.reward_model import RewardModel


def make(dim: int, n_annotators: int = 0, **params: object) -> PAL:
    head = build_head("pal", dim, n_annotators=n_annotators, **params)
    assert isinstance(head, PAL)
    return head


def tiny() -> PAL:
    """f = identity on R², prototypes p1 = (1, 0), p2 = (0, 2); user 0 has weights
    (1/4, 3/4), user 1 has (1/2, 1/2), so the population weights are (3/8, 5/8)."""
    head = make(2, n_annotators=2, dim_out=2, prototypes=2)
    with torch.no_grad():
        head.net.weight.copy_(torch.eye(2))
        head.net.bias.zero_()
        head.proto.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        head.theta.copy_(torch.tensor([[0.0, math.log(3)], [0.0, 0.0]]))
    return head


def test_closed_form_rewards() -> None:
    head = tiny()
    x = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    with torch.no_grad():
        # user 0: ideal point (1/4, 3/2); x = (1, 1) -> -(0.75² + 0.5²); x = 0 -> -(1/16 + 9/4)
        r0 = head.reward(x, torch.tensor([0, 0]))
        # unknown user and no annotator: ideal (3/8, 5/4) -> -(25 + 4)/64; -(9 + 100)/64
        r_unknown = head.reward(x, torch.tensor([-1, -1]))
        r_pop = head.reward(x)
        # user 1: ideal (1/2, 1) -> -(1/4 + 0)
        r_mixed = head.reward(x, torch.tensor([1, 0]))
    torch.testing.assert_close(r0, torch.tensor([-0.8125, -2.3125]), atol=1e-6, rtol=0)
    torch.testing.assert_close(r_unknown, torch.tensor([-29 / 64, -109 / 64]), atol=1e-6, rtol=0)
    torch.testing.assert_close(r_pop, r_unknown, atol=0, rtol=0)
    torch.testing.assert_close(r_mixed, torch.tensor([-0.25, -2.3125]), atol=1e-6, rtol=0)


def test_closed_form_prob_and_loss() -> None:
    head = tiny()
    b = PairBatch(
        xa=torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
        xb=torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
        outcome=torch.tensor([1.0, 0.0, 1.0]),  # the tie is skipped
        strength=torch.full((3,), float("nan")),
        annotator=torch.tensor([0, 0, -1]),
        weight=torch.ones(3),
    )
    # user 0: r(a) - r(b) = -0.8125 + 2.3125 = 1.5; unknown: (-109 + 29) / 64 = -1.25
    expected = (math.log1p(math.exp(-1.5)) + math.log1p(math.exp(1.25))) / 2
    assert head.loss(b).item() == pytest.approx(expected, abs=1e-6)
    with torch.no_grad():
        p = head.prob(b.xa, b.xb, b.annotator)
    torch.testing.assert_close(p, torch.sigmoid(torch.tensor([1.5, 1.5, -1.25])), atol=1e-6, rtol=0)


def test_invariants_on_random_inputs() -> None:
    torch.manual_seed(0)
    head = make(5, n_annotators=4, prototypes=3, hidden=8).eval()
    with torch.no_grad():
        head.theta.copy_(torch.randn(4, 3) * 2)
    xa, xb = torch.randn(40, 5), torch.randn(40, 5)
    ann = torch.randint(-1, 4, (40,))
    with torch.no_grad():
        w = head.weights(ann, 40)
        p_ab, p_ba = head.prob(xa, xb, ann), head.prob(xb, xa, ann)
        r = head.reward(xa, ann)
    assert w.shape == (40, 3) and r.shape == (40,) and p_ab.shape == (40,)
    torch.testing.assert_close(w.sum(1), torch.ones(40), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        w[ann == -1], head.population_weights().expand(int((ann == -1).sum()), 3)
    )
    assert bool((r <= 0).all())
    torch.testing.assert_close(p_ab + p_ba, torch.ones(40), atol=1e-6, rtol=0)
    torch.testing.assert_close(head.prob(xa, xa, ann).detach(), torch.full((40,), 0.5))
    # prob_with_weights reproduces a known annotator's probabilities from its weights
    user = torch.full((40,), 2)
    w2 = torch.softmax(head.theta[2], dim=0).detach()
    torch.testing.assert_close(
        prob_with_weights(head, xa, xb, w2), head.prob(xa, xb, user).detach(), atol=1e-6, rtol=0
    )


def test_no_annotators_gives_uniform_weights() -> None:
    head = make(3, prototypes=4)
    torch.testing.assert_close(head.population_weights(), torch.full((4,), 0.25))
    assert head.weights(torch.tensor([-1, -1]), 2).shape == (2, 4)


def test_adapt_recovers_a_planted_prototype() -> None:
    # prototypes (2, 0) and (-2, 0); the new user's ideal point is prototype 2
    torch.manual_seed(0)
    head = make(2, n_annotators=2, dim_out=2, prototypes=2)
    with torch.no_grad():
        head.net.weight.copy_(torch.eye(2))
        head.net.bias.zero_()
        head.proto.copy_(torch.tensor([[2.0, 0.0], [-2.0, 0.0]]))
        head.theta.zero_()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    xa, xb = torch.randn(12, 2), torch.randn(12, 2)
    ideal = torch.tensor([-2.0, 0.0])
    closer = ((xa - ideal) ** 2).sum(1) < ((xb - ideal) ** 2).sum(1)
    outcome = torch.where(closer, 1.0, -1.0)
    w = head.adapt(xa, xb, outcome, l2=0.0)
    assert w.shape == (2,) and float(w[1]) > 0.9
    for k, v in head.state_dict().items():  # f, prototypes and known users are frozen
        assert torch.equal(v, before[k]), k
    # no decisive judgment (only ties) or no steps: the population weights
    torch.testing.assert_close(head.adapt(xa, xb, torch.zeros(12)), torch.full((2,), 0.5))
    torch.testing.assert_close(head.adapt(xa, xb, outcome, steps=0), torch.full((2,), 0.5))


def test_adapt_annotator_on_a_fitted_model() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    a, b = rng.integers(0, 15, 200), rng.integers(15, 30, 200)
    data = from_arrays(
        30,
        a=a,
        b=b,
        outcome=np.where(x[a, 0] > x[b, 0], 1, -1),
        annotator=rng.integers(0, 3, 200),
        n_annotators=3,
    )
    model = RewardModel("pal", ArrayBackbone(x), epochs=2).fit(data)
    assert isinstance(model.head_, PAL)
    pop = model.head_.population_weights().detach().double().numpy()
    np.testing.assert_allclose(adapt_annotator(model, data, np.array([], dtype=int)), pop)
    w = adapt_annotator(model, data, np.arange(5))
    assert w.shape == (2,) and w.sum() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(PrefkitError, match="rows must index"):
        adapt_annotator(model, data, np.array([200]))
    bt = RewardModel("bt", ArrayBackbone(x), epochs=1).fit(data)
    with pytest.raises(PrefkitError, match="needs a 'pal' reward model"):
        adapt_annotator(bt, data, np.arange(5))


def test_bad_inputs() -> None:
    with pytest.raises(PrefkitError, match="'prototypes' must be at least 1"):
        make(3, prototypes=0)
    with pytest.raises(PrefkitError, match="'dim_out' must be at least 1"):
        make(3, dim_out=0)
    head = make(3, n_annotators=2)
    with pytest.raises(PrefkitError, match="knows 2 annotators"):
        head.reward(torch.randn(2, 3), torch.tensor([0, 2]))
    with pytest.raises(PrefkitError, match="3 entries; the head has 2 prototypes"):
        prob_with_weights(head, torch.randn(2, 3), torch.randn(2, 3), np.ones(3) / 3)
