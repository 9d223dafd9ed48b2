"""Online Elo ratings from battles, processed in their given order.

Elo (1978), *The Rating of Chessplayers, Past and Present*, as used for the first Chatbot
Arena leaderboard (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot
Arena", NeurIPS; ``fschat``'s ``compute_elo``). Every model starts at ``init``; for a
battle of ``a`` against ``b`` with outcome ``s_a`` (1 a wins, 0 b wins, 1/2 tie):

    e_a = 1 / (1 + base^((r_b − r_a) / scale))
    r_a ← r_a + k · (s_a − e_a)
    r_b ← r_b + k · ((1 − s_a) − (1 − e_a))

Online Elo depends on the order of the battles (the same battles shuffled give other
ratings) and with a small ``k`` it is far from converged; it is here for comparison with
the order-free Bradley–Terry fit, not as the recommended leaderboard.

Deviations from ``compute_elo``: none in the update. Its ``e_b`` is computed separately
as ``1/(1 + base^((r_a − r_b)/scale))``, which equals ``1 − e_a`` (the same number up to
rounding). Ties ``"drop"`` is an addition; the sum of ratings is conserved by every
update, so no re-centring is done (the mean rating of the models is ``init``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError

TIES = ("half", "drop")
#: Outcome of ``model_a`` for each ``winner`` label of :func:`prefkit.views.to_battles`.
WINNER_SCORE = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


# --- helpers ----------------------------------------------------------------------------------
def _column(data: Any, name: str) -> Any:
    if isinstance(data, pa.Table):
        return data.column(name).combine_chunks()
    return data[name]


def _as_strings(values: Any, what: str) -> pa.Array:
    arr = values if isinstance(values, pa.Array) else pa.array(np.asarray(values).tolist())
    if arr.null_count:
        raise PrefkitError(f"battles: {what} has {arr.null_count:,} missing values")
    return arr.cast(pa.string())


def decode_outcomes(winner: Any) -> np.ndarray:
    """Score of ``model_a`` per battle: 1 (a wins), 0 (b wins) or 0.5 (tie).

    Parameters
    ----------
    winner
        ``winner`` labels as in :func:`prefkit.views.to_battles` (``model_a``,
        ``model_b``, ``tie``, ``tie (bothbad)``) or numeric judgment outcomes (+1 a
        preferred, −1 b preferred, 0 tie).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float scores.
    """
    arr = winner if isinstance(winner, pa.Array) else pa.array(np.asarray(winner).tolist())
    if arr.null_count:
        raise PrefkitError(f"battles: 'winner' has {arr.null_count:,} missing values")
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        labels = list(WINNER_SCORE)
        where = pc.index_in(arr, pa.array(labels)).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(np.isnan(where.astype(float)))
        if len(bad):
            raise PrefkitError(
                f"battles row {bad[0]}: winner {arr[int(bad[0])].as_py()!r} is not one of "
                f"{', '.join(labels)}"
            )
        return np.asarray([WINNER_SCORE[k] for k in labels])[where.astype(np.int64)]
    values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)
    bad = np.flatnonzero(~np.isin(values, (-1.0, 0.0, 1.0)))
    if len(bad):
        raise PrefkitError(
            f"battles row {bad[0]}: outcome {values[bad[0]]!r} is not +1, -1 or 0 "
            "(a preferred, b preferred, tie)"
        )
    return (values + 1.0) / 2.0


def battle_arrays(battles: Any) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """``(model_a, model_b, score_a)`` from the inputs :meth:`Elo.fit` accepts."""
    if isinstance(battles, Dataset):
        battles = battles.to_battles(ties="keep")
    if isinstance(battles, tuple) and len(battles) == 3:
        model_a, model_b, winner = battles
    else:
        try:
            model_a, model_b = _column(battles, "model_a"), _column(battles, "model_b")
            winner = _column(battles, "winner")
        except (KeyError, TypeError) as err:
            raise PrefkitError(
                "battles need columns 'model_a', 'model_b' and 'winner' (or a tuple of three "
                f"arrays): {err}"
            ) from None
    a, b = _as_strings(model_a, "model_a"), _as_strings(model_b, "model_b")
    score = decode_outcomes(winner)
    if not len(a) == len(b) == len(score):
        raise PrefkitError("battles: model_a, model_b and winner differ in length")
    return a, b, score


# --- estimator --------------------------------------------------------------------------------
class Elo:
    """Online Elo ratings (the original Chatbot Arena leaderboard).

    Parameters
    ----------
    k
        K factor: the largest change of one battle (4, as in Chatbot Arena's online Elo).
    scale, base, init
        ``e_a = 1 / (1 + base^((r_b − r_a)/scale))``; every model starts at ``init``.
    ties
        ``"half"`` (a tie scores 1/2 for both sides) or ``"drop"``.
    record_history
        Keep the two ratings after every battle in :attr:`history_`.

    Attributes
    ----------
    items_ : list[str]
        Model names, sorted, aligned with :attr:`ratings_`.
    ratings_ : numpy.ndarray
        ``(n_models,)`` ratings after the last battle.
    n_battles_ : int
        Battles processed (ties included unless dropped).
    history_ : numpy.ndarray
        ``(n_battles, 2)`` ratings of ``model_a`` and ``model_b`` right after each battle
        (only with ``record_history=True``).
    """

    def __init__(
        self,
        *,
        k: float = 4.0,
        scale: float = 400.0,
        base: float = 10.0,
        init: float = 1000.0,
        ties: str = "half",
        record_history: bool = False,
    ) -> None:
        self.k = k
        self.scale = scale
        self.base = base
        self.init = init
        self.ties = ties
        self.record_history = record_history

    def fit(self, battles: Any) -> Elo:
        """Run the updates over ``battles`` in their order.

        Parameters
        ----------
        battles
            A :class:`~prefkit.dataset.Dataset` (its ``to_battles(ties="keep")`` view, in
            judgment-id order), a table or mapping with ``model_a``, ``model_b`` and
            ``winner`` columns (pyarrow, pandas, dict of arrays), or a tuple
            ``(model_a, model_b, winner)``; ``winner`` holds battle labels or numeric
            outcomes (see :func:`decode_outcomes`).

        Returns
        -------
        Elo
            ``self``, fitted.
        """
        if self.ties not in TIES:
            raise PrefkitError(f"ties={self.ties!r}: expected one of {', '.join(TIES)}")
        if self.base <= 1 or self.scale <= 0 or self.k < 0:
            raise PrefkitError("Elo needs base > 1, scale > 0 and k >= 0")
        a, b, score = battle_arrays(battles)
        if self.ties == "drop":
            keep = pa.array(score != 0.5)
            a, b, score = a.filter(keep), b.filter(keep), score[score != 0.5]
        names = pc.unique(pa.concat_arrays([a, b]))
        names = names.take(pc.array_sort_indices(names))
        ia = pc.index_in(a, names).to_numpy().tolist()
        ib = pc.index_in(b, names).to_numpy().tolist()
        ratings, history = self._run(ia, ib, score.tolist(), len(names))
        self.items_ = names.to_pylist()
        self.ratings_ = np.asarray(ratings)
        self.n_battles_ = len(ia)
        if history is not None:
            self.history_ = np.asarray(history).reshape(-1, 2)
        return self

    def _run(
        self, ia: list[int], ib: list[int], sa: list[float], n: int
    ) -> tuple[list[float], list[float] | None]:
        # Elo is sequential by definition: a plain loop over Python floats (~1 µs/battle).
        k, scale, base = float(self.k), float(self.scale), float(self.base)
        r = [float(self.init)] * n
        history: list[float] | None = [] if self.record_history else None
        for a, b, s in zip(ia, ib, sa, strict=True):
            ra, rb = r[a], r[b]
            ea = 1.0 / (1.0 + base ** ((rb - ra) / scale))
            # increments, not assignments: a model battling itself then stays put, as in
            # compute_elo
            r[a] += k * (s - ea)
            r[b] += k * ((1.0 - s) - (1.0 - ea))
            if history is not None:
                history += (r[a], r[b])
        return r, history

    def as_dict(self) -> dict[str, float]:
        """``{model: rating}``, best first."""
        order = np.argsort(-self.ratings_, kind="stable")
        return {self.items_[i]: float(self.ratings_[i]) for i in order}


__all__ = ["TIES", "WINNER_SCORE", "Elo", "battle_arrays", "decode_outcomes"]
