"""Near-duplicate detection: prefkit's MinHash/LSH engine against datasketch, side by side.

Texts (``--source``)
    zipf (default): ``--n`` texts of ~60 words (log-normal lengths) drawn from a
    50,000-word vocabulary with Zipf(1.1) frequencies, like natural text; 10 % of them
    are near copies of another text with 1 to ``--edits`` (8) words replaced by fresh
    draws, 2 % exact copies.
    synth: the responses of a ``prefkit.synth`` dataset with ``near_duplicate_rate``
    0.10 (``--edits`` words replaced, 3 by default there) and ``duplicate_rate`` 0.02.
    Its texts share a 314-word vocabulary, so every pair depends on the same few
    permutation minima and recall moves by a few points from one permutation seed to
    the next, in both engines.
Both engines get the same parameters: word-set shingles (lowercase, split on whitespace:
``ngram=1``), 128 permutations, threshold 0.8 and the same bands x rows (datasketch's own
optimum for them, 9 x 13).

Truth and scores
    true pairs: planted (original, copy) pairs whose exact Jaccard of word sets is >=
    the threshold. recall = true pairs reported / true pairs. precision = reported pairs
    whose exact Jaccard is >= the threshold / reported pairs (exact Jaccard computed with
    Python sets for every reported pair, planted or not).

Methods
    datasketch         MinHash.bulk + MinHashLSH(threshold, num_perm, params=(b, r)),
                       streaming dedup: query each text, then insert it; every candidate
                       is reported (what a bare MinHashLSH gives).
    datasketch+verify  the same, keeping candidates with MinHash.jaccard >= threshold.
    prefkit            near_duplicates(...): candidates verified by the signature
                       estimate (the engine's default); all CPUs (``-1thread``: one).
    prefkit-noverify   every LSH candidate, as datasketch.

Each method runs ``--repeats`` times in a fresh subprocess (its peak RSS is its own; the
texts are loaded before the clock starts and are part of the RSS); repeat k uses the
permutation seed 1 + k in both engines. The table shows the median time, items/s, the
speed-up against datasketch, and recall/precision averaged over the repeats.

    python benchmarks/near_dup_vs_datasketch.py --n 200000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

METHODS = ("datasketch", "datasketch+verify", "prefkit-1thread", "prefkit", "prefkit-noverify")
NUM_PERM = 128
THRESHOLD = 0.8
SEED = 1


# --- data ------------------------------------------------------------------------------------
def build(root: Path, n: int, edits: int | None, seed: int, source: str) -> dict[str, float]:
    """Write ``texts.parquet`` (id, text) and ``planted.npy`` ((orig, copy) row pairs)."""
    if source == "synth":
        ids, texts, planted = _synth_texts(n, edits or 3, seed)
    else:
        ids, texts, planted = _zipf_texts(n, edits or 8, seed)
    pq.write_table(pa.table({"id": ids, "text": texts}), root / "texts.parquet")
    np.save(root / "planted.npy", planted)
    return {"texts": len(ids), "planted_pairs": len(planted)}


def _synth_texts(n: int, edits: int, seed: int) -> tuple[pa.Array, pa.Array, np.ndarray]:
    from prefkit.synth import simulate
    from prefkit.views import messages_text

    ds = simulate(
        kind="pairwise",
        n_prompts=n // 2,
        near_duplicate_rate=0.10,
        duplicate_rate=0.02,
        near_duplicate_edits=edits,
        seed=seed,
    )
    r = ds.responses
    ids = r["response_id"].combine_chunks()
    row = {rid: i for i, rid in enumerate(ids.to_pylist())}
    planted = [(row[o], i) for i, o in enumerate(r["duplicate_of"].to_pylist()) if o is not None]
    texts = messages_text(r["messages"].combine_chunks())
    return ids, texts, np.array(planted, dtype=np.int64).reshape(-1, 2)


def _zipf_texts(n: int, edits: int, seed: int) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Zipf-vocabulary texts with planted near copies (1..edits words replaced) and exact
    copies, shuffled; returns ids, texts and the planted (original, copy) rows."""
    rng = np.random.default_rng(seed)
    vocab = 50_000
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    n_near, n_exact = int(0.10 * n), int(0.02 * n)
    n_base = n - n_near - n_exact
    lengths = np.maximum(3, rng.lognormal(np.log(60), 0.5, n_base).astype(np.int64))
    flat = rng.choice(vocab, size=int(lengths.sum()), p=p)
    docs = np.split(flat, np.cumsum(lengths)[:-1])
    sources = rng.choice(n_base, n_near + n_exact, replace=False)
    for k, src in enumerate(sources.tolist()):
        doc = docs[src].copy()
        if k < n_near:
            m = min(len(doc), int(rng.integers(1, edits + 1)))
            doc[rng.choice(len(doc), m, replace=False)] = rng.choice(vocab, m, p=p)
        docs.append(doc)
    order = rng.permutation(len(docs))  # position of each doc in the output
    words = np.array([f"w{i}" for i in range(vocab)])
    texts = [""] * len(docs)
    for i, doc in enumerate(docs):
        texts[order[i]] = " ".join(words[doc].tolist())
    planted = np.stack([order[sources], order[n_base + np.arange(len(sources))]], axis=1)
    ids = pa.array([f"t{i:07d}" for i in range(len(docs))])
    return ids, pa.array(texts), planted.astype(np.int64)


