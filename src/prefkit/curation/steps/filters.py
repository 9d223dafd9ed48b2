"""Filters: keep the judgments, responses and prompts that pass a test.

``filter``
    A safe expression over the per-judgment frame (:mod:`prefkit.curation.expr`,
    :mod:`prefkit.curation.pairframe`), e.g. ``length_ratio < 3 and suspicion < 0.8 and
    agreement >= 0.6``. Judgments where it is true are kept; false ones go with reason
    ``filter: <expr>``; those where it is null (a compared column is null, e.g.
    ``suspicion`` of a tie) go with reason ``filter: <expr> (null)``, counted apart.
``drop-ties``
    Tie judgments: all of them, only both-bad ties (``tie_kind == "bad"``) or only
    both-good ones.
``drop-identical``
    Judgments whose two sides are the same response or texts equal up to case and
    whitespace (nothing to learn from them).
``length``
    Responses outside ``[min_words, max_words]`` and prompts over ``prompt_max_words``,
    with every judgment and ranking entry that refers to them (cascade).
``language``
    Prompts whose language is not in ``keep``: read from the prompt meta column
    ``column`` where set, otherwise detected by :func:`detect_language`.

Language detection
    No language-identification package (langdetect, langid, lingua, fastText) is
    installed with prefkit, so detection is a documented heuristic, vectorised with
    Arrow: the dominant Unicode script decides for non-Latin text (Cyrillic → ru,
    Greek → el, Arabic → ar, Hebrew → he, Devanagari → hi, Thai → th, Hangul → ko,
    Hiragana/Katakana → ja, Han without kana → zh); Latin text is assigned the language
    among en, de, fr, es, it, pt, nl whose short stop-word list (:data:`STOPWORDS`)
    matches most of its words; text with no letters or no stop word is ``und``
    (undetermined). It is reliable for prose of a sentence or more and says nothing
    useful about code or single words; a ``language`` column always wins.

Deviations: none (bookkeeping steps, no paper).

Parameters are listed with each step at the bottom (and in docs/curation/filters.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.curation import expr as expr_mod
from prefkit.curation import pairframe
from prefkit.curation.cascade import drop_rows
from prefkit.curation.step import Outcome, Param, Step, register
from prefkit.diagnostics.context import Context, InspectOptions
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

TIE_KINDS = ("all", "bad", "good")

#: Unicode scripts (RE2 classes) and the language each stands for; Latin is split by
#: stop words, Han is Japanese when kana is present.
SCRIPTS: dict[str, str] = {
    "Latin": "latin",
    "Cyrillic": "ru",
    "Greek": "el",
    "Arabic": "ar",
    "Hebrew": "he",
    "Devanagari": "hi",
    "Thai": "th",
    "Hangul": "ko",
    "Hiragana": "ja",
    "Katakana": "ja",
    "Han": "zh",
}
#: Short, frequent function words per Latin-script language (lower case).
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "are",
            "was",
            "of",
            "to",
            "in",
            "that",
            "it",
            "with",
            "for",
            "this",
            "you",
            "not",
            "have",
            "be",
            "what",
            "how",
            "on",
            "does",
            "why",
            "which",
            "can",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "und",
            "das",
            "ist",
            "nicht",
            "ein",
            "eine",
            "ich",
            "mit",
            "sie",
            "es",
            "den",
            "zu",
            "auf",
            "wie",
            "was",
            "auch",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "et",
            "est",
            "une",
            "des",
            "du",
            "que",
            "pas",
            "pour",
            "dans",
            "je",
            "vous",
            "il",
            "qui",
            "sur",
            "avec",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "los",
            "las",
            "y",
            "es",
            "una",
            "del",
            "que",
            "por",
            "para",
            "con",
            "no",
            "se",
            "su",
            "como",
            "pero",
            "está",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "gli",
            "e",
            "è",
            "di",
            "che",
            "non",
            "per",
            "una",
            "sono",
            "con",
            "della",
            "anche",
            "come",
            "ma",
            "questo",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "os",
            "as",
            "e",
            "é",
            "um",
            "uma",
            "do",
            "da",
            "não",
            "que",
            "para",
            "com",
            "em",
            "se",
            "mais",
            "por",
        ]
    ),
    "nl": frozenset(
        [
            "de",
            "het",
            "een",
            "en",
            "is",
            "van",
            "niet",
            "dat",
            "ik",
            "je",
            "op",
            "met",
            "voor",
            "zijn",
            "maar",
            "ook",
        ]
    ),
}
UNDETERMINED = "und"
_PUNCT = ".,;:!?\"'()[]{}<>«»¿¡…“”‘’-"


# --- helpers --------------------------------------------------------------------------------
def _chain(ds: Dataset, drops: Iterable[tuple[str, dict[str, Any]]]) -> Outcome:
    """Several :func:`drop_rows` calls with their own reasons, as one outcome."""
    tables: dict[str, pa.Table] = {}
    reasons: dict[str, dict[str, int]] = {}
    reports = []
    current = ds
    for reason, ids in drops:
        if not any(len(v) for v in ids.values()):
            continue
        out = drop_rows(current, reason, **ids)
        tables.update(out.tables)
        for table, counts in out.reasons.items():
            reasons.setdefault(table, {}).update(counts)
        if out.report is not None:
            reports.append(out.report)
        current = current.with_tables(**out.tables)
    return Outcome(tables, reasons=reasons, report=pa.concat_tables(reports) if reports else None)


def _nonnegative(step: str, **values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise PrefkitError(f"curate {step}: parameter {name!r} must be >= 0, got {value}")


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), bool)


# --- filter ----------------------------------------------------------------------------------
def evaluate(ds: Dataset, text: str, ctx: Context | None = None) -> pa.Table:
    """``judgment_id, keep``: the expression's value (true/false/null) on every judgment.

    Raises :class:`PrefkitError` on a bad expression, an unknown column (listing the
    available ones), or a value that is not true/false.
    """
    parsed = expr_mod.parse(text)
    parsed.check_names(pairframe.available(ds))
    ctx = ctx or Context(ds, InspectOptions(embed="never"))
    frame = pairframe.frame(ds, parsed.names, ctx)
    con = ctx.con
    con.register("_filter_frame", frame)
    try:
        rel = con.sql(f"SELECT judgment_id, ({parsed.sql}) AS keep FROM _filter_frame")
        kind = str(rel.types[1])
        if kind != "BOOLEAN":
            raise PrefkitError(
                f"filter expression {text!r} gives {kind} values, not true/false; "
                "compare it with something (e.g. `x > 0`)"
            )
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise PrefkitError(f"filter expression {text!r} failed: {exc}") from None
    finally:
        con.unregister("_filter_frame")


def run_filter(ds: Dataset, expr: str) -> Outcome:
    values = evaluate(ds, expr)
    keep = values.column("keep")
    ids = values.column("judgment_id")
    false_ids = ids.filter(pc.fill_null(pc.invert(keep), False))
    null_ids = ids.filter(pc.is_null(keep))
    reason = f"filter: {expr.strip()}"
    out = _chain(
        ds, [(reason, {"judgments": false_ids}), (f"{reason} (null)", {"judgments": null_ids})]
    )
    out.info = {"kept": len(ids) - len(false_ids) - len(null_ids), "false": len(false_ids),
                "null": len(null_ids)}  # fmt: skip
    return out


# --- ready filters ---------------------------------------------------------------------------
def run_drop_ties(ds: Dataset, kind: str) -> Outcome:
    j = ds.judgments
    tie = pc.equal(j.column("outcome"), 0)
    if kind != "all":
        tie = pc.and_(tie, pc.equal(j.column("tie_kind"), kind))
    reason = "tie" if kind == "all" else f"tie ({kind})"
    return _chain(ds, [(reason, {"judgments": j.column("judgment_id").filter(_mask(tie))})])


def run_drop_identical(ds: Dataset) -> Outcome:
    frame = pairframe.frame(ds, ["identical"])
    ids = frame.column("judgment_id").filter(_mask(frame.column("identical")))
    return _chain(ds, [("identical responses", {"judgments": ids})])


def run_length(ds: Dataset, min_words: int, max_words: int, prompt_max_words: int) -> Outcome:
    _nonnegative(
        "length", min_words=min_words, max_words=max_words, prompt_max_words=prompt_max_words
    )
    if max_words and max_words < min_words:
        raise PrefkitError(
            f"curate length: parameter 'max_words' ({max_words}) is below min_words ({min_words})"
        )
    ctx = Context(ds)
    drops: list[tuple[str, dict[str, Any]]] = []
    if prompt_max_words:
        lp = ctx.lengths("prompts")
        over = pc.greater(lp.column("n_words"), prompt_max_words)
        drops.append(
            (f"prompt over {prompt_max_words} words", {"prompts": lp.column("id").filter(over)})
        )
    if min_words or max_words:
        lr = ctx.lengths("responses")
        words = lr.column("n_words")
        out = pc.less(words, min_words)
        if max_words:
            out = pc.or_(out, pc.greater(words, max_words))
        bounds = f"[{min_words}, {max_words if max_words else 'inf'}]"
        drops.append(
            (f"response words outside {bounds}", {"responses": lr.column("id").filter(out)})
        )
    return _chain(ds, drops)


# --- language --------------------------------------------------------------------------------
def detect_language(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """ISO 639-1 code (or ``und``) of each text by script and stop words (see module doc)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    texts = pc.fill_null(texts, "")
    counts = np.stack(
        [
            np.asarray(pc.count_substring_regex(texts, rf"\p{{{s}}}").to_numpy(), np.int64)
            for s in SCRIPTS
        ],
        axis=1,
    )  # (n, scripts)
    names = list(SCRIPTS)
    kana = counts[:, names.index("Hiragana")] + counts[:, names.index("Katakana")]
    # Han with any kana is Japanese: move its count onto Hiragana.
    counts[:, names.index("Hiragana")] += np.where(kana > 0, counts[:, names.index("Han")], 0)
    counts[:, names.index("Han")] = np.where(kana > 0, 0, counts[:, names.index("Han")])
    top = counts.argmax(axis=1)
    langs = np.array([SCRIPTS[s] for s in names], dtype=object)[top]
    langs[counts.max(axis=1) == 0] = UNDETERMINED
    latin = np.flatnonzero(langs == "latin")
    if len(latin):
        words = pc.utf8_split_whitespace(pc.utf8_lower(texts.take(pa.array(latin))))
        flat = pc.utf8_trim(pc.list_flatten(words), _PUNCT)
        parent = np.asarray(pc.list_parent_indices(words).to_numpy(), np.int64)
        hits = np.stack(
            [
                np.bincount(
                    parent[_mask(pc.is_in(flat, value_set=pa.array(sorted(sw))))],
                    minlength=len(latin),
                )
                for sw in STOPWORDS.values()
            ],
            axis=1,
        )  # (n_latin, languages)
        codes = np.array(list(STOPWORDS), dtype=object)[hits.argmax(axis=1)]
        codes[hits.max(axis=1) == 0] = UNDETERMINED
        langs[latin] = codes
    return pa.array(langs.tolist() if n else [], pa.string())


