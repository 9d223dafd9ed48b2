"""dpo_data on real data: pairs from HH-RLHF harmless (with curriculum stages), ranked
lists from OASST trees, prompt-disjoint held-out splits.

Every expectation is rebuilt from the dataset's own tables (prompts, responses,
judgments, rankings), not from the views the functions use.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefkit.curation.step import apply
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.io.api import load
from prefkit.training.dpo_data import list_texts, pair_texts, split_by_prompt

pytestmark = pytest.mark.shared_data


@functools.cache
def _hh(path: str) -> Dataset:
    (f,) = Path(path, "hh_rlhf_harmless_test").glob("*.jsonl.gz")
    return load(str(f))


@functools.cache
def _staged(path: str, order: bool) -> Dataset:
    # HH has no strength or scores: the margin is the noise check's (minus) suspicion
    return apply(_hh(path), "curriculum", by="suspicion", stages=3, order=order)


@pytest.fixture
def hh(shared_data: Path) -> Dataset:
    return _hh(str(shared_data))


@pytest.fixture
def oasst(shared_data: Path) -> Dataset:
    return load(str(shared_data / "oasst_en100_trees" / "en_100_tree.jsonl"))


def response_text(ds: Dataset) -> dict[str, str]:
    return {
        r["response_id"]: "\n\n".join(m["content"] or "" for m in r["messages"])
        for r in ds.responses.select(["response_id", "messages"]).to_pylist()
    }


def prompt_messages(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    return {
        r["prompt_id"]: [{"role": m["role"], "content": m["content"] or ""} for m in r["messages"]]
        for r in ds.prompts.select(["prompt_id", "messages"]).to_pylist()
    }


def decisive(ds: Dataset) -> list[dict[str, Any]]:
    return [j for j in ds.judgments.to_pylist() if j["outcome"] != 0]


# --- pairs ---------------------------------------------------------------------------------
def test_pairs_are_the_decisive_judgments(hh: Dataset) -> None:
    tx = pair_texts(hh, conversational=True)
    js = decisive(hh)
    assert len(tx) == len(js) == 2312
    win = [j["a"] if j["outcome"] > 0 else j["b"] for j in js]
    lose = [j["b"] if j["outcome"] > 0 else j["a"] for j in js]
    # one pair per judgment: the ids are the judgment ids, in judgment order
    assert tx.ids == [j["judgment_id"] for j in js]
    assert len(set(tx.ids)) == len(tx)
    assert tx.prompt_keys == [j["prompt_id"] for j in js]
    np.testing.assert_array_equal(tx.strength, 1.0)  # HH has no strength: 1.0
    np.testing.assert_array_equal(tx.stage, 0)
    assert tx.scores is None
    text, prompts = response_text(hh), prompt_messages(hh)
    for i in range(0, len(tx), 97):
        assert tx.completions[i] == [text[win[i]], text[lose[i]]]
        assert tx.prompts[i] == prompts[js[i]["prompt_id"]]
    plain = pair_texts(hh, conversational=False)
    assert all(isinstance(p, str) for p in plain.prompts)
    assert plain.completions == tx.completions
    # a multi-turn HH prompt keeps every turn in its plain text
    first = prompts[js[0]["prompt_id"]]
    assert all(m["content"] in plain.prompts[0] for m in first)


@pytest.mark.parametrize("order", [False, True])
def test_curriculum_stages_line_up_with_the_judgments(shared_data: Path, order: bool) -> None:
    staged = _staged(str(shared_data), order)
    js = decisive(staged)
    tx = pair_texts(staged, conversational=True)
    # staged pairs are named by judgment id, one per decisive judgment, in table order
    assert tx.ids == [j["judgment_id"] for j in js]
    assert set(tx.stage.tolist()) == {1, 2, 3}
    assert np.bincount(tx.stage)[1:].tolist() == [771, 771, 770]  # quantile bins of 2312
    by_id = {j["judgment_id"]: j for j in js}
    np.testing.assert_array_equal(tx.stage, [by_id[i]["stage"] for i in tx.ids])
    text = response_text(staged)
    for i in range(0, len(tx), 89):  # the texts travel with their stage
        j = by_id[tx.ids[i]]
        w, x = (j["a"], j["b"]) if j["outcome"] > 0 else (j["b"], j["a"])
        assert tx.completions[i] == [text[w], text[x]]
        assert tx.prompt_keys[i] == j["prompt_id"]


def test_stages_need_one_pair_per_judgment(shared_data: Path) -> None:
    staged = _staged(str(shared_data), False)
    with pytest.raises(PrefkitError, match="curriculum stages"):
        pair_texts(staged, conversational=True, annotators="majority")
    with pytest.raises(PrefkitError, match="curriculum stages"):
        pair_texts(staged, conversational=True, annotators="unanimous")


# --- ranked lists --------------------------------------------------------------------------
def test_list_texts_scores_are_minus_the_rank(oasst: Dataset) -> None:
    tx = list_texts(oasst, conversational=True)
    rankings = {r["ranking_id"]: r for r in oasst.rankings.to_pylist()}
    assert sorted(tx.ids) == sorted(rankings) and len(tx) == 212
    assert tx.scores is not None
    text, prompts = response_text(oasst), prompt_messages(oasst)
    for rid, key, prompt, comps, scores in zip(
        tx.ids, tx.prompt_keys, tx.prompts, tx.completions, tx.scores, strict=True
    ):
        r = rankings[rid]
        assert key == r["prompt_id"] and prompt == prompts[key]
        expect = [(-float(t), text[x]) for t, tier in enumerate(r["tiers"], 1) for x in tier]
        assert list(zip(scores, comps, strict=True)) == expect  # best first, score = -rank
        assert len(comps) >= 2
    np.testing.assert_array_equal(tx.strength, 1.0)
    np.testing.assert_array_equal(tx.stage, 0)
    with pytest.raises(PrefkitError, match="no rankings or scored responses"):
        list_texts(_no_lists(oasst), conversational=True)


def _no_lists(ds: Dataset) -> Dataset:
    return ds.with_tables(rankings=ds.rankings.slice(0, 0))


# --- held-out prompts ----------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_split_by_prompt_holds_out_whole_prompts(hh: Dataset, fraction: float) -> None:
    tx = pair_texts(hh, conversational=False)
    tr, ev = split_by_prompt(tx, fraction, seed=3)
    keys = np.asarray(tx.prompt_keys)
    assert not set(keys[tr]) & set(keys[ev])  # no prompt on both sides
    assert sorted(np.concatenate([tr, ev]).tolist()) == list(range(len(tx)))
    n_prompts = len(set(keys))
    assert len(set(keys[ev])) == round(fraction * n_prompts)  # exact share of prompts
    assert abs(len(ev) / len(tx) - fraction) < 0.01  # ~ the share of rows (1 pair/prompt)
    again = split_by_prompt(tx, fraction, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (tr, ev), strict=True))
    other = split_by_prompt(tx, fraction, seed=4)[1]
    assert not np.array_equal(other, ev)
    sub = tx.select(ev)
    assert sub.prompt_keys == keys[ev].tolist() and sub.completions[0] == tx.completions[ev[0]]
    assert len(split_by_prompt(tx, 0.0, seed=3)[1]) == 0


def test_split_by_prompt_on_lists(oasst: Dataset) -> None:
    tx = list_texts(oasst, conversational=False)
    tr, ev = split_by_prompt(tx, 0.2, seed=0)
    keys = np.asarray(tx.prompt_keys)
    assert not set(keys[tr]) & set(keys[ev])
    assert len(set(keys[ev])) == round(0.2 * len(set(keys)))
    assert tx.select(ev).scores == [tx.scores[i] for i in ev]  # type: ignore[index]
