"""The inspect HTML report: a section per check, every plot kind drawn, text escaped,
nothing fetched, skipped checks listed, JSON round trip, and the docs table of checks."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from prefkit.diagnostics.findings import PLOT_KINDS, Finding, InspectReport, Plot, Table, skipped
from prefkit.report.inspect import checks_table_markdown, number, render_html, write_html

REPO = Path(__file__).resolve().parents[2]
EVIL = "<script>alert('x')</script>"


class Page(HTMLParser):
    """Headings, section ids, link targets, images and visible text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": [], "h4": []}
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.hrefs.append(a.get("href", ""))
        if tag == "img":
            self.images.append(a)
        if tag in self.headings:
            self._open.append(tag)
            self.headings[tag].append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open:
            self.headings[self._open[-1]][-1] += data


def _plot(kind: str) -> Plot:
    if kind == "hist":
        return Plot("hist", "Lengths $5 <b>", [0, 10, 20, 40], {"prompts": [3, 5, 1]}, "chars", "n")
    if kind == "bar":
        return Plot(
            "bar", "Per annotator", ["a1", EVIL, "a3"], {"agree": [0.9, 0.4, 0.7]}, reference=0.5
        )
    if kind == "line":
        return Plot(
            "line", "Longer wins by gap", [0.1, 0.5, 0.9], {"all": [0.5, 0.6, 0.8], "h": [0.5, 0.5, None]},
            reference=0.5,
        )  # fmt: skip
    return Plot("scatter", "Noise vs margin", [1, 2, 3, 4], {"j": [0.1, 0.4, 0.2, 0.9]})


def make_report() -> InspectReport:
    """Hand-built findings: every plot kind, tables, nested metrics, skips, hostile text.

    Check names are not in the registry, so sections take their first finding's title."""
    findings = [
        Finding(
            "xshape",
            "Shape",
            "info",
            "3 prompts, 6 responses.",
            metrics={"prompts": 3, "tie_rate": 0.25, "per_source": {"gpt-4": 2, EVIL: 4}},
            plots=[_plot("hist")],
        ),
        Finding(
            "xbias",
            "Length bias",
            "warning",
            f"The longer response wins 70% of the time {EVIL}.",
            metrics={"longer_wins": 0.7, "n": 1234, "buckets": [{"gap": "0-10", "rate": 0.6}]},
            plots=[_plot("line"), _plot("bar")],
            tables=[
                Table(
                    "Worst offenders",
                    ["judgment_id", "gap", "prompt"],
                    [["j1", 412, EVIL]],
                    "by gap",
                )
            ],
            ids={"judgment_id": ["j1", "j2"]},
        ),
        skipped("xbias", "Position bias", "order is not meaningful here"),
        Finding(
            "xnoise", "Label noise", "error", "A third look flipped.", plots=[_plot("scatter")]
        ),
        skipped("xagreement", "Agreement", "no item has several judges"),
    ]
    return InspectReport(
        dataset=f"data/{EVIL}",
        fingerprint="f" * 32,
        counts={"prompts": 3, "responses": 6, "judgments": 4, "rankings": 0, "annotators": 0},
        kinds=["pairwise"],
        findings=findings,
        seconds={"xshape": 0.01, "xbias": 0.02, "xnoise": 0.5, "xagreement": 0.0},
        options={"checks": ["xshape", "xbias", "xnoise", "xagreement"], "seed": 0},
    )


@pytest.fixture(scope="module")
def report() -> InspectReport:
    return make_report()


@pytest.fixture(scope="module")
def page_html(report: InspectReport) -> str:
    return render_html(report, title="inspect test")


def test_a_section_per_check_and_a_heading_per_finding(page_html: str) -> None:
    p = Page(page_html)
    h2 = p.headings["h2"]
    # badge text precedes each title inside the heading
    assert [h for h in h2 if h.endswith(("Shape", "Length bias", "Label noise"))] == [
        "infoShape",
        "warningLength bias",
        "errorLabel noise",
    ]
    assert "Contents" in h2 and "Not applicable to this dataset" in h2
    # a check whose only finding is skipped gets no section, only a row with the reason
    assert not any(h.endswith("Agreement") for h in h2)
    assert "no item has several judges" in page_html
    # the skipped finding of an active check is one compact line in its section
    assert re.search(
        r'class="skipline">.*?Position bias</b>: order is not meaningful here', page_html
    )
    assert {"check-xshape", "check-xbias", "check-xnoise", "skip-check-xagreement"} <= set(p.ids)
    # every table-of-contents link lands somewhere
    for href in p.hrefs:
        assert href.startswith("#") and href[1:] in p.ids, href


def test_summary_cards_show_counts_severities_and_the_worst(page_html: str) -> None:
    top = page_html[: page_html.index("<nav>")]
    for label in ("dataset", "prompts", "responses", "judgments", "worst severity"):
        assert f">{label}</span>" in top
    assert ">rankings<" not in top  # empty tables stay out of the summary
    assert re.search(r'worst severity</span><b style="[^"]+">error</b>', top)
    assert "findings (5) in 4 checks" in top


