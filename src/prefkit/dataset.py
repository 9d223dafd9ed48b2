"""`Dataset`: the five canonical tables plus the manifest that says where they came from.

A `Dataset` is immutable in spirit: transforms return a new one with a lineage step
appended. Tables loaded from disk stay as Parquet files until a table is first touched,
so views that run in DuckDB (``to_pairs`` and friends) read the files directly and never
hold a whole large table in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from prefkit.engine import connect, row, scalar
from prefkit.schema import CORE, ID_COLUMN, SCHEMA_VERSION, TABLES, concat, conform, empty_table

if TYPE_CHECKING:
    import datasets as hf_datasets
    import pandas as pd
    import polars as pl

#: Feedback kinds a dataset can hold, derived from which tables/columns have data.
KINDS = ("pairwise", "ties", "rankings", "scores", "attributes", "annotators", "battles")


@dataclass
class Manifest:
    """What the manifest.json of a dataset holds besides the tables."""

    lineage: list[dict[str, Any]] = field(default_factory=list)
    planted: dict[str, Any] = field(default_factory=dict)
    quarantine: dict[str, Any] | None = None
    source: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lineage": self.lineage}
        if self.planted:
            out["planted"] = self.planted
        if self.quarantine:
            out["quarantine"] = self.quarantine
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        return cls(
            lineage=list(d.get("lineage", [])),
            planted=dict(d.get("planted", {})),
            quarantine=d.get("quarantine"),
            source=d.get("source"),
        )


def combine_fingerprints(parts: Mapping[str, str]) -> str:
    """The dataset fingerprint from its per-table fingerprints."""
    return xxhash.xxh3_128_hexdigest(orjson.dumps(dict(parts), option=orjson.OPT_SORT_KEYS))


class Dataset:
    """A preference dataset: ``prompts``, ``responses``, ``judgments``, ``rankings``,
    ``annotators`` as Arrow tables, and a :class:`Manifest`.

    Parameters
    ----------
    tables
        Table name to an Arrow table, or to a list of Parquet files holding it. Missing
        tables are empty. Tables are conformed to the core schema (meta columns kept).
    manifest
        Lineage, planted ground truth (for simulated data) and quarantine counts.
    """

    def __init__(
        self,
        tables: Mapping[str, pa.Table | list[Path]] | None = None,
        manifest: Manifest | None = None,
    ):
        tables = dict(tables or {})
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise ValueError(f"unknown table(s) {sorted(unknown)}; expected {list(TABLES)}")
        self._tables: dict[str, pa.Table | list[Path]] = {}
        for name in TABLES:
            value = tables.get(name)
            if value is None:
                self._tables[name] = empty_table(name)
            elif isinstance(value, pa.Table):
                self._tables[name] = conform(name, value)
            else:
                self._tables[name] = [Path(p) for p in value]
        self.manifest = manifest or Manifest()

    # --- tables ---------------------------------------------------------------------------
    def table(self, name: str) -> pa.Table:
        """The table ``name`` in memory (read from Parquet on first use)."""
        value = self._tables[name]
        if not isinstance(value, pa.Table):
            value = concat(name, [pq.read_table(p) for p in value]) if value else empty_table(name)
            self._tables[name] = value
        return value

    @property
    def prompts(self) -> pa.Table:
        return self.table("prompts")

    @property
    def responses(self) -> pa.Table:
        return self.table("responses")

    @property
    def judgments(self) -> pa.Table:
        return self.table("judgments")

    @property
    def rankings(self) -> pa.Table:
        return self.table("rankings")

    @property
    def annotators(self) -> pa.Table:
        return self.table("annotators")

    def files(self, name: str) -> list[Path] | None:
        """The Parquet files holding table ``name``, or None when it is in memory."""
        value = self._tables[name]
        return None if isinstance(value, pa.Table) else list(value)

    def relation(self, con: duckdb.DuckDBPyConnection, name: str) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation over table ``name`` without loading Parquet into memory."""
        value = self._tables[name]
        if isinstance(value, pa.Table):
            return con.from_arrow(value)
        if not value:
            return con.from_arrow(empty_table(name))
        files = [str(p) for p in value]
        return con.read_parquet(files, union_by_name=True)

    def ordered_relation(
        self, con: duckdb.DuckDBPyConnection, name: str
    ) -> duckdb.DuckDBPyRelation:
        """:meth:`relation` plus ``__ord``, the row's position in the table (input order)."""
        value = self._tables[name]
        if isinstance(value, pa.Table) or not value:
            table = value if isinstance(value, pa.Table) else empty_table(name)
            return con.from_arrow(
                table.append_column("__ord", pa.array(range(table.num_rows), pa.int64()))
            )
        files = [str(p) for p in value]
        rel = con.read_parquet(files, union_by_name=True, filename=True, file_row_number=True)
        return rel.project(
            f"* EXCLUDE (filename, file_row_number), "
            f"(list_position({files!r}, filename)::BIGINT << 40) + file_row_number AS __ord"
        )

    def num_rows(self, name: str) -> int:
        value = self._tables[name]
        if isinstance(value, pa.Table):
            return value.num_rows
        return sum(pq.ParquetFile(p).metadata.num_rows for p in value)

    def counts(self) -> dict[str, int]:
        """Row count of every table."""
        return {name: self.num_rows(name) for name in TABLES}

    def with_tables(self, step: Mapping[str, Any] | None = None, **tables: pa.Table) -> Dataset:
        """A new dataset with some tables replaced; ``step`` is appended to the lineage."""
        new = Dataset({**self._tables, **tables}, copy.deepcopy(self.manifest))
        if step is not None:
            new.manifest.lineage.append(
                {**step, "inputs": [self.fingerprint()], "output": new.fingerprint()}
            )
        return new

    # --- identity -------------------------------------------------------------------------
    def table_fingerprints(self) -> dict[str, str]:
        """Per-table content fingerprint, independent of row order and sharding."""
        return {name: fp for name, (fp, _, _) in self.table_stats().items()}

    def table_stats(self, names: tuple[str, ...] = TABLES) -> dict[str, tuple[str, int, int]]:
        """Per table: (fingerprint, rows, distinct ids), from one scan of each table.

        The fingerprint sums DuckDB row hashes (so row order and sharding do not matter)
        and includes the column names and types.
        """
        con = connect()
        out = {}
        for name in names:
            rel = self.relation(con, name)
            con.register("_t", rel)
            total, count, distinct = row(
                con,
                f"""SELECT coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR, count(*),
                           count(DISTINCT {ID_COLUMN[name]}) FROM _t t""",
            )
            con.unregister("_t")
            columns = ",".join(f"{c}:{t}" for c, t in zip(rel.columns, rel.types, strict=True))
            fp = xxhash.xxh3_64_hexdigest(f"{name}:{columns}:{count}:{total}".encode())
            out[name] = (fp, int(count), int(distinct))
        con.close()
        return out

    def fingerprint(self) -> str:
        """One fingerprint for the whole content (all tables), ignoring row order."""
        return combine_fingerprints(self.table_fingerprints())

    # --- what is in it --------------------------------------------------------------------
    def kinds(self) -> list[str]:
        """Which kinds of feedback the dataset holds (see :data:`KINDS`)."""
        con = connect()
        con.register("j", self.relation(con, "judgments"))
        con.register("r", self.relation(con, "responses"))
        found = []
        n_j, n_tie = row(con, "SELECT count(*), count(*) FILTER (outcome = 0) FROM j")
        if n_j:
            found.append("pairwise")
        if n_tie:
            found.append("ties")
        if self.num_rows("rankings"):
            found.append("rankings")
        n_score, n_attr, n_src = row(
            con,
            "SELECT count(score), count(*) FILTER (cardinality(attributes) > 0), count(source) FROM r",
        )
        if n_score:
            found.append("scores")
        if n_attr:
            found.append("attributes")
        if scalar(con, "SELECT count(annotator_id) FROM j") or self.num_rows("annotators"):
            found.append("annotators")
        if n_j and n_src:
            found.append("battles")
        con.close()
        return found

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v:,}" for k, v in self.counts().items() if v)
        return f"Dataset({counts or 'empty'})"

    # --- persistence and views (thin wrappers; the work lives in io/ and views) -----------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the canonical on-disk dataset (Parquet per table + manifest.json), atomically."""
        from prefkit.io.store import save

        return save(self, path, overwrite=overwrite)

    def to_pairs(self, **policy: Any) -> pa.Table:
        """Flat (prompt, chosen, rejected) view; see :func:`prefkit.views.to_pairs`."""
        from prefkit.views import to_pairs

        return to_pairs(self, **policy)

    def to_battles(self, **policy: Any) -> pa.Table:
        """Arena battle view; see :func:`prefkit.views.to_battles`."""
        from prefkit.views import to_battles

        return to_battles(self, **policy)

    def to_lists(self, **policy: Any) -> pa.Table:
        """One row per prompt with its responses ordered; see :func:`prefkit.views.to_lists`."""
        from prefkit.views import to_lists

        return to_lists(self, **policy)

    def to_pandas(self) -> dict[str, pd.DataFrame]:
        """Every table as a pandas DataFrame."""
        return {name: self.table(name).to_pandas() for name in TABLES}

    def to_polars(self) -> dict[str, pl.DataFrame]:
        """Every table as a polars DataFrame."""
        import polars as pl

        return {name: pl.from_arrow(self.table(name)) for name in TABLES}  # type: ignore[misc]

    def to_hf(self) -> hf_datasets.DatasetDict:
        """Every table as a Hugging Face ``datasets.DatasetDict`` (one split per table)."""
        import datasets as hf

        # datasets has no map type: map columns (``context``, ``attributes``) go over as
        # list<struct<key, value>>, Arrow's own layout of a map; from_frames turns them back.
        return hf.DatasetDict(
            {name: hf.Dataset(_maps_as_lists(self.table(name))) for name in TABLES}
        )

    @classmethod
    def from_frames(cls, frames: Mapping[str, Any], manifest: Manifest | None = None) -> Dataset:
        """Build from pandas/polars DataFrames or HF datasets keyed by table name."""
        tables = {}
        for name, frame in frames.items():
            if isinstance(frame, pa.Table):
                table = frame
            elif hasattr(frame, "to_arrow"):  # polars
                table = frame.to_arrow()
            elif hasattr(frame, "with_format") and hasattr(frame, "data"):  # datasets.Dataset
                # Not frame.data.table: after select/filter/shuffle that is still the whole
                # underlying table; the arrow format applies the indices mapping.
                table = frame.with_format("arrow")[:]
            else:  # pandas
                table = _from_pandas(name, frame)
            tables[name] = _maps_from_lists(name, table)
        return cls(tables, manifest)


