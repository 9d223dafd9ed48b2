"""The embedded DuckDB engine for global steps (joins, group-bys, dedup).

One place sets the connection up (memory limit, spill folder, threads) so every global
step spills instead of running out of memory on large inputs (DESIGN.md §3).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import duckdb

#: DuckDB memory limit; past it, operators spill to disk. Override with PREFKIT_MEMORY_LIMIT.
MEMORY_LIMIT = os.environ.get("PREFKIT_MEMORY_LIMIT", "1GB")


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection with prefkit's limits."""
    con = duckdb.connect(
        config={
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": os.path.join(tempfile.gettempdir(), "prefkit-duckdb"),
        }
    )
    return con


def row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The first row of a query (a query that always returns one)."""
    rows = con.execute(sql).fetchall()
    assert rows, sql
    return tuple(rows[0])


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single value of a one-row, one-column query."""
    return row(con, sql)[0]
