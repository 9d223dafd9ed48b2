"""Tokenized preference data: each example is one prompt and K >= 2 completions.

A pair is a group of two completions ordered ``[chosen, rejected]``; a ranked list is a
group of ``K`` completions with relevance ``scores`` (higher is better). Labels travel
with the token ids so that selecting rows (dropping broken pairs, a curriculum stage,
a minibatch) keeps them aligned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Groups:
    """``N`` tokenized examples and their labels.

    Parameters
    ----------
    ids
        One id per example (a judgment or ranking key), used in reports.
    prompt_ids
        Prompt token ids, chat template applied.
    completion_ids
        Per example, the token ids of its completions (EOS included).
    strength
        ``(N,)`` probability that the first completion is preferred (pairs); 1.0 when
        the data has none.
    scores
        Per example, one relevance score per completion (lists), or ``None`` for pairs.
    stage
        ``(N,)`` curriculum stage (1 = first); 0 everywhere when unstaged.
    """

    ids: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[list[int]]]
    strength: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scores: list[list[float]] | None = None
    stage: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.strength) == 0:
            self.strength = np.ones(n)
        if len(self.stage) == 0:
            self.stage = np.zeros(n, dtype=np.int64)
        sizes = {
            len(self.prompt_ids),
            len(self.completion_ids),
            len(self.strength),
            len(self.stage),
            n if self.scores is None else len(self.scores),
        }
        if sizes != {n}:
            raise ValueError(f"Groups fields disagree in length: {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def listwise(self) -> bool:
        return self.scores is not None

    def select(self, index: Sequence[int] | np.ndarray) -> Groups:
        idx = [int(i) for i in index]
        return Groups(
            ids=[self.ids[i] for i in idx],
            prompt_ids=[self.prompt_ids[i] for i in idx],
            completion_ids=[self.completion_ids[i] for i in idx],
            strength=self.strength[idx],
            scores=None if self.scores is None else [self.scores[i] for i in idx],
            stage=self.stage[idx],
        )

    def fingerprint(self) -> str:
        """BLAKE2b of the token ids (in order): names the exact tokenized content."""
        h = hashlib.blake2b(digest_size=16)
        for p, cs in zip(self.prompt_ids, self.completion_ids, strict=True):
            h.update(np.asarray(p, dtype=np.int64).tobytes())
            h.update(b"|")
            for c in cs:
                h.update(np.asarray(c, dtype=np.int64).tobytes())
                h.update(b";")
            h.update(b"\n")
        return h.hexdigest()
