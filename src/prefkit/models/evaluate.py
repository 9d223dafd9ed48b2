"""Held-out evaluation of a reward or preference model, beside length-only baselines.

:func:`evaluate` scores a fitted :class:`~prefkit.models.reward_model.RewardModel` on a
:class:`~prefkit.models.data.PrefData` and returns an :class:`RMEval`:

* **pairwise accuracy** on decisive judgments (a predicted P = ½ counts half); ties are
  counted and left out, and heads that model ties also get a 3-way accuracy (the
  predicted class is the most probable of a ≻ b, tie, b ≻ a);
* **length baselines**: the accuracy of always picking the longer, and the shorter,
  response (by words; equal lengths count half), on the same judgments;
* **per category** accuracy with the micro (judgment-weighted) and macro (unweighted
  mean over categories) averages, as RewardBench reports its sections (Lambert et al.
  2024, "RewardBench");
* **ranking accuracy** on ranked lists: the share of correctly ordered pairs of distinct
  tiers, and how often the top-tier item gets the highest reward;
* **calibration**: expected calibration error (Naeini et al. 2015; Guo et al. 2017) over
  equal-width bins of the confidence max(P, 1 − P), with the reliability table to plot;
* **per annotator** accuracy (with annotator-specific preferences where the head has them);
* **attributes**: RMSE and Pearson r per attribute for heads that predict them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prefkit.models.data import PrefData

BINS = 10
#: Annotators need at least this many held-out judgments to get their own accuracy.
MIN_ANNOTATOR_JUDGMENTS = 5


@dataclass
class RMEval:
    """Evaluation results (plain numbers; :meth:`to_dict` is JSON-ready)."""

    n_judgments: int
    n_decisive: int
    n_ties: int
    accuracy: float | None
    log_loss: float | None
    baselines: dict[str, float | None]
    tie_accuracy: float | None = None
    categories: list[dict[str, Any]] = field(default_factory=list)
    macro_accuracy: float | None = None
    ranking: dict[str, Any] | None = None
    ece: float | None = None
    reliability: list[dict[str, float]] = field(default_factory=list)
    annotators: dict[str, Any] | None = None
    attributes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hit(p: np.ndarray, a_won: np.ndarray) -> np.ndarray:
    """1 where P(a ≻ b) points at the winner, ½ where it is exactly ½, else 0."""
    return np.where(p == 0.5, 0.5, ((p > 0.5) == a_won).astype(float))


def longer_hits(data: PrefData, rows: np.ndarray) -> np.ndarray:
    """Per judgment in ``rows``: 1 where the longer response (by words) won, ½ on equal
    lengths, else 0 (the pick-shorter hit is one minus it)."""
    p = data.pairs
    diff = data.n_words[p.a[rows]] - data.n_words[p.b[rows]]
    return hit(0.5 + 0.5 * np.sign(diff), p.outcome[rows] > 0)


def length_baselines(data: PrefData, rows: np.ndarray) -> dict[str, float | None]:
    """Accuracy of picking the longer / shorter response on decisive judgments ``rows``."""
    if len(rows) == 0:
        return {"longer": None, "shorter": None}
    longer = float(longer_hits(data, rows).mean())
    return {"longer": longer, "shorter": 1 - longer}


def calibration(
    p: np.ndarray, a_won: np.ndarray, bins: int = BINS
) -> tuple[float | None, list[dict[str, float]]]:
    """ECE and the reliability table over equal-width confidence bins on [½, 1]."""
    if len(p) == 0:
        return None, []
    conf = np.maximum(p, 1 - p)
    correct = hit(p, a_won)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for k in range(bins):
        m = which == k
        if not m.any():
            continue
        c, acc = float(conf[m].mean()), float(correct[m].mean())
        ece += m.sum() / len(p) * abs(acc - c)
        table.append(
            {
                "lo": float(edges[k]),
                "hi": float(edges[k + 1]),
                "n": int(m.sum()),
                "confidence": c,
                "accuracy": acc,
            }
        )
    return float(ece), table


def ranking_metrics(data: PrefData, rewards: np.ndarray) -> dict[str, Any] | None:
    """Pairwise ordering accuracy within ranked lists, and top-1 accuracy."""
    L = data.lists
    if len(L) == 0:
        return None
    order = np.argsort(L.list_id, kind="stable")
    starts = np.flatnonzero(np.diff(L.list_id[order], prepend=-1))
    hits, n_pairs, top = 0.0, 0, []
    for rows in np.split(order, starts[1:]):
        r, t = rewards[L.item[rows]], L.tier[rows]
        ahead = t[:, None] < t[None, :]  # (n, n): row's tier is better than column's
        d = (r[:, None] - r[None, :])[ahead]
        hits += float(np.where(d == 0, 0.5, d > 0).sum())
        n_pairs += len(d)
        if len(d):
            top.append(float(t[np.argmax(r)] == t.min()))
    return {
        "n_lists": L.n_lists,
        "n_pairs": n_pairs,
        "pair_accuracy": hits / n_pairs if n_pairs else None,
        "top1_accuracy": float(np.mean(top)) if top else None,
    }


def _categories(
    data: PrefData, rows: np.ndarray, correct: np.ndarray, base_longer: np.ndarray
) -> tuple[list[dict[str, Any]], float | None]:
    out = []
    cats = data.pairs.category[rows]
    for c in np.unique(cats):
        m = cats == c
        out.append(
            {
                "category": str(data.categories[c]),
                "n": int(m.sum()),
                "accuracy": float(correct[m].mean()),
                "longer": float(base_longer[m].mean()),
                "shorter": float(1 - base_longer[m].mean()),
            }
        )
    macro = float(np.mean([c["accuracy"] for c in out])) if out else None
    return out, macro


def _annotators(data: PrefData, rows: np.ndarray, correct: np.ndarray) -> dict[str, Any] | None:
    ann = data.pairs.annotator[rows]
    known = ann >= 0
    if not known.any():
        return None
    ids, counts = np.unique(ann[known], return_counts=True)
    sums = np.bincount(ann[known], weights=correct[known], minlength=int(ids.max()) + 1)[ids]
    keep = counts >= MIN_ANNOTATOR_JUDGMENTS
    acc = sums[keep] / counts[keep]
    worst = np.argsort(acc)[:10]
    return {
        "n_annotators": len(ids),
        "n_scored": int(keep.sum()),
        "min_judgments": MIN_ANNOTATOR_JUDGMENTS,
        "mean_accuracy": float(acc.mean()) if len(acc) else None,
        "min_accuracy": float(acc.min()) if len(acc) else None,
        "max_accuracy": float(acc.max()) if len(acc) else None,
        "worst": [
            {
                "annotator": str(data.annotators[ids[keep][w]]),
                "n": int(counts[keep][w]),
                "accuracy": float(acc[w]),
            }
            for w in worst
        ],
    }


def _attributes(model: Any, data: PrefData) -> list[dict[str, Any]]:
    head = model.head_
    if not hasattr(head, "predict_attributes") or not data.attribute_names:
        return []
    rated = np.flatnonzero(~np.isnan(data.attributes).all(axis=1))
    if len(rated) == 0:
        return []
    import torch

    with torch.no_grad():
        pred = head.predict_attributes(model.features(data, rated)).double().numpy()
    out = []
    learned = {name: j for j, name in enumerate(model.attribute_names_)}
    for k, name in enumerate(data.attribute_names):
        if name not in learned:  # the model never saw this attribute
            continue
        y, yhat = data.attributes[rated, k], pred[:, learned[name]]
        m = ~np.isnan(y)
        if m.sum() < 2:
            continue
        err = yhat[m] - y[m]
        r = (
            float(np.corrcoef(yhat[m], y[m])[0, 1])
            if np.std(y[m]) > 0 and np.std(yhat[m]) > 0
            else None
        )
        out.append(
            {
                "attribute": name,
                "n": int(m.sum()),
                "rmse": float(np.sqrt(np.mean(err**2))),
                "pearson": r,
            }
        )
    return out


def evaluate(model: Any, data: PrefData, *, bins: int = BINS) -> RMEval:
    """Score ``model`` on every label of ``data``; see the module docstring."""
    p = data.pairs
    decisive = np.flatnonzero(p.outcome != 0)
    ties = np.flatnonzero(p.outcome == 0)
    out = RMEval(
        n_judgments=len(p),
        n_decisive=len(decisive),
        n_ties=len(ties),
        accuracy=None,
        log_loss=None,
        baselines=length_baselines(data, decisive),
    )
    if len(p):
        prob, tie = model.pair_probs(data)
        a_won = p.outcome[decisive] > 0
        pd_ = prob[decisive]
        correct = hit(pd_, a_won)
        if len(decisive):
            out.accuracy = float(correct.mean())
            q = np.clip(np.where(a_won, pd_, 1 - pd_), 1e-12, 1.0)
            out.log_loss = float(-np.log(q).mean())
            out.ece, out.reliability = calibration(pd_, a_won, bins)
            longer = longer_hits(data, decisive)
            out.categories, out.macro_accuracy = _categories(data, decisive, correct, longer)
            out.annotators = _annotators(data, decisive, correct)
        if model.head_.predicts_ties:
            win = (1 - tie) * prob
            three = np.stack([win, tie, (1 - tie) * (1 - prob)], axis=1)  # a ≻ b, tie, b ≻ a
            truth = np.select([p.outcome > 0, p.outcome == 0], [0, 1], 2)
            out.tie_accuracy = float((three.argmax(axis=1) == truth).mean())
    if len(data.lists):
        out.ranking = ranking_metrics(data, model.rewards(data))
    out.attributes = _attributes(model, data)
    return out


def cross_validate(
    make_model: Any,
    data: PrefData,
    folds: int = 5,
    seed: int = 0,
    progress: Any = None,
) -> list[RMEval]:
    """Fit ``make_model()`` on all but one prompt fold and evaluate on that fold, ``folds``
    times (folds from :func:`prefkit.models.data.prompt_folds`)."""
    from prefkit.models.data import prompt_folds

    results = []
    for k, test in enumerate(prompt_folds(data, folds, seed)):
        model = make_model().fit(data.select_prompts(~test))
        results.append(evaluate(model, data.select_prompts(test)))
        if progress:
            progress(k + 1, folds)
    return results


def pool_categories(results: list[RMEval]) -> tuple[list[dict[str, Any]], float | None]:
    """Per-category results pooled over folds (each fold's accuracy weighted by its
    judgments, so every held-out judgment counts once) and their unweighted mean."""
    sums: dict[str, list[float]] = {}
    for r in results:
        for c in r.categories:
            acc = sums.setdefault(c["category"], [0.0, 0.0, 0.0])
            acc[0] += c["n"]
            acc[1] += c["n"] * c["accuracy"]
            acc[2] += c["n"] * c["longer"]
    pooled = [
        {"category": k, "n": int(n), "accuracy": a / n, "longer": lg / n, "shorter": 1 - lg / n}
        for k, (n, a, lg) in sorted(sums.items())
    ]
    macro = float(np.mean([c["accuracy"] for c in pooled])) if pooled else None
    return pooled, macro


def summarize_folds(results: list[RMEval]) -> dict[str, Any]:
    """Mean and standard deviation over folds of the headline numbers, and the
    per-category results pooled over folds."""

    def stat(values: list[float | None]) -> dict[str, float] | None:
        v = np.array([x for x in values if x is not None], dtype=float)
        return (
            {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
            if len(v)
            else None
        )

    return {
        "folds": len(results),
        "n_decisive": int(sum(r.n_decisive for r in results)),
        "accuracy": stat([r.accuracy for r in results]),
        "longer": stat([r.baselines["longer"] for r in results]),
        "shorter": stat([r.baselines["shorter"] for r in results]),
        "ece": stat([r.ece for r in results]),
        "log_loss": stat([r.log_loss for r in results]),
        "categories": (pooled := pool_categories(results))[0],
        "macro_accuracy": pooled[1],
    }


__all__ = [
    "RMEval",
    "calibration",
    "cross_validate",
    "evaluate",
    "hit",
    "length_baselines",
    "pool_categories",
    "ranking_metrics",
    "summarize_folds",
]
