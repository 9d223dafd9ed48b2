"""The duplicate computations behind the duplicates check (prefkit.diagnostics.dupes):
label helpers on hand-made labels, the groups of a hand-built dataset (expected rows
listed by hand), the exact-only and near reads agreeing, and the judgment views
registered only for their block. The findings built on them are tested in
test_duplicates.py."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pytest

from prefkit import Dataset
from prefkit.diagnostics.context import Context
from prefkit.diagnostics.dupes import (
    content_pair_repeats,
    first_of,
    first_rows,
    groups_with_copies,
    identical_sides,
    judgment_keys,
    largest_groups,
    mix_keys,
    read_texts,
    reused_answers,
    scan_prompts,
    scan_responses,
)
from prefkit.diagnostics.minhash import MinHashParams
from prefkit.schema import TableBuilder, messages


def _ds(
    prompts: list[tuple[str, str, dict[str, Any]]],
    responses: list[tuple[str, str, str]],
    judgments: list[tuple[str, str, str, str, int]] | None = None,
) -> Dataset:
    """Prompts ``(id, text, extra columns)``, responses ``(id, prompt id, text)`` and
    judgments ``(id, prompt id, a, b, outcome)``."""
    p, r = TableBuilder("prompts"), TableBuilder("responses")
    for pid, text, extra in prompts:
        p.add(prompt_id=pid, messages=messages(("user", text)), **extra)
    for rid, pid, text in responses:
        r.add(response_id=rid, prompt_id=pid, messages=messages(("assistant", text)))
    tables = {"prompts": p.build(), "responses": r.build()}
    if judgments:
        j = TableBuilder("judgments")
        for jid, pid, a, b, outcome in judgments:
            j.add(judgment_id=jid, prompt_id=pid, a=a, b=b, outcome=outcome, annotator_id="u")
        tables["judgments"] = j.build()
    return Dataset(tables)


BASE = " ".join(f"word{i}" for i in range(40))
PIRATE = {"context": [("persona", "pirate")]}
PROMPTS = [
    ("p0", "Tell me a joke", {}),
    ("p1", "tell  me A JOKE", {}),  # exact copy of p0
    ("p2", "Tell me a joke", PIRATE),  # same text, other context: not a copy
    ("p3", BASE, {}),
    ("p4", BASE.replace("word7", "other"), {}),  # near copy of p3 (J = 39/41)
    ("p5", "", {}),  # empty: never grouped
    ("p6", "  ", {}),
]
RESPONSES = [
    ("r0", "p0", "Why did the chicken cross the road?"),
    ("r1", "p1", "why did the chicken cross the road?"),  # same prompt group as r0
    ("r2", "p3", "Thanks!"),
    ("r3", "p6", "thanks!"),  # a stock answer for another prompt group
    ("r4", "p2", "Arr, a joke"),
]


# --- label helpers -------------------------------------------------------------------------------
def test_label_helpers_on_hand_made_labels() -> None:
    labels = np.array([3, 0, 3, 0, 2, 3])
    assert first_rows(labels).tolist() == [1, 6, 4, 0]  # label 1 is unused: n
    assert first_of(labels).tolist() == [0, 1, 0, 1, 4, 0]
    assert first_of(np.zeros(0, np.int64)).tolist() == []
    copy = first_of(labels) != np.arange(6)
    groups, sizes = groups_with_copies(labels, copy)
    assert (groups.tolist(), sizes.tolist()) == ([0, 3], [2, 3])
    assert largest_groups(labels, copy, groups, sizes, 5) == [(3, 0, 2), (2, 1, 3)]
    assert largest_groups(labels, copy, groups, sizes, 1) == [(3, 0, 2)]
    none = groups_with_copies(labels, np.zeros(6, bool))
    assert largest_groups(labels, copy, *none, 5) == []


def test_mix_keys_separates_contexts() -> None:
    h = np.array([1, 1, 2], np.uint64)
    keys = mix_keys(h, np.array([7, 8, 7], np.uint64))
    assert len(set(keys.tolist())) == 3
    assert mix_keys(h, np.array([7, 7, 7], np.uint64))[0] == keys[0]


# --- groups of a table ---------------------------------------------------------------------------
def test_scan_groups_rows_as_listed() -> None:
    ctx = Context(_ds(PROMPTS, RESPONSES))
    prompts = scan_prompts(ctx, MinHashParams())
    assert prompts.ids.to_pylist() == [p[0] for p in PROMPTS]
    assert prompts.exact_copy.tolist() == [False, True] + [False] * 5
    assert prompts.exact_label.tolist() == [0, 0, 2, 3, 4, 5, 6]
    assert prompts.near_copy.tolist() == [False] * 4 + [True, False, False]
    assert prompts.empty.tolist() == [False] * 5 + [True, True]
    assert prompts.group[0] == prompts.group[1] != prompts.group[2]
    assert prompts.group[3] == prompts.group[4] and prompts.group[5] != prompts.group[6]
    assert prompts.copies("exact")[0] is prompts.exact_copy
    assert prompts.copies("near")[1] is prompts.group

    responses = scan_responses(ctx, MinHashParams(), prompts=prompts)
    assert responses.exact_copy.tolist() == [False, True, False, True, False]
    pg = prompts.group
    assert responses.prompt_group.tolist() == [pg[0], pg[1], pg[3], pg[6], pg[2]]
    other = responses.other_prompt(responses.exact_copy, responses.exact_label)
    assert other.tolist() == [False, False, False, True, False]
    assert reused_answers(responses, 5) == (1, [(2, 2, 2)])  # kept row, prompt groups, rows
    alone = scan_responses(ctx, MinHashParams(), near=False)
    assert (alone.prompt_group == -1).all() and alone.near is None
    assert reused_answers(alone, 5) == (0, [])


def test_exact_only_read_gives_the_same_keys() -> None:
    ctx = Context(_ds(PROMPTS, RESPONSES))
    near = read_texts(ctx, "prompts", MinHashParams(), near=True)
    exact = read_texts(ctx, "prompts", MinHashParams(), near=False)
    assert exact.near is None and near.near is not None
    assert near.ids.to_pylist() == exact.ids.to_pylist()
    for name in ("text_hash", "raw", "n_tokens"):
        assert getattr(near, name).tolist() == getattr(exact, name).tolist(), name
    assert near.n_tokens.dtype == np.int64
    assert near.raw[0] != near.raw[1] and near.text_hash[0] == near.text_hash[1]


# --- judgments -----------------------------------------------------------------------------------
def test_judgment_queries_and_their_views() -> None:
    judgments = [
        ("j0", "p0", "r0", "r4", 1),
        ("j1", "p1", "r4", "r1", 1),  # the same content pair (p0 ~ p1), other winner
        ("j2", "p0", "r0", "r1", 0),  # case-only sides
    ]
    ctx = Context(_ds(PROMPTS, RESPONSES, judgments))
    prompts = scan_prompts(ctx, MinHashParams())
    responses = scan_responses(ctx, MinHashParams(), prompts=prompts)
    with judgment_keys(ctx, prompts, responses):
        frame = identical_sides(ctx.con)
        repeats = content_pair_repeats(ctx.con)
    assert frame.column("judgment_id").to_pylist() == ["j2"]
    assert frame.column("kind").to_pylist() == ["case/whitespace only"]
    assert (repeats.pairs, repeats.contradictory, repeats.contradictory_judgments) == (1, 1, 2)
    assert sorted(repeats.items.column("prompt_id").to_pylist()) == ["p0", "p1"]
    with pytest.raises(duckdb.CatalogException, match="_dup_rk"):
        ctx.con.sql("SELECT * FROM _dup_rk")  # the views live for the block only
