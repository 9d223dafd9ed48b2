"""Read eval/benchmark prompts for `prefkit inspect --against`.

Accepted inputs, tried in this order:

* a **text file** (``.txt``, gzip or not): one prompt per non-empty line;
* a **record file** (JSON Lines, JSON, CSV/TSV, Parquet; gzip or not) whose records hold
  the prompt in ``field`` or, when no field is named, in the first present of
  :data:`PROMPT_FIELDS`; a record with a ``turns`` list of strings and none of those
  fields (MT-Bench's ``question.jsonl``) gives its first turn, the prompt of the first
  round as in LLMBar's processing of MT-Bench;
* any **dataset prefkit can load** (a canonical dataset directory, or a file/folder in a
  registered format): the texts of its ``prompts`` table, rendered as in ``to_pairs``;
* a **folder** of record files that is none of the above: every data file in it, in
  path order.

Ids are the record's own id (the first present of :data:`ID_FIELDS`), else its location
(``line 12``, ``item 3``, ``row 7``; prefixed by the file's relative path when a folder
is read). Bad input raises :class:`~prefkit.errors.InputError` naming the file, the
line/row and the field: a record without the prompt field, a prompt that is not a
string, an empty prompt, an empty file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefkit.errors import InputError, PrefkitError
from prefkit.io.records import (
    Record,
    container_of,
    is_bad,
    iter_records,
    open_binary,
    resolve_container,
)

#: Fields looked up for the prompt when none is named, first present wins.
PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "text", "query")
#: Fields looked up for a record's id, first present wins.
ID_FIELDS = ("id", "prompt_id", "question_id", "qid", "uid")
#: Suffixes read as one prompt per line.
TEXT_SUFFIXES = (".txt", ".text")


@dataclass
class EvalPrompts:
    """Eval prompts: where they came from, their ids and their texts (same length)."""

    name: str
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


# --- plain text ---------------------------------------------------------------------------------
def _is_text_file(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in TEXT_SUFFIXES


def _read_lines(path: Path) -> EvalPrompts:
    name = str(path)
    out = EvalPrompts(str(path))
    try:
        with open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
                except UnicodeDecodeError as exc:
                    raise InputError(
                        name, f"line {lineno}", None, f"invalid UTF-8 at byte {exc.start}"
                    ) from None
                if line:
                    out.ids.append(f"line {lineno}")
                    out.texts.append(line)
    except (EOFError, gzip.BadGzipFile) as exc:
        raise InputError(name, None, None, f"corrupt or cut-off gzip data ({exc})") from None
    if not out.texts:
        raise InputError(name, None, None, "the file is empty (no prompts)")
    return out


# --- records ---------------------------------------------------------------------------------
def _prompt_field(data: Any, field: str | None) -> str | None:
    """The field holding the prompt in this record (None when there is none)."""
    if not isinstance(data, dict):
        return None
    if field is not None:
        return field if field in data else None
    for name in PROMPT_FIELDS:
        if name in data:
            return name
    turns = data.get("turns")
    if isinstance(turns, list) and turns and isinstance(turns[0], str):
        return "turns"
    return None


def _record_prompts(path: Path, field: str | None, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(id, prompt)`` of every record; raises on the first bad one."""
    name = str(path)
    chosen: str | None = None
    for rec in iter_records(path):
        problem = is_bad(rec.data)
        if problem:
            raise InputError(name, rec.where, None, problem)
        if not isinstance(rec.data, dict):
            raise InputError(
                name, rec.where, None, f"expected a record (object), got {type(rec.data).__name__}"
            )
        key = field or chosen or _prompt_field(rec.data, None)
        if key is None or key not in rec.data:
            wanted = f"{field!r}" if field else ", ".join(PROMPT_FIELDS)
            raise InputError(
                name,
                rec.where,
                key or field,
                f"no prompt field (looked for {wanted}; pass field= / --against-field to name it)",
            )
        chosen = key
        value = rec.data[key]
        if key == "turns" and field is None:
            value = value[0] if isinstance(value, list) and value else value
        if not isinstance(value, str):
            raise InputError(
                name, rec.where, key, f"the prompt must be a string, got {type(value).__name__}"
            )
        if not value.strip():
            raise InputError(name, rec.where, key, "the prompt is empty")
        rid = next((rec.data[k] for k in ID_FIELDS if rec.data.get(k) is not None), None)
        yield prefix + (str(rid) if rid is not None else rec.where), value


