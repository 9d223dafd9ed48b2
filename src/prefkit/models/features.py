"""Frozen-encoder features with an on-disk embedding cache.

:func:`embed` turns texts into ``(n, d)`` float32 rows with the encoder an
:class:`EncoderSpec` names, reading rows it has seen before from an
:class:`EmbeddingCache`. The cache is keyed by the encoder (its path, weights' sizes
and modification times, the quantization mode and ``max_length``) and by each text's
BLAKE2b-128 digest, so a re-run over the same texts never encodes again, and a changed
model or text is never served a stale row.

Layout: ``<root>/<model key>/shard-*.npz``, each shard holding ``keys`` (``S16``
digests) and ``vecs`` (``float32``); shards are written aside and renamed into place,
so a crash never leaves a torn shard. ``root`` defaults to ``$PREFKIT_CACHE/embeddings``
or ``~/.cache/prefkit/embeddings``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from prefkit.errors import PrefkitError

#: Texts encoded per cache shard (bounds the work lost if a run is interrupted).
SHARD = 4096
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder makes the features: a sentence-transformers path or hub id
    (``None``: the packaged all-MiniLM-L6-v2), a quantization mode and the token limit."""

    path: str | None = None
    quantize: str = "none"
    max_length: int = 256
    batch_size: int = 32

    def resolved_path(self) -> str:
        return self.path or default_encoder_path("frozen features")

    def key(self) -> str:
        """Cache key: the spec plus the model files' names, sizes and mtimes (a hub id
        without a local copy is keyed by its name)."""
        path = self.resolved_path()
        files = []
        p = Path(path)
        if p.exists():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix in {".safetensors", ".bin", ".onnx", ".json"}:
                    st = f.stat()
                    files.append((str(f.relative_to(p)), st.st_size, int(st.st_mtime)))
        blob = json.dumps(
            [os.path.abspath(path) if p.exists() else path, asdict(self) | {"path": None}, files]
        )
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


def embed_extra_error(what: str, alternative: str = "") -> PrefkitError:
    """The error for ``what`` when the ``embed`` extra is missing."""
    return PrefkitError(f"{what} needs the embed extra: pip install 'prefkit[embed]'{alternative}")


def default_encoder_path(what: str, alternative: str = "") -> str:
    """The packaged all-MiniLM-L6-v2 (``PREFKIT_ENCODER`` overrides it), or a clear error
    naming ``what`` needed it."""
    from prefkit.diagnostics.embed import default_model_path

    try:
        return default_model_path()
    except ImportError:
        raise embed_extra_error(what, alternative) from None


def default_cache_root() -> Path:
    base = os.environ.get("PREFKIT_CACHE")
    return Path(base) / "embeddings" if base else Path.home() / ".cache" / "prefkit" / "embeddings"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """BLAKE2b-128 digest of each text's UTF-8 bytes, as an ``S16`` array."""
    return np.array(
        [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts], dtype="S16"
    )


class EmbeddingCache:
    """Rows already encoded by one encoder (see the module docstring for the layout).

    Nothing is held in memory: :meth:`lookup` reads each shard's keys and loads the
    vectors only of shards that hold some of the requested texts; :meth:`add` writes one
    new shard.
    """

    def __init__(self, root: Path, key: str):
        self.dir = Path(root) / key

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(found, rows)``: a mask over ``keys`` and the cached rows of the found ones."""
        found = np.zeros(len(keys), dtype=bool)
        rows: np.ndarray | None = None
        for shard in sorted(self.dir.glob("shard-*.npz")) if len(keys) else []:
            with np.load(shard) as z:
                stored = z["keys"]
                hit = ~found & np.isin(keys, stored)
                if not hit.any():
                    continue
                order = np.argsort(stored)
                src = order[np.searchsorted(stored[order], keys[hit])]
                vecs = z["vecs"]
                if rows is None:
                    rows = np.empty((len(keys), vecs.shape[1]), dtype=np.float32)
                rows[hit] = vecs[src]
                found |= hit
        return found, None if rows is None else rows[found]

    def add(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        """Write one shard, atomically."""
        if len(keys) == 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}"
        tmp = self.dir / f".{name}.tmp.npz"
        np.savez(tmp, keys=keys, vecs=vecs.astype(np.float32))
        os.replace(tmp, self.dir / f"{name}.npz")


def embed(
    texts: Sequence[str],
    spec: EncoderSpec | None = None,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """``(len(texts), d)`` float32 features, encoding only texts the cache lacks.

    Repeated texts are encoded once. ``progress(done, total)`` is called after each
    shard with counts of texts to encode.
    """
    spec = spec or EncoderSpec()
    keys = text_keys(texts)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    cache = (
        EmbeddingCache(Path(cache_dir) if cache_dir else default_cache_root(), spec.key())
        if use_cache
        else None
    )
    found, cached = (
        cache.lookup(uniq) if cache is not None else (np.zeros(len(uniq), dtype=bool), None)
    )
    todo = np.flatnonzero(~found)
    out: np.ndarray | None = None
    if cached is not None:
        out = np.empty((len(uniq), cached.shape[1]), dtype=np.float32)
        out[found] = cached
    if len(todo):
        from prefkit.models.encoder import load_encoder

        encode = load_encoder(spec)
        for start in range(0, len(todo), SHARD):
            rows = todo[start : start + SHARD]
            vecs = encode([texts[i] for i in first[rows]])
            if out is None:
                out = np.empty((len(uniq), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
            if cache is not None:
                cache.add(uniq[rows], vecs)
            if progress:
                progress(min(start + SHARD, len(todo)), len(todo))
    if out is None:
        return np.empty((0, 0), dtype=np.float32)
    return out[inverse.ravel()]


__all__ = ["EmbeddingCache", "EncoderSpec", "default_cache_root", "embed", "text_keys"]
