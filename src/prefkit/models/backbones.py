"""Backbones: what turns response texts into the features a head reads.

A backbone is *bound* to a list of texts (``PrefData.texts``) and then maps item
indices to features ``(n, D)``. Three kinds, named by a spec string:

* ``frozen[:PATH]``: a sentence encoder run once over every text (cached on disk by
  :mod:`prefkit.models.features`); features are a lookup, nothing is trained, so
  training a head takes seconds;
* ``encoder[:PATH]``: a transformers encoder fine-tuned end to end, mean-pooled;
* ``causal:PATH``: a causal LM with the head on the last non-padding token's hidden
  state (the usual scalar reward head, Ouyang et al. 2022).

Without ``PATH`` the encoder kinds use the packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.models.features import EncoderSpec, Progress, embed

KINDS = ("frozen", "encoder", "causal")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"kind[:path]"`` -> ``(kind, path or None)``."""
    kind, _, path = spec.partition(":")
    if kind not in KINDS:
        raise PrefkitError(
            f"unknown backbone {spec!r}: use one of {', '.join(k + '[:PATH]' for k in KINDS)}"
        )
    if kind == "causal" and not path:
        raise PrefkitError("backbone 'causal' needs a model path or hub id: causal:PATH")
    return kind, path or None


class Backbone(nn.Module):
    """Base: ``bind(texts)`` then ``features(items)``; ``trainable`` says whether the
    optimizer should see its parameters."""

    kind: str = ""
    trainable: bool = False
    dim: int = 0

    def bind(self, texts: list[str], progress: Progress | None = None) -> None:
        raise NotImplementedError

    def features(self, items: Tensor) -> Tensor:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def save_weights(self, path: Path) -> None:
        """Write trained weights under ``path`` (frozen backbones have none)."""


def truncation_line(n_truncated: int, n_seen: int, max_length: int) -> str:
    """One report line, e.g. ``"3 of 120 texts (2.5%) were longer than max_length=256
    tokens and were cut on the right"``."""
    share = f" ({100 * n_truncated / n_seen:.1f}%)" if n_seen else ""
    return (
        f"{n_truncated:,} of {n_seen:,} texts{share} were longer than max_length={max_length} "
        "tokens and were cut on the right"
    )


class FrozenBackbone(Backbone):
    """Sentence-encoder features computed once (see :func:`prefkit.models.features.embed`)."""

    kind = "frozen"

    def __init__(
        self, spec: EncoderSpec, cache_dir: str | Path | None = None, use_cache: bool = True
    ):
        super().__init__()
        self.spec = spec
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.table: Tensor | None = None
        self.texts: list[str] = []
        self._truncated: int | None = None

    def bind(self, texts: list[str], progress: Progress | None = None) -> None:
        if self.table is not None and list(texts) == self.texts:
            return  # already bound: scoring calls bind before each prediction
        self.texts = list(texts)
        self._truncated = None
        x = embed(
            texts, self.spec, cache_dir=self.cache_dir, use_cache=self.use_cache, progress=progress
        )
        self.table = torch.from_numpy(np.ascontiguousarray(x))
        self.dim = int(x.shape[1]) if x.size else self.dim

    def features(self, items: Tensor) -> Tensor:
        if self.table is None:
            raise RuntimeError("bind() the backbone to texts first")
        return self.table[items]

    @property
    def n_seen_(self) -> int:
        """Texts bound (the ones the encoder read)."""
        return len(self.texts)

    @property
    def n_truncated_(self) -> int | None:
        """Bound texts longer than ``max_length`` tokens, which the encoder cut on the
        right (counted with the encoder's tokenizer on first access; None when the
        tokenizer cannot be loaded)."""
        if self._truncated is None and self.texts:
            from transformers import AutoTokenizer

            from prefkit.models.finetune import quiet_transformers, transformer_dir

            try:
                with quiet_transformers():
                    tok = AutoTokenizer.from_pretrained(transformer_dir(self.spec.resolved_path()))
            except (OSError, ValueError):
                return None
            ids = tok(self.texts, truncation=False, verbose=False)["input_ids"]
            self._truncated = int(sum(len(t) > self.spec.max_length for t in ids))
        return self._truncated if self.texts else 0

    def truncation_summary(self) -> str:
        return truncation_line(self.n_truncated_ or 0, self.n_seen_, self.spec.max_length)

    def config(self) -> dict[str, Any]:
        return {
            "kind": "frozen",
            "path": self.spec.path,
            "quantize": self.spec.quantize,
            "max_length": self.spec.max_length,
            "dim": self.dim,
        }


class ArrayBackbone(Backbone):
    """Features given as an array, one row per response (``data.texts`` are ignored):
    for users with their own embeddings, and for experiments on planted features."""

    kind = "array"

    def __init__(self, x: np.ndarray | Tensor):
        super().__init__()
        self.table = torch.as_tensor(np.asarray(x, dtype=np.float32))
        self.dim = int(self.table.shape[1])

    def bind(self, texts: list[str], progress: Progress | None = None) -> None:
        if len(texts) != len(self.table):
            raise PrefkitError(
                f"the feature array has {len(self.table):,} rows but the data has {len(texts):,} responses"
            )

    def features(self, items: Tensor) -> Tensor:
        return self.table[items]

    def config(self) -> dict[str, Any]:
        return {"kind": "array", "dim": self.dim, "rows": len(self.table)}

    def save_weights(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        save_file({"features": self.table.contiguous()}, str(path / "features.safetensors"))


def build_backbone(
    spec: str,
    *,
    quantize: str = "none",
    max_length: int = 256,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> Backbone:
    """The backbone a spec string names (see the module docstring)."""
    kind, path = parse_spec(spec)
    if kind == "frozen":
        return FrozenBackbone(EncoderSpec(path, quantize, max_length), cache_dir, use_cache)
    from prefkit.models.finetune import FinetunedBackbone

    return FinetunedBackbone(kind, path, max_length=max_length)


def backbone_from_config(
    cfg: dict[str, Any], weights: Path | None, cache_dir: str | Path | None = None
) -> Backbone:
    """Rebuild a saved backbone (fine-tuned weights load from ``weights``)."""
    if cfg["kind"] == "array" and weights is not None:
        return ArrayBackbone(load_file(str(weights / "features.safetensors"))["features"])
    if cfg["kind"] == "frozen":
        bb = FrozenBackbone(EncoderSpec(cfg["path"], cfg["quantize"], cfg["max_length"]), cache_dir)
        bb.dim = cfg["dim"]
        return bb
    from prefkit.models.finetune import FinetunedBackbone

    return FinetunedBackbone.from_saved(cfg, weights)


__all__ = [
    "KINDS",
    "Backbone",
    "FrozenBackbone",
    "backbone_from_config",
    "build_backbone",
    "parse_spec",
]
