"""The arrays reward models learn from: one text per response, and index arrays for
judgments, rankings and attribute ratings (no torch here).

A :class:`PrefData` holds every response of a dataset once (``texts[i]`` is what the
backbone reads for response ``i``: the tail of its prompt, a blank line, the response)
and integer views of the labels:

* ``pairs``: one row per judgment: ``a``, ``b`` (response indices), ``outcome``
  (+1 a preferred, -1 b preferred, 0 tie), ``strength`` (NaN when absent),
  ``annotator`` (index into ``annotators``, -1 when unknown), ``prompt``, ``category``;
* ``lists``: one row per ranked item: ``item``, ``list_id``, ``tier`` (1 = best;
  equal tiers are ties), from the rankings table;
* ``attributes``: ``(n_responses, K)`` named ratings, NaN where missing.

Cross-validation splits by prompt (:func:`prompt_folds`) so a prompt's responses never
sit on both sides of a split.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.dataset import Dataset
from prefkit.engine import scalar
from prefkit.errors import PrefkitError
from prefkit.views import connect_tables, messages_text, prompt_text, ranking_tiers

#: Characters of the prompt kept before the response (its end, where the question is).
PROMPT_CHARS = 600
SEPARATOR = "\n\n"


@dataclass
class Pairs:
    """Judgments as index arrays (all of length n)."""

    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    strength: np.ndarray
    annotator: np.ndarray
    prompt: np.ndarray
    category: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    def take(self, rows: np.ndarray) -> Pairs:
        return Pairs(**{k: v[rows] for k, v in self.__dict__.items()})


@dataclass
class Lists:
    """Ranked items: ``item`` (response index), ``list_id`` (0..n_lists-1), ``tier``."""

    item: np.ndarray
    list_id: np.ndarray
    tier: np.ndarray
    prompt: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    @property
    def n_lists(self) -> int:
        return int(self.list_id.max()) + 1 if len(self.list_id) else 0

    def take_lists(self, keep: np.ndarray) -> Lists:
        """The items of the lists where ``keep[list_id]``, renumbered densely."""
        rows = keep[self.list_id]
        _, new_id = np.unique(self.list_id[rows], return_inverse=True)
        return Lists(self.item[rows], new_id.astype(np.int64), self.tier[rows], self.prompt[rows])


@dataclass
class PrefData:
    """One dataset's responses and labels as arrays; see the module docstring."""

    response_ids: np.ndarray
    texts: list[str]
    prompt_of: np.ndarray
    prompt_ids: np.ndarray
    n_words: np.ndarray
    pairs: Pairs
    lists: Lists
    attributes: np.ndarray
    attribute_names: list[str]
    annotators: np.ndarray
    categories: np.ndarray
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_responses(self) -> int:
        return len(self.response_ids)

    def select_prompts(self, keep: np.ndarray) -> PrefData:
        """The labels of the prompts where ``keep[prompt]``; texts stay (indices hold)."""
        lists_keep = np.zeros(self.lists.n_lists, dtype=bool)
        if len(self.lists):
            lists_keep[self.lists.list_id[keep[self.lists.prompt]]] = True
        attributes = self.attributes.copy()
        attributes[~keep[self.prompt_of]] = np.nan
        return replace(
            self,
            pairs=self.pairs.take(np.flatnonzero(keep[self.pairs.prompt])),
            lists=self.lists.take_lists(lists_keep),
            attributes=attributes,
        )

    def items(self) -> np.ndarray:
        """Indices of the responses some label mentions (what training must embed)."""
        used = np.zeros(self.n_responses, dtype=bool)
        used[self.pairs.a] = used[self.pairs.b] = True
        used[self.lists.item] = True
        used[~np.isnan(self.attributes).all(axis=1)] = True
        return np.flatnonzero(used)


