"""Reference log-probs, computed once and cached on disk.

Every reference-based loss reads ``log π_ref(y | x)`` for each completion; the reference
model is frozen, so these numbers depend only on the tokenized data, the reference
weights and the precision they were computed in. :class:`RefCache` stores them as one
``.npy`` file per key::

    key = BLAKE2b(token-id fingerprint of the data  (dataset + tokenizer + chat template
                                                       + truncation, all in the ids)
                  + reference identity               (local files, or the hub commit)
                  + compute dtype + cache format version)

On a hit the reference model is never loaded. Files are written to a temporary name and
renamed, so an interrupted run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from prefkit.training.groups import Groups

VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def default_dir() -> Path:
    """``$PREFKIT_CACHE/reference`` or ``~/.cache/prefkit/reference``."""
    root = os.environ.get("PREFKIT_CACHE") or Path.home() / ".cache" / "prefkit"
    return Path(root) / "reference"


def model_identity(name_or_path: str, revision: str | None = None) -> str:
    """A string that changes whenever the model's weights or config change.

    A local directory is named by its config's content and each weight file's name,
    size and modification time (hashing gigabytes of weights on every run would cost
    more than the forward pass it saves). A hub id is named by the commit it resolves to.
    """
    path = Path(name_or_path)
    if path.is_dir():
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(path.rglob("*")):
            if f.name == "config.json" or f.name.startswith("adapter_config"):
                h.update(f.read_bytes())
            elif f.suffix in WEIGHT_SUFFIXES:
                st = f.stat()
                h.update(f"{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
        return f"local:{path.resolve()}:{h.hexdigest()}"
    from huggingface_hub import snapshot_download

    snap = snapshot_download(name_or_path, revision=revision, allow_patterns=["config.json"])
    return f"hub:{name_or_path}@{Path(snap).name}"


class RefCache:
    """Reference log-probs ``(N, K)`` float64 on disk, by key (see the module docstring)."""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory) if directory is not None else default_dir()

    @staticmethod
    def key(groups: Groups, reference: str, dtype: str) -> str:
        parts = {"v": VERSION, "data": groups.fingerprint(), "ref": reference, "dtype": dtype}
        return hashlib.blake2b(
            json.dumps(parts, sort_keys=True).encode(), digest_size=20
        ).hexdigest()

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def get(self, key: str, n: int) -> np.ndarray | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            arr = np.load(p)
        except (OSError, ValueError, EOFError):
            return None  # unreadable: recompute and overwrite
        return arr if arr.shape[0] == n else None

    def put(self, key: str, values: np.ndarray) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, values)
        os.replace(tmp, self.path(key))
        return self.path(key)
