"""UKPConvArg1: which of two arguments is more convincing (Habernal & Gurevych, ACL 2016).

"Which argument is more convincing? Analyzing and predicting convincingness of Web
arguments using bidirectional LSTM", Habernal and Gurevych, ACL 2016; data from the
UKPLab ``acl2016-convincing-arguments`` repository. Three layouts are read:

* ``ukp-convarg``  the full XML (``UKPConvArg1-full-XML/*.xml[.gz]``): one judgment per
  crowd worker (MTurk assignment), ties ("equal"), worker ids, reasons and competence.
* ``ukp-strict``   the Strict CSV (tab-separated ``#id label a1 a2``): one gold judgment
  per pair, ties and low-agreement pairs removed.
* ``ukp-ranking``  the Ranking CSV (tab-separated ``#id rank argument``): one ranking per
  debate side from the per-argument convincingness scores.

Every file is one side of a debate. Its prompt is the debate title with the side's stance
as context, built the same way in all three layouts, and arguments are responses without
a source; since ids are content hashes, the same argument gets the same response id in
every layout, so the gold labels, crowd labels and rankings of one argument join.
The CSV files name the debate only through the file name; the corpus's 16 debates and
32 sides are listed below to rebuild the XML's title and stance text from it.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

import pyarrow as pa

from prefkit.errors import InputError, PrefkitError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    read_rows,
    register,
    reject,
    unique_stems,
)
from prefkit.io.records import Record, bad_record, is_bad, open_binary
from prefkit.schema import A_WINS, B_WINS, TIE, TableBuilder

XML_DIR = "UKPConvArg1-full-XML"
PAIR_TAG = "annotatedArgumentPair"
PAIR_START = re.compile(rb"<annotatedArgumentPair[\s>/]")
PAIR_START_LEN = len(PAIR_TAG) + 2
BLOCK_BYTES = 1 << 16
LABELS = {"a1": A_WINS, "a2": B_WINS, "equal": TIE}
STRICT_HEADER = ("id", "label", "a1", "a2")
RANKING_HEADER = ("id", "rank", "argument")
LINE_BREAK = re.compile(r" ?<br/> ?")
SKIPPED_TAGS = {"originalHTML"}
#: judgment meta column <- (MTurk assignment tag, type)
ASSIGNMENT_META: tuple[tuple[str, str, type], ...] = (
    ("worker_stance", "workerStance", str),
    ("turk_competence", "turkCompetence", float),
    ("turk_rank", "turkRank", int),
    ("assignment_id", "assignmentId", str),
    ("hit_id", "hitID", str),
    ("accept_time", "assignmentAcceptTime", str),
    ("submit_time", "assignmentSubmitTime", str),
    ("hit_comment", "hitComment", str),
)
#: response meta column <- (argument tag, type)
ARGUMENT_META: tuple[tuple[str, str, type], ...] = (
    ("author", "author", str),
    ("vote_up", "voteUpCount", int),
    ("vote_down", "voteDownCount", int),
    ("stance", "stance", str),
)
LIST_TAGS = {"mTurkAssignments"}

#: debate slug (file name before ``_``) -> (title, {side slug: stance}), from the full XML.
DEBATES: dict[str, tuple[str, dict[str, str]]] = {
    "ban-plastic-water-bottles": (
        "Ban Plastic Water Bottles",
        {
            "no-bad-for-the-economy": "No Bad For the Economy",
            "yes-emergencies-only": "Yes Emergencies Only",
        },
    ),
    "christianity-or-atheism-": (
        "Christianity or Atheism?",
        {"atheism": "Atheism", "christianity": "Christianity"},
    ),
    "evolution-vs-creation": (
        "Evolution vs. Creation",
        {"creation": "Creation", "evolution": "Evolution"},
    ),
    "firefox-vs-internet-explorer": (
        "Firefox vs. Internet Explorer",
        {
            "it-has-a-cute-logo-oh-and-extensions-err-add-ons": "It has a cute logo ... oh and Extensions... err Add-Ons",
            "there-s-more-browsers-than-the-ie-firefox-is-an-animal": "There's more Browsers than the IE? Firefox is an Animal and the Opera isn't about the Internet",
        },
    ),
    "gay-marriage-right-or-wrong": (
        "Gay Marriage: Right or Wrong",
        {
            "allowing-gay-marriage-is-right": "Allowing gay marriage is Right",
            "allowing-gay-marriage-is-wrong": "Allowing gay marriage is Wrong",
        },
    ),
    "human-growth-and-development-should-parents-use-spanking-as-an-option-to-discipline-": (
        "Human Growth and Development: Should parents use spanking as an option to discipline?",
        {"no": "NO", "yes": "YES"},
    ),
    "if-your-spouse-committed-murder-and-he-or-she-confided-in-you-would-you-turn-them-in-": (
        "If your spouse committed murder and he or she confided in you, would you turn them in?",
        {"no": "No", "yes": "yes"},
    ),
    "india-has-the-potential-to-lead-the-world-": (
        "INDIA HAS THE POTENTIAL TO LEAD THE WORLD...",
        {"no-against": "NO/AGAINST", "yes-for": "YES/FOR"},
    ),
    "is-it-better-to-have-a-lousy-father-or-to-be-fatherless-": (
        "Is it better to have a lousy father or to be fatherless?",
        {"fatherless": "Fatherless", "lousy-father": "Lousy Father"},
    ),
    "is-porn-wrong-": (
        "Is porn wrong?",
        {"no-is-is-not": "No is is not", "yes-porn-is-wrong": "Yes porn is wrong"},
    ),
    "is-the-school-uniform-a-good-or-bad-idea-": (
        "Is the school uniform a good or bad idea?",
        {"bad": "Bad", "good": "Good"},
    ),
    "personal-pursuit-or-advancing-the-common-good-": (
        "Which type of endeavor is better, a personal pursuit or advancing the common good?",
        {
            # The three layouts spell this side's file name three ways.
            "advancing-the-comnong-good": "Advancing the Common Good",
            "advancing-the-commond-good": "Advancing the Common Good",
            "advancing-the-common-good": "Advancing the Common Good",
            "personal-pursuit": "Personal Pursuit",
        },
    ),
    "pro-choice-vs-pro-life": (
        "Pro-Choice vs. Pro-Life",
        {"pro-choice": "Pro-Choice", "pro-life": "Pro-Life"},
    ),
    "should-physical-education-be-mandatory-in-schools-": (
        "Should physical education be mandatory in schools?",
        {"no-": "No!", "yes-": "Yes!"},
    ),
    "tv-is-better-than-books": (
        "TV is better than Books",
        {"books": "Books", "tv": "TV"},
    ),
    "william-farquhar-ought-to-be-honoured-as-the-rightful-founder-of-singapore": (
        "William Farquhar ought to be honoured as the rightful founder of Singapore",
        {"no-it-is-raffles-": "No, it is Raffles!", "yes-of-course-": "Yes, of course!"},
    ),
}


# --- helpers ---------------------------------------------------------------------------------
def side_of(path: Path) -> str:
    """The debate side a file holds: its name without extensions."""
    return path.name.split(".")[0]


def debate_of(side: str) -> tuple[str, str | None]:
    """(title, stance) of a debate side from its file name, as the full XML spells them.

    A side missing from :data:`DEBATES` gets its words from the file name instead.
    """
    slug, _, side_slug = side.partition("_")
    title, stances = DEBATES.get(slug, ("", {}))
    stance = stances.get(side_slug)
    if not title:
        title = slug.replace("-", " ").strip() or side
    if stance is None and side_slug:
        stance = side_slug.replace("-", " ").strip() or side_slug
    return title, stance


def debate_prompt(emit: Emitter, title: str, stance: str | None, **meta: Any) -> str:
    """The prompt of one debate side: the title as a user turn, the stance as context."""
    context = {"stance": stance} if stance else None
    return emit.prompt([{"role": "user", "content": title}], context, **meta)


def argument(emit: Emitter, prompt_id: str, text: str, **meta: Any) -> str:
    """One argument as a response (no source: the author is kept in meta)."""
    return emit.response(prompt_id, [{"role": "assistant", "content": text}], None, **meta)


def _get(d: Any, key: str, where: str, required: bool = True) -> Any:
    """A leaf element's text (stripped, except argument texts); '' counts as missing."""
    if d.__class__ is not dict:
        raise RecordError(where, "is missing or not an element")
    value = d.get(key)
    if value.__class__ is str:
        if key != "text":
            value = value.strip()
        if value:
            return value
    elif value is not None:
        raise RecordError(f"{where}.{key}" if where else key, "expected text, got nested elements")
    if required:
        raise RecordError(f"{where}.{key}" if where else key, "is missing")
    return None


