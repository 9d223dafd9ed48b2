"""YAML recipes: a list of curation steps run in order, reproducibly.

    steps:
      - dedup: {near: true}
      - filter: {expr: "length_ratio < 3"}
      - step: split            # the same, written with an explicit key
        by: prompt

Running a recipe twice on the same input gives the same output fingerprint: every step
is deterministic given its parameters (seeds are parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from prefkit.curation.step import Outcome, get_step, run_step
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

Recipe = list[tuple[str, dict[str, Any]]]


def parse_recipe(source: str | Path | Sequence[Any] | Mapping[str, Any]) -> Recipe:
    """``(step, params)`` pairs from a YAML file, YAML text, or the parsed structure;
    every step name and parameter is checked before anything runs."""
    where = "recipe"
    data: Any = source
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and Path(source).is_file()
    ):
        where = str(source)
        try:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PrefkitError(f"{where}: not valid YAML: {exc}") from None
    elif isinstance(source, str):
        data = yaml.safe_load(source)
    if isinstance(data, Mapping):
        data = data.get("steps")
    if not isinstance(data, list) or not data:
        raise PrefkitError(f"{where}: expected a non-empty list of steps under 'steps:'")
    recipe: Recipe = []
    for i, item in enumerate(data, 1):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, Mapping) and "step" in item:
            name, params = str(item["step"]), {k: v for k, v in item.items() if k != "step"}
        elif isinstance(item, Mapping) and len(item) == 1:
            name, params = next(iter(item.items()))
            params = params or {}
        else:
            raise PrefkitError(f"{where}: step {i}: expected 'name: {{params}}' or 'step: name'")
        if not isinstance(params, Mapping):
            raise PrefkitError(f"{where}: step {i} ({name}): parameters must be a mapping")
        try:
            get_step(str(name)).resolve(params)
        except PrefkitError as exc:
            raise PrefkitError(f"{where}: step {i}: {exc}") from None
        recipe.append((str(name), dict(params)))
    return recipe


def run_recipe(
    ds: Dataset,
    recipe: str | Path | Sequence[Any] | Mapping[str, Any],
    on_step: Callable[[int, str, Dataset, Outcome], None] | None = None,
) -> Dataset:
    """Run every step of ``recipe`` on ``ds`` in order; ``on_step(i, name, new, outcome)``
    is called after each (the CLI reports progress and writes reports with it)."""
    for i, (name, params) in enumerate(parse_recipe(recipe), 1):
        ds, outcome = run_step(ds, name, **params)
        if on_step:
            on_step(i, name, ds, outcome)
    return ds


__all__ = ["Recipe", "parse_recipe", "run_recipe"]
