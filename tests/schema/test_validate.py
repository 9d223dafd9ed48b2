"""Integrity checks: every registered check fires on a dataset built to break it.

The parametrised test below is the registry's contract test: it runs over
``prefkit.schema.validate.CHECKS``, so a new check without a breaking case fails here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from prefkit import Dataset
from prefkit.schema import TABLES, TableBuilder, messages
from prefkit.schema.validate import CHECKS, EXAMPLES, Problem, has_errors, validate

Rows = dict[str, list[dict[str, Any]]]


def _u(text: str) -> list[dict[str, str]]:
    return messages(("user", text))


def _a(text: str) -> list[dict[str, str]]:
    return messages(("assistant", text))


def _clean() -> Rows:
    """A small dataset that breaks no rule: two prompts, a judgment, a ranking, a judge."""
    return {
        "prompts": [
            {"prompt_id": "p1", "messages": _u("What is 2+2?")},
            {"prompt_id": "p2", "messages": _u("Name a colour.")},
        ],
        "responses": [
            {"response_id": "r1", "prompt_id": "p1", "messages": _a("4"), "score": 5.0},
            {"response_id": "r2", "prompt_id": "p1", "messages": _a("5"), "score": 1.0},
            {"response_id": "r3", "prompt_id": "p2", "messages": _a("red")},
            {"response_id": "r4", "prompt_id": "p2", "messages": _a("blue")},
        ],
        "judgments": [
            {
                "judgment_id": "j1",
                "prompt_id": "p1",
                "a": "r1",
                "b": "r2",
                "outcome": 1,
                "strength": 0.8,
                "annotator_id": "u1",
                "annotator_kind": "human",
            },
            {
                "judgment_id": "j2",
                "prompt_id": "p2",
                "a": "r3",
                "b": "r4",
                "outcome": 0,
                "tie_kind": "good",
                "annotator_id": "u1",
                "annotator_kind": "human",
            },
        ],
        "rankings": [{"ranking_id": "k1", "prompt_id": "p2", "tiers": [["r3"], ["r4"]]}],
        "annotators": [{"annotator_id": "u1", "group": "a"}],
    }


def _build(rows: Rows) -> Dataset:
    tables = {}
    for name in TABLES:
        b = TableBuilder(name)
        for r in rows.get(name, []):
            b.add(**r)
        tables[name] = b.build()
    return Dataset(tables)


def _judgment(**kw: Any) -> dict[str, Any]:
    row = {"judgment_id": "jx", "prompt_id": "p1", "a": "r1", "b": "r2", "outcome": 1}
    row.update(kw)
    return row


def _ranking(**kw: Any) -> dict[str, Any]:
    row = {"ranking_id": "kx", "prompt_id": "p2", "tiers": [["r3"], ["r4"]]}
    row.update(kw)
    return row


def _add(table: str, row: dict[str, Any]) -> Callable[[Rows], None]:
    return lambda rows: rows[table].append(row)


def _dup(table: str) -> Callable[[Rows], None]:
    return lambda rows: rows[table].append(dict(rows[table][0]))


# code -> (how to break exactly that rule, the ids it should report, other codes that
# necessarily fire with it)
BREAKERS: dict[str, tuple[Callable[[Rows], None], list[str], set[str]]] = {
    "duplicate-prompt-id": (_dup("prompts"), ["p1"], set()),
    "duplicate-response-id": (_dup("responses"), ["r1"], set()),
    "duplicate-judgment-id": (_dup("judgments"), ["j1"], set()),
    "duplicate-ranking-id": (_dup("rankings"), ["k1"], set()),
    "duplicate-annotator-id": (_dup("annotators"), ["u1"], set()),
    "dangling-response-prompt": (
        _add("responses", {"response_id": "r9", "prompt_id": "p9", "messages": _a("x")}),
        ["r9"],
        set(),
    ),
    # A judgment on a missing prompt either compares responses of that (missing) prompt or
    # responses of another one, so one more rule always fires with it.
    "dangling-judgment-prompt": (
        _add("judgments", _judgment(prompt_id="p9")),
        ["jx"],
        {"cross-prompt-judgment"},
    ),
    "dangling-judgment-response": (_add("judgments", _judgment(b="r9")), ["jx"], set()),
    "self-comparison": (_add("judgments", _judgment(b="r1")), ["jx"], set()),
    "cross-prompt-judgment": (_add("judgments", _judgment(b="r3")), ["jx"], set()),
    "outcome-out-of-range": (_add("judgments", _judgment(outcome=2)), ["jx"], set()),
    "bad-tie-kind": (_add("judgments", _judgment(outcome=1, tie_kind="good")), ["jx"], set()),
    "bad-annotator-kind": (_add("judgments", _judgment(annotator_kind="robot")), ["jx"], set()),
    "bad-strength": (_add("judgments", _judgment(strength=math.nan)), ["jx"], set()),
    "dangling-ranking-prompt": (
        _add("rankings", _ranking(prompt_id="p9")),
        ["kx"],
        {"ranking-foreign-response"},
    ),
    "ranking-repeats-id": (_add("rankings", _ranking(tiers=[["r3"], ["r3", "r4"]])), ["kx"], set()),
    "ranking-foreign-response": (_add("rankings", _ranking(tiers=[["r3"], ["r1"]])), ["kx"], set()),
    "ranking-empty-tier": (_add("rankings", _ranking(tiers=[["r3"], [], ["r4"]])), ["kx"], set()),
    "ranking-too-short": (_add("rankings", _ranking(tiers=[["r3"]])), ["kx"], set()),
    "empty-prompt": (
        _add("prompts", {"prompt_id": "p3", "messages": messages(("user", "  "))}),
        ["p3"],
        set(),
    ),
    "empty-response": (
        _add("responses", {"response_id": "r5", "prompt_id": "p1", "messages": _a("")}),
        ["r5"],
        set(),
    ),
    "score-not-finite": (
        _add(
            "responses",
            {
                "response_id": "r5",
                "prompt_id": "p1",
                "messages": _a("6"),
                "attributes": [("helpfulness", math.inf)],
            },
        ),
        ["r5"],
        set(),
    ),
    "unknown-annotator": (_add("judgments", _judgment(annotator_id="u2")), ["jx"], set()),
}


def test_clean_dataset_has_no_problems() -> None:
    assert validate(_build(_clean())) == []


def test_empty_dataset_has_no_problems() -> None:
    assert validate(Dataset()) == []


def test_every_check_has_a_breaking_case() -> None:
    assert {c.code for c in CHECKS} == set(BREAKERS)


def test_check_codes_are_unique_and_well_formed() -> None:
    codes = [c.code for c in CHECKS]
    assert len(codes) == len(set(codes))
    for c in CHECKS:
        assert c.severity in ("error", "warning")
        assert c.table in TABLES
        assert c.message


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.code)
def test_check_fires_on_a_dataset_that_breaks_it(check: Any) -> None:
    breaker, expected_ids, also = BREAKERS[check.code]
    rows = _clean()
    breaker(rows)
    problems = validate(_build(rows))
    by_code = {p.code: p for p in problems}
    assert set(by_code) == {check.code} | also
    p = by_code[check.code]
    assert p.severity == check.severity
    assert p.table == check.table
    assert p.message == check.message
    assert p.count == len(expected_ids)
    assert p.examples == expected_ids
    assert has_errors(problems) == any(q.severity == "error" for q in problems)


def test_score_not_finite_on_the_score_column() -> None:
    rows = _clean()
    rows["responses"][0]["score"] = math.nan
    assert [p.code for p in validate(_build(rows))] == ["score-not-finite"]


def test_tie_kind_outside_the_vocabulary() -> None:
    rows = _clean()
    rows["judgments"][1]["tie_kind"] = "meh"
    assert [p.code for p in validate(_build(rows))] == ["bad-tie-kind"]


def test_response_with_media_but_no_text_is_not_empty() -> None:
    rows = _clean()
    rows["responses"].append(
        {
            "response_id": "r5",
            "prompt_id": "p1",
            "messages": [],
            "media": [{"uri": "file://x.png", "mime": "image/png"}],
        }
    )
    assert validate(_build(rows)) == []


def test_unknown_annotator_is_silent_without_an_annotators_table() -> None:
    rows = _clean()
    rows["annotators"] = []
    rows["judgments"].append(_judgment(annotator_id="u2"))
    assert validate(_build(rows)) == []


def test_counts_and_examples_are_capped() -> None:
    rows = _clean()
    n = EXAMPLES + 3
    rows["judgments"] += [_judgment(judgment_id=f"s{i:02d}", b="r1") for i in range(n)]
    (p,) = validate(_build(rows))
    assert p.code == "self-comparison"
    assert p.count == n
    assert p.examples == [f"s{i:02d}" for i in range(EXAMPLES)]
    assert has_errors([p])
    assert Problem(**p.to_dict()) == p


def test_warnings_only_is_not_an_error() -> None:
    rows = _clean()
    rows["rankings"].append(_ranking(tiers=[["r3"]]))
    problems = validate(_build(rows))
    assert [p.severity for p in problems] == ["warning"]
    assert not has_errors(problems)


def test_validate_reads_a_saved_dataset(tmp_path: Any) -> None:
    rows = _clean()
    rows["judgments"].append(_judgment(b="r1"))
    saved = _build(rows).save(tmp_path / "ds")
    from prefkit.io.store import load_dataset_dir

    assert [p.code for p in validate(load_dataset_dir(saved))] == ["self-comparison"]
