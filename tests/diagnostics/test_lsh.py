"""The LSH reduce step and the streaming engine: agreement with datasketch's
``MinHashLSH`` on the same texts, groups and empty texts, star-linked big buckets,
results independent of batching and threads (and temporary files removed), and recall
on planted near copies against the promise of the S-curve.

Golden values are independent: exact Jaccard of Python sets, the closed form
``1-(1-s^r)^b`` (candidate probability) with the binomial law of the estimate, and
datasketch (the peer library) run on the same texts with the same parameters.
"""

from __future__ import annotations

import gc
import math
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasketch import MinHash, MinHashLSH
from minhash_refs import jaccard, pairs_with_jaccard, sign_texts
from scipy.stats import binom

from prefkit.diagnostics.lsh import NearDupIndex, near_duplicates
from prefkit.diagnostics.minhash import MinHashParams, candidate_probability, estimate_jaccard


# --- against datasketch ---------------------------------------------------------------------------
def test_agrees_with_datasketch_on_the_same_texts() -> None:
    """Same num_perm, shingles (word sets) and (b, r): datasketch's MinHash estimates and
    ours are both unbiased for the exact Jaccard (mean error within 4 standard errors),
    and the two LSH indexes find the same pairs up to the randomness of the permutations:
    all pairs with J >= 0.95, none with J <= 0.5, and candidate rates within 4 standard
    errors of each other in between."""
    rng = random.Random(2)
    targets = [0.3] * 100 + [0.5] * 100 + [0.8] * 200 + [0.95] * 100 + [1.0] * 50
    pairs = pairs_with_jaccard(targets, 40, rng)
    texts = [t for a, b, _ in pairs for t in (a, b)]
    true = np.array([j for _, _, j in pairs])
    p = MinHashParams()
    bands, rows = p.band_rows

    ours = near_duplicates([(pa.array([str(i) for i in range(len(texts))]), pa.array(texts))], p)
    sig, _ = sign_texts(texts, p)
    est_ours = estimate_jaccard(sig[0::2], sig[1::2])

    mins = MinHash.bulk(
        [[w.encode() for w in set(t.lower().split())] for t in texts], num_perm=128, seed=1
    )
    est_ds = np.array([mins[2 * i].jaccard(mins[2 * i + 1]) for i in range(len(pairs))])
    se = np.sqrt(true * (1 - true) / p.num_perm)
    n = len(true)
    for est in (est_ours, est_ds):
        assert abs(float(np.mean(est - true))) < 4 * float(np.sqrt(np.sum(se**2))) / n + 1e-9

    lsh = MinHashLSH(threshold=p.threshold, num_perm=p.num_perm, params=(bands, rows))
    for i, m in enumerate(mins):
        lsh.insert(i, m)
    ds_cand = np.array([(2 * i + 1) in lsh.query(mins[2 * i]) for i in range(n)])
    keys = sign_texts(texts, p)[1]
    ours_cand = (keys[0::2] == keys[1::2]).any(axis=1)
    cand_pairs = set(zip(ours.left.tolist(), ours.right.tolist(), strict=True))
    for name, cand in (("ours", ours_cand), ("datasketch", ds_cand)):
        assert cand[true >= 0.95].all(), name
        assert not cand[true <= 0.5].any(), name
    mid = (true > 0.5) & (true < 0.95)
    pc = candidate_probability(true[mid], bands, rows)
    tol = 4 * math.sqrt(2 * float(np.sum(pc * (1 - pc)))) / mid.sum()
    assert abs(ours_cand[mid].mean() - ds_cand[mid].mean()) < tol
    # verified pairs are candidates with estimate >= threshold
    verified = {(2 * i, 2 * i + 1) for i in range(n) if ours_cand[i] and est_ours[i] >= 0.8}
    assert verified == {pr for pr in cand_pairs if pr[1] == pr[0] + 1 and pr[0] % 2 == 0}


# --- the engine end to end ------------------------------------------------------------------------
def test_near_duplicates_groups_copies_and_leaves_empty_texts_alone() -> None:
    base = " ".join(f"word{i}" for i in range(40))
    texts = [
        base,  # 0
        base.upper(),  # 1: exact up to case
        base.replace("word7", "other"),  # 2: near, J = 39/41: P(candidate) = 0.9987
        "completely different words about cooking pasta with tomato sauce",  # 3
        "",  # 4
        "   ",  # 5: empty too
        "short",  # 6: one word
        "SHORT",  # 7
    ]
    ids = pa.array([f"t{i}" for i in range(len(texts))])
    res = near_duplicates(
        [(ids.slice(0, 3), pa.array(texts[:3])), (ids.slice(3), pa.array(texts[3:]))]
    )
    pairs = {
        (a, b)
        for a, b in zip(
            res.pairs_table()["id_a"].to_pylist(),
            res.pairs_table()["id_b"].to_pylist(),
            strict=True,
        )
    }
    assert {("t0", "t1"), ("t6", "t7")} <= pairs
    assert all("t4" not in p and "t5" not in p and "t3" not in p for p in pairs)
    assert res.labels[0] == res.labels[1] == res.labels[2]
    assert res.labels[3] != res.labels[0] and res.labels[4] != res.labels[5]
    assert res.n_tokens.tolist() == [40, 40, 40, 9, 0, 0, 1, 1]
    assert res.text_hash[0] == res.text_hash[1] != res.text_hash[2]
    assert res.group_sizes().tolist() == [3, 3, 3, 1, 1, 1, 2, 2]


