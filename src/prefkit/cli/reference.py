"""Generate docs/cli.md from the commands' own ``--help`` text.

    python -m prefkit.cli.reference > docs/cli.md

A test regenerates it and compares, so the reference cannot drift from the code.
"""

from __future__ import annotations

import click
from click.testing import CliRunner

from prefkit.cli.main import cli

HEADER = """# CLI reference

Generated from `--help` by `python -m prefkit.cli.reference > docs/cli.md`; a test keeps
it in sync. Every command exits 0 on success, 1 when `validate` finds errors, and 2 on a
user error (bad input, bad option), printing one line that names the file, line and field.
"""


def _help(args: list[str]) -> str:
    # Through the real entry point, so context settings (-h) apply as for users.
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="prefkit", terminal_width=100)
    return result.output.rstrip("\n")


def render_reference() -> str:
    parts = [HEADER, "## prefkit\n", "```text", _help([]), "```\n"]
    for name in sorted(cli.commands):
        parts += [f"## prefkit {name}\n", "```text", _help([name]), "```\n"]
        group = cli.commands[name]
        if isinstance(group, click.Group):  # e.g. curate: one sub-command per step
            for sub in group.list_commands(click.Context(group)):
                parts += [f"### prefkit {name} {sub}\n", "```text", _help([name, sub]), "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render_reference(), end="")
