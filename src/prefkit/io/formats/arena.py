"""Arena battles: two models answer one prompt and a judge picks a winner or a tie.

* ``arena``        Chatbot Arena style rows (Zheng et al., "Judging LLM-as-a-Judge with
  MT-Bench and Chatbot Arena", NeurIPS 2023 Datasets and Benchmarks; the same layout as
  the MT-Bench human judgments): ``model_a``, ``model_b``, ``winner`` in ``model_a`` /
  ``model_b`` / ``tie`` / ``tie (bothbad)``, optional ``conversation_a/b``, ``judge``,
  ``question_id``, ``turn``, ``language``, ``anony``, ``tstamp``. Read and written.
* ``prd-battles``  the Vicuna-80 human three-class judgments as laid out in the PRD
  repository (Li et al., "PRD: Peer Rank and Discussion Improve Large Language Model
  based Evaluations", 2023), which come from QLoRA (Dettmers et al., 2023): a folder with
  ``ratings-human/answer_<M1>-vs-answer_<M2>-human-reviewer_threeclass.jsonl``,
  ``prompts/*.jsonl`` and ``generations/answer_<model>.jsonl``. Read only.

Each model's answer is a response with ``source`` = the model name; each vote is a
judgment with ``a`` = model A's (M1's) response.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.errors import InputError, PrefkitError, RecordError
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
from prefkit.io.formats.sinks import write_table
from prefkit.io.records import Record, is_bad, iter_records
from prefkit.schema import A_WINS, ANNOTATOR_KINDS, B_WINS, TIE
from prefkit.schema.tables import MESSAGES

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

WINNERS: dict[str, tuple[int, str | None]] = {
    "model_a": (A_WINS, None),
    "model_b": (B_WINS, None),
    "tie": (TIE, "good"),
    "tie (bothbad)": (TIE, "bad"),
}
PROMPT_ROLES = ("system", "user")
#: Optional arena columns carried as judgment meta, with their parsers.
JUDGMENT_META = ("turn", "language", "anony", "tstamp")

RATINGS_DIR = "ratings-human"
RATING_FILE = re.compile(
    r"^answer_(?P<a>.+?)-vs-answer_(?P<b>.+?)-human-reviewer_threeclass\.jsonl(?:\.gz)?$"
)
ANSWER_FILE = re.compile(r"^answer_(?P<model>.+?)\.jsonl(?:\.gz)?$")
PRD_SCORES = {1: A_WINS, 2: B_WINS, 3: TIE}


# --- field helpers -----------------------------------------------------------------------------
def _text_or_none(rec: dict[str, Any], key: str) -> str | None:
    """An optional id-like field as a string: ints become strings, '' (CSV) is None."""
    value = rec.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(key, f"expected a string or an integer, got {type(value).__name__}")
    return str(value)


def _model(rec: dict[str, Any], key: str) -> str:
    value = _text_or_none(rec, key)
    if value is None:
        raise RecordError(key, "is missing")
    return value


def _turn(value: Any) -> int | None:
    num = number(value, "turn")
    if num is None:
        return None
    # is_integer() is False for inf/nan; the bound keeps the meta column int64.
    if not num.is_integer() or not -(2**63) <= num < 2**63:
        raise RecordError("turn", f"expected an integer, got {value!r}")
    return int(num)


def _anony(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise RecordError("anony", f"expected true or false, got {value!r}")


def _language(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError("language", f"expected a string, got {type(value).__name__}")
    return value


_META_PARSERS = {
    "turn": _turn,
    "language": _language,
    "anony": _anony,
    "tstamp": lambda v: number(v, "tstamp"),
}


def _conversation(rec: dict[str, Any], key: str) -> list[dict[str, str]] | None:
    """``conversation_a``/``_b`` as canonical messages; a JSON string (CSV) is parsed."""
    value = rec.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RecordError(key, "is a string that is not a JSON list of turns") from None
    if not isinstance(value, list):
        raise RecordError(
            key, f"expected a list of {{role, content}} turns, got {type(value).__name__}"
        )
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RecordError(f"{key}[{i}]", f"expected an object, got {type(turn).__name__}")
        role, content = turn.get("role"), turn.get("content")
        if not isinstance(role, str) or not role:
            raise RecordError(f"{key}[{i}].role", "is missing or not a string")
        if not isinstance(content, str):
            raise RecordError(
                f"{key}[{i}].content", f"expected a string, got {type(content).__name__}"
            )
        turns.append({"role": role, "content": content})
    return turns


def split_conversations(
    conv_a: list[dict[str, str]], conv_b: list[dict[str, str]]
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """(prompt, response A, response B): the prompt is the leading system/user turns,
    which both conversations must share; each response is the rest of its conversation."""
    n = 0
    while n < len(conv_a) and conv_a[n]["role"] in PROMPT_ROLES:
        n += 1
    prompt = conv_a[:n]
    if conv_b[:n] != prompt or (len(conv_b) > n and conv_b[n]["role"] in PROMPT_ROLES):
        raise RecordError(
            "conversation_b", "does not start with the same user/system turns as conversation_a"
        )
    return prompt, conv_a[n:], conv_b[n:]


# --- arena rows --------------------------------------------------------------------------------
def convert_battle(rec: Any, emit: Emitter, annotator_kind: str = "human") -> None:
    """One battle row -> a prompt, two responses (source = model) and one judgment."""
    if not isinstance(rec, dict):
        raise RecordError(None, f"expected an object, got {type(rec).__name__}")
    model_a, model_b = _model(rec, "model_a"), _model(rec, "model_b")
    winner = need(rec, "winner")
    if winner not in WINNERS:
        allowed = ", ".join(repr(w) for w in WINNERS)
        raise RecordError("winner", f"expected one of {allowed}, got {winner!r}")
    outcome, tie_kind = WINNERS[winner]
    question_id = _text_or_none(rec, "question_id")
    conv_a, conv_b = _conversation(rec, "conversation_a"), _conversation(rec, "conversation_b")
    if (conv_a is None) != (conv_b is None):
        missing = "conversation_a" if conv_a is None else "conversation_b"
        raise RecordError(missing, "is missing while the other conversation is given")
    if conv_a is not None and conv_b is not None:
        prompt, resp_a, resp_b = split_conversations(conv_a, conv_b)
        pid = (
            emit.prompt(prompt)
            if question_id is None
            else emit.prompt(prompt, question_id=question_id)
        )
    elif question_id is None:
        raise RecordError(
            "question_id",
            "is missing; without conversation_a/conversation_b it is what identifies the prompt",
        )
    else:
        # No texts: the question id stands in for the prompt (as context, so it is part
        # of the prompt's id) and each model's answer is an empty completion.
        pid = emit.prompt([], {"question_id": question_id}, question_id=question_id)
        resp_a = resp_b = []
    a = emit.response(pid, resp_a, source=model_a)
    b = emit.response(pid, resp_b, source=model_b)
    if a == b:
        raise RecordError("model_b", "is the same model with the same answer as model_a")
    extra: dict[str, Any] = {}
    for key in JUDGMENT_META:
        value = _META_PARSERS[key](rec.get(key))
        if value is not None:
            extra[key] = value
    emit.judgment(
        pid,
        a,
        b,
        outcome,
        tie_kind=tie_kind,
        annotator_id=_text_or_none(rec, "judge"),
        annotator_kind=annotator_kind,
        **extra,
    )


def read_arena(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read battle rows from JSON, JSON Lines, Parquet or CSV files."""
    kind = options.option("annotator_kind", "human")
    if kind not in ANNOTATOR_KINDS:
        raise PrefkitError(
            f"annotator_kind must be one of {', '.join(ANNOTATOR_KINDS)}, got {kind!r}"
        )
    yield from read_rows(paths, lambda rec, emit: convert_battle(rec, emit, kind), options)