def _sets(texts: list[str]) -> list[set[str]]:
    return [set(t.lower().split()) for t in texts]


def exact_jaccard(sets: list[set[str]], pairs: np.ndarray) -> np.ndarray:
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs.tolist()):
        a, b = sets[i], sets[j]
        union = len(a | b)
        out[k] = len(a & b) / union if union else 1.0
    return out


# --- one method in a worker process ------------------------------------------------------------
def worker(method: str, root: Path, out: Path, seed: int) -> None:
    import resource

    from prefkit.diagnostics.lsh import near_duplicates
    from prefkit.diagnostics.minhash import MinHashParams

    table = pq.read_table(root / "texts.parquet")
    params = MinHashParams(num_perm=NUM_PERM, threshold=THRESHOLD, ngram=1, seed=seed)
    bands, rows = params.band_rows
    if method.startswith("datasketch"):
        texts = table["text"].to_pylist()
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        pairs = _datasketch(texts, bands, rows, method.endswith("verify"), seed)
    else:
        ids = table["id"].combine_chunks()
        texts_arr = table["text"].combine_chunks()
        step = 65_536
        batches = [(ids.slice(i, step), texts_arr.slice(i, step)) for i in range(0, len(ids), step)]
        if method == "prefkit-noverify":
            params = MinHashParams(
                num_perm=NUM_PERM, threshold=THRESHOLD, ngram=1, seed=seed, verify=False
            )
        threads = 1 if method == "prefkit-1thread" else None
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        res = near_duplicates(batches, params, threads=threads)
        pairs = np.stack([res.left, res.right], axis=1)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(out / f"{method}.npy", np.asarray(pairs, np.int64).reshape(-1, 2))
    (out / f"{method}.json").write_text(
        json.dumps({"seconds": seconds, "peak_mib": peak, "baseline_mib": baseline})
    )


def _datasketch(texts: list[str], bands: int, rows: int, verify: bool, seed: int) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    shingles = [[w.encode("utf8") for w in set(t.lower().split())] for t in texts]
    mins = MinHash.bulk(shingles, num_perm=NUM_PERM, seed=seed)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(bands, rows))
    pairs = []
    for i, m in enumerate(mins):
        if not shingles[i]:  # an empty text has no shingles (prefkit skips it too)
            continue
        for j in lsh.query(m):
            if not verify or m.jaccard(mins[j]) >= THRESHOLD:
                pairs.append((j, i))
        lsh.insert(i, m)
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


