"""Evaluation metrics against hand-computed values on a model with known probabilities."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from prefkit.models.data import Lists, from_arrays
from prefkit.models.evaluate import calibration, evaluate, length_baselines, ranking_metrics


class FixedModel:
    """Stands in for a fitted RewardModel: rewards and P(a ≻ b) are given."""

    def __init__(self, rewards, probs, ties=None, predicts_ties=False):
        self._r, self._p = np.asarray(rewards, float), np.asarray(probs, float)
        self._t = np.zeros_like(self._p) if ties is None else np.asarray(ties, float)
        self.head_ = SimpleNamespace(predicts_ties=predicts_ties)

    def pair_probs(self, data):
        return self._p, self._t

    def rewards(self, data):
        return self._r


def _data():
    # 5 judgments: outcomes +1, -1, +1, 0 (tie), +1; annotators 0,0,1,1,-1; categories 0,1,1,0,0
    d = from_arrays(
        6,
        a=[0, 1, 2, 3, 4],
        b=[1, 2, 3, 4, 5],
        outcome=[1, -1, 1, 0, 1],
        annotator=[0, 0, 1, 1, -1],
        n_annotators=2,
        category=[0, 1, 1, 0, 0],
    )
    d.n_words = np.array([10.0, 5, 5, 8, 3, 3])
    return d


def test_accuracy_log_loss_ties_and_categories():
    d = _data()
    p = [0.9, 0.2, 0.4, 0.7, 0.5]  # right, right, wrong, (tie), half
    out = evaluate(FixedModel(np.zeros(6), p), d)
    assert out.n_decisive == 4 and out.n_ties == 1
    assert out.accuracy == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    want = -np.mean(np.log([0.9, 0.8, 0.4, 0.5]))
    assert out.log_loss == pytest.approx(want, abs=1e-12)
    cats = {c["category"]: (c["n"], c["accuracy"]) for c in out.categories}
    assert cats == {"c0": (2, 0.75), "c1": (2, 0.5)}
    assert out.macro_accuracy == pytest.approx(0.625)


def test_length_baselines_count_equal_lengths_half():
    d = _data()
    # decisive rows 0,1,2,4: a-longer? 10>5 (a won: longer right), 5=5 (half), 5<8 (a won: longer wrong), 3=3 (half)
    out = length_baselines(d, np.array([0, 1, 2, 4]))
    assert out["longer"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert out["shorter"] == pytest.approx(1 - out["longer"])


def test_three_way_accuracy_for_tie_heads():
    d = _data()
    p = [0.9, 0.2, 0.4, 0.7, 0.6]
    t = [0.1, 0.1, 0.5, 0.8, 0.1]
    out = evaluate(FixedModel(np.zeros(6), p, t, predicts_ties=True), d)
    # classes (a, tie, b): row0 a ok; row1 b ok; row2 tie pred (0.5 > 0.3, 0.2) vs a: wrong;
    # row3 tie ok; row4 a ok
    assert out.tie_accuracy == pytest.approx(4 / 5)


def test_ece_by_hand():
    p = np.array([0.55, 0.58, 0.95, 0.05, 0.7])
    a_won = np.array([True, False, True, True, True])
    ece, table = calibration(p, a_won, bins=5)  # bins of width 0.1 on [0.5, 1]
    # bin [0.5,0.6): conf .55,.58 acc 1,0 -> |0.5-0.565|; bin [0.9,1]: conf .95,.95 acc 1,0;
    # bin [0.7,0.8): conf .7 acc 1
    want = (2 * abs(0.5 - 0.565) + 2 * abs(0.5 - 0.95) + 1 * abs(1 - 0.7)) / 5
    assert ece == pytest.approx(want, abs=1e-12)
    assert sum(b["n"] for b in table) == 5


def test_ranking_metrics_by_hand():
    lists = Lists(
        item=np.array([0, 1, 2, 3, 4]),
        list_id=np.array([0, 0, 0, 1, 1]),
        tier=np.array([1, 2, 2, 1, 2]),
        prompt=np.array([0, 0, 0, 1, 1]),
    )
    d = from_arrays(5, lists=lists)
    r = np.array([3.0, 1.0, 4.0, 0.0, 1.0])
    out = ranking_metrics(d, r)
    # list 0: pairs (0>1) right, (0>2) wrong; list 1: (3>4) wrong
    assert out["pair_accuracy"] == pytest.approx(1 / 3)
    assert out["top1_accuracy"] == pytest.approx(0.0)
    assert out["n_lists"] == 2 and out["n_pairs"] == 3


def test_per_annotator_needs_enough_judgments():
    rng = np.random.default_rng(0)
    n = 40
    ann = np.repeat([0, 1], n // 2)
    d = from_arrays(
        2 * n, a=np.arange(n), b=np.arange(n) + n, outcome=np.ones(n), annotator=ann, n_annotators=2
    )
    p = np.where(ann == 0, 0.9, rng.choice([0.1, 0.9], n))
    out = evaluate(FixedModel(np.zeros(2 * n), p), d)
    a = out.annotators
    assert a["n_scored"] == 2 and a["max_accuracy"] == 1.0
    assert a["worst"][0]["annotator"] == "u1"
    assert a["min_accuracy"] == pytest.approx(np.mean(p[ann == 1] > 0.5))


def test_all_tie_judgments_are_refused_by_heads_that_skip_ties():
    from prefkit.errors import PrefkitError
    from prefkit.models.backbones import ArrayBackbone
    from prefkit.models.reward_model import RewardModel

    d = from_arrays(4, a=[0, 2], b=[1, 3], outcome=[0, 0])
    with pytest.raises(PrefkitError, match="decisive"):
        RewardModel("bt", ArrayBackbone(np.eye(4))).fit(d)
    RewardModel("ties", ArrayBackbone(np.eye(4)), epochs=2).fit(d)  # ties are its data


def test_attributes_are_matched_by_name():
    from prefkit.models.backbones import ArrayBackbone
    from prefkit.models.reward_model import RewardModel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    att = np.stack([x[:, 0], -3 * x[:, 1]], axis=1)
    model = RewardModel("attr", ArrayBackbone(x), epochs=60).fit(
        from_arrays(200, attributes=att, attribute_names=["A", "B"])
    )
    only_b = from_arrays(200, attributes=att[:, 1:], attribute_names=["B"])
    out = evaluate(model, only_b)
    assert [r["attribute"] for r in out.attributes] == ["B"]
    assert out.attributes[0]["pearson"] > 0.8  # B's predictions; A's would be ~0
    unknown = evaluate(model, from_arrays(200, attributes=att[:, :1], attribute_names=["C"]))
    assert unknown.attributes == []


def test_annotators_without_training_judgments_are_not_known():
    from prefkit.models.backbones import ArrayBackbone
    from prefkit.models.reward_model import RewardModel

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 50, 300), rng.integers(0, 50, 300)
    ann = np.where(np.arange(300) < 150, 0, 2)  # annotator 1 judged nothing
    d = from_arrays(50, a=a, b=b, outcome=np.where(a > b, 1, -1), annotator=ann, n_annotators=3)
    model = RewardModel("pal", ArrayBackbone(rng.normal(size=(50, 4))), epochs=2).fit(d)
    assert model.annotators_ == ["u0", "u2"]
    assert model.annotator_index(d, np.array([0, 1, 2, -1])).tolist() == [0, -1, 1, -1]


def test_categories_pool_over_folds_by_judgment_counts():
    from prefkit.models.evaluate import RMEval, pool_categories, summarize_folds

    def fold(cats):
        r = RMEval(0, 0, 0, None, None, {"longer": None, "shorter": None})
        r.categories = [
            {"category": c, "n": n, "accuracy": a, "longer": lg, "shorter": 1 - lg}
            for c, n, a, lg in cats
        ]
        return r

    folds = [fold([("x", 10, 0.9, 0.5), ("y", 30, 0.6, 0.2)]), fold([("x", 30, 0.5, 0.3)])]
    pooled, macro = pool_categories(folds)
    assert pooled[0] == pytest.approx(
        {
            "category": "x",
            "n": 40,
            "accuracy": (9 + 15) / 40,
            "longer": (5 + 9) / 40,
            "shorter": 1 - 14 / 40,
        }
    )
    assert pooled[1]["n"] == 30 and pooled[1]["accuracy"] == pytest.approx(0.6)
    assert macro == pytest.approx((0.6 + 0.6) / 2)
    assert summarize_folds(folds)["categories"] == pooled


def test_ties_do_not_cut_epochs_short_or_weigh_the_loss():
    from prefkit.models.backbones import ArrayBackbone
    from prefkit.models.reward_model import RewardModel

    d = from_arrays(10, a=np.arange(5), b=np.arange(5) + 5, outcome=[1, 0, 0, 0, 1])
    m = RewardModel("bt", ArrayBackbone(np.eye(10)), epochs=3, batch_size=2, seed=0).fit(d)
    assert [h["step"] for h in m.history_] == [3, 6, 9]  # every batch of every epoch
    assert all(h["loss"] > 0 for h in m.history_)

    import torch

    from prefkit.models.heads.base import PairBatch, build_head
    from prefkit.training.rm import examples_in

    x = torch.zeros(3, 2)
    batch = PairBatch(
        x,
        x,
        torch.tensor([1.0, 0.0, 0.0]),
        torch.full((3,), float("nan")),
        torch.full((3,), -1),
        torch.ones(3),
    )
    assert examples_in(batch, build_head("bt", 2)) == 1  # ties are not in bt's loss
    assert examples_in(batch, build_head("bt", 2, ties="half")) == 3
    assert examples_in(batch, build_head("ties", 2)) == 3