# --- interop helpers (to_hf / from_frames) ------------------------------------------------
def _maps_as_lists(table: pa.Table) -> pa.Table:
    """Map columns as list<struct<key, value>> (for libraries without a map type)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_map(f.type):
            entry = pa.list_(pa.struct([("key", f.type.key_type), ("value", f.type.item_type)]))
            # Chunk by chunk: a ChunkedArray with no chunks (an empty table) cannot cast.
            chunks = [c.cast(entry) for c in table.column(i).chunks]
            table = table.set_column(i, f.name, pa.chunked_array(chunks, type=entry))
    return table


def _maps_from_lists(name: str, table: pa.Table) -> pa.Table:
    """Core map columns that came back as list<struct<key, value>> made maps again."""
    core = CORE.get(name)
    for i, f in enumerate(table.schema):
        if core is None or f.name not in core.names:
            continue
        target = core.field(f.name).type
        t = f.type
        if not (
            pa.types.is_map(target)
            and (pa.types.is_list(t) or pa.types.is_large_list(t))
            and pa.types.is_struct(t.value_type)
            and t.value_type.num_fields == 2
        ):
            continue
        chunks = [_list_to_map(c).cast(target) for c in table.column(i).chunks]
        table = table.set_column(i, f.name, pa.chunked_array(chunks, type=target))
    return table


def _list_to_map(lists: pa.Array) -> pa.MapArray:
    """A list<struct<key, value>> array as a map array (nulls kept, slices allowed)."""
    # MapArray.from_arrays refuses sliced offsets with a null mask: rebase them at 0.
    start = lists.offsets[0].as_py() if len(lists) else 0
    offsets = pc.subtract(lists.offsets, start).cast(pa.int32())
    entries = lists.values.slice(start, (lists.offsets[-1].as_py() - start) if len(lists) else 0)
    return pa.MapArray.from_arrays(
        offsets, entries.field(0), entries.field(1), mask=lists.is_null()
    )


def _from_pandas(name: str, frame: pd.DataFrame) -> pa.Table:
    """A pandas frame as Arrow, core columns built with their core types.

    Inference alone fails on map columns, which pandas holds as lists of (key, value)
    tuples, and guesses wrong for all-null core columns.
    """
    core = CORE.get(name)
    core_names = set(core.names) if core is not None else set()
    meta = [c for c in frame.columns if c not in core_names]
    inferred = pa.Table.from_pandas(frame[meta], preserve_index=False) if meta else None
    arrays = {}
    for c in frame.columns:
        if core is not None and c in core_names:
            arrays[c] = pa.array(frame[c], type=core.field(c).type, from_pandas=True)
        else:
            assert inferred is not None
            arrays[c] = inferred.column(c)
    return pa.table(arrays) if arrays else pa.table({})


__all__ = ["KINDS", "SCHEMA_VERSION", "Dataset", "Manifest", "combine_fingerprints"]
