"""Word n-gram overlap between a small reference set (eval prompts) and a streamed corpus.

This is the machinery behind the ``coverage`` check's contamination test and the
decontamination step of curation: which training texts share word n-grams with which
eval texts, and how much of each eval text they cover.

Method
------
The test follows Brown et al. (2020), *Language Models are Few-Shot Learners* (GPT-3),
§4 and Appendix C: an eval example is "dirty" when it shares a 13-gram with the training
data, or, when it is shorter than 13 words, when the whole example occurs there. Words
come from a fixed normalisation (:func:`normalize`): lowercase, every Unicode punctuation
or symbol character replaced by a space, then split on whitespace. Chowdhery et al.
(2022), *PaLM*, §8, use 8-grams and call an example contaminated when at least 70% of its
8-grams occur in the training data; ``n=8, min_share=0.7`` reproduces that rule per
training text (see the deviations below). Touvron et al. (2023), *Llama 2*, Appendix A.6,
count *tokens* covered by matching token n-grams longer than 10 tokens; that token-level
rule is not implemented here.

Deviations
----------
* Short texts (fewer than ``n`` words) are matched by **whole normalised text equality**
  with a training text, not as a substring of one as in GPT-3: in preference data a short
  eval prompt such as "tell me a joke" occurs inside many unrelated longer prompts, and
  that is not a leak of the eval item.
* Overlap is measured per (eval text, training text) pair: ``share`` is the fraction of
  the eval text's distinct n-grams found in *that one* training text. PaLM counts an
  n-gram found anywhere in the corpus. The pairwise form names the training rows that
  must go for the eval item to be clean, which is what decontamination needs.

Hashing
-------
Each distinct word of a record batch is hashed once with xxh3-64 (Python loop over the
batch *vocabulary*, not over the words); an n-gram's key is the polynomial
``sum_k h[i+k] * M^(n-1-k) mod 2^64`` built in ``n`` vectorised passes over the flat word
array. With 64-bit keys the chance that two different n-grams collide is about
``pairs / 2^64``, negligible for any eval set. Keys of the eval set are sorted once; a
training batch is looked up with ``np.searchsorted`` (no per-row Python).

Parameters
----------
n
    Words per n-gram (default :data:`DEFAULT_N` = 13, GPT-3).
min_share
    A pair counts when the training text holds at least this share of the eval text's
    distinct n-grams, and at least one (default 0: any shared n-gram, GPT-3).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from scipy import sparse

#: Words per n-gram: GPT-3's 13 (Brown et al. 2020, §4).
DEFAULT_N = 13
#: Multiplier of the polynomial n-gram hash (odd, so multiplication is a bijection mod 2^64).
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
#: Characters replaced by a space before splitting into words: Unicode punctuation and symbols.
PUNCTUATION = r"[\p{P}\p{S}]+"
#: Most (training text, eval text) candidate pairs expanded at once (bounds memory when a
#: common n-gram, e.g. boilerplate, is shared by many eval and many training texts).
PAIR_CHUNK = 4_000_000


# --- words and their hashes -----------------------------------------------------------------
def _as_array(texts: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        return texts.combine_chunks()
    if isinstance(texts, pa.Array):
        return texts
    return pa.array(list(texts), pa.string())


def normalize(texts: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.ListArray:
    """Words of each text: lowercased, punctuation and symbols replaced by spaces,
    split on whitespace (vectorised; a null text has no words)."""
    arr = pc.fill_null(_as_array(texts).cast(pa.string()), "")
    lowered = pc.utf8_lower(arr)
    spaced = pc.utf8_trim_whitespace(pc.replace_substring_regex(lowered, PUNCTUATION, " "))
    # Arrow splits "" into [""] and keeps empty words at the ends: trim first, and give a
    # text without words a null list (no words).
    spaced = pc.if_else(pc.equal(spaced, ""), pa.scalar(None, pa.string()), spaced)
    words = pc.utf8_split_whitespace(spaced)
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    return words


def word_hashes(words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """Flat xxh3-64 hash of every word and the per-text offsets into it.

    Returns ``(h, offsets)``: ``h`` is ``(W,)`` uint64, ``offsets`` ``(D + 1,)`` int64 so the
    words of text ``d`` are ``h[offsets[d]:offsets[d + 1]]``.
    """
    offsets = words.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    flat = pc.list_flatten(words)
    if len(flat) == 0:
        return np.zeros(0, np.uint64), offsets
    encoded = (
        pc.dictionary_encode(flat).combine_chunks()
        if isinstance(flat, pa.ChunkedArray)
        else pc.dictionary_encode(flat)
    )
    vocab = encoded.dictionary.cast(pa.binary()).to_pylist()
    table = np.fromiter(
        (xxhash.xxh3_64_intdigest(w) for w in vocab), dtype=np.uint64, count=len(vocab)
    )
    return table[encoded.indices.to_numpy()], offsets


@dataclass
class Keys:
    """The keys of a batch of texts.

    ``gram_doc``/``gram_key``: one row per n-gram position (texts with at least ``n``
    words); ``exact_doc``/``exact_key``: one row per text with ``0 < words < n`` (its whole
    normalised text); ``lengths``: words per text.
    """

    gram_doc: np.ndarray
    gram_key: np.ndarray
    exact_doc: np.ndarray
    exact_key: np.ndarray
    lengths: np.ndarray


def text_keys(texts: pa.Array | pa.ChunkedArray | Sequence[str], n: int = DEFAULT_N) -> Keys:
    """n-gram keys and short-text keys of every text (see the module docstring)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    h, offsets = word_hashes(normalize(texts))
    lengths = np.diff(offsets)
    n_words = len(h)
    doc_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)  # (W,)
    pos = np.arange(n_words, dtype=np.int64) - offsets[:-1][doc_of]  # word index in its text
    starts = offsets[:-1]
    exact_doc: list[np.ndarray] = []
    exact_key: list[np.ndarray] = []
    rolled = h.copy()  # rolled[i]: key of the k-gram starting at word i (k = loop step)
    with np.errstate(over="ignore"):
        for k in range(1, n + 1):
            if k > 1:
                if len(rolled) <= 1:
                    rolled = rolled[:0]
                    break
                rolled = rolled[:-1] * MULTIPLIER + h[k - 1 :]
            if k < n:
                whole = np.flatnonzero(lengths == k)  # texts of exactly k words
                if len(whole):
                    exact_doc.append(whole)
                    exact_key.append(rolled[starts[whole]])
    if len(rolled) and n_words >= n:
        valid = pos[: len(rolled)] <= lengths[doc_of[: len(rolled)]] - n
        gram_doc, gram_key = doc_of[: len(rolled)][valid], rolled[valid]
    else:
        gram_doc, gram_key = np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return Keys(
        gram_doc=gram_doc,
        gram_key=gram_key,
        exact_doc=np.concatenate(exact_doc) if exact_doc else np.zeros(0, np.int64),
        exact_key=np.concatenate(exact_key) if exact_key else np.zeros(0, np.uint64),
        lengths=lengths,
    )


