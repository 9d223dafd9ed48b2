"""Documentation generated from the step registry (docs/curation.md's steps table).

    python -c "from prefkit.curation.doc import steps_table_markdown as t; print(t())"

A test checks that docs/curation.md holds the current table, so the docs list every
registered step with its parameters.
"""

from __future__ import annotations

from prefkit.curation.step import Param


def _default(p: Param) -> str:
    if p.required:
        return "required"
    if p.default is None or p.default == "":
        return "—"
    if isinstance(p.default, bool):
        return "yes" if p.default else "no"
    if isinstance(p.default, list | tuple):
        return ",".join(map(str, p.default))
    return str(p.default)


def steps_table_markdown() -> str:
    """A Markdown table: step (linked to its module's page), what it does, parameters."""
    import prefkit.curation.steps  # noqa: F401  (registers every step)
    from prefkit.curation.step import STEPS

    lines = ["| step | module | what it does | parameters (default) |", "|---|---|---|---|"]
    for step in STEPS.values():
        module = step.run.__module__.rsplit(".", 1)[-1]
        params = ", ".join(f"`{p.name}` ({_default(p)})" for p in step.params) or "—"
        summary = step.summary.replace("|", "\\|")
        lines.append(
            f"| `{step.name}` | [{module}](curation/{module}.md) | {summary} | "
            f"{params.replace('|', chr(92) + '|')} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["steps_table_markdown"]
