"""Any flat pairwise table, read through a user-named column mapping.

For pairwise data that has no adapter of its own (one row = one comparison of two
responses to one prompt), the user names the columns: ``prompt``, the two responses
(``a``/``b`` with a ``label`` column saying which won, or ``chosen``/``rejected``), and
optionally the judge, scores, model names, a strength and a system prompt. Label values
are matched as strings, so ``1`` and ``"1"`` are the same. The format is never sniffed;
it is used only when asked for (``format="generic"`` / ``--from generic``).

The writer is the inverse with fixed column names: one row per canonical judgment with
``prompt``, ``a``, ``b``, ``label`` (``a``/``b``/``tie``/``tie_bad``) and, where the data
has them, ``system``, ``annotator``, ``model_a``/``model_b``, ``score_a``/``score_b`` and
``strength``. Reading that file back with ``format="generic", a="a", b="b", label="label"``
(plus the optional columns) gives the same judgments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefkit.engine import connect, scalar
from prefkit.errors import PrefkitError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    number,
    read_rows,
    register,
)
from prefkit.io.formats.sinks import write_table
from prefkit.io.formats.trl import as_messages, keep_filled, query_table
from prefkit.schema import A_WINS, ANNOTATOR_KINDS, B_WINS, TIE

OPTIONS = {
    "prompt": "column holding the prompt: text or a list of {role, content} (default 'prompt')",
    "a": "column holding response a (with b and label)",
    "b": "column holding response b (with a and label)",
    "chosen": "column holding the preferred response (instead of a/b/label)",
    "rejected": "column holding the other response (with chosen)",
    "label": "column saying which response won (with a/b)",
    "a_value": "label value meaning a is preferred (default 'a')",
    "b_value": "label value meaning b is preferred (default 'b')",
    "tie_value": "label value meaning a tie (default 'tie')",
    "tie_bad_value": "label value meaning a tie where both are bad (default 'tie_bad')",
    "annotator": "column holding the judge's id",
    "annotator_kind": "who judged: human, ai, rule or unknown (default unknown)",
    "score_a": "column holding a numeric score of response a (or chosen)",
    "score_b": "column holding a numeric score of response b (or rejected)",
    "model_a": "column naming the model that wrote response a (or chosen)",
    "model_b": "column naming the model that wrote response b (or rejected)",
    "strength": "column holding the judgment's strength (margin, vote share, probability)",
    "system": "column holding a system prompt, put before the prompt turns",
    "id": "column(s) kept as judgment meta, e.g. row ids (a name, a list, or comma-separated)",
}
DEFAULT_VALUES = {"a_value": "a", "b_value": "b", "tie_value": "tie", "tie_bad_value": "tie_bad"}
_JUDGMENT_CORE = frozenset(
    {"judgment_id", "prompt_id", "a", "b", "outcome", "tie_kind", "strength"}
)


# --- configuration ---------------------------------------------------------------------------
def _norm(value: Any) -> str:
    """Label values compare as strings: ``1``, ``1.0`` and ``"1"`` all become ``"1"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass(frozen=True)
class ColumnMap:
    """A checked column mapping."""

    prompt: str
    a: str
    b: str
    label: str | None
    values: dict[str, tuple[int, str | None]]
    expected: str
    annotator: str | None
    annotator_kind: str
    score_a: str | None
    score_b: str | None
    model_a: str | None
    model_b: str | None
    strength: str | None
    system: str | None
    ids: tuple[str, ...]


