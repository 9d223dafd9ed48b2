"""Stanford Human Preferences (SHP): pairs of Reddit comments ranked by community votes.

Implements the column layout of the ``stanfordnlp/SHP`` dataset card (Ethayarajh, Choi and
Swayamdipta, 2022, "Understanding Dataset Difficulty with V-Usable Information", ICML):
one row per pair of top-level comments to one post, with ``labels`` = 1 when comment A
(``human_ref_A``) is preferred, i.e. has the higher score although it was written later.

Mapping: ``history`` (the post) is the prompt, with ``post_id``, ``domain`` and
``upvote_ratio`` as prompt meta; ``human_ref_A`` / ``human_ref_B`` are the responses, with
their vote scores ``score_A`` / ``score_B`` as response scores and ``c_root_id_*``,
``created_at_utc_*`` as response meta; each row is one judgment (a = A, b = B) whose
strength is ``score_ratio`` (preferred score over dispreferred score), made by the voting
Reddit users (annotator kind ``human``, no annotator id).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefkit.engine import connect
from prefkit.errors import RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    need,
    number,
    optional,
    read_rows,
    register,
)
from prefkit.io.formats.sinks import write_table
from prefkit.io.formats.trl import extra_meta, keep_filled, pairs_view, query_table
from prefkit.schema import A_WINS, B_WINS

HISTORY, REF_A, REF_B, LABELS = "history", "human_ref_A", "human_ref_B", "labels"
SCORE_A, SCORE_B, SCORE_RATIO = "score_A", "score_B", "score_ratio"
PROMPT_META = ("post_id", "domain", "upvote_ratio")
SIDE_META = ("c_root_id", "created_at_utc")
SECONDS = "seconds_difference"
_KNOWN = frozenset(
    {HISTORY, REF_A, REF_B, LABELS, SCORE_A, SCORE_B, SCORE_RATIO, SECONDS, *PROMPT_META}
    | {f"{m}_{s}" for m in SIDE_META for s in "AB"}
)


# --- reading -------------------------------------------------------------------------------------
def _label(rec: dict[str, Any]) -> int:
    value = rec.get(LABELS)
    if value is None:
        raise RecordError(LABELS, "is missing")
    n = number(value, LABELS)
    if n == 1:
        return A_WINS
    if n == 0:
        return B_WINS
    raise RecordError(LABELS, f"expected 1 (A preferred) or 0 (B preferred), got {value!r}")


def _int(rec: dict[str, Any], key: str) -> int | None:
    n = number(rec.get(key), key)
    if n is None:
        return None
    # inf would raise OverflowError in int(); a huge value would not fit the int64 column.
    if not -(2**63) <= n < 2**63:
        raise RecordError(key, f"expected an integer, got {rec.get(key)!r}")
    return int(n)


def _side(rec: dict[str, Any], side: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    cid = rec.get(f"c_root_id_{side}")
    if cid is not None:
        meta["c_root_id"] = str(cid)
    created = _int(rec, f"created_at_utc_{side}")
    if created is not None:
        meta["created_at_utc"] = created
    return meta


def convert(rec: Any, emit: Emitter) -> None:
    history = need(rec, HISTORY)
    ref_a, ref_b = need(rec, REF_A), need(rec, REF_B)
    outcome = _label(rec)
    score_a, score_b = number(rec.get(SCORE_A), SCORE_A), number(rec.get(SCORE_B), SCORE_B)
    strength = number(rec.get(SCORE_RATIO), SCORE_RATIO)
    if strength is None and score_a is not None and score_b is not None:
        win, lose = (score_a, score_b) if outcome == A_WINS else (score_b, score_a)
        strength = win / lose if lose > 0 else None
    prompt_meta: dict[str, Any] = {}
    post_id = rec.get("post_id")
    if post_id is not None:
        prompt_meta["post_id"] = str(post_id)
    domain = optional(rec, "domain")
    if domain is not None:
        prompt_meta["domain"] = domain
    ratio = number(rec.get("upvote_ratio"), "upvote_ratio")
    if ratio is not None:
        prompt_meta["upvote_ratio"] = ratio
    pid = emit.prompt([{"role": "user", "content": history}], **prompt_meta)
    a = emit.response(
        pid, [{"role": "assistant", "content": ref_a}], score=score_a, **_side(rec, "A")
    )
    b = emit.response(
        pid, [{"role": "assistant", "content": ref_b}], score=score_b, **_side(rec, "B")
    )
    seconds = number(rec.get(SECONDS), SECONDS)
    extra = extra_meta(rec, _KNOWN)
    if seconds is not None:
        extra[SECONDS] = seconds
    emit.judgment(pid, a, b, outcome, strength=strength, annotator_kind="human", **extra)


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read SHP files (JSONL/JSON/Parquet/CSV) into canonical chunks."""
    return read_rows(paths, convert, options)


