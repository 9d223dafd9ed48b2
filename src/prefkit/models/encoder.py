"""Sentence encoders for frozen features: sentence-transformers, optionally quantized.

``quantize="none"`` runs the model as sentence-transformers ships it (mean pooling,
unit-norm rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from prefkit.errors import PrefkitError
from prefkit.models.features import EncoderSpec

Encoder = Callable[[Sequence[str]], np.ndarray]
QUANTIZE = ("none",)


def load_encoder(spec: EncoderSpec) -> Encoder:
    """An encoder ``texts -> (n, d) float32`` with unit-norm rows for ``spec``."""
    if spec.quantize not in QUANTIZE:
        raise PrefkitError(
            f"unknown quantize mode {spec.quantize!r}; choose one of: {', '.join(QUANTIZE)}"
        )
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise PrefkitError(
            "frozen features need the embed extra: pip install 'prefkit[embed]'"
        ) from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = SentenceTransformer(spec.resolved_path(), device="cpu")
    model.max_seq_length = spec.max_length

    def encode(texts: Sequence[str]) -> np.ndarray:
        out = model.encode(
            list(texts),
            batch_size=spec.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.asarray(out, dtype=np.float32)

    return encode


__all__ = ["QUANTIZE", "Encoder", "load_encoder"]
