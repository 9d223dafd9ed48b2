"""What every objective reads (:class:`PairInputs`, :class:`ListInputs`) and the registry.

A loss is registered with :func:`register` and looked up with :func:`get`; its
hyper-parameters (``beta`` and the like) are declared in :class:`LossParam` entries, so
the trainer, the CLI and the docs read the same defaults.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

from prefkit.errors import PrefkitError
from prefkit.losses import LOSS_MODULES


@dataclass(frozen=True)
class PairInputs:
    """One batch of pairs; every tensor has shape ``(B,)`` (float).

    ``*_logps`` are summed token log-probs of the completion given the prompt;
    ``ref_*`` are ``None`` for reference-free losses. ``*_len`` are completion token
    counts (>= 1). ``strength`` is the probability that ``chosen`` is preferred (soft
    label in [0, 1]; 1.0 when the data has none).
    """

    chosen_logps: Tensor
    rejected_logps: Tensor
    ref_chosen_logps: Tensor | None
    ref_rejected_logps: Tensor | None
    chosen_len: Tensor
    rejected_len: Tensor
    strength: Tensor


@dataclass(frozen=True)
class ListInputs:
    """One batch of ranked lists; every tensor has shape ``(B, K)``.

    ``scores`` are relevance labels (higher is better; equal scores are ties), ``mask``
    is True where the item exists (lists shorter than ``K`` are padded). ``logps`` /
    ``ref_logps`` / ``lengths`` are as in :class:`PairInputs`.
    """

    logps: Tensor
    ref_logps: Tensor | None
    lengths: Tensor
    scores: Tensor
    mask: Tensor


@dataclass(frozen=True)
class LossParam:
    """One hyper-parameter of a loss: its default and help text (floats only).

    ``domain`` is the interval of allowed values in the usual notation, e.g.
    ``"(0, inf)"`` or ``"[0, 0.5)"``; empty means any finite number.
    """

    default: float
    help: str
    domain: str = ""

    def check(self, loss: str, name: str, value: float) -> None:
        """Raise :class:`PrefkitError` when ``value`` is outside :attr:`domain`."""
        if not math.isfinite(value):
            raise PrefkitError(f"loss {loss!r}: parameter {name!r} must be finite, got {value}")
        if not self.domain:
            return
        lo_s, hi_s = (t.strip() for t in self.domain[1:-1].split(","))
        lo, hi = float(lo_s), float(hi_s)
        ok_lo = value >= lo if self.domain[0] == "[" else value > lo
        ok_hi = value <= hi if self.domain[-1] == "]" else value < hi
        if not (ok_lo and ok_hi):
            raise PrefkitError(
                f"loss {loss!r}: parameter {name!r} must lie in {self.domain}, got {value}"
            )


@dataclass(frozen=True)
class Loss:
    """A registered objective.

    ``fn(inputs, **params) -> Tensor`` returns the per-example loss, shape ``(B,)``.
    ``kind`` says which inputs it reads; ``reference`` whether it needs reference
    log-probs; ``trl`` names TRL's ``loss_type`` that computes the same value (tests
    check the agreement), or ``None``. A ``mixin`` (an NLL term, an optimism bonus) is
    added to a main loss with a weight instead of being trained alone.
    """

    name: str
    fn: Callable[..., Tensor]
    kind: Literal["pairs", "lists"]
    reference: bool
    params: Mapping[str, LossParam]
    summary: str
    formula: str
    paper: str
    trl: str | None = None
    mixin: bool = False
    notes: str = ""
    reads_strength: bool = False

    def resolve(self, given: Mapping[str, Any]) -> dict[str, float]:
        """The loss's parameters: defaults overridden by ``given`` (unknown names refused)."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise PrefkitError(
                f"loss {self.name!r} has no parameter {', '.join(map(repr, unknown))} "
                f"(its parameters: {known})"
            )
        out = {k: p.default for k, p in self.params.items()}
        for k, v in given.items():
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                raise PrefkitError(
                    f"loss {self.name!r}: parameter {k!r} must be a number, got {v!r}"
                ) from None
        for k, p in self.params.items():
            p.check(self.name, k, out[k])
        return out


LOSSES: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    if loss.name in LOSSES:
        raise ValueError(f"loss {loss.name!r} registered twice")
    LOSSES[loss.name] = loss
    return loss


_LOADED: list[bool] = []


def _load() -> None:
    for mod in LOSS_MODULES:
        importlib.import_module(f"prefkit.losses.{mod}")
    _LOADED.append(True)


def all_losses() -> dict[str, Loss]:
    """Every registered loss, by name (importing the loss modules on first use)."""
    if not _LOADED:  # not ``if not LOSSES``: importing one module first fills it partly
        _load()
    return LOSSES


def get(name: str) -> Loss:
    losses = all_losses()
    if name not in losses:
        raise PrefkitError(f"unknown loss {name!r}; choose one of: {', '.join(losses)}")
    return losses[name]
