"""Pairs from ratings and rankings: materialise rule judgments from scored responses or
from rankings, so that the pairs a training run sees are rows with ids and a lineage
rather than a view computed on the fly.

What
    Responses are grouped into tiers, best first: for ``source="scores"`` the responses
    of one prompt by their score (dense rank, equal scores share a tier; the score is
    ``score``, one attribute, or an attribute-weighted overall score); for
    ``source="rankings"`` the tiers of each ranking. A strategy picks (chosen, rejected)
    pairs from the tiers; each becomes a judgment ``a = chosen, b = rejected, outcome =
    +1`` with ``strength`` = the score gap (scores) or the tier gap (rankings),
    ``annotator_kind = "rule"`` (the ranking's ``annotator_id`` for rankings) and meta
    columns ``origin`` ("scores"/"rankings") and ``strategy``.

Strategies (and their papers)
    * ``best-vs-worst``: the top tier against the bottom tier: UltraFeedback
      binarization (Cui et al., 2023, "UltraFeedback: Boosting Language Models with
      Scaled AI Feedback"; the variant discussed in Tunstall et al., 2023, "Zephyr:
      Direct Distillation of LM Alignment"). Tied best (or worst) responses give one pair
      each, as ``to_pairs(scores="best_vs_worst")`` does.
    * ``best-vs-random``: the best response against one other drawn at random, seeded:
      Zephyr's actual recipe (Tunstall et al., 2023, §3: "the highest mean score as the
      chosen response and one of the remaining three at random as rejected").
    * ``all-above-margin``: every pair whose score gap is at least ``margin`` (the
      "all pairs above a margin" binarization of UltraFeedback-style ratings).
    * ``all-ranked``: every pair from different tiers, strength = score or rank gap
      (Curry-DPO, Pattnaik et al., 2024, "Curry-DPO: Enhancing Alignment using Curriculum
      Learning & Ranked Preferences"; OSP-style strength-weighted pairs).
    * ``adjacent``: consecutive tiers only.

Ties (``ties``)
    ``drop``: equal scores / a shared tier give no pair. ``keep``: a pair of responses in
    the same tier that the strategy would compare becomes a tie judgment (outcome 0,
    strength 0): every same-tier pair for ``all-*`` and ``adjacent``; a prompt whose
    responses all tie for ``best-vs-worst``; a draw that lands on another best response
    for ``best-vs-random``.

Weights (``weights``)
    HelpSteer-style overall score: ``"helpfulness=0.65,correctness=0.8,coherence=0.45,
    complexity=0.55,verbosity=-0.4"`` — the weights NVIDIA publishes for folding
    the HelpSteer2 attributes into one reward (Nemotron-4-340B-Reward model card, 2024; the
    data: Wang et al., 2024, "HelpSteer2: Open-source dataset for training top-performing
    reward models"). The
    weighted sum is stored in the responses meta column ``weighted_score`` (null when a
    weighted attribute is missing) and used in place of ``score_key``.

Deviations
    Pairs are always written chosen-first (``a`` wins); re-sample sides downstream if a
    position-balanced table is needed. The SQL that builds tiers and pairs is
    :mod:`prefkit.views`' own (``to_pairs(scores=..., rankings=...)``), so the step and
    the view give the same pairs where strategies coincide (``best-vs-worst``,
    ``all-ranked``, ``adjacent``, ``all-above-margin`` with ``ties="drop"``).

Ids
    Content ids: ``pair:`` + md5 of (origin, ranking id or prompt id, chosen, rejected),
    so a re-run gives the same ids, and with ``replace=false`` a pair that is already a
    judgment is not added twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation.step import Outcome, Param, Step, register, report_table
from prefkit.engine import scalar
from prefkit.errors import PrefkitError
from prefkit.schema import concat, conform
from prefkit.views import connect_tables, ranking_tiers, score_expr, score_tiers, tiered_pairs

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

NAME = "pairs"
SOURCES = ("scores", "rankings")
STRATEGIES = ("best-vs-worst", "best-vs-random", "all-above-margin", "all-ranked", "adjacent")
TIES = ("drop", "keep")
#: Step strategy -> views.to_pairs strategy whose SQL it reuses.
VIEW_STRATEGY = {
    "best-vs-worst": "best_vs_worst",
    "all-above-margin": "all",
    "all-ranked": "all",
    "adjacent": "adjacent",
}
#: Which same-tier pairs become ties under ties="keep" (x, y: responses of one group).
TIE_CONDITION = {
    "best-vs-worst": "x.top = x.bottom",
    "all-above-margin": "TRUE",
    "all-ranked": "TRUE",
    "adjacent": "TRUE",
}
WEIGHTED = "weighted_score"


# --- helpers ---------------------------------------------------------------------------------
def parse_weights(text: str) -> dict[str, float]:
    """``"helpfulness=0.65,correctness=0.8"`` as ``{name: weight}``; PrefkitError naming
    ``weights`` when malformed."""
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip().removeprefix("attributes.")] = float(value)
        except ValueError:
            raise PrefkitError(
                f"curate {NAME}: parameter 'weights' expects name=number pairs separated by "
                f"commas, got {part.strip()!r}"
            ) from None
    if not out:
        raise PrefkitError(f"curate {NAME}: parameter 'weights' names no attribute")
    return out


def weighted_score(responses: pa.Table, weights: dict[str, float]) -> pa.Array:
    """Sum of ``weight * attributes[name]`` per response (null when one is missing)."""
    attrs = responses.column("attributes").combine_chunks()
    total: Any = pa.array([0.0] * responses.num_rows, pa.float64())
    for name, w in weights.items():
        value = pc.map_lookup(attrs, pa.scalar(name, pa.string()), "first")
        total = pc.add(total, pc.multiply(value.cast(pa.float64()), w))
    return total


def _tie_pairs(tiered: str, cond: str) -> str:
    """Same-tier pairs (x before y by id) meeting ``cond``, in tiered_pairs' columns."""
    return f"""WITH t AS (SELECT *, min(tier) OVER w AS top, max(tier) OVER w AS bottom
                         FROM ({tiered}) WINDOW w AS (PARTITION BY group_id))
               SELECT x.prompt_id, x.response_id AS win, y.response_id AS lose,
                      0.0::DOUBLE AS strength, 1 AS n_votes, x.__ord
               FROM t x JOIN t y ON x.group_id = y.group_id AND x.tier = y.tier
                    AND x.response_id < y.response_id AND {cond}"""


