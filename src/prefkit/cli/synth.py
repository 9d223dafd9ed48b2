"""`prefkit synth`: write a simulated dataset. One flag per SynthConfig field, derived
from the dataclass so the CLI and the Python API cannot drift apart."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import click

from prefkit.cli.data import dataclass_option
from prefkit.synth import SynthConfig, simulate


def _parse_tuple(kind: type) -> Any:
    def parse(value: str | None) -> Any:
        if value is None or value == "":
            return ()
        return tuple(kind(v.strip()) for v in value.split(","))

    return parse


def _build() -> click.Command:
    hints = typing.get_type_hints(SynthConfig)
    fields = dataclasses.fields(SynthConfig)

    @click.argument("output")
    @click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
    def synth(output: str, overwrite: bool, **values: Any) -> None:
        """Write a simulated preference dataset with planted ground truth to OUTPUT.

        Every planted value (the configuration, true rewards, flipped labels, duplicate
        groups, annotator groups, cyclic triads, model skills) is written to the manifest.

        \b
        Examples:
          prefkit synth --kind pairwise --n-prompts 1000 --flip-rate 0.1 sim/
          prefkit synth --kind battles --n-models 8 --seed 1 arena_sim/
        """
        for f in fields:
            if typing.get_origin(hints[f.name]) is tuple:
                args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
                values[f.name] = _parse_tuple(args[0] if args else str)(values[f.name])
        ds = simulate(SynthConfig(**values))
        ds.save(output, overwrite=overwrite)
        counts = ", ".join(f"{v:,} {k}" for k, v in ds.counts().items() if v)
        click.echo(f"wrote {output}: {counts}")

    for f in reversed(fields):
        synth = dataclass_option(f, hints[f.name])(synth)
    return click.command("synth")(synth)


synth = _build()
