"""OpenAssistant conversation trees (OASST1) with human-ranked sibling replies.

Implements the export layout of the OpenAssistant project (Köpf et al., 2023,
"OpenAssistant Conversations -- Democratizing Large Language Model Alignment"): one JSON
object per line, ``{message_tree_id, tree_state, prompt: Message}``, where a ``Message``
holds ``message_id, parent_id, text, role ("prompter" | "assistant"), lang, review_count,
review_result, deleted, rank (0 = best among siblings), synthetic, model_name, emojis``
and its ``replies``. The flat OASST1 message table (one message per row, linked by
``parent_id`` and grouped by ``message_tree_id``) is read too; rows of one tree must be
contiguous, as in the official release.

Mapping: every message that has replies (and every root) gives a prompt whose turns are
the path from the root to it; every reply becomes a response of that prompt, so no text
is lost; a sibling group with at least two ranked replies gives one ranking, tiers by
``rank`` ascending, equal ranks sharing a tier. Unranked replies are responses that are in
no ranking. The writer emits one tree per prompt (its turns as a chain) and one more per
extra ranking of a prompt; the contents read back to the same prompts, responses and
tiers because ids are content hashes.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from prefkit import engine
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError, RecordError
from prefkit.io.formats.base import (
    Emitter,
    Format,
    ReadOptions,
    Sample,
    need,
    read_rows,
    register,
)
from prefkit.io.formats.sinks import output_container, write_records
from prefkit.io.records import Record, is_bad, iter_records
from prefkit.schema import CORE

ROLE_IN = {"prompter": "user", "assistant": "assistant"}
ROLE_OUT = {"user": "prompter", "assistant": "assistant"}
DELETED = ("keep", "skip")
LAYOUTS = ("trees", "messages")
WRITE_CONTAINERS = ("jsonl", "json", "parquet", "csv")
TREE_KEYS = {"message_tree_id", "prompt"}
ROW_KEYS = {"message_id", "text", "role"}
WRITE_BATCH = 5_000
REPLY_META = ("lang", "review_count", "review_result", "deleted", "emojis")
RESPONSE_COLUMNS = (*CORE["responses"].names, *REPLY_META)
# Written message ids are uuid5 names under this namespace, so a rewrite is reproducible.
ID_NAMESPACE = uuid.UUID("5f1d0c7e-8a3b-4c52-9a0e-6f3b2d1c0a99")
FLAT_SCHEMA = pa.schema(
    [
        ("message_tree_id", pa.string()),
        ("message_id", pa.string()),
        ("parent_id", pa.string()),
        ("role", pa.string()),
        ("text", pa.string()),
        ("rank", pa.int64()),
        ("lang", pa.string()),
        ("synthetic", pa.bool_()),
        ("model_name", pa.string()),
        ("deleted", pa.bool_()),
        ("review_count", pa.int64()),
        ("review_result", pa.bool_()),
        ("emojis", pa.string()),
    ]
)


# --- field helpers ---------------------------------------------------------------------------
def _err(msg: dict[str, Any], path: str, name: str, text: str) -> RecordError:
    """A RecordError naming the field by its path in a tree, or by the row it came from."""
    where = msg.get("_where")
    if where is None:
        return RecordError(f"{path}.{name}", text)
    return RecordError(name, f"{text} (message {msg.get('message_id')!r}, {where})")


def _int(msg: dict[str, Any], path: str, name: str) -> int | None:
    value = msg.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _err(msg, path, name, f"expected an integer, got {value!r}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise _err(msg, path, name, f"expected an integer, got {msg.get(name)!r}")
    if not -(2**63) <= value < 2**63:  # the column is int64
        raise _err(msg, path, name, f"is out of the 64-bit integer range: {msg.get(name)!r}")
    return int(value)


def _bool(msg: dict[str, Any], path: str, name: str) -> bool | None:
    value = msg.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
        text = value.strip().lower()
        return None if not text else text in ("true", "1")
    raise _err(msg, path, name, f"expected true/false, got {value!r}")


def _str(msg: dict[str, Any], path: str, name: str, required: bool = False) -> str | None:
    value = msg.get(name)
    if value is None or (value == "" and not required):
        if required:
            raise _err(msg, path, name, "is missing")
        return None
    if not isinstance(value, str):
        raise _err(msg, path, name, f"expected a string, got {type(value).__name__}")
    return value


def _turn(msg: dict[str, Any], path: str) -> dict[str, str]:
    role = _str(msg, path, "role", required=True)
    if role not in ROLE_IN:
        raise _err(msg, path, "role", f"expected 'prompter' or 'assistant', got {role!r}")
    return {"role": ROLE_IN[role], "content": _str(msg, path, "text", required=True) or ""}


def _emojis(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


# --- reading ---------------------------------------------------------------------------------
def _convert_tree(tree: Any, emit: Emitter, deleted: str) -> None:
    """Emit the prompts, responses and rankings of one message tree."""
    if isinstance(tree, dict) and "_rows" in tree:
        need(tree, "message_tree_id", str)
        tree = _build_tree(tree)
    tree_id = need(tree, "message_tree_id", str)
    root = need(tree, "prompt", dict)
    if deleted == "skip" and _bool(root, "prompt", "deleted"):
        return
    stack: list[tuple[dict[str, Any], str, list[dict[str, str]]]] = [
        (root, "prompt", [_turn(root, "prompt")])
    ]
    while stack:
        msg, path, turns = stack.pop()
        replies = msg.get("replies") or []
        if not isinstance(replies, list):
            raise _err(msg, path, "replies", f"expected a list, got {type(replies).__name__}")
        kept = []
        for i, reply in enumerate(replies):
            rpath = f"{path}.replies[{i}]"
            if not isinstance(reply, dict):
                raise RecordError(rpath, f"expected an object, got {type(reply).__name__}")
            if deleted == "keep" or not _bool(reply, rpath, "deleted"):
                kept.append((reply, rpath))
        if not kept and path != "prompt":
            continue
        pid = emit.prompt(
            turns,
            message_tree_id=tree_id,
            message_id=_str(msg, path, "message_id"),
            lang=_str(msg, path, "lang"),
        )
        ranked: list[tuple[int, str]] = []
        for reply, rpath in kept:
            turn = _turn(reply, rpath)
            rank = _int(reply, rpath, "rank")
            synthetic = _bool(reply, rpath, "synthetic")
            rid = emit.response(
                pid,
                [turn],
                source=_str(reply, rpath, "model_name") if synthetic else None,
                message_id=_str(reply, rpath, "message_id"),
                rank=rank,
                lang=_str(reply, rpath, "lang"),
                synthetic=synthetic,
                deleted=_bool(reply, rpath, "deleted"),
                review_count=_int(reply, rpath, "review_count"),
                review_result=_bool(reply, rpath, "review_result"),
                emojis=_emojis(reply.get("emojis")),
            )
            if rank is not None:
                ranked.append((rank, rid))
            stack.append((reply, rpath, [*turns, turn]))
        if len(ranked) >= 2:
            emit.ranking(
                pid,
                _tiers(ranked),
                annotator_id=None,
                message_tree_id=tree_id,
                parent_id=_str(msg, path, "message_id"),
            )


def _tiers(ranked: list[tuple[int, str]]) -> list[list[str]]:
    """Tiers by rank ascending; equal ranks tie; a reply text seen twice keeps its best tier."""
    tiers: list[list[str]] = []
    last: int | None = None
    placed: set[str] = set()
    for rank, rid in sorted(ranked, key=lambda x: x[0]):
        if rid in placed:
            continue
        placed.add(rid)
        if rank != last:
            tiers.append([])
            last = rank
        tiers[-1].append(rid)
    return tiers


def _build_tree(group: dict[str, Any]) -> dict[str, Any]:
    """Nest the rows of one tree of the flat message table by ``parent_id``."""
    tree_id = group["message_tree_id"]
    if group.get("_repeat"):
        raise RecordError(
            "message_tree_id",
            f"rows of tree {tree_id!r} appear again after other trees; "
            "the flat message table must be grouped by message_tree_id",
        )
    nodes: dict[str, dict[str, Any]] = {}
    order: list[dict[str, Any]] = []
    for where, row in group["_rows"]:
        msg = {**row, "_where": where, "replies": []}
        mid = _str(msg, "", "message_id", required=True) or ""
        if mid in nodes:
            raise _err(msg, "", "message_id", "appears twice in the tree")
        nodes[mid] = msg
        order.append(msg)
    roots = [m for m in order if not m.get("parent_id")]
    if len(roots) != 1:
        raise RecordError(
            "parent_id",
            f"tree {tree_id!r} has {len(roots)} root messages (no parent_id), expected 1",
        )
    for msg in order:
        parent = msg.get("parent_id")
        if not parent:
            continue
        if parent not in nodes:
            raise _err(msg, "", "parent_id", f"names message {parent!r}, which is not in the tree")
        nodes[parent]["replies"].append(msg)
    reached, stack = 0, [roots[0]]
    while stack:
        node = stack.pop()
        reached += 1
        stack.extend(node["replies"])
    if reached != len(order):
        raise RecordError(
            "parent_id", f"tree {tree_id!r} has messages that cannot be reached from its root"
        )
    return {"message_tree_id": tree_id, "prompt": roots[0]}


def _is_row(data: Any) -> bool:
    return (
        isinstance(data, dict) and "message_id" in data and "role" in data and "prompt" not in data
    )


def _span(first: Record, last: Record) -> str:
    if first is last:
        return first.where
    kind, _, a = first.where.partition(" ")
    return f"{kind}s {a}-{last.where.partition(' ')[2]}"


def _records(path: Path) -> Iterator[Record]:
    """Records of a file: trees as they are, or flat rows grouped into one record per tree."""
    records = iter_records(path)
    head: list[Record] = []
    for rec in records:
        head.append(rec)
        if not is_bad(rec.data):
            break
    if not head or not _is_row(head[-1].data):
        yield from head
        yield from records
        return
    closed: set[str] = set()
    group: list[Record] = []
    for rec in chain(head, records):
        if is_bad(rec.data) or not isinstance(rec.data, dict):
            yield rec
            continue
        tid = rec.data.get("message_tree_id")
        if group and tid != group[0].data.get("message_tree_id"):
            yield _group_record(group, closed)
            group = []
        group.append(rec)
    if group:
        yield _group_record(group, closed)


def _group_record(group: list[Record], closed: set[str]) -> Record:
    tid = group[0].data.get("message_tree_id")
    data = {"message_tree_id": tid, "_rows": [(r.where, r.data) for r in group]}
    if repr(tid) in closed:
        data["_repeat"] = True
    closed.add(repr(tid))
    return Record(group[0].file, _span(group[0], group[-1]), data)


def read(paths: list[Path], options: ReadOptions) -> Iterator[dict[str, pa.Table]]:
    """Read OASST message trees (nested JSONL/JSON) or the flat OASST1 message table."""
    deleted = options.option("deleted", "keep")
    if deleted not in DELETED:
        raise PrefkitError(f"oasst option deleted must be one of {DELETED}, got {deleted!r}")
    yield from read_rows(
        paths, lambda rec, emit: _convert_tree(rec, emit, deleted), options, _records
    )


def sniff(sample: Sample) -> float:
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs:
        return 0.0
    if all(r.keys() >= TREE_KEYS and isinstance(r["prompt"], dict) for r in recs):
        return 0.95 if all("replies" in r["prompt"] for r in recs) else 0.7
    if all(r.keys() >= ROW_KEYS for r in recs):
        return 0.9 if all("message_tree_id" in r for r in recs) else 0.3
    return 0.0


# --- writing ---------------------------------------------------------------------------------
def _mid(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


def _columns(rel: duckdb.DuckDBPyRelation, wanted: Collection[str]) -> str:
    return ", ".join(c for c in rel.columns if c in wanted)


def _out_role(role: str, what: str) -> str:
    if role not in ROLE_OUT:
        raise PrefkitError(
            f"oasst: {what} has a {role!r} turn; OASST trees hold only user and assistant turns"
        )
    return ROLE_OUT[role]


def _chain(prompt: dict[str, Any], tree_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The prompt's turns as a chain of messages; returns (root, last)."""
    if prompt.get("context"):
        raise PrefkitError(
            f"oasst: prompt {prompt['prompt_id']} has a context, which OASST trees cannot hold"
        )
    turns = prompt.get("messages") or []
    if not turns:
        raise PrefkitError(f"oasst: prompt {prompt['prompt_id']} has no turns")
    root: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for k, turn in enumerate(turns):
        msg = {
            "message_id": tree_key if k == 0 else _mid(tree_key, str(k)),
            "text": turn["content"],
            "role": _out_role(turn["role"], f"prompt {prompt['prompt_id']}"),
            "lang": prompt.get("lang"),
            "synthetic": False,
            "replies": [],
        }
        if k == 0:
            root = msg
        else:
            msg["parent_id"] = last["message_id"]
            last["replies"].append(msg)
        last = msg
    return root, last


