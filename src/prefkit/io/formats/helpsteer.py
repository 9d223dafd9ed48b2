"""NVIDIA HelpSteer / HelpSteer2: responses rated on five attributes, and HelpSteer2 preferences.

Ratings layout (Wang et al., "HelpSteer: Multi-attribute Helpfulness Dataset for
SteerLM", 2023; "HelpSteer2: Open-source dataset for training top-performing reward
models", 2024): one response per row with ``prompt``, ``response`` and the integer
ratings ``helpfulness``, ``correctness``, ``coherence``, ``complexity``, ``verbosity``
(0–4). Each row becomes one response whose ``attributes`` hold the five ratings; the
overall ``score`` stays null (HelpSteer has none, and none is invented). Multi-turn
HelpSteer2 prompts hold the earlier turns inline, separated by ``<extra_id_1>User`` /
``<extra_id_1>Assistant`` markers; they are split back into turns.

Preference layout (Wang et al., "HelpSteer2-Preference: Complementing Ratings with
Preferences", 2024): ``prompt``, ``response_1``, ``response_2`` and
``preference_strength`` in −3..3, where −3 means "response 1 is much better than
response 2" and 3 "response 2 is much better". Each row becomes a judgment with
``a = response_1``, ``b = response_2``, outcome ``sign(-preference_strength)`` (0 is a
tie) and ``strength = |preference_strength|``, judged by humans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from prefkit.errors import InputError, PrefkitError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    need,
    number,
    register,
)
from prefkit.io.formats.likert import (
    MetaNames,
    RatingLedger,
    as_dict,
    attribute_names,
    batches_of,
    check_scale,
    head,
    keys_of,
    open_views,
    parse_scale,
    quote,
    read_per_file,
    refuse_events,
    split_names,
)
from prefkit.io.formats.sinks import output_container, write_records
from prefkit.schema import A_WINS, B_WINS, TIE, text_of

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
ATTRIBUTE_SCALE = "0-4"
PREFERENCE_KEYS = ("response_1", "response_2", "preference_strength")
STRENGTH_LIMIT = 3.0
PREFERENCES = ("overall", "individual")
LAYOUTS = ("ratings", "preference")
SYSTEM_MARK = "<extra_id_0>System\n"
TURN_MARK = "\n<extra_id_1>{role}\n"
_TURN = re.compile(r"\n?<extra_id_1>(\w+)\n?")
# Columns of the preference layout that are represented by the judgment itself.
_PREFERENCE_DONE = {
    "prompt",
    *PREFERENCE_KEYS,
    "preference_statement",
    "preference_elaboration",
    "three_most_similar_preferences",
    "all_preferences_unprocessed",
}


# --- helpers ------------------------------------------------------------------------------------
def parse_turns(prompt: str) -> list[dict[str, str]]:
    """Split a HelpSteer2 prompt with ``<extra_id_1>Role`` markers into message turns.

    The text before the first marker is the first user turn (or, after a leading
    ``<extra_id_0>System`` line, the system turn). Text without markers is one user turn.
    """
    if "<extra_id_" not in prompt:
        return [{"role": "user", "content": prompt}]
    parts = _TURN.split(prompt)
    lead, rest = parts[0], parts[1:]
    turns = []
    if lead.startswith(SYSTEM_MARK):
        turns.append({"role": "system", "content": lead[len(SYSTEM_MARK) :]})
    elif lead or not rest or rest[0].lower() != "user":
        turns.append({"role": "user", "content": lead})
    for role, content in zip(rest[::2], rest[1::2], strict=True):
        turns.append({"role": role.lower(), "content": content})
    return turns


def join_turns(messages: list[dict[str, Any]] | None) -> str:
    """The inverse of :func:`parse_turns`: one prompt string with turn markers."""
    turns = list(messages or [])
    if not turns:
        return ""
    out = []
    if turns[0].get("role") == "system":
        out.append(SYSTEM_MARK + str(turns[0].get("content") or ""))
        turns = turns[1:]
    elif turns[0].get("role") == "user":
        out.append(str(turns[0].get("content") or ""))
        turns = turns[1:]
    for t in turns:
        out.append(
            TURN_MARK.format(role=str(t.get("role") or "user").capitalize())
            + str(t.get("content") or "")
        )
    return "".join(out)


def _is_preference(record: Any) -> bool:
    return isinstance(record, dict) and "response_1" in record and "response_2" in record


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _preference_value(value: Any, field: str) -> float:
    raw = number(value, field)
    if raw is None:
        raise RecordError(field, "is missing")
    if abs(raw) > STRENGTH_LIMIT:
        raise RecordError(field, f"{raw:g} is outside -3..3")
    return raw


def _outcome(raw: float) -> int:
    return A_WINS if raw < 0 else B_WINS if raw > 0 else TIE


# --- core: the two layouts ------------------------------------------------------------------------
def _ratings_converter(
    attrs: list[str], scale: tuple[float, float] | None, ledger: RatingLedger
) -> Callable[[Any, Emitter], None]:
    names = MetaNames()
    known = {"prompt", "response", "score", *attrs}

    def convert(rec: Any, emit: Emitter) -> None:
        ledger.begin()
        pid = emit.prompt(parse_turns(need(rec, "prompt", str)))
        attributes = {}
        for a in attrs:
            value = rec.get(a)
            if isinstance(value, (list, tuple)):
                raise RecordError(
                    a,
                    "expected a number, got a list (per-annotator ratings, as in HelpSteer2's "
                    "disagreements file, are not supported)",
                )
            value = number(value, a)
            if value is not None:
                attributes[a] = check_scale(value, scale, a)
        score = number(rec.get("score"), "score")
        meta = {names(k): v for k, v in rec.items() if k not in known}
        rid = emit.response(
            pid, _assistant(need(rec, "response", str)), score=score, attributes=attributes, **meta
        )
        ledger.check(rid, score, attributes, "response")
        ledger.commit()

    return convert


def _preference_converter(mode: str) -> Callable[[Any, Emitter], None]:
    names = MetaNames()

    def convert(rec: Any, emit: Emitter) -> None:
        pid = emit.prompt(parse_turns(need(rec, "prompt", str)))
        a = emit.response(pid, _assistant(need(rec, "response_1", str)))
        b = emit.response(pid, _assistant(need(rec, "response_2", str)))
        if a == b:
            raise RecordError(
                "response_2", "is the same text as response_1; a judgment needs two responses"
            )
        raw = _preference_value(rec.get("preference_strength"), "preference_strength")
        meta = {names(k): v for k, v in rec.items() if k not in _PREFERENCE_DONE}
        individual = rec.get("all_preferences_unprocessed")
        if individual is not None and not isinstance(individual, list):
            raise RecordError(
                "all_preferences_unprocessed", f"expected a list, got {type(individual).__name__}"
            )
        if mode == "overall":
            text = [rec.get(k) for k in ("preference_statement", "preference_elaboration")]
            strengths = None
            if individual:
                strengths = [
                    _preference_value(
                        p.get("strength") if isinstance(p, dict) else None,
                        "all_preferences_unprocessed",
                    )
                    for p in individual
                ]
            emit.judgment(
                pid,
                a,
                b,
                _outcome(raw),
                strength=abs(raw),
                annotator_kind="human",
                rationale="\n\n".join(str(t) for t in text if t) or None,
                individual_strengths=strengths,
                **meta,
            )
            return
        if not individual:
            raise RecordError(
                "all_preferences_unprocessed",
                "is missing or empty; needed for preferences='individual'",
            )
        for i, p in enumerate(individual):
            if not isinstance(p, dict):
                raise RecordError("all_preferences_unprocessed", f"item {i} is not an object")
            value = _preference_value(p.get("strength"), "all_preferences_unprocessed")
            emit.judgment(
                pid,
                a,
                b,
                _outcome(value),
                strength=abs(value),
                annotator_kind="human",
                rationale=p.get("justification") or None,
                annotation=i,
                **meta,
            )

    return convert


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read HelpSteer rating files and HelpSteer2 preference files.

    Rating files are read first, so responses that also appear in a preference file keep
    their ratings (responses are keyed by content and the first occurrence is kept).
    """
    mode = options.option("preferences", "overall")
    if mode not in PREFERENCES:
        raise PrefkitError(f"preferences must be one of {PREFERENCES}, got {mode!r}")
    chosen = split_names(options.option("attributes"))
    attrs = chosen or list(ATTRIBUTES)
    default_scale = ATTRIBUTE_SCALE if attrs == list(ATTRIBUTES) else None
    scale = parse_scale(options.option("scale", default_scale))
    ledger = RatingLedger()

    def setup(path: Path, sample: list[dict[str, Any]]) -> Callable[[Any, Emitter], None]:
        if sample and _is_preference(sample[0]):
            return _preference_converter(mode)
        keys = keys_of(sample)
        missing = [a for a in chosen or [] if a not in keys]
        if missing and sample:
            raise InputError(
                str(path),
                None,
                "attributes",
                f"no column(s) {missing} (columns: {', '.join(keys)})",
            )
        ratings = _ratings_converter(attrs, scale, ledger)
        preference = _preference_converter(mode)
        return lambda rec, emit: (preference if _is_preference(rec) else ratings)(rec, emit)

    first = {p: head(p, 1) for p in paths}
    ordered = sorted(paths, key=lambda p: bool(first[p]) and _is_preference(first[p][0]))
    return read_per_file(ordered, options, setup)


