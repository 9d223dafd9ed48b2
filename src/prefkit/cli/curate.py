"""`prefkit curate`: run curation steps on a dataset, one at a time or as a YAML recipe.

One sub-command per registered step is built from the step registry when it is first
needed (so a broken step module never breaks `prefkit inspect` or `convert`): its options
come from the step's :class:`~prefkit.curation.step.Param` list (underscores become
dashes, booleans ``--x/--no-x``, choices a fixed list). ``prefkit curate --recipe FILE
DATASET OUTPUT`` is routed to a hidden command, because a click group cannot take
arguments before its sub-command.

Every run loads DATASET (any format prefkit reads), applies the step(s) through
:func:`prefkit.curation.run_step` (which writes the lineage entry), saves OUTPUT as a
canonical dataset and prints one line per changed table from the lineage entry.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from prefkit.cli.data import _open, _source_options
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    import pyarrow as pa

    from prefkit.curation.step import Outcome, Param, Step
    from prefkit.dataset import Dataset

RECIPE_COMMAND = "__recipe"
#: Option names every step command has; a step parameter may not take one of them.
RESERVED = frozenset({"dataset", "output", "report", "from", "map", "overwrite", "quiet"})
REPORT_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def registry() -> dict[str, Step]:
    """The registered steps; imported on first use, so other commands never load them."""
    import prefkit.curation.steps  # noqa: F401  (registers every step)
    from prefkit.curation.step import STEPS

    return STEPS


# --- summaries and reports ---------------------------------------------------------------


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in counts.items() if n)


def summary_lines(entry: Mapping[str, Any], before: Dataset, after: Dataset) -> list[str]:
    """One line per table the step changed: kept/removed/added, with reasons."""
    removed: Mapping[str, int] = entry.get("removed", {})
    added: Mapping[str, int] = entry.get("added", {})
    reasons: Mapping[str, Mapping[str, int]] = entry.get("reasons", {})
    added_reasons: Mapping[str, Mapping[str, int]] = entry.get("added_reasons", {})
    tables = [
        t
        for t in ("prompts", "responses", "judgments", "rankings", "annotators")
        if t in removed or t in added
    ]
    lines = []
    for t in tables:
        n_before, n_after = before.num_rows(t), after.num_rows(t)
        parts = [f"{t}: {n_before:,} -> {n_after:,}"]
        if removed.get(t):
            why = _reasons(reasons.get(t, {}))
            parts.append(f"removed {removed[t]:,}" + (f" ({why})" if why else ""))
        if added.get(t):
            why = _reasons(added_reasons.get(t, {}))
            parts.append(f"added {added[t]:,}" + (f" ({why})" if why else ""))
        lines.append("; ".join(parts))
    return lines or ["no rows removed or added"]


def write_report(report: pa.Table | None, path: str | Path) -> int:
    """Write a step's row-level report (CSV, JSON Lines or Parquet by suffix); a step that
    gives none writes an empty report with the same columns. Returns the row count."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from prefkit.curation.step import REPORT_SCHEMA

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise PrefkitError(f"--report {path}: use a .csv, .jsonl or .parquet file name")
    table = report if report is not None else REPORT_SCHEMA.empty_table()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        pcsv.write_csv(table, path)
    elif suffix == ".parquet":
        pq.write_table(table, path)
    else:
        import orjson

        with path.open("wb") as fh:
            for row in table.to_pylist():
                fh.write(orjson.dumps(row) + b"\n")
    return table.num_rows


def _check_paths(dataset: str, output: str, overwrite: bool) -> None:
    out = Path(output)
    if Path(dataset).exists() and out.exists() and out.resolve() == Path(dataset).resolve():
        raise PrefkitError(f"OUTPUT {output} is DATASET: write the curated dataset elsewhere")
    if out.exists() and not overwrite:
        raise PrefkitError(f"{output}: already exists (use --overwrite to replace it)")


