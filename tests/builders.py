"""Small hand-built datasets for tests: ``build(prompts=[...], judgments=[...])``.

Importable by basename from any test folder (pytest puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``).
"""

from __future__ import annotations

from typing import Any

from prefkit import Dataset, Manifest
from prefkit.schema import TABLES, TableBuilder


def build(manifest: Manifest | None = None, **rows: list[dict[str, Any]]) -> Dataset:
    """A dataset with one table per non-empty keyword (table name -> row dicts)."""
    tables = {}
    for name in TABLES:
        if rows.get(name):
            b = TableBuilder(name)
            for r in rows[name]:
                b.add(**r)
            tables[name] = b.build()
    return Dataset(tables, manifest)
