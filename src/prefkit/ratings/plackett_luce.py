"""Plackett–Luce ratings from rankings with ties, fitted by Hunter's MM algorithm.

Model (Luce 1959, *Individual Choice Behavior*; Plackett 1975, "The analysis of
permutations", JRSS C 24(2)). Item *i* has a worth ``w_i = exp(θ_i)``. A ranking is read
as a sequence of choices: the best tier is chosen from all the ranked items, the next tier
from the items left, and so on; a strict ranking ``i_1 ≻ … ≻ i_n`` has probability

    P = ∏_s  w_{i_s} / Σ_{t ≥ s} w_{i_t}.

Ties. A tier of ``d`` tied items chosen from a remaining set ``R`` is handled as in Cox
regression with tied event times:

* ``ties="efron"`` (default; Efron 1977, "The efficiency of Cox's likelihood function for
  censored data", JASA 72(359)): ``∏_{i∈T} w_i / ∏_{k=0}^{d−1} (S_R − (k/d)·S_T)``;
* ``ties="breslow"`` (Breslow 1974, "Covariance analysis of censored survival data",
  Biometrics 30(1)): ``∏_{i∈T} w_i / S_R^d``.

Both are approximations to the probability of the tied items being chosen in *some* order
(the sum over the ``d!`` orders), not the Davidson–Luce model (Firth, Kosmidis & Turner
2019), which adds a tie-prevalence parameter. With two items a tie contributes
``log p_a + log p_b`` (+ log 2 for Efron): it counts as **one win for each side**, twice the
weight of the Chatbot Arena "half a win each" convention. A final tier of one item carries
no information and is skipped; a final tier of several tied items is kept (its term pulls
their worths together).

Algorithm: Hunter (2004), "MM algorithms for generalized Bradley–Terry models", Annals of
Statistics 32(1), 384–406, §5. Every term of the log-likelihood is
``Σ a_i θ_i − Σ_j m_j log L_j(w)`` with ``L_j`` linear in ``w`` (coefficient 1, or
``1 − k/d`` for the tied items in Efron's j-th sub-term), so the minorisation
``−log L ≥ −log L⁰ − (L − L⁰)/L⁰`` gives Hunter's update ``w_i ← a_i / c_i`` with
``c_i = Σ_j m_j coef_ij / L_j`` for Breslow and Efron alike.

Deviations from the paper: (1) ties as above (Hunter treats strict rankings); (2) an
optional Gaussian prior ``(l2/2)·Σ θ_i²`` on the log-worths. With the prior the surrogate
``a_i θ_i − c_i e^{θ_i} − (l2/2) θ_i²`` is still separable and concave and is maximised
exactly by a vectorised 1-D Newton solve, followed by centring (the exact maximiser along
the common shift, which the likelihood ignores), so every iteration still increases the
penalised likelihood. Without the prior the maximum-likelihood estimate exists only when
Hunter's Assumption 1 holds (the "ranked above" digraph, tied items linked both ways, is
strongly connected); this is checked and a clear error suggests ``l2 > 0`` otherwise.
(3) Items that are never compared, even indirectly, form separate components (e.g. the
responses of different prompts); each component is fitted and centred on its own and
reported in ``components_``; ratings are comparable only within a component.

Ratings are on the Elo scale: ``rating = init + scale · log_base(w)``, with the
log-worths centred to mean zero (per component).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError

TIES = ("efron", "breslow")
ITEMS = ("auto", "source", "response")
_NEWTON_STEPS = 50  # 1-D Newton steps per MM iteration when l2 > 0 (converges in ~5)


# --- helpers ----------------------------------------------------------------------------------
@dataclass
class _Flat:
    """Rankings flattened to one entry per ranked item, sorted by ranking then tier."""

    item: np.ndarray  # (E,) item index
    ranking: np.ndarray  # (E,) ranking index
    tier: np.ndarray  # (E,) tier position within its ranking, 0 = best
    items: list[Any]  # item labels, index -> label
    kind: str  # what the labels are: "source", "response" or "label"


@dataclass
class _Terms:
    """The log-likelihood ``Σ_i a_i θ_i − Σ_j m_j log Σ_e coef_e w_{item_e}``."""

    wins: np.ndarray  # (n,) a_i: how often item i is in a chosen tier
    mult: np.ndarray  # (J,) m_j
    entry_term: np.ndarray  # (N,) term j of each entry
    entry_item: np.ndarray  # (N,) item of each entry
    coef: np.ndarray  # (N,) coefficient of the item's worth in L_j


def _encode(labels: pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Integer codes of ``labels`` with the labels sorted (deterministic item order)."""
    enc = pc.dictionary_encode(labels)
    values = enc.dictionary
    order = pc.array_sort_indices(values).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[enc.indices.to_numpy(zero_copy_only=False)]
    return codes, values.take(pa.array(order)).to_pylist()


