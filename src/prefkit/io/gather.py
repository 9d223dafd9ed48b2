"""Fetch one column's values at arbitrary rows of a table, by id, in bounded memory.

Views such as ``to_pairs`` first compute small key rows (prompt id, chosen id, rejected
id) and then need the texts behind those ids. A database hash join would hold every
response text in its build side; instead, :class:`Gatherer` keeps only the id column in
memory (to map ids to row positions) and reads the wanted column one Parquet row group at
a time through a small cache. Views emit rows in input order, so consecutive key batches
touch neighbouring row groups and each group is decoded about once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

CACHE_GROUPS = 8
#: A wanted column up to this size (uncompressed) is read whole instead of cached by group.
IN_MEMORY_BYTES = 64 << 20


def _fixed_bytes(ids: pa.Array | pa.ChunkedArray, width: int | None = None) -> np.ndarray:
    """Ids as a numpy fixed-width bytes array (zero-copy when every id has one length)."""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    arr = pc.fill_null(arr.cast(pa.string()), "")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=f"S{width or 1}")
    lengths = pc.binary_length(arr)
    lo, hi = pc.min_max(lengths).values()
    lo, hi = lo.as_py(), hi.as_py()
    if lo == hi and lo > 0 and (width is None or width == lo):
        offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)
        data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        return data.view(f"S{lo}")
    return np.array(arr.to_pylist(), dtype=f"S{max(width or 1, hi, 1)}")


def _hash64(arr: np.ndarray) -> np.ndarray:
    """FNV-1a over each fixed-width bytes value, vectorised across values (uint64)."""
    width = arr.dtype.itemsize
    cols = arr.view(np.uint8).reshape(len(arr), width)
    h = np.full(len(arr), 0xCBF29CE484222325, np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(width):
            h ^= cols[:, j].astype(np.uint64)
            h *= prime
    return h


class KeyIndex:
    """Ids indexed once for repeated lookups of their row positions.

    Lookups go through a sorted array of 64-bit hashes of the ids (numpy ``searchsorted``
    on integers, far faster than on strings); every hit is then checked against the id
    itself, so a hash collision can never return the wrong row. An index whose own ids
    collide falls back to searching the ids directly.
    """

    def __init__(self, keys: pa.Array | pa.ChunkedArray):
        self._keys = _fixed_bytes(keys)
        self._width = self._keys.dtype.itemsize
        hashes = _hash64(self._keys)
        self._order = np.argsort(hashes, kind="stable")
        self._sorted = hashes[self._order]
        self._exact = bool(len(self._sorted) > 1 and np.any(self._sorted[1:] == self._sorted[:-1]))
        if self._exact:  # colliding (or repeated) ids: search the ids themselves
            self._order = np.argsort(self._keys, kind="stable")
            self._sorted_keys = self._keys[self._order]

    def positions(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Row positions of ``ids``; -1 where an id is absent."""
        q = _fixed_bytes(ids, self._width)
        if q.dtype.itemsize != self._width or not len(self._keys):
            return np.full(len(q), -1, np.int64)
        # Searching sorted queries lets numpy walk the index once instead of n random probes.
        if self._exact:
            qs = np.argsort(q, kind="stable")
            found = np.searchsorted(self._sorted_keys, q[qs])
        else:
            hq = _hash64(q)
            qs = np.argsort(hq, kind="stable")
            found = np.searchsorted(self._sorted, hq[qs])
        at = np.empty(len(q), np.int64)
        at[qs] = np.minimum(found, len(self._keys) - 1)
        rows = self._order[at]
        return np.where(self._keys[rows] == q, rows, -1).astype(np.int64)


class Gatherer:
    """Values of ``column`` of table ``name`` looked up by the table's ``key`` column."""

    def __init__(self, ds: Dataset, name: str, key: str, column: str):
        self.column = column
        files = ds.files(name)
        if files is None:
            table = ds.table(name)
            self._index = KeyIndex(table.column(key))
            self._memory: pa.ChunkedArray | None = table.column(column)
            return
        self._memory = None
        self._files = [pq.ParquetFile(p, pre_buffer=False) for p in files]
        # Row group by row group: a whole-file read buffers far more than the ids need.
        self._index = KeyIndex(self._read_column(key, pa.string()))
        if self._column_bytes() <= IN_MEMORY_BYTES:
            # Small enough to hold: lookups in any order then cost no decoding at all
            # (prompts are often small, and repeated prompts point far back).
            self._memory = self._read_column(column, None)
            return
        groups = [
            (f, g) for f, pf in enumerate(self._files) for g in range(pf.metadata.num_row_groups)
        ]
        sizes = [self._files[f].metadata.row_group(g).num_rows for f, g in groups]
        self._groups = groups
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._cache: OrderedDict[int, pa.Array] = OrderedDict()

    def take(self, ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The column's values for ``ids``, in the order given (null for unknown ids)."""
        rows = self._index.positions(ids)
        valid = rows >= 0
        if self._memory is not None:
            return self._memory.take(
                pa.array(np.where(valid, rows, 0), mask=~valid)
            ).combine_chunks()
        group_of = np.searchsorted(self._starts, rows, side="right") - 1
        pieces, where = [], []
        for g in np.unique(group_of[valid]):
            sel = np.flatnonzero((group_of == g) & valid)
            pieces.append(self._group(int(g)).take(pa.array(rows[sel] - self._starts[g])))
            where.append(sel)
        if not pieces:
            return pa.nulls(len(rows), self._files[0].schema_arrow.field(self.column).type)
        # Put the values back in the order asked for; unknown ids become nulls.
        inverse = np.zeros(len(rows), np.int64)
        inverse[np.concatenate(where)] = np.arange(int(valid.sum()))
        return pa.concat_arrays(pieces).take(pa.array(inverse, mask=~valid))

    def _read_column(self, column: str, type_: pa.DataType | None) -> pa.ChunkedArray:
        chunks = [
            c
            for pf in self._files
            for g in range(pf.num_row_groups)
            for c in pf.read_row_group(g, columns=[column]).column(0).chunks
        ]
        return pa.chunked_array(
            chunks, type=type_ or self._files[0].schema_arrow.field(column).type
        )

    def _column_bytes(self) -> int:
        """Uncompressed size of the wanted column, from the Parquet metadata."""
        total = 0
        for pf in self._files:
            for g in range(pf.metadata.num_row_groups):
                rg = pf.metadata.row_group(g)
                total += sum(
                    rg.column(i).total_uncompressed_size
                    for i in range(rg.num_columns)
                    if rg.column(i).path_in_schema.split(".")[0] == self.column
                )
        return total

    def _group(self, g: int) -> pa.Array:
        cached = self._cache.get(g)
        if cached is not None:
            self._cache.move_to_end(g)
            return cached
        f, rg = self._groups[g]
        arr = self._files[f].read_row_group(rg, columns=[self.column]).column(0).combine_chunks()
        self._cache[g] = arr
        if len(self._cache) > CACHE_GROUPS:
            self._cache.popitem(last=False)
        return arr
