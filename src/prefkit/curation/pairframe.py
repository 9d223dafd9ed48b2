"""The per-judgment frame that filter expressions read: one row per judgment.

Columns (see :func:`available`): the judgment's own columns (core and meta), lengths of
both responses and the prompt, the responses' source and score, prompt meta columns,
whether the two sides are identical, and diagnostic scores. Only the columns an
expression names are computed: lengths render every text once (through the inspect
:class:`~prefkit.diagnostics.context.Context`), ``suspicion`` fits the noise model
(:func:`prefkit.diagnostics.checks.noise.suspicion`), ``agreement``/``n_votes`` are one
DuckDB window query. Everything is columnar (DuckDB joins on ids, hashes for texts).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import pyarrow as pa

from prefkit.curation.expr import quote_ident
from prefkit.diagnostics.context import Context, InspectOptions
from prefkit.schema.tables import CORE, meta_columns

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

#: Judgment columns carried into the frame (``rationale`` is free text and left out).
JUDGMENT_COLUMNS = tuple(n for n in CORE["judgments"].names if n != "rationale")
#: Computed columns and what they mean (documented in docs/curation/filters.md).
COMPUTED: dict[str, str] = {
    "a_words": "whitespace words in response a",
    "b_words": "whitespace words in response b",
    "a_chars": "characters in response a",
    "b_chars": "characters in response b",
    "prompt_words": "whitespace words in the prompt",
    "prompt_chars": "characters in the prompt",
    "length_ratio": "max(a_words, b_words, 1) / max(min(a_words, b_words), 1), >= 1",
    "chosen_words": "words of the preferred response (null for ties)",
    "rejected_words": "words of the other response (null for ties)",
    "a_source": "responses.source of a",
    "b_source": "responses.source of b",
    "a_score": "responses.score of a",
    "b_score": "responses.score of b",
    "identical": "a == b, or both texts equal up to case and whitespace",
    "suspicion": "posterior probability the label is flipped (inspect noise check; null for ties)",
    "agreement": "share of the item's judgments with the same outcome as this one",
    "n_votes": "judgments of the item (same prompt, same unordered response pair)",
}
_LENGTHS = {
    "a_words",
    "b_words",
    "a_chars",
    "b_chars",
    "prompt_words",
    "prompt_chars",
    "length_ratio",
    "chosen_words",
    "rejected_words",
}
_RESPONSE = {"a_source", "b_source", "a_score", "b_score"}
_VOTES = {"agreement", "n_votes"}


def _prompt_meta(ds: Dataset, taken: Collection[str]) -> dict[str, str]:
    """Frame name -> prompts column for every prompt meta column (``prompt_`` prefix on a
    clash with a judgment or computed column)."""
    out = {}
    for name in meta_columns("prompts", ds.prompts):
        out[f"prompt_{name}" if name in taken else name] = name
    return out


def _judgment_names(ds: Dataset) -> list[str]:
    meta = [c for c in meta_columns("judgments", ds.judgments) if c not in COMPUTED]
    return [*JUDGMENT_COLUMNS, *meta]


def available(ds: Dataset) -> list[str]:
    """Every column a filter expression may name on ``ds`` (nothing is computed)."""
    names = _judgment_names(ds) + list(COMPUTED)
    return names + list(_prompt_meta(ds, set(names)))


def _text_hashes(ctx: Context) -> pa.Table:
    """``id, h``: a 64-bit hash of each response text, lower-cased with runs of
    whitespace collapsed (streams over record batches)."""
    con = ctx.con
    parts = []
    for ids, text in ctx.texts("responses"):
        con.register("_hash_batch", pa.table({"id": ids, "t": text}))
        parts.append(
            con.sql(
                r"SELECT id, hash(regexp_replace(lower(trim(t)), '\s+', ' ', 'g')) AS h "
                "FROM _hash_batch"
            ).to_arrow_table()
        )
        con.unregister("_hash_batch")
    if not parts:
        return pa.table({"id": pa.array([], pa.string()), "h": pa.array([], pa.uint64())})
    return pa.concat_tables(parts)


def frame(ds: Dataset, names: Collection[str], ctx: Context | None = None) -> pa.Table:
    """The per-judgment frame with ``judgment_id`` and the columns ``names``, in table order.

    Parameters
    ----------
    ds
        The dataset.
    names
        Columns wanted (a subset of :func:`available`; unknown names raise ``KeyError``).
    ctx
        An inspect context to reuse (its cached lengths and noise fit); one is made
        when not given.
    """
    ctx = ctx or Context(ds, InspectOptions(embed="never"))
    con = ctx.con
    judgment_names = _judgment_names(ds)
    prompt_meta = _prompt_meta(ds, set(judgment_names) | set(COMPUTED))
    wanted = list(dict.fromkeys(["judgment_id", *names]))
    unknown = [n for n in wanted if n not in judgment_names and n not in COMPUTED]
    unknown = [n for n in unknown if n not in prompt_meta]
    if unknown:
        raise KeyError(f"not frame columns: {unknown}")
    need = set(wanted)
    con.register("_pf_j", ds.ordered_relation(con, "judgments"))
    joins, select = [], []
    for n in wanted:
        if n in judgment_names:
            select.append(f"j.{quote_ident(n)}")
    if need & _LENGTHS:
        con.register("_pf_lr", ctx.lengths("responses"))
        con.register("_pf_lp", ctx.lengths("prompts"))
        joins += [
            "LEFT JOIN _pf_lr la ON la.id = j.a",
            "LEFT JOIN _pf_lr lb ON lb.id = j.b",
            "LEFT JOIN _pf_lp lp ON lp.id = j.prompt_id",
        ]
        exprs = {
            "a_words": "la.n_words",
            "b_words": "lb.n_words",
            "a_chars": "la.n_chars",
            "b_chars": "lb.n_chars",
            "prompt_words": "lp.n_words",
            "prompt_chars": "lp.n_chars",
            "length_ratio": "greatest(la.n_words, lb.n_words, 1)::DOUBLE"
            " / greatest(least(la.n_words, lb.n_words), 1)",
            "chosen_words": "CASE j.outcome WHEN 1 THEN la.n_words WHEN -1 THEN lb.n_words END",
            "rejected_words": "CASE j.outcome WHEN 1 THEN lb.n_words WHEN -1 THEN la.n_words END",
        }
        select += [f"{exprs[n]} AS {n}" for n in wanted if n in exprs]
    if need & _RESPONSE:
        con.register("_pf_r", ds.relation(con, "responses"))
        joins += [
            "LEFT JOIN (SELECT response_id, source, score FROM _pf_r) ra ON ra.response_id = j.a",
            "LEFT JOIN (SELECT response_id, source, score FROM _pf_r) rb ON rb.response_id = j.b",
        ]
        exprs = {
            "a_source": "ra.source",
            "b_source": "rb.source",
            "a_score": "ra.score",
            "b_score": "rb.score",
        }
        select += [f"{exprs[n]} AS {n}" for n in wanted if n in exprs]
    if "identical" in need:
        con.register("_pf_h", _text_hashes(ctx))
        joins += [
            "LEFT JOIN _pf_h ha ON ha.id = j.a",
            "LEFT JOIN _pf_h hb ON hb.id = j.b",
        ]
        select.append("(j.a = j.b OR coalesce(ha.h = hb.h, FALSE)) AS identical")
    if "suspicion" in need:
        from prefkit.diagnostics.checks import noise

        con.register("_pf_s", noise.suspicion(ctx))
        joins.append("LEFT JOIN _pf_s s ON s.judgment_id = j.judgment_id")
        select.append("s.suspicion AS suspicion")
    if need & _VOTES:
        con.register(
            "_pf_v",
            con.sql(
                """SELECT judgment_id,
                          count(*) OVER (PARTITION BY prompt_id, least(a, b), greatest(a, b))
                              AS n_votes,
                          count(*) OVER (PARTITION BY prompt_id, least(a, b), greatest(a, b),
                                         CASE WHEN a <= b THEN outcome ELSE -outcome END)
                              AS same
                   FROM _pf_j"""
            ),
        )
        joins.append("LEFT JOIN _pf_v v ON v.judgment_id = j.judgment_id")
        if "n_votes" in need:
            select.append("v.n_votes AS n_votes")
        if "agreement" in need:
            select.append("v.same::DOUBLE / v.n_votes AS agreement")
    wanted_meta = [n for n in wanted if n in prompt_meta and n not in judgment_names]
    if wanted_meta:
        con.register("_pf_p", ds.relation(con, "prompts"))
        cols = ", ".join(f"{quote_ident(prompt_meta[n])} AS {quote_ident(n)}" for n in wanted_meta)
        joins.append(
            f"LEFT JOIN (SELECT prompt_id, {cols} FROM _pf_p) pm ON pm.prompt_id = j.prompt_id"
        )
        select += [f"pm.{quote_ident(n)}" for n in wanted_meta]
    sql = f"SELECT {', '.join(select)} FROM _pf_j j {' '.join(joins)} ORDER BY j.__ord"
    table = con.sql(sql).to_arrow_table()
    # Keep the requested order (joins may have reordered the select list).
    return table.select(wanted)


__all__ = ["COMPUTED", "JUDGMENT_COLUMNS", "available", "frame"]