# --- the eval index ---------------------------------------------------------------------------
@dataclass
class _Postings:
    """Sorted distinct keys and, for each, the eval texts holding it (CSR)."""

    keys: np.ndarray  # (U,) uint64, sorted
    ptr: np.ndarray  # (U + 1,) int64
    docs: np.ndarray  # (ptr[-1],) int64

    @classmethod
    def build(cls, doc: np.ndarray, key: np.ndarray) -> _Postings:
        order = np.lexsort((doc, key))
        doc, key = doc[order], key[order]
        keep = np.ones(len(key), bool)
        keep[1:] = (key[1:] != key[:-1]) | (doc[1:] != doc[:-1])
        doc, key = doc[keep], key[keep]
        new = np.ones(len(key), bool)
        new[1:] = key[1:] != key[:-1]
        first = np.flatnonzero(new)
        ptr = np.append(first, len(key)).astype(np.int64)
        return cls(keys=key[first], ptr=ptr, docs=doc)

    def lookup(self, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, slot)``: the rows of ``key`` found here and their slot in ``keys``."""
        if len(self.keys) == 0 or len(key) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        slot = np.searchsorted(self.keys, key)
        slot[slot == len(self.keys)] = 0
        rows = np.flatnonzero(self.keys[slot] == key)
        return rows, slot[rows]


@dataclass
class EvalIndex:
    """The n-gram keys of a set of eval texts, ready for lookups.

    Attributes
    ----------
    n
        Words per n-gram.
    lengths
        ``(E,)`` words per eval text after normalisation.
    n_keys
        ``(E,)`` distinct keys per eval text (its n-grams, or 1 for a short text, 0 when it
        has no words).
    """

    n: int
    lengths: np.ndarray
    n_keys: np.ndarray
    grams: _Postings
    exact: _Postings

    @classmethod
    def build(
        cls, texts: pa.Array | pa.ChunkedArray | Sequence[str], n: int = DEFAULT_N
    ) -> EvalIndex:
        keys = text_keys(texts, n)
        grams = _Postings.build(keys.gram_doc, keys.gram_key)
        exact = _Postings.build(keys.exact_doc, keys.exact_key)
        n_keys = np.bincount(grams.docs, minlength=len(keys.lengths)) + np.bincount(
            exact.docs, minlength=len(keys.lengths)
        )
        return cls(n=n, lengths=keys.lengths, n_keys=n_keys, grams=grams, exact=exact)

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def short(self) -> np.ndarray:
        """Eval texts matched by whole-text equality (fewer than ``n`` words)."""
        return (self.lengths > 0) & (self.lengths < self.n)

    def pairs(self, texts: pa.Array | pa.ChunkedArray | Sequence[str]) -> Pairs:
        """Every (training text, eval text) pair sharing at least one key.

        ``train`` indexes ``texts``; ``shared`` counts distinct shared keys.
        """
        keys = text_keys(texts, self.n)
        out = [
            self._expand(
                *self._hits(self.grams, keys.gram_doc, keys.gram_key), self.grams, self.size
            ),
            self._expand(
                *self._hits(self.exact, keys.exact_doc, keys.exact_key), self.exact, self.size
            ),
        ]
        train = np.concatenate([o[0] for o in out])
        ev = np.concatenate([o[1] for o in out])
        shared = np.concatenate([o[2] for o in out])
        return Pairs(train, ev, shared, shared / np.maximum(self.n_keys[ev], 1))

    @staticmethod
    def _hits(post: _Postings, doc: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (training text, key slot) hits, sorted by text."""
        rows, slot = post.lookup(key)
        if len(rows) == 0:
            return rows, slot
        combined = np.unique(doc[rows] * np.int64(len(post.keys)) + slot)
        return combined // len(post.keys), combined % len(post.keys)

    @staticmethod
    def _expand(
        doc: np.ndarray, slot: np.ndarray, post: _Postings, n_eval: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hits -> (training text, eval text, shared keys), in chunks of whole texts."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(doc) == 0:
            return empty
        counts = post.ptr[slot + 1] - post.ptr[slot]  # eval texts per hit
        doc_starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
        per_doc = np.add.reduceat(counts, doc_starts)
        # group whole texts into chunks of about PAIR_CHUNK expanded pairs
        chunk = (np.cumsum(per_doc) - per_doc) // PAIR_CHUNK
        bounds = np.r_[doc_starts[np.r_[True, chunk[1:] != chunk[:-1]]], len(doc)]
        parts = []
        for lo, hi in itertools.pairwise(bounds.tolist()):
            c = counts[lo:hi]
            rep_doc = np.repeat(doc[lo:hi], c)
            # eval text j of hit i sits at post.docs[post.ptr[slot[i]] + j]
            within = np.arange(len(rep_doc)) - np.repeat(np.cumsum(c) - c, c)
            ev = post.docs[np.repeat(post.ptr[slot[lo:hi]], c) + within]
            pair, shared = np.unique(rep_doc * np.int64(n_eval) + ev, return_counts=True)
            parts.append((pair // n_eval, pair % n_eval, shared))
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]


@dataclass
class Pairs:
    """(training text, eval text) pairs of one batch with their overlap."""

    train: np.ndarray  # (P,) int64 row in the batch
    eval: np.ndarray  # (P,) int64 eval text
    shared: np.ndarray  # (P,) distinct shared keys
    share: np.ndarray  # (P,) shared / the eval text's distinct keys


# --- streaming a corpus ------------------------------------------------------------------------
@dataclass
class Overlap:
    """What :func:`find_overlaps` found over a whole corpus.

    ``flagged_ids``: every corpus id holding at least one qualifying pair. Per eval text
    (arrays of length E): ``best_share``/``best_shared`` of its strongest pair (0 when
    none), ``best_id``/``best_text`` of that corpus text (None when none), and ``matches``
    (corpus texts it qualifies with).
    """

    n: int
    min_share: float
    flagged_ids: list[str]
    n_pairs: int
    best_share: np.ndarray
    best_shared: np.ndarray
    best_id: list[str | None]
    best_text: list[str | None]
    matches: np.ndarray
    scanned: int = 0
    short: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def contaminated(self) -> np.ndarray:
        """``(E,)`` bool: eval texts with at least one qualifying pair."""
        return self.matches > 0


def find_overlaps(
    index: EvalIndex,
    batches: Iterable[tuple[pa.Array, pa.Array]],
    min_share: float = 0.0,
) -> Overlap:
    """Scan ``(ids, texts)`` batches of a corpus for texts overlapping the eval set.

    A (corpus text, eval text) pair qualifies when they share at least one key and at
    least ``min_share`` of the eval text's distinct keys. Memory: the eval index plus one
    batch.
    """
    e = index.size
    best_share = np.zeros(e)
    best_shared = np.zeros(e, np.int64)
    best_id: list[str | None] = [None] * e
    best_text: list[str | None] = [None] * e
    matches = np.zeros(e, np.int64)
    flagged: list[str] = []
    n_pairs = scanned = 0
    for ids, texts in batches:
        scanned += len(ids)
        p = index.pairs(texts)
        ok = p.share >= min_share
        train, ev, shared, share = p.train[ok], p.eval[ok], p.shared[ok], p.share[ok]
        if len(train) == 0:
            continue
        n_pairs += len(train)
        matches += np.bincount(ev, minlength=e)
        rows = np.unique(train)
        flagged.extend(pc.take(ids, pa.array(rows)).to_pylist())
        # strongest pair per eval text in this batch (highest share, then most shared keys)
        order = np.lexsort((-shared, -share, ev))
        first = np.r_[True, ev[order][1:] != ev[order][:-1]]
        top = order[first]
        better = share[top] > best_share[ev[top]]
        top = top[better]
        if len(top):
            id_list = pc.take(ids, pa.array(train[top])).to_pylist()
            text_list = pc.take(texts, pa.array(train[top])).to_pylist()
            for j, t in enumerate(top):
                k = int(ev[t])
                best_share[k] = share[t]
                best_shared[k] = shared[t]
                best_id[k] = id_list[j]
                best_text[k] = text_list[j]
    return Overlap(
        n=index.n,
        min_share=min_share,
        flagged_ids=flagged,
        n_pairs=n_pairs,
        best_share=best_share,
        best_shared=best_shared,
        best_id=best_id,
        best_text=best_text,
        matches=matches,
        scanned=scanned,
        short=index.short,
    )


# --- hashed word n-gram features ----------------------------------------------------------------
def hashed_counts(
    texts: pa.Array | pa.ChunkedArray | Sequence[str],
    dim: int = 1 << 20,
    orders: Sequence[int] = (1, 2),
) -> sparse.csr_matrix:
    """``(D, dim)`` counts of each text's word n-grams of the given orders, hashed into
    ``dim`` columns (the hashing trick, Weinberger et al. 2009)."""
    h, offsets = word_hashes(normalize(texts))
    lengths = np.diff(offsets)
    d = len(lengths)
    doc_of = np.repeat(np.arange(d, dtype=np.int64), lengths)
    pos = np.arange(len(h), dtype=np.int64) - offsets[:-1][doc_of]
    rows, cols = [], []
    rolled = h.copy()
    with np.errstate(over="ignore"):
        for k in range(1, max(orders) + 1):
            if k > 1:
                if len(rolled) <= 1:
                    break
                rolled = rolled[:-1] * MULTIPLIER + h[k - 1 :] + np.uint64(k)
            if k in orders:
                m = len(rolled)
                valid = pos[:m] <= lengths[doc_of[:m]] - k
                rows.append(doc_of[:m][valid])
                cols.append((rolled[valid] % np.uint64(dim)).astype(np.int64))
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    out = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(d, dim))
    out.sum_duplicates()
    return out


__all__ = [
    "DEFAULT_N",
    "EvalIndex",
    "Keys",
    "Overlap",
    "Pairs",
    "find_overlaps",
    "hashed_counts",
    "normalize",
    "text_keys",
    "word_hashes",
]
