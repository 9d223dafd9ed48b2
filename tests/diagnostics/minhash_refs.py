"""Pure-Python references shared by the MinHash and LSH tests (test_minhash.py,
test_lsh.py): exact Jaccard of word n-gram sets, pairs of texts planted at a chosen
exact Jaccard, and the engine's map step on a list of texts."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from prefkit.diagnostics.minhash import (
    MinHashParams,
    band_keys,
    permutations,
    shingles,
    signatures,
    tokenize,
)


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word ``n``-grams of a text as the engine defines them (lowercase, split on
    whitespace; a shorter text is one n-gram of all its words)."""
    words = text.lower().split()
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str, n: int = 1) -> float:
    """Exact Jaccard of two texts' ``n``-gram sets."""
    sa, sb = ngrams(a, n), ngrams(b, n)
    return len(sa & sb) / len(sa | sb)


def pairs_with_jaccard(
    targets: list[float], size: int, rng: random.Random, vocab: int = 10**6
) -> list[tuple[str, str, float]]:
    """Two texts of distinct random words per target Jaccard (exact J returned)."""
    out = []
    for j in targets:
        # |A| = |B| = size, shared c: J = c / (2 size - c)  ->  c = 2 size J / (1 + J)
        c = round(2 * size * j / (1 + j))
        words = [f"w{x}" for x in rng.sample(range(vocab), 2 * size - c)]
        a = words[:size]
        b = words[:c] + words[size:]
        rng.shuffle(b)
        ta, tb = " ".join(a), " ".join(b)
        out.append((ta, tb, jaccard(ta, tb)))
    return out


def sign_texts(texts: list[str], params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """Signatures and band keys of ``texts``, step by step through the map step's parts."""
    tokens = tokenize(pa.array(texts))
    x, counts = shingles(tokens, params.ngram)
    a, b = permutations(params.num_perm, params.seed)
    sig = signatures(x, counts, a, b)
    bands, rows = params.band_rows
    return sig, band_keys(sig, bands, rows)
