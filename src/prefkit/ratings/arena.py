"""`leaderboard`: the whole arena computation behind ``prefkit arena``.

Battles are aggregated to unique (model a, model b, outcome) counts, models with too few
battles are set aside (and named), a Bradley–Terry model with the chosen tie convention
is fitted (Bradley & Terry 1952; Davidson 1970; Rao & Kupper 1967), intervals come from
the multinomial bootstrap or the analytic (Fisher / sandwich) method, and, when asked,
style covariates are controlled for as in the LMSYS "Does style matter?" analysis
(2024). The result is one typed record the CLI and the HTML report render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.errors import PrefkitError
from prefkit.ratings.analytic import analytic_intervals
from prefkit.ratings.battles import BattleCounts
from prefkit.ratings.bootstrap import bootstrap
from prefkit.ratings.bradley_terry import BradleyTerry
from prefkit.ratings.likelihood import TIES
from prefkit.ratings.result import ArenaResult

INTERVALS = ("bootstrap", "fisher", "sandwich")
FEW_BATTLES = 50  # below this a model's interval is wide; the report says so


@dataclass
class StyleSummary:
    """Style-controlled ratings and the covariates' effects."""

    features: list[str]
    coef: list[float]
    coef_lower: list[float]
    coef_upper: list[float]
    pvalue: list[float]
    constant: list[str]
    models: list[str]
    controlled: list[float]
    uncontrolled: list[float]
    dropped_battles: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "coefficients": [
                {"feature": f, "coef": c, "lower": lo, "upper": hi, "pvalue": p}
                for f, c, lo, hi, p in zip(
                    self.features,
                    self.coef,
                    self.coef_lower,
                    self.coef_upper,
                    self.pvalue,
                    strict=True,
                )
            ],
            "constant_features": self.constant,
            "ratings": [
                {"model": m, "controlled": c, "uncontrolled": u}
                for m, c, u in zip(self.models, self.controlled, self.uncontrolled, strict=True)
            ],
            "dropped_battles": self.dropped_battles,
        }


@dataclass
class ArenaReport:
    """Everything ``prefkit arena`` shows: leaderboard, matrices, style control, warnings."""

    result: ArenaResult
    models: list[str]
    battle_matrix: np.ndarray  # (m, m) battles between i and j, ties included
    observed: np.ndarray  # (m, m) observed win rate of i over j (ties as half), NaN where none
    predicted: np.ndarray  # (m, m) fitted P(i beats j), ties as half
    n_battles: int
    n_ties: int
    excluded: dict[str, int] = field(default_factory=dict)
    style: StyleSummary | None = None
    warnings: list[str] = field(default_factory=list)  # result.warnings included

    def to_dict(self) -> dict[str, Any]:
        def matrix(a: np.ndarray) -> list[list[float | None]]:
            return [[None if not np.isfinite(v) else round(float(v), 6) for v in r] for r in a]

        return {
            **self.result.to_dict(),
            "models": self.models,
            "n_battles": self.n_battles,
            "n_ties": self.n_ties,
            "excluded_models": self.excluded,
            "battle_matrix": self.battle_matrix.astype(int).tolist(),
            "observed_win_rate": matrix(self.observed),
            "predicted_win_rate": matrix(self.predicted),
            "style_control": self.style.to_dict() if self.style else None,
            "warnings": self.warnings,
        }


