"""`load`, `save` and `convert`: every path into and out of the data model.

``load`` accepts a canonical dataset directory, a file or folder in any registered format
(sniffed from content unless ``format=`` is given), or a Hugging Face hub id (read with
``datasets.load_dataset``). ``convert`` streams: chunks go straight to Parquet and
writers read back through DuckDB, so memory stays bounded whatever the input size.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefkit.dataset import Dataset, Manifest
from prefkit.errors import InputError, PrefkitError
from prefkit.io import formats as _formats  # noqa: F401  (registers every adapter)
from prefkit.io.formats.base import (
    REGISTRY,
    Chunk,
    Format,
    Quarantine,
    ReadOptions,
    Sample,
    get_format,
)
from prefkit.io.records import CONTAINERS, iter_records, resolve_container
from prefkit.io.store import is_dataset_dir, load_dataset_dir, write_chunks
from prefkit.schema import TABLES, concat

CANONICAL = "prefkit"
ON_ERROR = ("raise", "quarantine")
SNIFF_RECORDS = 20
DATA_SUFFIXES = {*CONTAINERS, ".xml"}


# --- finding the files and the format ------------------------------------------------------
def data_files(path: Path) -> list[Path]:
    """Data files under ``path`` (the file itself, or every data file in the folder)."""
    if path.is_file():
        return [path]
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and ({s.lower() for s in p.suffixes} & DATA_SUFFIXES)
    ]
    if not files:
        raise PrefkitError(
            f"{path}: no data files found (looked for {', '.join(sorted(DATA_SUFFIXES))})"
        )
    return files


def _sample(path: Path) -> Sample:
    if path.is_dir():
        return Sample(path, [], None)
    if ".xml" in (s.lower() for s in path.suffixes):
        return Sample(path, [], None)  # XML is not a record container; its sniffer reads the path
    records: list[Any] = []
    container = None
    try:
        container = resolve_container(path)
        for i, rec in enumerate(iter_records(path, container)):
            records.append(rec.data)
            if i + 1 >= SNIFF_RECORDS:
                break
    except InputError:
        pass  # an unreadable sample sniffs as nothing; the real read reports the error
    return Sample(path, records, container)


def detect_format(path: str | Path) -> Format:
    """The registered format that best matches ``path`` (a file or folder)."""
    path = Path(path)
    samples = [_sample(path)]
    if path.is_dir():
        samples += [_sample(f) for f in data_files(path)[:3]]
    scores = []
    for fmt in REGISTRY.values():
        best = 0.0
        for s in samples:
            if fmt.directory != (s.path.is_dir()):
                continue
            try:
                best = max(best, float(fmt.sniff(s)))
            except Exception:  # a sniffer must never break detection of the others
                continue
        scores.append((best, fmt.name))
    scores.sort(reverse=True)
    if not scores or scores[0][0] <= 0:
        raise PrefkitError(
            f"{path}: could not recognise the format; pass format=/--from with one of: "
            f"{', '.join(sorted(REGISTRY))} (or 'generic' with a column mapping)"
        )
    return REGISTRY[scores[0][1]]


# --- reading ---------------------------------------------------------------------------------
def read_chunks(
    source: str | Path,
    /,
    format: str | None = None,
    *,
    on_error: str = "raise",
    quarantine: str | Path | None = None,
    **mapping: Any,
) -> tuple[Iterator[Chunk], Format, Quarantine | None]:
    """Chunks of canonical tables from ``source`` plus the format used and the quarantine."""
    if on_error not in ON_ERROR:
        raise PrefkitError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(source)
    if not path.exists():
        raise PrefkitError(f"{source}: no such file or folder")
    fmt = get_format(format) if format else detect_format(path)
    unknown = set(mapping) - set(fmt.options)
    if unknown:
        known = ", ".join(sorted(fmt.options)) or "none"
        raise PrefkitError(
            f"format {fmt.name!r} has no option(s) {sorted(unknown)}; its options: {known}"
        )
    q = None
    if on_error == "quarantine":
        q = Quarantine(Path(quarantine) if quarantine else None)
    opts = ReadOptions(mapping=dict(mapping), quarantine=q)
    files = [path] if fmt.directory else data_files(path)
    return fmt.read(files, opts), fmt, q


def _load_step(
    source: Any, fmt: Format, mapping: dict[str, Any], q: Quarantine | None
) -> dict[str, Any]:
    return {
        "step": "load",
        "params": {
            "source": str(source),
            "format": fmt.name,
            "options": mapping,
            "on_error": "quarantine" if q else "raise",
        },
    }


def load(
    source: str | Path,
    /,
    format: str | None = None,
    *,
    on_error: str = "raise",
    quarantine: str | Path | None = None,
    hub: bool | None = None,
    split: str | None = None,
    **mapping: Any,
) -> Dataset:
    """Load a preference dataset into the canonical data model.

    Parameters
    ----------
    source
        A canonical dataset directory, a file or folder in a registered format, or a
        Hugging Face hub dataset id.
    format
        A registered format name; sniffed from content when omitted.
    on_error
        ``"raise"`` (default) stops at the first bad record with a message naming file,
        line and field; ``"quarantine"`` sets bad records aside and counts them.
    quarantine
        Where quarantined records are written (JSON Lines).
    hub
        Force (True) or forbid (False) reading ``source`` through ``datasets.load_dataset``;
        by default only a source that is not a local path goes to the hub.
    split
        Split to read from a hub dataset (default ``train``).
    **mapping
        Format options, e.g. column names for ``format="generic"``.
    """
    if hub or (hub is None and not Path(source).exists()):
        return _load_hub(
            str(source), format, split=split, on_error=on_error, quarantine=quarantine, **mapping
        )
    if is_dataset_dir(source):
        return load_dataset_dir(source)
    chunks, fmt, q = read_chunks(
        source, format, on_error=on_error, quarantine=quarantine, **mapping
    )
    parts: dict[str, list[pa.Table]] = {name: [] for name in TABLES}
    for chunk in chunks:
        for name, table in chunk.items():
            parts[name].append(table)
    if q is not None:
        q.close()
    tables = {name: concat(name, ts) for name, ts in parts.items()}
    tables = _dedup_keys(tables)
    manifest = Manifest(source={"path": str(source), "format": fmt.name})
    if q is not None:
        manifest.quarantine = q.summary()
    ds = Dataset(tables, manifest)
    ds.manifest.lineage.append({**_load_step(source, fmt, mapping, q), "output": ds.fingerprint()})
    return ds


def _dedup_keys(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Keep the first row per id for content-keyed tables (chunks may repeat an id)."""
    import pyarrow.compute as pc

    for name, key in (
        ("prompts", "prompt_id"),
        ("responses", "response_id"),
        ("annotators", "annotator_id"),
    ):
        t = tables[name]
        if t.num_rows and pc.count_distinct(t.column(key)).as_py() < t.num_rows:
            idx = t.append_column("__i", pa.array(range(t.num_rows), pa.int64()))
            first = (
                idx.group_by(key, use_threads=False).aggregate([("__i", "min")]).column("__i_min")
            )
            tables[name] = t.take(first.take(pc.sort_indices(first)))
    return tables


