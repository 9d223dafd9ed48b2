"""Shared checks for the simulator tests: the tables must satisfy the data model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from prefkit import Dataset


def _check_model(ds: Dataset) -> None:
    prompts, responses = ds.prompts, ds.responses
    pids = prompts.column("prompt_id").to_pylist()
    assert len(set(pids)) == len(pids)
    rids = responses.column("response_id").to_pylist()
    assert len(set(rids)) == len(rids)
    prompt_of = dict(zip(rids, responses.column("prompt_id").to_pylist(), strict=True))
    assert set(prompt_of.values()) <= set(pids)
    j = ds.judgments
    if j.num_rows:
        jids = j.column("judgment_id").to_pylist()
        assert len(set(jids)) == len(jids)
        a, b = j.column("a").to_pylist(), j.column("b").to_pylist()
        jp = j.column("prompt_id").to_pylist()
        assert all(x != y for x, y in zip(a, b, strict=True))
        assert all(
            prompt_of[x] == p and prompt_of[y] == p for x, y, p in zip(a, b, jp, strict=True)
        )
        assert set(np.unique(np.asarray(j.column("outcome")))) <= {-1, 0, 1}
        annotators = set(ds.annotators.column("annotator_id").to_pylist())
        assert set(j.column("annotator_id").to_pylist()) <= annotators
    r = ds.rankings
    if r.num_rows:
        per_prompt: dict[str, set[str]] = {}
        for rid, p in prompt_of.items():
            per_prompt.setdefault(p, set()).add(rid)
        for p, tiers in zip(
            r.column("prompt_id").to_pylist(), r.column("tiers").to_pylist(), strict=True
        ):
            flat = [x for tier in tiers for x in tier]
            assert len(flat) == len(set(flat)) and set(flat) == per_prompt[p]
            assert all(tier for tier in tiers)


@pytest.fixture
def check_model() -> Callable[[Dataset], None]:
    """Assert the data-model invariants (ids unique, a/b of the judgment's prompt, ...)."""
    return _check_model
