"""MinHash signatures of texts, vectorised over batches: the map step of near-duplicate
detection (the reduce step, from band keys to verified groups, is
:mod:`prefkit.diagnostics.lsh`).

What
    For each text of a batch: the hashes of its lowercased words, a hash of its whole
    normalised word sequence (the exact-duplicate key), the 32-bit hashes of its word
    n-grams ("shingles"), its MinHash signature and the LSH band keys of that signature
    (:func:`sign`). Also the engine's parameters (:class:`MinHashParams`) and the LSH
    S-curve the bands are chosen on. The duplicates check uses it on prompts and
    responses; curation reuses it for dedup.

Method
    * MinHash: Broder (1997), "On the resemblance and containment of documents". For a
      random permutation ``h`` of the shingle space, ``P[min h(A) = min h(B)] = J(A, B)``;
      ``num_perm`` independent permutations give a signature whose share of equal
      entries estimates ``J`` with binomial variance ``J (1 - J) / num_perm``
      (:func:`estimate_jaccard`).
    * Band keys: Indyk & Motwani (1998), "Approximate nearest neighbors: towards
      removing the curse of dimensionality"; Leskovec, Rajaraman & Ullman, "Mining of
      Massive Datasets", ch. 3. The signature is cut into ``b`` bands of ``r`` rows and
      each band hashed to one key; two texts agree on a band's key with probability
      ``s^r`` and on at least one with ``1 - (1 - s^r)^b`` for Jaccard ``s``
      (:func:`candidate_probability`). ``(b, r)`` minimise the weighted areas under that
      S-curve below the threshold (false positives) and above it (false negatives),
      exactly as datasketch's ``MinHashLSH._optimal_param`` does (:func:`optimal_bands`).

Pipeline (DESIGN.md §3: map rows to small keys, reduce the keys globally)
    map, per batch of texts (:func:`sign`, pure, safe in worker threads): lowercase,
    split on whitespace, hash the distinct words of the batch (polynomial hash of their
    UTF-8 bytes), combine ``ngram`` consecutive word hashes into a 32-bit shingle hash,
    take the ``num_perm`` minima of ``((x xor b_k) a_k) mod 2^32`` over each text's
    shingles (one (docs, shingles, perms) block per group of texts of similar length),
    and hash each band of the signature to a uint64 key. Storing, banding and verifying
    are :mod:`prefkit.diagnostics.lsh`.

Memory
    Per worker thread: one batch of texts, the word-level temporaries of 16,384 texts,
    and a (docs, shingles, perms) block of at most 1 MiB. Per text out: ``4 * num_perm``
    bytes of signature, ``8 * b`` of band keys, 24 of hashes and counts.

Deviations
    * Permutations are ``((x xor b_k) a_k) mod 2^32`` (``a_k`` odd, so a bijection) on
      32-bit shingle hashes that are themselves finalised by splitmix64, instead of
      ``(a x + b) mod (2^61 - 1)`` on SHA-1 hashes (datasketch). On uniformly distributed
      hashes each permutation keeps the minimum uniform over the set, which is all the
      MinHash estimate needs; 32-bit arithmetic is about 3x faster than 64-bit in numpy.
      The xor comes first on purpose: with ``(a_k x + b_k) mod 2^32`` the offset only
      rotates the circle of ``a_k x`` values, so an element's chance to be the minimum
      follows the gap before it: over 30 permutation draws on the 314-word synth
      vocabulary the number of false LSH candidates had sd 17 (truly random tables: 11,
      datasketch: 8); xor-then-multiply has sd 9 (means 35-36 for all). The tests check
      the estimate against the binomial tolerance, band collisions against ``s^r`` and
      the agreement with datasketch on the same texts.
    * Word hashes are a polynomial hash mod 2^64 of the UTF-8 bytes: fast and
      well-spread on natural text but not collision-resistant against crafted input.
    * A text without any token has no shingles and no signature (all entries
      ``2^32 - 1``); it is never a near duplicate (an exact-duplicate check covers empty
      texts).

Parameters (:class:`MinHashParams`)
    num_perm 128, ngram 1 (word sets; see docs/inspect/duplicates.md for why),
    threshold 0.8, bands/rows 0 = optimal for the threshold (9 x 13 for the defaults),
    seed 1, max_bucket 64.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.errors import PrefkitError

# --- constants -------------------------------------------------------------------------------
_M64 = (1 << 64) - 1
#: Base of the polynomial string hash (odd, so invertible mod 2^64).
_BASE = 0x9E3779B97F4A7C15
_BASE_INV = pow(_BASE, -1, 1 << 64)
_C_LEN = np.uint64(0xD6E8FEB86659FD93)
_C_POS = np.uint64(0xA0761D6478BD642F)
_C_SEED = np.uint64(0x8EBC6AF09C88C6E3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
#: Per-position multipliers of the n-gram combination (odd, fixed: shingle hashes do not
#: depend on the seed, only the permutations do).
_NGRAM_MULT = np.random.default_rng(0x5EED).integers(1, 1 << 63, 64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)
#: Bytes hashed per step of :func:`hash_strings` (bounds its temporaries to ~5x this x 8).
_HASH_CHUNK = 1 << 21
#: Elements of one (docs, shingles, perms) block: 256 Ki uint32 = 1 MiB (cache-sized:
#: larger blocks run at half the speed).
_BLOCK = 1 << 18
#: Texts tokenised and signed at once inside a batch (bounds the word-level temporaries).
_SIGN_ROWS = 16_384
_EMPTY = np.uint32(0xFFFFFFFF)


# --- parameters ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MinHashParams:
    """Parameters of the MinHash/LSH engine (this module and :mod:`prefkit.diagnostics.lsh`).

    Parameters
    ----------
    num_perm
        Permutations (signature length). The estimate's standard error is
        ``sqrt(J (1 - J) / num_perm)``: 0.035 at J = 0.8 for 128.
    ngram
        Words per shingle, after lowercasing and splitting on whitespace. A text with
        fewer words is one shingle of all its words.
    threshold
        Jaccard similarity from which two texts are near duplicates.
    bands, rows
        LSH banding; 0 and 0 choose them with :func:`optimal_bands`. ``bands * rows``
        must not exceed ``num_perm``.
    seed
        Seed of the permutations.
    false_positive_weight, false_negative_weight
        Weights of the two error areas minimised by :func:`optimal_bands`.
    max_bucket
        Buckets with more members emit only the pairs with their first member.
    verify
        Keep only candidates whose signature estimate reaches ``threshold`` (True), or
        every LSH candidate (False, like a bare datasketch ``MinHashLSH`` query).
    """

    num_perm: int = 128
    ngram: int = 1
    threshold: float = 0.8
    bands: int = 0
    rows: int = 0
    seed: int = 1
    false_positive_weight: float = 0.5
    false_negative_weight: float = 0.5
    max_bucket: int = 64
    verify: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.num_perm <= 4096:
            raise PrefkitError(f"minhash num_perm must be in [2, 4096], got {self.num_perm}")
        if not 1 <= self.ngram <= len(_NGRAM_MULT):
            raise PrefkitError(
                f"minhash ngram must be in [1, {len(_NGRAM_MULT)}], got {self.ngram}"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise PrefkitError(f"minhash threshold must be in (0, 1], got {self.threshold}")
        if (self.bands > 0) != (self.rows > 0):
            raise PrefkitError("minhash bands and rows must be given together (or both 0)")
        if self.bands * self.rows > self.num_perm:
            raise PrefkitError(
                f"minhash bands x rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}"
            )
        if self.max_bucket < 2:
            raise PrefkitError(f"minhash max_bucket must be >= 2, got {self.max_bucket}")

    @property
    def band_rows(self) -> tuple[int, int]:
        """``(bands, rows)``: the given ones or the optimal ones for the threshold."""
        if self.bands:
            return self.bands, self.rows
        return optimal_bands(
            self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight
        )

    def to_dict(self) -> dict[str, Any]:
        bands, rows = self.band_rows
        return {
            "num_perm": self.num_perm,
            "ngram": self.ngram,
            "threshold": self.threshold,
            "bands": bands,
            "rows": rows,
            "seed": self.seed,
            "max_bucket": self.max_bucket,
            "verify": self.verify,
        }


def candidate_probability(s: float | np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Probability that two texts with Jaccard ``s`` share a band: ``1 - (1 - s^r)^b``."""
    s = np.asarray(s, dtype=np.float64)
    return np.asarray(1.0 - (1.0 - s**rows) ** bands)


