"""Planted-truth preference data and the experiments that check the ``gpm`` and ``pal`` heads.

Generators return ``(features (n, D) float32, PrefData)`` built with
:func:`~prefkit.models.data.from_arrays` (pair them with an
:class:`~prefkit.models.backbones.ArrayBackbone`); the planted truth is kept in
``data.meta``. Everything is seeded, so an experiment returns the same numbers each run.

* :func:`cyclic_preferences`: intransitive (rock-paper-scissors) preferences on a circle,
  ``P(i ≻ j) = σ(β sin(θ_i − θ_j))``: no transitive component at all.
* :func:`group_preferences`: annotator groups with diverging linear rewards.
* :func:`cycles_experiment`: held-out accuracy of ``bt`` vs ``gpm`` on cyclic data.
* :func:`few_shot_experiment`: accuracy on new annotators of ``bt`` vs ``pal`` adapted on
  ``k`` of each new annotator's judgments.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch

import prefkit.models.heads.gpm  # noqa: F401  (registers the head)
from prefkit.errors import PrefkitError
from prefkit.models.backbones import ArrayBackbone
from prefkit.models.data import PrefData, from_arrays
from prefkit.models.evaluate import hit
from prefkit.models.heads import pal as pal_mod
from prefkit.models.heads.bt import bce_logits
from prefkit.models.reward_model import RewardModel
from prefkit.training.rm import single_thread


def _pairs(rng: np.random.Generator, n_items: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random pairs of distinct items."""
    if n_items < 2:
        raise PrefkitError(f"need at least 2 items, got {n_items}")
    a = rng.integers(0, n_items, n)
    b = (a + rng.integers(1, n_items, n)) % n_items  # never equal to a
    return a, b


def _bt_labels(rng: np.random.Generator, logit: np.ndarray) -> np.ndarray:
    """+1 with probability σ(logit), else −1."""
    return np.where(rng.random(len(logit)) < 1.0 / (1.0 + np.exp(-logit)), 1, -1)


def cyclic_preferences(
    n_items: int = 300,
    dim: int = 8,
    n_pairs: int = 6000,
    seed: int = 0,
    beta: float = 5.0,
    noise: float = 0.1,
) -> tuple[np.ndarray, PrefData]:
    """Items on a circle with intransitive preferences ``P(i ≻ j) = σ(β sin(θ_i − θ_j))``.

    Each item has an angle ``θ_i ~ U[0, 2π)``; its features are a random linear embedding
    of ``(cos θ_i, sin θ_i)`` into ``dim`` dimensions plus ``N(0, noise²)`` on every
    dimension. The score ``sin(θ_i − θ_j)`` is skew-symmetric with no transitive part: a
    reward linear in the features is at chance (reflecting the circle flips every label
    and keeps the reward's distribution), while a rank-2 GPM represents it exactly.

    Returns
    -------
    tuple
        ``(features (n_items, dim) float32, PrefData)``; ``data.meta`` holds ``theta``
        and ``beta``.
    """
    if dim < 2:
        raise PrefkitError(f"cyclic_preferences needs dim >= 2, got {dim}")
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.0, 2 * np.pi, n_items)  # (n,)
    circle = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (n, 2)
    embed = rng.normal(size=(2, dim)) / np.sqrt(2)  # (2, D)
    x = circle @ embed + noise * rng.normal(size=(n_items, dim))  # (n, D)
    a, b = _pairs(rng, n_items, n_pairs)
    y = _bt_labels(rng, beta * np.sin(theta[a] - theta[b]))
    data = from_arrays(n_items, a=a, b=b, outcome=y)
    data.meta.update(theta=theta, beta=beta)
    return x.astype(np.float32), data


