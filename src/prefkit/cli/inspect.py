"""`prefkit inspect`: run the diagnostic checks on a dataset and show what they found.

The command parses options, calls :func:`prefkit.diagnostics.inspect` with a rich
progress bar (on stderr, only on a terminal), prints a one-row-per-finding summary, and
writes the HTML report and the findings JSON when asked. ``--fail-on`` turns findings
into an exit status for CI pipelines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from prefkit.cli.data import _open, _source_options
from prefkit.diagnostics.context import EMBED_MODES, Progress
from prefkit.diagnostics.findings import SEVERITIES, InspectReport
from prefkit.diagnostics.registry import Check
from prefkit.errors import PrefkitError

#: Severities ``--fail-on`` accepts: exit 1 when a finding is at least this severe.
FAIL_ON = ("info", "warning", "error")
EXIT_FINDINGS = 1
STYLE = {
    "error": "bold white on red",
    "warning": "bold black on yellow",
    "info": "bold white on blue",
    "ok": "bold white on green",
    "skipped": "dim",
}


# --- option parsing ----------------------------------------------------------------------


def registry() -> dict[str, Check]:
    """The registered checks; imported on first use, so other commands never load them."""
    from prefkit.diagnostics.registry import load_checks

    return load_checks()


class CheckNames(click.ParamType):
    """Check names from the registry, comma-separated and/or repeated."""

    name = "checks"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "NAME[,NAME...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        names = [v.strip() for v in str(value).split(",") if v.strip()]
        known = registry()
        unknown = [n for n in names if n not in known]
        if unknown:
            self.fail(
                f"unknown check(s) {', '.join(map(repr, unknown))}; "
                f"choose from: {', '.join(known) or '(none registered)'}",
                param,
                ctx,
            )
        return names


def _scalar(text: str) -> Any:
    """A ``--param`` value: true/false, an int, a float, else the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``("duplicates.threshold=0.8", ...)`` -> ``{"duplicates": {"threshold": 0.8}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        name, sep, value = item.partition("=")
        check, dot, key = name.strip().partition(".")
        if not sep or not dot or not check or not key:
            raise PrefkitError(
                f"--param {item!r}: expected CHECK.KEY=VALUE, e.g. duplicates.threshold=0.8"
            )
        known = registry()
        if check not in known:
            raise PrefkitError(
                f"--param {item!r}: unknown check {check!r}; known: {', '.join(known) or 'none'}"
            )
        out.setdefault(check, {})[key.strip()] = _scalar(value)
    return out


# --- progress ----------------------------------------------------------------------------


@contextmanager
def rich_progress(enabled: bool, order: list[str]) -> Iterator[Progress | None]:
    """A progress factory drawing rich bars on stderr (None when disabled).

    The top bar counts checks and names the one running (``order`` is the run order);
    bars that checks open for their own loops are hidden when their check ends.
    """
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    def label(k: int) -> str:
        return f"inspect: {order[k]}" if k < len(order) else "inspect"

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bars:
        inner: list[Any] = []

        def factory(description: str, total: int | None) -> Callable[[int], None]:
            top = description == "inspect"
            task = bars.add_task(label(0) if top else f"  {description}", total=total)
            if not top:
                inner.append(task)
            done = [0]

            def advance(n: int) -> None:
                done[0] += n
                bars.update(task, advance=n)
                if top:  # a check ended: name the next one, and its bars go
                    bars.update(task, description=label(done[0]))
                    for t in inner:
                        bars.update(t, visible=False)
                    inner.clear()

            return advance

        yield factory


# --- terminal summary --------------------------------------------------------------------


def render_summary(report: InspectReport, console: Console) -> None:
    """One row per finding: severity, title, verdict and a few headline metrics."""
    from prefkit.report.inspect import headline, number

    counts = " · ".join(f"{number(v)} {k}" for k, v in report.counts.items() if v) or "empty"
    kinds = ", ".join(report.kinds) or "no feedback"
    console.print(
        Text.assemble(
            ("inspect ", "bold"),
            (report.dataset or "dataset", "bold cyan"),
            f"  {counts} ({kinds})",
        ),
        soft_wrap=True,
    )
    t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 0))
    t.add_column(no_wrap=True)
    t.add_column(ratio=1)
    for f in report.findings:
        badge = Text(f" {f.severity} ", style=STYLE[f.severity])
        if f.severity == "skipped":
            t.add_row(badge, Text(f"{f.title}: {f.verdict}", style="dim"))
            continue
        body = Text.assemble((f.title, "bold"), "\n", f.verdict)
        metrics = headline(f.metrics)
        if metrics:
            body.append("\n" + " · ".join(f"{k}={v}" for k, v in metrics), style="dim")
        t.add_row(badge, body)
    with console.capture() as captured:
        console.print(t)
    # rich pads every cell to its column width; logs read better without trailing blanks
    console.file.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")
    sev = report.by_severity()
    tally = ", ".join(f"{sev[s]} {s}" for s in reversed(SEVERITIES) if sev[s])
    total = sum(report.seconds.values())
    console.print(
        Text.assemble(
            ("worst: ", "bold"),
            (report.severity, STYLE[report.severity]),
            f"  ({tally or 'no findings'}; {total:.1f} s)",
        )
    )


