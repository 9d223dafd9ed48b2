"""UltraFeedback: instructions with several model completions, each rated by GPT-4.

Implements the row layout of ``openbmb/UltraFeedback`` (Cui et al., "UltraFeedback:
Boosting Language Models with Scaled AI Feedback", 2023): one row per instruction with
``source``, ``instruction``, ``models`` and ``completions``. Each completion holds the
``model`` that wrote it, the ``response``, fine-grained ``annotations`` (per aspect —
helpfulness, honesty, instruction_following, truthfulness — a ``Rating`` "1".."5" or
"N/A" with a ``Rationale``), the averaged ``fine-grained_score``, and the ``critique``
with its ``overall_score`` (1–10).

Each row becomes one prompt; each completion one response with ``source = model``,
``score = overall_score`` and ``attributes`` = the aspect ratings. An "N/A" rating is
absent from the attributes, never a zero. No judgments are made: pairs come from the
scores through ``to_pairs(scores=...)``. The binarized ``prompt/chosen/rejected``
layout is the ``trl`` format's, not this one's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from prefkit.errors import PrefkitError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    need,
    number,
    read_rows,
    register,
)
from prefkit.io.formats.likert import (
    MetaNames,
    RatingLedger,
    as_dict,
    attribute_names,
    batches_of,
    fmt_number,
    keys_of,
    open_views,
    quote,
    refuse_events,
)
from prefkit.io.formats.sinks import output_container, write_records
from prefkit.schema import text_of

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")
NOT_RATED = {"", "N/A", "NA", "NONE", "NULL"}
# Completion fields with a fixed place; other fields become response meta columns.
COMPLETION_FIELDS = {
    "model",
    "response",
    "annotations",
    "overall_score",
    "fine-grained_score",
    "critique",
    "principle",
    "custom_system_prompt",
}
RESPONSE_META = ("fine_grained_score", "critique", "principle", "custom_system_prompt")
PROMPT_META = ("source", "correct_answers", "incorrect_answers")
ROW_FIELDS = {"instruction", "completions", "models", "source"}


# --- helpers ------------------------------------------------------------------------------------
def _text(value: Any, field: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise RecordError(field, "is missing")
        return None
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {type(value).__name__}")
    return value


def _rating(value: Any, field: str) -> float | None:
    """An aspect rating: "4" or 4 -> 4.0; "N/A", "" or null -> None (not rated)."""
    if isinstance(value, str) and value.strip().upper() in NOT_RATED:
        return None
    return number(value, field)


def _aspect_ratings(annotations: Any, where: str) -> dict[str, float]:
    """``{aspect: {"Rating": "4", ...}}`` -> ``{aspect: 4.0}``, leaving out unrated aspects."""
    if annotations is None:
        return {}
    if not isinstance(annotations, dict):
        raise RecordError(
            f"{where}.annotations", f"expected an object, got {type(annotations).__name__}"
        )
    out = {}
    for aspect, entry in annotations.items():
        field = f"{where}.annotations.{aspect}"
        if isinstance(entry, list):
            # Early UltraFeedback files wrap each aspect in a one-element list.
            if len(entry) > 1:
                raise RecordError(field, f"has {len(entry)} ratings; expected one per aspect")
            entry = entry[0] if entry else None
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise RecordError(
                field, f"expected an object with a Rating, got {type(entry).__name__}"
            )
        value = _rating(entry.get("Rating"), f"{field}.Rating")
        if value is not None:
            out[str(aspect)] = value
    return out


# --- reading ------------------------------------------------------------------------------------
def _converter() -> Callable[[Any, Emitter], None]:
    ledger = RatingLedger()
    prompt_names = MetaNames()
    response_names = MetaNames(RESPONSE_META)

    def convert(rec: Any, emit: Emitter) -> None:
        ledger.begin()
        instruction = need(rec, "instruction", str)
        completions = need(rec, "completions", list)
        models = rec.get("models") or []
        if not isinstance(models, list):
            raise RecordError("models", f"expected a list, got {type(models).__name__}")
        pmeta = {prompt_names(k): v for k, v in rec.items() if k not in ROW_FIELDS}
        pmeta["source"] = _text(rec.get("source"), "source")
        pid = emit.prompt([{"role": "user", "content": instruction}], **pmeta)
        for i, comp in enumerate(completions):
            where = f"completions[{i}]"
            if not isinstance(comp, dict):
                raise RecordError(where, f"expected an object, got {type(comp).__name__}")
            model = _text(comp.get("model"), f"{where}.model")
            if model is None and i < len(models):
                model = _text(models[i], f"models[{i}]")
            response = _text(comp.get("response"), f"{where}.response", required=True)
            attributes = _aspect_ratings(comp.get("annotations"), where)
            score = number(comp.get("overall_score"), f"{where}.overall_score")
            extra = {response_names(k): v for k, v in comp.items() if k not in COMPLETION_FIELDS}
            rid = emit.response(
                pid,
                [{"role": "assistant", "content": response or ""}],
                source=model,
                score=score,
                attributes=attributes,
                fine_grained_score=number(
                    comp.get("fine-grained_score"), f"{where}.fine-grained_score"
                ),
                critique=_text(comp.get("critique"), f"{where}.critique"),
                principle=_text(comp.get("principle"), f"{where}.principle"),
                custom_system_prompt=_text(
                    comp.get("custom_system_prompt"), f"{where}.custom_system_prompt"
                ),
                **extra,
            )
            ledger.check(rid, score, attributes, where)
        ledger.commit()

    return convert


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read UltraFeedback rows (JSONL, JSON or Parquet as published on the hub)."""
    return read_rows(paths, _converter(), options)


