"""Flat views: to_pairs, to_battles and to_lists, with their explicit policies.

Expected rows are listed by hand from the small datasets below (or, for the randomised
majority test, counted with plain Python over the input).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from builders import build
from prefkit import Dataset, PrefkitError
from prefkit.io.store import load_dataset_dir
from prefkit.schema import messages
from prefkit.views import (
    ANNOTATORS,
    BATTLE_TIES,
    LIST_SOURCES,
    PAIR_STRATEGIES,
    TIES,
    to_battles,
    to_lists,
    to_pairs,
)

PAIR_COLUMNS = [
    "prompt_id",
    "chosen_id",
    "rejected_id",
    "prompt",
    "chosen",
    "rejected",
    "strength",
    "origin",
    "n_votes",
]


def _u(text: str) -> list[dict[str, str]]:
    return messages(("user", text))


def _a(text: str) -> list[dict[str, str]]:
    return messages(("assistant", text))


def _responses(prompt: str, ids: list[str], **cols: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, rid in enumerate(ids):
        row = {"response_id": rid, "prompt_id": prompt, "messages": _a(f"answer {rid}")}
        row.update({k: v[i] for k, v in cols.items()})
        out.append(row)
    return out


def _j(jid: str, a: str, b: str, outcome: int, **kw: Any) -> dict[str, Any]:
    return {
        "judgment_id": jid,
        "prompt_id": kw.pop("prompt_id", "p1"),
        "a": a,
        "b": b,
        "outcome": outcome,
        **kw,
    }


def _pairs(table: pa.Table, *cols: str) -> list[tuple[Any, ...]]:
    cols = cols or ("chosen_id", "rejected_id", "strength")
    return [tuple(r[c] for c in cols) for r in table.select(list(cols)).to_pylist()]


def _approx(rows: list[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows)


# --- judgments: ties and several judges ---------------------------------------------------------
@pytest.fixture
def voted() -> Dataset:
    """One prompt, four responses, ten judgments by three judges (one tie).

    r1 vs r2: r1, r1 (seen as b vs a)            -> unanimous r1
    r1 vs r3: r1, r3, r3 (last seen as a vs b)   -> majority r3 (2/3), not unanimous
    r2 vs r3: r2                                 -> single vote r2
    r3 vs r4: r4, and a tie                      -> single decisive vote r4
    r2 vs r4: r2, r4                             -> equal votes
    """
    return build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2", "r3", "r4"], source=["m1", "m2", "m3", "m4"]),
        judgments=[
            _j("j01", "r1", "r2", 1, strength=0.9, annotator_id="u1"),
            _j("j02", "r2", "r1", -1, annotator_id="u2"),
            _j("j03", "r1", "r3", 1, annotator_id="u1"),
            _j("j04", "r1", "r3", -1, annotator_id="u2"),
            _j("j05", "r3", "r1", 1, annotator_id="u3"),
            _j("j06", "r2", "r3", 1, annotator_id="u1"),
            _j("j07", "r3", "r4", -1, annotator_id="u1"),
            _j("j08", "r3", "r4", 0, tie_kind="bad", annotator_id="u2"),
            _j("j09", "r2", "r4", 1, annotator_id="u1"),
            _j("j10", "r4", "r2", 1, annotator_id="u2"),
        ],
    )


def test_ties_need_a_policy(voted: Dataset) -> None:
    with pytest.raises(PrefkitError, match="tie"):
        to_pairs(voted, annotators="each")


def test_ties_error_refuses(voted: Dataset) -> None:
    with pytest.raises(PrefkitError, match="tie"):
        to_pairs(voted, ties="error", annotators="each")


def test_several_judges_per_pair_need_a_policy(voted: Dataset) -> None:
    with pytest.raises(PrefkitError, match="more than once") as err:
        to_pairs(voted, ties="drop")
    for choice in ANNOTATORS:
        assert choice in str(err.value)


def test_pair_judged_twice_in_swapped_positions_needs_a_policy() -> None:
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2"]),
        judgments=[_j("j1", "r1", "r2", 1), _j("j2", "r2", "r1", 1)],
    )
    with pytest.raises(PrefkitError, match="more than once"):
        to_pairs(ds)


def test_each_gives_a_row_per_decisive_judgment(voted: Dataset) -> None:
    out = to_pairs(voted, ties="drop", annotators="each")
    assert out.column_names == PAIR_COLUMNS
    expected = [
        ("r1", "r2", 0.9, 1),
        ("r1", "r2", None, 1),
        ("r1", "r3", None, 1),
        ("r3", "r1", None, 1),
        ("r3", "r1", None, 1),
        ("r2", "r3", None, 1),
        ("r4", "r3", None, 1),
        ("r2", "r4", None, 1),
        ("r4", "r2", None, 1),
    ]
    assert _approx(_pairs(out, "chosen_id", "rejected_id", "strength", "n_votes")) == _approx(
        expected
    )
    assert set(out.column("origin").to_pylist()) == {"judgment"}
    # In the judgments' input order (j01, j02, j03, j04, j05, j06, j07, j09, j10).
    assert _pairs(out, "chosen_id", "rejected_id") == [
        ("r1", "r2"),
        ("r1", "r2"),
        ("r1", "r3"),
        ("r3", "r1"),
        ("r3", "r1"),
        ("r2", "r3"),
        ("r4", "r3"),
        ("r2", "r4"),
        ("r4", "r2"),
    ]


def test_majority_uses_vote_share_and_drops_equal_votes(voted: Dataset) -> None:
    out = to_pairs(voted, ties="drop", annotators="majority")
    expected = [
        ("r1", "r2", 1.0, 2),
        ("r2", "r3", 1.0, 1),
        ("r3", "r1", 2 / 3, 3),
        ("r4", "r3", 1.0, 1),
    ]
    assert _approx(_pairs(out, "chosen_id", "rejected_id", "strength", "n_votes")) == _approx(
        expected
    )


def test_unanimous_keeps_only_pairs_all_judges_agree_on(voted: Dataset) -> None:
    out = to_pairs(voted, ties="drop", annotators="unanimous")
    expected = [("r1", "r2", 1.0, 2), ("r2", "r3", 1.0, 1), ("r4", "r3", 1.0, 1)]
    assert _approx(_pairs(out, "chosen_id", "rejected_id", "strength", "n_votes")) == _approx(
        expected
    )


def test_single_judgments_keep_their_strength_and_texts() -> None:
    ds = build(
        prompts=[
            {"prompt_id": "p1", "messages": _u("Q1")},
            {"prompt_id": "p2", "messages": _u("Q2")},
        ],
        responses=_responses("p1", ["r1", "r2"]) + _responses("p2", ["r3", "r4"]),
        judgments=[
            _j("j1", "r1", "r2", -1, strength=3.0),
            _j("j2", "r3", "r4", 1, prompt_id="p2"),
        ],
    )
    out = to_pairs(ds)  # no ties, no repeats: no policy needed
    assert out.to_pylist() == [
        {
            "prompt_id": "p1",
            "chosen_id": "r2",
            "rejected_id": "r1",
            "prompt": "Q1",
            "chosen": "answer r2",
            "rejected": "answer r1",
            "strength": 3.0,
            "origin": "judgment",
            "n_votes": 1,
        },
        {
            "prompt_id": "p2",
            "chosen_id": "r3",
            "rejected_id": "r4",
            "prompt": "Q2",
            "chosen": "answer r3",
            "rejected": "answer r4",
            "strength": None,
            "origin": "judgment",
            "n_votes": 1,
        },
    ]


def test_majority_matches_a_plain_python_count() -> None:
    rng = random.Random(7)
    ids = [f"r{i}" for i in range(6)]
    judgments = []
    for n in range(300):
        a, b = rng.sample(ids, 2)
        judgments.append(_j(f"j{n:03d}", a, b, rng.choice([1, 1, -1, 0])))
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ids),
        judgments=judgments,
    )
    votes: dict[tuple[str, str], Counter[str]] = {}
    for j in judgments:
        if j["outcome"] == 0:
            continue
        win, lose = (j["a"], j["b"]) if j["outcome"] > 0 else (j["b"], j["a"])
        votes.setdefault(tuple(sorted((win, lose))), Counter())[win] += 1  # type: ignore[arg-type]
    expected = []
    for (x, y), c in votes.items():
        if c[x] != c[y]:
            win, lose = (x, y) if c[x] > c[y] else (y, x)
            n = c[x] + c[y]
            expected.append((win, lose, c[win] / n, n))
    out = to_pairs(ds, ties="drop", annotators="majority")
    assert _approx(_pairs(out, "chosen_id", "rejected_id", "strength", "n_votes")) == _approx(
        expected
    )
    each = to_pairs(ds, ties="drop", annotators="each")
    assert each.num_rows == sum(1 for j in judgments if j["outcome"] != 0)


# --- rankings -----------------------------------------------------------------------------------
@pytest.fixture
def ranked() -> Dataset:
    """Two rankings: [[r1], [r2, r3], [r4]] and, for p2, [[s1, s2], [s3]]."""
    return build(
        prompts=[
            {"prompt_id": "p1", "messages": _u("Q1")},
            {"prompt_id": "p2", "messages": _u("Q2")},
        ],
        responses=_responses("p1", ["r1", "r2", "r3", "r4"]) + _responses("p2", ["s1", "s2", "s3"]),
        rankings=[
            {"ranking_id": "k1", "prompt_id": "p1", "tiers": [["r1"], ["r2", "r3"], ["r4"]]},
            {
                "ranking_id": "k2",
                "prompt_id": "p2",
                "tiers": [["s1", "s2"], ["s3"]],
                "annotator_id": "u1",
            },
        ],
    )


RANKING_PAIRS = {
    "all": [
        ("r1", "r2", 1.0),
        ("r1", "r3", 1.0),
        ("r1", "r4", 2.0),
        ("r2", "r4", 1.0),
        ("r3", "r4", 1.0),
        ("s1", "s3", 1.0),
        ("s2", "s3", 1.0),
    ],
    "adjacent": [
        ("r1", "r2", 1.0),
        ("r1", "r3", 1.0),
        ("r2", "r4", 1.0),
        ("r3", "r4", 1.0),
        ("s1", "s3", 1.0),
        ("s2", "s3", 1.0),
    ],
    "best_vs_worst": [("r1", "r4", 2.0), ("s1", "s3", 1.0), ("s2", "s3", 1.0)],
    "best_vs_rest": [
        ("r1", "r2", 1.0),
        ("r1", "r3", 1.0),
        ("r1", "r4", 2.0),
        ("s1", "s3", 1.0),
        ("s2", "s3", 1.0),
    ],
}


def test_rankings_need_a_strategy(ranked: Dataset) -> None:
    with pytest.raises(PrefkitError, match="rankings") as err:
        to_pairs(ranked)
    for choice in PAIR_STRATEGIES:
        assert choice in str(err.value)


@pytest.mark.parametrize("strategy", PAIR_STRATEGIES)
def test_ranking_strategies_give_the_hand_listed_pairs(ranked: Dataset, strategy: str) -> None:
    out = to_pairs(ranked, rankings=strategy)
    assert _pairs(out) == RANKING_PAIRS[strategy]  # already sorted by prompt, chosen, rejected
    assert set(out.column("origin").to_pylist()) == {"ranking"}
    assert set(out.column("n_votes").to_pylist()) == {1}
    texts = {r["chosen_id"]: r["chosen"] for r in out.to_pylist()}
    assert all(texts[k] == f"answer {k}" for k in texts)


def test_rankings_are_ignored_next_to_judgments_unless_asked(ranked: Dataset) -> None:
    ds = ranked.with_tables(
        judgments=pa.table(
            {"judgment_id": ["j1"], "prompt_id": ["p1"], "a": ["r4"], "b": ["r1"], "outcome": [1]}
        )
    )
    assert _pairs(to_pairs(ds), "chosen_id", "rejected_id", "origin") == [("r4", "r1", "judgment")]
    both = to_pairs(ds, rankings="best_vs_worst")
    assert Counter(both.column("origin").to_pylist()) == {"judgment": 1, "ranking": 3}


# --- scores -------------------------------------------------------------------------------------
@pytest.fixture
def scored() -> Dataset:
    """Scores 5, 3, 3, 1 on p1; helpfulness is the reverse order (0, 2, 2, 4); p2 unscored."""
    return build(
        prompts=[
            {"prompt_id": "p1", "messages": _u("Q1")},
            {"prompt_id": "p2", "messages": _u("Q2")},
        ],
        responses=_responses(
            "p1",
            ["r1", "r2", "r3", "r4"],
            score=[5.0, 3.0, 3.0, 1.0],
            attributes=[[("helpfulness", 5.0 - s)] for s in (5.0, 3.0, 3.0, 1.0)],
        )
        + _responses("p2", ["s1", "s2"]),
    )


SCORE_PAIRS = {
    "all": [
        ("r1", "r2", 2.0),
        ("r1", "r3", 2.0),
        ("r1", "r4", 4.0),
        ("r2", "r4", 2.0),
        ("r3", "r4", 2.0),
    ],
    "adjacent": [("r1", "r2", 2.0), ("r1", "r3", 2.0), ("r2", "r4", 2.0), ("r3", "r4", 2.0)],
    "best_vs_worst": [("r1", "r4", 4.0)],
    "best_vs_rest": [("r1", "r2", 2.0), ("r1", "r3", 2.0), ("r1", "r4", 4.0)],
}


def test_scores_need_a_strategy(scored: Dataset) -> None:
    with pytest.raises(PrefkitError, match="scores"):
        to_pairs(scored)


@pytest.mark.parametrize("strategy", PAIR_STRATEGIES)
def test_score_strategies_give_the_hand_listed_pairs(scored: Dataset, strategy: str) -> None:
    out = to_pairs(scored, scores=strategy)
    assert _pairs(out) == SCORE_PAIRS[strategy]
    assert set(out.column("origin").to_pylist()) == {"score"}


HELPFULNESS_PAIRS = {
    "all": [
        ("r2", "r1", 2.0),
        ("r3", "r1", 2.0),
        ("r4", "r1", 4.0),
        ("r4", "r2", 2.0),
        ("r4", "r3", 2.0),
    ],
    "adjacent": [("r2", "r1", 2.0), ("r3", "r1", 2.0), ("r4", "r2", 2.0), ("r4", "r3", 2.0)],
    "best_vs_worst": [("r4", "r1", 4.0)],
    "best_vs_rest": [("r4", "r1", 4.0), ("r4", "r2", 2.0), ("r4", "r3", 2.0)],
}


@pytest.mark.parametrize("strategy", PAIR_STRATEGIES)
def test_score_key_names_an_attribute(scored: Dataset, strategy: str) -> None:
    # Helpfulness ranks the responses in the reverse order of score.
    out = to_pairs(scored, scores=strategy, score_key="helpfulness")
    assert _pairs(out) == HELPFULNESS_PAIRS[strategy]
    prefixed = to_pairs(scored, scores=strategy, score_key="attributes.helpfulness")
    assert _pairs(prefixed) == HELPFULNESS_PAIRS[strategy]


def test_unknown_attribute_gives_no_scores(scored: Dataset) -> None:
    # No response has this attribute, so there is nothing to pair and no policy is needed.
    assert to_pairs(scored, score_key="nope").num_rows == 0


@pytest.mark.parametrize(
    ("margin", "expected"),
    [
        (0.0, SCORE_PAIRS["all"]),
        (2.0, SCORE_PAIRS["all"]),  # the minimum gap is inclusive
        (2.5, [("r1", "r4", 4.0)]),
        (4.0, [("r1", "r4", 4.0)]),
        (4.5, []),
    ],
)
def test_score_margin(scored: Dataset, margin: float, expected: list[tuple[Any, ...]]) -> None:
    assert _pairs(to_pairs(scored, scores="all", margin=margin)) == expected


def test_score_margin_with_adjacent(scored: Dataset) -> None:
    # Margin filters the chosen strategy's pairs; it never creates new ones.
    assert _pairs(to_pairs(scored, scores="adjacent", margin=3.0)) == []


# --- conversational output ----------------------------------------------------------------------
def _one_pair(prompt_messages: list[dict[str, str]]) -> Dataset:
    return build(
        prompts=[{"prompt_id": "p1", "messages": prompt_messages}],
        responses=_responses("p1", ["r1", "r2"]),
        judgments=[_j("j1", "r1", "r2", 1)],
    )


def test_single_turn_prompt_gives_strings_by_default() -> None:
    out = to_pairs(_one_pair(_u("Hi")))
    assert out.schema.field("prompt").type == pa.string()
    assert out.schema.field("chosen").type == pa.string()
    assert out.column("prompt").to_pylist() == ["Hi"]


def test_multi_turn_prompt_gives_message_lists_by_default() -> None:
    turns = messages(("user", "Hi"), ("assistant", "Hello"), ("user", "Tell a joke"))
    out = to_pairs(_one_pair(turns))
    row = out.to_pylist()[0]
    assert row["prompt"] == turns
    assert row["chosen"] == _a("answer r1")
    assert row["rejected"] == _a("answer r2")


def test_system_turn_gives_message_lists_by_default() -> None:
    turns = messages(("system", "Be brief."), ("user", "Hi"))
    assert to_pairs(_one_pair(turns)).to_pylist()[0]["prompt"] == turns


def test_conversational_false_renders_a_transcript() -> None:
    turns = messages(
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Joke?")
    )
    row = to_pairs(_one_pair(turns), conversational=False).to_pylist()[0]
    assert row["prompt"] == "System: Be brief.\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Joke?"
    assert row["chosen"] == "answer r1"


def test_conversational_true_on_a_single_turn() -> None:
    row = to_pairs(_one_pair(_u("Hi")), conversational=True).to_pylist()[0]
    assert row["prompt"] == _u("Hi")
    assert row["chosen"] == _a("answer r1")


def test_empty_dataset_gives_an_empty_pair_table() -> None:
    out = to_pairs(Dataset())
    assert out.num_rows == 0
    assert out.column_names == PAIR_COLUMNS
    assert out.schema.field("prompt").type == pa.string()


def test_views_read_a_saved_dataset(voted: Dataset, tmp_path: Path) -> None:
    on_disk = load_dataset_dir(voted.save(tmp_path / "ds"))
    kw = {"ties": "drop", "annotators": "majority"}
    assert to_pairs(on_disk, **kw).equals(to_pairs(voted, **kw))
    assert to_battles(on_disk, ties="keep").equals(to_battles(voted, ties="keep"))


# --- battles ------------------------------------------------------------------------------------
def test_battles_need_a_tie_policy(voted: Dataset) -> None:
    with pytest.raises(PrefkitError, match="tie") as err:
        to_battles(voted)
    for choice in BATTLE_TIES:
        assert choice in str(err.value)


def test_battles_keep_ties_and_map_tie_kinds() -> None:
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2"], source=["gpt", "llama"]),
        judgments=[
            _j("j1", "r1", "r2", 1, annotator_id="u1"),
            _j("j2", "r1", "r2", -1, strength=0.7),
            _j("j3", "r2", "r1", 0, tie_kind="bad"),
            _j("j4", "r1", "r2", 0, tie_kind="good"),
            _j("j5", "r1", "r2", 0),
        ],
    )
    out = to_battles(ds, ties="keep")
    assert out.column_names == [
        "judgment_id",
        "prompt_id",
        "a",
        "b",
        "model_a",
        "model_b",
        "winner",
        "annotator_id",
        "strength",
    ]
    rows = [(r["judgment_id"], r["model_a"], r["model_b"], r["winner"]) for r in out.to_pylist()]
    assert rows == [
        ("j1", "gpt", "llama", "model_a"),
        ("j2", "gpt", "llama", "model_b"),
        ("j3", "llama", "gpt", "tie (bothbad)"),
        ("j4", "gpt", "llama", "tie"),
        ("j5", "gpt", "llama", "tie"),
    ]
    assert out.column("annotator_id").to_pylist()[0] == "u1"
    assert out.column("strength").to_pylist()[1] == 0.7
    dropped = to_battles(ds, ties="drop")
    assert dropped.column("judgment_id").to_pylist() == ["j1", "j2"]


def test_battles_without_ties_need_no_policy() -> None:
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2"], source=["gpt", "llama"]),
        judgments=[_j("j1", "r1", "r2", -1)],
    )
    assert to_battles(ds).column("winner").to_pylist() == ["model_b"]


def test_battles_refuse_responses_without_source() -> None:
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2"], source=["gpt", None]),
        judgments=[_j("j1", "r1", "r2", 1)],
    )
    with pytest.raises(PrefkitError, match="source"):
        to_battles(ds)


def test_battles_majority_merges_both_orders_of_a_pair(voted: Dataset) -> None:
    out = to_battles(voted, ties="keep", annotators="majority")
    got = {(r["a"], r["b"]): (r["model_a"], r["model_b"], r["winner"]) for r in out.to_pylist()}
    # One row per unordered pair of responses (votes counted whichever side each judge saw).
    assert got == {
        ("r1", "r2"): ("m1", "m2", "model_a"),
        ("r1", "r3"): ("m1", "m3", "model_b"),
        ("r2", "r3"): ("m2", "m3", "model_a"),
        ("r3", "r4"): ("m3", "m4", "model_b"),
        ("r2", "r4"): ("m2", "m4", "tie"),
    }
    dropped = to_battles(voted, ties="drop", annotators="majority")
    assert dropped.num_rows == 4


# --- lists --------------------------------------------------------------------------------------
def test_lists_from_rankings(ranked: Dataset) -> None:
    out = to_lists(ranked)
    rows = out.to_pylist()
    assert [r["ranking_id"] for r in rows] == ["k1", "k2"]
    assert rows[0]["response_ids"] == ["r1", "r2", "r3", "r4"]
    assert rows[0]["ranks"] == [1, 2, 2, 3]
    assert rows[0]["responses"] == ["answer r1", "answer r2", "answer r3", "answer r4"]
    assert rows[0]["prompt"] == "Q1"
    assert rows[0]["prompt_messages"] == _u("Q1")
    assert rows[1]["response_ids"] == ["s1", "s2", "s3"]
    assert rows[1]["ranks"] == [1, 1, 2]
    assert rows[1]["annotator_id"] == "u1"


def test_lists_from_scores(scored: Dataset) -> None:
    rows = to_lists(scored).to_pylist()
    assert len(rows) == 1  # p2 has no scored responses
    (row,) = rows
    assert row["prompt_id"] == "p1"
    assert row["response_ids"] == ["r1", "r2", "r3", "r4"]
    assert row["ranks"] == [1, 2, 2, 3]
    assert row["scores"] == [5.0, 3.0, 3.0, 1.0]
    assert row["ranking_id"] is None


def test_lists_from_an_attribute(scored: Dataset) -> None:
    (row,) = to_lists(scored, source="scores", score_key="helpfulness").to_pylist()
    assert row["response_ids"] == ["r4", "r2", "r3", "r1"]
    assert row["ranks"] == [1, 2, 2, 3]
    assert row["scores"] == [4.0, 2.0, 2.0, 0.0]


def test_lists_need_a_source_when_both_exist(ranked: Dataset) -> None:
    responses = ranked.responses.set_column(
        ranked.responses.column_names.index("score"),
        "score",
        pa.array([float(i) for i in range(ranked.responses.num_rows)]),
    )
    ds = ranked.with_tables(responses=responses)
    with pytest.raises(PrefkitError, match="source="):
        to_lists(ds)
    assert to_lists(ds, source="rankings").num_rows == 2
    assert to_lists(ds, source="scores").num_rows == 2


# --- policy names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("view", "kwarg", "choices"),
    [
        (to_pairs, "ties", TIES),
        (to_pairs, "annotators", ANNOTATORS),
        (to_pairs, "rankings", PAIR_STRATEGIES),
        (to_pairs, "scores", PAIR_STRATEGIES),
        (to_battles, "ties", BATTLE_TIES),
        (to_battles, "annotators", ("each", "majority")),
        (to_lists, "source", LIST_SOURCES),
    ],
)
def test_bad_policy_names_list_the_choices(view: Any, kwarg: str, choices: tuple[str, ...]) -> None:
    with pytest.raises(PrefkitError) as err:
        view(Dataset(), **{kwarg: "bogus"})
    msg = str(err.value)
    assert "bogus" in msg and kwarg in msg
    for choice in choices:
        assert choice in msg


def test_dataset_methods_delegate_to_the_views(voted: Dataset) -> None:
    kw = {"ties": "drop", "annotators": "each"}
    assert voted.to_pairs(**kw).equals(to_pairs(voted, **kw))
    assert voted.to_battles(ties="drop").equals(to_battles(voted, ties="drop"))


def test_scores_policy_alone_works_when_rankings_are_also_present() -> None:
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2", "r3"], score=[3.0, 1.0, 2.0]),
        rankings=[{"ranking_id": "k1", "prompt_id": "p1", "tiers": [["r2"], ["r1", "r3"]]}],
    )
    with pytest.raises(PrefkitError, match="rankings="):
        to_pairs(ds)
    out = to_pairs(ds, scores="best_vs_worst")
    assert _pairs(out, "chosen_id", "rejected_id", "origin") == [("r1", "r2", "score")]


def test_battles_keep_input_order_not_id_text_order() -> None:
    # Event ids sort as text ("f:10" < "f:2"); battles must come out in input order.
    judgments = [
        _j(f"f:{i}", "r1" if i % 2 else "r2", "r2" if i % 2 else "r1", 1) for i in range(12)
    ]
    ds = build(
        prompts=[{"prompt_id": "p1", "messages": _u("Q")}],
        responses=_responses("p1", ["r1", "r2"], source=["m1", "m2"]),
        judgments=judgments,
    )
    out = to_battles(ds)
    assert out.column("judgment_id").to_pylist() == [f"f:{i}" for i in range(12)]
