"""`prefkit export`: a curated dataset as training files, through the explicit pair view.

``--to trl`` writes TRL preference rows (prompt/chosen/rejected); ``jsonl`` and
``parquet`` write the whole pairs view (ids, texts, ``strength``, ``origin``,
``n_votes``); ``hf`` saves a Hugging Face ``datasets`` dataset with ``save_to_disk`` (a
``DatasetDict`` with one split per value of the ``split`` column when there is one).
Ties, several judges per pair, rankings and scores need a policy, given explicitly; the
view says which one is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from prefkit.cli.data import _open, _source_options, _view_policy
from prefkit.errors import PrefkitError
from prefkit.views import ANNOTATORS, PAIR_STRATEGIES, TIES

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

EXPORT_FORMATS = ("trl", "hf", "jsonl", "parquet")
SPLIT_COLUMN = "split"
#: Tables searched for the ``split`` column, in order (a prompt-level split is preferred).
SPLIT_TABLES = ("prompts", "judgments", "rankings", "responses")


def split_values(ds: Dataset) -> tuple[str, list[str]] | None:
    """(table, sorted distinct values) of the ``split`` column, or None when absent."""
    import pyarrow.compute as pc

    for name in SPLIT_TABLES:
        table = ds.table(name)
        if SPLIT_COLUMN in table.column_names and table.num_rows:
            values = pc.unique(table.column(SPLIT_COLUMN).drop_null()).to_pylist()
            return name, sorted(str(v) for v in values)
    return None


def select_split(ds: Dataset, split: str) -> Dataset:
    """``ds`` restricted to the rows whose ``split`` is ``split`` (what refers to the
    other rows goes too), or a :class:`PrefkitError` when there is no such column/value."""
    import pyarrow.compute as pc

    from prefkit.curation.cascade import drop_rows
    from prefkit.schema import ID_COLUMN

    found = split_values(ds)
    if found is None:
        raise PrefkitError(
            f"--split {split}: the dataset has no '{SPLIT_COLUMN}' column; "
            "run `prefkit curate split` first"
        )
    name, values = found
    if split not in values:
        raise PrefkitError(
            f"--split {split}: no rows in that split; the dataset has {', '.join(values)}"
        )
    table = ds.table(name)
    other = pc.invert(pc.fill_null(pc.equal(table.column(SPLIT_COLUMN), split), False))
    gone = table.filter(other).column(ID_COLUMN[name])
    outcome = drop_rows(ds, f"not in split {split}", **{name: gone})
    return ds.with_tables(**outcome.tables)


def export(
    ds: Dataset,
    output: str | Path,
    to: str,
    *,
    split: str | None = None,
    overwrite: bool = False,
    **policy: Any,
) -> dict[str, int]:
    """Write ``ds`` as ``to`` (one of :data:`EXPORT_FORMATS`); returns rows per split
    written (key ``""`` when not split)."""
    from prefkit.io.api import save

    if to not in EXPORT_FORMATS:
        raise PrefkitError(f"--to {to!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    output = Path(output)
    if output.exists() and not overwrite:
        raise PrefkitError(f"{output}: already exists (use --overwrite to replace it)")
    if split is not None:
        ds = select_split(ds, split)
    if to == "trl":
        save(ds, output, "trl", overwrite=overwrite, **policy)
        return {split or "": _count_rows(output)}
    if to in ("jsonl", "parquet"):
        from prefkit.io.api import atomic_path
        from prefkit.io.formats.sinks import write_table
        from prefkit.views import to_pairs

        table = to_pairs(ds, **policy)
        if output.exists():
            _remove(output)
        with atomic_path(output) as tmp:
            write_table(table, tmp, {"container": to}, fmt=f"export {to}")
        return {split or "": table.num_rows}
    return _export_hf(ds, output, split, overwrite, policy)


def _export_hf(
    ds: Dataset, output: Path, split: str | None, overwrite: bool, policy: dict[str, Any]
) -> dict[str, int]:
    try:
        import datasets as hf
    except ImportError:
        raise PrefkitError(
            "--to hf needs the `datasets` package: pip install 'prefkit[hf]'"
        ) from None
    from prefkit.views import to_pairs

    found = split_values(ds) if split is None else None
    if found is None:
        parts = {split or "": ds}
    else:
        parts = {value: select_split(ds, value) for value in found[1]}
    tables = {name: to_pairs(part, **policy) for name, part in parts.items()}
    if output.exists() and overwrite:
        _remove(output)
    if found is None:
        hf.Dataset(tables[split or ""]).save_to_disk(str(output))
    else:
        hf.DatasetDict({k: hf.Dataset(t) for k, t in tables.items()}).save_to_disk(str(output))
    return {k: t.num_rows for k, t in tables.items()}


def _count_rows(path: Path) -> int:
    """Rows in a written TRL file (Parquet metadata, else one per non-empty line)."""
    import gzip

    import pyarrow.parquet as pq

    from prefkit.io.records import container_of

    container = container_of(path)
    if container == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    if container == "json":
        import orjson

        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            return len(orjson.loads(fh.read()))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return lines - 1 if container in ("csv", "tsv") else lines


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


@click.command("export")
@click.argument("dataset")
@click.argument("output")
@click.option(
    "--to",
    "to_format",
    type=click.Choice(EXPORT_FORMATS),
    required=True,
    help="trl: prompt/chosen/rejected rows (.jsonl or .parquet by suffix); jsonl/parquet: the "
    "full pairs view (ids, strength, origin); hf: a `datasets` folder (save_to_disk).",
)
@click.option(
    "--split",
    help="Only this split (train, validation, test, ...) of the `split` column the "
    "split step writes.",
)
@click.option("--ties", type=click.Choice(TIES), help="What to do with tie judgments.")
@click.option(
    "--annotators",
    type=click.Choice(ANNOTATORS),
    help="Pairs judged several times give one row each, a majority row, or unanimous rows.",
)
@click.option("--rankings", type=click.Choice(PAIR_STRATEGIES), help="Pairs from rankings.")
@click.option("--scores", type=click.Choice(PAIR_STRATEGIES), help="Pairs from scores.")
@click.option(
    "--score-key", default="score", show_default=True, help="'score' or an attribute to rank by."
)
@click.option(
    "--margin",
    type=float,
    default=0.0,
    show_default=True,
    help="Minimum score gap for pairs from scores.",
)
@click.option(
    "--conversational/--no-conversational",
    default=None,
    help="Message lists or plain strings (default: lists for multi-turn prompts).",
)
@_source_options
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def export_cmd(
    dataset: str,
    output: str,
    to_format: str,
    split: str | None,
    ties: str | None,
    annotators: str | None,
    rankings: str | None,
    scores: str | None,
    score_key: str,
    margin: float,
    conversational: bool | None,
    from_format: str | None,
    maps: tuple[str, ...],
    overwrite: bool,
) -> None:
    """Export DATASET (typically curated) as training pairs in OUTPUT.

    Pairs come from the explicit pairs view: data with ties, several judges per pair,
    rankings or scores needs the matching policy, and the error says which is missing.

    \b
    Examples:
      prefkit export data/clean train.jsonl --to trl --split train --ties drop
      prefkit export data/clean pairs.parquet --to parquet --annotators majority
      prefkit export data/clean hf_pairs/ --to hf --ties drop
    """
    policy = _view_policy(
        ties=ties,
        annotators=annotators,
        rankings=rankings,
        scores=scores,
        score_key=score_key,
        margin=margin,
        conversational=conversational,
    )
    ds = _open(dataset, from_format, maps)
    rows = export(ds, output, to_format, split=split, overwrite=overwrite, **policy)
    counts = ", ".join(f"{k} {v:,}" if k else f"{v:,}" for k, v in rows.items())
    click.echo(f"wrote {output} ({to_format}): {counts} pairs")


__all__ = ["EXPORT_FORMATS", "export", "export_cmd", "select_split", "split_values"]