def sniff(sample: Sample) -> float:
    """0.95 when the rows have SHP's ``human_ref_A``/``human_ref_B`` and ``history`` or ``labels``."""
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs:
        return 0.0
    if all(REF_A in r and REF_B in r and (HISTORY in r or LABELS in r) for r in recs):
        return 0.95
    return 0.0


# --- writing -------------------------------------------------------------------------------------
def write(ds: Any, path: Path, options: dict[str, Any]) -> None:
    """Write SHP columns: ``history``, ``human_ref_A/B``, ``labels`` and what the data holds.

    A is the response the judgment listed first where a judgment orients the pair;
    otherwise (pairs from rankings or scores) the one whose id sorts first, so labels are
    not all 1. ``score_A/B`` come from response scores, ``score_ratio`` from the pair
    strength (else the score ratio); SHP meta columns are restored when present.
    """
    pairs = pairs_view(ds, options, conversational=False)
    con = connect()
    try:
        con.register("pairs", pairs)
        j = ds.relation(con, "judgments")
        r = ds.relation(con, "responses")
        p = ds.relation(con, "prompts")
        j.select("a, b").distinct().create_view("j")
        r.create_view("r")
        p.create_view("p")
        p_cols, r_cols = set(p.columns), set(r.columns)
        prompt_meta = [c for c in PROMPT_META if c in p_cols]
        side_meta = [c for c in SIDE_META if c in r_cols]
        select = [f"p.{c} AS {c}" for c in prompt_meta]
        select += ["x.prompt AS history"]
        for s in "AB":
            select += [f"r{s}.{c} AS {c}_{s}" for c in side_meta]
        select += [
            "CASE WHEN x.a_chosen THEN x.chosen ELSE x.rejected END AS human_ref_A",
            "CASE WHEN x.a_chosen THEN x.rejected ELSE x.chosen END AS human_ref_B",
            "CASE WHEN x.a_chosen THEN 1 ELSE 0 END::BIGINT AS labels",
            "rA.score AS score_A",
            "rB.score AS score_B",
            "coalesce(x.strength, CASE WHEN x.a_chosen THEN rA.score / nullif(rB.score, 0) "
            "ELSE rB.score / nullif(rA.score, 0) END) AS score_ratio",
        ]
        if "created_at_utc" in side_meta:
            select.append(
                "(CASE WHEN x.a_chosen THEN rA.created_at_utc - rB.created_at_utc "
                "ELSE rB.created_at_utc - rA.created_at_utc END)::DOUBLE AS seconds_difference"
            )
        sql = f"""
            WITH o AS (
                SELECT *, row_number() OVER () AS i,
                    CASE
                        WHEN EXISTS (SELECT 1 FROM j WHERE j.a = pairs.chosen_id AND j.b = pairs.rejected_id) THEN TRUE
                        WHEN EXISTS (SELECT 1 FROM j WHERE j.a = pairs.rejected_id AND j.b = pairs.chosen_id) THEN FALSE
                        ELSE chosen_id < rejected_id
                    END AS a_chosen
                FROM pairs
            ), x AS (
                SELECT *,
                    CASE WHEN a_chosen THEN chosen_id ELSE rejected_id END AS id_a,
                    CASE WHEN a_chosen THEN rejected_id ELSE chosen_id END AS id_b
                FROM o
            )
            SELECT {", ".join(select)}
            FROM x
            LEFT JOIN p ON p.prompt_id = x.prompt_id
            LEFT JOIN r AS rA ON rA.response_id = x.id_a
            LEFT JOIN r AS rB ON rB.response_id = x.id_b
            ORDER BY x.i
        """
        table = query_table(con, sql)
    finally:
        con.close()
    write_table(keep_filled(table, (HISTORY, REF_A, REF_B, LABELS)), path, options, fmt="shp")


register(
    Format(
        name="shp",
        summary="Stanford SHP: pairs of Reddit comments to a post, preferred by community votes",
        kinds=("pairwise", "scores"),
        sniff=sniff,
        read=read,
        write=write,
    )
)
