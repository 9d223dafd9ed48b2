"""Cheap per-response and per-judgment features for diagnostics (noise, and whoever needs them).

Per response: word and character counts (from :meth:`Context.lengths`), the lexical overlap
with its prompt, an optional embedding similarity to the prompt and the response's
``score``. Per judgment: the difference ``feature(a) − feature(b)`` of each, the design
of a Bradley–Terry model with covariates (Springall 1973, "Response surface fitting
using a generalization of the Bradley–Terry paired comparison model"), in which
``P(a ≻ b) = σ(wᵀ(x_a − x_b))``.

Lexical overlap is computed without Python sets per row (DESIGN.md §3): texts stream in
record batches; each batch is lower-cased and split into words (runs of Unicode letters
and digits) by Arrow kernels, the batch's distinct words are hashed once (DuckDB
``hash``, the low 32 bits), and the (row, word-hash) keys are deduplicated with a numpy
sort. A prompt's words are kept as one sorted array of 64-bit keys ``hash(prompt_id) XOR
mix(word hash)`` (8 bytes per distinct word of every prompt), and the words a response
shares with its prompt are found with one ``searchsorted`` per batch, keyed by the
response's ``prompt_id`` hash, so no id look-up table is built. Collisions are
negligible for overlap counts: about ``V² / 2³³`` colliding word pairs for a vocabulary
of V words, and a false (prompt, word) match with probability ~2⁻⁶⁴ per pair.

Embedding similarity (cosine of the MiniLM embeddings of a response and its prompt) is
computed only when :meth:`Context.embedder` gives an encoder and the prompts plus
responses number at most ``embed_max_texts``: sentence encoders run at tens of texts
per second on a CPU, so larger datasets skip it rather than stall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.diagnostics.context import BATCH_ROWS, Context
from prefkit.engine import scalar
from prefkit.views import messages_text, prompt_text

if TYPE_CHECKING:
    import duckdb

#: Words are maximal runs of Unicode letters and digits (RE2 syntax).
NON_WORD = r"[^\pL\pN]+"
#: Texts per call of the sentence encoder (each call advances the progress bar).
EMBED_CHUNK = 256
#: Largest number of prompts + responses embedded by default.
EMBED_MAX_TEXTS = 5_000
HASH_BITS = 32
MASK = np.uint64((1 << HASH_BITS) - 1)
#: Word hash given to the empty word (dropped).
EMPTY = MASK
#: Odd 64-bit multiplier (2⁶⁴/φ) that spreads a 32-bit word hash over 64 bits.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)

#: Per-judgment difference features, in design-matrix order (``score``/``cos`` optional).
FEATURES = (
    "log_words",
    "log_chars",
    "words",
    "jaccard",
    "prompt_recall",
    "score",
    "reward",
    "cos",
)


# --- words ---------------------------------------------------------------------------------
def hash_strings(con: duckdb.DuckDBPyConnection, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``(n,)`` uint64 DuckDB ``hash`` of each string (vectorised; stable within a run)."""
    con.register("_nf_strings", pa.table({"s": values}))
    out = con.sql("SELECT hash(s) AS h FROM _nf_strings").to_arrow_table().column(0)
    con.unregister("_nf_strings")
    return np.asarray(out, np.uint64)