def _typed(value: str | None, kind: type, name: str) -> Any:
    if value is None or kind is str:
        return value
    try:
        typed = kind(value)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise RecordError(name, f"expected {expected}, got {value!r}") from None
    if kind is int and not -(2**63) <= typed < 2**63:  # the meta column is int64
        raise RecordError(name, f"is out of the 64-bit integer range: {value!r}")
    return typed


def _meta(d: Any, where: str, fields: tuple[tuple[str, str, type], ...]) -> dict[str, Any]:
    return {
        col: _typed(_get(d, tag, where, False), kind, f"{where}.{tag}") for col, tag, kind in fields
    }


def _label(value: Any, name: str) -> int:
    if value not in LABELS:
        raise RecordError(name, f"expected one of {', '.join(LABELS)}, got {value!r}")
    return LABELS[value]


def _element_dict(elem: Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        if child.tag in SKIPPED_TAGS:
            continue
        if child.tag in LIST_TAGS:
            out[child.tag] = [_element_dict(c) for c in child]
        elif len(child):
            out[child.tag] = _element_dict(child)
        else:
            out[child.tag] = child.text
    return out


# --- full XML ----------------------------------------------------------------------------------
def iter_pairs(path: Path) -> Iterator[Record]:
    """Stream the ``<annotatedArgumentPair>`` elements of one XML file as plain dicts.

    The file is fed to the parser in blocks; the line each pair starts on comes from a
    scan of the same bytes for the pair's start tag, so records can name their line.
    Each pair is cleared once read, so memory stays flat.

    Raises
    ------
    InputError
        For malformed XML (with its line), a cut-off gzip stream, or an element other
        than ``<annotatedArgumentPair>`` under the root.
    """
    name = str(path)
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    starts: deque[int] = deque()
    depth, newlines, tail = 0, 0, b""
    root: Element | None = None
    try:
        with open_binary(path) as fh:
            for block in iter(lambda: fh.read(BLOCK_BYTES), b""):
                # Lines of the pair start tags in this block (a tag may straddle blocks,
                # so the last few bytes are scanned again with the next block).
                data, pos = tail + block, 0
                for match in PAIR_START.finditer(data):
                    newlines += data.count(b"\n", pos, match.start())
                    pos = match.start()
                    starts.append(newlines + 1)
                cut = max(len(data) - PAIR_START_LEN + 1, 0)  # too short to hold a whole tag
                newlines += data.count(b"\n", pos, cut)
                tail = data[cut:]
                parser.feed(block)
                for pair_event in parser.read_events():
                    event, elem = cast(tuple[str, Element], pair_event)
                    if event == "start":
                        depth += 1
                        if depth == 1:
                            root = elem
                        elif depth == 2 and elem.tag != PAIR_TAG:
                            raise InputError(
                                name,
                                None,
                                None,
                                f"unexpected element <{elem.tag}> under the root, expected <{PAIR_TAG}>",
                            )
                        continue
                    depth -= 1
                    if depth == 1 and root is not None:
                        line = starts.popleft() if starts else 0
                        yield Record(name, f"line {line}", _element_dict(elem))
                        root.clear()
            parser.close()
    except ParseError as exc:
        line = exc.position[0] if exc.position else newlines + 1
        raise InputError(name, f"line {line}", None, f"malformed XML ({exc})") from None
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(
            name, None, None, f"cannot read the file ({type(exc).__name__}: {exc})"
        ) from None


@dataclass
class _ConvArgReader:
    """State shared by the record stream and the converter: the side being read."""

    side: str = ""

    def records(self, path: Path) -> Iterator[Record]:
        self.side = side_of(path)
        yield from iter_pairs(path)

    def convert(self, pair: dict[str, Any], emit: Emitter) -> None:
        pair_id = _get(pair, "id", "")
        debate = pair.get("debateMetaData")
        title = _get(debate, "title", "debateMetaData")
        args = [pair.get("arg1"), pair.get("arg2")]
        stance = _get(args[0], "stance", "arg1", required=False)
        pid = debate_prompt(
            emit,
            title,
            stance,
            debate_url=_get(debate, "url", "debateMetaData", required=False),
            description=_get(debate, "description", "debateMetaData", required=False),
            debate_side=self.side,
        )
        a, b = (
            argument(
                emit,
                pid,
                _get(arg, "text", key),
                arg_id=_get(arg, "id", key),
                **_meta(arg, key, ARGUMENT_META),
            )
            for key, arg in zip(("arg1", "arg2"), args, strict=True)
        )
        gold = _get(pair, "goldLabel", "", required=False)
        if gold is not None:
            _label(gold, "goldLabel")
        assignments = pair.get("mTurkAssignments") or []
        for i, asg in enumerate(assignments):
            where = f"mTurkAssignments[{i}]"
            emit.judgment(
                pid,
                a,
                b,
                _label(_get(asg, "value", where), f"{where}.value"),
                annotator_id=_get(asg, "turkID", where, required=False),
                annotator_kind="human",
                rationale=_get(asg, "reason", where, required=False),
                pair_id=pair_id,
                **_meta(asg, where, ASSIGNMENT_META),
                gold_label=gold,
            )


def xml_files(path: Path) -> list[Path]:
    """The XML files to read for ``path``: the file itself, the full-XML folder under a
    corpus root, or every ``*.xml[.gz]`` in the folder."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PrefkitError(f"{path}: no such file or folder")
    folder = path / XML_DIR if (path / XML_DIR).is_dir() else path
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and _is_xml_name(p)
    )
    if not files:
        raise PrefkitError(f"{path}: no UKPConvArg1 XML files (*.xml, *.xml.gz) found")
    return files


def _is_xml_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".xml") or name.endswith(".xml.gz")


def _annotators_table(stats: dict[str, list[Any]]) -> pa.Table:
    builder = TableBuilder("annotators")
    for annotator_id, (n, competence, rank) in stats.items():
        builder.add(
            annotator_id=annotator_id, turk_competence=competence, turk_rank=rank, n_assignments=n
        )
    return builder.build()


def _count_annotators(table: pa.Table | None, stats: dict[str, list[Any]]) -> None:
    if table is None or not table.num_rows:
        return
    cols = [
        table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
        for c in ("annotator_id", "turk_competence", "turk_rank")
    ]
    for annotator_id, competence, rank in zip(*cols, strict=True):
        if annotator_id is None:
            continue
        entry = stats.get(annotator_id)
        if entry is None:
            stats[annotator_id] = [1, competence, rank]
        else:
            entry[0] += 1


def read_convarg(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read the full XML: pairs, one judgment per MTurk assignment, and the workers.

    The annotators table (one row per ``turkID`` with its MACE competence, rank and
    number of kept assignments) comes as a last chunk, counted from the judgments read.
    """
    files = [f for p in paths for f in xml_files(Path(p))]
    reader = _ConvArgReader()
    stats: dict[str, list[Any]] = {}
    for chunk in read_rows(files, reader.convert, options, records=reader.records):
        _count_annotators(chunk.get("judgments"), stats)
        yield chunk
    if stats:
        yield {"annotators": _annotators_table(stats)}


def sniff_convarg(sample: Sample) -> float:
    path = sample.path
    try:
        folder = path / XML_DIR if (path / XML_DIR).is_dir() else path
        for p in sorted(folder.iterdir())[:3]:
            if p.is_file() and _is_xml_name(p):
                with open_binary(p) as fh:
                    if PAIR_TAG.encode() in fh.read(4096):
                        return 0.97
    except (OSError, EOFError, zlib.error):
        return 0.0
    return 0.0


# --- tab-separated CSV layouts -----------------------------------------------------------------
def iter_tsv(path: Path, header: tuple[str, ...]) -> Iterator[Record]:
    """Records of a UKP tab-separated file: no quoting (texts contain quotes), ``#`` header.

    A line with the wrong number of fields still yields a record (a list of its fields)
    so the converter reports it as a bad record.
    """
    name = str(path)
    expected = "#" + "\t".join(header)
    lineno = 0
    try:
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    problem = f"invalid UTF-8 at byte {exc.start}"
                    if lineno == 1:
                        raise InputError(name, "line 1", None, problem) from None
                    # A bad line is a bad record: reported, or quarantined, by its line.
                    yield Record(name, f"line {lineno}", bad_record(problem), raw)
                    continue
                if lineno == 1:
                    if line.strip() != expected:
                        shown = expected.replace("\t", "<TAB>")
                        raise InputError(
                            name,
                            "line 1",
                            None,
                            f"expected the header {shown!r}, got {line[:80]!r}",
                        )
                    continue
                if not line.strip():
                    continue
                fields = line.split("\t")
                data: Any = (
                    dict(zip(header, fields, strict=True)) if len(fields) == len(header) else fields
                )
                yield Record(name, f"line {lineno}", data, raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(
            name, None, None, f"cannot read the file ({type(exc).__name__}: {exc})"
        ) from None
    if lineno == 0:
        # Not even the header line (as for CSV in prefkit.io.records): say so rather than
        # reading an empty dataset.
        raise InputError(name, None, None, "the file is empty")


def _fields(row: Any, header: tuple[str, ...]) -> dict[str, str]:
    problem = is_bad(row)
    if problem is not None:
        raise RecordError(None, problem)
    if not isinstance(row, dict):
        raise RecordError(
            None,
            f"has {len(row)} tab-separated fields, expected {len(header)} ({', '.join(header)})",
        )
    return row


def _text(row: dict[str, str], key: str) -> str:
    text = LINE_BREAK.sub("\n", row[key])
    if not text.strip():
        raise RecordError(key, "is empty")
    return text


@dataclass
class _StrictReader:
    side: str = ""
    debate: tuple[str, str | None] = ("", None)

    def records(self, path: Path) -> Iterator[Record]:
        self.side = side_of(path)
        self.debate = debate_of(self.side)
        yield from iter_tsv(path, STRICT_HEADER)

    def convert(self, row: Any, emit: Emitter) -> None:
        row = _fields(row, STRICT_HEADER)
        pair_id = row["id"].strip()
        ids = pair_id.split("_")
        if len(ids) != 2 or not all(ids):
            raise RecordError("id", f"expected '<arg1 id>_<arg2 id>', got {pair_id!r}")
        outcome = _label(row["label"].strip(), "label")
        pid = debate_prompt(emit, *self.debate, debate_side=self.side)
        a = argument(emit, pid, _text(row, "a1"), arg_id=ids[0])
        b = argument(emit, pid, _text(row, "a2"), arg_id=ids[1])
        emit.judgment(pid, a, b, outcome, annotator_kind="human", pair_id=pair_id, gold=True)


def read_strict(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read Strict CSV files: one gold (aggregated) judgment per argument pair."""
    reader = _StrictReader()
    yield from read_rows(paths, reader.convert, options, records=reader.records)


def read_ranking(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read Ranking CSV files: arguments with their score, one ranking per file.

    Tiers go from the highest score down; arguments with equal scores share a tier.
    A quarantined line leaves its argument out of the ranking. An argument text listed
    twice (the corpus has reposted arguments under two ids) is one response: the first
    line counts, the other ids go to the ranking's ``merged_arg_ids``.
    """
    q = options.quarantine
    paths = [Path(p) for p in paths]
    emit = Emitter("")
    for path, stem in zip(paths, unique_stems(paths), strict=True):
        emit.start_file(stem)
        side = side_of(path)
        title, stance = debate_of(side)
        scored: dict[str, float] = {}
        merged: list[str] = []
        pid = ""
        for rec in iter_tsv(path, RANKING_HEADER):
            if q is not None:
                q.read += 1
            try:
                row = _fields(rec.data, RANKING_HEADER)
                arg_id = row["id"].strip()
                score = _typed(row["rank"].strip() or None, float, "rank")
                if not arg_id or score is None:
                    raise RecordError("rank" if arg_id else "id", "is missing")
                pid = debate_prompt(emit, title, stance, debate_side=side)
                rid = argument(emit, pid, _text(row, "argument"), score=score, arg_id=arg_id)
            except RecordError as err:
                reject(emit, q, rec, err)
                continue
            emit.commit()
            if rid in scored:
                # The same text posted twice is one response (ids are content hashes): its
                # first line gives the score and tier, the later ids are listed in meta.
                merged.append(arg_id)
            else:
                scored[rid] = score
            if q is not None:
                q.kept += 1
        if scored:
            emit.ranking(pid, _tiers(scored), debate_side=side, merged_arg_ids=merged)
            emit.commit()
        if emit.pending() >= options.batch_rows:
            yield emit.flush()
    yield emit.flush()


def _tiers(scored: dict[str, float]) -> list[list[str]]:
    tiers: list[list[str]] = []
    last: float | None = None
    for rid, score in sorted(scored.items(), key=lambda x: (-x[1], x[0])):
        if last is None or score != last:
            tiers.append([])
            last = score
        tiers[-1].append(rid)
    return tiers


def _first_line(path: Path) -> bytes:
    with open_binary(path) as fh:
        return fh.readline(4096).strip()


def _sniff_header(header: tuple[str, ...]) -> Any:
    expected = ("#" + "\t".join(header)).encode()

    def sniff(sample: Sample) -> float:
        try:
            return 0.95 if sample.path.is_file() and _first_line(sample.path) == expected else 0.0
        except (OSError, EOFError, zlib.error):
            return 0.0

    return sniff


# --- registration --------------------------------------------------------------------------------
READ_ONLY = (
    "the UKPConvArg1 layouts are one file per debate side named after the debate, with "
    "argument ids and MTurk assignment records prefkit cannot invent; export the data with "
    "the trl or generic writers instead"
)

register(
    Format(
        name="ukp-convarg",
        summary="UKPConvArg1 full XML (Habernal & Gurevych 2016): crowd judgments with ties, worker ids and reasons",
        kinds=("pairwise", "ties", "annotators"),
        sniff=sniff_convarg,
        read=read_convarg,
        cannot_write=READ_ONLY,
        directory=True,
    )
)
register(
    Format(
        name="ukp-strict",
        summary="UKPConvArg1 Strict CSV: gold pairwise labels of argument convincingness",
        kinds=("pairwise",),
        sniff=_sniff_header(STRICT_HEADER),
        read=read_strict,
        cannot_write=READ_ONLY,
    )
)
register(
    Format(
        name="ukp-ranking",
        summary="UKPConvArg1 Ranking CSV: per-argument convincingness scores, one ranking per debate side",
        kinds=("rankings", "scores"),
        sniff=_sniff_header(RANKING_HEADER),
        read=read_ranking,
        cannot_write=READ_ONLY,
    )
)
