"""Labels from several judges: majority vote, soft labels, disputed items, noisy labels.

An *item* is a prompt with an unordered pair of responses; every judgment of the same
prompt comparing the same two responses (in either display order) is a vote on it. Votes
are read in the item's canonical orientation (smaller response id first) and counted as
``votes_lo`` / ``votes_hi`` / ``votes_tie``; everything runs as one DuckDB group-by.

``majority``
    Collapse each item into one judgment with the plurality outcome (a tie is an outcome
    like the others) and ``strength`` = the share of votes it got. When two outcomes get
    the most votes, ``tie`` decides: ``drop`` the item or record a ``tie`` (strength
    null: no outcome won). Crowd-label aggregation by majority vote as evaluated by Snow,
    O'Connor, Jurafsky and Ng (2008), "Cheap and Fast — But is it Good? Evaluating
    Non-Expert Annotations for Natural Language Tasks".
``soft-labels``
    Collapse each item into one judgment whose outcome is the side with more votes and
    whose ``strength`` is the soft preference label p̂ = (votes for it + ½·tie votes) /
    votes, in [0.5, 1]: the probability that the chosen response is preferred, as used
    by soft-label DPO objectives (Furuta, Lee, Gu, Matsuo, Faust, Zen and Gur 2024,
    "Geometric-Averaged Preference Optimization for Soft Preference Labels"; they take
    p̂ from an AI judge, here it is the judges' vote share). Even votes (p̂ = ½) follow
    ``tie``: drop, or a tie with strength 0.5.
``drop-disputed``
    Drop every judgment of items with at least ``min_votes`` votes whose most common
    outcome has a vote share below ``min_agreement``.
``noise``
    Score every judgment with the inspect noise check (posterior flip probability,
    :func:`prefkit.diagnostics.checks.noise.suspicion`, fitted out of fold) and ``flip``
    those above ``threshold`` (outcome negated; meta column ``relabelled`` is true) or
    ``drop`` them. The method is the noisy Bradley–Terry flip model of Natarajan et al.
    (2013) / Chowdhury, Kini and Natarajan (2024, "Provably Robust DPO"), see
    docs/inspect/noise.md.

The collapsed judgment keeps the id, display order (a, b) and meta columns of the item's
first judgment in table order; ``annotator_id`` and ``rationale`` become null,
``annotator_kind`` is the judges' common kind (``unknown`` when they differ), and the meta
columns ``n_votes``, ``votes_a``, ``votes_b``, ``votes_tie`` (in that judgment's
orientation) record the count. Ties: ``tie_kind`` is the more common kind among the tie
votes (null when even or unrecorded). Deviations: none beyond the choices above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation.cascade import drop_rows
from prefkit.curation.step import Outcome, Param, Step, register, report_table
from prefkit.diagnostics.context import Context, InspectOptions
from prefkit.engine import connect
from prefkit.errors import PrefkitError
from prefkit.schema import conform

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

TIE_POLICIES = ("drop", "tie")
ACTIONS = ("flip", "drop")
VOTE_COLUMNS = ("n_votes", "votes_a", "votes_b", "votes_tie")

#: Per-item vote counts over ``_lj`` (ordered judgments), one row per item.
_ITEMS = """
WITH j AS (
    SELECT *, least(a, b) AS lo, greatest(a, b) AS hi,
           CASE WHEN a <= b THEN outcome ELSE -outcome END AS c
    FROM _lj)
SELECT prompt_id, lo, hi,
       count(*) AS n,
       count(*) FILTER (WHERE c > 0) AS v_lo,
       count(*) FILTER (WHERE c < 0) AS v_hi,
       count(*) FILTER (WHERE c = 0) AS v_tie,
       count(*) FILTER (WHERE c = 0 AND tie_kind = 'bad') AS t_bad,
       count(*) FILTER (WHERE c = 0 AND tie_kind = 'good') AS t_good,
       arg_min(judgment_id, __ord) AS carrier,
       count(DISTINCT coalesce(annotator_kind, 'unknown')) AS n_kinds,
       min(coalesce(annotator_kind, 'unknown')) AS kind