def word_keys(
    con: duckdb.DuckDBPyConnection, texts: pa.Array | pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct words of each text as ``(row, hash)`` pairs, sorted by row then hash.

    Parameters
    ----------
    con
        A DuckDB connection (hashes the batch's distinct words, vectorised).
    texts
        ``(n,)`` strings (nulls count as empty).

    Returns
    -------
    rows, hashes
        ``(k,)`` int64 row index in ``texts`` and ``(k,)`` uint64 32-bit word hash.
    """
    text = pc.fill_null(texts, "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    spaced = pc.replace_substring_regex(pc.utf8_lower(text), NON_WORD, " ")
    lists = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(spaced))
    flat = pc.list_flatten(lists)
    if len(flat) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    rows = np.asarray(pc.list_parent_indices(lists), np.uint64)
    encoded = pc.dictionary_encode(flat)
    vocab_hash = hash_strings(con, encoded.dictionary) & MASK
    # An empty text splits into one empty word: drop it.
    vocab_hash[np.asarray(pc.equal(encoded.dictionary, ""), bool)] = EMPTY
    keys = (rows << np.uint64(HASH_BITS)) | vocab_hash[np.asarray(encoded.indices, np.int64)]
    keys = np.sort(keys[(keys & MASK) != EMPTY])
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
    return (keys >> np.uint64(HASH_BITS)).astype(np.int64), keys & MASK


def _pair_keys(prompt_hash: np.ndarray, word_hash: np.ndarray) -> np.ndarray:
    """64-bit keys of (prompt, word) pairs: the prompt id's hash XOR the mixed word hash."""
    with np.errstate(over="ignore"):
        return prompt_hash ^ (word_hash * GOLDEN)


@dataclass
class PromptWords:
    """The distinct words of every prompt, for overlap look-ups.

    Attributes
    ----------
    ids
        ``(P,)`` prompt ids in table order (position = prompt index).
    id_hash
        ``(P,)`` hash of each prompt id.
    keys
        Sorted :func:`_pair_keys` of every distinct word of every prompt.
    n_unique
        ``(P,)`` distinct words per prompt.
    set_hash
        ``(P,)`` order-free hash of each prompt's word set (equal for prompts that use
        the same words, whatever their order, case and punctuation).
    """

    ids: pa.Array
    id_hash: np.ndarray
    keys: np.ndarray
    n_unique: np.ndarray
    set_hash: np.ndarray

    def __post_init__(self) -> None:
        self._order = np.argsort(self.id_hash, kind="stable")
        self._sorted_hash = self.id_hash[self._order]

    def words_of(self, id_hash: np.ndarray) -> np.ndarray:
        """Distinct words of the prompts with these id hashes (-1 for unknown prompts)."""
        if not len(self._order):
            return np.full(len(id_hash), -1)
        pos = np.minimum(sorted_search(self._sorted_hash, id_hash), len(self._order) - 1)
        found = self._sorted_hash[pos] == id_hash
        return np.where(found, self.n_unique[self._order[pos]], -1)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Whether each :func:`_pair_keys` key is a (prompt, word) pair of some prompt."""
        if not len(self.keys):
            return np.zeros(len(keys), bool)
        pos = np.minimum(sorted_search(self.keys, keys), len(self.keys) - 1)
        return np.asarray(self.keys[pos] == keys)


def sorted_search(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.searchsorted(table, queries)``, with the queries sorted first: numpy then walks
    the table forwards instead of jumping around a large array (ten times faster on 16M
    prompt-word keys)."""
    order = np.argsort(queries, kind="stable")
    out = np.empty(len(queries), np.int64)
    out[order] = np.searchsorted(table, queries[order])
    return out


def prompt_words(ctx: Context) -> PromptWords:
    """Stream the prompts once and keep their word-hash sets (cached on the context)."""

    def make() -> PromptWords:
        ids, id_hash, keys, counts, set_hash = [], [], [], [], []
        total = ctx.count("prompts")
        batches = ctx.batches("prompts", ["prompt_id", "messages"])
        for batch in ctx.track(batches, "prompt words", -(-total // BATCH_ROWS)):
            n = batch.num_rows
            rows, hashes = word_keys(ctx.con, prompt_text(batch.column(1)))
            h = hash_strings(ctx.con, batch.column(0))
            ids.append(batch.column(0))
            id_hash.append(h)
            keys.append(_pair_keys(h[rows], hashes))
            counts.append(np.bincount(rows, minlength=n))
            with np.errstate(over="ignore"):
                mixed = hashes * GOLDEN
            sums = np.zeros(n, np.uint64)
            if len(rows):
                starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
                with np.errstate(over="ignore"):
                    sums[rows[starts]] = np.add.reduceat(mixed, starts)
            set_hash.append(sums)
        if not ids:
            empty = np.zeros(0, np.uint64)
            return PromptWords(pa.array([], pa.string()), empty, empty, np.zeros(0), empty)
        all_keys = np.concatenate(keys)
        del keys
        all_keys.sort()  # in place: one copy of the largest array
        return PromptWords(
            pa.concat_arrays([pa.array(i) for i in ids]),
            np.concatenate(id_hash),
            all_keys,
            np.concatenate(counts),
            np.concatenate(set_hash),
        )

    return ctx.cached("features:prompt_words", make)


def response_overlap(ctx: Context) -> pa.Table:
    """Lexical overlap of every response with its prompt (cached on the context).

    Returns
    -------
    pyarrow.Table
        ``response_id``; ``n_unique`` (distinct words); ``shared`` (distinct words also in
        its prompt); ``jaccard`` = shared / |R ∪ P|; ``prompt_recall`` = shared / |P|
        (the share of the prompt's words the response repeats). Both are 0 for a
        response whose prompt has no words or is missing.
    """

    def make() -> pa.Table:
        pw = prompt_words(ctx)
        parts = []
        total = ctx.count("responses")
        batches = ctx.batches("responses", ["response_id", "prompt_id", "messages"])
        for batch in ctx.track(batches, "response overlap", -(-total // BATCH_ROWS)):
            n = batch.num_rows
            rows, hashes = word_keys(ctx.con, messages_text(batch.column(2)))
            h = hash_strings(ctx.con, pc.fill_null(batch.column(1), ""))
            p_unique = pw.words_of(h)
            n_unique = np.bincount(rows, minlength=n)
            shared = np.zeros(n, np.int64)
            if len(rows):
                hit = pw.contains(_pair_keys(h[rows], hashes)) & (p_unique[rows] >= 0)
                shared = np.bincount(rows[hit], minlength=n)
            p_unique = np.maximum(p_unique, 0).astype(float)
            union = n_unique + p_unique - shared
            parts.append(
                pa.table(
                    {
                        "response_id": batch.column(0),
                        "n_unique": pa.array(n_unique, pa.int64()),
                        "shared": pa.array(shared, pa.int64()),
                        "jaccard": pa.array(np.divide(shared, union, np.zeros(n), where=union > 0)),
                        "prompt_recall": pa.array(
                            np.divide(shared, p_unique, np.zeros(n), where=p_unique > 0)
                        ),
                    }
                )
            )
        schema = pa.schema(
            [
                ("response_id", pa.string()),
                ("n_unique", pa.int64()),
                ("shared", pa.int64()),
                ("jaccard", pa.float64()),
                ("prompt_recall", pa.float64()),
            ]
        )
        return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()

    return ctx.cached("features:overlap", make)


# --- embeddings ----------------------------------------------------------------------------
def prompt_cosine(ctx: Context, max_texts: int = EMBED_MAX_TEXTS) -> pa.Table | None:
    """Cosine similarity of each response's embedding to its prompt's, or None.

    None when no encoder is available (``embed="never"`` or the ``embed`` extra is
    missing) or when prompts + responses exceed ``max_texts``.

    Returns
    -------
    pyarrow.Table or None
        ``response_id``, ``cos`` (0 for a response whose prompt is missing).
    """
    n_texts = ctx.count("prompts") + ctx.count("responses")
    if n_texts == 0 or n_texts > max_texts:
        return None
    encode = ctx.embedder()
    if encode is None:
        return None

    def make() -> pa.Table:
        assert encode is not None
        chunks = iter(ctx.track(range(-(-n_texts // EMBED_CHUNK)), "embeddings"))

        def embed(texts: list[str]) -> np.ndarray:
            out = []
            for lo in range(0, len(texts), EMBED_CHUNK):
                out.append(np.asarray(encode(texts[lo : lo + EMBED_CHUNK]), np.float32))
                next(chunks, None)
            return np.concatenate(out) if out else np.zeros((0, 1), np.float32)

        p_ids, p_text = [], []
        for ids, text in ctx.texts("prompts"):
            p_ids.extend(ids.to_pylist())
            p_text.extend(text.to_pylist())
        p_emb = embed(p_text)
        index = {pid: i for i, pid in enumerate(p_ids)}
        r_ids, cos = [], []
        for batch in ctx.batches("responses", ["response_id", "prompt_id", "messages"]):
            r_emb = embed(messages_text(batch.column(2)).to_pylist())
            rows = np.array([index.get(p, -1) for p in batch.column(1).to_pylist()], np.int64)
            sim = np.einsum("ij,ij->i", r_emb, p_emb[np.maximum(rows, 0)]) if len(p_emb) else 0.0
            cos.append(np.where(rows >= 0, sim, 0.0))
            r_ids.append(batch.column(0))
        return pa.table(
            {
                "response_id": pa.concat_arrays([pa.array(i) for i in r_ids]),
                "cos": pa.array(np.concatenate(cos).astype(float)),
            }
        )

    return ctx.cached(f"features:prompt_cosine:{max_texts}", make)


# --- per judgment ----------------------------------------------------------------------------
def judgment_features(ctx: Context, embed_max_texts: int = EMBED_MAX_TEXTS) -> pa.Table:
    """Judgments with the difference features ``feature(a) − feature(b)``.

    Columns: ``judgment_id, prompt_id, a, b, outcome, strength, annotator_id`` and one
    float column per name of :data:`FEATURES` present: ``log_words`` (log(1 + words)),
    ``log_chars`` (log(1 + characters)), ``words`` (words / median words of the judged
    responses: a linear length term), ``jaccard`` and ``prompt_recall`` (see
    :func:`response_overlap`), ``score`` (the responses' ``score``, 0 where either is
    null; only when some judged response has one), ``reward`` (likewise, from the
    ``reward`` column ``prefkit rm score`` writes) and ``cos`` (see
    :func:`prompt_cosine`; only when computed). Table order.
    """
    con = ctx.con
    frame = ctx.judgment_frame()
    overlap = response_overlap(ctx)
    cosine = prompt_cosine(ctx, embed_max_texts)
    con.register("_nf_frame", frame)
    con.register("_nf_overlap", overlap)
    columns = con.sql("SELECT * FROM _responses LIMIT 0").columns
    rated = [
        name
        for name in ("score", "reward")
        if name in columns
        and scalar(
            con,
            f"""SELECT count(*) FROM _responses
                WHERE {name} IS NOT NULL AND response_id IN
                      (SELECT a FROM _judgments UNION SELECT b FROM _judgments)""",
        )
    ]
    med = scalar(
        con,
        """SELECT median(w) FROM (SELECT a_words AS w FROM _nf_frame
                                  UNION ALL SELECT b_words FROM _nf_frame)""",
    )
    med = max(float(med), 1.0) if med else 1.0
    select = [
        "j.judgment_id, j.prompt_id, j.a, j.b, j.outcome, j.strength, j.annotator_id",
        "ln(1 + coalesce(j.a_words, 0)) - ln(1 + coalesce(j.b_words, 0)) AS log_words",
        "ln(1 + coalesce(j.a_chars, 0)) - ln(1 + coalesce(j.b_chars, 0)) AS log_chars",
        f"(coalesce(j.a_words, 0) - coalesce(j.b_words, 0)) / {med!r} AS words",
        "coalesce(oa.jaccard, 0) - coalesce(ob.jaccard, 0) AS jaccard",
        "coalesce(oa.prompt_recall, 0) - coalesce(ob.prompt_recall, 0) AS prompt_recall",
    ]
    joins = [
        "LEFT JOIN _nf_overlap oa ON oa.response_id = j.a",
        "LEFT JOIN _nf_overlap ob ON ob.response_id = j.b",
    ]
    if rated:
        select += [
            f"coalesce(CAST(sa.{n} AS DOUBLE) - CAST(sb.{n} AS DOUBLE), 0) AS {n}" for n in rated
        ]
        joins += [
            "LEFT JOIN _responses sa ON sa.response_id = j.a",
            "LEFT JOIN _responses sb ON sb.response_id = j.b",
        ]
    if cosine is not None:
        con.register("_nf_cos", cosine)
        select.append("coalesce(ca.cos, 0) - coalesce(cb.cos, 0) AS cos")
        joins += [
            "LEFT JOIN _nf_cos ca ON ca.response_id = j.a",
            "LEFT JOIN _nf_cos cb ON cb.response_id = j.b",
        ]
    sql = f"""SELECT {", ".join(select)}
              FROM (SELECT *, row_number() OVER () AS __ord FROM _nf_frame) j
              {" ".join(joins)}
              ORDER BY j.__ord"""
    out = con.sql(sql).to_arrow_table()
    for name in ("_nf_frame", "_nf_overlap", "_nf_cos"):
        if name != "_nf_cos" or cosine is not None:
            con.unregister(name)
    return out


__all__ = [
    "EMBED_MAX_TEXTS",
    "FEATURES",
    "PromptWords",
    "judgment_features",
    "prompt_cosine",
    "prompt_words",
    "response_overlap",
    "word_keys",
]
