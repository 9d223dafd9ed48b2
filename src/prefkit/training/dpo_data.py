"""From a prefkit dataset to the texts a DPO-family loss trains on.

Pair losses read the ``(prompt, chosen, rejected)`` view (:func:`prefkit.views.pairs_reader`,
with its policies for ties, repeated judgments and rankings); list losses read ranked
lists (:func:`prefkit.views.to_lists`; relevance = minus the rank, so tied responses share
one). Labels travel with the texts: ``strength`` (vote share or judged strength), the
curriculum ``stage`` column that ``prefkit curate ... curriculum`` writes on judgments,
and the prompt id used to hold out whole prompts for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.views import messages_text, pairs_reader, to_lists

STAGE = "stage"


@dataclass
class Texts:
    """Untokenized examples: ``prompts`` are strings or chat message lists."""

    ids: list[str]
    prompt_keys: list[str]
    prompts: list[Any]
    completions: list[list[str]]
    strength: np.ndarray
    stage: np.ndarray
    scores: list[list[float]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, idx: np.ndarray) -> Texts:
        ix = [int(i) for i in idx]
        return Texts(
            [self.ids[i] for i in ix],
            [self.prompt_keys[i] for i in ix],
            [self.prompts[i] for i in ix],
            [self.completions[i] for i in ix],
            self.strength[ix],
            self.stage[ix],
            None if self.scores is None else [self.scores[i] for i in ix],
        )


def _messages(arr: pa.Array) -> list[list[dict[str, str]]]:
    return [
        [{"role": m["role"], "content": m["content"] or ""} for m in x or []]
        for x in arr.to_pylist()
    ]


def pair_texts(
    ds: Dataset,
    *,
    conversational: bool,
    ties: str | None = "drop",
    annotators: str | None = "each",
    rankings: str | None = None,
    stages: bool = True,
) -> Texts:
    """Pairs. With one pair per judgment (``annotators="each"``, no ``rankings``) each is
    named by its judgment id and carries the judgment's curriculum ``stage``; otherwise
    by ``prompt:chosen>rejected``. ``stages=False`` ignores the stage column."""
    table = pairs_reader(
        ds, ties=ties, annotators=annotators, rankings=rankings, conversational=True
    ).read_all()
    prompts: list[Any] = (
        _messages(table.column("prompt").combine_chunks())
        if conversational
        else _prompt_strings(table.column("prompt").combine_chunks())
    )
    chosen = messages_text(table.column("chosen").combine_chunks()).to_pylist()
    rejected = messages_text(table.column("rejected").combine_chunks()).to_pylist()
    n = table.num_rows
    strength = np.asarray(pc.fill_null(table.column("strength"), 1.0).to_numpy(), dtype=float)
    stage = np.zeros(n, dtype=np.int64)
    j = ds.judgments
    if annotators in (None, "each") and not rankings:
        # the view streams the decisive judgments in order: name each pair by its judgment
        decisive = j.filter(pc.not_equal(j.column("outcome"), 0))
        if decisive.num_rows != n:  # pragma: no cover - guarded by the view's contract
            raise RuntimeError("the pairs view does not line up with the decisive judgments")
        ids = [str(x) for x in decisive.column("judgment_id").to_pylist()]
        if stages and STAGE in j.column_names:
            stage = pc.fill_null(decisive.column(STAGE), 0).to_numpy(zero_copy_only=False)
            stage = stage.astype(np.int64)
    else:
        if stages and STAGE in j.column_names:
            raise PrefkitError(
                "train dpo: the judgments carry curriculum stages, which apply to one pair per "
                "judgment: use --annotators each without --rankings, or --no-stages"
            )
        ids = [
            f"{p}:{c}>{r}"
            for p, c, r in zip(
                table.column("prompt_id").to_pylist(),
                table.column("chosen_id").to_pylist(),
                table.column("rejected_id").to_pylist(),
                strict=True,
            )
        ]
    return Texts(
        ids,
        table.column("prompt_id").to_pylist(),
        prompts,
        [list(x) for x in zip(chosen, rejected, strict=True)],
        strength,
        stage,
    )


def _prompt_strings(msgs: pa.Array) -> list[str]:
    from prefkit.views import prompt_text

    out: list[str] = prompt_text(msgs).to_pylist()
    return out


def list_texts(ds: Dataset, *, conversational: bool) -> Texts:
    """Ranked lists (rankings, else scored responses), best first."""
    lists = to_lists(ds)
    if not lists.num_rows:
        raise PrefkitError(
            "train dpo: the dataset has no rankings or scored responses for a list loss"
        )
    prompts: list[Any] = (
        _messages(lists.column("prompt_messages").combine_chunks())
        if conversational
        else lists.column("prompt").to_pylist()
    )
    ranks = lists.column("ranks").to_pylist()
    keys = lists.column("prompt_id").to_pylist()
    rid = lists.column("ranking_id").to_pylist()
    n = lists.num_rows
    return Texts(
        [r if r is not None else k for r, k in zip(rid, keys, strict=True)],
        keys,
        prompts,
        [list(x) for x in lists.column("responses").to_pylist()],
        np.ones(n),
        np.zeros(n, dtype=np.int64),
        scores=[[-float(r) for r in rr] for rr in ranks],
    )


def split_by_prompt(texts: Texts, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, eval) with ``fraction`` of the distinct prompts held out."""
    keys = np.asarray(texts.prompt_keys, dtype=object)
    uniq = np.unique(keys.astype(str))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(uniq, size=round(fraction * len(uniq)), replace=False).tolist())
    is_eval = np.array([str(k) in held for k in keys], dtype=bool)
    return np.flatnonzero(~is_eval), np.flatnonzero(is_eval)
