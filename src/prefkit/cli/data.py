"""`prefkit convert | info | validate | formats`: moving data in and out, and looking at it."""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Any

import click
import orjson

from prefkit.errors import PrefkitError
from prefkit.io.api import CANONICAL, convert, load
from prefkit.io.formats.base import REGISTRY
from prefkit.views import ANNOTATORS, PAIR_STRATEGIES, TIES

FORMAT_NAMES = sorted(REGISTRY)


def _mapping(values: tuple[str, ...], flag: str = "--map") -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a dict (``flag`` names the option in errors)."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PrefkitError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def dataclass_option(f: dataclasses.Field[Any], hint: Any, *, layered: bool = False) -> Any:
    """A click option for one dataclass field: ``--field-name``, help and choices from the
    field's metadata, ``--x/--no-x`` for booleans, comma-separated tuples.

    ``layered``: the option defaults to None, so that an unset flag leaves the value to a
    config file or the dataclass default (``prefkit train dpo --config``).
    """
    name = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    if layered:
        default: Any = None
    else:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    show = not layered and default is not None
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if f.metadata.get("choices"):
        choice = click.Choice(list(f.metadata["choices"]))
        return click.option(
            name, f.name, type=choice, default=default, help=help_text, show_default=show
        )
    if hint is bool:
        flags = f"{name}/--no-{name[2:]}"
        return click.option(flags, f.name, default=default, help=help_text, show_default=show)
    if origin is tuple:
        text = ",".join(str(x) for x in default) if default else ""
        return click.option(
            name,
            f.name,
            default=text,
            show_default=bool(text),
            metavar="A,B,...",
            help=f"{help_text} (comma-separated)",
        )
    base = args[0] if args else hint
    base = base if base in (int, float, str) else str
    return click.option(name, f.name, type=base, default=default, help=help_text, show_default=show)


def _source_options(f: Any) -> Any:
    f = click.option(
        "--map",
        "maps",
        multiple=True,
        metavar="KEY=VALUE",
        help="Format option, repeatable (e.g. column names for --from generic: --map prompt=question).",
    )(f)
    f = click.option(
        "--from",
        "from_format",
        type=click.Choice(FORMAT_NAMES),
        help="Input format (sniffed when omitted).",
    )(f)
    return f


def _emit_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _open(source: str, from_format: str | None, maps: tuple[str, ...]) -> Any:
    return load(source, from_format, **_mapping(maps))  # type: ignore[arg-type]


def _view_policy(**options: Any) -> dict[str, Any]:
    """The view-policy options given on the command line, as keyword arguments for the
    views: those left at their defaults (unset, ``score_key`` "score", ``margin`` 0) are
    dropped, so the views apply their own."""
    if options.get("score_key") == "score":
        options["score_key"] = None
    if "margin" in options and not options["margin"]:
        options["margin"] = None
    return {k: v for k, v in options.items() if v is not None}