@lru_cache(maxsize=64)
def optimal_bands(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """``(b, r)`` with ``b * r <= num_perm`` minimising the weighted error areas.

    False positives: ``∫_0^t P(s) ds``; false negatives: ``∫_t^1 1 - P(s) ds`` with
    ``P`` from :func:`candidate_probability`; the same objective, integrator and search
    order as datasketch's ``_optimal_param``, so both pick the same parameters.
    """
    from scipy.integrate import quad

    best, best_error = (1, 1), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp, _ = quad(lambda s, b=b, r=r: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)
            fn, _ = quad(
                lambda s, b=b, r=r: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0
            )
            error = fp * false_positive_weight + fn * false_negative_weight
            if error < best_error:
                best, best_error = (b, r), error
    return best


# --- hashing helpers -------------------------------------------------------------------------
def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (and returned)."""
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of a uint64 array (a new array): a bijection that spreads
    every input bit over the output."""
    return _mix64(np.array(h, np.uint64, copy=True))


class _Powers:
    """``BASE^k`` and ``BASE^-k`` mod 2^64 for k < n, grown on demand; thread-safe (the
    map step runs in worker threads), and a table is never replaced by a shorter one."""

    def __init__(self) -> None:
        self._pow = np.ones(1, np.uint64)
        self._inv = np.ones(1, np.uint64)
        self._lock = threading.Lock()

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(pow, inv)`` tables with at least ``n`` entries."""
        with self._lock:
            if len(self._pow) < n:
                n = max(n, 2 * len(self._pow), 1024)
                # cumprod on uint64 arrays wraps mod 2^64, which is the arithmetic we want
                self._pow = np.concatenate(
                    [[np.uint64(1)], np.cumprod(np.full(n - 1, _BASE, np.uint64))]
                )
                self._inv = np.concatenate(
                    [[np.uint64(1)], np.cumprod(np.full(n - 1, _BASE_INV, np.uint64))]
                )
            return self._pow, self._inv


_POWERS = _Powers()


def _string_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One ``large_string`` array (int64 offsets) with nulls as empty strings."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise PrefkitError(f"texts must be strings, got {values.type}")
    if values.null_count:
        values = pc.fill_null(values, "")
    return values.cast(pa.large_string())


def hash_strings(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each string (nulls hash like ""), vectorised over the bytes.

    ``h = mix64(sum_j (byte_j + 1) BASE^j mod 2^64  xor  len * C)``, computed for all
    strings at once from prefix sums over the concatenated UTF-8 bytes. Stable across
    runs, platforms and versions.
    """
    arr = _string_array(values)
    n = len(arr)
    out = np.empty(n, np.uint64)
    if n == 0:
        return out
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int64, n + 1, arr.offset * 8)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    row = 0
    while row < n:
        # strings whose bytes fit one chunk (at least one string)
        end = int(np.searchsorted(offsets, offsets[row] + _HASH_CHUNK, side="right")) - 1
        end = min(max(end, row + 1), n)
        lo, hi = int(offsets[row]), int(offsets[end])
        pw, inv = _POWERS.get(hi - lo + 1)
        v = data[lo:hi].astype(np.uint64)
        v += np.uint64(1)
        v *= pw[: hi - lo]
        prefix = np.zeros(hi - lo + 1, np.uint64)
        np.cumsum(v, out=prefix[1:])
        st = offsets[row:end] - lo
        en = offsets[row + 1 : end + 1] - lo
        h = (prefix[en] - prefix[st]) * inv[st]
        h ^= (en - st).astype(np.uint64) * _C_LEN
        h += _C_SEED
        out[row:end] = _mix64(h)
        row = end
    return out