def _normalise(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lower case, primary subtag (``en-US``/``en_us`` → ``en``)."""
    low = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    return pc.list_element(pc.split_pattern_regex(low, "[-_]"), 0)


def run_language(ds: Dataset, keep: list[str], column: str) -> Outcome:
    wanted = [k.strip().lower() for k in keep if k.strip()]
    if not wanted:
        raise PrefkitError("curate language: parameter 'keep' needs at least one language")
    ctx = Context(ds)
    ids_parts, lang_parts = [], []
    has_column = column in ds.prompts.column_names
    given_all = ds.prompts.column(column).cast(pa.string()) if has_column else None
    offset = 0
    detected = 0
    for ids, text in ctx.texts("prompts"):
        n = len(ids)
        if given_all is not None:
            given = given_all.slice(offset, n).combine_chunks()
            missing = pc.is_null(given)
            if pc.any(missing).as_py():
                guess = detect_language(text.filter(missing))
                given = pc.replace_with_mask(given, missing, guess)
                detected += len(guess)
            lang = given
        else:
            lang = detect_language(text)
            detected += n
        ids_parts.append(ids)
        lang_parts.append(lang)
        offset += n
    ids_all = pa.chunked_array(ids_parts, pa.string()).combine_chunks()
    langs = pa.chunked_array(lang_parts, pa.string()).combine_chunks()
    norm = _normalise(langs)
    raw = pc.utf8_lower(pc.utf8_trim_whitespace(langs))
    value_set = pa.array(wanted, pa.string())
    ok = pc.or_(
        _mask(pc.is_in(norm, value_set=pa.array([w.split("-")[0] for w in wanted]))),
        _mask(pc.is_in(raw, value_set=value_set)),
    )
    gone = ids_all.filter(pc.invert(ok))
    out = _chain(ds, [(f"language not in {', '.join(wanted)}", {"prompts": gone})])
    vc = pc.value_counts(pc.fill_null(norm, UNDETERMINED)).to_pylist()
    out.info = {
        "languages": {d["values"]: d["counts"] for d in sorted(vc, key=lambda d: -d["counts"])},
        "detected": detected,
        "from_column": len(ids_all) - detected,
    }
    return out


register(
    Step(
        "filter",
        "keep judgments where a safe expression over columns and diagnostic scores is true",
        run_filter,
        (
            Param(
                "expr",
                None,
                "expression, e.g. 'length_ratio < 3 and suspicion < 0.8' (docs/curation/filters.md)",
                required=True,
            ),
        ),
    )
)
register(
    Step(
        "drop-ties",
        "drop tie judgments (all, only both-bad or only both-good ties)",
        run_drop_ties,
        (Param("kind", "all", "which ties: all, bad (tie_kind bad), good", choices=TIE_KINDS),),
    )
)
register(
    Step(
        "drop-identical",
        "drop judgments comparing a response with itself or with the same text "
        "(case and whitespace ignored)",
        run_drop_identical,
    )
)
register(
    Step(
        "length",
        "drop responses outside word bounds and over-long prompts, with what refers to them",
        run_length,
        (
            Param("min_words", 0, "fewest words a response may have"),
            Param("max_words", 0, "most words a response may have (0: no bound)"),
            Param("prompt_max_words", 0, "most words a prompt may have (0: no bound)"),
        ),
    )
)
register(
    Step(
        "language",
        "keep prompts in the given languages (meta column, else script/stop-word heuristic)",
        run_language,
        (
            Param("keep", ["en"], "languages to keep (ISO 639-1 codes, comma-separated)"),
            Param("column", "language", "prompt meta column holding the language"),
        ),
    )
)

__all__ = ["SCRIPTS", "STOPWORDS", "detect_language", "evaluate"]