def sniff(sample: Sample) -> float:
    """0.95 for rows with ``instruction`` and rated ``completions``; 0.7 without ratings."""
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs or not {"instruction", "completions"} <= set(keys_of(recs)):
        return 0.0
    comps = [c for r in recs for c in (r.get("completions") or []) if isinstance(c, dict)]
    if any("annotations" in c or "overall_score" in c for c in comps):
        return 0.95
    return 0.7 if comps else 0.5


# --- writing ------------------------------------------------------------------------------------
def _columns(con: Any, view: str) -> dict[str, pa.DataType]:
    return dict(zip(*_schema_of(con, view), strict=True))


def _schema_of(con: Any, view: str) -> tuple[list[str], list[pa.DataType]]:
    schema = con.sql(f"SELECT * FROM {view} LIMIT 0").to_arrow_table().schema
    return schema.names, schema.types


def write(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    """Write one UltraFeedback row per prompt, its responses as ``completions``.

    Attributes become ``annotations`` (``{aspect: {"Rating": "4"}}``, "N/A" where a
    response lacks an aspect others have), ``score`` becomes ``overall_score`` and the
    response ``source`` the completion's ``model``. Multi-turn prompts are flattened to
    text (turns joined by blank lines), as the layout has one instruction string.
    """
    refuse_events(ds, "ultrafeedback")
    container, _ = output_container(path, options, fmt="ultrafeedback")
    if container in ("csv", "tsv"):
        raise PrefkitError(
            "format 'ultrafeedback' is nested; write it as .jsonl, .json or .parquet"
        )
    con = open_views(ds)
    aspects = attribute_names(con, ASPECTS)
    resp_cols, prom_cols = _columns(con, "resp_raw"), _columns(con, "prom_raw")
    rmeta = [c for c in RESPONSE_META if c in resp_cols]
    pmeta = [c for c in PROMPT_META if c in prom_cols]
    packed = ", ".join(
        f"{quote(c)} := {quote(c)}" for c in ["messages", "source", "score", "attributes", *rmeta]
    )
    query = (
        f"SELECT p.messages AS pm{''.join(f', p.{quote(c)}' for c in pmeta)}, g.comps "
        f"FROM prom p LEFT JOIN (SELECT prompt_id, list(struct_pack({packed}) ORDER BY __i) AS comps "
        "FROM resp GROUP BY prompt_id) g USING (prompt_id) ORDER BY p.__i"
    )

    def completion(c: dict[str, Any]) -> dict[str, Any]:
        values = as_dict(c["attributes"])
        item: dict[str, Any] = {"model": c["source"]}
        item.update({k: c[k] for k in ("principle", "custom_system_prompt") if k in rmeta})
        item["response"] = text_of(c["messages"])
        item["annotations"] = {
            a: {"Rating": fmt_number(values[a]) if values.get(a) is not None else "N/A"}
            for a in aspects
        }
        if "fine_grained_score" in rmeta:
            item["fine-grained_score"] = c["fine_grained_score"]
        item["overall_score"] = c["score"]
        if "critique" in rmeta:
            item["critique"] = c["critique"]
        return item

    def rows() -> Iterator[dict[str, Any]]:
        for batch in batches_of(con, query):
            for row in batch:
                comps = [completion(c) for c in row["comps"] or []]
                item: dict[str, Any] = {"source": row.get("source")} if "source" in pmeta else {}
                item["instruction"] = text_of(row["pm"])
                item["models"] = [c["model"] for c in comps]
                item["completions"] = comps
                item.update({c: row[c] for c in pmeta if c != "source"})
                yield item

    schema = _parquet_schema(aspects, rmeta, pmeta, prom_cols)
    try:
        write_records(rows(), path, options, fmt="ultrafeedback", schema=schema)
    finally:
        con.close()


def _parquet_schema(
    aspects: list[str], rmeta: list[str], pmeta: list[str], prom_cols: dict[str, pa.DataType]
) -> pa.Schema:
    rating = pa.struct([("Rating", pa.string())])
    fields: list[tuple[str, pa.DataType]] = [("model", pa.string())]
    fields += [(k, pa.string()) for k in ("principle", "custom_system_prompt") if k in rmeta]
    fields.append(("response", pa.string()))
    if aspects:  # Parquet cannot hold a struct without fields; a missing one reads as {}
        fields.append(("annotations", pa.struct([(a, rating) for a in aspects])))
    if "fine_grained_score" in rmeta:
        fields.append(("fine-grained_score", pa.float64()))
    fields.append(("overall_score", pa.float64()))
    if "critique" in rmeta:
        fields.append(("critique", pa.string()))
    top: list[tuple[str, pa.DataType]] = [("source", pa.string())] if "source" in pmeta else []
    top += [
        ("instruction", pa.string()),
        ("models", pa.list_(pa.string())),
        ("completions", pa.list_(pa.struct(fields))),
    ]
    top += [(c, prom_cols[c]) for c in pmeta if c != "source"]
    return pa.schema(top)


register(
    Format(
        name="ultrafeedback",
        summary="UltraFeedback rows: an instruction with model completions rated per aspect and overall (GPT-4)",
        kinds=("scores", "attributes"),
        sniff=sniff,
        read=read,
        write=write,
    )
)
