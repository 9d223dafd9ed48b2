"""The canonical on-disk dataset: a directory of Parquet tables plus ``manifest.json``.

Layout::

    my_dataset/
      manifest.json          schema version, counts, fingerprints, lineage, planted values
      prompts.parquet        one file per table ...
      responses/part-0.parquet, part-1.parquet   ... or a folder of shards

Writes are atomic: everything is written into a hidden sibling folder which is renamed
into place at the end, so a crash never leaves a half-written dataset behind.
:class:`DatasetWriter` streams chunks to disk (one Parquet writer per table, a new shard
whenever a chunk's meta columns differ), so memory stays bounded for any input size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from prefkit import __version__
from prefkit.dataset import Dataset, Manifest, combine_fingerprints
from prefkit.engine import connect
from prefkit.errors import PrefkitError
from prefkit.schema import SCHEMA_VERSION, TABLES, conform, empty_table

MANIFEST = "manifest.json"
#: Rows per Parquet row group: small enough that views fetching texts by id
#: (prefkit.io.gather) decode little more than they need.
ROW_GROUP_ROWS = 16_384
FORMAT_TAG = "prefkit-dataset"


def is_dataset_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def _commit_dir(tmp: Path, path: Path, overwrite: bool) -> None:
    if path.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PrefkitError(
                f"{path}: already exists (use overwrite / --overwrite to replace it)"
            )
        old = _tmp_sibling(path)
        os.replace(path, old)
        os.replace(tmp, path)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        os.replace(tmp, path)


class DatasetWriter:
    """Stream table chunks into a new canonical dataset directory.

    Use as a context manager; on error the partial output is removed and nothing appears
    at ``path``. Prompts, responses and annotators are de-duplicated by id across chunks.
    """

    def __init__(
        self, path: str | Path, *, overwrite: bool = False, manifest: Manifest | None = None
    ):
        self.path = Path(path)
        self.overwrite = overwrite
        self.manifest = manifest or Manifest()
        if self.path.exists() and not overwrite:
            raise PrefkitError(f"{self.path}: already exists (use --overwrite to replace it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _tmp_sibling(self.path)
        self._tmp.mkdir()
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._shards: dict[str, list[Path]] = {name: [] for name in TABLES}
        self.dataset: Dataset | None = None
        # Parquet encoding runs on a background thread (Arrow releases the GIL) while the
        # caller parses the next chunk; the bounded queue keeps at most two chunks in flight.
        self._queue: queue.Queue[dict[str, pa.Table] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="prefkit-writer", daemon=True)
        self._thread.start()

    def write(self, chunk: dict[str, pa.Table]) -> None:
        """Queue ``chunk`` (table name -> rows) for writing."""
        self._raise_pending()
        self._queue.put(chunk)

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._write_now(chunk)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _write_now(self, chunk: dict[str, pa.Table]) -> None:
        for name, table in chunk.items():
            table = conform(name, table)
            if table.num_rows == 0:
                continue
            writer = self._writers.get(name)
            if writer is not None and writer.schema != table.schema:
                writer.close()
                writer = None
            if writer is None:
                folder = self._tmp / name
                folder.mkdir(exist_ok=True)
                shard = folder / f"part-{len(self._shards[name]):05d}.parquet"
                writer = pq.ParquetWriter(shard, table.schema, compression="zstd")
                self._writers[name] = writer
                self._shards[name].append(shard)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def close(self) -> Dataset:
        try:
            return self._finish()
        except BaseException:
            # A failure while finishing (manifest, rename) must not leave the hidden folder.
            self.abort()
            raise

    def _finish(self) -> Dataset:
        self._stop()
        self._raise_pending()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        files: dict[str, list[Path]] = {}
        for name in TABLES:
            shards = self._shards[name]
            single = self._tmp / f"{name}.parquet"
            if len(shards) == 1 and shards[0] != single:
                os.replace(shards[0], single)
                shards[0].parent.rmdir()
                shards = [single]
            elif not shards:
                pq.write_table(empty_table(name), single)
                shards = [single]
            files[name] = shards
        # One scan per table gives both the fingerprint and whether ids repeat; only a
        # content table with repeated ids is rewritten (and scanned again).
        stats = Dataset(files, self.manifest).table_stats()
        dups = [n for n in _CONTENT_KEYS if stats[n][2] < stats[n][1]]
        for name in dups:
            files[name] = _dedup_shards(name, files[name], self._tmp)
        tmp_ds = Dataset(files, self.manifest)
        parts = {n: fp for n, (fp, _, _) in stats.items()}
        parts.update({n: fp for n, (fp, _, _) in tmp_ds.table_stats(tuple(dups)).items()})
        _write_manifest(tmp_ds, self._tmp, parts)
        _commit_dir(self._tmp, self.path, self.overwrite)
        self.dataset = load_dataset_dir(self.path)
        return self.dataset

    def abort(self) -> None:
        self._stop()
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # already failing; the folder is removed below
                writer.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


_CONTENT_KEYS = {"prompts": "prompt_id", "responses": "response_id", "annotators": "annotator_id"}


def _dedup_shards(name: str, shards: list[Path], folder: Path) -> list[Path]:
    """Rewrite a content table keeping the first row per id (a global step).

    Readers may emit a prompt or response more than once (the same prompt in many files,
    or in several blocks of a streamed file); the store keeps first occurrences in order.
    As DESIGN.md §3 prescribes for global work, only the ids go through DuckDB (which
    positions to keep); the rows are then filtered row group by row group, so the texts
    are never held or sorted at once.
    """
    key = _CONTENT_KEYS[name]
    con = connect()
    # `__ord` is (shard index + 1) << 40 | row in shard, as Dataset.ordered_relation numbers it.
    con.register("_t", Dataset({name: shards}).ordered_relation(con, name))
    keep = con.execute(f"SELECT min(__ord) FROM _t GROUP BY {key}").fetchnumpy()
    con.close()
    ordinals = np.sort(np.asarray(next(iter(keep.values())), dtype=np.int64))
    out_dir = folder / f".{name}.dedup"
    out_dir.mkdir()
    written = []
    for f, path in enumerate(shards, start=1):
        lo, hi = np.searchsorted(ordinals, [f << 40, (f + 1) << 40])
        rows = ordinals[lo:hi] - (f << 40)
        pf = pq.ParquetFile(path)
        target = out_dir / f"part-{f - 1:05d}.parquet"
        with pq.ParquetWriter(target, pf.schema_arrow, compression="zstd") as writer:
            start = 0
            for g in range(pf.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                a, b = np.searchsorted(rows, [start, start + n])
                if b > a:
                    group = pf.read_row_group(g)
                    writer.write_table(
                        group.take(pa.array(rows[a:b] - start)), row_group_size=ROW_GROUP_ROWS
                    )
                start += n
        written.append(target)
    for p in shards:
        p.unlink()
    shard_dir = shards[0].parent
    if shard_dir != folder and not any(shard_dir.iterdir()):
        shard_dir.rmdir()
    if len(written) == 1:
        final = folder / f"{name}.parquet"
        os.replace(written[0], final)
        out_dir.rmdir()
        return [final]
    final_dir = folder / name
    if final_dir.exists():
        final_dir.rmdir()
    os.replace(out_dir, final_dir)
    return sorted(final_dir.glob("*.parquet"))


def _write_manifest(
    ds: Dataset, folder: Path, parts: dict[str, str] | None = None
) -> dict[str, Any]:
    tables = {}
    for name in TABLES:
        value = ds._tables[name]
        if isinstance(value, pa.Table):
            rel = [f"{name}.parquet"]
        else:
            rel = [str(Path(p).relative_to(folder)) for p in value]
        tables[name] = rel
    parts = parts or ds.table_fingerprints()
    body = {
        "format": FORMAT_TAG,
        "schema_version": SCHEMA_VERSION,
        "prefkit_version": __version__,
        "counts": ds.counts(),
        "kinds": ds.kinds(),
        "fingerprint": combine_fingerprints(parts),
        "table_fingerprints": parts,
        "tables": tables,
        **ds.manifest.to_dict(),
    }
    (folder / MANIFEST).write_bytes(
        orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    return body


def save(ds: Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``ds`` as a canonical dataset directory at ``path``, atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise PrefkitError(
            f"{path}: already exists (use overwrite=True / --overwrite to replace it)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    tmp.mkdir()
    try:
        files = {}
        for name in TABLES:
            target = tmp / f"{name}.parquet"
            value = ds._tables[name]
            if isinstance(value, pa.Table):
                pq.write_table(value, target, compression="zstd", row_group_size=ROW_GROUP_ROWS)
                files[name] = [target]
            elif len(value) == 1:
                shutil.copyfile(value[0], target)
                files[name] = [target]
            else:
                (tmp / name).mkdir()
                files[name] = []
                for i, p in enumerate(value):
                    shard = tmp / name / f"part-{i:05d}.parquet"
                    shutil.copyfile(p, shard)
                    files[name].append(shard)
        _write_manifest(Dataset(files, ds.manifest), tmp)
        _commit_dir(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        body = orjson.loads((path / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise PrefkitError(f"{path}: not a prefkit dataset (no {MANIFEST})") from None
    except orjson.JSONDecodeError as exc:
        raise PrefkitError(f"{path / MANIFEST}: malformed JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT_TAG:
        raise PrefkitError(f"{path / MANIFEST}: not a prefkit manifest (field 'format')")
    version = body.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise PrefkitError(
            f"{path / MANIFEST}: field 'schema_version' is {version!r}; this prefkit reads up to "
            f"{SCHEMA_VERSION} (upgrade prefkit)"
        )
    return body


def load_dataset_dir(path: str | Path) -> Dataset:
    """Open a canonical dataset directory (tables stay on disk until used)."""
    path = Path(path)
    body = read_manifest(path)
    files: dict[str, list[Path]] = {}
    for name in TABLES:
        listed = body.get("tables", {}).get(name)
        if listed is None:
            single, folder = path / f"{name}.parquet", path / name
            listed = (
                [single.name]
                if single.exists()
                else sorted(str(p.relative_to(path)) for p in folder.glob("*.parquet"))
            )
        paths = [path / p for p in listed]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise PrefkitError(f"{path}: table {name!r} is missing file(s) {missing}")
        files[name] = paths
    return Dataset(files, Manifest.from_dict(body))


def write_chunks(chunks: Iterable[dict[str, pa.Table]], path: str | Path, **kw: Any) -> Dataset:
    """Stream ``chunks`` into a new dataset directory; returns the opened dataset."""
    with DatasetWriter(path, **kw) as writer:
        for chunk in chunks:
            writer.write(chunk)
    assert writer.dataset is not None
    return writer.dataset