def _random_pairs(tiered: str, ties: str, seed: int) -> str:
    """One (best, other) pair per group, the other drawn by a seeded hash (Zephyr)."""
    other = "y.tier >= x.tier" if ties == "keep" else "y.tier > x.tier"
    return f"""WITH t AS (SELECT *, min(tier) OVER (PARTITION BY group_id) AS top
                         FROM ({tiered})),
               c AS (SELECT x.group_id, x.prompt_id, x.response_id AS win, y.response_id AS lose,
                            (y.gap - x.gap)::DOUBLE AS strength, 1 AS n_votes, x.__ord,
                            x.tier = y.tier AS tie,
                            row_number() OVER (PARTITION BY x.group_id ORDER BY
                               md5(concat_ws('|', {int(seed)}, x.group_id, x.response_id,
                                             y.response_id))) AS pick
                     FROM t x JOIN t y ON x.group_id = y.group_id AND x.tier = x.top
                          AND {other} AND x.response_id <> y.response_id)
               SELECT prompt_id, win, lose, strength, n_votes, __ord, tie FROM c WHERE pick = 1"""


def _pairs_sql(
    source: str, strategy: str, score_key: str, margin: float, ties: str, seed: int
) -> str:
    """SQL for (prompt_id, win, lose, strength, n_votes, __ord, tie) of the new pairs."""
    tiered = score_tiers(score_key) if source == "scores" else ranking_tiers()
    if strategy == "best-vs-random":
        return _random_pairs(tiered, ties, seed)
    parts = [f"SELECT *, FALSE AS tie FROM ({tiered_pairs(tiered, VIEW_STRATEGY[strategy])})"]
    if strategy == "all-above-margin":
        parts[0] += f" WHERE strength >= {float(margin)!r}"
    if ties == "keep":
        parts.append(f"SELECT *, TRUE AS tie FROM ({_tie_pairs(tiered, TIE_CONDITION[strategy])})")
    return " UNION ALL ".join(parts)