# --- map step: texts -> tokens -> shingles -> signatures -> band keys -------------------------
@dataclass
class Tokens:
    """Word hashes of a batch of texts: ``words`` (T,) uint64 in text order, ``counts`` (n,)."""

    words: np.ndarray
    counts: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.counts) - self.counts


def tokenize(texts: pa.Array | pa.ChunkedArray) -> Tokens:
    """Lowercase, split on Unicode whitespace, hash each word (nulls are empty texts)."""
    arr = _string_array(texts)
    n = len(arr)
    # Trim before splitting: Arrow's utf8_split_whitespace (seen in pyarrow 26.0.1)
    # decodes one code point past the end of a string that ends in whitespace. Inside
    # the data buffer that is the next string's first byte (harmless), but after the
    # last string it is uninitialised memory: when that byte is not a valid UTF-8
    # start, the kernel gives up on the trailing run and keeps it in the last word
    # ("   " -> ["", " "], "word " -> ["word "]), depending on what the allocator left
    # there. Trimming uses the same whitespace predicate, so no string ends in
    # whitespace and the split never reads past a string; the words are unchanged.
    split = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(pc.utf8_lower(arr)))
    per_doc = np.asarray(pc.list_value_length(split).to_numpy(zero_copy_only=False), np.int64)
    flat = split.flatten()
    # Arrow splits "" into [""]; drop such empty strings
    keep = np.asarray(pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False))
    doc = np.repeat(np.arange(n), per_doc)
    if not keep.all():
        flat = flat.filter(pa.array(keep))
        doc = doc[keep]
    counts = np.bincount(doc, minlength=n).astype(np.int64)
    if len(flat) == 0:
        return Tokens(np.zeros(0, np.uint64), counts)
    encoded = pc.dictionary_encode(flat)
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    words = hash_strings(encoded.dictionary)[indices]
    return Tokens(words, counts)


