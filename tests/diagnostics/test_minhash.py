"""The MinHash map step: hashing definitions, shingles, the estimator's binomial
tolerance, the LSH S-curve and band collisions, and the parameters' agreement with
datasketch (the reduce step is tested in test_lsh.py).

Golden values are independent: pure-Python re-implementations of the documented hash
definitions, exact Jaccard of Python sets, the closed forms ``J(1-J)/K`` (variance of
the estimate) and ``1-(1-s^r)^b`` (candidate probability), and datasketch (the peer
library) for the band optimisation.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datasketch.lsh import _optimal_param
from minhash_refs import jaccard, ngrams, pairs_with_jaccard, sign_texts

from prefkit.diagnostics import minhash as mh
from prefkit.diagnostics.minhash import (
    MinHashParams,
    candidate_probability,
    estimate_jaccard,
    hash_strings,
    optimal_bands,
    permutations,
    shingles,
    sign,
    text_hashes,
    tokenize,
)
from prefkit.errors import PrefkitError

M64 = (1 << 64) - 1


# --- pure-Python references ----------------------------------------------------------------------
def _mix64(h: int) -> int:
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & M64
    return h ^ (h >> 31)


def _py_hash(s: str) -> int:
    """hash_strings as documented: mix64(sum (byte+1) BASE^j xor len*C + SEED)."""
    data = s.encode()
    h = sum((b + 1) * pow(mh._BASE, j, 1 << 64) for j, b in enumerate(data)) & M64
    h ^= (len(data) * int(mh._C_LEN)) & M64
    return _mix64((h + int(mh._C_SEED)) & M64)


# --- parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.5, 64), (0.9, 256), (0.7, 32)])
def test_optimal_bands_match_datasketch(threshold: float, num_perm: int) -> None:
    assert optimal_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_default_bands_and_params() -> None:
    p = MinHashParams()
    assert (p.num_perm, p.ngram, p.threshold) == (128, 1, 0.8)
    assert p.band_rows == (9, 13)
    assert MinHashParams(bands=16, rows=8).band_rows == (16, 8)
    for bad in (
        {"num_perm": 1},
        {"ngram": 0},
        {"threshold": 0.0},
        {"bands": 4},
        {"bands": 20, "rows": 10},
        {"max_bucket": 1},
    ):
        with pytest.raises(PrefkitError):
            MinHashParams(**bad)  # type: ignore[arg-type]


def test_candidate_probability_closed_form() -> None:
    assert candidate_probability(0.8, 9, 13) == pytest.approx(1 - (1 - 0.8**13) ** 9)
    assert candidate_probability(np.array([0.0, 1.0]), 9, 13).tolist() == [0.0, 1.0]


# --- hashing ------------------------------------------------------------------------------------
def test_hash_strings_follows_its_definition() -> None:
    words = ["", "a", "hello", "Hello", "héllo wörld", "x" * 5000, "日本語"]
    got = hash_strings(pa.array(words))
    assert got.tolist() == [_py_hash(w) for w in words]
    # nulls hash like "", slices and large_string give the same values
    assert hash_strings(pa.array([None, "a"])).tolist() == [_py_hash(""), _py_hash("a")]
    arr = pa.array(words, pa.large_string())
    assert hash_strings(arr.slice(2, 3)).tolist() == got[2:5].tolist()
    chunked = pa.chunked_array([pa.array(words[:3]), pa.array(words[3:])])
    assert hash_strings(chunked).tolist() == got.tolist()


def test_hash_strings_no_collisions_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    words = [f"word{i}" for i in range(200_000)]
    h = hash_strings(pa.array(words))
    assert len(np.unique(h)) == len(words)
    # strings split across hashing chunks hash the same
    monkeypatch.setattr(mh, "_HASH_CHUNK", 7)
    assert hash_strings(pa.array(words[:1000])).tolist() == h[:1000].tolist()


def test_hash_strings_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The power tables grow on demand while worker threads hash (the pipelined map
    step): a fresh table raced by threads asking for different sizes stays correct."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(mh, "_POWERS", mh._Powers())
    arrays = [pa.array(["x" * (1000 * k + 7)]) for k in range(1, 40)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(hash_strings, arrays))
    assert [g.tolist() for g in got] == [[_py_hash(a[0].as_py())] for a in arrays]


def test_tokenize_is_lowercased_unicode_whitespace_split() -> None:
    texts = ["Hello  World", "  tab\there\nnewline ", "", None, "nbsp\u00a0split\u3000ideo", "   "]
    tokens = tokenize(pa.array(texts))
    expected = [(t or "").lower().split() for t in texts]
    assert tokens.counts.tolist() == [len(e) for e in expected]
    flat = [w for e in expected for w in e]
    assert tokens.words.tolist() == [_py_hash(w) for w in flat]


def test_tokenize_trailing_whitespace_of_last_text_on_a_dirty_pool() -> None:
    """Regression: Arrow's utf8_split_whitespace decodes one byte past a string that
    ends in whitespace. After the last string of a batch that byte is whatever the
    memory pool left there, and one that is not a UTF-8 start made the kernel keep the
    trailing run ("   " -> one word " ", "end " -> "end "): the intermittent failures
    of the tests above in full-suite runs. Fill freed pool blocks of small sizes with
    UTF-8 continuation bytes, then tokenize batches whose last text ends in whitespace
    (without the fix about a third of the rounds failed with the mimalloc and system
    pools): the words must not depend on the garbage."""
    head = ["Hello  World", "  tab\there\nnewline ", "", None]
    lasts = ["   ", "  ", " ", "end ", "tail\u3000", "x\u00a0 \n", "\t"]
    for i in range(300):
        junk = [
            pc.add(pa.array([0x80 + i % 64] * size, pa.uint8()), 0) for size in range(8, 520, 8)
        ]
        del junk
        last = lasts[i % len(lasts)]
        texts = [*head, last]
        tokens = tokenize(pa.array(texts))
        expected = [(t or "").lower().split() for t in texts]
        assert tokens.counts.tolist() == [len(e) for e in expected], (i, last)
        assert tokens.words.tolist() == [_py_hash(w) for e in expected for w in e], (i, last)
        alone = text_hashes(tokenize(pa.array([" ".join(expected[-1])])))
        assert text_hashes(tokens)[-1] == alone[0], (i, last)


def test_text_hashes_equal_iff_same_words() -> None:
    texts = ["Hello world", "hello   WORLD\n", "world hello", "hello world!", "", "  "]
    h = text_hashes(tokenize(pa.array(texts))).tolist()
    assert h[0] == h[1]
    assert len({h[0], h[2], h[3], h[4]}) == 4
    assert h[4] == h[5]  # both empty


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shingles_match_python_ngrams(n: int) -> None:
    rng = random.Random(n)
    vocab = [f"v{i}" for i in range(12)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(0, 9))) for _ in range(300)]
    x, counts = shingles(tokenize(pa.array(texts)), n)
    starts = np.cumsum(counts) - counts
    sets = [set(x[s : s + c].tolist()) for s, c in zip(starts, counts, strict=True)]
    for i, t in enumerate(texts):
        words = t.split()
        assert counts[i] == (max(len(words) - n + 1, 1) if words else 0)
        assert len(sets[i]) == len(ngrams(t, n))
    for _ in range(500):
        i, j = rng.randrange(300), rng.randrange(300)
        if texts[i].split() and texts[j].split():
            union = len(sets[i] | sets[j])
            assert len(sets[i] & sets[j]) / union == pytest.approx(jaccard(texts[i], texts[j], n))


# --- the estimator and the banding ----------------------------------------------------------------
def test_estimate_within_binomial_tolerance() -> None:
    """(est - J) / sqrt(J (1 - J) / K) is standard normal when the permutations behave
    like independent min-wise ones: mean ~ 0 (tolerance 4 / sqrt(n)), std ~ 1 (+-15 %
    for n = 400), no |z| above 4.5 (probability ~ 3e-3 over 400 draws)."""
    rng = random.Random(0)
    targets = [rng.uniform(0.2, 0.95) for _ in range(400)]
    pairs = pairs_with_jaccard(targets, 60, rng)
    p = MinHashParams()
    sig, _ = sign_texts([t for a, b, _ in pairs for t in (a, b)], p)
    est = estimate_jaccard(sig[0::2], sig[1::2])
    true = np.array([j for _, _, j in pairs])
    z = (est - true) / np.sqrt(true * (1 - true) / p.num_perm)
    assert abs(z.mean()) < 4 / math.sqrt(len(z))
    assert 0.85 < z.std() < 1.15
    assert np.abs(z).max() < 4.5


def test_band_collisions_follow_s_to_the_r() -> None:
    """Per band, P(all r rows agree) = s^r; per pair, P(candidate) = 1 - (1 - s^r)^b.
    Tolerance: 4 binomial standard errors of the observed rate."""
    rng = random.Random(1)
    p = MinHashParams()
    bands, rows = p.band_rows
    for s in (0.8, 0.9):
        pairs = pairs_with_jaccard([s] * 1500, 50, rng)
        true = np.array([j for _, _, j in pairs])
        _, keys = sign_texts([t for a, b, _ in pairs for t in (a, b)], p)
        same = keys[0::2] == keys[1::2]  # (pairs, bands)
        expect_band = float(np.mean(true**rows))
        n = same.size
        assert abs(same.mean() - expect_band) < 4 * math.sqrt(expect_band * (1 - expect_band) / n)
        cand = same.any(axis=1)
        expect = float(np.mean(candidate_probability(true, bands, rows)))
        assert abs(cand.mean() - expect) < 4 * math.sqrt(expect * (1 - expect) / len(cand))


# --- the map step on a batch --------------------------------------------------------------------
def test_sign_matches_its_parts_and_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sign`` gives what its steps give on the whole batch, whatever the slices it
    works on, with the permutations drawn from the params or passed in."""
    rng = random.Random(4)
    texts = [t for a, b, _ in pairs_with_jaccard([0.5, 0.8, 0.9] * 20, 30, rng) for t in (a, b)]
    texts += ["", "One", "one  TWO"]
    p = MinHashParams(num_perm=64, ngram=2, seed=7)
    sig, keys = sign_texts(texts, p)
    tokens = tokenize(pa.array(texts))
    whole = sign(pa.array(texts), p)
    assert (whole.sig == sig).all() and (whole.keys == keys).all()
    assert whole.n_tokens.tolist() == tokens.counts.tolist()
    assert whole.n_shingles.tolist() == shingles(tokens, 2)[1].tolist()
    assert whole.text_hash.tolist() == text_hashes(tokens).tolist()
    monkeypatch.setattr(mh, "_SIGN_ROWS", 7)
    sliced = sign(pa.array(texts), p, permutations(64, 7), threads=2)
    for name in ("n_tokens", "n_shingles", "text_hash", "sig", "keys"):
        assert (getattr(sliced, name) == getattr(whole, name)).all(), name
    empty = sign(pa.array([], pa.string()), p)
    assert empty.sig.shape == (0, 64) and empty.keys.shape == (0, p.band_rows[0])
