"""Throwaway curation steps for tests: register a few, run them, unregister them.

Importable by basename from any test folder (pytest puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow.compute as pc

from prefkit.curation import STEPS, Outcome, Step, drop_rows, register


def drop_ties(ds: Any, reason: str) -> Outcome:
    """Drop every tie judgment, giving ``reason``."""
    j = ds.judgments
    return drop_rows(ds, reason, judgments=j.filter(pc.equal(j.column("outcome"), 0)).column(0))


def drop_first(ds: Any, n: int, mode: str, **info: Any) -> Outcome:
    """Drop the first ``n`` prompts (reason ``first-{mode}``); the other parameters go to
    the outcome's ``info``."""
    out = drop_rows(ds, f"first-{mode}", prompts=ds.prompts.column("prompt_id").slice(0, n))
    out.info = info
    return out


@contextmanager
def registered(steps: Sequence[Step]) -> Iterator[None]:
    """``steps`` registered (after every real step) for the duration of the block."""
    import prefkit.curation.steps  # noqa: F401  (the real ones first)

    for step in steps:
        register(step)
    try:
        yield
    finally:
        for step in steps:
            STEPS.pop(step.name, None)
