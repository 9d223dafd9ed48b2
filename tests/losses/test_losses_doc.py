"""docs/dpo/losses.md stays in step with the registry."""

from __future__ import annotations

from pathlib import Path

from prefkit.losses.base import all_losses
from prefkit.losses.doc import losses_table_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "dpo" / "losses.md"
START, END = "<!-- losses-table:start -->\n", "<!-- losses-table:end -->"


def test_doc_table_equals_generated_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    pasted = text.split(START, 1)[1].split(END, 1)[0]
    assert pasted == losses_table_markdown()


def test_doc_has_a_section_with_the_registry_text_of_every_loss() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, loss in all_losses().items():
        section = text.split(f"\n## `{name}`\n", 1)[1].split("\n## ", 1)[0]
        assert loss.formula in section
        assert loss.paper in section
        assert loss.summary in section
        if loss.notes:
            assert loss.notes in section


def test_table_has_one_row_per_loss() -> None:
    rows = losses_table_markdown().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == list(all_losses())
