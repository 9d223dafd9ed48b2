"""`prefkit synth`: write a simulated dataset. One flag per SynthConfig field, derived
from the dataclass so the CLI and the Python API cannot drift apart."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import click

from prefkit.synth import SynthConfig, simulate


def _parse_tuple(kind: type) -> Any:
    def parse(value: str | None) -> Any:
        if value is None or value == "":
            return ()
        return tuple(kind(v.strip()) for v in value.split(","))

    return parse


def _option(f: dataclasses.Field[Any], hints: dict[str, Any]) -> Any:
    name = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    hint = hints[f.name]
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if f.metadata.get("choices"):
        return click.option(
            name,
            f.name,
            type=click.Choice(list(f.metadata["choices"])),
            default=default,
            show_default=True,
            help=help_text,
        )
    if hint is bool:
        return click.option(
            f"{name}/--no-{name[2:]}", f.name, default=default, show_default=True, help=help_text
        )
    if origin is tuple:
        shown = ",".join(str(x) for x in default) if default else ""
        return click.option(
            name,
            f.name,
            default=shown,
            show_default=bool(shown),
            metavar="A,B,...",
            help=f"{help_text} (comma-separated)",
        )
    base = args[0] if args else hint
    base = base if base in (int, float, str) else str
    return click.option(
        name, f.name, type=base, default=default, show_default=default is not None, help=help_text
    )


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
        synth = _option(f, hints)(synth)
    return click.command("synth")(synth)


synth = _build()