def _load_hub(
    source: str,
    /,
    format: str | None,
    *,
    split: str | None,
    on_error: str,
    quarantine: Any,
    **mapping: Any,
) -> Dataset:
    """Read a hub dataset (or a local folder via ``datasets``) and convert it.

    The rows are written once to a temporary Parquet file and read by the normal
    adapter, so hub data gets the same sniffing, validation and error reporting.
    """
    try:
        import datasets as hf
    except ImportError:
        raise PrefkitError(
            f"{source}: not a local path, and reading hub datasets needs the 'hf' extra "
            "(pip install 'prefkit[hf]')"
        ) from None
    try:
        data = hf.load_dataset(source, split=split or "train")
    except Exception as exc:  # datasets raises many types for unknown ids / no network
        raise PrefkitError(
            f"{source}: could not load with datasets.load_dataset ({type(exc).__name__}: {exc})"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        pq_path = Path(tmp) / f"{Path(source).name or 'hub'}.parquet"
        data.to_parquet(str(pq_path))
        label = f"{source} (split {split or 'train'})"
        try:
            ds = load(
                pq_path, format, on_error=on_error, quarantine=quarantine, hub=False, **mapping
            )
        except InputError as err:
            # Name the hub source, not the temporary copy it was read through.
            raise InputError(label, err.where, err.field, err.message) from None
        ds = Dataset({name: ds.table(name) for name in TABLES}, ds.manifest)
    for step in ds.manifest.lineage:
        if step.get("step") == "load":
            step["params"]["source"] = label
    ds.manifest.source = {
        "hub": source,
        "split": split or "train",
        "format": ds.manifest.source["format"] if ds.manifest.source else format,
    }
    return ds


# --- writing ---------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffixes so writers can tell the container from the name.
    stem, dot, suffixes = path.name.partition(".")
    tmp = path.with_name(f".{stem}.tmp-{uuid.uuid4().hex[:8]}{dot}{suffixes}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save(
    ds: Dataset,
    path: str | Path,
    format: str | None = None,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Write ``ds``: the canonical directory by default, or a registered ``format``.

    ``options`` are the writer's view policies (e.g. ``ties="drop"``); a writer that
    needs a policy the data calls for says which.
    """
    path = Path(path)
    if format in (None, CANONICAL):
        return ds.save(path, overwrite=overwrite)
    fmt = get_format(format)
    if fmt.write is None:
        raise PrefkitError(f"format {fmt.name!r} cannot be written: {fmt.cannot_write}")
    if path.exists() and not overwrite:
        raise PrefkitError(
            f"{path}: already exists (use overwrite=True / --overwrite to replace it)"
        )
    with atomic_path(path) as tmp:
        fmt.write(ds, tmp, options)
    return path


def convert(
    source: str | Path,
    output: str | Path,
    *,
    from_format: str | None = None,
    to_format: str | None = None,
    on_error: str = "raise",
    quarantine: str | Path | None = None,
    overwrite: bool = False,
    read_options: dict[str, Any] | None = None,
    write_options: dict[str, Any] | None = None,
) -> Dataset:
    """Convert ``source`` to ``output`` through the canonical model, streaming.

    Without ``to_format`` the output is a canonical dataset directory. Returns the
    canonical dataset (opened from disk).
    """
    output = Path(output)
    if to_format not in (None, CANONICAL):
        fmt_out = get_format(to_format)
        if fmt_out.write is None:
            raise PrefkitError(f"format {fmt_out.name!r} cannot be written: {fmt_out.cannot_write}")
        if output.exists() and not overwrite:
            raise PrefkitError(f"{output}: already exists (use --overwrite to replace it)")
    if on_error == "quarantine" and quarantine is None:
        quarantine = output.with_name(output.name + ".quarantine.jsonl")
    read_options = read_options or {}
    if not Path(source).exists():
        # Not a local path: a hub dataset id, read through `datasets` (not streamed).
        ds = load(
            source, from_format, on_error=on_error, quarantine=quarantine, hub=True, **read_options
        )
        if to_format in (None, CANONICAL):
            return load_dataset_dir(save(ds, output, overwrite=overwrite))
        save(ds, output, to_format, overwrite=overwrite, **(write_options or {}))
        return ds
    if is_dataset_dir(source):
        ds = load_dataset_dir(source)
        if to_format in (None, CANONICAL):
            return load_dataset_dir(save(ds, output, overwrite=overwrite))
        save(ds, output, to_format, overwrite=overwrite, **(write_options or {}))
        return ds
    chunks, fmt, q = read_chunks(
        source, from_format, on_error=on_error, quarantine=quarantine, **read_options
    )
    manifest = Manifest(source={"path": str(source), "format": fmt.name})
    step = _load_step(source, fmt, read_options, q)
    if to_format in (None, CANONICAL):
        target, tmpdir = output, None
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="prefkit-")
        target = Path(tmpdir.name) / "canonical"
    try:
        ds = write_chunks(
            _closing(chunks, q, manifest, step), target, overwrite=overwrite, manifest=manifest
        )
        if tmpdir is not None:
            save(ds, output, to_format, overwrite=overwrite, **(write_options or {}))
            ds = Dataset({name: ds.table(name) for name in TABLES}, ds.manifest)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return ds


def _closing(
    chunks: Iterator[Chunk], q: Quarantine | None, manifest: Manifest, step: dict[str, Any]
) -> Iterator[Chunk]:
    """Pass chunks through, then record quarantine counts and the load step."""
    yield from chunks
    if q is not None:
        q.close()
        manifest.quarantine = q.summary()
    manifest.lineage.append(step)


def from_pairs(
    table: Any,
    *,
    prompt: str = "prompt",
    chosen: str = "chosen",
    rejected: str = "rejected",
) -> Dataset:
    """Build a dataset from a flat (prompt, chosen, rejected) table.

    ``table`` may be an Arrow table, a pandas or polars DataFrame, an HF dataset or a list
    of dicts. Values may be strings or conversational message lists.
    """
    from prefkit.io.formats.trl import pairs_to_chunk

    if isinstance(table, list):
        rows = table
    elif isinstance(table, pa.Table):
        rows = table.to_pylist()
    elif hasattr(table, "to_arrow"):
        rows = table.to_arrow().to_pylist()
    elif hasattr(table, "to_dict") and hasattr(table, "columns"):
        # Through Arrow: pandas holds message lists as numpy arrays, Arrow gives lists.
        # A column of mixed types will not convert; then read the rows as they are, so
        # the bad row is reported by number.
        try:
            rows = pa.Table.from_pandas(table, preserve_index=False).to_pylist()
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            rows = [
                {
                    k: v.tolist() if hasattr(v, "tolist") and hasattr(v, "ndim") else v
                    for k, v in r.items()
                }
                for r in table.to_dict(orient="records")
            ]
    else:
        rows = list(table)
    chunk = pairs_to_chunk(rows, prompt=prompt, chosen=chosen, rejected=rejected)
    ds = Dataset(chunk, Manifest(source={"from_pairs": len(rows)}))
    ds.manifest.lineage.append(
        {"step": "from_pairs", "params": {"rows": len(rows)}, "output": ds.fingerprint()}
    )
    return ds