def _load(dataset: str, from_format: str | None, maps: tuple[str, ...], quiet: bool) -> Dataset:
    if not quiet and sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(f"loading {dataset}"):
            return _open(dataset, from_format, maps)
    return _open(dataset, from_format, maps)


def _counts(ds: Dataset) -> str:
    return ", ".join(f"{v:,} {k}" for k, v in ds.counts().items() if v) or "no rows"


# --- one command per step ------------------------------------------------------------------


def _option(p: Param) -> click.Option:
    flag = p.name.replace("_", "-")
    dest = f"p_{p.name}"
    help_text = p.help
    if isinstance(p.default, bool):
        return click.Option(
            [f"--{flag}/--no-{flag}", dest],
            default=None,
            required=p.required,
            help=f"{help_text} [default: {'yes' if p.default else 'no'}]",
        )
    kind: Any
    if p.choices:
        kind = click.Choice(p.choices)
    elif isinstance(p.default, int):
        kind = click.INT
    elif isinstance(p.default, float):
        kind = click.FLOAT
    else:
        kind = click.STRING
    metavar = None
    if isinstance(p.default, list | tuple):
        metavar = "A,B,..."
        help_text += " (comma-separated)"
    if p.default not in (None, "", [], ()) and not p.required:
        shown = ",".join(map(str, p.default)) if isinstance(p.default, list | tuple) else p.default
        help_text += f"  [default: {shown}]"
    return click.Option(
        [f"--{flag}", dest], type=kind, required=p.required, metavar=metavar, help=help_text
    )


def _common(f: Any) -> Any:
    f = click.option("-q", "--quiet", is_flag=True, help="No summary lines.")(f)
    f = click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")(f)
    return _source_options(f)


def step_command(step: Step) -> click.Command:
    """The ``prefkit curate NAME`` command of ``step``."""
    clash = [p.name for p in step.params if p.name.replace("_", "-") in RESERVED]
    if clash:
        raise PrefkitError(f"curate {step.name}: parameter name(s) {clash} clash with CLI options")

    def callback(
        dataset: str,
        output: str,
        report_path: str | None,
        from_format: str | None,
        maps: tuple[str, ...],
        overwrite: bool,
        quiet: bool,
        **values: Any,
    ) -> None:
        from prefkit.curation.step import run_step

        params = {k.removeprefix("p_"): v for k, v in values.items() if v is not None}
        step.resolve(params)  # bad values fail before the data is read
        _check_paths(dataset, output, overwrite)
        ds = _load(dataset, from_format, maps, quiet)
        start = time.perf_counter()
        new, outcome = run_step(ds, step.name, **params)
        seconds = time.perf_counter() - start
        new.save(output, overwrite=overwrite)
        entry = new.manifest.lineage[-1]
        if not quiet:
            lines = summary_lines(entry, ds, new)
            click.echo(f"{step.name} ({seconds:.1f} s): {lines[0]}")
            for line in lines[1:]:
                click.echo(f"  {line}")
            click.echo(f"wrote {output} (prefkit dataset): {_counts(new)}")
        if report_path:
            n = write_report(outcome.report, report_path)
            if not quiet:
                click.echo(f"wrote {report_path} ({n:,} report rows)")

    summary = step.summary.rstrip(".")
    help_text = summary[:1].upper() + summary[1:] + "."
    if step.paper:
        help_text += f"\n\nMethod: {step.paper}"
    help_text += (
        "\n\nDATASET is anything prefkit loads; OUTPUT is written as a canonical dataset "
        "whose manifest lineage records this step (parameters, fingerprints, rows removed "
        "or added and why)."
        f"\n\n\b\nExample:\n  prefkit curate {step.name} data/sim data/curated --report "
        f"{step.name}.csv"
    )
    params: list[click.Parameter] = [
        click.Argument(["dataset"]),
        click.Argument(["output"]),
        *(_option(p) for p in step.params),
        click.Option(
            ["--report", "report_path"],
            type=click.Path(dir_okay=False),
            help="Write the rows that went and why here (.csv, .jsonl or .parquet).",
        ),
    ]
    cmd = click.Command(
        step.name,
        callback=callback,
        params=params,
        help=help_text,
        short_help=step.summary,
    )
    return _common(cmd)