def test_big_buckets_are_linked_as_a_star() -> None:
    texts = ["the same stock answer for everyone"] * 300 + ["something else entirely here"]
    ids = pa.array([str(i) for i in range(len(texts))])
    res = near_duplicates([(ids, pa.array(texts))], MinHashParams(max_bucket=64))
    assert res.n_candidates == 299  # not 300 * 299 / 2
    assert (res.group_sizes()[:300] == 300).all() and res.group_sizes()[300] == 1
    small = near_duplicates([(ids.slice(0, 20), pa.array(texts[:20]))])
    assert small.n_candidates == 20 * 19 // 2  # all pairs below max_bucket


def test_batching_and_threads_do_not_change_results(tmp_path: Path) -> None:
    rng = random.Random(3)
    pairs = pairs_with_jaccard([rng.uniform(0.6, 1.0) for _ in range(300)], 30, rng, vocab=5000)
    texts = pa.array([t for a, b, _ in pairs for t in (a, b)])
    ids = pa.array([str(i) for i in range(len(texts))])
    one = near_duplicates([(ids, texts)], threads=1)
    many = near_duplicates(
        [(ids.slice(i, 97), texts.slice(i, 97)) for i in range(0, len(texts), 97)], threads=3
    )
    assert one.left.tolist() == many.left.tolist() and one.right.tolist() == many.right.tolist()
    assert one.jaccard.tolist() == many.jaccard.tolist()
    with NearDupIndex(workdir=str(tmp_path)) as index:
        index.add(ids, texts)
        assert len(list(index._dir.iterdir())) == 1 + index.bands
        again = index.finish()
    assert again.left.tolist() == one.left.tolist()
    assert not list(tmp_path.iterdir())  # temporary files removed
    forgotten = NearDupIndex(workdir=str(tmp_path))
    forgotten.add(ids, texts)
    del forgotten  # never closed: removed when collected
    gc.collect()
    assert not list(tmp_path.iterdir())


def test_planted_near_copies_recovered_as_promised() -> None:
    """Synth near copies (3 nouns replaced): recall over the planted pairs matches the
    promise of the parameters, sum over pairs of P(candidate) * P(estimate >= t) given
    each pair's exact Jaccard (a lower bound: both events rise with the same matches),
    within 4 binomial standard errors (the 314-word synth vocabulary makes the pairs
    share each permutation's luck); every verified pair is a planted copy or has an
    exact Jaccard within 0.1 of the threshold."""
    from prefkit.diagnostics.context import Context
    from prefkit.synth import simulate

    ds = simulate(kind="pairwise", n_prompts=3000, near_duplicate_rate=0.1, seed=5)
    ctx = Context(ds)
    texts = {}
    for ids, t in ctx.texts("responses"):
        texts.update(zip(ids.to_pylist(), t.to_pylist(), strict=True))
    res = near_duplicates(ctx.texts("responses"))
    r = ds.responses
    planted = [
        (orig, copy)
        for copy, orig in zip(
            r["response_id"].to_pylist(), r["duplicate_of"].to_pylist(), strict=True
        )
        if orig
    ]
    found = {
        tuple(sorted(p))
        for p in zip(
            res.pairs_table()["id_a"].to_pylist(),
            res.pairs_table()["id_b"].to_pylist(),
            strict=True,
        )
    }
    p = res.params
    true = np.array([jaccard(texts[a], texts[b]) for a, b in planted])
    hit = np.array([tuple(sorted(pr)) in found for pr in planted])
    need = math.ceil(p.threshold * p.num_perm - 1e-9)
    promise = candidate_probability(true, res.bands, res.rows) * binom.sf(
        need - 1, p.num_perm, true
    )
    assert len(planted) == 600
    assert hit.sum() >= promise.sum() - 4 * math.sqrt(float(np.sum(promise * (1 - promise))))
    assert hit[true >= 0.95].mean() > 0.97
    planted_set = {tuple(sorted(pr)) for pr in planted}
    for a, b in found - planted_set:
        assert jaccard(texts[a], texts[b]) >= p.threshold - 0.1
