"""`RewardModel`: a backbone and a head, fitted on a dataset, saved as safetensors + JSON.

Follows the scikit-learn contract: hyper-parameters in ``__init__``, ``fit(data)``
returns ``self``, learned state in attributes ending in ``_``. ``fit`` accepts a
:class:`~prefkit.Dataset` or the :class:`~prefkit.models.data.PrefData` made from one.

A checkpoint directory holds ``config.json`` (head, backbone, training settings, the
annotators and attribute names the head was fitted with, the loss history),
``head.safetensors`` and, for a fine-tuned backbone, ``backbone/`` (transformers
``save_pretrained`` output, safetensors). Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from prefkit import __version__
from prefkit.dataset import Dataset
from prefkit.errors import PrefkitError
from prefkit.models.backbones import Backbone, backbone_from_config, build_backbone, parse_spec
from prefkit.models.data import PROMPT_CHARS, Pairs, PrefData, from_dataset
from prefkit.models.heads.base import Head, build_head, get_head
from prefkit.training.rm import Progress, TrainConfig, features_of, train

CONFIG = "config.json"
HEAD_WEIGHTS = "head.safetensors"
BACKBONE_DIR = "backbone"
#: Training defaults per backbone kind: a frozen head trains fast, fine-tuning is slow.
DEFAULTS = {
    "frozen": TrainConfig(),
    "encoder": TrainConfig(epochs=2, batch_size=16, lr=1e-3, backbone_lr=3e-5),
    "causal": TrainConfig(epochs=1, batch_size=8, lr=1e-3, backbone_lr=1e-5),
}


def known_annotators(data: PrefData) -> PrefData:
    """``data`` with only the annotators that have judgments in it, renumbered, so a
    per-annotator head never treats someone it has not trained on (e.g. an annotator
    whose judgments all sit in a held-out fold) as known."""
    ann = data.pairs.annotator
    used = np.unique(ann[ann >= 0])
    if len(used) == len(data.annotators):
        return data
    remap = np.full(len(data.annotators) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    pairs = replace(data.pairs, annotator=remap[ann])  # -1 indexes the last slot: -1
    return replace(data, pairs=pairs, annotators=data.annotators[used])


class RewardModel:
    """A reward or preference model; see the module docstring.

    Parameters
    ----------
    head
        A name from :data:`prefkit.models.heads.base.HEADS` (``bt``, ``ties``, ``pl``,
        ``gpm``, ``pal``, ``attr``, ``robust``).
    backbone
        ``frozen[:PATH]``, ``encoder[:PATH]`` or ``causal:PATH``, or a
        :class:`~prefkit.models.backbones.Backbone` instance (e.g. an
        :class:`~prefkit.models.backbones.ArrayBackbone` over your own features).
    head_params
        The head's hyper-parameters (see ``prefkit rm heads``).
    quantize, max_length
        Frozen encoder options (quantization mode, token limit).
    prompt_chars
        Characters of the prompt's end the backbone reads before each response.
    epochs, batch_size, lr, backbone_lr, weight_decay, max_steps, seed
        Training settings; ``None`` takes the backbone kind's default (``max_steps`` caps
        the optimizer steps over all epochs; 0 = no cap).
    cache_dir
        Embedding cache root for frozen features (default ``~/.cache/prefkit``).
    """

    def __init__(
        self,
        head: str = "bt",
        backbone: str | Backbone = "frozen",
        *,
        head_params: dict[str, Any] | None = None,
        quantize: str = "none",
        max_length: int = 256,
        prompt_chars: int = PROMPT_CHARS,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        backbone_lr: float | None = None,
        weight_decay: float | None = None,
        max_steps: int | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ):
        self.head = head
        self.backbone = backbone
        self.head_params = dict(head_params or {})
        self.quantize = quantize
        self.max_length = max_length
        self.prompt_chars = prompt_chars
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.backbone_lr = backbone_lr
        self.weight_decay = weight_decay
        self.max_steps = max_steps
        self.seed = seed
        self.cache_dir = cache_dir
        get_head(head)  # fail early on an unknown head name
        for name, value, low in (
            ("epochs", epochs, 1),
            ("batch_size", batch_size, 1),
            ("max_steps", max_steps, 0),
        ):
            if value is not None and value < low:
                raise PrefkitError(f"{name} must be at least {low}, got {value}")

    # --- fitting ----------------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        kind = (
            self.backbone.kind
            if isinstance(self.backbone, Backbone)
            else parse_spec(self.backbone)[0]
        )
        base = DEFAULTS.get(kind, TrainConfig())
        over = {
            k: v
            for k, v in {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "lr": self.lr,
                "backbone_lr": self.backbone_lr,
                "weight_decay": self.weight_decay,
                "max_steps": self.max_steps,
            }.items()
            if v is not None
        }
        return TrainConfig(**{**base.to_dict(), **over, "seed": self.seed})

    def prepare(self, data: Dataset | PrefData) -> PrefData:
        return (
            data
            if isinstance(data, PrefData)
            else from_dataset(data, prompt_chars=self.prompt_chars)
        )

    def fit(
        self,
        data: Dataset | PrefData,
        *,
        progress: Progress | None = None,
        embed_progress: Any = None,
    ) -> RewardModel:
        """Train on every label of ``data`` the head can read."""
        data = known_annotators(self.prepare(data))
        torch.manual_seed(self.seed)
        bb = (
            self.backbone
            if isinstance(self.backbone, Backbone)
            else build_backbone(
                self.backbone,
                quantize=self.quantize,
                max_length=self.max_length,
                cache_dir=self.cache_dir,
            )
        )
        bb.bind(data.texts, embed_progress)
        head = build_head(
            self.head,
            bb.dim,
            n_annotators=len(data.annotators),
            n_attributes=len(data.attribute_names),
            **self.head_params,
        )
        config = self.train_config()
        self.history_ = train(head, bb, data, config, progress)
        self.head_: Head = head
        self.backbone_: Backbone = bb
        self.annotators_ = list(data.annotators)
        self.attribute_names_ = list(data.attribute_names)
        self.train_config_ = config
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise PrefkitError("the reward model is not fitted: call fit() or RewardModel.load()")

    # --- prediction -------------------------------------------------------------------------
    @torch.no_grad()
    def features(
        self, data: PrefData, items: np.ndarray | None = None, progress: Any = None
    ) -> torch.Tensor:
        """Backbone features of ``items`` (default: every response of ``data``)."""
        self._check_fitted()
        self.backbone_.bind(data.texts, progress)
        idx = np.arange(data.n_responses) if items is None else items
        return features_of(self.backbone_, torch.from_numpy(idx), 256)

    def annotator_index(self, data: PrefData, annotator: np.ndarray) -> torch.Tensor:
        """Map ``data``'s annotator indices to the ones the head was fitted with (-1: new)."""
        known = {a: i for i, a in enumerate(self.annotators_)}
        names = [*data.annotators, None]  # index -1 is an unknown annotator
        return torch.tensor([known.get(names[i], -1) for i in annotator], dtype=torch.long)

    @torch.no_grad()
    def rewards(
        self, data: Dataset | PrefData, progress: Any = None, x: torch.Tensor | None = None
    ) -> np.ndarray:
        """One scalar reward per response of ``data`` (the population reward for
        per-annotator heads); ``x``: the responses' features when already computed."""
        data = self.prepare(data)
        x = self.features(data, progress=progress) if x is None else x
        return self.head_.reward(x).double().numpy()

    @torch.no_grad()
    def pair_features(
        self, data: PrefData, pairs: Pairs, x: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of both sides of each judgment ``((n, D), (n, D))``, taken from ``x``
        (every response's features) when given; else each distinct judged response goes
        through the backbone once."""
        if x is not None:
            return x[torch.from_numpy(pairs.a)], x[torch.from_numpy(pairs.b)]
        items, inv = np.unique(np.concatenate([pairs.a, pairs.b]), return_inverse=True)
        x = self.features(data, items)
        n = len(pairs)
        return x[torch.from_numpy(inv[:n])], x[torch.from_numpy(inv[n:])]

    @torch.no_grad()
    def pair_probs(
        self, data: PrefData, pairs: Pairs | None = None, x: torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(P(a ≻ b | decisive), P(tie))`` for each judgment, with annotator-specific
        preferences where the head has them (``x`` as in :meth:`pair_features`)."""
        pairs = data.pairs if pairs is None else pairs
        xa, xb = self.pair_features(data, pairs, x)
        ann = self.annotator_index(data, pairs.annotator) if self.head_.per_annotator else None
        p = self.head_.prob(xa, xb, ann).double().numpy()
        t = self.head_.tie_prob(xa, xb, ann).double().numpy()
        return p, t

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the checkpoint directory (atomically)."""
        self._check_fitted()
        path = Path(path)
        if path.exists() and not overwrite:
            raise PrefkitError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            state = {k: v.detach().contiguous() for k, v in self.head_.state_dict().items()}
            save_file(state, str(tmp / HEAD_WEIGHTS))
            self.backbone_.save_weights(tmp / BACKBONE_DIR)
            cfg = {
                "prefkit_version": __version__,
                "head": self.head_.config(),
                "backbone": self.backbone_.config(),
                "train": self.train_config_.to_dict(),
                "prompt_chars": self.prompt_chars,
                "annotators": self.annotators_,
                "attribute_names": self.attribute_names_,
                "history": self.history_,
            }
            (tmp / CONFIG).write_text(json.dumps(cfg, indent=2))
            if path.exists():  # overwrite: swap the old checkpoint aside, then delete it
                old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(path, old)
                shutil.rmtree(old)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, *, cache_dir: str | Path | None = None) -> RewardModel:
        """Read a checkpoint written by :meth:`save`."""
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise PrefkitError(f"{path}: not a prefkit reward model (no {CONFIG})")
        try:
            return cls._load(path, json.loads((path / CONFIG).read_text()), cache_dir)
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise PrefkitError(
                f"{path}: not a valid prefkit reward model checkpoint ({type(e).__name__}: {e})"
            ) from None

    @classmethod
    def _load(cls, path: Path, cfg: dict[str, Any], cache_dir: str | Path | None) -> RewardModel:
        h, b = cfg["head"], cfg["backbone"]
        spec = b["kind"] + (f":{b['path']}" if b.get("path") else "")
        model = cls(
            h["head"],
            spec,
            head_params=h["params"],
            quantize=b.get("quantize", "none"),
            max_length=b.get("max_length", 256),
            prompt_chars=cfg["prompt_chars"],
            cache_dir=cache_dir,
            **{
                k: cfg["train"][k]
                for k in (
                    "epochs",
                    "batch_size",
                    "lr",
                    "backbone_lr",
                    "weight_decay",
                    "max_steps",
                    "seed",
                )
            },
        )
        head = build_head(
            h["head"],
            h["dim"],
            n_annotators=h["n_annotators"],
            n_attributes=h["n_attributes"],
            **h["params"],
        )
        head.load_state_dict(load_file(str(path / HEAD_WEIGHTS)))
        head.eval()
        model.head_ = head
        model.backbone_ = backbone_from_config(b, path / BACKBONE_DIR, cache_dir)
        model.backbone_.eval()
        model.annotators_ = cfg["annotators"]
        model.attribute_names_ = cfg["attribute_names"]
        model.history_ = cfg["history"]
        model.train_config_ = TrainConfig(**cfg["train"])
        return model


__all__ = ["RewardModel"]
