"""`prefkit arena`: a leaderboard with intervals from pairwise battles."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from prefkit.errors import PrefkitError
from prefkit.ratings.arena import INTERVALS, TIES


def _battles_only(dataset: str, from_format: str | None) -> Any:
    """A plain arena battle file read as three columns (no texts needed), or None."""
    from pathlib import Path

    from prefkit.io.api import detect_format
    from prefkit.io.formats.arena import battle_columns
    from prefkit.io.store import is_dataset_dir

    path = Path(dataset)
    if not path.is_file() or is_dataset_dir(path):
        return None
    if (from_format or detect_format(path).name) != "arena":
        return None
    return battle_columns(path)


def _anchor(value: str | None) -> tuple[str, float] | None:
    if not value:
        return None
    model, sep, rating = value.rpartition("=")
    try:
        if not sep or not model:
            raise ValueError
        return model, float(rating)
    except ValueError:
        raise PrefkitError(f"--anchor {value!r}: expected MODEL=VALUE, e.g. gpt-4=1200") from None


@click.command("arena")
@click.argument("dataset")
@click.option("--from", "from_format", help="Input format (sniffed when omitted).")
@click.option(
    "--ties",
    type=click.Choice(TIES),
    default="half",
    show_default=True,
    help="Ties as half a win each (Chatbot Arena), modelled (Davidson, Rao–Kupper), or dropped.",
)
@click.option(
    "--intervals",
    type=click.Choice(INTERVALS),
    default="bootstrap",
    show_default=True,
    help="Bootstrap percentiles, or analytic (inverse Fisher information / sandwich).",
)
@click.option(
    "--bootstrap", "rounds", type=int, default=1000, show_default=True, help="Bootstrap rounds."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--ci", type=float, default=0.95, show_default=True, help="Interval level.")
@click.option(
    "--style-control",
    "style",
    default="",
    metavar="F1,F2",
    help="Control for style covariates: length, markdown, citations, or numeric columns.",
)
@click.option("--anchor", default=None, metavar="MODEL=VALUE", help="Pin one model's rating.")
@click.option(
    "--min-battles",
    type=int,
    default=0,
    show_default=True,
    help="Leave out models with fewer battles.",
)
@click.option(
    "--l2",
    type=float,
    default=0.0,
    show_default=True,
    help="Gaussian prior precision on log-strengths.",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML report here."
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the leaderboard as CSV here."
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def arena(
    dataset: str,
    from_format: str | None,
    ties: str,
    intervals: str,
    rounds: int,
    seed: int,
    ci: float,
    style: str,
    anchor: str | None,
    min_battles: int,
    l2: float,
    html_path: str | None,
    csv_path: str | None,
    as_json: bool,
) -> None:
    """Rank the models in DATASET's battles: Bradley–Terry ratings with intervals and ranks.

    DATASET is anything prefkit loads whose judgments compare responses with a source
    (model): arena battle files, the PRD layout, a canonical dataset.

    \b
    Examples:
      prefkit arena ../shared/data/vicuna80_human_battles --html arena.html
      prefkit arena battles.jsonl --ties davidson --bootstrap 2000 --anchor gpt-4=1200
      prefkit arena sim/ --style-control length,markdown --json
    """
    from prefkit.cli.render import render_arena
    from prefkit.io.api import load
    from prefkit.ratings.arena import leaderboard
    from prefkit.report.arena import write_csv, write_html

    features = tuple(f.strip() for f in style.split(",") if f.strip())
    data = _battles_only(dataset, from_format) if not features else None
    if data is None:
        data = load(dataset, from_format)
    report = leaderboard(
        data,
        ties=ties,
        intervals=intervals,
        rounds=rounds,
        seed=seed,
        ci=ci,
        anchor=_anchor(anchor),
        min_battles=min_battles,
        style=features,
        l2=l2,
    )
    if html_path:
        write_html(report, html_path, title=f"Arena leaderboard: {dataset}")
    if csv_path:
        write_csv(report, csv_path)
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
            ).decode()
            + "\n"
        )
    else:
        render_arena(dataset, report)
        for path in (html_path, csv_path):
            if path:
                click.echo(f"wrote {path}")
