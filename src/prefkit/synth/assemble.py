"""Turn the simulator's index arrays into the five canonical Arrow tables.

Everything is built column-wise: ids are formatted with Arrow string kernels, texts are
rendered from sentence codes (see :mod:`prefkit.synth.text`), and duplicated prompts are
gathers over run-length layouts. Ids are plain and deterministic (``p00000017``,
``r00000017-2``, ``j000000042``, ``k000000042``, ``a0007``) rather than content hashes:
exact duplicates must stay separate rows so that deduplication has something to find.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.schema.tables import MESSAGE, MESSAGES, NUM_MAP, TIERS
from prefkit.synth.text import SentencePool, Texts, gather_runs
from prefkit.synth.world import World

#: Minimum digits of the plain ids, per prefix.
ID_WIDTH = {"p": 8, "j": 9, "k": 9, "a": 4}


def format_ids(prefix: str, index: np.ndarray, width: int | None = None) -> pa.Array:
    """``prefix`` + zero-padded ``index`` as an Arrow string array."""
    index = np.asarray(index, np.int64)
    width = max(width or ID_WIDTH.get(prefix, 8), len(str(int(index.max()))) if len(index) else 1)
    digits = pc.utf8_lpad(pc.cast(pa.array(index), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def messages_column(role: str, content: pa.ChunkedArray) -> pa.ChunkedArray:
    """One-turn messages lists ``[{role, content}]`` around a string column."""
    chunks = []
    for chunk in content.chunks:
        turn = pa.StructArray.from_arrays(
            [pa.repeat(role, len(chunk)), chunk], fields=list(MESSAGE)
        )
        offsets = pa.array(np.arange(len(chunk) + 1, dtype=np.int32))
        chunks.append(pa.ListArray.from_arrays(offsets, turn, type=MESSAGES))
    return pa.chunked_array(chunks, type=MESSAGES)


def list_column(values: np.ndarray) -> pa.Array:
    """``(n, K)`` floats as a ``list<double>`` column."""
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.ravel().astype(float)))


def attributes_column(names: tuple[str, ...], values: np.ndarray) -> pa.Array:
    """``(n, K)`` ratings as the ``map<string, double>`` attributes column."""
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    keys = pa.array(np.tile(np.array(names, dtype=object), n), pa.string())
    return pa.MapArray.from_arrays(offsets, keys, pa.array(values.ravel().astype(float))).cast(
        NUM_MAP
    )


def tiers_column(response_ids: pa.Array, order: np.ndarray, tier_break: np.ndarray) -> pa.Array:
    """Rankings as ``list<list<string>>`` tiers from ``(n, R)`` response rows best first."""
    n, r = order.shape
    ids = response_ids.take(pa.array(order.ravel()))
    starts = np.concatenate([np.ones((n, 1), bool), tier_break], axis=1)
    inner = np.append(np.flatnonzero(starts.ravel()), n * r).astype(np.int32)
    outer = np.zeros(n + 1, np.int32)
    np.cumsum(starts.sum(axis=1), out=outer[1:])
    tiers = pa.ListArray.from_arrays(pa.array(inner), ids)
    return pa.ListArray.from_arrays(pa.array(outer), tiers).cast(TIERS)


@dataclass
class Copies:
    """Duplicated prompts: ``source[c]`` is the world prompt copied into copy ``c``."""

    exact: np.ndarray
    near: np.ndarray

    @property
    def source(self) -> np.ndarray:
        return np.concatenate([self.exact, self.near]).astype(np.int64)


@dataclass
class Layout:
    """Final prompt and response order: world prompts first, then exact, then near copies.

    ``response_src[i]`` is the world response behind final response ``i`` and
    ``offsets[p]:offsets[p+1]`` the final responses of final prompt ``p``.
    """

    world: World
    copies: Copies
    offsets: np.ndarray = field(init=False)
    response_src: np.ndarray = field(init=False)
    response_prompt: np.ndarray = field(init=False)
    prompt_src: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        w = self.world
        src = self.copies.source
        self.prompt_src = np.concatenate([np.arange(w.n_prompts), src])
        copied, copy_offsets = gather_runs(w.offsets, src)
        self.response_src = np.concatenate([np.arange(w.offsets[-1]), copied])
        self.offsets = np.concatenate([w.offsets, w.offsets[-1] + copy_offsets[1:]])
        counts = np.diff(self.offsets)
        self.response_prompt = np.repeat(np.arange(len(counts)), counts)

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_src)

    def copy_events(self, event_prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For events sorted by world prompt: (event rows to copy, final prompt of each).

        The result lists every event of the world prompts, then the events of each copy.
        """
        n_world = self.world.n_prompts
        bounds = np.searchsorted(event_prompt, np.arange(n_world + 1))
        rows, offs = gather_runs(bounds, self.copies.source)
        copy_prompt = np.repeat(n_world + np.arange(len(self.copies.source)), np.diff(offs))
        all_rows = np.concatenate([np.arange(len(event_prompt)), rows])
        return all_rows, np.concatenate([event_prompt, copy_prompt])

    def response_rows(self, prompts: np.ndarray) -> np.ndarray:
        """World response rows of the given world prompts, prompt after prompt."""
        return gather_runs(self.world.offsets, prompts)[0]


def render_with_copies(
    rng: np.random.Generator, pool: SentencePool, texts: Texts, exact: np.ndarray,
    near: np.ndarray, edits: int,
) -> pa.ChunkedArray:  # fmt: skip
    """``texts``, then exact copies of rows ``exact``, then edited copies of rows ``near``."""
    parts = [texts.render(pool)]
    if len(exact):
        parts.append(texts.take(exact).render(pool))
    if len(near):
        parts.append(texts.take(near).edited(rng, pool, edits).render(pool))
    return pa.chunked_array([c for p in parts for c in p.chunks], type=pa.string())


def prompt_table(layout: Layout, prompt_ids: pa.Array, content: pa.ChunkedArray, n_triads: int,
                 n_base: int) -> pa.Table:  # fmt: skip
    """The prompts table with ``duplicate_of``, ``duplicate_kind`` and ``cyclic_triad``."""
    n_world = layout.world.n_prompts
    n_exact = len(layout.copies.exact)
    n = layout.n_prompts
    is_copy = np.arange(n) >= n_world
    duplicate_of = pc.if_else(
        pa.array(is_copy),
        prompt_ids.take(pa.array(layout.prompt_src)),
        pa.scalar(None, pa.string()),
    )
    kind = np.full(n, None, dtype=object)
    kind[n_world : n_world + n_exact] = "exact"
    kind[n_world + n_exact :] = "near"
    triad = np.zeros(n, bool)
    triad[n_base : n_base + n_triads] = True
    return pa.table(
        {
            "prompt_id": prompt_ids,
            "messages": messages_column("user", content),
            "duplicate_of": duplicate_of,
            "duplicate_kind": pa.array(kind, pa.string()),
            "cyclic_triad": pa.array(triad),
        }
    )


__all__ = [
    "Copies",
    "Layout",
    "attributes_column",
    "format_ids",
    "list_column",
    "messages_column",
    "prompt_table",
    "render_with_copies",
    "tiers_column",
]
