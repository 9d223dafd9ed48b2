"""PrefData from datasets: every label kept with the right indices; prompt folds."""

from __future__ import annotations

import numpy as np
import pytest

from builders import build
from prefkit.errors import PrefkitError
from prefkit.models.data import encoder_texts, from_arrays, from_dataset, prompt_folds


def _msgs(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


@pytest.fixture
def ds():
    prompts = [
        {"prompt_id": f"p{i}", "messages": _msgs("user", f"question {i}"), "topic": t}
        for i, t in enumerate("xxy")
    ]
    responses = [
        {
            "response_id": f"r{i}{k}",
            "prompt_id": f"p{i}",
            "messages": _msgs("assistant", "word " * (k + 1)),
            "attributes": {"help": float(k)} if i == 2 else None,
        }
        for i in range(3)
        for k in range(3)
    ]
    judgments = [
        {
            "judgment_id": "j0",
            "prompt_id": "p0",
            "a": "r00",
            "b": "r01",
            "outcome": 1,
            "annotator_id": "ann1",
        },
        {
            "judgment_id": "j1",
            "prompt_id": "p0",
            "a": "r01",
            "b": "r02",
            "outcome": 0,
            "annotator_id": "ann2",
        },
        {
            "judgment_id": "j2",
            "prompt_id": "p1",
            "a": "r10",
            "b": "r12",
            "outcome": -1,
            "strength": 0.75,
        },
    ]
    rankings = [
        {
            "ranking_id": "k0",
            "prompt_id": "p2",
            "tiers": [["r22"], ["r20", "r21"]],
            "annotator_id": "ann1",
        }
    ]
    return build(prompts=prompts, responses=responses, judgments=judgments, rankings=rankings)


def test_pairs_keep_indices_outcomes_strength_and_annotators(ds):
    d = from_dataset(ds, category="topic")
    ids = list(d.response_ids)
    assert [ids[i] for i in d.pairs.a] == ["r00", "r01", "r10"]
    assert [ids[i] for i in d.pairs.b] == ["r01", "r02", "r12"]
    assert d.pairs.outcome.tolist() == [1, 0, -1]
    assert np.isnan(d.pairs.strength[:2]).all() and d.pairs.strength[2] == 0.75
    assert [d.annotators[i] if i >= 0 else None for i in d.pairs.annotator] == [
        "ann1",
        "ann2",
        None,
    ]
    assert [d.categories[c] for c in d.pairs.category] == ["x", "x", "x"]
    assert d.n_words[ids.index("r02")] == 3


def test_lists_attributes_and_texts(ds):
    d = from_dataset(ds)
    ids = list(d.response_ids)
    assert sorted(zip([ids[i] for i in d.lists.item], d.lists.tier.tolist(), strict=True)) == [
        ("r20", 2),
        ("r21", 2),
        ("r22", 1),
    ]
    assert d.attribute_names == ["help"]
    assert d.attributes[ids.index("r21"), 0] == 1.0 and np.isnan(d.attributes[ids.index("r01"), 0])
    assert d.texts[ids.index("r00")] == "question 0\n\nword "
    assert from_dataset(ds, prompt_chars=0).texts[ids.index("r00")] == "word "


def test_prompt_tail_keeps_the_end():
    import pyarrow as pa

    out = encoder_texts(pa.array(["abcdef"]), pa.array(["R"]), 3)
    assert out == ["def\n\nR"]


def test_unknown_category_column_is_named(ds):
    with pytest.raises(PrefkitError, match="category column 'nope'"):
        from_dataset(ds, category="nope")


def test_select_prompts_keeps_only_their_labels(ds):
    d = from_dataset(ds)
    keep = np.array([p != "p0" for p in d.prompt_ids])
    sub = d.select_prompts(keep)
    assert len(sub.pairs) == 1 and sub.lists.n_lists == 1
    assert not np.isnan(sub.attributes).all()
    none = d.select_prompts(np.zeros(len(d.prompt_ids), dtype=bool))
    assert len(none.pairs) == 0 and none.lists.n_lists == 0 and np.isnan(none.attributes).all()


def test_prompt_folds_partition_the_labelled_prompts():
    rng = np.random.default_rng(0)
    prompt_of = np.repeat(np.arange(23), 2)
    a = np.arange(0, 46, 2)
    d = from_arrays(46, a=a, b=a + 1, prompt_of=prompt_of, outcome=rng.choice([-1, 1], 23))
    folds = prompt_folds(d, 5, seed=3)
    total = np.sum(folds, axis=0)
    assert (total == 1).all()
    assert sorted(int(f.sum()) for f in folds) == [4, 4, 5, 5, 5]
    assert [f.tolist() for f in folds] == [f.tolist() for f in prompt_folds(d, 5, seed=3)]
    with pytest.raises(PrefkitError, match="at least 2"):
        prompt_folds(d, 1)