def group_preferences(
    n_items: int = 200,
    dim: int = 8,
    n_groups: int = 2,
    n_annotators: int = 60,
    pairs_per_annotator: int = 80,
    seed: int = 0,
    shared: float = 0.3,
    scale: float = 3.0,
) -> tuple[np.ndarray, PrefData, np.ndarray]:
    """Annotator groups with diverging linear rewards ``r_g(x) = w_g · x``.

    Group directions are ``scale · (shared · c + √(1 − shared²) · d_g)`` with ``c`` a
    common unit direction and ``d_g`` the vertices of a centred regular simplex (unit
    length, orthogonal to ``c``): two groups get opposite ``d_g``. Annotators are dealt to
    groups evenly at random; each judges ``pairs_per_annotator`` random pairs of the
    ``N(0, I)`` items, labelled by Bradley–Terry with their group's reward. Judgments
    are stored annotator by annotator.

    Returns
    -------
    tuple
        ``(features (n_items, dim) float32, PrefData, group of each annotator (U,))``;
        ``data.meta`` holds the directions ``w`` ``(G, dim)``.
    """
    if not 1 <= n_groups < dim:
        raise PrefkitError(f"need 1 <= n_groups < dim, got n_groups={n_groups}, dim={dim}")
    if not 0.0 <= shared <= 1.0:
        raise PrefkitError(f"shared must lie in [0, 1], got {shared}")
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, n_groups + 1)))  # (D, G+1) orthonormal
    c, e = basis[:, 0], basis[:, 1:].T  # (D,), (G, D)
    d = e - e.mean(0) if n_groups > 1 else np.zeros_like(e)  # (G, D) centred simplex
    norms = np.linalg.norm(d, axis=1, keepdims=True)
    d = np.divide(d, norms, out=np.zeros_like(d), where=norms > 0)
    w = scale * (shared * c + np.sqrt(1.0 - shared**2) * d)  # (G, D)
    x = rng.normal(size=(n_items, dim))  # (n, D)
    groups = rng.permutation(np.arange(n_annotators) % n_groups)  # (U,)
    ann = np.repeat(np.arange(n_annotators), pairs_per_annotator)
    a, b = _pairs(rng, n_items, len(ann))
    r = x @ w.T  # (n, G)
    g = groups[ann]
    y = _bt_labels(rng, r[a, g] - r[b, g])
    data = from_arrays(n_items, a=a, b=b, outcome=y, annotator=ann, n_annotators=n_annotators)
    data.meta.update(w=w, groups=groups)
    return x.astype(np.float32), data, groups


def _accuracy(p: np.ndarray, outcome: np.ndarray) -> float:
    """Share of decisive judgments whose winner has P > ½ (a P of exactly ½ counts half)."""
    keep = outcome != 0
    return float(hit(p[keep], outcome[keep] > 0).mean()) if keep.any() else float("nan")


def cycles_experiment(
    seed: int = 0,
    n_items: int = 600,
    n_pairs: int = 8000,
    beta: float = 5.0,
    holdout: float = 0.5,
    epochs: int = 40,
) -> dict[str, float]:
    """Held-out accuracy of ``bt`` and ``gpm`` on :func:`cyclic_preferences` data.

    Items are split: ``holdout`` of them are unseen in training, and the test judgments
    are those between two held-out items (training uses those between two training
    items). ``oracle`` is the accuracy of the planted probabilities on the same
    judgments (the label-noise ceiling).
    """
    x, data = cyclic_preferences(n_items, 8, n_pairs, seed, beta=beta)
    rng = np.random.default_rng(seed + 1)
    test_item = rng.random(n_items) < holdout
    p = data.pairs
    train_rows = np.flatnonzero(~test_item[p.a] & ~test_item[p.b])
    test_rows = np.flatnonzero(test_item[p.a] & test_item[p.b])
    train = replace(data, pairs=p.take(train_rows))
    test_pairs = p.take(test_rows)
    out: dict[str, float] = {}
    for head in ("bt", "gpm"):
        model = RewardModel(head, ArrayBackbone(x), epochs=epochs, lr=1e-2, seed=seed)
        with single_thread():
            prob, _ = model.fit(train).pair_probs(data, test_pairs)
        out[head] = _accuracy(prob, test_pairs.outcome)
    theta = data.meta["theta"]
    truth = 1.0 / (1.0 + np.exp(-beta * np.sin(theta[test_pairs.a] - theta[test_pairs.b])))
    out["oracle"] = _accuracy(truth, test_pairs.outcome)
    out["n_test"] = float(len(test_rows))
    return out


