"""The head registry: what every reward/preference head implements, and the batches it reads.

A *head* maps backbone features ``x`` (``(N, D)`` float tensors, one row per response)
to rewards or preference probabilities and owns its training objective. Heads read one
of three batch kinds, named by ``Head.kind``:

* ``pairs``: :class:`PairBatch`, one row per judgment (``bt``, ``ties``, ``robust``,
  ``gpm``, ``pal``);
* ``lists``: :class:`ListBatch`, ranked items with tiers (``pl``);
* ``items``: :class:`ItemBatch`, responses with attribute ratings (``attr``).

The registry (:data:`HEADS`) is the only list of head names: the CLI's ``--head``
choices, the docs table and the contract tests are derived from it. Each head class
declares its hyper-parameters in ``params`` (name -> :class:`HeadParam`), its paper in
``paper`` and a one-line ``summary``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from prefkit.errors import PrefkitError
from prefkit.models.heads import HEAD_MODULES

KINDS = ("pairs", "lists", "items")


@dataclass(frozen=True)
class HeadParam:
    """One hyper-parameter of a head: its type, default, help text and, for a string
    parameter with a fixed set of values, its ``choices``."""

    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    def parse(self, head: str, name: str, value: Any) -> Any:
        if isinstance(value, str) and self.type is not str:
            try:
                value = (
                    {"true": True, "false": False}[value.lower()]
                    if self.type is bool
                    else self.type(value)
                )
            except (ValueError, KeyError):
                raise PrefkitError(
                    f"head {head!r}: parameter {name!r} must be a {self.type.__name__}, got {value!r}"
                ) from None
        if self.choices and value not in self.choices:
            raise PrefkitError(
                f"head {head!r}: {name} must be one of {', '.join(self.choices)}, got {value!r}"
            )
        return self.type(value)


@dataclass
class PairBatch:
    """Judgments: features of both sides and the labels (all tensors have B rows)."""

    xa: Tensor  # (B, D)
    xb: Tensor  # (B, D)
    outcome: Tensor  # (B,) float: +1 a preferred, -1 b preferred, 0 tie
    strength: Tensor  # (B,) float, NaN where absent
    annotator: Tensor  # (B,) long, -1 where unknown
    weight: Tensor  # (B,) float, 1 unless the caller reweights


@dataclass
class ListBatch:
    """Ranked lists flattened: item ``i`` is in list ``list_id[i]`` at ``tier[i]`` (1 best)."""

    x: Tensor  # (L, D)
    list_id: Tensor  # (L,) long, 0..n_lists-1 within the batch
    tier: Tensor  # (L,) long


@dataclass
class ItemBatch:
    """Responses with attribute ratings (``targets`` is NaN where a rating is missing)."""

    x: Tensor  # (N, D)
    targets: Tensor  # (N, K)


class Head(nn.Module):
    """Base class: subclasses set the class attributes and implement ``reward`` and ``loss``.

    ``prob`` defaults to Bradley–Terry on the rewards; heads whose preferences are not a
    difference of rewards (``gpm``, ``pal``) override it.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "pairs"
    paper: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[Mapping[str, HeadParam]] = {}
    #: True when the head models ties (accuracy then also reports 3-way tie accuracy).
    predicts_ties: ClassVar[bool] = False
    #: True when rewards depend on the annotator (``pal``).
    per_annotator: ClassVar[bool] = False

    def __init__(self, dim: int, n_annotators: int = 0, n_attributes: int = 0, **params: Any):
        super().__init__()
        self.dim = dim
        self.n_annotators = n_annotators
        self.n_attributes = n_attributes
        self.hparams = resolve_params(type(self), params)

    def reward(self, x: Tensor, annotator: Tensor | None = None) -> Tensor:
        """Scalar reward per row of ``x`` ``(N, D) -> (N,)``."""
        raise NotImplementedError

    def prob(self, xa: Tensor, xb: Tensor, annotator: Tensor | None = None) -> Tensor:
        """P(a preferred to b) ``(B,)``; for tie heads, given that the pair is decisive."""
        return torch.sigmoid(self.reward(xa, annotator) - self.reward(xb, annotator))

    def tie_prob(self, xa: Tensor, xb: Tensor, annotator: Tensor | None = None) -> Tensor:
        """P(tie) ``(B,)``; zero for heads that do not model ties."""
        return torch.zeros(xa.shape[0], dtype=xa.dtype, device=xa.device)

    def loss(self, batch: Any) -> Tensor:
        """Mean training loss of one batch of this head's ``kind``."""
        raise NotImplementedError

    @property
    def reads_ties(self) -> bool:
        """Whether the training loss reads tie judgments (else they are skipped)."""
        return self.predicts_ties

    def finish(self, features: Callable[[], Tensor]) -> None:
        """Called once after training; ``features()`` computes the training items' features
        (a full backbone pass, so only heads that need them call it; default: nothing)."""

    def config(self) -> dict[str, Any]:
        return {
            "head": self.name,
            "dim": self.dim,
            "n_annotators": self.n_annotators,
            "n_attributes": self.n_attributes,
            "params": dict(self.hparams),
        }


HEADS: dict[str, type[Head]] = {}


def register(cls: type[Head]) -> type[Head]:
    """Class decorator adding a head to :data:`HEADS` (names must be unique)."""
    if cls.name in HEADS:
        raise ValueError(f"head {cls.name!r} registered twice")
    if cls.kind not in KINDS:
        raise ValueError(f"head {cls.name!r}: kind must be one of {KINDS}")
    HEADS[cls.name] = cls
    return cls


def load_heads() -> dict[str, type[Head]]:
    """Import every head module (each registers itself) and return the registry, in
    :data:`HEAD_MODULES` order (whatever order the modules were first imported in),
    followed by any head registered from elsewhere."""
    for module in HEAD_MODULES:
        importlib.import_module(f"prefkit.models.heads.{module}")
    ordered = {name: HEADS[name] for name in HEAD_MODULES}
    return ordered | {k: v for k, v in HEADS.items() if k not in ordered}


def get_head(name: str) -> type[Head]:
    heads = load_heads()
    if name not in heads:
        raise PrefkitError(f"unknown head {name!r}; choose one of: {', '.join(heads)}")
    return heads[name]


def resolve_params(cls: type[Head], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``given``, each parsed to its declared type."""
    unknown = sorted(set(given) - set(cls.params))
    if unknown:
        known = ", ".join(cls.params) or "none"
        raise PrefkitError(f"head {cls.name!r} has no parameter {unknown[0]!r} (it takes: {known})")
    return {
        k: (p.parse(cls.name, k, given[k]) if k in given else p.default)
        for k, p in cls.params.items()
    }


def build_head(
    name: str, dim: int, n_annotators: int = 0, n_attributes: int = 0, **params: Any
) -> Head:
    return get_head(name)(dim, n_annotators=n_annotators, n_attributes=n_attributes, **params)


__all__ = [
    "HEADS",
    "Head",
    "HeadParam",
    "ItemBatch",
    "ListBatch",
    "PairBatch",
    "build_head",
    "get_head",
    "load_heads",
    "register",
    "resolve_params",
]