def _read_records(path: Path, field: str | None, name: str, prefix: str = "") -> EvalPrompts:
    out = EvalPrompts(name)
    for rid, text in _record_prompts(path, field, prefix):
        out.ids.append(rid)
        out.texts.append(text)
    if not out.texts:
        raise InputError(str(path), None, None, "the file is empty (no prompts)")
    return out


# --- datasets ---------------------------------------------------------------------------------
def _read_dataset(path: Path) -> EvalPrompts:
    """Prompts of a dataset prefkit can load; PrefkitError when it cannot."""
    from prefkit.io.api import load
    from prefkit.views import prompt_text

    ds = load(path)
    if ds.num_rows("prompts") == 0:
        raise InputError(str(path), None, None, "the dataset has no prompts")
    prompts = ds.table("prompts")
    texts = prompt_text(prompts.column("messages").combine_chunks()).to_pylist()
    ids = [str(i) for i in prompts.column("prompt_id").to_pylist()]
    return EvalPrompts(str(path), ids, [t or "" for t in texts])


# --- entry point ---------------------------------------------------------------------------------
def read_prompts(path: str | Path, field: str | None = None) -> EvalPrompts:
    """Read eval prompts from ``path`` (see the module docstring for what is accepted).

    Parameters
    ----------
    path
        A text file, a record file, a dataset (file or folder), or a folder of record files.
    field
        The record field holding the prompt; by default the first present of
        :data:`PROMPT_FIELDS`.

    Raises
    ------
    InputError
        Naming the file, line/row and field of the first bad record, or an empty input.
    """
    from prefkit.io.store import is_dataset_dir

    path = Path(path)
    if not path.exists():
        raise InputError(str(path), None, None, "no such file or folder")
    if path.is_dir():
        if is_dataset_dir(path):
            return _read_dataset(path)
        if field is None:
            try:
                return _read_dataset(path)
            except InputError:
                raise
            except PrefkitError:
                pass  # not a dataset format: read its record files
        return _read_folder(path, field)
    if path.stat().st_size == 0:
        raise InputError(str(path), None, None, "the file is empty")
    if _is_text_file(path):
        return _read_lines(path)
    suffixed = container_of(path) is not None
    first = _first_record(path) if suffixed or field else _sniff_first(path)
    if first is not None and is_bad(first.data):
        raise InputError(str(path), first.where, None, str(is_bad(first.data)))
    data = first.data if first is not None else None
    key = field or _prompt_field(data, None)
    # a conversational "prompt" (a list of messages) is a dataset format's business
    if field is not None or (
        key is not None and (key == "turns" or isinstance(data.get(key), str))  # type: ignore[union-attr]
    ):
        return _read_records(path, field, str(path))
    try:
        return _read_dataset(path)
    except InputError:
        raise
    except PrefkitError:
        pass
    if not suffixed and resolve_container(path) != "parquet":
        return _read_lines(path)  # a plain list of prompts without a telling suffix
    if first is None:
        raise InputError(str(path), None, None, "the file is empty (no prompts)")
    raise InputError(
        str(path),
        first.where,
        None,
        f"no prompt field (looked for {', '.join(PROMPT_FIELDS)}) and not a preference "
        "dataset prefkit recognises; pass field= / --against-field to name the field",
    )


def _first_record(path: Path) -> Record | None:
    for rec in iter_records(path):
        return rec
    return None


def _sniff_first(path: Path) -> Record | None:
    """The first record of a file without a telling suffix, or None when it has none."""
    try:
        return _first_record(path)
    except InputError:
        return None


def _read_folder(path: Path, field: str | None) -> EvalPrompts:
    from prefkit.io.api import data_files

    out = EvalPrompts(str(path))
    for f in data_files(path):
        rel = f.relative_to(path).as_posix()
        part = (
            _read_lines(f)
            if _is_text_file(f)
            else _read_records(f, field, f.name, prefix=f"{rel}:")
        )
        if _is_text_file(f):
            part.ids = [f"{rel}:{i}" for i in part.ids]
        out.ids.extend(part.ids)
        out.texts.extend(part.texts)
    if not out.texts:
        raise InputError(str(path), None, None, "no prompts found in the folder")
    return out


__all__ = ["ID_FIELDS", "PROMPT_FIELDS", "EvalPrompts", "read_prompts"]