def leaderboard(
    data: Any,
    *,
    ties: str = "half",
    intervals: str = "bootstrap",
    rounds: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    anchor: tuple[str, float] | None = None,
    min_battles: int = 0,
    style: tuple[str, ...] = (),
    l2: float = 0.0,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
) -> ArenaReport:
    """Fit an arena leaderboard.

    Parameters
    ----------
    data
        A :class:`~prefkit.dataset.Dataset` with battles (responses with ``source``), a
        battle table, or :class:`BattleCounts`. Style control needs a Dataset (texts).
    ties
        ``half`` (Chatbot Arena), ``davidson``, ``rao-kupper`` or ``drop``.
    intervals
        ``bootstrap`` (``rounds`` multinomial resamples) or ``fisher`` / ``sandwich``.
    min_battles
        Models with fewer battles are left out (and listed in ``excluded``).
    style
        Style covariates to control for (``length``, ``markdown``, ``citations`` or
        numeric meta columns).
    """
    if ties not in TIES:
        raise PrefkitError(f"ties={ties!r}: choose one of {', '.join(TIES)}")
    if intervals not in INTERVALS:
        raise PrefkitError(f"intervals={intervals!r}: choose one of {', '.join(INTERVALS)}")
    counts = BattleCounts.coerce(data)
    if counts.n_battles == 0:
        raise PrefkitError(
            "no battles: the dataset has no judgments between responses with a source"
        )
    per_model = dict(zip(counts.models, counts.battles_per_model().tolist(), strict=True))
    excluded = {m: int(n) for m, n in per_model.items() if n < min_battles}
    if excluded:
        counts = counts.min_battles(min_battles)
    if counts.n_models < 2:
        raise PrefkitError(f"fewer than two models left after --min-battles {min_battles}")
    model = BradleyTerry(ties=ties, l2=l2, scale=scale, base=base, init=init, anchor=anchor).fit(
        counts
    )
    if intervals == "bootstrap":
        result = bootstrap(counts, model, rounds=rounds, seed=seed, ci=ci)
    else:
        result = analytic_intervals(counts, model, ci=ci, method=intervals)
    warnings = list(result.warnings)  # the fit's own warnings and the interval method's
    few = [
        m for m, n in zip(result.models, result.battles.tolist(), strict=True) if n < FEW_BATTLES
    ]
    if few:
        warnings.append(
            f"{len(few)} model(s) have fewer than {FEW_BATTLES} battles: {', '.join(few)}"
        )
    if excluded:
        warnings.append(
            f"left out (fewer than {min_battles} battles): {', '.join(sorted(excluded))}"
        )
    report = ArenaReport(
        result=result,
        models=list(counts.models),
        battle_matrix=counts.battle_matrix(),
        observed=counts.win_rate("half"),
        predicted=model.win_matrix(score=True),
        n_battles=counts.n_battles,
        n_ties=counts.n_ties,
        excluded=excluded,
        warnings=warnings,
    )
    if style:
        report.style = _style(data, style, ties, set(counts.models), (scale, base, init))
    return report


def _style(
    data: Any,
    features: tuple[str, ...],
    ties: str,
    keep: set[str],
    scale: tuple[float, float, float],
) -> StyleSummary:
    from prefkit.ratings.style import StyleControl, _covariates, _dataset_counts

    if not hasattr(data, "to_battles"):
        raise PrefkitError("style control needs the dataset (response texts), not battle counts")
    # Covariates per battle as StyleControl.fit(dataset) computes them (text counts and
    # numeric responses columns alike), then only the battles between the kept models.
    covs = _covariates(features)
    model_a, model_b, score, xa, xb = _dataset_counts(data, covs, "words")
    kept = pa.array(sorted(keep), pa.string())
    mask = pc.and_(pc.is_in(model_a, value_set=kept), pc.is_in(model_b, value_set=kept))
    rows = mask.to_numpy(zero_copy_only=False)
    table: dict[str, Any] = {
        "model_a": model_a.filter(mask),
        "model_b": model_b.filter(mask),
        "winner": 2.0 * score[rows] - 1.0,  # numeric outcomes: +1 a, -1 b, 0 tie
    }
    for j, c in enumerate(covs):
        table[f"{c}_a"], table[f"{c}_b"] = xa[rows, j], xb[rows, j]
    sc = StyleControl(
        features=covs,
        ties="drop" if ties == "drop" else "half",
        missing="drop",
        scale=scale[0],
        base=scale[1],
        init=scale[2],
    ).fit(table)
    return StyleSummary(
        features=list(sc.feature_names_),
        coef=[float(c) for c in sc.coef_],
        coef_lower=[float(c) for c in sc.coef_ci_[:, 0]],
        coef_upper=[float(c) for c in sc.coef_ci_[:, 1]],
        pvalue=[float(p) for p in sc.coef_pvalue_],
        constant=list(sc.constant_features_),
        models=list(sc.items_),
        controlled=[float(r) for r in sc.ratings_],
        uncontrolled=[float(r) for r in sc.ratings_uncontrolled_],
        dropped_battles=int(sc.n_dropped_),
    )
