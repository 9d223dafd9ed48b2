"""Flat views of a dataset: training pairs, arena battles and ranked lists.

A flat ``(prompt, chosen, rejected)`` table is a *view* of the canonical tables. Turning
ties, several judges per pair, rankings and ratings into pairs needs a decision, and the
decision is always an explicit argument: a view whose data calls for a policy that was
not given raises :class:`~prefkit.errors.PrefkitError` saying which, never picking one
silently.

The views are DuckDB queries over the tables (in memory or Parquet on disk), so they
stream and spill rather than hold every text in Python.

Pair strategies for rankings and ratings follow the usual recipes:

* ``all``            every pair from different tiers / with a score gap above ``margin``
                     (as in the Plackett–Luce to pairwise reduction used by OASST reward
                     models and RankDPO)
* ``adjacent``       consecutive tiers / consecutive distinct scores only
* ``best_vs_worst``  the top response against the bottom one (UltraFeedback binarization,
                     Cui et al. 2023, "UltraFeedback")
* ``best_vs_rest``   the top response against each other one (Curry-DPO style pairs,
                     Pattnaik et al. 2024)

``strength`` is the tier gap for rankings, the score gap for ratings, the judge's own
strength for single judgments and the vote share of the winner under ``majority``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prefkit.engine import connect, scalar
from prefkit.errors import PrefkitError
from prefkit.io.gather import Gatherer

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

TIES = ("drop", "error")
BATTLE_TIES = ("keep", "drop")
ANNOTATORS = ("each", "majority", "unanimous")
PAIR_STRATEGIES = ("all", "adjacent", "best_vs_worst", "best_vs_rest")
LIST_SOURCES = ("rankings", "scores")


def _check(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise PrefkitError(f"{name}={value!r} is not a policy; choose one of {', '.join(allowed)}")


def connect_tables(ds: Dataset) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``_prompts``, ``_responses``, ``_judgments``, ``_rankings``."""
    # Every table carries `__ord`, its input row order, so views keep the input order.
    con = connect()
    for name in ("prompts", "responses", "judgments", "rankings"):
        con.register(f"_{name}", ds.ordered_relation(con, name))
    return con


# --- SQL fragments ----------------------------------------------------------------------------
_ROLE = {"user": "Human", "assistant": "Assistant", "system": "System"}


def score_expr(score_key: str, alias: str = "") -> str:
    """SQL for the value responses are ranked by: ``score`` or one named attribute."""
    prefix = f"{alias}." if alias else ""
    if score_key == "score":
        return f"{prefix}score"
    key = score_key.removeprefix("attributes.").replace("'", "''")
    return f"element_at({prefix}attributes, '{key}')[1]"


def _judgment_pairs(
    con: duckdb.DuckDBPyConnection, ties: str | None, annotators: str | None
) -> str:
    """SQL for (prompt_id, win, lose, strength, n_votes) rows from judgments."""
    n_ties = scalar(con, "SELECT count(*) FROM _judgments WHERE outcome = 0")
    if n_ties and ties is None:
        raise PrefkitError(
            f"the dataset has {n_ties:,} tie judgments, which cannot be (chosen, rejected) pairs: "
            "pass ties='drop' to leave them out or ties='error' to refuse"
        )
    if n_ties and ties == "error":
        raise PrefkitError(f"ties='error': the dataset has {n_ties:,} tie judgments")
    multi = scalar(
        con,
        """SELECT count(*) FROM (SELECT 1 FROM _judgments WHERE outcome <> 0
           GROUP BY prompt_id, least(a, b), greatest(a, b) HAVING count(*) > 1)""",
    )
    if multi and annotators is None:
        raise PrefkitError(
            f"{multi:,} pairs were judged more than once: pass annotators='each' (one row per "
            "judgment), 'majority' (majority vote, equal votes dropped) or 'unanimous'"
        )
    decisive = """SELECT prompt_id, CASE WHEN outcome > 0 THEN a ELSE b END AS win,
                  CASE WHEN outcome > 0 THEN b ELSE a END AS lose, strength, __ord
                  FROM _judgments WHERE outcome <> 0"""
    if annotators in (None, "each"):
        return f"SELECT prompt_id, win, lose, strength, 1 AS n_votes, __ord FROM ({decisive})"
    agg = f"""SELECT prompt_id, least(win, lose) AS x, greatest(win, lose) AS y,
                     count(*) FILTER (win = least(win, lose)) AS vx,
                     count(*) FILTER (win <> least(win, lose)) AS vy, min(__ord) AS __ord
              FROM ({decisive}) GROUP BY prompt_id, x, y"""
    keep = "vx <> vy" if annotators == "majority" else "(vx = 0) <> (vy = 0)"
    return f"""SELECT prompt_id, CASE WHEN vx > vy THEN x ELSE y END AS win,
                      CASE WHEN vx > vy THEN y ELSE x END AS lose,
                      greatest(vx, vy) / (vx + vy) AS strength, (vx + vy) AS n_votes, __ord
               FROM ({agg}) WHERE {keep}"""


