"""Fast writer of large synthetic TRL preference files for benchmarks.

Writes the TRL "standard" preference format, one JSON object per line:
``{"prompt": str, "chosen": str, "rejected": str}`` (Hugging Face TRL, ``DPOTrainer``
dataset formats). Each row draws two responses with latent qualities ``q ~ N(0, 1)``;
the better one is ``chosen`` and carries more good-marker sentences (see
:mod:`prefkit.synth.text`), so a model trained on the file has a signal to learn.

Speed: lines are assembled with Arrow string kernels from sentences whose JSON encoding
is checked once with orjson (no character in the pool needs escaping), and each batch is
written as one buffer. One million rows of ~30-word prompts and ~80-word responses take
a few seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.synth.text import SentencePool, draw_texts, sentences_for

BATCH = 1 << 16
#: Log-normal sigma of the text lengths.
LENGTH_SPREAD = 0.3
#: Share of response sentences with a quality marker.
SIGNAL = 0.3


def _check_json_safe(pool: SentencePool) -> None:
    """Every pool sentence must be a JSON string body as is (no escapes needed)."""
    for text in pool.pieces.to_pylist():
        if orjson.dumps(text)[1:-1] != text.encode():
            raise RuntimeError(f"sentence needs JSON escaping: {text!r}")


def _n_sentences(rng: np.random.Generator, n: int, words: float, pool: SentencePool) -> np.ndarray:
    target = rng.lognormal(math.log(words) - LENGTH_SPREAD**2 / 2, LENGTH_SPREAD, n)
    return sentences_for(target, pool)


def write_trl_jsonl(
    path: str | Path,
    n_pairs: int,
    seed: int = 0,
    prompt_words: float = 30.0,
    response_words: float = 80.0,
    batch_size: int = BATCH,
) -> Path:
    """Write ``n_pairs`` synthetic TRL preference rows to a JSONL file.

    Parameters
    ----------
    path
        Output file (overwritten).
    n_pairs
        Number of rows.
    seed
        Seed of the ``numpy.random.Generator``; the same seed writes the same bytes.
    prompt_words, response_words
        Mean lengths in words (log-normal, sigma 0.3).
    batch_size
        Rows rendered and written at a time (bounds memory).

    Returns
    -------
    Path
        ``path``.
    """
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    path = Path(path)
    rng = np.random.default_rng(seed)
    pool = SentencePool.build(rng)
    _check_json_safe(pool)
    with open(path, "wb") as out:
        for lo in range(0, n_pairs, batch_size):
            n = min(batch_size, n_pairs - lo)
            out.write(_batch(rng, pool, n, prompt_words, response_words))
    return path


def _batch(
    rng: np.random.Generator, pool: SentencePool, n: int, prompt_words: float, response_words: float
) -> memoryview:
    """``n`` JSON lines as one contiguous buffer."""
    quality = np.sort(rng.normal(size=(n, 2)), axis=1)  # (n, [rejected, chosen])
    prompt = draw_texts(rng, pool, _n_sentences(rng, n, prompt_words, pool), question_last=True)
    chosen = draw_texts(
        rng, pool, _n_sentences(rng, n, response_words, pool), quality[:, 1:], SIGNAL
    )
    rejected = draw_texts(
        rng, pool, _n_sentences(rng, n, response_words, pool), quality[:, :1], SIGNAL
    )
    parts = [
        '{"prompt": "',
        prompt.render(pool).combine_chunks(),
        '", "chosen": "',
        chosen.render(pool).combine_chunks(),
        '", "rejected": "',
        rejected.render(pool).combine_chunks(),
        '"}\n',
        "",
    ]
    lines = pc.binary_join_element_wise(*parts)
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + n + 1]
    data = lines.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


__all__ = ["write_trl_jsonl"]