@click.command("convert")
@click.argument("input_path", metavar="INPUT")
@click.argument("output_path", metavar="OUTPUT")
@_source_options
@click.option(
    "--to",
    "to_format",
    type=click.Choice([CANONICAL, *FORMAT_NAMES]),
    default=None,
    help="Output format; default: a canonical prefkit dataset directory.",
)
@click.option(
    "--on-error",
    type=click.Choice(["raise", "quarantine"]),
    default="raise",
    show_default=True,
    help="Stop at the first bad record, or set bad records aside and count them.",
)
@click.option(
    "--quarantine",
    "quarantine_path",
    type=click.Path(dir_okay=False),
    help="Where quarantined records go (default: OUTPUT.quarantine.jsonl).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--ties", type=click.Choice(TIES), help="Writers making pairs: what to do with tie judgments."
)
@click.option(
    "--annotators",
    type=click.Choice(ANNOTATORS),
    help="Writers making pairs: pairs judged several times give one row each, a majority row, or unanimous rows.",
)
@click.option(
    "--rankings",
    type=click.Choice(PAIR_STRATEGIES),
    help="Writers making pairs: pairs from rankings.",
)
@click.option(
    "--scores", type=click.Choice(PAIR_STRATEGIES), help="Writers making pairs: pairs from scores."
)
@click.option(
    "--score-key",
    default="score",
    show_default=True,
    help="'score' or an attribute name to rank by.",
)
@click.option(
    "--battle-ties", type=click.Choice(["keep", "drop"]), help="Battle writers: keep or drop ties."
)
@click.option(
    "--conversational/--standard",
    default=None,
    help="Pair writers: message lists or plain strings (default: lists for multi-turn prompts).",
)
def convert_cmd(
    input_path: str,
    output_path: str,
    from_format: str | None,
    maps: tuple[str, ...],
    to_format: str | None,
    on_error: str,
    quarantine_path: str | None,
    overwrite: bool,
    ties: str | None,
    annotators: str | None,
    rankings: str | None,
    scores: str | None,
    score_key: str,
    battle_ties: str | None,
    conversational: bool | None,
) -> None:
    """Convert INPUT to OUTPUT through the canonical data model (streaming).

    INPUT is a file or folder in any supported format (see `prefkit formats`) or a
    canonical dataset. Without --to, OUTPUT is a canonical dataset directory.

    \b
    Examples:
      prefkit convert harmless-base_test.jsonl.gz hh/
      prefkit convert hh/ hh_trl.jsonl --to trl
      prefkit convert battles/ pairs.parquet --to trl --ties drop --annotators majority
      prefkit convert messy.jsonl clean/ --on-error quarantine
    """
    write_options = _view_policy(
        ties=ties,
        annotators=annotators,
        rankings=rankings,
        scores=scores,
        score_key=score_key,
        battle_ties=battle_ties,
        conversational=conversational,
    )
    ds = convert(
        input_path,
        output_path,
        from_format=from_format,
        to_format=to_format,
        on_error=on_error,
        quarantine=quarantine_path,
        overwrite=overwrite,
        read_options=_mapping(maps),
        write_options=write_options,
    )
    counts = ", ".join(f"{v:,} {k}" for k, v in ds.counts().items() if v) or "no rows"
    if to_format in (None, CANONICAL):
        click.echo(f"wrote {output_path} (prefkit dataset): {counts}")
    else:
        click.echo(f"wrote {output_path} ({to_format}) from a dataset of {counts}")
    q = ds.manifest.quarantine
    if q:
        click.echo(
            f"read {q['read']:,} records: kept {q['kept']:,}, quarantined {q['quarantined']:,}"
            + (f" -> {q['file']}" if q.get("file") and q["quarantined"] else "")
        )


@click.command("info")
@click.argument("dataset")
@_source_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info_cmd(dataset: str, from_format: str | None, maps: tuple[str, ...], as_json: bool) -> None:
    """Summarise DATASET: tables, feedback kinds, outcomes and ties, annotators, sources.

    \b
    Examples:
      prefkit info data/sim
      prefkit info ../shared/data/vicuna80_human_battles --json
    """
    from prefkit.cli.render import render_info
    from prefkit.info import summarize

    info = summarize(_open(dataset, from_format, maps))
    if as_json:
        _emit_json(info.to_dict())
    else:
        render_info(dataset, info)


@click.command("validate")
@click.argument("dataset")
@_source_options
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def validate_cmd(
    dataset: str, from_format: str | None, maps: tuple[str, ...], as_json: bool
) -> None:
    """Check DATASET's integrity; exit 1 when any error is found.

    Errors: duplicate or dangling ids, a response compared with itself, a judgment
    across prompts, outcomes out of range, rankings repeating an id. Warnings: empty
    texts, one-response rankings, unknown annotators.

    \b
    Example:
      prefkit validate data/sim && echo ok
    """
    from prefkit.cli.render import render_problems
    from prefkit.schema.validate import has_errors, validate

    problems = validate(_open(dataset, from_format, maps))
    if as_json:
        _emit_json({"ok": not has_errors(problems), "problems": [p.to_dict() for p in problems]})
    else:
        render_problems(dataset, problems)
    if has_errors(problems):
        sys.exit(1)


@click.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def formats_cmd(as_json: bool) -> None:
    """List the supported formats: what each holds and whether prefkit can write it.

    \b
    Example:
      prefkit formats
    """
    from prefkit.cli.render import render_formats

    if as_json:
        _emit_json(
            [
                {
                    "name": f.name,
                    "summary": f.summary,
                    "kinds": list(f.kinds),
                    "write": f.write is not None,
                    "cannot_write": f.cannot_write or None,
                    "options": dict(f.options),
                }
                for f in sorted(REGISTRY.values(), key=lambda f: f.name)
            ]
        )
    else:
        render_formats(REGISTRY)


COMMANDS = (convert_cmd, info_cmd, validate_cmd, formats_cmd)
__all__ = ["COMMANDS"]
