"""Anthropic HH-RLHF raw transcripts: ``{"chosen": ..., "rejected": ...}``.

Implements the file layout of the anthropics/hh-rlhf repository, released with Bai et al.
(2022), "Training a Helpful and Harmless Assistant with Reinforcement Learning from Human
Feedback": each row holds two whole dialogue transcripts in Anthropic's text format
``"\\n\\nHuman: ...\\n\\nAssistant: ..."``, the one a crowdworker preferred in ``chosen``.

A transcript is split into turns at its ``\\n\\nHuman:`` / ``\\n\\nAssistant:`` markers
(Human -> ``user``, Assistant -> ``assistant``). The turns both sides share from the start
become the prompt (all of them: multi-turn context is kept); the remaining turns of each
side are its response, usually the final Assistant turn. The two sides sometimes differ
earlier than the last turn (a few test records do); the split is then at the first turn
where they differ, and each side keeps at least its last turn. Text before the first
marker, as in Anthropic's legacy prompt format, is a leading ``system`` turn.

The writer renders the turns back with the same markers, so HH -> canonical -> HH gives
the original strings byte for byte (a marker written without its usual following space
comes back with one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from prefkit.errors import PrefkitError, RecordError
from prefkit.io.formats.base import (
    Chunk,
    Emitter,
    Format,
    ReadOptions,
    Sample,
    need,
    read_rows,
    register,
)
from prefkit.io.formats.sinks import write_table
from prefkit.io.formats.trl import extra_meta, pairs_view, split_shared
from prefkit.schema import A_WINS

CHOSEN, REJECTED = "chosen", "rejected"
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
#: Speaker label in the transcript -> message role, and back.
ROLES = {"Human": "user", "Assistant": "assistant"}
LABELS = {role: label for label, role in ROLES.items()}
_MARKER = re.compile(r"(?:\A|\n\n)(Human|Assistant): ?")
_KNOWN = frozenset({CHOSEN, REJECTED})


# --- transcripts ---------------------------------------------------------------------------------
def parse_transcript(text: str, field: str) -> list[dict[str, str]]:
    """Turns of one ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` transcript.

    Raises
    ------
    RecordError
        When the text holds no Human/Assistant marker.
    """
    marks = list(_MARKER.finditer(text))
    if not marks:
        raise RecordError(
            field, "is not an HH transcript: no '\\n\\nHuman:' or '\\n\\nAssistant:' turn markers"
        )
    turns = []
    if marks[0].start() > 0:
        turns.append({"role": "system", "content": text[: marks[0].start()]})
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        end = nxt.start() if nxt is not None else len(text)
        turns.append({"role": ROLES[m.group(1)], "content": text[m.end() : end]})
    return turns


def render_transcript(turns: list[dict[str, Any]]) -> str:
    """The HH text of a list of turns (inverse of :func:`parse_transcript`).

    Raises
    ------
    PrefkitError
        For a role HH cannot hold (anything but user/assistant, and system at the start).
    """
    parts = []
    for i, turn in enumerate(turns):
        role, content = turn["role"], turn["content"] or ""
        label = LABELS.get(role)
        if label is not None:
            parts.append(f"\n\n{label}: {content}")
        elif role == "system" and i == 0:
            parts.append(content)
        else:
            raise PrefkitError(
                f"hh-rlhf: cannot write a {role!r} turn (HH transcripts hold Human and Assistant "
                "turns, and an optional leading system text)"
            )
    return "".join(parts)


# --- reading -------------------------------------------------------------------------------------
def convert(rec: Any, emit: Emitter) -> None:
    chosen = parse_transcript(need(rec, CHOSEN), CHOSEN)
    rejected = parse_transcript(need(rec, REJECTED), REJECTED)
    prompt, c_msgs, r_msgs = split_shared(chosen, rejected)
    pid = emit.prompt(prompt)
    a = emit.response(pid, c_msgs)
    b = emit.response(pid, r_msgs)
    emit.judgment(pid, a, b, A_WINS, annotator_kind="human", **extra_meta(rec, _KNOWN))


def read(paths: list[Path], options: ReadOptions) -> Iterator[Chunk]:
    """Read HH-RLHF transcript files into canonical chunks."""
    return read_rows(paths, convert, options)


def sniff(sample: Sample) -> float:
    """0.95 for rows of exactly chosen/rejected HH transcripts; 0.85 with extra columns."""
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs:
        return 0.0
    for r in recs:
        c, j = r.get(CHOSEN), r.get(REJECTED)
        if not (isinstance(c, str) and isinstance(j, str)):
            return 0.0
        if not (HUMAN in c and HUMAN in j and ASSISTANT in c):
            return 0.0
    if any("prompt" in r for r in recs):
        return 0.4
    return 0.95 if all(set(r) == _KNOWN for r in recs) else 0.85


# --- writing -------------------------------------------------------------------------------------
def write(ds: Any, path: Path, options: dict[str, Any]) -> None:
    """Write ``chosen`` / ``rejected`` transcripts (prompt turns followed by each response).

    ``options`` carries the ``to_pairs`` policies and optionally ``container``.
    """
    pairs = pairs_view(ds, options, conversational=True)
    chosen, rejected = [], []
    for p, c, r in zip(
        pairs.column("prompt").to_pylist(),
        pairs.column("chosen").to_pylist(),
        pairs.column("rejected").to_pylist(),
        strict=True,
    ):
        p = p or []
        chosen.append(render_transcript(p + (c or [])))
        rejected.append(render_transcript(p + (r or [])))
    table = pa.table(
        {CHOSEN: pa.array(chosen, pa.string()), REJECTED: pa.array(rejected, pa.string())}
    )
    write_table(table, path, options, fmt="hh-rlhf")


register(
    Format(
        name="hh-rlhf",
        summary="Anthropic HH-RLHF rows: chosen/rejected '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts",
        kinds=("pairwise",),
        sniff=sniff,
        read=read,
        write=write,
    )
)
