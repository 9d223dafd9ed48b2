"""`ArenaResult`: a leaderboard with intervals, from the bootstrap or the analytic method.

Both :func:`prefkit.ratings.bootstrap.bootstrap` and
:func:`prefkit.ratings.analytic.analytic_intervals` return this record, so reports and
the CLI render either the same way. Ranks follow the Chatbot Arena rule (Chiang et al.
2024): a model's rank is 1 + the number of models whose lower bound is above its upper
bound, so models with overlapping intervals share a rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa


def arena_ranks(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``1 + #{j : lower_j > upper_i}`` for every model i (``(m,)`` int64)."""
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1).astype(np.int64)


@dataclass
class ArenaResult:
    """Ratings with intervals and ranks for every model.

    Attributes
    ----------
    models
        Model names; every array is aligned with it.
    rating
        Point estimate: the maximum-likelihood rating on all battles.
    lower, upper
        Interval bounds at level ``ci``.
    median
        Bootstrap median (equal to ``rating`` for the analytic methods).
    rank
        Chatbot Arena rank (see :func:`arena_ranks`).
    battles
        Battles per model.
    method
        ``"bootstrap"``, ``"fisher"`` or ``"sandwich"``.
    ci
        Interval level, e.g. 0.95.
    ties
        Tie convention of the fitted model.
    rounds, seed
        Bootstrap rounds and seed (0 and None for the analytic methods).
    degenerate_rounds
        Bootstrap rounds whose resample had no finite maximum-likelihood fit (a model, or
        a group of models, that never won or never lost in it).
    degenerate_models
        ``{model: rounds}``: how often each model caused a degenerate round.
    degenerate_policy
        What was done with those rounds: ``"pseudo"`` (refitted with virtual ties),
        ``"drop"`` (left out of the percentiles) or ``"prior"`` (kept: the model's l2
        prior already makes them finite).
    unconverged_rounds
        Rounds where the solver stopped before its tolerance (normally 0).
    tie_param
        For the tie models: ``{"name": "nu" | "theta", "value", "lower", "upper"}``.
    scale, base, init, anchor
        The rating scale of the fitted model.
    samples
        ``(rounds, m)`` bootstrap ratings (NaN rows for dropped rounds), or None.
    warnings
        Anything a reader of the leaderboard should know.
    """

    models: list[str]
    rating: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    median: np.ndarray
    rank: np.ndarray
    battles: np.ndarray
    method: str
    ci: float
    ties: str
    rounds: int = 0
    seed: int | None = None
    degenerate_rounds: int = 0
    degenerate_models: dict[str, int] = field(default_factory=dict)
    degenerate_policy: str | None = None
    unconverged_rounds: int = 0
    tie_param: dict[str, Any] | None = None
    scale: float = 400.0
    base: float = 10.0
    init: float = 1000.0
    anchor: tuple[str, float] | None = None
    samples: np.ndarray | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)

    def order(self) -> np.ndarray:
        """Indices from the best rating to the worst (ties broken by name)."""
        return np.lexsort((np.array(self.models, dtype=object), -self.rating))

    def to_table(self) -> pa.Table:
        """One row per model, best first: ``rank, model, rating, lower, upper, median,
        battles``."""
        o = self.order()
        return pa.table(
            {
                "rank": pa.array(self.rank[o], pa.int64()),
                "model": pa.array([self.models[k] for k in o], pa.string()),
                "rating": pa.array(self.rating[o], pa.float64()),
                "lower": pa.array(self.lower[o], pa.float64()),
                "upper": pa.array(self.upper[o], pa.float64()),
                "median": pa.array(self.median[o], pa.float64()),
                "battles": pa.array(self.battles[o], pa.int64()),
            }
        )

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary (plain floats and lists); ``samples`` adds the
        bootstrap ratings."""
        out: dict[str, Any] = {
            "method": self.method,
            "ci": self.ci,
            "ties": self.ties,
            "rounds": self.rounds,
            "seed": self.seed,
            "scale": self.scale,
            "base": self.base,
            "init": self.init,
            "anchor": list(self.anchor) if self.anchor is not None else None,
            "leaderboard": self.to_table().to_pylist(),
            "degenerate": {
                "rounds": self.degenerate_rounds,
                "models": dict(self.degenerate_models),
                "policy": self.degenerate_policy,
            },
            "unconverged_rounds": self.unconverged_rounds,
            "tie_param": self.tie_param,
            "warnings": list(self.warnings),
        }
        if samples and self.samples is not None:
            out["samples"] = {
                "models": list(self.models),
                "ratings": [
                    [None if np.isnan(v) else float(v) for v in row] for row in self.samples
                ],
            }
        return out
