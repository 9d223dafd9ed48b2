"""Contract every registered loss must meet (shape, finiteness, gradients, parameters)."""

from __future__ import annotations

import re

import pytest
import torch
from losscases import inputs_for

from prefkit.errors import PrefkitError
from prefkit.losses.base import all_losses, get

NAMES = list(all_losses())


def test_registry_has_every_module_loaded() -> None:
    expected = {"dpo", "cdpo", "rdpo", "ipo", "hinge", "dpo_norm", "simpo", "orpo", "mapo"}
    expected |= {"soft", "gdpo", "pl", "lipo", "rankdpo", "nll", "selm"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_per_example_finite_and_differentiable(name: str) -> None:
    loss = get(name)
    x = inputs_for(loss, grad=True)
    out = loss.fn(x, **loss.resolve({}))
    b = x.logps.shape[0] if loss.kind == "lists" else x.chosen_logps.shape[0]  # type: ignore[union-attr]
    assert out.shape == (b,)
    assert torch.isfinite(out).all()
    out.sum().backward()
    policy = x.logps if loss.kind == "lists" else x.chosen_logps  # type: ignore[union-attr]
    assert policy.grad is not None and torch.isfinite(policy.grad).all()
    assert policy.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name: str) -> None:
    loss = get(name)
    assert loss.summary and "\n" not in loss.formula
    assert re.search(r"20\d\d", loss.paper)
    assert loss.kind in ("pairs", "lists")
    assert not (loss.kind == "lists" and not loss.reference)


@pytest.mark.parametrize("name", NAMES)
def test_params_resolve_and_refuse_bad_values(name: str) -> None:
    loss = get(name)
    assert loss.resolve({}) == {k: p.default for k, p in loss.params.items()}
    with pytest.raises(PrefkitError, match="has no parameter"):
        loss.resolve({"no_such_param": 1.0})
    for k, p in loss.params.items():
        assert loss.resolve({k: str(p.default)})[k] == p.default  # numbers given as text
        with pytest.raises(PrefkitError, match="must be a number"):
            loss.resolve({k: "abc"})
        with pytest.raises(PrefkitError, match="finite"):
            loss.resolve({k: float("nan")})
        lo = float(p.domain[1:-1].split(",")[0])
        bad = lo if p.domain.startswith("(") else lo - 1
        with pytest.raises(PrefkitError, match="must lie in"):
            loss.resolve({k: bad})


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [("rdpo", "eps", 0.5), ("cdpo", "eps", 0.6), ("dpo", "beta", -1.0), ("ipo", "beta", 0.0)],
)
def test_upper_and_named_bounds(name: str, param: str, value: float) -> None:
    with pytest.raises(PrefkitError, match=param):
        get(name).resolve({param: value})


def test_unknown_loss_is_a_user_error() -> None:
    with pytest.raises(PrefkitError, match="unknown loss"):
        get("dpo2")