def battle_columns(path: Path) -> pa.Table | None:
    """Just ``model_a``, ``model_b``, ``winner`` of an arena file, read column-wise by Arrow.

    Ratings need nothing else, so ``prefkit arena`` skips building the canonical tables
    for a plain battle file. Returns None when the file does not read cleanly this way
    (the caller then loads it normally, which names any bad record's line and field).
    """
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    from prefkit.io.records import resolve_container

    columns = ["model_a", "model_b", "winner"]
    try:
        kind = resolve_container(path)
        if kind == "jsonl":
            schema = pa.schema([(c, pa.string()) for c in columns])
            opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            table = pajson.read_json(path, parse_options=opts)
        elif kind == "parquet":
            table = pq.read_table(path, columns=columns)
        elif kind in ("csv", "tsv"):
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter="\t" if kind == "tsv" else ","),
                convert_options=pacsv.ConvertOptions(
                    include_columns=columns, column_types=dict.fromkeys(columns, pa.string())
                ),
            )
        else:
            return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError, InputError):
        return None
    if any(table.column(c).null_count for c in columns):
        return None
    import pyarrow.compute as pc

    if not pc.all(pc.is_in(table.column("winner"), value_set=pa.array(list(WINNERS)))).as_py():
        return None  # the full reader names the bad record's line
    return table.select(columns)


