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
import pyarrow.parquet as pq
import xxhash

from prefkit.engine import connect, row, scalar
from prefkit.schema import SCHEMA_VERSION, TABLES, concat, conform, empty_table

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

    def relation(self, con: duckdb.DuckDBPyConnection, name: str) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation over table ``name`` without loading Parquet into memory."""
        value = self._tables[name]
        if isinstance(value, pa.Table):
            return con.from_arrow(value)
        if not value:
            return con.from_arrow(empty_table(name))
        files = [str(p) for p in value]
        return con.read_parquet(files, union_by_name=True)

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
        con = connect()
        out = {}
        for name in TABLES:
            rel = self.relation(con, name)
            con.register("_t", rel)
            total, count = row(
                con, "SELECT coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR, count(*) FROM _t t"
            )
            con.unregister("_t")
            # Column names and types count too: renaming a meta column changes the content.
            columns = ",".join(f"{c}:{t}" for c, t in zip(rel.columns, rel.types, strict=True))
            out[name] = xxhash.xxh3_64_hexdigest(f"{name}:{columns}:{count}:{total}".encode())
        con.close()
        return out

    def fingerprint(self) -> str:
        """One fingerprint for the whole content (all tables), ignoring row order."""
        parts = self.table_fingerprints()
        return xxhash.xxh3_128_hexdigest(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS))

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

        return hf.DatasetDict({name: hf.Dataset(self.table(name)) for name in TABLES})

    @classmethod
    def from_frames(cls, frames: Mapping[str, Any], manifest: Manifest | None = None) -> Dataset:
        """Build from pandas/polars DataFrames or HF datasets keyed by table name."""
        tables = {}
        for name, frame in frames.items():
            if isinstance(frame, pa.Table):
                tables[name] = frame
            elif hasattr(frame, "to_arrow"):  # polars
                tables[name] = frame.to_arrow()
            elif hasattr(frame, "data") and hasattr(frame.data, "table"):  # datasets.Dataset
                tables[name] = frame.data.table
            else:  # pandas
                tables[name] = pa.Table.from_pandas(frame, preserve_index=False)
        return cls(tables, manifest)


__all__ = ["KINDS", "SCHEMA_VERSION", "Dataset", "Manifest"]