def _finetune_bt(
    head: Any, xa: torch.Tensor, xb: torch.Tensor, y: torch.Tensor, steps: int, lr: float
) -> Any:
    """A copy of a ``bt`` head fine-tuned (all weights) on a few judgments."""
    tuned = copy.deepcopy(head)
    tuned.train()
    opt = torch.optim.Adam(tuned.parameters(), lr=lr)
    target = (y + 1.0) / 2.0
    for _ in range(steps):
        diff = tuned.reward(xa) - tuned.reward(xb)
        loss = bce_logits(diff, target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    tuned.eval()
    return tuned


def few_shot_experiment(
    ks: tuple[int, ...] = (0, 2, 4, 8, 16),
    seed: int = 0,
    n_train_annotators: int = 40,
    n_new_annotators: int = 20,
    pairs_per_annotator: int = 80,
    epochs: int = 30,
    finetune_steps: int = 50,
    finetune_lr: float = 0.01,
) -> list[dict[str, float]]:
    """Accuracy on new annotators: ``bt`` (one model for all), ``bt_finetuned`` (the ``bt``
    head fine-tuned on the user's ``k`` judgments) and ``pal`` (weights adapted on them).

    Data: :func:`group_preferences` with two opposed groups. ``bt`` and ``pal`` train on
    the first ``n_train_annotators``; each new annotator's judgments are split into the
    first ``max(ks)`` (adaptation pool; ``k`` of them are used) and the rest (scored, the
    same set for every ``k``). Accuracies pool all new annotators' scored judgments;
    ``oracle`` scores them with each annotator's planted group reward (the ceiling).
    """
    k_max = max(ks)
    if k_max >= pairs_per_annotator:
        raise PrefkitError(f"max(ks)={k_max} leaves no judgments to score")
    n_ann = n_train_annotators + n_new_annotators
    x, data, groups = group_preferences(
        n_annotators=n_ann, pairs_per_annotator=pairs_per_annotator, seed=seed
    )
    p = data.pairs
    train_rows = np.flatnonzero(p.annotator < n_train_annotators)
    n_items = len(x)
    train = from_arrays(
        n_items,
        a=p.a[train_rows],
        b=p.b[train_rows],
        outcome=p.outcome[train_rows],
        annotator=p.annotator[train_rows],
        n_annotators=n_train_annotators,
    )
    with single_thread():  # the whole experiment: tiny models, many small steps
        common: dict[str, Any] = {"epochs": epochs, "lr": 1e-2, "batch_size": 128, "seed": seed}
        bt = RewardModel("bt", ArrayBackbone(x), **common).fit(train)
        pal = RewardModel("pal", ArrayBackbone(x), **common).fit(train)
        pal_head = pal.head_
        assert isinstance(pal_head, pal_mod.PAL)
        feats = torch.from_numpy(x)
        new_users = range(n_train_annotators, n_ann)
        user_rows = {u: np.flatnonzero(p.annotator == u) for u in new_users}
        score_rows = np.concatenate([r[k_max:] for r in user_rows.values()])
        bt_prob, _ = bt.pair_probs(data, p.take(score_rows))
        bt_acc = _accuracy(bt_prob, p.outcome[score_rows])
        w_true = data.meta["w"][groups[p.annotator[score_rows]]]  # (S, D) each judge's direction
        truth = np.einsum("sd,sd->s", x[p.a[score_rows]] - x[p.b[score_rows]], w_true)
        oracle = _accuracy(1.0 / (1.0 + np.exp(-truth)), p.outcome[score_rows])
        out = []
        for k in ks:
            probs_pal, probs_ft = [], []
            for u in new_users:
                fit, score = user_rows[u][:k], user_rows[u][k_max:]
                w = pal_mod.adapt_annotator(pal, data, fit)
                xa, xb = feats[p.a[score]], feats[p.b[score]]
                probs_pal.append(pal_mod.prob_with_weights(pal_head, xa, xb, w).numpy())
                if k:
                    y = torch.from_numpy(p.outcome[fit].astype(np.float32))
                    tuned = _finetune_bt(
                        bt.head_, feats[p.a[fit]], feats[p.b[fit]], y, finetune_steps, finetune_lr
                    )
                    with torch.no_grad():
                        probs_ft.append(torch.sigmoid(tuned.reward(xa) - tuned.reward(xb)).numpy())
            outcome = p.outcome[score_rows]
            out.append(
                {
                    "k": float(k),
                    "bt": bt_acc,
                    "bt_finetuned": _accuracy(np.concatenate(probs_ft), outcome) if k else bt_acc,
                    "pal": _accuracy(np.concatenate(probs_pal), outcome),
                    "oracle": oracle,
                }
            )
    return out


__all__ = [
    "cycles_experiment",
    "cyclic_preferences",
    "few_shot_experiment",
    "group_preferences",
]
