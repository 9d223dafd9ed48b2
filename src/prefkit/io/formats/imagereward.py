"""ImageReward ranked lists: expert rankings (with ties) of text-to-image generations.

Implements the layout of ImageReward's ``data/test.json`` (Xu et al., 2023,
"ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation"):
a JSON array of ``{id, prompt, generations: [relative image paths], ranking: [int]}``
where ``ranking[i]`` is the rank of ``generations[i]``, lower is better and equal values
are ties. Rank values are not always dense (annotation-stage ranks were kept), so they are
read as ordinal only.

Mapping: the prompt text is one user turn; each image is a response with no text turns
and one media reference ``{uri: path, mime}``; each item gives one ranking whose tiers
group equal rank values in ascending order. The writer emits the same layout with
``ranking = 1 + tier index`` and generations listed best tier first.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
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

KEYS = {"prompt", "generations", "ranking"}
WRITE_CONTAINERS = ("json", "jsonl", "parquet", "csv")
MIME = {
    ".webp": "image/webp",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
}
WRITE_BATCH = 5_000
ITEM_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("generations", pa.list_(pa.string())),
        ("ranking", pa.list_(pa.int64())),
    ]
)


# --- helpers ---------------------------------------------------------------------------------
def mime_of(uri: str) -> str | None:
    """The MIME type of an image path from its extension, or None when unknown."""
    suffix = PurePosixPath(uri).suffix.lower()
    return MIME.get(suffix) or mimetypes.guess_type(uri)[0]


def _list(rec: dict[str, Any], key: str) -> list[Any]:
    """A list field; a JSON-encoded list (as CSV cells hold them) is decoded."""
    value = need(rec, key, (list, str))
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RecordError(key, f"expected a list, got the string {value[:40]!r}") from None
        if not isinstance(value, list):
            raise RecordError(key, f"expected a list, got {type(value).__name__}")
    return value


def _rank(value: Any, i: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise RecordError("ranking", f"entry {i} is {value!r}, expected an integer rank")
    return int(value)


def _image_response(emit: Emitter, prompt_id: str, uri: str, **meta: Any) -> str:
    """Emit a text-less response holding one image (its id hashes the media)."""
    return emit.response(prompt_id, [], media=[{"uri": uri, "mime": mime_of(uri)}], **meta)


def tiers_of(ids: list[str], ranks: list[int]) -> list[list[str]]:
    """Group ``ids`` into tiers by rank value, lowest (best) first; equal ranks tie."""
    tiers: dict[int, list[str]] = {}
    for rid, rank in zip(ids, ranks, strict=True):
        tiers.setdefault(rank, []).append(rid)
    return [tiers[r] for r in sorted(tiers)]


# --- reading ---------------------------------------------------------------------------------
def _convert(rec: Any, emit: Emitter) -> None:
    item_id = need(rec, "id", (str, int))
    item_id = str(item_id)
    text = need(rec, "prompt", str)
    generations = _list(rec, "generations")
    ranking = _list(rec, "ranking")
    if not generations:
        raise RecordError("generations", "is empty")
    if len(generations) != len(ranking):
        raise RecordError(
            "ranking", f"has {len(ranking)} values for {len(generations)} generations"
        )
    for i, uri in enumerate(generations):
        if not isinstance(uri, str) or not uri.strip():
            raise RecordError("generations", f"entry {i} is {uri!r}, expected an image path")
    if len(set(generations)) < len(generations):
        dup = next(g for g in generations if generations.count(g) > 1)
        raise RecordError("generations", f"image {dup!r} is listed twice")
    ranks = [_rank(v, i) for i, v in enumerate(ranking)]
    pid = emit.prompt([{"role": "user", "content": text}], item_id=item_id)
    rids = [_image_response(emit, pid, uri, image_path=uri) for uri in generations]
    emit.ranking(pid, tiers_of(rids, ranks), annotator_id=None, item_id=item_id)


def read(paths: list[Path], options: ReadOptions) -> Iterator[dict[str, pa.Table]]:
    """Read ImageReward items (JSON array, JSONL, Parquet or CSV with JSON-encoded lists)."""
    yield from read_rows(paths, _convert, options)


def sniff(sample: Sample) -> float:
    recs = [r for r in sample.records if isinstance(r, dict)]
    if not recs or not all(r.keys() >= KEYS for r in recs):
        return 0.0
    return 0.95 if all("id" in r for r in recs) else 0.8


# --- writing ---------------------------------------------------------------------------------
def _check_writable(con: duckdb.DuckDBPyConnection, ds: Dataset) -> None:
    """Refuse data the layout cannot hold rather than dropping it."""
    if ds.num_rows("judgments"):
        raise PrefkitError(
            f"imagereward: the dataset has {ds.num_rows('judgments'):,} pairwise judgments, "
            "which the ImageReward layout cannot hold (it holds ranked lists only)"
        )
    unranked = engine.scalar(
        con,
        "SELECT count(*) FROM responses ANTI JOIN "
        "(SELECT DISTINCT unnest(flatten(tiers)) AS response_id FROM rankings) USING (response_id)",
    )
    if unranked:
        raise PrefkitError(
            f"imagereward: {unranked:,} responses are in no ranking; the ImageReward layout "
            "holds ranked lists only"
        )


def _item(
    ranking: dict[str, Any], prompt: dict[str, Any] | None, media: dict[str, Any]
) -> dict[str, Any]:
    rid_ = ranking["ranking_id"]
    if prompt is None:
        raise PrefkitError(
            f"imagereward: ranking {rid_} names prompt {ranking['prompt_id']}, which has no row"
        )
    turns = prompt.get("messages") or []
    if len(turns) != 1 or turns[0]["role"] != "user" or prompt.get("context"):
        raise PrefkitError(
            f"imagereward: prompt {prompt['prompt_id']} is not a single user turn; an ImageReward "
            "prompt is one text"
        )
    generations: list[str] = []
    ranks: list[int] = []
    for t, tier in enumerate(ranking.get("tiers") or []):
        for rid in tier:
            images = media.get(rid)
            if images is None:
                raise PrefkitError(
                    f"imagereward: ranking {rid_} names response {rid}, which has no row"
                )
            if len(images) != 1:
                raise PrefkitError(
                    f"imagereward: response {rid} has {len(images)} media references; "
                    "an ImageReward generation is exactly one image"
                )
            generations.append(images[0]["uri"])
            ranks.append(t + 1)
    item_id = ranking.get("item_id") or prompt.get("item_id") or rid_
    return {
        "id": str(item_id),
        "prompt": turns[0]["content"],
        "generations": generations,
        "ranking": ranks,
    }


def _iter_items(ds: Dataset) -> Iterator[dict[str, Any]]:
    # The outer scan streams on its own connection: a connection with an open result
    # cannot run the per-batch lookups.
    con, outer = engine.connect(), engine.connect()
    try:
        prompts = _views(con, ds)
        rankings = ds.relation(outer, "rankings")
        k_cols = _columns(rankings, ("ranking_id", "prompt_id", "tiers", "item_id"))
        p_cols = _columns(prompts, ("prompt_id", "messages", "context", "item_id"))
        for batch in rankings.select(k_cols).to_arrow_reader(WRITE_BATCH):
            con.register("batch_ids", pa.table({"prompt_id": batch.column("prompt_id")}))
            found = con.sql(f"SELECT {p_cols} FROM prompts SEMI JOIN batch_ids USING (prompt_id)")
            by_id = {row["prompt_id"]: row for row in found.to_arrow_table().to_pylist()}
            found = con.sql(
                "SELECT response_id, media FROM responses SEMI JOIN batch_ids USING (prompt_id)"
            )
            media = {
                row["response_id"]: row["media"] or [] for row in found.to_arrow_table().to_pylist()
            }
            con.unregister("batch_ids")
            for ranking in batch.to_pylist():
                yield _item(ranking, by_id.get(ranking["prompt_id"]), media)
    finally:
        con.close()
        outer.close()


def _views(con: duckdb.DuckDBPyConnection, ds: Dataset) -> duckdb.DuckDBPyRelation:
    """Register the prompts, responses and rankings tables as views; return prompts."""
    for name in ("prompts", "responses", "rankings"):
        ds.relation(con, name).create_view(name)
    return con.table("prompts")


def _columns(rel: duckdb.DuckDBPyRelation, wanted: tuple[str, ...]) -> str:
    return ", ".join(c for c in rel.columns if c in wanted)


def write(ds: Dataset, path: Path, options: dict[str, Any]) -> None:
    """Write the rankings of ``ds`` in the ImageReward layout.

    Parameters
    ----------
    ds
        The dataset: one-turn text prompts, one-image responses, every response ranked.
    path
        The output file.
    options
        ``container``: ``json`` (a JSON array, as ImageReward ships it), ``jsonl``,
        ``parquet`` or ``csv`` (lists JSON-encoded); default from the suffix, else JSONL.
    """
    output_container(path, options, allowed=WRITE_CONTAINERS, fmt="imagereward")
    with engine.connect() as con:
        _views(con, ds)
        _check_writable(con, ds)
    write_records(
        _iter_items(ds), path, options, fmt="imagereward", schema=ITEM_SCHEMA, json_cells=True
    )


register(
    Format(
        name="imagereward",
        summary="ImageReward ranked text-to-image generations with ties (test.json layout)",
        kinds=("rankings", "ties"),
        sniff=sniff,
        read=read,
        write=write,
    )
)
