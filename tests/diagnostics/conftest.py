"""Real datasets from ../shared/data, loaded once per test session for the checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from realdata import REAL, SHARED_DATA

import prefkit
from prefkit.dataset import Dataset


@pytest.fixture(scope="session")
def real_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Dataset]:
    """``real_dataset(name)``: the shared dataset ``name`` (see ``realdata.REAL``) converted
    to the canonical store once per session; skips when ../shared/data is absent."""
    cache: dict[str, Dataset] = {}

    def get(name: str) -> Dataset:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"shared data not found at {SHARED_DATA}")
        if name not in cache:
            options = dict(REAL[name])
            fmt = options.pop("format", None)
            out = tmp_path_factory.mktemp(name) / "ds"
            cache[name] = prefkit.convert(
                SHARED_DATA / name, out, from_format=fmt, read_options=options or None
            )
        return cache[name]

    return get