# --- core ------------------------------------------------------------------------------------
def run(
    ds: Dataset,
    *,
    source: str,
    strategy: str,
    margin: float,
    score_key: str,
    weights: str | None,
    ties: str,
    seed: int,
    replace: bool,
) -> Outcome:
    """Materialise judgments from scores or rankings (see the module docstring)."""
    if margin < 0:
        raise PrefkitError(f"curate {NAME}: parameter 'margin' must be >= 0, got {margin}")
    if margin and strategy != "all-above-margin":
        raise PrefkitError(
            f"curate {NAME}: parameter 'margin' applies to strategy all-above-margin only, "
            f"not {strategy}"
        )
    if weights and source != "scores":
        raise PrefkitError(f"curate {NAME}: parameter 'weights' needs source=scores")
    tables: dict[str, pa.Table] = {}
    view_ds = ds
    key = score_key
    if weights:
        parsed = parse_weights(weights)
        responses = ds.responses
        score = weighted_score(responses, parsed)
        if WEIGHTED in responses.column_names:
            responses = responses.drop_columns([WEIGHTED])
        tables["responses"] = responses.append_column(WEIGHTED, score)
        # The views' SQL ranks by `score`: hand it the weighted score under that name.
        view_ds = ds.with_tables(
            responses=responses.set_column(
                responses.schema.get_field_index("score"), "score", score
            )
        )
        key = "score"
    con = connect_tables(view_ds)
    try:
        if source == "scores":
            n = scalar(con, f"SELECT count({score_expr(key)}) FROM _responses")
            if not n:
                what = "the weighted score" if weights else f"score_key={score_key!r}"
                raise PrefkitError(
                    f"curate {NAME}: source=scores but no response has {what} "
                    "(parameter 'score_key' / 'weights')"
                )
            group = "p.prompt_id"
            annotator = "NULL::VARCHAR"
            join = ""
        else:
            if not scalar(con, "SELECT count(*) FROM _rankings"):
                raise PrefkitError(
                    f"curate {NAME}: source=rankings but the dataset has no rankings"
                )
            # A ranking's pairs carry the ranking's __ord: join back for its id and judge.
            group = "k.ranking_id"
            annotator = "k.annotator_id"
            join = "JOIN _rankings k ON k.__ord = p.__ord"
        sql = _pairs_sql(source, strategy, key, margin, ties, seed)
        new = con.sql(
            f"""SELECT 'pair:' || md5(concat_ws('|', '{source}', {group}, p.win, p.lose))
                         AS judgment_id,
                       p.prompt_id, p.win AS a, p.lose AS b,
                       CASE WHEN p.tie THEN 0 ELSE 1 END::TINYINT AS outcome,
                       NULL::VARCHAR AS tie_kind,
                       CASE WHEN p.tie THEN 0.0 ELSE p.strength END::DOUBLE AS strength,
                       {annotator} AS annotator_id, 'rule' AS annotator_kind,
                       NULL::VARCHAR AS rationale, '{source}' AS origin,
                       '{strategy}' AS strategy
                FROM ({sql}) p {join}
                ORDER BY p.__ord, p.win, p.lose"""
        ).to_arrow_table()
    finally:
        con.close()
    new = conform("judgments", new)
    old = ds.judgments
    reasons: dict[str, dict[str, int]] = {}
    report = None
    if replace:
        if old.num_rows:
            reasons["judgments"] = {"replaced by pairs": old.num_rows}
            report = report_table("judgments", old.column("judgment_id"), "replaced by pairs")
        kept = new
    else:
        fresh = pc.invert(pc.is_in(new.column("judgment_id"), value_set=old.column("judgment_id")))
        kept = concat("judgments", [old, new.filter(fresh)])
    tables["judgments"] = kept
    n_ties = int(pc.sum(pc.equal(new.column("outcome"), 0)).as_py() or 0)
    label = f"pairs from {source} ({strategy})"
    info = {"pairs": new.num_rows - n_ties, "ties": n_ties}
    return Outcome(
        tables,
        reasons=reasons,
        added={"judgments": {label: new.num_rows}},
        report=report,
        info=info,
    )


# --- entry point -----------------------------------------------------------------------------
register(
    Step(
        name=NAME,
        summary="Materialise rule judgments from scores/attributes or rankings "
        "(best-vs-worst, best-vs-random, all-above-margin, all-ranked, adjacent)",
        run=run,
        params=(
            Param("source", "scores", "where pairs come from", choices=SOURCES),
            Param("strategy", "best-vs-worst", "which pairs to build", choices=STRATEGIES),
            Param(
                "margin",
                0.0,
                "all-above-margin: minimum score/rank gap (a gap equal to it is kept)",
            ),
            Param("score_key", "score", "score or an attribute name to rank responses by"),
            Param(
                "weights",
                None,
                "attribute weights for an overall score, e.g. "
                "'helpfulness=0.65,correctness=0.8' (stored as responses.weighted_score)",
            ),
            Param(
                "ties",
                "drop",
                "equal scores / shared tier: no pair or a tie judgment",
                choices=TIES,
            ),
            Param("seed", 0, "seed of best-vs-random's draw"),
            Param("replace", False, "replace the existing judgments (else keep and add)"),
        ),
        paper="Cui et al. 2023 (UltraFeedback); Tunstall et al. 2023 (Zephyr); Pattnaik et al. "
        "2024 (Curry-DPO); Wang et al. 2024 (HelpSteer2)",
    )
)