def _reply(
    resp: dict[str, Any], parent: dict[str, Any], tree_key: str, rank: int | None
) -> dict[str, Any]:
    turns = resp.get("messages") or []
    if len(turns) != 1 or resp.get("media"):
        raise PrefkitError(
            f"oasst: response {resp['response_id']} has {len(turns)} turns"
            f"{' and media' if resp.get('media') else ''}; an OASST reply is exactly one text turn"
        )
    msg: dict[str, Any] = {
        "message_id": _mid(tree_key, resp["response_id"]),
        "parent_id": parent["message_id"],
        "text": turns[0]["content"],
        "role": _out_role(turns[0]["role"], f"response {resp['response_id']}"),
        "lang": resp.get("lang") or parent.get("lang"),
        "synthetic": resp.get("source") is not None,
    }
    for key in ("review_count", "review_result", "deleted"):
        if resp.get(key) is not None:
            msg[key] = resp[key]
    if rank is not None:
        msg["rank"] = rank
    if resp.get("source") is not None:
        msg["model_name"] = resp["source"]
    if resp.get("emojis"):
        msg["emojis"] = orjson.loads(resp["emojis"])
    msg["replies"] = []
    return msg


def _ranks(ranking: dict[str, Any], by_id: dict[str, Any]) -> dict[str, int]:
    """Response id -> tier index of one ranking (the written ``rank``)."""
    ranks: dict[str, int] = {}
    for t, tier in enumerate(ranking.get("tiers") or []):
        for rid in tier:
            if rid not in by_id:
                raise PrefkitError(
                    f"oasst: ranking {ranking['ranking_id']} names response {rid}, which has no row"
                )
            ranks.setdefault(rid, t)
    return ranks


