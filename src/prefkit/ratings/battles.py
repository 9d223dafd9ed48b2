"""`BattleCounts`: arena battles aggregated to their sufficient statistics.

Every rating model in :mod:`prefkit.ratings` that treats battles as exchangeable
(Bradley–Terry with or without a tie model, its bootstrap and its analytic intervals)
depends on the battles only through how many times each (model_a, model_b, outcome)
occurred. `BattleCounts` builds those counts once, in vectorised Arrow/numpy code, and
never expands them back into rows: one million battles over 100 models become at most
100 · 99 · 3 rows.

Model names are mapped once to ``0..m-1`` (sorted names). The counts keep the side each
model played on (``a`` / ``b``), but the likelihoods only need the unordered view
(:meth:`BattleCounts.pairs`): per observed pair ``i < j`` the numbers of wins of ``i``,
wins of ``j`` and ties. A battle of a model against itself says nothing about ratings;
such battles are left out and counted in ``n_self_battles``.

The comparison graph (models as nodes, an edge for every pair that met) must be
connected for ratings to be comparable; :meth:`BattleCounts.components` lists its
connected components (``scipy.sparse.csgraph.connected_components``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from prefkit.errors import PrefkitError

#: Winner labels of the battle view (:func:`prefkit.views.to_battles`), in code order.
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
#: Outcome codes of the aggregated rows (column ``outcome``).
A_WINS, B_WINS, TIE = 1, -1, 0
#: Above this many (model_a, model_b, outcome) cells, counting sorts keys instead of
#: using one dense bincount.
_DENSE_CELLS = 4_000_000


def _strings(values: Any, name: str) -> pa.ChunkedArray:
    arr = values if isinstance(values, pa.ChunkedArray | pa.Array) else pa.array(values)
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise PrefkitError(
                f"battles: column {name!r} must hold strings, not {arr.type}"
            ) from exc
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise PrefkitError(f"battles: row {row}, field {name!r}: missing value")
    return arr


@dataclass(frozen=True, eq=False)
class BattleCounts:
    """Battles aggregated to unique ``(a, b, outcome)`` rows with counts.

    Build it with :meth:`from_arrays`, :meth:`from_battles` or :meth:`from_dataset`.

    Attributes
    ----------
    models
        Model names; index ``k`` of every array below refers to ``models[k]``.
    a, b
        ``(n_rows,)`` int32 model indices of the first and second position.
    outcome
        ``(n_rows,)`` int8: ``1`` a won, ``-1`` b won, ``0`` tie.
    count
        ``(n_rows,)`` int64 number of battles with this (a, b, outcome).
    bothbad
        ``(n_rows,)`` bool: the rows of ``tie (bothbad)`` ties (ties everywhere else).
    n_self_battles
        Battles of a model against itself, left out of the counts.
    """

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    count: np.ndarray
    bothbad: np.ndarray
    n_self_battles: int = 0
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, model_a: Any, model_b: Any, winner: Any) -> BattleCounts:
        """Aggregate battles given as three equally long columns.

        Parameters
        ----------
        model_a, model_b
            Model names (Arrow arrays, numpy arrays or sequences of str).
        winner
            ``"model_a"``, ``"model_b"``, ``"tie"`` or ``"tie (bothbad)"`` per battle.
        """
        a = _strings(model_a, "model_a")
        b = _strings(model_b, "model_b")
        w = _strings(winner, "winner")
        if not len(a) == len(b) == len(w):
            raise PrefkitError(
                f"battles: model_a, model_b and winner have {len(a)}, {len(b)} and {len(w)} rows"
            )
        codes = pc.index_in(w, value_set=pa.array(WINNERS))
        if codes.null_count:
            row = int(np.flatnonzero(codes.is_null().to_numpy(zero_copy_only=False))[0])
            raise PrefkitError(
                f"battles: row {row}, field 'winner': {w[row].as_py()!r} is not one of "
                f"{', '.join(WINNERS)}"
            )
        names = pc.unique(pa.chunked_array(a.chunks + b.chunks, type=a.type))
        names = names.take(pc.array_sort_indices(names))
        ai = pc.index_in(a, value_set=names).to_numpy().astype(np.int64)
        bi = pc.index_in(b, value_set=names).to_numpy().astype(np.int64)
        oc = codes.to_numpy().astype(np.int64)  # 0 a, 1 b, 2 tie, 3 bothbad
        self_play = ai == bi
        n_self = int(np.count_nonzero(self_play))
        if n_self:
            keep = ~self_play
            ai, bi, oc = ai[keep], bi[keep], oc[keep]
        m = len(names)
        key = (ai * m + bi) * 4 + oc
        if m * m * 4 <= _DENSE_CELLS:
            counts = np.bincount(key, minlength=m * m * 4)
            cells = np.flatnonzero(counts)
            counts = counts[cells]
        else:
            cells, counts = np.unique(key, return_counts=True)
        code_to_outcome = np.array([A_WINS, B_WINS, TIE, TIE], dtype=np.int8)
        return cls(
            models=tuple(names.to_pylist()),
            a=(cells // 4 // m).astype(np.int32),
            b=(cells // 4 % m).astype(np.int32),
            outcome=code_to_outcome[cells % 4],
            count=counts.astype(np.int64),
            bothbad=cells % 4 == 3,
            n_self_battles=n_self,
        )

    @classmethod
    def from_battles(cls, battles: pa.Table) -> BattleCounts:
        """Aggregate the battle view (columns ``model_a``, ``model_b``, ``winner``)."""
        missing = [c for c in ("model_a", "model_b", "winner") if c not in battles.column_names]
        if missing:
            raise PrefkitError(f"battles: missing column(s) {', '.join(missing)}")
        return cls.from_arrays(battles["model_a"], battles["model_b"], battles["winner"])

    @classmethod
    def from_dataset(cls, ds: Any, *, annotators: str = "each") -> BattleCounts:
        """Aggregate a dataset's battles (``ds.to_battles(ties="keep")``)."""
        return cls.from_battles(ds.to_battles(ties="keep", annotators=annotators))

    @classmethod
    def coerce(cls, data: Any) -> BattleCounts:
        """`BattleCounts` from counts, a battle table or anything with ``to_battles``."""
        if isinstance(data, BattleCounts):
            return data
        if isinstance(data, pa.Table):
            return cls.from_battles(data)
        if hasattr(data, "to_battles"):
            return cls.from_dataset(data)
        raise PrefkitError(
            f"cannot read battles from {type(data).__name__}: pass BattleCounts, a battle "
            "table (model_a, model_b, winner) or a Dataset"
        )

    # --- sizes and lookups ----------------------------------------------------------------
    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_battles(self) -> int:
        """Battles counted (self-battles excluded)."""
        return int(self.count.sum())

    @property
    def n_ties(self) -> int:
        """Ties of both kinds."""
        return int(self.count[self.outcome == TIE].sum())

    @property
    def n_bothbad(self) -> int:
        """Ties labelled ``tie (bothbad)``."""
        return int(self.count[self.bothbad].sum())

    def index(self, model: str | int) -> int:
        """Index of a model given by name (or already an index)."""
        if isinstance(model, int | np.integer):
            if not 0 <= int(model) < self.n_models:
                raise PrefkitError(f"model index {model} is out of range 0..{self.n_models - 1}")
            return int(model)
        lookup = self._cache.get("lookup")
        if lookup is None:
            lookup = {name: k for k, name in enumerate(self.models)}
            self._cache["lookup"] = lookup
        if model not in lookup:
            raise PrefkitError(f"unknown model {model!r}; the battles have {_preview(self.models)}")
        return int(lookup[model])

    # --- the unordered view ---------------------------------------------------------------
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observed unordered pairs and their outcome counts.

        Returns
        -------
        i, j
            ``(K,)`` int64 model indices with ``i < j``, one entry per pair that met.
        cells
            ``(K, 3)`` int64: wins of ``i``, wins of ``j``, ties.
        """
        cached = self._cache.get("pairs")
        if cached is not None:
            return cached
        m = self.n_models
        lo = np.minimum(self.a, self.b).astype(np.int64)
        hi = np.maximum(self.a, self.b).astype(np.int64)
        # Which of the pair won, in the (lo, hi) orientation: 0 lo, 1 hi, 2 tie.
        a_is_lo = self.a == lo
        col = np.where(self.outcome == TIE, 2, np.where((self.outcome == A_WINS) == a_is_lo, 0, 1))
        pair_key = lo * m + hi
        keys, inverse = np.unique(pair_key, return_inverse=True)
        cells = np.zeros((len(keys), 3), dtype=np.int64)
        np.add.at(cells, (inverse, col), self.count)
        out = (keys // m, keys % m, cells)
        self._cache["pairs"] = out
        return out

    # --- matrices -------------------------------------------------------------------------
    def wins(self) -> np.ndarray:
        """``(m, m)`` matrix: ``wins[i, j]`` battles model i won against model j."""
        i, j, cells = self.pairs()
        w = np.zeros((self.n_models, self.n_models), dtype=np.int64)
        w[i, j] = cells[:, 0]
        w[j, i] = cells[:, 1]
        return w

    def ties(self) -> np.ndarray:
        """``(m, m)`` symmetric matrix of ties between models i and j."""
        i, j, cells = self.pairs()
        t = np.zeros((self.n_models, self.n_models), dtype=np.int64)
        t[i, j] = cells[:, 2]
        t[j, i] = cells[:, 2]
        return t

    def battle_matrix(self) -> np.ndarray:
        """``(m, m)`` symmetric matrix of battles between models i and j."""
        w = self.wins()
        return w + w.T + self.ties()

    def battles_per_model(self) -> np.ndarray:
        """``(m,)`` battles each model took part in."""
        return self.battle_matrix().sum(axis=1)

    def win_rate(self, ties: str = "half") -> np.ndarray:
        """Observed win rate of i against j (NaN where they never met).

        Parameters
        ----------
        ties
            ``"half"`` counts a tie as half a win; ``"drop"`` leaves ties out.
        """
        if ties not in ("half", "drop"):
            raise PrefkitError(f"ties={ties!r}: choose 'half' or 'drop'")
        w = self.wins().astype(np.float64)
        t = self.ties().astype(np.float64)
        num = w + 0.5 * t if ties == "half" else w
        den = w + w.T + (t if ties == "half" else 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    # --- graph ----------------------------------------------------------------------------
    def graph(self) -> sp.csr_matrix:
        """The comparison graph as a symmetric ``(m, m)`` sparse matrix of battle counts."""
        i, j, cells = self.pairs()
        n = cells.sum(axis=1).astype(np.float64)
        m = self.n_models
        return sp.csr_matrix((np.r_[n, n], (np.r_[i, j], np.r_[j, i])), shape=(m, m))

    def components(self) -> list[list[str]]:
        """Connected components of the comparison graph, largest first (names sorted)."""
        cached = self._cache.get("components")
        if cached is None:
            _, labels = connected_components(self.graph(), directed=False)
            groups: dict[int, list[str]] = {}
            for k, lab in enumerate(labels.tolist()):
                groups.setdefault(lab, []).append(self.models[k])
            cached = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
            self._cache["components"] = cached
        return [list(c) for c in cached]

    @property
    def is_connected(self) -> bool:
        return len(self.components()) <= 1

    # --- subsets --------------------------------------------------------------------------
    def select(self, models: Iterable[str]) -> BattleCounts:
        """Only the battles between the given models (indices are renumbered)."""
        keep_names = sorted(set(models))
        idx = np.array([self.index(name) for name in keep_names], dtype=np.int64)
        remap = np.full(self.n_models, -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        ra, rb = remap[self.a], remap[self.b]
        rows = (ra >= 0) & (rb >= 0)
        return BattleCounts(
            models=tuple(keep_names),
            a=ra[rows].astype(np.int32),
            b=rb[rows].astype(np.int32),
            outcome=self.outcome[rows],
            count=self.count[rows],
            bothbad=self.bothbad[rows],
            n_self_battles=self.n_self_battles,
        )

    def min_battles(self, n: int) -> BattleCounts:
        """Only models with at least ``n`` battles (one pass; see :meth:`select`)."""
        per = self.battles_per_model()
        return self.select(name for name, k in zip(self.models, per, strict=True) if k >= n)

    def to_table(self) -> pa.Table:
        """The aggregated rows: ``model_a, model_b, winner, count``."""
        names = np.array(self.models, dtype=object)
        label = np.array(["model_b", "tie", "model_a"], dtype=object)[self.outcome + 1]
        label[self.bothbad] = "tie (bothbad)"
        return pa.table(
            {
                "model_a": pa.array(names[self.a], pa.string()),
                "model_b": pa.array(names[self.b], pa.string()),
                "winner": pa.array(label, pa.string()),
                "count": pa.array(self.count, pa.int64()),
            }
        )


def _preview(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} models ({shown}{more})"


def describe_components(components: Sequence[Sequence[str]], limit: int = 10) -> str:
    """One line per component, e.g. ``[1] 3 models: a, b, c``."""
    lines = []
    for k, comp in enumerate(components, 1):
        shown = ", ".join(comp[:limit])
        more = f", … {len(comp) - limit} more" if len(comp) > limit else ""
        lines.append(f"  [{k}] {len(comp)} model{'s' if len(comp) != 1 else ''}: {shown}{more}")
    return "\n".join(lines)