def sniff(sample: Sample) -> float:
    """0.95 for the HelpSteer ratings or HelpSteer2 preference columns, else low or 0."""
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs:
        return 0.0
    keys = set(keys_of(recs))
    if {"prompt", *PREFERENCE_KEYS} <= keys:
        return 0.95
    if {"prompt", "response"} <= keys:
        n = len(keys & set(ATTRIBUTES))
        return 0.95 if n >= 3 else 0.6 if n else 0.0
    return 0.0


# --- writing ------------------------------------------------------------------------------------
def _write_ratings(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    refuse_events(ds, "helpsteer", " (write them with layout='preference')")
    con = open_views(ds)
    attrs = attribute_names(con, ATTRIBUTES)
    has_score = con.sql("SELECT count(score) FROM resp").fetchall()[0][0] > 0
    query = (
        "SELECT p.messages AS pm, r.messages AS rm, r.score, r.attributes "
        "FROM resp r LEFT JOIN prom p USING (prompt_id) ORDER BY r.__i"
    )
    columns = ["prompt", "response", *attrs, *(["score"] if has_score else [])]

    def rows() -> Iterator[dict[str, Any]]:
        for batch in batches_of(con, query):
            for row in batch:
                values = as_dict(row["attributes"])
                item: dict[str, Any] = {
                    "prompt": join_turns(row["pm"]),
                    "response": text_of(row["rm"]),
                }
                item.update({a: _int_if_whole(values.get(a)) for a in attrs})
                if has_score:
                    item["score"] = row["score"]
                yield item

    try:
        write_records(rows(), path, options, fmt="helpsteer", schema=_schema(columns, attrs))
    finally:
        con.close()


def _write_preferences(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    if ds.num_rows("rankings"):
        raise PrefkitError(
            "format 'helpsteer' cannot hold rankings; write them with the canonical format"
        )
    con = open_views(ds)
    ds.relation(con, "judgments").create_view("judg_raw")
    has_split = "split" in con.sql("SELECT * FROM judg_raw LIMIT 0").columns
    query = (
        "SELECT p.messages AS pm, ra.messages AS am, rb.messages AS bm, j.outcome, j.strength, "
        f"j.rationale{', j.' + quote('split') + ' AS split' if has_split else ''} "
        "FROM (SELECT *, row_number() OVER () AS __i FROM judg_raw) j "
        "LEFT JOIN prom p ON p.prompt_id = j.prompt_id "
        "LEFT JOIN resp ra ON ra.response_id = j.a LEFT JOIN resp rb ON rb.response_id = j.b "
        "ORDER BY j.__i"
    )
    columns = [*(["split"] if has_split else []), "prompt", "response_1", "response_2"]
    columns += ["preference_strength", "preference_statement"]

    def rows() -> Iterator[dict[str, Any]]:
        for batch in batches_of(con, query):
            for row in batch:
                if row["outcome"] != TIE and row["strength"] is None:
                    raise PrefkitError(
                        "layout 'preference' needs a strength for every non-tie judgment "
                        "(HelpSteer2 preference_strength is a signed magnitude); this dataset has judgments without one"
                    )
                value = -row["outcome"] * (row["strength"] or 0.0)
                if abs(value) > STRENGTH_LIMIT:
                    raise PrefkitError(
                        f"judgment strength {abs(value):g} does not fit HelpSteer2's -3..3 scale"
                    )
                item = {"split": row.get("split")} if has_split else {}
                item.update(
                    prompt=join_turns(row["pm"]),
                    response_1=text_of(row["am"]),
                    response_2=text_of(row["bm"]),
                    preference_strength=_int_if_whole(value + 0.0),
                    preference_statement=row["rationale"],
                )
                yield item

    try:
        schema = _schema(columns, ["preference_strength"])
        write_records(rows(), path, options, fmt="helpsteer", schema=schema)
    finally:
        con.close()


def _int_if_whole(value: float | None) -> float | int | None:
    return int(value) if value is not None and float(value).is_integer() else value


def _schema(columns: list[str], numeric: list[str]) -> pa.Schema:
    return pa.schema(
        [(c, pa.float64() if c in numeric or c == "score" else pa.string()) for c in columns]
    )


def write(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    """Write HelpSteer rows: one per response (``layout='ratings'``) or one per judgment.

    Options: ``layout`` (``ratings`` default, ``preference``) and ``container``.
    """
    layout = options.get("layout", "ratings")
    if layout not in LAYOUTS:
        raise PrefkitError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    output_container(path, options, fmt="helpsteer")
    if layout == "ratings":
        _write_ratings(ds, path, options)
    else:
        _write_preferences(ds, path, options)


register(
    Format(
        name="helpsteer",
        summary="NVIDIA HelpSteer/HelpSteer2: responses rated 0-4 on five attributes; HelpSteer2 preferences",
        kinds=("attributes", "pairwise", "ties"),
        sniff=sniff,
        read=read,
        write=write,
        options={
            "attributes": "comma-separated rating columns (default: helpfulness,correctness,coherence,complexity,verbosity)",
            "scale": "rating scale 'low-high'; a rating outside it is an error (default 0-4 for the five defaults)",
            "preferences": "preference files: 'overall' (one judgment per row, default) or 'individual' "
            "(one per entry of all_preferences_unprocessed)",
        },
    )
)