# --- the recipe command ------------------------------------------------------------------


@click.command(RECIPE_COMMAND, hidden=True)
@click.option("--recipe", "recipe_path", required=True, type=click.Path(exists=True))
@click.argument("dataset")
@click.argument("output")
@click.option("--report-dir", type=click.Path(file_okay=False))
@_common
def recipe_cmd(
    recipe_path: str,
    dataset: str,
    output: str,
    report_dir: str | None,
    from_format: str | None,
    maps: tuple[str, ...],
    overwrite: bool,
    quiet: bool,
) -> None:
    """Run the steps of a YAML recipe on DATASET and write OUTPUT."""
    from prefkit.curation.recipe import parse_recipe, run_recipe

    recipe = parse_recipe(Path(recipe_path))  # names and parameters checked before loading
    _check_paths(dataset, output, overwrite)
    ds = _load(dataset, from_format, maps, quiet)
    n = len(recipe)
    state: dict[str, Any] = {"before": ds, "start": time.perf_counter()}
    show = not quiet and sys.stderr.isatty()
    status = None
    if show:
        from rich.console import Console

        status = Console(stderr=True).status(f"curate: step 1/{n} {recipe[0][0]}")
        status.start()

    def on_step(i: int, name: str, new: Dataset, outcome: Outcome) -> None:
        seconds = time.perf_counter() - state["start"]
        if status is not None and i < n:
            status.update(f"curate: step {i + 1}/{n} {recipe[i][0]}")
        if not quiet:
            lines = summary_lines(new.manifest.lineage[-1], state["before"], new)
            click.echo(f"[{i}/{n}] {name} ({seconds:.1f} s): {lines[0]}")
            for line in lines[1:]:
                click.echo(f"        {line}")
        if report_dir:
            path = Path(report_dir) / f"{i:02d}-{name}.csv"
            write_report(outcome.report, path)
        state["before"] = new
        state["start"] = time.perf_counter()

    try:
        result = run_recipe(ds, Path(recipe_path), on_step)
    finally:
        if status is not None:
            status.stop()
    result.save(output, overwrite=overwrite)
    if not quiet:
        click.echo(f"wrote {output} (prefkit dataset): {_counts(result)}")
        if report_dir:
            click.echo(f"wrote {n} step reports to {report_dir}/")


# --- the group ---------------------------------------------------------------------------


class CurateGroup(click.Group):
    """Sub-commands built from the step registry; ``--recipe`` routed to a hidden command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else ""
        if any(a == "--recipe" or a.startswith("--recipe=") for a in args) and (
            first.startswith("-") and first not in ("-h", "--help")
        ):
            args = [RECIPE_COMMAND, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(registry())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == RECIPE_COMMAND:
            return recipe_cmd
        step = registry().get(cmd_name)
        return step_command(step) if step is not None else None


@click.group("curate", cls=CurateGroup, invoke_without_command=False)
@click.option(
    "--recipe",
    metavar="FILE",
    expose_value=False,
    help="Run a YAML recipe: prefkit curate --recipe FILE DATASET OUTPUT [--report-dir DIR] "
    "[--overwrite] (see docs/curation.md).",
)
def curate() -> None:
    """Curate a dataset: dedup, decontaminate, filter, relabel, build pairs, select, order
    and split, each step recorded in the manifest lineage.

    Run one step with `prefkit curate STEP DATASET OUTPUT [--param value ...]`, or a YAML
    recipe of steps with `prefkit curate --recipe FILE DATASET OUTPUT`. OUTPUT is a
    canonical dataset; `prefkit export` turns it into training files.

    \b
    Examples:
      prefkit curate dedup data/sim data/dedup --report dedup.csv
      prefkit curate --recipe steps.yaml data/sim data/clean --report-dir reports/
      prefkit export data/clean train.jsonl --to trl --split train
    """


__all__ = ["curate", "registry", "step_command", "summary_lines", "write_report"]