def text_hashes(tokens: Tokens) -> np.ndarray:
    """A 64-bit hash per text of its word sequence: equal iff the texts are equal after
    lowercasing and collapsing whitespace (up to hash collisions).

    ``mix64(sum_j w_j BASE^j + len * C)`` over the text's word hashes ``w_j``."""
    t = len(tokens.words)
    starts = tokens.starts
    pos = np.arange(t) - np.repeat(starts, tokens.counts)
    pw, _ = _POWERS.get(int(tokens.counts.max()) + 1 if len(tokens.counts) else 1)
    vals = tokens.words * pw[pos]
    prefix = np.zeros(t + 1, np.uint64)
    np.cumsum(vals, out=prefix[1:])
    h = prefix[starts + tokens.counts] - prefix[starts]
    h += tokens.counts.astype(np.uint64) * _C_LEN + _C_SEED
    return _mix64(h)


def shingles(tokens: Tokens, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of each text's word ``ngram``-grams, in text order.

    Returns ``(x, counts)``: ``x`` (S,) uint32 and the shingles per text (n,). A text
    with fewer than ``ngram`` (but at least one) words is one shingle of all its words.
    """
    w, counts = tokens.words, tokens.counts
    t = len(w)
    scounts = np.where(counts >= ngram, counts - ngram + 1, (counts > 0).astype(np.int64))
    if ngram == 1:
        acc = w * _NGRAM_MULT[0]
    else:
        # window j combines words j .. j+ngram-1 of its own text (fewer at a text's end);
        # keep the full windows, and the first (only) window of a text shorter than ngram
        pos = np.arange(t) - np.repeat(tokens.starts, counts)
        left = np.repeat(counts, counts) - pos  # words from j to the text's end
        acc = w * _NGRAM_MULT[0]
        for k in range(1, ngram):
            part = np.zeros(t, np.uint64)
            part[: t - k] = w[k:] * _NGRAM_MULT[k]
            part[left <= k] = 0
            acc += part
        keep = (left >= ngram) | ((pos == 0) & (left < ngram))
        acc = acc[keep]
    x = (_mix64(acc) >> np.uint64(32)).astype(np.uint32)
    return x, scounts


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: ``num_perm`` odd multipliers and xor keys of ``((x ^ b) a) mod 2^32``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def _blocks(counts: np.ndarray, width: int) -> Iterator[tuple[np.ndarray, int]]:
    """Groups of texts (indices) of similar shingle counts whose padded (docs, L, width)
    block stays within ``_BLOCK`` elements; L is the group's largest count."""
    limit = max(1, _BLOCK // width)
    order = np.argsort(counts, kind="stable")
    order = order[counts[order] > 0]
    sorted_counts = counts[order]
    i, m = 0, len(order)
    while i < m:
        guess = min(i + max(1, limit // int(sorted_counts[i])), m)
        length = int(sorted_counts[guess - 1])
        j = min(i + max(1, limit // length), m)
        yield order[i:j], int(sorted_counts[j - 1])
        i = j


def signatures(
    x: np.ndarray,
    counts: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    threads: int = 1,
) -> np.ndarray:
    """MinHash signatures ``(n, num_perm)`` uint32 of texts with shingle hashes ``x``.

    Texts without shingles get all entries 2^32 - 1. Each block gathers its texts'
    shingles into a (docs, L) matrix, padding a shorter text by repeating its last
    shingle (a repeat does not change a minimum), and takes the minimum over L of the
    (docs, L, num_perm) permuted values.
    """
    n, k = len(counts), len(a)
    sig = np.full((n, k), _EMPTY, np.uint32)
    starts = np.cumsum(counts) - counts
    limit = max(1, _BLOCK // k)

    def run(block: tuple[np.ndarray, int]) -> None:
        docs, length = block
        if length > limit:  # one very long text: running minimum over slices
            (d,) = docs
            s0, c = int(starts[d]), int(counts[d])
            for lo in range(0, c, limit):
                part = x[s0 + lo : s0 + min(c, lo + limit)]
                h = part[:, None] ^ b
                h *= a
                np.minimum(sig[d], h.min(axis=0), out=sig[d])
            return
        cols = np.minimum(np.arange(length), (counts[docs] - 1)[:, None])
        xs = x[starts[docs][:, None] + cols]  # (docs, L)
        h = xs[:, :, None] ^ b  # (docs, L, K)
        h *= a  # uint32 arithmetic wraps mod 2^32
        sig[docs] = h.min(axis=1)

    blocks = _blocks(counts, k)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(run, blocks):
                pass
    else:
        for block in blocks:
            run(block)
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``(n, bands)`` uint64 keys: a hash of each band's ``rows`` signature values."""
    n = len(sig)
    mult = np.random.default_rng(0xBA4D).integers(1, 1 << 63, rows, dtype=np.uint64)
    mult = mult * np.uint64(2) + np.uint64(1)
    out = np.empty((n, bands), np.uint64)
    for j in range(bands):
        block = sig[:, j * rows : (j + 1) * rows].astype(np.uint64)
        block *= mult
        key = block.sum(axis=1, dtype=np.uint64)
        key += np.uint64(((j + 1) * int(_C_POS)) & _M64)
        out[:, j] = _mix64(key)
    return out


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal signature entries (last axis): the MinHash estimate of Jaccard."""
    return np.asarray((sig_a == sig_b).mean(axis=-1))


@dataclass
class Signed:
    """One batch after the map step: words and shingles per text, normalised-text
    hashes, signatures ``(n, num_perm)`` uint32 and band keys ``(n, bands)`` uint64."""

    n_tokens: np.ndarray
    n_shingles: np.ndarray
    text_hash: np.ndarray
    sig: np.ndarray
    keys: np.ndarray


def sign(
    texts: pa.Array | pa.ChunkedArray,
    params: MinHashParams,
    perms: tuple[np.ndarray, np.ndarray] | None = None,
    threads: int = 1,
) -> Signed:
    """The map step for one batch of texts (pure: safe to run in several threads at once).

    ``perms`` are the ``(a, b)`` of :func:`permutations` (drawn from ``params`` when not
    given); ``threads`` sign blocks of one slice at once. Works on slices of
    ``_SIGN_ROWS`` texts so that the word-level temporaries stay small whatever the
    batch size."""
    a, b = perms if perms is not None else permutations(params.num_perm, params.seed)
    bands, rows = params.band_rows
    parts = []
    for lo in range(0, len(texts), _SIGN_ROWS):
        tokens = tokenize(texts.slice(lo, _SIGN_ROWS))
        x, scounts = shingles(tokens, params.ngram)
        sig = signatures(x, scounts, a, b, threads)
        parts.append(
            Signed(tokens.counts, scounts, text_hashes(tokens), sig, band_keys(sig, bands, rows))
        )
    if len(parts) == 1:
        return parts[0]
    k = params.num_perm
    return Signed(
        concat([p.n_tokens for p in parts], np.int64),
        concat([p.n_shingles for p in parts], np.int64),
        concat([p.text_hash for p in parts], np.uint64),
        np.concatenate([p.sig for p in parts]) if parts else np.zeros((0, k), np.uint32),
        np.concatenate([p.keys for p in parts]) if parts else np.zeros((0, bands), np.uint64),
    )


def concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """``np.concatenate(parts)``, or an empty ``dtype`` array when there are none."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


__all__ = [
    "MinHashParams",
    "Signed",
    "Tokens",
    "band_keys",
    "candidate_probability",
    "estimate_jaccard",
    "hash_strings",
    "mix64",
    "optimal_bands",
    "permutations",
    "shingles",
    "sign",
    "signatures",
    "text_hashes",
    "tokenize",
]