def parse_mapping(opts: Mapping[str, Any]) -> ColumnMap:
    """Check a user mapping and fill defaults.

    Raises
    ------
    PrefkitError
        For an incomplete or contradictory mapping.
    """
    a, b, chosen, rejected, label = (opts.get(k) for k in ("a", "b", "chosen", "rejected", "label"))
    if chosen is not None or rejected is not None:
        if chosen is None or rejected is None or a is not None or b is not None:
            raise PrefkitError(
                "generic: give both chosen= and rejected=, or a=, b= and label=, not a mix"
            )
        if label is not None:
            raise PrefkitError(
                "generic: label= goes with a=/b=; with chosen=/rejected= the winner is known"
            )
        a, b = chosen, rejected
    elif a is None or b is None or label is None:
        raise PrefkitError(
            "generic: name the response columns: a=, b= and label= (which one won), "
            "or chosen= and rejected="
        )
    kind = opts.get("annotator_kind", "unknown")
    if kind not in ANNOTATOR_KINDS:
        raise PrefkitError(
            f"generic: annotator_kind must be one of {', '.join(ANNOTATOR_KINDS)}, got {kind!r}"
        )
    raw = {k: _norm(opts.get(k, d)) for k, d in DEFAULT_VALUES.items()}
    if len(set(raw.values())) < len(raw):
        raise PrefkitError(f"generic: the label values must differ, got {raw}")
    values = {
        raw["a_value"]: (A_WINS, None),
        raw["b_value"]: (B_WINS, None),
        raw["tie_value"]: (TIE, None),
        raw["tie_bad_value"]: (TIE, "bad"),
    }
    expected = (
        f"{raw['a_value']!r} (a preferred), {raw['b_value']!r} (b preferred), "
        f"{raw['tie_value']!r} (tie), {raw['tie_bad_value']!r} (tie, both bad)"
    )
    ids = opts.get("id") or ()
    if isinstance(ids, str):
        ids = tuple(s.strip() for s in ids.split(",") if s.strip())
    return ColumnMap(
        prompt=opts.get("prompt", "prompt"),
        a=a,
        b=b,
        label=label,
        values=values,
        expected=expected,
        annotator=opts.get("annotator"),
        annotator_kind=kind,
        score_a=opts.get("score_a"),
        score_b=opts.get("score_b"),
        model_a=opts.get("model_a"),
        model_b=opts.get("model_b"),
        strength=opts.get("strength"),
        system=opts.get("system"),
        ids=tuple(ids),
    )