def sniff_arena(sample: Sample) -> float:
    keys: set[str] = set()
    for rec in sample.records:
        if isinstance(rec, dict):
            keys.update(rec)
    if {"model_a", "model_b", "winner"} <= keys:
        return 0.95
    if {"model_a", "model_b", "conversation_a", "conversation_b"} <= keys:
        return 0.5
    return 0.0


# --- writing battles ---------------------------------------------------------------------------
def _messages_by_id(table: pa.Table, key: str, ids: pa.Array) -> dict[str, list[dict[str, str]]]:
    rows = table.filter(pc.is_in(table.column(key), value_set=ids)).select([key, "messages"])
    return {
        k: m or []
        for k, m in zip(
            rows.column(key).to_pylist(), rows.column("messages").to_pylist(), strict=True
        )
    }


def battle_rows(ds: Dataset, options: dict[str, Any]) -> pa.Table:
    """The rows the arena writer emits: ``question_id`` (the prompt id), ``model_a``,
    ``model_b``, ``winner``, ``judge`` (annotator id), ``conversation_a/b`` (prompt turns
    followed by each model's answer, when the dataset has texts) and, with
    ``annotators="each"``, the arena meta columns the judgments carry."""
    from prefkit.views import to_battles

    annotators = options.get("annotators") or "each"
    ties = options.get("battle_ties") or options.get("ties")
    # The pair writers' ties="error" means "refuse ties": to_battles does that with None.
    battles = to_battles(ds, ties=None if ties == "error" else ties, annotators=annotators)
    prompts = _messages_by_id(ds.prompts, "prompt_id", pc.unique(battles.column("prompt_id")))
    resp_ids = pc.unique(
        pa.concat_arrays(
            [battles.column("a").combine_chunks(), battles.column("b").combine_chunks()]
        )
    )
    responses = _messages_by_id(ds.responses, "response_id", resp_ids)
    cols: dict[str, Any] = {
        "question_id": battles.column("prompt_id"),
        "model_a": battles.column("model_a"),
        "model_b": battles.column("model_b"),
        "winner": battles.column("winner"),
        "judge": battles.column("annotator_id"),
    }
    convs: dict[str, list[Any]] = {"conversation_a": [], "conversation_b": []}
    for pid, a, b in zip(
        *(battles.column(c).to_pylist() for c in ("prompt_id", "a", "b")), strict=True
    ):
        prompt = prompts.get(pid, [])
        for key, rid in (("conversation_a", a), ("conversation_b", b)):
            turns = prompt + responses.get(rid, [])
            convs[key].append(turns or None)
    if any(v is not None for v in convs["conversation_a"] + convs["conversation_b"]):
        cols.update({k: pa.array(v, type=MESSAGES) for k, v in convs.items()})
    judgments = ds.judgments
    meta = [c for c in JUDGMENT_META if c in judgments.column_names]
    if meta and annotators == "each":
        index = pc.index_in(
            battles.column("judgment_id"), value_set=judgments.column("judgment_id")
        )
        for c in meta:
            cols[c] = pc.take(judgments.column(c), index)
    return pa.table(cols)