def tiered_pairs(tiered: str, strategy: str) -> str:
    """Pairs from a relation (group_id, prompt_id, response_id, tier) with tier 1 = best."""
    cond = {
        "all": "x.tier < y.tier",
        "adjacent": "y.tier = x.tier + 1",
        "best_vs_worst": "x.tier = x.top AND y.tier = y.bottom AND x.tier < y.tier",
        "best_vs_rest": "x.tier = x.top AND y.tier > x.tier",
    }[strategy]
    return f"""WITH t AS (SELECT *, min(tier) OVER w AS top, max(tier) OVER w AS bottom
                         FROM ({tiered}) WINDOW w AS (PARTITION BY group_id))
               SELECT x.prompt_id, x.response_id AS win, y.response_id AS lose,
                      (y.gap - x.gap)::DOUBLE AS strength, 1 AS n_votes, x.__ord
               FROM t x JOIN t y ON x.group_id = y.group_id AND {cond}"""


def ranking_tiers() -> str:
    """SQL for (group_id, prompt_id, response_id, tier, gap, __ord) from rankings."""
    return """SELECT ranking_id AS group_id, prompt_id, unnest(ids) AS response_id,
                     tier, tier AS gap, __ord
              FROM (SELECT ranking_id, prompt_id, __ord, unnest(tiers) AS ids,
                           generate_subscripts(tiers, 1) AS tier FROM _rankings)"""


def score_tiers(score_key: str) -> str:
    """SQL for (group_id, prompt_id, response_id, tier, gap, __ord) from response scores."""
    # Dense rank by score (equal scores share a tier); `gap` is minus the score so that
    # gap(lose) - gap(win) is the score difference.
    expr = score_expr(score_key)
    return f"""SELECT prompt_id AS group_id, prompt_id, response_id,
                      dense_rank() OVER (PARTITION BY prompt_id ORDER BY s DESC) AS tier,
                      -s AS gap, __ord
               FROM (SELECT prompt_id, response_id, {expr} AS s, __ord FROM _responses)
               WHERE s IS NOT NULL"""


def _need_policy(kind: str, n: int, arg: str) -> PrefkitError:
    return PrefkitError(
        f"the dataset has {n:,} {kind} and no policy turns them into pairs: pass {arg}= one of "
        f"{', '.join(PAIR_STRATEGIES)} (or use them elsewhere and drop them)"
    )


# --- views ------------------------------------------------------------------------------------
def to_pairs(ds: Dataset, **policy: Any) -> pa.Table:
    """The (prompt, chosen, rejected) view as one table; see :func:`pairs_reader`."""
    return pairs_reader(ds, **policy).read_all()


