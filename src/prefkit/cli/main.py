"""Entry point of the `prefkit` command.

User errors (:class:`~prefkit.errors.PrefkitError`) print one clear line and exit 2, with
no traceback; ``PREFKIT_DEBUG=1`` shows the traceback for bug reports.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from prefkit import __version__
from prefkit.errors import PrefkitError

EXIT_USER_ERROR = 2


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PrefkitError as exc:
            if os.environ.get("PREFKIT_DEBUG"):
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(EXIT_USER_ERROR)


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="prefkit")
def cli() -> None:
    """prefkit: load, inspect, curate and learn from preference data.

    \b
    Example:
      prefkit synth --kind pairwise --n-prompts 500 data/sim
      prefkit info data/sim
      prefkit convert data/sim pairs.jsonl --to trl --ties drop --annotators majority
    """


def _register() -> None:
    from prefkit.cli import arena, curate, data, export, inspect, rm, synth, train

    commands = (*data.COMMANDS, synth.synth, arena.arena, inspect.inspect_cmd)
    for command in (*commands, curate.curate, export.export_cmd, rm.rm, train.train):
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="prefkit")
