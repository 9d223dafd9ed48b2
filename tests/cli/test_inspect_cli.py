"""`prefkit inspect`: exit codes, --checks/--param/--against parsing, outputs, summary.

Stand-in checks are registered for the duration of a test (``monkeypatch`` restores the
registry), so these tests do not depend on which real checks exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prefkit.cli.inspect import parse_params, rich_progress
from prefkit.cli.main import cli
from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, InspectReport, Plot, Table, skipped
from prefkit.diagnostics.registry import CHECKS, Check
from prefkit.errors import PrefkitError

PAIRS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon, probably"},
    {"prompt": "Say hi", "chosen": "Hi there!", "rejected": "no"},
]
FAKE, AGAINST, EMPTY = "zz_fake", "zz_against", "zz_empty"


def _fake(ctx: Context) -> list[Finding]:
    """Severity and echo chosen by --param, so tests steer the exit code."""
    params = dict(ctx.options.params.get(FAKE, {}))
    severity = ctx.param(FAKE, "severity", "warning")
    for _ in ctx.track(range(3), "fake loop", 3):
        pass
    return [
        Finding(
            FAKE,
            "Fake finding",
            severity,
            f"Verdict of the fake check over {ctx.count('judgments')} judgments.",
            metrics={"headline_rate": 0.6789, "n_judgments": ctx.count("judgments"), **params},
            tables=[Table("Worst", ["judgment_id", "score"], [["j0", 0.5]])],
            plots=[Plot("bar", "Bars", ["x", "y"], {"s": [1.0, 2.0]})],
            ids={"judgment_id": ["j0"]},
        )
    ]


def _against(ctx: Context) -> list[Finding]:
    texts = list(ctx.options.against or [])
    return [
        Finding(
            AGAINST,
            "Against",
            "info",
            f"{len(texts)} eval prompts from {ctx.options.against_name}.",
            metrics={
                "n_eval": len(texts),
                "first": texts[0] if texts else "",
                "ids": list(ctx.options.against_ids or []),
            },
        )
    ]


def _empty(ctx: Context) -> list[Finding]:
    return [skipped(EMPTY, "Empty", "nothing to look at")]


@pytest.fixture(autouse=True)
def fake_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import prefkit.diagnostics.checks  # noqa: F401  (real checks first, as in the CLI)

    monkeypatch.setitem(CHECKS, FAKE, Check(FAKE, "Fake finding", "a stand-in", _fake))
    monkeypatch.setitem(
        CHECKS, AGAINST, Check(AGAINST, "Against", "eval prompts", _against, needs_against=True)
    )
    monkeypatch.setitem(CHECKS, EMPTY, Check(EMPTY, "Empty", "never applies", _empty))
    yield


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["inspect", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def fakes(*extra: str) -> list[str]:
    return ["--checks", f"{FAKE},{EMPTY}", *extra]


def test_summary_and_exit_0(data: Path) -> None:
    code, out, err = run(str(data), *fakes())
    assert code == 0, err
    assert "Fake finding" in out and "Verdict of the fake check over 3 judgments." in out
    assert "headline_rate=0.679 · n_judgments=3" in out
    assert "skipped" in out and "Empty: nothing to look at" in out
    assert "worst: warning" in out
    assert "3 prompts · 6 responses · 3 judgments (pairwise)" in out


@pytest.mark.parametrize(
    ("severity", "fail_on", "code"),
    [("warning", "warning", 1), ("error", "warning", 1), ("warning", "error", 0),
     ("info", "warning", 0), ("error", "error", 1), ("info", "info", 1), ("ok", "info", 0)],
)  # fmt: skip
def test_fail_on_sets_the_exit_status(data: Path, severity: str, fail_on: str, code: int) -> None:
    got, out, err = run(
        str(data), *fakes("--param", f"{FAKE}.severity={severity}", "--fail-on", fail_on)
    )
    assert got == code, (out, err)
    assert "Fake finding" in out  # the summary still prints before exiting 1


def test_skipped_findings_never_fail(data: Path) -> None:
    code, _, _ = run(str(data), "--checks", EMPTY, "--fail-on", "info")
    assert code == 0


def test_checks_comma_separated_and_repeated(data: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "f.json"
    code, _, err = run(
        str(data), "--checks", FAKE, "--checks", f"{EMPTY}", "--json", str(out_json), "-q"
    )
    assert code == 0, err
    report = InspectReport.from_dict(json.loads(out_json.read_text()))
    assert [f.check for f in report.findings] == [FAKE, EMPTY]
    assert report.options["checks"] == [FAKE, EMPTY]


def test_unknown_check_is_a_usage_error_naming_the_choices(data: Path) -> None:
    code, _, err = run(str(data), "--checks", f"{FAKE},nonsense")
    assert code == 2
    assert "unknown check(s) 'nonsense'" in err and FAKE in err and EMPTY in err


def test_missing_dataset_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "nope.jsonl"), *fakes())
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "nope.jsonl" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("param", "message"),
    [("severity=error", "expected CHECK.KEY=VALUE"), (f"{FAKE}.severity", "expected CHECK.KEY=VALUE"),
     (".x=1", "expected CHECK.KEY=VALUE"), (f"{FAKE}.=1", "expected CHECK.KEY=VALUE"),
     ("nosuch.k=1", "unknown check 'nosuch'")],
)  # fmt: skip
def test_bad_param_exits_2(data: Path, param: str, message: str) -> None:
    code, _, err = run(str(data), *fakes("--param", param))
    assert code == 2 and message in err, err


def test_param_values_are_typed() -> None:
    got = parse_params(
        (f"{FAKE}.a=0.8", f"{FAKE}.b=12", f"{FAKE}.c=true", f"{FAKE}.d=text", f"{FAKE}.e=a=b", "bias.k=False")
    )  # fmt: skip
    assert got == {
        FAKE: {"a": 0.8, "b": 12, "c": True, "d": "text", "e": "a=b"},
        "bias": {"k": False},
    }
    with pytest.raises(PrefkitError):
        parse_params(("x",))


def test_param_reaches_the_check(data: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "f.json"
    code, _, _ = run(
        str(data),
        *fakes("--param", f"{FAKE}.threshold=0.25", "--json", str(out_json), "--seed", "7"),
    )
    assert code == 0
    d = json.loads(out_json.read_text())
    assert d["findings"][0]["metrics"]["threshold"] == 0.25
    assert d["options"]["params"] == {FAKE: {"threshold": 0.25}} and d["options"]["seed"] == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--top", "0"], "--top"), (["--embed", "sometimes"], "--embed"),
     (["--against-field", "q"], "--against-field needs --against"),
     (["--against", "/nonexistent/prompts.txt"], "--against")],
)  # fmt: skip
def test_bad_options_exit_2(data: Path, args: list[str], message: str) -> None:
    code, _, err = run(str(data), *fakes(*args))
    assert code == 2 and message in err, err


def test_html_and_json_outputs(data: Path, tmp_path: Path) -> None:
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    code, out, _ = run(str(data), *fakes("--html", str(html), "--json", str(js)))
    assert code == 0
    assert f"wrote {html}" in out and f"wrote {js}" in out
    page = html.read_text(encoding="utf-8")
    assert "Fake finding" in page and "Not applicable to this dataset" in page
    assert page.count("data:image/png;base64,") == 1
    report = InspectReport.from_dict(json.loads(js.read_text()))
    assert report.dataset == str(data)
    assert report.counts["judgments"] == 3 and report.kinds == ["pairwise"]
    f = report.findings_of(FAKE)[0]
    assert (f.severity, f.metrics["n_judgments"], f.ids) == ("warning", 3, {"judgment_id": ["j0"]})
    assert f.tables[0].rows == [["j0", 0.5]] and f.plots[0].kind == "bar"
    assert report.findings_of(EMPTY)[0].severity == "skipped"


def test_json_to_stdout_is_pure_json(data: Path) -> None:
    code, out, _ = run(str(data), *fakes("--json", "-"))
    assert code == 0
    d = json.loads(out)
    assert d["severity"] == "warning" and [f["check"] for f in d["findings"]] == [FAKE, EMPTY]


def test_quiet_prints_nothing(data: Path, tmp_path: Path) -> None:
    code, out, err = run(str(data), *fakes("-q", "--html", str(tmp_path / "r.html")))
    assert (code, out, err) == (0, "", "")
    assert (tmp_path / "r.html").is_file()


def test_against_check_skipped_without_eval_prompts(data: Path) -> None:
    code, out, _ = run(str(data), "--checks", AGAINST, "--json", "-")
    f = json.loads(out)["findings"][0]
    assert code == 0 and f["severity"] == "skipped" and "--against" in f["verdict"]


def test_against_reads_eval_prompts(data: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "eval.txt"
    prompts.write_text("What is 2+2?\nName a prime number.\n")
    code, out, err = run(str(data), "--checks", AGAINST, "--against", str(prompts), "--json", "-")
    assert code == 0, err
    d = json.loads(out)
    m = d["findings"][0]["metrics"]
    assert m["n_eval"] == 2 and m["first"] == "What is 2+2?"
    assert m["ids"] == ["line 1", "line 2"]  # where each eval prompt came from
    assert d["options"]["against"]


def test_rich_progress_factory_drives_bars() -> None:
    with rich_progress(True, ["a", "b"]) as factory:
        assert factory is not None
        top = factory("inspect", 2)
        inner: Any = factory("loop", None)
        inner(5)
        top(1)
        top(1)
    with rich_progress(False, ["a"]) as none:
        assert none is None


def test_inspect_help_lists_the_registered_checks() -> None:
    result = CliRunner().invoke(cli, ["inspect", "--help"], terminal_width=400)
    assert result.exit_code == 0
    listed = re.search(r"\(default: all\): ([^.]*)\.", result.output)
    assert listed is not None
    assert listed.group(1).split(", ") == list(CHECKS)  # the fakes included: built on demand
