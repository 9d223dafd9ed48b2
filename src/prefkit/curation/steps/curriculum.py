"""Curriculum: stage preference pairs from easy to hard by their margin (Curry-DPO).

What
    Every judgment gets a margin; judgments are sorted by it, largest first, and cut into
    ``stages`` equal-size bins (quantile bins of the rank), written as the judgments meta
    column ``stage`` (1 = easiest). With ``order=true`` the judgments table is also
    reordered stage by stage, easiest first, so a trainer that reads it in order sees the
    curriculum.

Paper
    Pattnaik et al., 2024, "Curry-DPO: Enhancing Alignment using Curriculum Learning &
    Ranked Preferences": pairs built from ranked responses are ordered from easy to hard,
    easy meaning a large gap between the chosen and the rejected response's rating (rank
    or score difference), and DPO is trained stage by stage.

Margins (``by``)
    * ``strength``: the judgment's ``strength`` (score/rank gap from the ``pairs`` step,
      vote share, Likert magnitude).
    * ``score_gap``: ``outcome * (score(a) - score(b))`` from ``responses.score``: a
      pair whose rejected response scored higher has a negative margin (hardest).
    * ``rank_gap``: the same with ranks (tier positions, 1 = best, averaged over the
      prompt's rankings; without rankings, the dense rank of the scores within the
      prompt): ``outcome * (rank(b) - rank(a))``.
    * ``suspicion``: minus the noise check's flip probability
      (:func:`prefkit.diagnostics.checks.noise.suspicion`): likely-wrong labels last.
    A tie judgment's margin is minus the absolute gap (a tie between far-apart responses
    is hard). Judgments without a margin (missing score or strength) get a null stage
    and go last with ``order=true``; their count is in the lineage ``info``.

Deviations
    Curry-DPO trains on its stages in sequence; this step only writes them. Equal margins
    at a stage boundary are split by a hash of the judgment id (deterministic, unrelated
    to the input order), which keeps stages equal in size (they differ by at most one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from prefkit.curation.step import Outcome, Param, Step, register
from prefkit.engine import connect, scalar
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    import duckdb

    from prefkit.dataset import Dataset

NAME = "curriculum"
BY = ("strength", "score_gap", "rank_gap", "suspicion")
STAGE = "stage"


# --- margins ---------------------------------------------------------------------------------
def _signed(a: str, b: str, higher_is_better: bool) -> str:
    """SQL margin of a judgment from per-side values (ties: minus the absolute gap)."""
    gap = f"({a} - {b})" if higher_is_better else f"({b} - {a})"
    return f"CASE WHEN j.outcome = 0 THEN -abs({gap}) ELSE j.outcome * {gap} END"


def _rank_relation(con: duckdb.DuckDBPyConnection) -> str:
    """SQL for (response_id, rank): mean tier over rankings, else dense rank by score."""
    if scalar(con, "SELECT count(*) FROM _rankings"):
        return """SELECT response_id, avg(tier)::DOUBLE AS v FROM (
                    SELECT unnest(ids) AS response_id, tier FROM (
                      SELECT unnest(tiers) AS ids, generate_subscripts(tiers, 1) AS tier
                      FROM _rankings)) GROUP BY response_id"""
    if not scalar(con, "SELECT count(score) FROM _responses"):
        raise PrefkitError(
            f"curate {NAME}: by=rank_gap needs rankings or scored responses (parameter 'by')"
        )
    return """SELECT response_id,
                     dense_rank() OVER (PARTITION BY prompt_id ORDER BY score DESC)::DOUBLE AS v
              FROM _responses WHERE score IS NOT NULL"""


def _margin_sql(ds: Dataset, con: duckdb.DuckDBPyConnection, by: str) -> str:
    """SQL for (judgment_id, __ord, margin) of every judgment."""
    if by == "strength":
        return "SELECT judgment_id, __ord, strength::DOUBLE AS margin FROM _judgments j"
    if by == "suspicion":
        from prefkit.diagnostics.checks.noise import suspicion
        from prefkit.diagnostics.context import Context

        con.register("_susp", suspicion(Context(ds)))
        return """SELECT j.judgment_id, j.__ord, -s.suspicion AS margin FROM _judgments j
                  LEFT JOIN _susp s ON s.judgment_id = j.judgment_id"""
    if by == "score_gap":
        if not scalar(con, "SELECT count(score) FROM _responses"):
            raise PrefkitError(f"curate {NAME}: by=score_gap but no response has a score")
        values, better = "SELECT response_id, score AS v FROM _responses", True
    else:
        values, better = _rank_relation(con), False
    return f"""SELECT j.judgment_id, j.__ord, {_signed("va.v", "vb.v", better)} AS margin
               FROM _judgments j
               LEFT JOIN ({values}) va ON va.response_id = j.a
               LEFT JOIN ({values}) vb ON vb.response_id = j.b"""


# --- core ------------------------------------------------------------------------------------
def run(ds: Dataset, *, by: str, stages: int, order: bool) -> Outcome:
    """Write ``stage`` (1 = easiest = largest margin) on every judgment."""
    if stages < 1:
        raise PrefkitError(f"curate {NAME}: parameter 'stages' must be >= 1, got {stages}")
    judgments = ds.judgments
    con = connect()
    try:
        for name in ("responses", "judgments", "rankings"):
            con.register(f"_{name}", ds.ordered_relation(con, name))
        margins = _margin_sql(ds, con, by)
        # pos: 0-based rank by margin (largest first; equal margins by a hash of the id);
        # stage = the quantile bin of pos among the n judgments with a margin.
        staged = con.sql(
            f"""WITH m AS (SELECT *, row_number() OVER (ORDER BY margin DESC NULLS LAST,
                                   md5(judgment_id), judgment_id) - 1 AS pos,
                                 row_number() OVER (ORDER BY __ord) - 1 AS idx,
                                 count(margin) OVER () AS n FROM ({margins}))
                SELECT idx, margin,
                       CASE WHEN margin IS NULL THEN NULL
                            ELSE (pos * {int(stages)} // n + 1) END::INTEGER AS stage
                FROM m ORDER BY {"pos" if order else "idx"}"""
        ).to_arrow_table()
        con.register("_staged", staged)
        summary = con.sql(
            """SELECT stage, count(*) AS n, min(margin) AS lo, max(margin) AS hi
               FROM _staged GROUP BY stage ORDER BY stage NULLS LAST"""
        ).fetchall()
    finally:
        con.close()
    if order:
        judgments = judgments.take(staged.column("idx"))
    if STAGE in judgments.column_names:
        judgments = judgments.drop_columns([STAGE])
    judgments = judgments.append_column(STAGE, staged.column("stage").cast(pa.int32()))
    info = {
        "stages": [
            {"stage": s, "judgments": n, "margin_min": lo, "margin_max": hi}
            for s, n, lo, hi in summary
            if s is not None
        ],
        "unstaged": sum(n for s, n, _, _ in summary if s is None),
    }
    return Outcome({"judgments": judgments}, info=info)


# --- entry point -----------------------------------------------------------------------------
register(
    Step(
        name=NAME,
        summary="Stage pairs from easy (large margin) to hard as a judgments 'stage' column",
        run=run,
        params=(
            Param("by", "strength", "margin to order by", choices=BY),
            Param("stages", 3, "number of equal-size stages (quantile bins)"),
            Param("order", False, "also reorder the judgments table, easiest first"),
        ),
        paper="Pattnaik et al. 2024, Curry-DPO: Enhancing Alignment using Curriculum Learning "
        "& Ranked Preferences",
    )
)
