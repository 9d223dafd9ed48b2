"""Near-duplicate pairs and groups of texts from their MinHash signatures: LSH banding,
candidate verification and connected components, streamed through temporary files.

What
    Pairs (and groups) of texts whose sets of word n-grams ("shingles") have a Jaccard
    similarity of at least ``threshold``, with the estimated Jaccard of each pair
    (:func:`near_duplicates`, or :class:`NearDupIndex` batch by batch). Signatures and
    band keys come from :mod:`prefkit.diagnostics.minhash` (the map step); this module
    stores them and runs the reduce step. The duplicates check uses it on prompts and
    responses (through :mod:`prefkit.diagnostics.dupes`); curation reuses it for dedup.

Method
    * LSH banding: Indyk & Motwani (1998), "Approximate nearest neighbors: towards
      removing the curse of dimensionality"; Leskovec, Rajaraman & Ullman, "Mining of
      Massive Datasets", ch. 3. Two texts are candidates when all ``r`` rows of at least
      one of the ``b`` bands agree, i.e. when they share a band key, with probability
      ``1 - (1 - s^r)^b`` for Jaccard ``s`` (``minhash.candidate_probability``; ``(b, r)``
      from ``minhash.optimal_bands``).
    * Candidates are verified with the MinHash estimate (Broder, 1997, "On the
      resemblance and containment of documents": the share of equal entries over all
      ``num_perm``); verified pairs with estimate >= ``threshold`` are kept and joined
      into groups by connected components (scipy's union-find equivalent).

Pipeline (DESIGN.md §3: map rows to small keys, reduce the keys globally)
    store: batches are signed in worker threads (:func:`pipelined`,
    :func:`~prefkit.diagnostics.minhash.sign`) and written in input order: the
    signature (``num_perm`` uint32) and the ``b`` band keys (uint64) of each text to
    files in a temporary folder.
    reduce (:meth:`NearDupIndex.finish`): per band, sort the band keys (numpy) and emit
    pairs within runs of equal keys; deduplicate the pairs, verify them against the
    stored signatures, and label connected components.

Memory per text
    On disk (temporary files, not mapped): ``4 * num_perm + 8 * b`` bytes (584 B for the
    defaults: 128 perms, 9 bands). In RAM for the whole run: the id, plus 24 bytes
    (normalised-text hash, word and shingle counts, component label). While one band is
    sorted: ~40 bytes (its keys, their order, the sorted copy). Candidate pairs: 16 bytes
    each, and the signature rows of at most 2^17 pairs at a time while verifying.
    3,000,000 texts: about 1.75 GB of temporary files and ~200 MB of RAM for the engine.

Deviations
    * In a bucket with more than ``max_bucket`` members only the pairs with its first
      member are emitted (a star), so a group of 10,000 identical texts costs 10,000
      candidate pairs, not 50 million; their group is the same.
    * Candidates are verified by default; ``verify=False`` keeps every candidate, like a
      bare datasketch ``MinHashLSH`` query.
    * Texts without shingles are never banded, so never near duplicates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from prefkit.diagnostics.minhash import (
    MinHashParams,
    Signed,
    concat,
    estimate_jaccard,
    permutations,
    sign,
)
from prefkit.errors import PrefkitError

T = TypeVar("T")
R = TypeVar("R")

#: Candidate pairs verified per step (at most twice as many signature rows in memory).
_VERIFY_CHUNK = 1 << 17
#: Signature values read per block when verifying (4 MiB).
_READ_ROWS = 1 << 20


# --- reduce step: buckets -> candidate pairs -> verified pairs -> groups ------------------------
def _bucket_pairs(keys: np.ndarray, docs: np.ndarray, max_bucket: int) -> np.ndarray:
    """Pairs ``lo * 2^32 + hi`` (uint64) of texts sharing a key: all pairs within buckets
    of up to ``max_bucket`` members, the star around the first member beyond."""
    if len(keys) < 2:
        return np.zeros(0, np.uint64)
    order = np.argsort(keys, kind="stable")
    sk, sd = keys[order], docs[order]
    new = np.empty(len(sk), bool)
    new[0] = True
    np.not_equal(sk[1:], sk[:-1], out=new[1:])
    run_start = np.flatnonzero(new)
    run_len = np.diff(np.append(run_start, len(sk)))
    parts = []
    small = (run_len >= 2) & (run_len <= max_bucket)
    if small.any():
        rs, rl = run_start[small], run_len[small]
        # every member except the last pairs with all later members of its run
        member = np.repeat(rs, rl) + (np.arange(rl.sum()) - np.repeat(np.cumsum(rl) - rl, rl))
        later = np.repeat(rs + rl, rl) - member - 1
        left = np.repeat(member, later)
        step = np.arange(later.sum()) - np.repeat(np.cumsum(later) - later, later) + 1
        parts.append((sd[left], sd[left + step]))
    big = run_len > max_bucket
    if big.any():
        rs, rl = run_start[big], run_len[big]
        first = np.repeat(rs, rl - 1)
        other = (
            first
            + (np.arange((rl - 1).sum()) - np.repeat(np.cumsum(rl - 1) - (rl - 1), rl - 1))
            + 1
        )
        parts.append((sd[first], sd[other]))
    if not parts:
        return np.zeros(0, np.uint64)
    u = np.concatenate([p[0] for p in parts]).astype(np.uint64)
    v = np.concatenate([p[1] for p in parts]).astype(np.uint64)
    return (np.minimum(u, v) << np.uint64(32)) | np.maximum(u, v)


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label (int64) of each of ``n`` rows over the edges
    ``left[i] - right[i]`` (scipy's ``connected_components``; a singleton is its own)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(left) == 0:
        return np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, np.int64)


@dataclass
class NearDuplicates:
    """Result of :func:`near_duplicates`: verified pairs and groups over all texts.

    Attributes
    ----------
    ids
        Id of each text, in input order (index ``i`` below refers to ``ids[i]``).
    text_hash
        (n,) uint64 hash of each text's lowercased, whitespace-normalised words
        (:func:`~prefkit.diagnostics.minhash.text_hashes`): equal hashes are exact
        duplicates up to case/whitespace.
    n_tokens, n_shingles
        (n,) words and shingles of each text.
    left, right, jaccard
        Verified pairs ``left < right`` and their estimated Jaccard.
    labels
        (n,) connected-component label of each text over the verified pairs.
    n_candidates
        Distinct candidate pairs from the LSH buckets, before verification.
    """

    ids: pa.ChunkedArray
    text_hash: np.ndarray
    n_tokens: np.ndarray
    n_shingles: np.ndarray
    left: np.ndarray
    right: np.ndarray
    jaccard: np.ndarray
    labels: np.ndarray
    n_candidates: int
    params: MinHashParams
    bands: int
    rows: int

    @property
    def n(self) -> int:
        return len(self.labels)

    def group_sizes(self) -> np.ndarray:
        """Size of the group of each text (1 when it has no near duplicate)."""
        return np.bincount(self.labels, minlength=self.n)[self.labels] if self.n else self.labels

    def pairs_table(self) -> pa.Table:
        """``id_a, id_b, jaccard`` of the verified pairs."""
        ids = self.ids
        return pa.table(
            {
                "id_a": ids.take(pa.array(self.left)),
                "id_b": ids.take(pa.array(self.right)),
                "jaccard": pa.array(self.jaccard, pa.float32()),
            }
        )


def _read_rows(path: Path, rows: np.ndarray, k: int, n: int) -> np.ndarray:
    """Rows ``rows`` (sorted, unique) of an ``(n, k)`` uint32 file, reading only the
    blocks of ``_READ_ROWS`` rows that contain one."""
    out = np.empty((len(rows), k), np.uint32)
    block = max(1, _READ_ROWS // k)
    starts = rows // block
    with open(path, "rb") as f:
        for b in np.unique(starts).tolist():
            lo, hi = np.searchsorted(rows, [b * block, (b + 1) * block])
            first, count = b * block, min(block, n - b * block)
            f.seek(first * k * 4)
            data = np.frombuffer(f.read(count * k * 4), np.uint32).reshape(count, k)
            out[lo:hi] = data[rows[lo:hi] - first]
    return out


# --- streaming: signing in threads, storing in order, then the reduce step -------------------
def pipelined(items: Iterable[T], work: Callable[[T], R], workers: int) -> Iterator[tuple[T, R]]:
    """``(item, work(item))`` in input order, ``work`` running on up to ``workers`` items
    at once in threads (numpy and Arrow release the GIL); at most ``workers + 1`` items
    are held."""
    if workers <= 1:
        for item in items:
            yield item, work(item)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= workers:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


class NearDupIndex:
    """Incremental engine: :meth:`add` batches of texts (or :meth:`sign` them in worker
    threads and :meth:`write` the results in order), then :meth:`finish`.

    Signatures and band keys go to files in a temporary folder (under ``workdir`` or the
    system's), removed by :meth:`close` (or leaving the ``with`` block).
    """

    def __init__(
        self,
        params: MinHashParams | None = None,
        workdir: str | Path | None = None,
        threads: int | None = None,
    ):
        self.params = params or MinHashParams()
        self.bands, self.rows = self.params.band_rows
        self.threads = threads if threads is not None else default_threads()
        self._a, self._b = permutations(self.params.num_perm, self.params.seed)
        self._dir = Path(tempfile.mkdtemp(prefix="prefkit-minhash-", dir=workdir))
        self._sig_file = open(self._dir / "signatures.u32", "wb")  # noqa: SIM115
        self._band_files = [
            open(self._dir / f"band{j}.u64", "wb")  # noqa: SIM115
            for j in range(self.bands)
        ]
        self._ids: list[pa.Array] = []
        self._hashes: list[np.ndarray] = []
        self._tokens: list[np.ndarray] = []
        self._shingles: list[np.ndarray] = []
        # the files go even when close() is never called (garbage collection, exit)
        self._cleanup = weakref.finalize(
            self, _remove, [self._sig_file, *self._band_files], self._dir
        )

    def __enter__(self) -> NearDupIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary files (idempotent)."""
        self._cleanup()

    def sign(self, texts: pa.Array | pa.ChunkedArray, threads: int = 1) -> Signed:
        """The map step for one batch (pure: safe to run in several threads at once):
        :func:`prefkit.diagnostics.minhash.sign` with this index's permutations."""
        return sign(texts, self.params, (self._a, self._b), threads)

    def write(self, ids: pa.Array | pa.ChunkedArray, signed: Signed) -> None:
        """Store a signed batch (batches must be written in input order)."""
        if len(ids) != len(signed.sig):
            raise PrefkitError(f"{len(ids)} ids but {len(signed.sig)} texts")
        self._sig_file.write(signed.sig.tobytes())
        for j, f in enumerate(self._band_files):
            f.write(np.ascontiguousarray(signed.keys[:, j]).tobytes())
        self._ids.append(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
        self._hashes.append(signed.text_hash)
        self._tokens.append(signed.n_tokens.astype(np.int32))
        self._shingles.append(signed.n_shingles.astype(np.int32))

    def add(self, ids: pa.Array | pa.ChunkedArray, texts: pa.Array | pa.ChunkedArray) -> Signed:
        """Sign and store one batch (the signature blocks use ``threads``)."""
        if len(ids) != len(texts):
            raise PrefkitError(f"{len(ids)} ids but {len(texts)} texts")
        signed = self.sign(texts, self.threads)
        self.write(ids, signed)
        return signed

    def _verify(
        self, n: int, left: np.ndarray, right: np.ndarray, text_hash: np.ndarray
    ) -> np.ndarray:
        """Estimated Jaccard of candidate pairs (float32).

        Pairs of identical normalised texts have J = 1 without reading anything. For the
        others, the signature rows involved are read from the file block by block (only
        blocks that hold one), a chunk of pairs at a time, so memory stays at one chunk's
        rows instead of mapping the whole file.
        """
        k = self.params.num_perm
        est = np.ones(len(left), np.float32)
        todo = np.flatnonzero(text_hash[left] != text_hash[right])
        path = self._dir / "signatures.u32"
        for lo in range(0, len(todo), _VERIFY_CHUNK):
            part = todo[lo : lo + _VERIFY_CHUNK]
            rows, inverse = np.unique(
                np.concatenate([left[part], right[part]]), return_inverse=True
            )
            sig = _read_rows(path, rows, k, n)
            est[part] = estimate_jaccard(sig[inverse[: len(part)]], sig[inverse[len(part) :]])
        return est

    def finish(self) -> NearDuplicates:
        """Band, verify and group everything written so far."""
        for f in [self._sig_file, *self._band_files]:
            f.flush()
        n = sum(len(i) for i in self._ids)
        k = self.params.num_perm
        n_shingles = concat(self._shingles, np.int32)
        signed = np.flatnonzero(n_shingles > 0)
        cands = []
        for j in range(self.bands):
            keys = np.fromfile(self._dir / f"band{j}.u64", np.uint64)
            cands.append(_bucket_pairs(keys[signed], signed, self.params.max_bucket))
            del keys
        pairs = np.unique(np.concatenate(cands)) if cands else np.zeros(0, np.uint64)
        del cands
        left = (pairs >> np.uint64(32)).astype(np.int64)
        right = (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)
        del pairs
        text_hash = concat(self._hashes, np.uint64)
        est = self._verify(n, left, right, text_hash)
        # est * k is an exact count of equal entries; compare counts to avoid rounding
        keep = np.rint(est * k) >= self.params.threshold * k - 1e-9
        if not self.params.verify:
            keep[:] = True
        ids = pa.chunked_array(self._ids, type=self._ids[0].type if self._ids else pa.string())
        return NearDuplicates(
            ids=ids,
            text_hash=text_hash,
            n_tokens=concat(self._tokens, np.int32),
            n_shingles=n_shingles,
            left=left[keep],
            right=right[keep],
            jaccard=est[keep],
            labels=components(n, left[keep], right[keep]),
            n_candidates=len(left),
            params=self.params,
            bands=self.bands,
            rows=self.rows,
        )


Batch = tuple[pa.Array | pa.ChunkedArray, pa.Array | pa.ChunkedArray]


def near_duplicates(
    batches: Iterable[Batch],
    params: MinHashParams | None = None,
    *,
    workdir: str | Path | None = None,
    threads: int | None = None,
    on_batch: Callable[[pa.Array | pa.ChunkedArray, Signed], None] | None = None,
) -> NearDuplicates:
    """Near-duplicate pairs and groups among ``(ids, texts)`` batches.

    Parameters
    ----------
    batches
        ``(ids, texts)`` record batches (e.g. ``Context.texts``); at most ``threads + 1``
        batches of texts are held at a time.
    params
        :class:`MinHashParams`.
    workdir
        Folder for the temporary signature files (the system's temp folder by default).
    threads
        Batches signed at once in threads (numpy and Arrow release the GIL); default:
        the CPUs available, at most 4.
    on_batch
        Called in input order with each batch's ids and :class:`Signed` result.
    """
    with NearDupIndex(params, workdir, threads) as index:
        for (ids, _), signed in pipelined(batches, lambda b: index.sign(b[1]), index.threads):
            index.write(ids, signed)
            if on_batch is not None:
                on_batch(ids, signed)
        return index.finish()


def _remove(files: list[Any], folder: Path) -> None:
    for f in files:
        f.close()
    shutil.rmtree(folder, ignore_errors=True)


def default_threads() -> int:
    """CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


__all__ = [
    "NearDupIndex",
    "NearDuplicates",
    "components",
    "default_threads",
    "near_duplicates",
    "pipelined",
]
