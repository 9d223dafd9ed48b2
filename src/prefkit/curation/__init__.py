"""Curation: `Dataset -> Dataset` steps recorded in the lineage, alone or in YAML recipes."""

from prefkit.curation.cascade import drop_rows
from prefkit.curation.recipe import parse_recipe, run_recipe
from prefkit.curation.step import STEPS, Outcome, Param, Step, apply, get_step, register, run_step

__all__ = [
    "STEPS",
    "Outcome",
    "Param",
    "Step",
    "apply",
    "drop_rows",
    "get_step",
    "parse_recipe",
    "register",
    "run_recipe",
    "run_step",
]