# --- reading -------------------------------------------------------------------------------------
def _col(rec: dict[str, Any], column: str | None, option: str) -> Any:
    if column is None:
        return None
    if column not in rec:
        raise RecordError(column, f"no such column (named by the option {option}=)")
    return rec[column]


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def make_converter(m: ColumnMap) -> Any:
    """A ``convert(record, emit)`` for the checked mapping ``m``."""

    def convert(rec: Any, emit: Emitter) -> None:
        if not isinstance(rec, dict):
            raise RecordError(None, f"expected an object, got {type(rec).__name__}")
        prompt = as_messages(_col(rec, m.prompt, "prompt"), m.prompt, "user")
        system = _col(rec, m.system, "system")
        if system is not None and system != "":
            if not isinstance(system, str):
                raise RecordError(m.system, f"expected a string, got {type(system).__name__}")
            prompt = [{"role": "system", "content": system}, *prompt]
        msgs_a = as_messages(_col(rec, m.a, "a"), m.a, "assistant")
        msgs_b = as_messages(_col(rec, m.b, "b"), m.b, "assistant")
        outcome, tie_kind = A_WINS, None
        if m.label is not None:
            raw = _col(rec, m.label, "label")
            if raw is None:
                raise RecordError(m.label, f"is missing; expected one of {m.expected}")
            found = m.values.get(_norm(raw))
            if found is None:
                raise RecordError(
                    m.label, f"unknown label value {raw!r}; expected one of {m.expected}"
                )
            outcome, tie_kind = found
        pid = emit.prompt(prompt)
        ra = emit.response(
            pid,
            msgs_a,
            source=_text(_col(rec, m.model_a, "model_a")),
            score=number(_col(rec, m.score_a, "score_a"), m.score_a or "score_a"),
        )
        rb = emit.response(
            pid,
            msgs_b,
            source=_text(_col(rec, m.model_b, "model_b")),
            score=number(_col(rec, m.score_b, "score_b"), m.score_b or "score_b"),
        )
        annotator = _text(_col(rec, m.annotator, "annotator"))
        if annotator is not None:
            emit.annotator(annotator)
        meta = {}
        for key in m.ids:
            value = _col(rec, key, "id")
            if value is not None:
                meta["orig_" + key if key in _JUDGMENT_CORE else key] = value
        emit.judgment(
            pid,
            ra,
            rb,
            outcome,
            tie_kind=tie_kind,
            strength=number(_col(rec, m.strength, "strength"), m.strength or "strength"),
            annotator_id=annotator,
            annotator_kind=m.annotator_kind,
            **meta,
        )

    return convert


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read any pairwise table through the column mapping in ``options.mapping``."""
    return read_rows(paths, make_converter(parse_mapping(options.mapping)), options)


def sniff(sample: Sample) -> float:
    """Never chosen by sniffing: the mapping must come from the user."""
    return 0.0


# --- writing -------------------------------------------------------------------------------------
_TEXT = "coalesce(array_to_string([coalesce(t.content, '') FOR t IN {m}], chr(10) || chr(10)), '')"
_HAS_SYSTEM = "(len(p.messages) > 0 AND p.messages[1].role = 'system')"
# Several prompt turns become a "Human: ... / Assistant: ..." transcript (as in the flat
# to_pairs view) so that no turn and no speaker is lost in a text column.
_SPEAKER = "CASE t.role WHEN 'user' THEN 'Human' WHEN 'assistant' THEN 'Assistant' ELSE t.role END"
_TRANSCRIPT = (
    "CASE WHEN len({m}) = 1 AND {m}[1].role = 'user' THEN coalesce({m}[1].content, '') ELSE "
    f"coalesce(array_to_string([{_SPEAKER} || ': ' || coalesce(t.content, '') FOR t IN {{m}}], "
    "chr(10) || chr(10)), '') END"
)


def write(ds: Any, path: Path, options: dict[str, Any]) -> None:
    """Write one row per judgment: ``prompt``, ``a``, ``b``, ``label`` and optional columns.

    Optional columns (``system``, ``annotator``, ``model_a``, ``model_b``, ``score_a``,
    ``score_b``, ``strength``) are written only when some row has a value.
    """
    con = connect()
    try:
        ds.relation(con, "judgments").create_view("j")
        ds.relation(con, "prompts").create_view("p")
        ds.relation(con, "responses").create_view("r")
        if not scalar(con, "SELECT count(*) FROM j"):
            raise PrefkitError(
                "generic: writes one row per judgment and this dataset has none "
                "(for rankings or scores use --to trl with rankings=/scores=)"
            )
        sql = f"""
            WITH jj AS (SELECT *, row_number() OVER () AS i FROM j),
            pp AS (
                SELECT prompt_id,
                    CASE WHEN {_HAS_SYSTEM} THEN p.messages[2:] ELSE p.messages END AS turns,
                    CASE WHEN {_HAS_SYSTEM} THEN p.messages[1].content END AS system
                FROM p
            )
            SELECT
                {_TRANSCRIPT.format(m="pp.turns")} AS prompt,
                pp.system AS system,
                {_TEXT.format(m="ra.messages")} AS a,
                {_TEXT.format(m="rb.messages")} AS b,
                CASE jj.outcome WHEN 1 THEN 'a' WHEN -1 THEN 'b'
                    ELSE CASE WHEN jj.tie_kind = 'bad' THEN 'tie_bad' ELSE 'tie' END END AS label,
                jj.annotator_id AS annotator,
                ra.source AS model_a,
                rb.source AS model_b,
                ra.score AS score_a,
                rb.score AS score_b,
                jj.strength AS strength
            FROM jj
            LEFT JOIN pp ON pp.prompt_id = jj.prompt_id
            LEFT JOIN r AS ra ON ra.response_id = jj.a
            LEFT JOIN r AS rb ON rb.response_id = jj.b
            ORDER BY jj.i
        """
        table = query_table(con, sql)
    finally:
        con.close()
    write_table(keep_filled(table, ("prompt", "a", "b", "label")), path, options, fmt="generic")


register(
    Format(
        name="generic",
        summary="any flat pairwise table, through a user-named column mapping (never sniffed)",
        kinds=("pairwise", "ties", "annotators", "scores", "battles"),
        sniff=sniff,
        read=read,
        write=write,
        options=OPTIONS,
    )
)