FROM j GROUP BY prompt_id, lo, hi
"""


def _items(ds: Dataset) -> tuple[duckdb.DuckDBPyConnection, pa.Table]:
    con = connect()
    con.register("_lj", ds.ordered_relation(con, "judgments"))
    con.register("_items", con.sql(_ITEMS).to_arrow_table())
    return con, ds.judgments


def _collapse(ds: Dataset, mode: str, tie: str) -> Outcome:
    """One judgment per item (see module docstring); ``mode`` is majority or soft."""
    con, j = _items(ds)
    if mode == "majority":
        decide = """
            CASE WHEN (v_lo = top)::INT + (v_hi = top)::INT + (v_tie = top)::INT > 1 THEN NULL
                 WHEN v_lo = top THEN 1 WHEN v_hi = top THEN -1 ELSE 0 END AS canon,
            top::DOUBLE / n AS share"""
        inner = "*, greatest(v_lo, v_hi, v_tie) AS top"
    else:
        decide = """
            CASE WHEN v_lo > v_hi THEN 1 WHEN v_hi > v_lo THEN -1 END AS canon,
            (greatest(v_lo, v_hi) + 0.5 * v_tie) / n AS share"""
        inner = "*"
    decided = con.sql(f"SELECT *, {decide} FROM (SELECT {inner} FROM _items)").to_arrow_table()
    con.register("_decided", decided)
    # Split votes: canon null. Policy 'tie' makes them ties, 'drop' drops the item.
    split_strength = "NULL" if mode == "majority" else "0.5"
    keep_cond = "TRUE" if tie == "tie" else "d.canon IS NOT NULL"
    new = con.sql(
        f"""SELECT j.* EXCLUDE (__ord, outcome, tie_kind, strength, annotator_id,
                                 annotator_kind, rationale{_exclude_votes(j)}),
                   (coalesce(d.canon, 0) * CASE WHEN j.a <= j.b THEN 1 ELSE -1 END)::TINYINT
                       AS outcome,
                   CASE WHEN coalesce(d.canon, 0) = 0 THEN
                        CASE WHEN d.t_bad > d.t_good THEN 'bad'
                             WHEN d.t_good > d.t_bad THEN 'good' END END AS tie_kind,
                   CASE WHEN d.canon IS NULL THEN {split_strength} ELSE d.share END AS strength,
                   NULL::VARCHAR AS annotator_id,
                   CASE WHEN d.n_kinds = 1 THEN d.kind ELSE 'unknown' END AS annotator_kind,
                   NULL::VARCHAR AS rationale,
                   d.n AS n_votes,
                   CASE WHEN j.a <= j.b THEN d.v_lo ELSE d.v_hi END AS votes_a,
                   CASE WHEN j.a <= j.b THEN d.v_hi ELSE d.v_lo END AS votes_b,
                   d.v_tie AS votes_tie
            FROM _lj j JOIN _decided d ON d.carrier = j.judgment_id
            WHERE {keep_cond}
            ORDER BY j.__ord"""
    ).to_arrow_table()
    split_items = con.sql(
        "SELECT j.judgment_id FROM _lj j JOIN _decided d USING (prompt_id) "
        "WHERE d.canon IS NULL AND least(j.a, j.b) = d.lo AND greatest(j.a, j.b) = d.hi"
    ).to_arrow_table()
    new = conform("judgments", new)
    ids = j.column("judgment_id")
    gone_mask = pc.invert(pc.is_in(ids, value_set=new.column("judgment_id")))
    gone = ids.filter(gone_mask)
    split_ids = split_items.column(0) if tie == "drop" else pa.array([], pa.string())
    is_split = pc.is_in(gone, value_set=split_ids)
    merged = gone.filter(pc.invert(is_split))
    dropped = gone.filter(is_split)
    why_merged = "merged by majority vote" if mode == "majority" else "merged into soft label"
    reasons = {"judgments": {k: v for k, v in ((why_merged, len(merged)),
                                                ("vote tie", len(dropped))) if v}}  # fmt: skip
    report = pa.concat_tables(
        [
            report_table("judgments", merged, why_merged),
            report_table("judgments", dropped, "vote tie"),
        ]
    )
    n_split = int(pc.sum(pc.is_null(decided.column("canon"))).as_py() or 0)
    info = {"items": decided.num_rows, "split_items": n_split}
    return Outcome({"judgments": new}, reasons={k: v for k, v in reasons.items() if v},
                   report=report, info=info)  # fmt: skip


def _exclude_votes(j: pa.Table) -> str:
    """The vote meta columns already present (a re-run replaces them)."""
    present = [c for c in VOTE_COLUMNS if c in j.column_names]
    return "".join(f", {c}" for c in present)


def run_majority(ds: Dataset, tie: str) -> Outcome:
    return _collapse(ds, "majority", tie)


def run_soft(ds: Dataset, tie: str) -> Outcome:
    return _collapse(ds, "soft", tie)


def run_disputed(ds: Dataset, min_agreement: float, min_votes: int) -> Outcome:
    if not 0.0 <= min_agreement <= 1.0:
        raise PrefkitError(
            f"curate drop-disputed: parameter 'min_agreement' must be in [0, 1], got {min_agreement}"
        )
    if min_votes < 1:
        raise PrefkitError(
            f"curate drop-disputed: parameter 'min_votes' must be >= 1, got {min_votes}"
        )
    con, _ = _items(ds)
    ids = con.sql(
        f"""SELECT j.judgment_id FROM _lj j JOIN _items d
            ON d.prompt_id = j.prompt_id AND d.lo = least(j.a, j.b) AND d.hi = greatest(j.a, j.b)
            WHERE d.n >= {int(min_votes)}
              AND greatest(d.v_lo, d.v_hi, d.v_tie)::DOUBLE / d.n < {float(min_agreement)!r}
            ORDER BY j.__ord"""
    ).to_arrow_table()
    return drop_rows(ds, f"disputed (agreement < {min_agreement:g})", judgments=ids.column(0))


def run_noise(ds: Dataset, action: str, threshold: float, seed: int) -> Outcome:
    if not 0.0 < threshold < 1.0:
        raise PrefkitError(
            f"curate noise: parameter 'threshold' must be in (0, 1), got {threshold}"
        )
    from prefkit.diagnostics.checks import noise

    ctx = Context(ds, InspectOptions(seed=seed, embed="never"))
    scores = noise.suspicion(ctx)
    j = ds.judgments
    # Align by id (the score table is in judgment order, but do not rely on it).
    pos = pc.index_in(j.column("judgment_id"), value_set=scores.column("judgment_id"))
    s = pc.take(scores.column("suspicion"), pos)
    flagged = np.asarray(pc.fill_null(pc.greater(s, threshold), False).to_numpy(
        zero_copy_only=False), bool)  # fmt: skip
    info = {"flagged": int(flagged.sum()), "scored": int(len(s) - pc.sum(pc.is_null(s)).as_py())}
    reason = f"noise: suspicion > {threshold:g}"
    if action == "drop":
        out = drop_rows(ds, reason, judgments=j.column("judgment_id").filter(pa.array(flagged)))
        out.info = info
        return out
    outcome = np.asarray(j.column("outcome").to_numpy(), np.int8)
    outcome = np.where(flagged, -outcome, outcome).astype(np.int8)
    new = j.set_column(j.schema.get_field_index("outcome"), "outcome", pa.array(outcome, pa.int8()))
    before = (
        np.asarray(
            pc.fill_null(j.column("relabelled").cast(pa.bool_()), False).to_numpy(
                zero_copy_only=False
            ),
            bool,
        )
        if "relabelled" in j.column_names
        else np.zeros(j.num_rows, bool)
    )
    relabelled = pa.array(before ^ flagged)  # flipping twice restores the label
    if "relabelled" in new.column_names:
        new = new.set_column(new.schema.get_field_index("relabelled"), "relabelled", relabelled)
    else:
        new = new.append_column("relabelled", relabelled)
    return Outcome({"judgments": new}, info={**info, "flipped": int(flagged.sum())})


register(
    Step(
        "majority",
        "collapse each item's judgments into one with the plurality outcome "
        "(strength = its vote share)",
        run_majority,
        (
            Param(
                "tie", "drop", "items whose top outcomes tie: drop them or make a tie", TIE_POLICIES
            ),
        ),
        paper="Snow, O'Connor, Jurafsky and Ng 2008, Cheap and Fast — But is it Good? "
        "Evaluating Non-Expert Annotations for Natural Language Tasks",
    )
)
register(
    Step(
        "soft-labels",
        "collapse each item's judgments into one soft label (strength = P(winner preferred))",
        run_soft,
        (Param("tie", "drop", "items with even votes: drop them or make a tie", TIE_POLICIES),),
        paper="Furuta, Lee, Gu, Matsuo, Faust, Zen and Gur 2024, Geometric-Averaged Preference "
        "Optimization for Soft Preference Labels",
    )
)
register(
    Step(
        "drop-disputed",
        "drop all judgments of items whose most common outcome has too small a vote share",
        run_disputed,
        (
            Param("min_agreement", 0.6, "least vote share of the most common outcome to keep"),
            Param("min_votes", 2, "items with fewer votes are never disputed"),
        ),
    )
)
register(
    Step(
        "noise",
        "flip or drop judgments the inspect noise check marks as likely flipped",
        run_noise,
        (
            Param("action", "flip", "flip the label (meta column relabelled) or drop it", ACTIONS),
            Param("threshold", 0.5, "posterior flip probability above which a label is acted on"),
            Param("seed", 0, "seed of the noise model's folds and sampling"),
        ),
        paper="Chowdhury, Kini and Natarajan 2024, Provably Robust DPO: Aligning Language Models "
        "with Noisy Feedback (flip model; Natarajan et al. 2013, Learning with Noisy Labels)",
    )
)

__all__ = ["ACTIONS", "TIE_POLICIES", "VOTE_COLUMNS"]
