"""`prefkit train`: policy training from preference data (the DPO family).

``prefkit train dpo --config cfg.yaml`` reads every setting from a YAML file; each field of
:class:`~prefkit.training.dpo_config.DPOConfig` is also a flag, and flags override the
file. The flags are generated from the dataclass, so the two never disagree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import click

from prefkit.cli.data import _emit_json, _mapping, _source_options, dataclass_option
from prefkit.errors import PrefkitError
from prefkit.training.dpo_config import DPOConfig

DICT_FLAGS = {"loss_params": "--loss-param", "mixins": "--mixin"}


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; ``dict[str, float]`` -> dict."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _fields() -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(DPOConfig)
    return [(f, _base_type(hints[f.name])) for f in dataclasses.fields(DPOConfig)]


def _config_options(f: Any) -> Any:
    """One click option per config field (unset flags are None: the file/defaults apply)."""
    hints = typing.get_type_hints(DPOConfig)
    for fld in reversed(dataclasses.fields(DPOConfig)):
        if fld.name in DICT_FLAGS:
            help_ = fld.metadata.get("help", "")
            opt = click.option(
                DICT_FLAGS[fld.name], fld.name, multiple=True, metavar="KEY=VALUE", help=help_
            )
        else:
            opt = dataclass_option(fld, hints[fld.name], layered=True)
        f = opt(f)
    return f


def _pairs(name: str, items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for key, value in _mapping(items, DICT_FLAGS[name]).items():
        try:
            out[key] = float(value)
        except ValueError:
            raise PrefkitError(
                f"{DICT_FLAGS[name]} {key}={value}: the value must be a number"
            ) from None
    return out


def read_config(path: str | None, flags: dict[str, Any]) -> DPOConfig:
    """Defaults, then the YAML file, then the flags that were given."""
    import yaml

    values: dict[str, Any] = {}
    types_ = dict((f.name, t) for f, t in _fields())
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise PrefkitError(f"{path}: cannot read the config: {e}") from None
        if not isinstance(loaded, dict):
            raise PrefkitError(f"{path}: the config must be a mapping of field: value")
        for key, value in loaded.items():
            name = str(key).replace("-", "_")
            if name not in types_:
                raise PrefkitError(f"{path}: unknown field {key!r} (fields: {', '.join(types_)})")
            values[name] = _coerce(path, name, value, types_[name])
    from_file = set(values)
    for name, value in flags.items():
        if name in DICT_FLAGS:
            if value:
                values[name] = {**values.get(name, {}), **_pairs(name, value)}
                from_file.discard(name)
        elif value is not None:
            values[name] = value
            from_file.discard(name)
    try:
        return DPOConfig(**values)
    except PrefkitError as e:
        # name the file when the bad value came from it
        if path and any(f"dpo: {k} " in str(e) for k in from_file):
            raise PrefkitError(f"{path}: {e}") from None
        raise


def _coerce(path: str, name: str, value: Any, typ: Any) -> Any:
    if value is None:
        return None
    try:
        if typ is dict:
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): float(v) for k, v in value.items()}
        if typ is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        return typ(value)
    except (TypeError, ValueError):
        names = {dict: "a mapping of name: number", int: "an integer", float: "a number"}
        want = names.get(typ, f"a {typ.__name__}")
        raise PrefkitError(f"{path}: field {name!r} must be {want}, got {value!r}") from None


@click.group("train")
def train() -> None:
    """Train policies from preference data (DPO family).

    \b
    Example:
      prefkit train dpo --config dpo.yaml
      prefkit train dpo --model path/to/lm --data data/staged --lora-r 16 --loss-param beta=0.1
      prefkit train losses
    """


@train.command("dpo")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="YAML file of settings."
)
@_source_options
@_config_options
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def dpo_cmd(
    config_path: str | None,
    from_format: str | None,
    maps: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    **flags: Any,
) -> None:
    """Train a causal LM with a DPO-family loss; writes OUTPUT_DIR/model and metrics.json.

    Every setting is a field of the YAML file given to --config and also a flag; flags
    override the file. Broken pairs found by the tokenization pre-flight stop the run
    unless --on-problem drop or fix.

    \b
    Example:
      prefkit train dpo --config dpo.yaml --max-steps 100
      prefkit train dpo --model Qwen/Qwen2-0.5B-Instruct --data hh/ --loss ipo --loss-param beta=0.5
    """
    from prefkit.cli.rm import _bars

    config = read_config(config_path, flags)
    source = {**({"format": from_format} if from_format else {}), **_mapping(maps)}
    from prefkit.training.dpo_run import run

    with _bars(not quiet and not as_json) as bar:
        update = bar("train dpo") if bar else None

        def progress(done: int, total: int, info: dict[str, float]) -> None:
            if update:
                update(done, total, info.get("loss"))

        summary = run(config, progress=progress, source_options=source)
    if as_json:
        _emit_json(summary)
        return
    _render(summary)


def _render(s: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    pf = s["preflight"]
    bad = {k: v["count"] for k, v in pf["problems"].items() if v["count"]}
    con.print(
        f"pre-flight: {pf['rows']:,} examples"
        + (", " + ", ".join(f"{k} {v:,}" for k, v in bad.items()) if bad else ", no problems")
        + (f"; dropped {s['dropped']:,}" if s["dropped"] else "")
        + (f"; fixed {s['fixed']:,}" if s.get("fixed") else "")
    )
    con.print(
        f"trained {s['steps']:,} steps on {s['train_examples']:,} examples in "
        f"{s['train_seconds']:.1f} s ({s['tokens_per_second']:,.0f} tokens/s); "
        f"reference log-probs: {', '.join(f'{k} from {v}' for k, v in s['reference'].items())}"
    )
    if len(s["stages"]) > 1:
        con.print(
            "curriculum: " + " -> ".join(f"stage {k} ({v} steps)" for k, v in s["stages"].items())
        )
    if s["evals"]:
        keys = [k for k in s["evals"][-1] if k not in ("step", "stage")]
        t = Table("metric", *[f"step {e['step']}" for e in s["evals"]], title="evaluation")
        for k in keys:
            t.add_row(k, *[_fmt(e.get(k)) for e in s["evals"]])
        con.print(t)
    con.print(f"model: {s['model_dir']}")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


@train.command("losses")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def losses_cmd(as_json: bool) -> None:
    """List the registered losses, their parameters and papers."""
    from prefkit.losses.base import all_losses

    losses = all_losses()
    if as_json:
        _emit_json(
            {
                n: {
                    "kind": l_.kind,
                    "reference": l_.reference,
                    "mixin": l_.mixin,
                    "params": {k: p.default for k, p in l_.params.items()},
                    "paper": l_.paper,
                    "trl": l_.trl,
                }
                for n, l_ in losses.items()
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    from prefkit.losses.doc import kind_text, params_text

    t = Table("loss", "reads", "reference", "parameters", "paper")
    for n, l_ in losses.items():
        ref = "yes" if l_.reference else "no"
        t.add_row(n, kind_text(l_), ref, params_text(l_), l_.paper)
    Console().print(t)