def test_every_text_is_escaped_and_the_page_runs_no_script(page_html: str) -> None:
    p = Page(page_html)
    assert "script" not in p.tags
    assert "<script" not in page_html
    assert page_html.count("&lt;script&gt;") >= 4  # verdict, table cell, metric key, dataset
    assert EVIL in "".join(p.text)  # shown as text, not markup


def test_offline_no_external_resources(page_html: str) -> None:
    assert re.search(r"""(src|href)=["']?(https?:)?//""", page_html) is None
    assert 'http-equiv="Content-Security-Policy"' in page_html
    assert "default-src &#x27;none&#x27;; img-src data:" in page_html


def test_every_plot_kind_is_drawn_as_a_decodable_png(report: InspectReport, page_html: str) -> None:
    p = Page(page_html)
    titles = [pl.title for f in report.findings for pl in f.plots]
    assert sorted(pl.kind for f in report.findings for pl in f.plots) == sorted(PLOT_KINDS)
    assert [img["alt"] for img in p.images] == titles
    for img in p.images:
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        pixels = mpimg.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 200
        assert np.std(pixels[..., :3]) > 0.05  # not a blank canvas


def test_a_plot_that_cannot_be_drawn_is_reported_not_fatal() -> None:
    bad = Plot("hist", "broken", ["a", "b"], {"n": [1]})
    r = make_report()
    r.findings[0].plots = [bad]
    out = render_html(r)
    assert "plot broken could not be drawn" in out
    assert "Length bias" in out
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the failed figure was closed too


def test_worst_offender_tables_and_ids(page_html: str) -> None:
    assert "<h4>Worst offenders</h4>" in page_html
    assert '<td class="id">j1</td><td class="">412</td><td class="id">&lt;script' in page_html
    assert "Concerns 2 judgment_id" in page_html
    assert '<p class="muted">by gap</p>' in page_html


def test_json_round_trip_renders_the_same_page(report: InspectReport, tmp_path: Path) -> None:
    path = tmp_path / "findings.json"
    report.to_json(path)
    import orjson

    back = InspectReport.from_dict(orjson.loads(path.read_bytes()))
    assert back.to_dict() == report.to_dict()
    assert render_html(back) == render_html(report)
    write_html(back, tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == render_html(report)


def test_non_finite_metrics_render_as_a_dash() -> None:
    f = Finding("x", "X", "ok", "fine", metrics={"rate": float("nan"), "n": np.int64(3)})
    r = InspectReport("d", "0", {"prompts": 1}, [], [f])
    out = render_html(r)
    assert ">rate</span><b>–</b>" in out and ">n</span><b>3</b>" in out
    back = InspectReport.from_dict(r.to_dict())
    assert ">rate</span><b>–</b>" in render_html(back)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "–"), (True, "yes"), (1234567, "1,234,567"), (0.68234, "0.682"), (1234.5, "1,234"),
     (123.456, "123.5"), (0.0, "0"), (float("nan"), "–"), (np.float32(0.5), "0.5"), ("abc", "abc")],
)  # fmt: skip
def test_number_formatting(value: object, text: str) -> None:
    assert number(value) == text


def test_docs_checks_table_is_current() -> None:
    doc = (REPO / "docs" / "inspect.md").read_text(encoding="utf-8")
    assert checks_table_markdown() in doc, (
        "regenerate with: python -m prefkit.report.inspect docs/inspect.md"
    )


def test_every_registered_check_has_a_docs_page() -> None:
    import prefkit.diagnostics.checks  # noqa: F401
    from prefkit.diagnostics.registry import CHECKS

    missing = [n for n in CHECKS if not (REPO / "docs" / "inspect" / f"{n}.md").is_file()]
    assert not missing, f"docs/inspect/<check>.md missing for {missing}"


@pytest.mark.parametrize(
    ("edges", "log"),
    [([0, 1, 2, 4, 8, 16, 32], True), ([1, 10, 100, 1000, 10000], True),
     ([0, 10, 20, 30, 40], False), ([1, 2, 4], False)],
)  # fmt: skip
def test_geometric_histogram_bins_get_a_log_axis(edges: list[float], log: bool) -> None:
    from prefkit.report.inspect import _log_spaced, draw_plot

    assert _log_spaced(np.array(edges, dtype=float)) is log
    plot = Plot("hist", "lengths", edges, {"n": list(range(1, len(edges)))})
    assert draw_plot(plot).startswith('<figure><img alt="lengths" src="data:image/png;base64,')


def test_a_registered_check_is_headed_by_its_registry_title(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefkit.diagnostics.registry import CHECKS, Check

    monkeypatch.setitem(CHECKS, "xbias", Check("xbias", "Length & position bias", "", lambda c: []))
    h2 = Page(render_html(make_report())).headings["h2"]
    assert "warningLength & position bias" in h2
    h3 = Page(render_html(make_report())).headings["h3"]
    assert "warningLength bias" in h3  # findings keep their own titles below it


def test_contents_show_the_verdict_of_the_worst_finding() -> None:
    r = make_report()
    r.findings.insert(1, Finding("xbias", "Mild", "ok", "Nothing much here."))
    row = re.search(r'href="#check-xbias">.*?</tr>', render_html(r))
    assert row is not None
    assert "The longer response wins" in row.group(0) and "Nothing much" not in row.group(0)