def _flatten_tiers(tiers: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Ids, ranking index and tier position of every entry of a ``list<list<id>>`` column."""
    if tiers.null_count or pc.list_flatten(tiers).null_count:
        raise PrefkitError("rankings: 'tiers' has null rankings or null tiers")
    tier_lists = pc.list_flatten(tiers)
    ranking_of_tier = pc.list_parent_indices(tiers).to_numpy()
    first_tier = np.concatenate([[0], np.cumsum(pc.list_value_length(tiers).to_numpy())])
    tier_of_entry = pc.list_parent_indices(tier_lists).to_numpy()
    ids = pc.list_flatten(tier_lists)
    if ids.null_count:
        raise PrefkitError("rankings: 'tiers' holds null response ids")
    ranking = ranking_of_tier[tier_of_entry]
    return ids, ranking, tier_of_entry - first_tier[ranking]


def _from_dataset(ds: Dataset, items: str) -> _Flat:
    if not ds.num_rows("rankings"):
        raise PrefkitError("PlackettLuce needs rankings: the dataset's rankings table is empty")
    ids, ranking, tier = _flatten_tiers(ds.rankings.column("tiers").combine_chunks())
    if items == "response":
        codes, labels = _encode(ids)
        return _Flat(codes, ranking, tier, labels, "response")
    responses = ds.responses
    where = pc.index_in(ids, responses.column("response_id"))
    if where.null_count:
        missing = ids.filter(pc.is_null(where))[0].as_py()
        raise PrefkitError(f"rankings: response id {missing!r} is not in the responses table")
    source = responses.column("source").take(where).combine_chunks()
    if source.null_count:
        if items == "auto":
            codes, labels = _encode(ids)
            return _Flat(codes, ranking, tier, labels, "response")
        raise PrefkitError(
            f"items='source': {source.null_count:,} ranked responses have no source (model); "
            "pass items='response' to rank the responses themselves"
        )
    codes, labels = _encode(source)
    return _Flat(codes, ranking, tier, labels, "source")


def _from_lists(rankings: Iterable[Sequence[Any]]) -> _Flat:
    """Rankings given as lists of tiers; a tier is a list of items or a single item."""
    labels: list[Hashable] = []
    ranking: list[int] = []
    tier: list[int] = []
    for r, rk in enumerate(rankings):
        for t, members in enumerate(rk):
            group = (
                list(members) if isinstance(members, list | tuple | set | np.ndarray) else [members]
            )
            if not group:
                raise PrefkitError(f"ranking {r}: tier {t} is empty")
            labels.extend(group)
            ranking.extend([r] * len(group))
            tier.extend([t] * len(group))
    if not labels:
        raise PrefkitError("PlackettLuce needs at least one ranking")
    try:
        uniq = sorted(set(labels))  # type: ignore[type-var]
    except TypeError:
        uniq = list(dict.fromkeys(labels))
    index = {v: i for i, v in enumerate(uniq)}
    codes = np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))
    return _Flat(codes, np.asarray(ranking, np.int64), np.asarray(tier, np.int64), uniq, "label")


def _flatten(data: Any, items: str) -> _Flat:
    if isinstance(data, Dataset):
        return _from_dataset(data, items)
    if isinstance(data, pa.Table):
        if "tiers" not in data.column_names:
            raise PrefkitError("a rankings table needs a 'tiers' column (list of lists of ids)")
        ids, ranking, tier = _flatten_tiers(data.column("tiers").combine_chunks())
        codes, labels = _encode(ids)
        return _Flat(codes, ranking, tier, labels, "response")
    return _from_lists(data)


def _terms(flat: _Flat, ties: str) -> _Terms:
    """Build the choice terms (module docstring) with whole-array operations."""
    e = len(flat.item)
    # One group per (ranking, tier); entries are sorted so every group is a contiguous run.
    key_change = np.flatnonzero((np.diff(flat.ranking) != 0) | (np.diff(flat.tier) != 0))  # (G-1,)
    g_start = np.concatenate([[0], key_change + 1])  # (G,)
    g_size = np.diff(np.concatenate([g_start, [e]]))
    g_rank = flat.ranking[g_start]
    r_end = np.concatenate([np.flatnonzero(np.diff(flat.ranking) != 0) + 1, [e]])  # (R,)
    ranking_ids = np.unique(flat.ranking)  # sorted; ranking index -> position in r_end
    g_end = r_end[np.searchsorted(ranking_ids, g_rank)]
    # A final tier of one item is a certain choice: skip it.
    keep = ~((g_start + g_size == g_end) & (g_size == 1))
    s_start, s_size, s_end = g_start[keep], g_size[keep], g_end[keep]
    n_items = len(flat.items)
    in_tier = np.repeat(s_start, s_size) + (
        np.arange(s_size.sum()) - np.repeat(np.cumsum(s_size) - s_size, s_size)
    )
    wins = np.bincount(flat.item[in_tier], minlength=n_items).astype(float)
    if ties == "efron":
        # d_s sub-terms per stage, sub-term k weighting the tied items by 1 - k/d.
        t_stage = np.repeat(np.arange(len(s_start)), s_size)
        t_k = np.arange(len(t_stage)) - np.repeat(np.cumsum(s_size) - s_size, s_size)
        mult = np.ones(len(t_stage))
    else:
        t_stage = np.arange(len(s_start))
        t_k = np.zeros(len(s_start), dtype=np.int64)
        mult = s_size.astype(float)
    length = (s_end - s_start)[t_stage]  # (J,) size of each term's risk set
    entry_term = np.repeat(np.arange(len(t_stage)), length)
    offset = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    entry = s_start[t_stage][entry_term] + offset
    tied = offset < s_size[t_stage][entry_term]
    frac = t_k[entry_term] / s_size[t_stage][entry_term]
    coef = np.where(tied, 1.0 - frac, 1.0)
    return _Terms(wins, mult, entry_term, flat.item[entry], coef)


def _components(flat: _Flat) -> tuple[np.ndarray, np.ndarray]:
    """Weak and strong component labels of the items in the "ranked above" digraph.

    One helper node per (ranking, tier) group: ``node(g) → i`` for i in g, ``i → node(g)``
    (tied items reach each other) and ``i → node(next tier)`` (i is ranked above it).
    Hunter's Assumption 1 holds within a weak component when it is one strong component.
    """
    n = len(flat.items)
    new_group = np.concatenate(
        [[True], (np.diff(flat.ranking) != 0) | (np.diff(flat.tier) != 0)]
    )  # (E,)
    group = np.cumsum(new_group) - 1
    node = n + group
    # An entry that ends its group, followed by an entry of the same ranking, links the
    # group to the next one.
    last_of_group = np.concatenate([new_group[1:], [True]])
    same_next = np.concatenate([flat.ranking[1:] == flat.ranking[:-1], [False]])
    boundary = np.flatnonzero(last_of_group & same_next)
    nxt_node = np.full(group.max() + 1, -1)
    nxt_node[group[boundary]] = n + group[boundary] + 1
    nxt = nxt_node[group]
    has = nxt >= 0
    src = np.concatenate([node, flat.item, flat.item[has]])
    dst = np.concatenate([flat.item, node, nxt[has]])
    size = n + group.max() + 1
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(size, size)).tocsr()
    _, weak = connected_components(graph, directed=True, connection="weak")
    _, strong = connected_components(graph, directed=True, connection="strong")
    return np.unique(weak[:n], return_inverse=True)[1], strong[:n]


def _centre(theta: np.ndarray, comp: np.ndarray, n_comp: int) -> np.ndarray:
    """Subtract each component's mean: the likelihood ignores a shift of a component and
    the prior is smallest at mean zero, so this is the exact maximiser along those
    directions (the slowest ones for MM)."""
    if n_comp == 1:
        return theta - theta.mean()
    mean = np.bincount(comp, theta, n_comp) / np.bincount(comp, minlength=n_comp)
    return theta - mean[comp]


def _loglik(theta: np.ndarray, t: _Terms) -> float:
    shift = theta.max()
    w = np.exp(theta - shift)
    lj = np.bincount(t.entry_term, t.coef * w[t.entry_item], minlength=len(t.mult))
    return float(t.wins @ theta - t.mult @ (np.log(lj) + shift))


def _mm_step(theta: np.ndarray, t: _Terms, l2: float) -> np.ndarray:
    """One MM update of Hunter (2004) §5, with the exact prior-surrogate maximiser."""
    shift = theta.max()
    w = np.exp(theta - shift)  # (n,) worths, rescaled for stability
    lj = np.bincount(t.entry_term, t.coef * w[t.entry_item], minlength=len(t.mult))  # (J,)
    # c_i = Σ_j m_j coef_ij / L_j, rescaled back to the unscaled worths
    c = math.exp(-shift) * np.bincount(
        t.entry_item, t.coef * (t.mult / lj)[t.entry_term], minlength=len(theta)
    )
    if l2 == 0.0:
        return np.log(t.wins) - np.log(c)
    # maximise a θ − c e^θ − (l2/2) θ² for each item: g(θ) = a − c e^θ − l2 θ is concave and
    # decreasing, so Newton converges monotonically after at most one overshoot.
    x = theta.copy()
    for _ in range(_NEWTON_STEPS):
        ce = c * np.exp(x)
        step = (t.wins - ce - l2 * x) / (ce + l2)
        x = x + step
        if np.max(np.abs(step)) < 1e-13:
            break
    return x


# --- estimator --------------------------------------------------------------------------------
class PlackettLuce:
    """Plackett–Luce ratings from rankings with ties (Hunter's MM algorithm).

    Parameters
    ----------
    ties
        ``"efron"`` (default) or ``"breslow"``: how a tier of tied items is scored (module
        docstring). Both reduce to plain Plackett–Luce on strict rankings.
    items
        What is ranked when fitting a :class:`~prefkit.dataset.Dataset`: ``"source"`` ranks
        the responses' models (``responses.source``; every ranked response needs one),
        ``"response"`` ranks the response ids themselves, ``"auto"`` picks ``"source"``
        when every ranked response has a source and ``"response"`` otherwise (the choice
        is in :attr:`items_kind_`). Ignored for lists of tiers.
    l2
        Gaussian prior precision on the log-worths, penalty ``(l2/2)·Σ θ²`` (0 = maximum
        likelihood; ``choix``'s ``alpha`` is ``l2/2``).
    max_iter, tol
        MM stops after ``max_iter`` iterations or when no log-worth moves by more than
        ``tol``.
    scale, base, init
        Elo-scale ratings: ``init + scale · log_base(worth)``, log-worths centred.

    Attributes
    ----------
    items_ : list
        Item labels (sorted), aligned with the arrays below.
    theta_ : numpy.ndarray
        ``(n_items,)`` natural log-worths, mean zero within each component.
    ratings_ : numpy.ndarray
        ``(n_items,)`` Elo-scale ratings.
    loglik_ : float
        Log-likelihood (without the prior term) at the estimate.
    n_iter_ : int
        MM iterations run.
    converged_ : bool
        Whether ``tol`` was reached within ``max_iter``.
    components_ : numpy.ndarray
        ``(n_items,)`` component of each item (items never compared, even indirectly,
        are in different components; ratings compare only within one).
    n_components_ : int
        Number of components (1 for a connected comparison graph).
    items_kind_ : str
        ``"source"``, ``"response"`` or ``"label"`` (lists of tiers).
    n_rankings_ : int
        Rankings read.
    """

    def __init__(
        self,
        *,
        ties: str = "efron",
        items: str = "auto",
        l2: float = 0.0,
        max_iter: int = 10_000,
        tol: float = 1e-9,
        scale: float = 400.0,
        base: float = 10.0,
        init: float = 1000.0,
    ) -> None:
        self.ties = ties
        self.items = items
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol
        self.scale = scale
        self.base = base
        self.init = init

    def _validate(self) -> None:
        if self.ties not in TIES:
            raise PrefkitError(f"ties={self.ties!r}: expected one of {', '.join(TIES)}")
        if self.items not in ITEMS:
            raise PrefkitError(f"items={self.items!r}: expected one of {', '.join(ITEMS)}")
        if not self.l2 >= 0:
            raise PrefkitError(f"l2={self.l2!r}: expected a number >= 0")
        if self.base <= 1 or self.scale <= 0:
            raise PrefkitError("base must be > 1 and scale > 0")

    def fit(self, rankings: Any) -> PlackettLuce:
        """Fit the log-worths.

        Parameters
        ----------
        rankings
            A :class:`~prefkit.dataset.Dataset` with rankings, a rankings table (a
            ``tiers`` column of lists of lists of ids), or an iterable of rankings, each a
            list of tiers best first (``[["a"], ["b", "c"], "d"]``; a bare item is a tier
            of one). An item listed twice in one ranking counts twice (as two responses of
            one model do with ``items="source"``).

        Returns
        -------
        PlackettLuce
            ``self``, fitted.
        """
        self._validate()
        flat = _flatten(rankings, self.items)
        self.items_kind_ = flat.kind
        terms = _terms(flat, self.ties)
        comp, strong = _components(flat)
        n_comp = int(comp.max()) + 1
        if self.l2 == 0.0 and len(np.unique(strong)) > n_comp:
            raise PrefkitError(
                f"some of the {len(flat.items):,} items are never ranked above (or never below) "
                "the others they are compared with (e.g. always in the last tier), so maximum "
                "likelihood ratings do not exist (Hunter 2004, Assumption 1): pass l2 > 0 "
                "(a prior) or add rankings"
            )
        theta = np.zeros(len(flat.items))
        self.converged_ = False
        self.n_iter_ = 0
        for it in range(1, self.max_iter + 1):
            new = _centre(_mm_step(theta, terms, float(self.l2)), comp, n_comp)
            delta = float(np.max(np.abs(new - theta))) if len(theta) else 0.0
            theta = new
            self.n_iter_ = it
            if delta < self.tol:
                self.converged_ = True
                break
        self.items_ = flat.items
        self.theta_ = theta
        self.components_ = comp
        self.n_components_ = n_comp
        self.ratings_ = self.init + self.scale * self.theta_ / math.log(self.base)
        self.loglik_ = _loglik(theta, terms)
        self.n_rankings_ = len(np.unique(flat.ranking))
        return self

    def score(self, rankings: Any) -> float:
        """Log-likelihood of ``rankings`` (same forms as :meth:`fit`) under the fitted
        worths; every item must have been seen in :meth:`fit`."""
        flat = _flatten(rankings, self.items)
        index = {v: i for i, v in enumerate(self.items_)}
        unknown = [v for v in flat.items if v not in index]
        if unknown:
            raise PrefkitError(f"item {unknown[0]!r} was not in the rankings fitted")
        remap = np.array([index[v] for v in flat.items], dtype=np.int64)
        flat = _Flat(remap[flat.item], flat.ranking, flat.tier, list(self.items_), flat.kind)
        return _loglik(self.theta_, _terms(flat, self.ties))

    def as_dict(self) -> dict[Any, float]:
        """``{item: rating}``, best first."""
        order = np.argsort(-self.ratings_, kind="stable")
        return {self.items_[i]: float(self.ratings_[i]) for i in order}


__all__ = ["ITEMS", "TIES", "PlackettLuce"]
