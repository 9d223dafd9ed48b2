"""The inspect HTML report in a real browser: headless Chromium displays it without a
console message (its Content Security Policy turns any script or fetch into one), every
section heading is in the DOM, every inline PNG decodes, and the screenshot is not blank.

Control pages prove each detector can fail: a deliberate ``console.error`` is captured, a
page fetching an external image logs a CSP violation, and a broken inline image is
reported by the image probe.

Chromium comes from the Debian package ``chromium`` that ``scripts/setup.sh`` installs.
Without it the test is skipped locally but fails under CI (``CI`` set), where set-up must
have installed it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prefkit.diagnostics import inspect
from prefkit.diagnostics.findings import InspectReport
from prefkit.report.html import OFFLINE_CSP, document
from prefkit.report.inspect import check_title, group_by_check, render_html, worst
from prefkit.synth import simulate
from prefkit.views import prompt_text

#: Console lines of Chromium's log: ``[pid:tid:time:INFO:CONSOLE:12] "text", source: …``
#: (older builds print ``CONSOLE(12)``).
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\] (.*)$", re.M)
#: Injected into a copy of the report (without the CSP): reports images that did not decode.
PROBE = """<script>window.addEventListener('load', () => {
  let ok = 0;
  for (const img of document.images) {
    if (img.complete && img.naturalWidth > 0 && img.naturalHeight > 0) ok += 1;
    else console.error('BROKEN-IMAGE ' + img.alt);
  }
  console.log('IMAGES-DECODED ' + ok + '/' + document.images.length);
});</script>"""


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium not found on PATH under CI: scripts/setup.sh must install it")
    pytest.skip("chromium not installed (Debian package `chromium`; scripts/setup.sh installs it)")


def messages(console: list[str]) -> list[str]:
    """The text of each console line (``"text", source: file:///… (line)``)."""
    return [re.sub(r'^"(.*)", source: .*$', r"\1", c, flags=re.S) for c in console]


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_binary()


def browse(
    binary: str, page: Path, profile: Path, *args: str, size: str = "1280,4000"
) -> tuple[str, list[str]]:
    """Open ``page`` headless; return stdout and the console messages it logged."""
    proc = subprocess.run(
        [
            binary,
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",  # own profile: parallel test workers never share one
            "--virtual-time-budget=5000",
            f"--window-size={size}",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, CONSOLE.findall(proc.stderr)


@pytest.fixture(scope="module")
def report() -> InspectReport:
    """A real run of every registered check on small synth data with planted problems."""
    ds = simulate(
        kind="pairwise",
        n_prompts=120,
        responses_per_prompt=3,
        judgments_per_pair=3,
        n_annotators=12,
        flip_rate=0.1,
        bad_annotator_fraction=0.2,
        n_groups=2,
        duplicate_rate=0.05,
        n_cyclic_triads=4,
        length_bias=1.0,
        seed=3,
    )
    prompts = prompt_text(ds.table("prompts").column("messages")).to_pylist()
    against = [*prompts[:10], "A question that no training prompt resembles at all."]
    return inspect(ds, against=against, against_name="eval", embed="never", name="synth <demo>")


@pytest.fixture(scope="module")
def rendered(report: InspectReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inspect_html") / "report.html"
    path.write_text(render_html(report, title="prefkit inspect: synth"), encoding="utf-8")
    return path


def test_report_displays_without_console_messages(
    chromium: str, report: InspectReport, rendered: Path, tmp_path: Path
) -> None:
    dom, console = browse(chromium, rendered, tmp_path / "profile", "--dump-dom")
    assert console == []
    assert "<h1>prefkit inspect: synth</h1>" in dom
    n_plots = sum(len(f.plots) for f in report.findings)
    assert dom.count('src="data:image/png;base64,') == n_plots
    for check, findings in group_by_check(report.findings):
        title = re.escape(check_title(check, findings))
        if worst(findings) == "skipped":
            assert re.search(rf'<tr id="skip-check-{check}"><td class="l">{title}</td>', dom)
        else:
            assert re.search(rf"<h2><span[^>]*>[a-z]+</span>{title}</h2>", dom), check
            for f in findings:
                assert f.title.replace("&", "&amp;") in dom


def test_every_inline_image_decodes(
    chromium: str, report: InspectReport, rendered: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.html"
    text = rendered.read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text, count=1)
    probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    _, console = browse(chromium, probe, tmp_path / "profile")
    n = sum(len(f.plots) for f in report.findings)
    assert any(f.plots for f in report.findings)  # the probe has something to check
    assert messages(console) == [f"IMAGES-DECODED {n}/{n}"], console


def test_screenshot_is_a_non_blank_png(chromium: str, rendered: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    browse(chromium, rendered, tmp_path / "profile", f"--screenshot={shot}", size="1280,2000")
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.size == (1280, 2000)
        pixels = np.asarray(img.convert("RGB"), dtype=float)
    ink = (pixels.sum(axis=2) < 600).mean()  # share of pixels clearly darker than white
    assert 0.01 < ink < 0.6, ink
    assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 20  # text, badges and plots


# --- controls: each detector above can fail ------------------------------------------------


def test_control_console_errors_are_captured(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "error.html"
    page.write_text(
        "<!doctype html><title>x</title><p>x</p><script>console.error('deliberate failure')</script>"
    )
    _, console = browse(chromium, page, tmp_path / "profile", "--dump-dom")
    assert any("deliberate failure" in c for c in console), console


def test_control_fetches_and_scripts_break_the_policy(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "fetch.html"
    body = (
        '<h1>x</h1><img alt="far" src="https://example.invalid/x.png">'
        "<script>console.log('ran')</script>"
    )
    page.write_text(document("x", body, csp=OFFLINE_CSP))
    _, console = browse(chromium, page, tmp_path / "profile", "--dump-dom")
    text = "\n".join(console)
    assert "example.invalid" in text and "Content Security Policy" in text
    assert "inline script" in text and "ran" not in messages(console)


def test_control_broken_image_is_reported_by_the_probe(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    good = render_html(
        InspectReport("d", "0", {}, [], []),  # an empty report: no images of its own
    )
    body = '<img alt="bad" src="data:image/png;base64,iVBORw0KGgoAAAA">' + PROBE
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", good).replace(
        "</body>", body + "</body>"
    ))  # fmt: skip
    _, console = browse(chromium, page, tmp_path / "profile")
    assert messages(console) == ["BROKEN-IMAGE bad", "IMAGES-DECODED 0/1"], console
