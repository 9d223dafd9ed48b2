"""Documentation generated from the head registry (docs/reward-models.md's heads table).

    python -c "from prefkit.models.doc import heads_table_markdown as t; print(t())"

A test checks that docs/reward-models.md holds the current table.
"""

from __future__ import annotations


def heads_table_markdown() -> str:
    """A Markdown table: head (linked to its page), what it reads, summary, parameters, paper."""
    from prefkit.models.heads.base import load_heads

    lines = [
        "| head | reads | what it models | parameters (default) | paper |",
        "|---|---|---|---|---|",
    ]
    for name, cls in load_heads().items():
        params = ", ".join(f"`{k}` ({p.default!r})" for k, p in cls.params.items()) or "—"
        cells = [f"[`{name}`](rm/{name}.md)", cls.kind, cls.summary, params, cls.paper]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["heads_table_markdown"]