# --- the command -------------------------------------------------------------------------


class ChecksOption(click.Option):
    """``--checks``, whose help lists the registry's names (built when help is shown)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        names = ", ".join(registry()) or "none registered"
        self.help = f"Checks to run, comma-separated or repeated (default: all): {names}."
        return super().get_help_record(ctx)


@click.command("inspect")
@click.argument("dataset")
@_source_options
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML report here."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the findings as JSON here ('-': stdout, no summary).",
)
@click.option("--checks", "checks", cls=ChecksOption, type=CheckNames(), multiple=True)
@click.option(
    "--against",
    type=click.Path(exists=True),
    help="Eval/benchmark prompts to check coverage and contamination against: a .txt file "
    "(one per line), JSON Lines/JSON/CSV/Parquet records, or any dataset prefkit loads.",
)
@click.option(
    "--against-field",
    help="Field holding the prompt in --against records (default: prompt, question, …).",
)
@click.option(
    "--tokenizer",
    metavar="NAME_OR_PATH",
    help="Hugging Face tokenizer: adds model-token lengths to the shape check.",
)
@click.option(
    "--embed",
    type=click.Choice(EMBED_MODES),
    default="auto",
    show_default=True,
    help="Sentence embeddings (offline MiniLM, `embed` extra): when installed, required, or never.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for every random choice."
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Rows in each worst-offenders table.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="CHECK.KEY=VALUE",
    help="A check parameter, repeatable (see docs/inspect/<check>.md), e.g. duplicates.threshold=0.8.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    help="Exit 1 when a finding is at least this severe (for CI pipelines).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def inspect_cmd(
    dataset: str,
    from_format: str | None,
    maps: tuple[str, ...],
    html_path: str | None,
    json_path: str | None,
    checks: tuple[list[str], ...],
    against: str | None,
    against_field: str | None,
    tokenizer: str | None,
    embed: str,
    seed: int,
    top: int,
    params: tuple[str, ...],
    fail_on: str | None,
    quiet: bool,
) -> None:
    """Diagnose DATASET: length and position bias, duplicates, disagreement, cycles, label
    noise, annotator groups, ratings, and contamination with an eval set.

    DATASET is anything prefkit loads (a file or folder in any format, a canonical dataset,
    a hub id). Each check gives a severity (ok, info, warning, error, or skipped when it
    does not apply) and a plain verdict. Exit status: 0; 1 with --fail-on when a finding
    is at least that severe; 2 on a user error.

    \b
    Examples:
      prefkit inspect ../shared/data/hh_rlhf_harmless_test --html report.html
      prefkit inspect data/sim --checks bias,duplicates --json findings.json
      prefkit inspect train.jsonl --against eval_prompts.txt --fail-on error
    """
    from prefkit.diagnostics import InspectOptions, inspect
    from prefkit.diagnostics.registry import resolve
    from prefkit.report.inspect import write_html

    names = [n for group in checks for n in group]
    options_params = parse_params(params)
    if against_field and not against:
        raise PrefkitError("--against-field needs --against")
    options = InspectOptions(
        tokenizer=tokenizer, embed=embed, seed=seed, top=top, params=options_params
    )
    if against:
        from prefkit.diagnostics.evalset import read_prompts

        evalset = read_prompts(against, against_field)
        options.against, options.against_name = evalset.texts, evalset.name
        options.against_ids = evalset.ids
    order = [c.name for c in resolve(names or None)]
    show_progress = not quiet and sys.stderr.isatty()
    if show_progress:
        with Console(stderr=True).status(f"loading {dataset}"):
            ds = _open(dataset, from_format, maps)
    else:
        ds = _open(dataset, from_format, maps)
    with rich_progress(show_progress, order) as progress:
        report = inspect(ds, names or None, options, progress, name=dataset)
    if html_path:
        write_html(report, html_path, title=f"prefkit inspect: {dataset}")
    to_stdout = json_path == "-"
    if to_stdout:
        sys.stdout.write(_json_text(report))
    elif json_path:
        report.to_json(json_path)
    if not quiet and not to_stdout:
        console = Console(highlight=False)
        render_summary(report, console)
        for path in (html_path, json_path):
            if path:
                console.print(f"wrote {path}", soft_wrap=True)
    for unused in report.options.get("unused_params", []):
        click.secho(f"warning: --param {unused} was not used by its check", fg="yellow", err=True)
    if fail_on and SEVERITIES.index(report.severity) >= SEVERITIES.index(fail_on):
        sys.exit(EXIT_FINDINGS)


def _json_text(report: InspectReport) -> str:
    import orjson

    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"


__all__ = ["inspect_cmd", "parse_params", "render_summary", "rich_progress"]