def write_arena(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    """Write the dataset's judgments as arena battle rows (see :func:`battle_rows`).

    Options: ``battle_ties`` or ``ties`` (``keep``/``drop``, needed when there are ties;
    ``error`` refuses data with ties), ``annotators``
    (``each``/``majority``), ``container`` (``jsonl``, ``json``, ``parquet``, ``csv``,
    ``tsv``; default from the file suffix; in CSV/TSV the conversations are JSON text).
    """
    write_table(battle_rows(ds, options), path, options, fmt="arena", json_cells=True)


# --- PRD / QLoRA Vicuna-80 folder ----------------------------------------------------------------
def _prd_layout(path: Path) -> tuple[Path, list[Path]]:
    """(corpus root, rating files) for a corpus root, its ratings folder or one rating file."""
    if path.is_file():
        return path.parent.parent, [path]
    if (path / RATINGS_DIR).is_dir():
        root, ratings = path, path / RATINGS_DIR
    else:
        root, ratings = path.parent, path
    files = sorted(
        p
        for p in ratings.iterdir()
        if p.is_file() and not p.name.startswith(".") and ".jsonl" in p.name.lower()
    )
    if not files:
        raise PrefkitError(
            f"{path}: no rating files; expected {RATINGS_DIR}/answer_<M1>-vs-answer_<M2>"
            "-human-reviewer_threeclass.jsonl"
        )
    return root, files


def _pair_of(path: Path) -> tuple[str, str]:
    match = RATING_FILE.match(path.name)
    if match is None:
        raise InputError(
            str(path),
            None,
            None,
            "the file name does not match answer_<M1>-vs-answer_<M2>-human-reviewer_threeclass.jsonl, "
            "which is where the two model names come from",
        )
    return match["a"], match["b"]


def _side_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a side file (questions, answers); any bad record stops the read."""
    for rec in iter_records(path):
        problem = is_bad(rec.data)
        if problem is not None:
            raise InputError(rec.file, rec.where, None, problem)
        if not isinstance(rec.data, dict):
            raise InputError(rec.file, rec.where, None, "expected an object")
        yield {"__where__": rec.where, **rec.data}


def _side_field(path: Path, rec: dict[str, Any], key: str, kind: type) -> Any:
    try:
        return need(rec, key, kind)
    except RecordError as err:
        raise InputError(str(path), rec["__where__"], err.field, err.message) from None


def load_questions(root: Path) -> dict[int, tuple[str, str | None]]:
    """question_id -> (text, category) from ``prompts/*.jsonl`` (empty when absent)."""
    out: dict[int, tuple[str, str | None]] = {}
    folder = root / "prompts"
    for path in sorted(folder.glob("*.jsonl*")) if folder.is_dir() else []:
        for rec in _side_records(path):
            qid = _side_field(path, rec, "question_id", int)
            if qid in out:
                raise InputError(
                    str(path), rec["__where__"], "question_id", f"question {qid} is listed twice"
                )
            category = rec.get("category")
            out[qid] = (
                _side_field(path, rec, "text", str),
                category if isinstance(category, str) else None,
            )
    return out


@dataclass(frozen=True)
class Answer:
    text: str
    answer_id: str | None
    model_id: str | None


def load_answers(root: Path) -> dict[tuple[str, int], Answer]:
    """(model, question_id) -> answer from ``generations/answer_<model>.jsonl``."""
    out: dict[tuple[str, int], Answer] = {}
    folder = root / "generations"
    for path in sorted(folder.glob("answer_*.jsonl*")) if folder.is_dir() else []:
        match = ANSWER_FILE.match(path.name)
        if match is None:
            continue
        model = match["model"]
        for rec in _side_records(path):
            qid = _side_field(path, rec, "question_id", int)
            if (model, qid) in out:
                raise InputError(
                    str(path), rec["__where__"], "question_id", f"question {qid} is answered twice"
                )
            answer_id, model_id = rec.get("answer_id"), rec.get("model_id")
            out[model, qid] = Answer(
                _side_field(path, rec, "text", str),
                str(answer_id) if answer_id is not None else None,
                str(model_id) if model_id is not None else None,
            )
    return out


@dataclass
class _PrdReader:
    """Record stream and converter for the rating files; knows the file being read."""

    questions: dict[int, tuple[str, str | None]]
    answers: dict[tuple[str, int], Answer]
    pair: tuple[str, str] = ("", "")
    file: str = ""
    judges: Counter[tuple[str, int]] = field(default_factory=Counter)

    def records(self, path: Path) -> Iterator[Record]:
        self.pair = _pair_of(path)
        self.file = path.name
        yield from iter_records(path)

    def _response(self, emit: Emitter, pid: str, model: str, qid: int) -> str:
        answer = self.answers.get((model, qid))
        if answer is None:
            return emit.response(pid, [], source=model)
        msgs = [{"role": "assistant", "content": answer.text}]
        return emit.response(
            pid, msgs, source=model, answer_id=answer.answer_id, model_id=answer.model_id
        )

    def convert(self, rec: Any, emit: Emitter) -> None:
        qid = need(rec, "question_id", int)
        text = need(rec, "text")
        score = need(rec, "score", int)
        if score not in PRD_SCORES:
            raise RecordError(
                "score", f"expected 1 (first model preferred), 2 (second) or 3 (tie), got {score!r}"
            )
        question = self.questions.get(qid)
        if question is not None and question[0] != text:
            raise RecordError("text", f"differs from the text of question {qid} in prompts/")
        category = question[1] if question is not None else None
        pid = emit.prompt([{"role": "user", "content": text}], question_id=qid, category=category)
        a = self._response(emit, pid, self.pair[0], qid)
        b = self._response(emit, pid, self.pair[1], qid)
        if a == b:
            raise RecordError(None, "the file name pits a model against itself")
        key = (self.file, qid)
        emit.judgment(
            pid,
            a,
            b,
            PRD_SCORES[score],
            annotator_kind="human",
            rating_file=self.file,
            judge_index=self.judges[key],
        )
        self.judges[key] += 1


def read_prd(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read a PRD/QLoRA Vicuna-80 human-battle folder (or its ratings folder, or one file)."""
    for path in paths:
        root, files = _prd_layout(Path(path))
        for f in files:
            _pair_of(f)
        reader = _PrdReader(load_questions(root), load_answers(root))
        yield from read_rows(files, reader.convert, options, records=reader.records)


def sniff_prd(sample: Sample) -> float:
    path = sample.path
    try:
        if (path / RATINGS_DIR).is_dir() and any((path / RATINGS_DIR).glob("*-vs-*")):
            return 0.95
        if path.name == RATINGS_DIR and any(path.glob("*-vs-*")):
            return 0.9
    except OSError:
        return 0.0
    return 0.0


# --- registration --------------------------------------------------------------------------------
register(
    Format(
        name="arena",
        summary="Chatbot Arena / MT-Bench battle rows: model_a, model_b, winner (ties good/bad)",
        kinds=("pairwise", "ties", "battles", "annotators"),
        sniff=sniff_arena,
        read=read_arena,
        write=write_arena,
        options={"annotator_kind": "who judged: human (default), ai, rule or unknown"},
    )
)
register(
    Format(
        name="prd-battles",
        summary="PRD / QLoRA Vicuna-80 human battles: ratings-human/answer_<M1>-vs-answer_<M2> folder",
        kinds=("pairwise", "ties", "battles"),
        sniff=sniff_prd,
        read=read_prd,
        cannot_write=(
            "the layout needs one answer file per model and one rating file per ordered model "
            "pair, with integer question ids; write the battles with the 'arena' format instead"
        ),
        directory=True,
    )
)