# --- driver --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=200_000, help="texts (responses)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", choices=("zipf", "synth"), default="zipf")
    ap.add_argument(
        "--edits", type=int, default=None, help="words replaced in a near copy (zipf: up to 8)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the texts")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, Path(args.root), Path(args.out), args.seed)
        return

    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        info = build(root, args.n, args.edits, args.seed, args.source)
        print(
            f"{info['texts']:,} {args.source} texts, {info['planted_pairs']:,} planted copies "
            f"(built in {time.perf_counter() - t0:.1f}s); num_perm={NUM_PERM}, "
            f"threshold={THRESHOLD}, word-set shingles, {os.cpu_count()} CPUs",
            flush=True,
        )
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
        for rep in range(args.repeats):
            for method in methods:
                out = root / f"run{rep}"
                out.mkdir(exist_ok=True)
                # repeat k uses permutation seed SEED + k in both engines
                cmd = [sys.executable, __file__, "--worker", method, "--root", str(root)]
                cmd += ["--out", str(out), "--seed", str(SEED + rep)]
                subprocess.run(cmd, check=True)
                runs[method].append(json.loads((out / f"{method}.json").read_text()))
                print(
                    f"  repeat {rep + 1} {method}: {runs[method][-1]['seconds']:.2f}s", flush=True
                )
        report(root, info, methods, runs)


def report(
    root: Path, info: dict[str, float], methods: list[str], runs: dict[str, list[dict[str, float]]]
) -> None:
    from prefkit.diagnostics.minhash import MinHashParams, candidate_probability

    texts = pq.read_table(root / "texts.parquet")["text"].to_pylist()
    sets = _sets(texts)
    planted = np.load(root / "planted.npy")
    planted_j = exact_jaccard(sets, planted)
    true_j = planted_j[planted_j >= THRESHOLD]
    truth = {tuple(sorted(p)) for p in planted[planted_j >= THRESHOLD].tolist()}
    bands, rows = MinHashParams(num_perm=NUM_PERM, threshold=THRESHOLD).band_rows
    promise = float(np.mean(candidate_probability(true_j, bands, rows)))
    repeats = len(next(iter(runs.values())))
    print(
        f"\ntrue pairs (planted, exact Jaccard >= {THRESHOLD}): {len(truth):,} of "
        f"{len(planted):,} planted; bands x rows = {bands} x {rows}; the S-curve "
        f"1-(1-s^r)^b promises a candidate recall of {promise:.3f} on them.\n"
        f"recall and precision: mean over the {repeats} repeats (permutation seeds "
        f"{SEED}..{SEED + repeats - 1}); time: median; peak RSS: max.\n"
    )
    base = (
        statistics.median(r["seconds"] for r in runs["datasketch"])
        if "datasketch" in runs
        else None
    )
    header = (
        f"{'method':<20} {'median s':>9} {'items/s':>10} {'pairs':>8} {'recall':>7} "
        f"{'precision':>9} {'peak MiB':>9} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    n = int(info["texts"])
    for method in methods:
        recalls, precisions, sizes = [], [], []
        for rep in range(repeats):
            pairs = np.load(root / f"run{rep}" / f"{method}.npy")
            found = {tuple(sorted(p)) for p in pairs.tolist()}
            recalls.append(len(found & truth) / len(truth) if truth else float("nan"))
            j = exact_jaccard(sets, np.array(sorted(found), dtype=np.int64).reshape(-1, 2))
            precisions.append(float(np.mean(j >= THRESHOLD)) if len(j) else float("nan"))
            sizes.append(len(found))
        seconds = statistics.median(r["seconds"] for r in runs[method])
        peak = max(r["peak_mib"] for r in runs[method])
        speed = f"{base / seconds:.1f}x" if base else "-"
        print(
            f"{method:<20} {seconds:>9.2f} {n / seconds:>10,.0f} {int(np.mean(sizes)):>8,} "
            f"{np.mean(recalls):>7.3f} {np.mean(precisions):>9.3f} {peak:>9.0f} {speed:>9}"
        )
    baseline = statistics.median(r["baseline_mib"] for m in methods for r in runs[m])
    print(f"\n(peak RSS includes the loaded texts: ~{baseline:.0f} MiB before the clock starts)")


if __name__ == "__main__":
    main()