def from_arrays(
    n_responses: int,
    *,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    outcome: np.ndarray | None = None,
    strength: np.ndarray | None = None,
    annotator: np.ndarray | None = None,
    n_annotators: int = 0,
    category: np.ndarray | None = None,
    lists: Lists | None = None,
    attributes: np.ndarray | None = None,
    attribute_names: list[str] | None = None,
    prompt_of: np.ndarray | None = None,
    texts: list[str] | None = None,
) -> PrefData:
    """A :class:`PrefData` from index arrays (planted-truth experiments, own features).

    Responses are ``"r0".."r{n-1}"``; each sits in its own prompt unless ``prompt_of``
    says otherwise; annotators are ``"u0".."u{n_annotators-1}"``; texts are empty
    unless given (pair such data with an :class:`~prefkit.models.backbones.ArrayBackbone`).
    """
    empty = np.zeros(0, dtype=np.int64)
    a = empty if a is None else np.asarray(a, dtype=np.int64)
    b = empty if b is None else np.asarray(b, dtype=np.int64)
    n = len(a)
    prompt_of = (
        np.arange(n_responses) if prompt_of is None else np.asarray(prompt_of, dtype=np.int64)
    )
    cats = np.zeros(n, dtype=np.int64) if category is None else np.asarray(category, dtype=np.int64)
    att = np.full((n_responses, 0), np.nan) if attributes is None else np.asarray(attributes, float)
    return PrefData(
        response_ids=np.array([f"r{i}" for i in range(n_responses)], dtype=object),
        texts=list(texts) if texts is not None else [""] * n_responses,
        prompt_of=prompt_of,
        prompt_ids=np.array(
            [f"p{i}" for i in range(int(prompt_of.max(initial=-1)) + 1)], dtype=object
        ),
        n_words=np.zeros(n_responses),
        pairs=Pairs(
            a=a,
            b=b,
            outcome=np.ones(n, dtype=np.int64)
            if outcome is None
            else np.asarray(outcome, dtype=np.int64),
            strength=np.full(n, np.nan) if strength is None else np.asarray(strength, float),
            annotator=np.full(n, -1, dtype=np.int64)
            if annotator is None
            else np.asarray(annotator, dtype=np.int64),
            prompt=prompt_of[a],
            category=cats,
        ),
        lists=lists if lists is not None else Lists(empty, empty, empty, empty),
        attributes=att,
        attribute_names=list(attribute_names or [f"attr{k}" for k in range(att.shape[1])]),
        annotators=np.array([f"u{i}" for i in range(n_annotators)], dtype=object),
        categories=np.array([f"c{i}" for i in range(int(cats.max(initial=0)) + 1)], dtype=object),
    )


