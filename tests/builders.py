"""Small hand-built datasets for tests: ``build(prompts=[...], judgments=[...])``.

Importable by basename from any test folder (pytest puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``).
"""

from __future__ import annotations

from typing import Any

from prefkit import Dataset, Manifest
from prefkit.schema import TABLES, TableBuilder

# Two TRL-style conversational preference rows (messages lists), shared by the interop tests.
CONVERSATIONAL = [
    {
        "prompt": [{"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    },
    {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
        ],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
    },
]


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
