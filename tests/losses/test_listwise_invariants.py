"""List losses ignore padding and the order of items (tolerance 1e-12, float64)."""

from __future__ import annotations

import pytest
import torch
from losscases import D, lists

from prefkit.losses.base import ListInputs, get

LIST_LOSSES = ["pl", "lipo", "rankdpo"]


def call(name: str, x: ListInputs) -> torch.Tensor:
    loss = get(name)
    return loss.fn(x, **loss.resolve({"beta": 0.7}))


def pad(x: ListInputs, extra: int, seed: int) -> ListInputs:
    """Append ``extra`` padded items holding garbage (huge rewards and scores)."""
    g = torch.Generator().manual_seed(seed)
    b = x.logps.shape[0]

    def junk(scale: float) -> torch.Tensor:
        return scale * torch.randn(b, extra, generator=g, dtype=D)

    return ListInputs(
        torch.cat([x.logps, junk(50.0)], 1),
        torch.cat([x.ref_logps, junk(50.0)], 1),  # type: ignore[list-item]
        torch.cat([x.lengths, torch.ones(b, extra, dtype=D)], 1),
        torch.cat([x.scores, junk(5.0)], 1),
        torch.cat([x.mask, torch.zeros(b, extra, dtype=torch.bool)], 1),
    )


def permute(x: ListInputs, seed: int) -> ListInputs:
    g = torch.Generator().manual_seed(seed)
    k = x.logps.shape[1]
    perm = torch.stack([torch.randperm(k, generator=g) for _ in range(x.logps.shape[0])])

    def take(v: torch.Tensor) -> torch.Tensor:
        return torch.gather(v, 1, perm)

    return ListInputs(
        take(x.logps),
        take(x.ref_logps),
        take(x.lengths),
        take(x.scores),
        take(x.mask),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", LIST_LOSSES)
def test_padding_changes_nothing(name: str) -> None:
    x = lists(seed=11)
    base = call(name, x)
    for extra in (1, 3):
        padded = pad(x, extra, seed=extra)
        torch.testing.assert_close(call(name, padded), base, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", LIST_LOSSES)
def test_padding_gets_no_gradient(name: str) -> None:
    x = pad(lists(seed=12), 2, seed=0)
    x.logps.requires_grad_(True)
    call(name, x).sum().backward()
    assert x.logps.grad is not None
    assert torch.isfinite(x.logps.grad).all()
    assert float(x.logps.grad[~x.mask].abs().sum()) == 0.0


@pytest.mark.parametrize("name", LIST_LOSSES)
def test_order_of_items_does_not_matter(name: str) -> None:
    x = lists(seed=13)  # integer scores 0..3: ties present
    assert (x.scores[:, :, None] == x.scores[:, None, :]).sum() > x.scores.numel()
    base = call(name, x)
    for seed in range(3):
        torch.testing.assert_close(call(name, permute(x, seed)), base, rtol=0, atol=1e-12)