def prompt_folds(data: PrefData, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` boolean masks over prompts (test folds) that partition the labelled prompts.

    Prompts are shuffled with ``seed`` and dealt round-robin, so fold sizes differ by at
    most one prompt.
    """
    labelled = np.unique(
        np.concatenate([data.pairs.prompt, data.lists.prompt, data.prompt_of[data.items()]])
    )
    if k < 2:
        raise PrefkitError(f"folds must be at least 2, got {k}")
    if len(labelled) < k:
        raise PrefkitError(
            f"{k} folds need at least {k} labelled prompts; the data has {len(labelled)}"
        )
    order = np.random.default_rng(seed).permutation(labelled)
    masks = []
    for f in range(k):
        m = np.zeros(len(data.prompt_ids), dtype=bool)
        m[order[f::k]] = True
        masks.append(m)
    return masks


# --- building from a Dataset ------------------------------------------------------------------
def encoder_texts(prompts: pa.Array, responses: pa.Array, prompt_chars: int) -> list[str]:
    """``tail(prompt, prompt_chars) + blank line + response`` per row (prompt optional)."""
    resp = [s or "" for s in responses.to_pylist()]
    if prompt_chars <= 0:
        return resp
    tails = pc.utf8_slice_codeunits(prompts, -prompt_chars).to_pylist()
    return [f"{t}{SEPARATOR}{r}" if t else r for t, r in zip(tails, resp, strict=True)]


def from_dataset(
    ds: Dataset,
    *,
    category: str | None = None,
    prompt_chars: int = PROMPT_CHARS,
) -> PrefData:
    """Gather the responses and every label of ``ds`` into a :class:`PrefData`.

    Parameters
    ----------
    category
        A column of ``judgments`` or ``prompts`` whose values name evaluation categories
        (RewardBench-style sections); ``None`` puts every judgment in one category.
    prompt_chars
        Characters of the prompt's end kept before each response (0: the response alone).
    """
    con = connect_tables(ds)
    responses = con.sql(
        """SELECT r.response_id, r.prompt_id, r.messages AS rm, p.messages AS pm
           FROM _responses r LEFT JOIN _prompts p USING (prompt_id) ORDER BY r.__ord"""
    ).to_arrow_table()
    if responses.num_rows == 0:
        raise PrefkitError("the dataset has no responses to learn from")
    response_ids = responses.column("response_id").to_numpy(zero_copy_only=False)
    rtext = messages_text(responses.column("rm").combine_chunks())
    ptext = prompt_text(responses.column("pm").combine_chunks())
    prompt_ids, prompt_of = np.unique(
        responses.column("prompt_id").to_numpy(zero_copy_only=False), return_inverse=True
    )
    index = {r: i for i, r in enumerate(response_ids)}
    pindex = {p: i for i, p in enumerate(prompt_ids)}
    words = pc.list_value_length(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(rtext)))

    pairs, annotators, categories = _pairs(ds, con, index, pindex, category)
    return PrefData(
        response_ids=response_ids,
        texts=encoder_texts(ptext, rtext, prompt_chars),
        prompt_of=prompt_of.astype(np.int64),
        prompt_ids=prompt_ids,
        n_words=pc.fill_null(words, 0).to_numpy(zero_copy_only=False).astype(np.float64),
        pairs=pairs,
        lists=_lists(con, index, pindex),
        attributes=(att := _attributes(ds, response_ids))[0],
        attribute_names=att[1],
        annotators=annotators,
        categories=categories,
        fingerprint=ds.fingerprint(),
        meta={"prompt_chars": prompt_chars, "category": category},
    )


def _category_sql(ds: Dataset, category: str | None) -> tuple[str, str]:
    if category is None:
        return "'all'", ""
    if category in ds.judgments.column_names:
        return f'CAST(j."{category}" AS VARCHAR)', ""
    if category in ds.prompts.column_names:
        return f'CAST(p."{category}" AS VARCHAR)', "LEFT JOIN _prompts p USING (prompt_id)"
    raise PrefkitError(
        f"category column {category!r} is in neither judgments nor prompts "
        f"(judgments: {', '.join(ds.judgments.column_names)}; "
        f"prompts: {', '.join(ds.prompts.column_names)})"
    )


def _pairs(
    ds: Dataset, con: Any, index: dict[str, int], pindex: dict[str, int], category: str | None
) -> tuple[Pairs, np.ndarray, np.ndarray]:
    cat, join = _category_sql(ds, category)
    missing = scalar(
        con,
        """SELECT count(*) FROM _judgments j WHERE a NOT IN (SELECT response_id FROM _responses)
           OR b NOT IN (SELECT response_id FROM _responses)""",
    )
    if missing:
        raise PrefkitError(f"{missing:,} judgments name a response the responses table lacks")
    t = con.sql(
        f"""SELECT j.a, j.b, j.outcome, j.strength, j.annotator_id, j.prompt_id,
                   coalesce({cat}, '(none)') AS category
            FROM _judgments j {join} ORDER BY j.__ord"""
    ).to_arrow_table()
    col = {n: t.column(n).to_numpy(zero_copy_only=False) for n in t.column_names}
    ann = np.where(_is_none(col["annotator_id"]), None, col["annotator_id"])
    annotators = np.unique(ann[ann != None]).astype(object)  # noqa: E711
    aindex = {a: i for i, a in enumerate(annotators)}
    categories, cat_idx = np.unique(col["category"].astype(str), return_inverse=True)
    pairs = Pairs(
        a=np.array([index[x] for x in col["a"]], dtype=np.int64),
        b=np.array([index[x] for x in col["b"]], dtype=np.int64),
        outcome=col["outcome"].astype(np.int64),
        strength=np.asarray(pc.fill_null(t.column("strength"), np.nan), dtype=np.float64),
        annotator=np.array([aindex.get(x, -1) for x in ann], dtype=np.int64),
        prompt=np.array([pindex[x] for x in col["prompt_id"]], dtype=np.int64),
        category=cat_idx.astype(np.int64),
    )
    return pairs, annotators, categories.astype(object)


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.array([v is None for v in values], dtype=bool)


def _lists(con: Any, index: dict[str, int], pindex: dict[str, int]) -> Lists:
    t = con.sql(
        f"""SELECT group_id AS ranking_id, prompt_id, response_id, tier
            FROM ({ranking_tiers()}) ORDER BY __ord, tier"""
    ).to_arrow_table()
    rid = t.column("ranking_id").to_numpy(zero_copy_only=False)
    _, list_id = np.unique(rid, return_inverse=True)
    unknown = [x for x in t.column("response_id").to_pylist() if x not in index]
    if unknown:
        raise PrefkitError(
            f"{len(unknown):,} ranked ids are not in responses (first: {unknown[0]!r})"
        )
    return Lists(
        item=np.array([index[x] for x in t.column("response_id").to_pylist()], dtype=np.int64),
        list_id=list_id.astype(np.int64),
        tier=t.column("tier").to_numpy(zero_copy_only=False).astype(np.int64),
        prompt=np.array([pindex[x] for x in t.column("prompt_id").to_pylist()], dtype=np.int64),
    )


def _attributes(ds: Dataset, response_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``(n, K)`` named ratings in response order (``responses`` is read in ``__ord``)."""
    r = ds.responses
    if "attributes" not in r.column_names or r.num_rows == 0:
        return np.full((len(response_ids), 0), np.nan), []
    rows = r.column("attributes").to_pylist()
    names = sorted({k for m in rows if m for k, _ in _items(m)})
    out = np.full((len(rows), len(names)), np.nan)
    col = {n: i for i, n in enumerate(names)}
    for i, m in enumerate(rows):
        for k, v in _items(m or []):
            if v is not None:
                out[i, col[k]] = float(v)
    return out, names


def _items(m: Any) -> list[tuple[str, Any]]:
    return list(m.items()) if isinstance(m, dict) else list(m)


__all__ = [
    "Lists",
    "Pairs",
    "PrefData",
    "encoder_texts",
    "from_arrays",
    "from_dataset",
    "prompt_folds",
]