def _trees_for(
    prompt: dict[str, Any], rankings: list[dict[str, Any]], responses: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """One tree with all responses of a prompt (ranked by its first ranking), one per extra ranking."""
    by_id = {r["response_id"]: r for r in responses}
    plans = [_ranks(k, by_id) for k in rankings] or [{}]
    for k, ranks in enumerate(plans):
        ids = list(ranks)
        if k == 0:
            ids += [rid for rid in by_id if rid not in ranks]
        tree_key = _mid(prompt["prompt_id"], str(k))
        root, last = _chain(prompt, tree_key)
        last["replies"] = [_reply(by_id[rid], last, tree_key, ranks.get(rid)) for rid in ids]
        yield {"message_tree_id": tree_key, "tree_state": "ready_for_export", "prompt": root}


def _by_prompt(
    con: duckdb.DuckDBPyConnection, table: str, cols: str, batch: pa.RecordBatch
) -> dict[str, list[dict[str, Any]]]:
    """Rows of view ``table`` whose prompt is in ``batch``, grouped by prompt id."""
    con.register("batch_ids", pa.table({"prompt_id": batch.column("prompt_id")}))
    rel = con.sql(f"SELECT {cols} FROM {table} SEMI JOIN batch_ids USING (prompt_id)")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rel.to_arrow_table().to_pylist():
        out.setdefault(row["prompt_id"], []).append(row)
    con.unregister("batch_ids")
    return out


def _iter_trees(ds: Dataset) -> Iterator[dict[str, Any]]:
    # The outer scan streams on its own connection: a connection with an open result
    # cannot run the per-batch lookups.
    con, outer = engine.connect(), engine.connect()
    try:
        prompts = ds.relation(outer, "prompts")
        responses = ds.relation(con, "responses")
        responses.create_view("responses")
        ds.relation(con, "rankings").create_view("rankings")
        r_cols = _columns(responses, RESPONSE_COLUMNS)
        p_cols = _columns(prompts, ("prompt_id", "messages", "context", "lang"))
        for batch in prompts.select(p_cols).to_arrow_reader(WRITE_BATCH):
            resp = _by_prompt(con, "responses", r_cols, batch)
            rank = _by_prompt(con, "rankings", "ranking_id, prompt_id, tiers", batch)
            for prompt in batch.to_pylist():
                pid = prompt["prompt_id"]
                yield from _trees_for(prompt, rank.get(pid, []), resp.get(pid, []))
    finally:
        con.close()
        outer.close()


def _flatten(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [tree["prompt"]]
    while stack:
        msg = stack.pop()
        row = {name: msg.get(name) for name in FLAT_SCHEMA.names}
        row["message_tree_id"] = tree["message_tree_id"]
        row["emojis"] = _emojis(msg.get("emojis"))
        yield row
        stack.extend(reversed(msg["replies"]))


def write(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    """Write ``ds`` as OASST message trees.

    Parameters
    ----------
    ds
        The dataset; its judgments cannot be written (OASST holds rankings only).
    path
        The output file.
    options
        ``container`` (``jsonl``, ``json``, ``parquet``, ``csv``; default from the suffix,
        else JSONL) and ``layout`` (``trees``: nested, the default for JSON;
        ``messages``: the flat message table, the default for Parquet and CSV).
    """
    if ds.num_rows("judgments"):
        raise PrefkitError(
            f"oasst: the dataset has {ds.num_rows('judgments'):,} pairwise judgments, which OASST trees "
            "cannot hold (they hold rankings only); write it in a pairwise format or as a prefkit dataset"
        )
    container, _ = output_container(path, options, allowed=WRITE_CONTAINERS, fmt="oasst")
    layout = options.get("layout") or ("trees" if container in ("jsonl", "json") else "messages")
    if layout not in LAYOUTS or (layout == "trees" and container in ("parquet", "csv")):
        raise PrefkitError(
            f"oasst: layout must be 'trees' (jsonl/json) or 'messages', got {layout!r} for {container}"
        )
    trees = _iter_trees(ds)
    if layout == "trees":
        write_records(trees, path, options, fmt="oasst")
    else:
        rows = (row for tree in trees for row in _flatten(tree))
        write_records(rows, path, options, fmt="oasst", schema=FLAT_SCHEMA)


register(
    Format(
        name="oasst",
        summary="OpenAssistant message trees (nested JSONL) or flat OASST1 message table, ranked replies",
        kinds=("rankings",),
        sniff=sniff,
        read=read,
        write=write,
        options={
            "deleted": "'keep' (default: deleted messages are read, meta deleted=true) or "
            "'skip' (drop deleted messages and their subtrees)",
        },
    )
)
