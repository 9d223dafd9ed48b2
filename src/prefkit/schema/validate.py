"""Integrity checks of a dataset against the data model.

Each check is one SQL query over the tables (DuckDB, so it runs on Parquet without
loading it) that returns the offending ids. Errors break the data model (dangling ids,
a response compared with itself, a judgment across prompts, duplicate ids, outcomes out
of range, rankings repeating an id); warnings are legal but usually unintended (empty
texts, one-response rankings, annotators missing from the annotators table).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from prefkit.engine import connect
from prefkit.schema.tables import ANNOTATOR_KINDS, TIE_KINDS

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

EXAMPLES = 5
_TEXT_EMPTY = (
    "coalesce(len(list_filter(messages, lambda m: trim(coalesce(m.content, '')) <> '')), 0) = 0"
)


@dataclass(frozen=True)
class Check:
    """One integrity rule: a query returning the ids that break it."""

    code: str
    severity: str  # "error" | "warning"
    table: str
    message: str
    sql: str


@dataclass
class Problem:
    """A rule that some rows break: how many, and a few example ids."""

    code: str
    severity: str
    table: str
    message: str
    count: int
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dup(table: str, key: str) -> str:
    return f"SELECT {key} FROM _{table} GROUP BY {key} HAVING count(*) > 1"


CHECKS: tuple[Check, ...] = (
    Check(
        "duplicate-prompt-id",
        "error",
        "prompts",
        "prompt_id appears more than once",
        _dup("prompts", "prompt_id"),
    ),
    Check(
        "duplicate-response-id",
        "error",
        "responses",
        "response_id appears more than once",
        _dup("responses", "response_id"),
    ),
    Check(
        "duplicate-judgment-id",
        "error",
        "judgments",
        "judgment_id appears more than once",
        _dup("judgments", "judgment_id"),
    ),
    Check(
        "duplicate-ranking-id",
        "error",
        "rankings",
        "ranking_id appears more than once",
        _dup("rankings", "ranking_id"),
    ),
    Check(
        "duplicate-annotator-id",
        "error",
        "annotators",
        "annotator_id appears more than once",
        _dup("annotators", "annotator_id"),
    ),
    Check(
        "dangling-response-prompt",
        "error",
        "responses",
        "response's prompt_id is not in prompts",
        "SELECT response_id FROM _responses WHERE prompt_id NOT IN (SELECT prompt_id FROM _prompts)",
    ),
    Check(
        "dangling-judgment-prompt",
        "error",
        "judgments",
        "judgment's prompt_id is not in prompts",
        "SELECT judgment_id FROM _judgments WHERE prompt_id NOT IN (SELECT prompt_id FROM _prompts)",
    ),
    Check(
        "dangling-judgment-response",
        "error",
        "judgments",
        "judgment's a or b is not in responses",
        """SELECT judgment_id FROM _judgments
           WHERE a NOT IN (SELECT response_id FROM _responses)
              OR b NOT IN (SELECT response_id FROM _responses)""",
    ),
    Check(
        "self-comparison",
        "error",
        "judgments",
        "a response is compared with itself (a = b)",
        "SELECT judgment_id FROM _judgments WHERE a = b",
    ),
    Check(
        "cross-prompt-judgment",
        "error",
        "judgments",
        "judgment compares responses that belong to another prompt",
        """SELECT j.judgment_id FROM _judgments j
           JOIN _responses ra ON ra.response_id = j.a JOIN _responses rb ON rb.response_id = j.b
           WHERE ra.prompt_id <> j.prompt_id OR rb.prompt_id <> j.prompt_id""",
    ),
    Check(
        "outcome-out-of-range",
        "error",
        "judgments",
        "outcome is not +1 (a), -1 (b) or 0 (tie)",
        "SELECT judgment_id FROM _judgments WHERE outcome NOT IN (-1, 0, 1)",
    ),
    Check(
        "bad-tie-kind",
        "error",
        "judgments",
        f"tie_kind is set on a non-tie or is not one of {', '.join(TIE_KINDS)}",
        f"""SELECT judgment_id FROM _judgments WHERE tie_kind IS NOT NULL
            AND (outcome <> 0 OR tie_kind NOT IN ({", ".join(repr(k) for k in TIE_KINDS)}))""",
    ),
    Check(
        "bad-annotator-kind",
        "error",
        "judgments",
        f"annotator_kind is not one of {', '.join(ANNOTATOR_KINDS)}",
        f"""SELECT judgment_id FROM _judgments WHERE annotator_kind IS NOT NULL
            AND annotator_kind NOT IN ({", ".join(repr(k) for k in ANNOTATOR_KINDS)})""",
    ),
    Check(
        "bad-strength",
        "error",
        "judgments",
        "strength is NaN or infinite",
        "SELECT judgment_id FROM _judgments WHERE isnan(strength) OR isinf(strength)",
    ),
    Check(
        "dangling-ranking-prompt",
        "error",
        "rankings",
        "ranking's prompt_id is not in prompts",
        "SELECT ranking_id FROM _rankings WHERE prompt_id NOT IN (SELECT prompt_id FROM _prompts)",
    ),
    Check(
        "ranking-repeats-id",
        "error",
        "rankings",
        "a ranking lists the same response more than once",
        "SELECT ranking_id FROM _rankings WHERE len(flatten(tiers)) <> len(list_distinct(flatten(tiers)))",
    ),
    Check(
        "ranking-foreign-response",
        "error",
        "rankings",
        "a ranking lists a response that is missing or belongs to another prompt",
        """SELECT DISTINCT k.ranking_id FROM
             (SELECT ranking_id, prompt_id, unnest(flatten(tiers)) AS rid FROM _rankings) k
           LEFT JOIN _responses r ON r.response_id = k.rid
           WHERE r.response_id IS NULL OR r.prompt_id <> k.prompt_id""",
    ),
    Check(
        "ranking-empty-tier",
        "error",
        "rankings",
        "a ranking has an empty tier",
        "SELECT ranking_id FROM _rankings WHERE list_contains(list_transform(tiers, lambda t: len(t)), 0)",
    ),
    Check(
        "ranking-too-short",
        "warning",
        "rankings",
        "a ranking orders fewer than two responses",
        "SELECT ranking_id FROM _rankings WHERE coalesce(len(flatten(tiers)), 0) < 2",
    ),
    Check(
        "empty-prompt",
        "warning",
        "prompts",
        "prompt has no text",
        f"SELECT prompt_id FROM _prompts WHERE {_TEXT_EMPTY}",
    ),
    Check(
        "empty-response",
        "warning",
        "responses",
        "response has no text and no media",
        f"SELECT response_id FROM _responses WHERE {_TEXT_EMPTY} AND coalesce(len(media), 0) = 0",
    ),
    Check(
        "score-not-finite",
        "error",
        "responses",
        "score or an attribute is NaN or infinite",
        """SELECT response_id FROM _responses WHERE isnan(score) OR isinf(score)
           OR list_bool_or(list_transform(map_values(attributes), lambda v: isnan(v) OR isinf(v)))""",
    ),
    Check(
        "unknown-annotator",
        "warning",
        "judgments",
        "annotator_id is not in the annotators table (which is not empty)",
        """SELECT judgment_id FROM _judgments WHERE annotator_id IS NOT NULL
           AND (SELECT count(*) FROM _annotators) > 0
           AND annotator_id NOT IN (SELECT annotator_id FROM _annotators)""",
    ),
)


def validate(ds: Dataset) -> list[Problem]:
    """Run every integrity check; return the rules that some rows break."""
    con = connect()
    for name in ("prompts", "responses", "judgments", "rankings", "annotators"):
        con.register(f"_{name}", ds.relation(con, name))
    problems = []
    for check in CHECKS:
        n, examples = con.execute(
            f"SELECT count(*), list(id ORDER BY id)[1:{EXAMPLES}] FROM (SELECT * FROM ({check.sql}) t(id))"
        ).fetchall()[0]
        if n:
            problems.append(
                Problem(
                    check.code,
                    check.severity,
                    check.table,
                    check.message,
                    int(n),
                    [str(e) for e in examples],
                )
            )
    con.close()
    return problems


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)
