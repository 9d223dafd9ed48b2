"""The reward-model training loop: minibatches of labels -> backbone features -> head loss.

One explicit loop serves every head and backbone. Each step draws a minibatch of the
head's label kind (judgments, ranked lists or rated responses, see
:mod:`prefkit.models.heads.base`), asks the backbone for the features of the distinct
responses it mentions (a table lookup for frozen features, a forward pass when
fine-tuning), and takes an AdamW step on the head's loss. The head and a fine-tuned
backbone get separate learning rates. Shuffling is seeded, so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prefkit.errors import PrefkitError
from prefkit.models.backbones import Backbone
from prefkit.models.data import PrefData
from prefkit.models.heads.base import Head, ItemBatch, ListBatch, PairBatch


@contextmanager
def single_thread(enabled: bool = True) -> Iterator[None]:
    """Run torch single-threaded inside the block (the thread count is restored).

    Head-only training (frozen or array features) works on tensors of a few hundred
    rows, too small for intra-op parallelism to pay; on a busy machine the thread pool's
    contention made such steps up to ~1000x slower (measured with two threads on a
    loaded 2-core machine).
    """
    n = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


#: progress(step, total_steps, loss)
Progress = Callable[[int, int, float], None]


@dataclass
class TrainConfig:
    """Optimisation settings (defaults suit a linear head on frozen features)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 3e-3
    backbone_lr: float = 2e-5
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    max_steps: int = 0  # 0 = no cap
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def n_examples(head: Head, data: PrefData) -> int:
    """Training examples of the head's kind in ``data`` (ties only for heads that read them)."""
    if head.kind == "pairs":
        return len(data.pairs) if head.reads_ties else int((data.pairs.outcome != 0).sum())
    if head.kind == "lists":
        return data.lists.n_lists
    return int((~np.isnan(data.attributes)).any(axis=1).sum())


def batches(
    head: Head, data: PrefData, size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, Callable[..., Any]]]:
    """Yield ``(items, make)``: the response indices a batch needs and a function that
    builds the head's batch from their features ``(len(items), D)``."""
    if head.kind == "pairs":
        p = data.pairs
        order = rng.permutation(len(p))
        for s in range(0, len(order), size):
            rows = order[s : s + size]
            items, inv = np.unique(np.concatenate([p.a[rows], p.b[rows]]), return_inverse=True)
            n = len(rows)

            def make(
                x: Tensor, _rows: np.ndarray = rows, _inv: np.ndarray = inv, _n: int = n
            ) -> PairBatch:
                ia, ib = torch.from_numpy(_inv[:_n]), torch.from_numpy(_inv[_n:])
                return pair_batch(data, _rows, x[ia], x[ib])

            yield items, make
    elif head.kind == "lists":
        L = data.lists
        order = rng.permutation(L.n_lists)
        for s in range(0, len(order), size):
            chosen = np.zeros(L.n_lists, dtype=bool)
            chosen[order[s : s + size]] = True
            sub = L.take_lists(chosen)
            items, inv = np.unique(sub.item, return_inverse=True)

            def make_l(x: Tensor, _sub: Any = sub, _inv: np.ndarray = inv) -> ListBatch:
                return ListBatch(
                    x[torch.from_numpy(_inv)],
                    torch.from_numpy(_sub.list_id),
                    torch.from_numpy(_sub.tier),
                )

            yield items, make_l
    else:
        rated = np.flatnonzero((~np.isnan(data.attributes)).any(axis=1))
        order = rng.permutation(rated)
        for s in range(0, len(order), size):
            items = np.sort(order[s : s + size])

            def make_i(x: Tensor, _items: np.ndarray = items) -> ItemBatch:
                return ItemBatch(x, torch.from_numpy(data.attributes[_items]).to(x.dtype))

            yield items, make_i


def examples_in(batch: Any, head: Head) -> int:
    """Judgments the head's loss reads, lists or items in a batch (the weight of its
    loss in the epoch mean)."""
    if isinstance(batch, PairBatch):
        return len(batch.outcome) if head.reads_ties else int((batch.outcome != 0).sum())
    if isinstance(batch, ListBatch):
        return int(batch.list_id.max()) + 1 if len(batch.list_id) else 0
    return len(batch.x)


def pair_batch(data: PrefData, rows: np.ndarray, xa: Tensor, xb: Tensor) -> PairBatch:
    """A :class:`PairBatch` for judgment ``rows`` given both sides' features."""
    p = data.pairs
    return PairBatch(
        xa=xa,
        xb=xb,
        outcome=torch.from_numpy(p.outcome[rows].astype(np.float32)),
        strength=torch.from_numpy(p.strength[rows].astype(np.float32)),
        annotator=torch.from_numpy(p.annotator[rows]),
        weight=torch.ones(len(rows)),
    )


def train(
    head: Head,
    backbone: Backbone,
    data: PrefData,
    config: TrainConfig,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Fit ``head`` (and a trainable ``backbone``) on ``data``; returns per-epoch metrics.

    The backbone must already be bound to ``data.texts``. Head-only training runs
    single-threaded (see :func:`single_thread`).
    """
    with single_thread(not backbone.trainable):
        n = n_examples(head, data)
        if n == 0:
            need = {
                "pairs": "judgments" if head.reads_ties else "decisive (non-tie) judgments",
                "lists": "rankings",
                "items": "attribute ratings",
            }[head.kind]
            raise PrefkitError(f"head {head.name!r} learns from {need}, and the data has none")
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        groups: list[dict[str, Any]] = [{"params": list(head.parameters()), "lr": config.lr}]
        if backbone.trainable:
            groups.append(
                {
                    "params": [p for p in backbone.parameters() if p.requires_grad],
                    "lr": config.backbone_lr,
                }
            )
        opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        rows = len(data.pairs) if head.kind == "pairs" else n  # batches() deals ties too
        steps_per_epoch = -(-rows // config.batch_size)
        total = steps_per_epoch * config.epochs
        if config.max_steps:
            total = min(total, config.max_steps)
        history: list[dict[str, float]] = []
        step = 0
        head.train()
        backbone.train(backbone.trainable)
        for epoch in range(config.epochs):
            losses, sizes = [], []
            for items, make in batches(head, data, config.batch_size, rng):
                batch = make(backbone.features(torch.from_numpy(items)))
                loss = head.loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(
                        [p for g in groups for p in g["params"]], config.grad_clip
                    )
                opt.step()
                losses.append(float(loss.detach()))
                sizes.append(examples_in(batch, head))
                step += 1
                if progress:
                    progress(step, total, losses[-1])
                if step >= total:
                    break
            history.append(
                {
                    "epoch": epoch + 1,
                    "step": step,
                    "loss": float(np.dot(losses, sizes) / max(sum(sizes), 1)),
                }
            )
            if step >= total:
                break
        head.eval()
        backbone.eval()
        with torch.no_grad():
            used = torch.from_numpy(data.items())
            head.finish(lambda: features_of(backbone, used, config.batch_size))
        return history


@torch.no_grad()
def features_of(backbone: Backbone, items: Tensor, chunk: int) -> Tensor:
    parts = [backbone.features(items[s : s + chunk]) for s in range(0, len(items), chunk)]
    return torch.cat(parts) if parts else torch.empty(0, backbone.dim)


__all__ = ["Progress", "TrainConfig", "batches", "features_of", "n_examples", "pair_batch", "train"]
