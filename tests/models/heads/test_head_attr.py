"""The ``attr`` head: multi-attribute regression (HelpSteer), NaN-masked MSE, weighted reward.

Golden values: the masked MSE and the first-batch standardisation computed by hand in
NumPy; planted linear attributes (R² against the noiseless truth); weights parsed by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import prefkit.models.heads.attr  # noqa: F401  (registers "attr")
from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import from_arrays
from prefkit.models.heads.attr import AttributeRegression, masked_mse, parse_weights
from prefkit.models.heads.base import HEADS, ItemBatch, build_head
from prefkit.models.reward_model import RewardModel


def test_registered() -> None:
    assert HEADS["attr"] is AttributeRegression and AttributeRegression.kind == "items"


def test_masked_mse_closed_form() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]])
    target = torch.tensor([[2.0, float("nan")], [1.0, 5.0], [float("nan"), float("nan")]])
    scale = torch.tensor([2.0, 0.5])
    # observed: (0,0): (1-2)/2 -> 0.25; (1,0): (3-1)/2 -> 1; (1,1): (4-5)/0.5 -> 4
    assert masked_mse(pred, target, scale).item() == pytest.approx((0.25 + 1 + 4) / 3, abs=1e-7)
    # nothing observed: zero loss, zero gradient, no NaN
    p = pred.clone().requires_grad_()
    loss = masked_mse(p, torch.full_like(target, float("nan")), scale)
    loss.backward()
    assert loss.item() == 0 and torch.equal(p.grad, torch.zeros_like(p))  # type: ignore[arg-type]


def test_first_batch_standardises_and_loss_matches_numpy() -> None:
    torch.manual_seed(0)
    head = build_head("attr", 4, n_attributes=3)
    head.train()
    x = torch.randn(6, 4)
    t = np.array(
        [[1, 10, np.nan], [2, 20, np.nan], [4, np.nan, np.nan], [np.nan, 40, np.nan],
         [3, 30, np.nan], [np.nan, np.nan, np.nan]]
    )  # fmt: skip
    loss = head.loss(ItemBatch(x, torch.tensor(t, dtype=torch.float32)))
    mean, std = np.nanmean(t[:, :2], 0), np.nanstd(t[:, :2], 0)  # population std
    np.testing.assert_allclose(head.center.numpy(), [*mean, 0.0], rtol=1e-6)
    np.testing.assert_allclose(head.scale.numpy(), [*std, 1.0], rtol=1e-6)  # unrated -> 1
    with torch.no_grad():
        z = head.net(x).double().numpy()  # standard units
    pred = np.array([*mean, 0.0]) + np.array([*std, 1.0]) * z
    err = ((pred - t) / np.array([*std, 1.0])) ** 2
    assert loss.item() == pytest.approx(np.nanmean(err), rel=1e-5)
    # the statistics are fixed after the first batch
    head.loss(ItemBatch(x, torch.full((6, 3), 100.0)))
    np.testing.assert_allclose(head.center.numpy(), [*mean, 0.0], rtol=1e-6)


def test_all_nan_rows_contribute_nothing() -> None:
    torch.manual_seed(1)
    head = build_head("attr", 3, n_attributes=2, hidden=8)
    head.train()
    x = torch.randn(5, 3)
    t = torch.tensor([[1.0, 2.0], [0.0, float("nan")], [3.0, 1.0], [2.0, 2.0], [1.0, 0.0]])
    head.loss(ItemBatch(x, t))  # initialise the statistics
    base = head.loss(ItemBatch(x, t))
    base.backward()
    g = [p.grad.clone() for p in head.parameters()]  # type: ignore[union-attr]
    head.zero_grad()
    junk = torch.cat([x, 1e3 * torch.randn(3, 3)])  # extra rows with no ratings at all
    extra = head.loss(ItemBatch(junk, torch.cat([t, torch.full((3, 2), float("nan"))])))
    extra.backward()
    assert extra.item() == pytest.approx(base.item(), rel=1e-6)
    for a, p in zip(g, head.parameters(), strict=True):
        torch.testing.assert_close(p.grad, a, rtol=1e-5, atol=1e-7)


def test_weights_parse_and_reward() -> None:
    assert parse_weights("", 4) == [0.25] * 4
    assert parse_weights(" 1, -0.5 ,2e-1", 3) == [1.0, -0.5, 0.2]
    with pytest.raises(PrefkitError, match="2 value"):
        build_head("attr", 4, n_attributes=3, weights="1,2")
    with pytest.raises(PrefkitError, match="comma-separated numbers"):
        build_head("attr", 4, n_attributes=2, weights="1,x")
    with pytest.raises(PrefkitError, match="finite"):
        build_head("attr", 4, n_attributes=2, weights="1,nan")
    with pytest.raises(PrefkitError, match="has none"):
        build_head("attr", 4, n_attributes=0)
    head = build_head("attr", 4, n_attributes=3, weights="1,0,-2")
    head.eval()
    x = torch.randn(7, 4)
    a = head.predict_attributes(x)  # type: ignore[operator]
    assert a.shape == (7, 3)
    torch.testing.assert_close(head.reward(x), a[:, 0] - 2 * a[:, 2])
    torch.testing.assert_close(
        head.prob(x[:3], x[3:6]), torch.sigmoid(head.reward(x[:3]) - head.reward(x[3:6]))
    )


def planted(seed: int = 0, n: int = 600, d: int = 8, missing: float = 0.2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    truth = X @ rng.normal(size=(d, 3)) * np.array([1.0, 3.0, 0.2]) + np.array([5.0, -2.0, 10.0])
    A = truth.copy()
    A[rng.random((n, 3)) < missing] = np.nan
    A[:50] = np.nan  # responses with no ratings at all
    return X, truth, A


def r2(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return 1 - ((pred - truth) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)


def test_recovers_planted_linear_attributes(tmp_path: Path) -> None:
    X, truth, A = planted()
    data = from_arrays(len(X), attributes=A, attribute_names=["help", "correct", "verbose"])
    m = RewardModel("attr", ArrayBackbone(X), epochs=30, batch_size=32, head_params={
        "weights": "0.5,0.5,-1"}).fit(data)  # fmt: skip
    x = m.features(data)
    with torch.no_grad():
        pred = m.head_.predict_attributes(x).double().numpy()  # type: ignore[operator]
    assert (r2(pred, truth) > 0.95).all(), r2(pred, truth)  # incl. the 50 unrated rows
    np.testing.assert_allclose(m.rewards(data), pred @ [0.5, 0.5, -1], rtol=1e-5, atol=1e-5)
    # save -> load keeps the statistics, the weights and the predictions
    m.save(tmp_path / "rm")
    back = RewardModel.load(tmp_path / "rm")
    assert back.attribute_names_ == ["help", "correct", "verbose"]
    np.testing.assert_allclose(back.rewards(data), m.rewards(data), atol=1e-6, rtol=0)


def test_mlp_head_and_no_ratings_error() -> None:
    X, truth, A = planted(seed=1, n=400, d=4)
    data = from_arrays(len(X), attributes=A)
    m = RewardModel("attr", ArrayBackbone(X), epochs=40, batch_size=32,
                    head_params={"hidden": 32}).fit(data)  # fmt: skip
    with torch.no_grad():
        pred = m.head_.predict_attributes(m.features(data)).double().numpy()  # type: ignore[operator]
    assert (r2(pred, truth) > 0.9).all(), r2(pred, truth)
    empty = from_arrays(len(X), attributes=np.full((len(X), 2), np.nan))
    with pytest.raises(PrefkitError, match="attribute ratings"):
        RewardModel("attr", ArrayBackbone(X)).fit(empty)
    with pytest.raises(PrefkitError, match="has none"):
        RewardModel("attr", ArrayBackbone(X)).fit(from_arrays(len(X)))
