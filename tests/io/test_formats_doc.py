"""docs/formats.md: its format table is the registry, and every format has its page."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefkit.io.formats.base import REGISTRY
from prefkit.io.formats_doc import DOC, END, START, committed_index, render_index, update

REPO = Path(__file__).resolve().parents[2]
FORMATS_MD = REPO / "docs" / "formats.md"


def test_doc_path_is_the_checkout_file() -> None:
    assert DOC == FORMATS_MD


def test_committed_table_matches_registry() -> None:
    committed = committed_index(FORMATS_MD.read_text(encoding="utf-8"))
    assert committed == render_index(), (
        "docs/formats.md is out of date: run `python -m prefkit.io.formats_doc`"
    )


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_format_has_a_page_and_a_row(name: str) -> None:
    assert (REPO / "docs" / "formats" / f"{name}.md").is_file()
    assert f"[`{name}`](formats/{name}.md)" in render_index()


def test_no_page_without_a_format() -> None:
    pages = {p.stem for p in (REPO / "docs" / "formats").glob("*.md")}
    assert pages == set(REGISTRY)


def test_table_rows_follow_registry() -> None:
    rows = [line for line in render_index().splitlines() if line.startswith("| [`")]
    assert len(rows) == len(REGISTRY)
    for line, name in zip(rows, sorted(REGISTRY), strict=True):
        fmt = REGISTRY[name]
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[1] == ", ".join(fmt.kinds)
        assert cells[3] == ("yes" if fmt.write is not None else "no")
        assert "<" not in cells[4]  # no raw HTML from summaries such as answer_<M1>


def test_index_links_the_data_model_and_has_the_sections() -> None:
    text = FORMATS_MD.read_text(encoding="utf-8")
    assert "(data-model.md" in text
    for heading in (
        "## Auto-detection",
        "## Bad input",
        "## Hub datasets",
        "## Choosing a policy when writing pairs",
    ):
        assert heading in text


def test_update_rewrites_only_the_marked_block(tmp_path: Path) -> None:
    doc = tmp_path / "formats.md"
    doc.write_text(f"# Title\n\nbefore\n\n{START}\nstale\n{END}\n\nafter\n", encoding="utf-8")
    assert update(doc) is True
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n\n")
    assert text.endswith("\n\nafter\n")
    assert committed_index(text) == render_index()
    assert update(doc) is False  # idempotent


def test_missing_markers_is_an_error(tmp_path: Path) -> None:
    doc = tmp_path / "formats.md"
    doc.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="formats:start"):
        update(doc)