def pairs_reader(
    ds: Dataset,
    *,
    ties: str | None = None,
    annotators: str | None = None,
    rankings: str | None = None,
    scores: str | None = None,
    score_key: str = "score",
    margin: float = 0.0,
    conversational: bool | None = None,
    batch_rows: int = 50_000,
) -> pa.RecordBatchReader:
    """The (prompt, chosen, rejected) view, streamed in record batches.

    DuckDB runs the joins under prefkit's memory limit (spilling past it), so writing a
    large view batch by batch keeps memory bounded.

    Parameters
    ----------
    ties
        ``"drop"`` leaves tie judgments out; ``"error"`` refuses data with ties. Needed
        only when the data has ties.
    annotators
        When a pair was judged more than once: ``"each"`` gives a row per judgment,
        ``"majority"`` a row per pair won by the majority of decisive votes (equal votes
        are dropped; strength = vote share), ``"unanimous"`` only pairs all judges agree on.
    rankings, scores
        Pair strategy for rankings and for scored responses: ``"all"``, ``"adjacent"``,
        ``"best_vs_worst"`` or ``"best_vs_rest"``. Needed when the dataset has rankings or
        scores and no judgments; when it has judgments too, rankings/scores are used only
        if a strategy is given.
    score_key
        ``"score"`` or the name of an attribute (``"helpfulness"``) to rank responses by.
    margin
        Minimum score difference for a pair from scores (a gap equal to it is kept).
    conversational
        Message lists (True) or plain strings (False); None picks lists when any prompt
        has several turns or a system turn.

    batch_rows
        Rows per record batch.

    Returns
    -------
    pyarrow.RecordBatchReader
        ``prompt_id, chosen_id, rejected_id, prompt, chosen, rejected, strength, origin,
        n_votes``.
    """
    _check("ties", ties, TIES)
    _check("annotators", annotators, ANNOTATORS)
    _check("rankings", rankings, PAIR_STRATEGIES)
    _check("scores", scores, PAIR_STRATEGIES)
    con = connect_tables(ds)
    n_j = scalar(con, "SELECT count(*) FROM _judgments")
    n_r = scalar(con, "SELECT count(*) FROM _rankings")
    n_s = scalar(con, f"SELECT count({score_expr(score_key)}) FROM _responses")
    parts = []
    if n_j:
        parts.append(
            f"SELECT *, 'judgment' AS origin FROM ({_judgment_pairs(con, ties, annotators)})"
        )
    if not n_j and not rankings and not scores and (n_r or n_s):
        # Nothing would come out: say which policy turns what the data has into pairs.
        if n_r:
            raise _need_policy("rankings", n_r, "rankings")
        raise _need_policy(f"scored responses ({score_key})", n_s, "scores")
    if n_r and rankings:
        parts.append(
            f"SELECT *, 'ranking' AS origin FROM ({tiered_pairs(ranking_tiers(), rankings)})"
        )
    if n_s and scores:
        q = tiered_pairs(score_tiers(score_key), scores)
        parts.append(f"SELECT *, 'score' AS origin FROM ({q}) WHERE strength >= {float(margin)!r}")
    if not parts:
        con.close()
        empty = _empty_pairs(bool(conversational))
        return pa.RecordBatchReader.from_batches(empty.schema, empty.to_batches())
    if conversational is None:
        conversational = bool(
            scalar(
                con,
                """SELECT count(*) FROM _prompts WHERE len(messages) > 1
                   OR list_contains(list_transform(messages, lambda x: x.role), 'system')""",
            )
        )
    keys: Iterable[pa.RecordBatch]
    if len(parts) == 1 and n_j and annotators in (None, "each"):
        # The common case (one row per decisive judgment) needs no query: stream the
        # judgments in input order.
        keys = _judgment_keys(ds, batch_rows)
        con.close()  # the policy checks are done; free DuckDB's memory before streaming
    else:
        union = " UNION ALL ".join(f"SELECT {i} AS part, * FROM ({q})" for i, q in enumerate(parts))
        keys = con.sql(
            f"""SELECT prompt_id, win AS chosen_id, lose AS rejected_id, strength::DOUBLE AS strength,
                       origin, n_votes::BIGINT AS n_votes
                FROM ({union}) ORDER BY part, __ord, chosen_id, rejected_id"""
        ).to_arrow_reader(batch_rows)
    prompts = Gatherer(ds, "prompts", "prompt_id", "messages")
    responses = Gatherer(ds, "responses", "response_id", "messages")
    schema = _empty_pairs(conversational).schema

    def batches() -> Iterator[pa.RecordBatch]:
        for k in keys:
            p = prompts.take(k.column("prompt_id"))
            c = responses.take(k.column("chosen_id"))
            r = responses.take(k.column("rejected_id"))
            if not conversational:
                p, c, r = prompt_text(p), messages_text(c), messages_text(r)
            yield pa.RecordBatch.from_arrays(
                [k.column(0), k.column(1), k.column(2), p, c, r, *k.columns[3:]], schema=schema
            )
        con.close()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _judgment_keys(ds: Dataset, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Key rows (prompt, chosen, rejected, strength, origin, n_votes) of every decisive
    judgment, in input order, read batch by batch."""
    columns = ["prompt_id", "a", "b", "outcome", "strength"]
    files = ds.files("judgments")
    if files is None:
        source: Iterable[pa.RecordBatch] = ds.judgments.select(columns).to_batches(batch_rows)
    else:
        source = (
            b
            for f in files
            for b in pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)
        )
    for b in source:
        b = b.filter(pc.not_equal(b.column("outcome"), 0))
        if not b.num_rows:
            continue
        a_won = pc.greater(b.column("outcome"), 0)
        yield pa.RecordBatch.from_arrays(
            [
                b.column("prompt_id"),
                pc.if_else(a_won, b.column("a"), b.column("b")),
                pc.if_else(a_won, b.column("b"), b.column("a")),
                b.column("strength").cast(pa.float64()),
                pa.repeat("judgment", b.num_rows).cast(pa.string()),
                pa.repeat(1, b.num_rows).cast(pa.int64()),
            ],
            names=["prompt_id", "chosen_id", "rejected_id", "strength", "origin", "n_votes"],
        )


def messages_text(msgs: pa.Array) -> pa.Array:
    """Plain text of each message list: the contents joined by blank lines (vectorised)."""
    lengths = pc.fill_null(pc.list_value_length(msgs), 0)
    flat = pc.list_flatten(msgs)
    content = pc.fill_null(pc.struct_field(flat, "content"), "")
    if pc.all(pc.equal(lengths, 1)).as_py() and len(content) == len(msgs):
        return content
    return _join_lists(lengths, content)


def prompt_text(msgs: pa.Array) -> pa.Array:
    """A prompt's text: one user turn as it is, several turns as an HH-style transcript
    ("Human: ...\n\nAssistant: ...") so that no turn is lost (vectorised)."""
    lengths = pc.fill_null(pc.list_value_length(msgs), 0)
    flat = pc.list_flatten(msgs)
    content = pc.fill_null(pc.struct_field(flat, "content"), "")
    role = pc.fill_null(pc.struct_field(flat, "role"), "")
    single = pc.and_(pc.equal(lengths, 1), pc.equal(_first_role(msgs), "user"))
    if pc.all(single).as_py():
        return content
    label = role
    for raw, shown in _ROLE.items():
        label = pc.if_else(pc.equal(role, raw), shown, label)
    transcript = _join_lists(lengths, pc.binary_join_element_wise(label, content, ": "))
    first = pc.list_element(
        pc.if_else(pc.greater(lengths, 0), msgs, pa.nulls(len(msgs), msgs.type)), 0
    )
    return pc.if_else(single, pc.fill_null(pc.struct_field(first, "content"), ""), transcript)


def _first_role(msgs: pa.Array) -> pa.Array:
    safe = pc.if_else(
        pc.greater(pc.fill_null(pc.list_value_length(msgs), 0), 0),
        msgs,
        pa.nulls(len(msgs), msgs.type),
    )
    return pc.fill_null(pc.struct_field(pc.list_element(safe, 0), "role"), "")


def _join_lists(lengths: pa.Array, values: pa.Array) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths.to_numpy(zero_copy_only=False))]).astype(
        np.int32
    )
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), "\n\n")


def _empty_pairs(conversational: bool) -> pa.Table:
    from prefkit.schema.tables import MESSAGES

    text = MESSAGES if conversational else pa.string()
    return pa.schema(
        [
            ("prompt_id", pa.string()),
            ("chosen_id", pa.string()),
            ("rejected_id", pa.string()),
            ("prompt", text),
            ("chosen", text),
            ("rejected", text),
            ("strength", pa.float64()),
            ("origin", pa.string()),
            ("n_votes", pa.int64()),
        ]
    ).empty_table()


def to_battles(ds: Dataset, *, ties: str | None = None, annotators: str = "each") -> pa.Table:
    """Arena battles: one row per judgment with the two responses' models.

    Parameters
    ----------
    ties
        ``"keep"`` (winner ``tie`` / ``tie (bothbad)``) or ``"drop"``; needed when the data
        has ties.
    annotators
        ``"each"`` keeps every judgment (the Chatbot Arena convention); ``"majority"``
        reduces several judgments of one pair of responses to the majority outcome
        (equal votes become a tie; ``strength`` is the vote margin |mean outcome|, ties
        counting 0).

    Returns
    -------
    pyarrow.Table
        ``judgment_id, prompt_id, a, b, model_a, model_b, winner, annotator_id, strength``.
    """
    _check("ties", ties, BATTLE_TIES)
    _check("annotators", annotators, ("each", "majority"))
    con = connect_tables(ds)
    n_ties = scalar(con, "SELECT count(*) FROM _judgments WHERE outcome = 0")
    if n_ties and ties is None:
        raise PrefkitError(
            f"the dataset has {n_ties:,} tie judgments: pass ties='keep' or ties='drop'"
        )
    unknown = scalar(
        con,
        """SELECT count(*) FROM _judgments j
           LEFT JOIN _responses ra ON ra.response_id = j.a
           LEFT JOIN _responses rb ON rb.response_id = j.b
           WHERE ra.source IS NULL OR rb.source IS NULL""",
    )
    if unknown:
        con.close()
        raise PrefkitError(
            f"{unknown:,} judgments compare responses without a source (model): battles need "
            "responses.source to be set"
        )
    base = "SELECT * FROM _judgments"
    if annotators == "majority":
        # One pair of responses whichever side each judge saw them on: orient every vote
        # as (least id, greatest id) before counting.
        base = """SELECT min(judgment_id) AS judgment_id, prompt_id, x AS a, y AS b,
                         sign(sum(o))::TINYINT AS outcome, NULL::VARCHAR AS tie_kind,
                         NULL::VARCHAR AS annotator_id, abs(avg(o)) AS strength,
                         min(__ord) AS __ord
                  FROM (SELECT judgment_id, prompt_id, least(a, b) AS x, greatest(a, b) AS y,
                               CASE WHEN a <= b THEN outcome ELSE -outcome END AS o, __ord
                        FROM _judgments)
                  GROUP BY prompt_id, x, y"""
    where = "WHERE j.outcome <> 0" if ties == "drop" else ""
    sql = f"""
        SELECT j.judgment_id, j.prompt_id, j.a, j.b, ra.source AS model_a, rb.source AS model_b,
               CASE WHEN j.outcome > 0 THEN 'model_a' WHEN j.outcome < 0 THEN 'model_b'
                    WHEN j.tie_kind = 'bad' THEN 'tie (bothbad)' ELSE 'tie' END AS winner,
               j.annotator_id, j.strength::DOUBLE AS strength
        FROM ({base}) j
        JOIN _responses ra ON ra.response_id = j.a
        JOIN _responses rb ON rb.response_id = j.b
        {where}
        ORDER BY j.__ord"""
    out = con.sql(sql).to_arrow_table()
    con.close()
    return out


def to_lists(ds: Dataset, *, source: str | None = None, score_key: str = "score") -> pa.Table:
    """Ranked lists: one row per ranking (``source="rankings"``) or per prompt with scored
    responses (``source="scores"``), responses ordered best first.

    Returns
    -------
    pyarrow.Table
        ``prompt_id, prompt, prompt_messages, response_ids, responses, ranks, scores,
        sources, annotator_id, ranking_id``; ``ranks`` start at 1 and tied responses share
        one.
    """
    _check("source", source, LIST_SOURCES)
    con = connect_tables(ds)
    n_r = scalar(con, "SELECT count(*) FROM _rankings")
    expr = score_expr(score_key)
    n_s = scalar(con, f"SELECT count({expr}) FROM _responses")
    if source is None:
        if n_r and n_s:
            raise PrefkitError(
                f"the dataset has {n_r:,} rankings and {n_s:,} scored responses: pass "
                "source='rankings' or source='scores'"
            )
        source = "rankings" if n_r else "scores"
    if source == "rankings":
        items = """SELECT ranking_id, prompt_id, annotator_id, unnest(ids) AS response_id, tier AS rank
                   FROM (SELECT *, unnest(tiers) AS ids, generate_subscripts(tiers, 1) AS tier
                         FROM _rankings)"""
    else:
        items = f"""SELECT NULL::VARCHAR AS ranking_id, prompt_id, NULL::VARCHAR AS annotator_id,
                           response_id,
                           dense_rank() OVER (PARTITION BY prompt_id ORDER BY {expr} DESC) AS rank
                    FROM _responses WHERE {expr} IS NOT NULL"""
    sql = f"""
        SELECT i.prompt_id, any_value(p.messages) AS prompt_messages,
               list(i.response_id ORDER BY i.rank, i.response_id) AS response_ids,
               list(r.messages ORDER BY i.rank, i.response_id) AS response_messages,
               list(i.rank::INTEGER ORDER BY i.rank, i.response_id) AS ranks,
               list({score_expr(score_key, "r")} ORDER BY i.rank, i.response_id) AS scores,
               list(r.source ORDER BY i.rank, i.response_id) AS sources,
               any_value(i.annotator_id) AS annotator_id, i.ranking_id
        FROM ({items}) i
        LEFT JOIN _prompts p ON p.prompt_id = i.prompt_id
        LEFT JOIN _responses r ON r.response_id = i.response_id
        GROUP BY i.prompt_id, i.ranking_id
        ORDER BY i.prompt_id, i.ranking_id"""
    lists = con.sql(sql).to_arrow_table().combine_chunks()
    con.close()
    # Texts are rendered by the same vectorised functions as to_pairs uses.
    nested = (
        lists.column("response_messages").chunk(0)
        if lists.num_rows
        else pa.array([], lists.schema.field("response_messages").type)
    )
    responses = pa.ListArray.from_arrays(nested.offsets, messages_text(nested.flatten()))
    prompts = lists.column("prompt_messages").combine_chunks()
    return pa.table(
        {
            "prompt_id": lists.column("prompt_id"),
            "prompt": prompt_text(prompts) if len(prompts) else pa.array([], pa.string()),
            "prompt_messages": prompts,
            "response_ids": lists.column("response_ids"),
            "responses": responses,
            "ranks": lists.column("ranks"),
            "scores": lists.column("scores"),
            "sources": lists.column("sources"),
            "annotator_id": lists.column("annotator_id"),
            "ranking_id": lists.column("ranking_id"),
        }
    )
