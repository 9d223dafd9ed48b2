"""`prefkit rm`: train, evaluate and apply reward and preference models.

``rm train`` fits a :class:`~prefkit.models.reward_model.RewardModel` and writes a
checkpoint (safetensors + JSON) with a ``metrics.json`` of the loss history;
``rm eval`` scores a checkpoint on a dataset, or cross-validates a head by prompt
folds, always beside the pick-longer and pick-shorter baselines; ``rm score`` writes a
dataset with reward columns; ``rm heads`` lists the heads and their parameters.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from prefkit.cli.data import _open, _source_options
from prefkit.errors import PrefkitError
from prefkit.models.encoder import QUANTIZE


def _heads() -> list[str]:
    from prefkit.models.heads import HEAD_MODULES

    return list(HEAD_MODULES)


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in pairs:
        key, eq, value = p.partition("=")
        if not eq or not key:
            raise PrefkitError(f"--param takes KEY=VALUE, got {p!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def _model_options(f: Any) -> Any:
    """Options shared by ``rm train`` and ``rm eval --folds``."""
    options = [
        click.option(
            "--head",
            default="bt",
            show_default=True,
            type=click.Choice(_heads()),
            help="Head and objective (see `prefkit rm heads`).",
        ),
        click.option(
            "--backbone",
            default="frozen",
            show_default=True,
            help="frozen[:PATH], encoder[:PATH] or causal:PATH (default encoder: all-MiniLM-L6-v2).",
        ),
        click.option(
            "--param",
            "params",
            multiple=True,
            metavar="KEY=VALUE",
            help="Head parameter, repeatable (e.g. --param margin=1).",
        ),
        click.option(
            "--quantize",
            default="none",
            show_default=True,
            type=click.Choice(QUANTIZE),
            help="Frozen encoder mode: onnx-int8 and bf16 trade a little accuracy or portability for speed (docs/rm/speed.md).",
        ),
        click.option(
            "--max-length",
            default=256,
            show_default=True,
            help="Tokens the backbone reads per text (longer texts are cut and counted).",
        ),
        click.option(
            "--prompt-chars",
            default=600,
            show_default=True,
            help="Characters of the prompt's end read before each response (0: response only); they share --max-length with the response.",
        ),
        click.option(
            "--epochs",
            type=int,
            default=None,
            help="Epochs (default: 20 frozen, 2 encoder, 1 causal).",
        ),
        click.option(
            "--batch-size", type=int, default=None, help="Judgments (or lists, or items) per step."
        ),
        click.option("--lr", type=float, default=None, help="Head learning rate."),
        click.option(
            "--backbone-lr",
            type=float,
            default=None,
            help="Learning rate of a fine-tuned backbone.",
        ),
        click.option(
            "--max-steps", type=int, default=None, help="Cap on optimizer steps (0: none)."
        ),
        click.option(
            "--seed", default=0, show_default=True, help="Seed for initialisation and shuffling."
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Embedding cache root (default ~/.cache/prefkit).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _make_model(o: dict[str, Any]) -> Callable[[], Any]:
    from prefkit.models.reward_model import RewardModel

    def make() -> RewardModel:
        return RewardModel(
            o["head"],
            o["backbone"],
            head_params=_params(o["params"]),
            quantize=o["quantize"],
            max_length=o["max_length"],
            prompt_chars=o["prompt_chars"],
            epochs=o["epochs"],
            batch_size=o["batch_size"],
            lr=o["lr"],
            backbone_lr=o["backbone_lr"],
            max_steps=o["max_steps"],
            seed=o["seed"],
            cache_dir=o["cache_dir"],
        )

    make()  # validate the options before any data is read
    return make


@contextmanager
def _bars(enabled: bool) -> Iterator[Callable[[str], Callable[..., None]] | None]:
    """A factory of progress callbacks ``bar(label)(done, total, *rest)`` on stderr."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def bar(label: str) -> Callable[..., None]:
            def update(done: int, total: int, loss: float | None = None) -> None:
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total, info="")
                info = f"loss {loss:.4f}" if loss is not None else ""
                progress.update(tasks[label], completed=done, total=total, info=info)

            return update

        yield bar


def _truncation(backbone: Any) -> int | None:
    """Texts the backbone cut at --max-length (printed, never silent); None if unknown."""
    n = getattr(backbone, "n_truncated_", None)
    if n is not None:
        click.echo(backbone.truncation_summary(), err=True)
    return n


def _show(bar: Any, label: str) -> Any:
    return bar(label) if bar else None


def _load_data(
    source: str,
    from_format: str | None,
    maps: tuple[str, ...],
    category: str | None,
    prompt_chars: int,
) -> Any:
    from prefkit.models.data import from_dataset

    return from_dataset(
        _open(source, from_format, maps), category=category, prompt_chars=prompt_chars
    )


def _quiet_option(f: Any) -> Any:
    return click.option("--quiet", is_flag=True, help="No progress bars.")(f)


@click.group("rm")
def rm() -> None:
    """Reward and preference models: train, evaluate, score.

    \b
    Example:
      prefkit rm train data/hh --head bt --out models/hh-bt
      prefkit rm eval data/hh --folds 5 --head bt
      prefkit rm score data/hh --model models/hh-bt --out data/hh-scored
    """


@rm.command("train")
@click.argument("source", metavar="DATASET")
@_source_options
@_model_options
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Checkpoint directory to write.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing checkpoint.")
@_quiet_option
def train_cmd(
    source: str,
    from_format: str | None,
    maps: tuple[str, ...],
    out: str,
    overwrite: bool,
    quiet: bool,
    **o: Any,
) -> None:
    """Fit a reward model on every label of DATASET the head reads and save it."""
    make = _make_model(o)
    data = _load_data(source, from_format, maps, None, o["prompt_chars"])
    with _bars(not quiet and sys.stderr.isatty()) as bar:
        model = make().fit(data, progress=_show(bar, "train"), embed_progress=_show(bar, "embed"))
    path = model.save(out, overwrite=overwrite)
    bb = model.backbone_
    truncated = _truncation(bb)
    metrics = {
        "history": model.history_,
        "n_responses": data.n_responses,
        "n_judgments": len(data.pairs),
        "n_lists": data.lists.n_lists,
        **({"n_truncated": truncated, "n_tokenized": bb.n_seen_} if truncated is not None else {}),
    }
    (path / "metrics.json").write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))
    last = model.history_[-1]
    click.echo(
        f"trained {model.head_.name} on {source}: {last['epoch']} epochs, {last['step']} steps, final loss {last['loss']:.4f}"
    )
    click.echo(f"wrote {path}")


@rm.command("eval")
@click.argument("source", metavar="DATASET")
@_source_options
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Checkpoint to evaluate (else cross-validate, see --folds).",
)
@click.option(
    "--folds",
    type=int,
    default=0,
    help="Cross-validate with this many prompt folds instead of --model.",
)
@_model_options
@click.option(
    "--category",
    default=None,
    help="Column of judgments or prompts naming categories (per-category accuracy).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the results as JSON.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the reliability diagram (PNG).",
)
@_quiet_option
def eval_cmd(
    source: str,
    from_format: str | None,
    maps: tuple[str, ...],
    model_path: str | None,
    folds: int,
    category: str | None,
    json_path: str | None,
    plot_path: str | None,
    quiet: bool,
    **o: Any,
) -> None:
    """Held-out accuracy, baselines, calibration, per-category and per-annotator results."""
    from prefkit.models.evaluate import cross_validate, evaluate, summarize_folds
    from prefkit.report.rm import print_eval, reliability_png

    if (model_path is None) == (folds == 0):
        raise PrefkitError(
            "rm eval needs either --model CHECKPOINT or --folds K (cross-validation)"
        )
    if model_path:
        ctx = click.get_current_context()
        given = [
            "--" + name.replace("_", "-").removesuffix("s" if name == "params" else "")
            for name in o
            if name != "cache_dir"
            and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise PrefkitError(
                f"rm eval --model: {', '.join(given)} set how a model is trained; the "
                "checkpoint keeps its own settings (drop them, or use --folds K)"
            )
    console = Console()
    with _bars(not quiet and sys.stderr.isatty()) as bar:
        if model_path:
            from prefkit.models.reward_model import RewardModel

            model = RewardModel.load(model_path, cache_dir=o["cache_dir"])
            data = _load_data(source, from_format, maps, category, model.prompt_chars)
            results = [evaluate(model, data)]
            payload: dict[str, Any] = {"model": model_path, "eval": results[0].to_dict()}
        else:
            make = _make_model(o)
            data = _load_data(source, from_format, maps, category, o["prompt_chars"])
            results = cross_validate(
                make, data, folds, seed=o["seed"], progress=_show(bar, "folds")
            )
            payload = {
                "folds": folds,
                "head": o["head"],
                "backbone": o["backbone"],
                "summary": summarize_folds(results),
                "per_fold": [r.to_dict() for r in results],
            }
    print_eval(
        console,
        results,
        title=f"{source}: " + (model_path or f"{folds}-fold CV, {o['head']} on {o['backbone']}"),
    )
    if json_path:
        Path(json_path).write_bytes(
            orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        click.echo(f"wrote {json_path}")
    if plot_path:
        Path(plot_path).write_bytes(reliability_png(results))
        click.echo(f"wrote {plot_path}")


@rm.command("score")
@click.argument("source", metavar="DATASET")
@_source_options
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Checkpoint to score with.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset directory to write.",
)
@click.option("--prefix", default="reward", show_default=True, help="Name of the added columns.")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), default=None, help="Embedding cache root."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@_quiet_option
def score_cmd(
    source: str,
    from_format: str | None,
    maps: tuple[str, ...],
    model_path: str,
    out: str,
    prefix: str,
    cache_dir: str | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Add reward columns to DATASET (responses.reward, judgments.reward_margin, ...)."""
    from prefkit.models.reward_model import RewardModel
    from prefkit.models.scoring import score_dataset

    model = RewardModel.load(model_path, cache_dir=cache_dir)
    ds = _open(source, from_format, maps)
    with _bars(not quiet and sys.stderr.isatty()) as bar:
        scored = score_dataset(
            ds, model, prefix=prefix, model_path=model_path, progress=_show(bar, "embed")
        )
    _truncation(model.backbone_)
    scored.save(out, overwrite=overwrite)
    added = [prefix] + (
        [f"{prefix}_margin", f"{prefix}_p_a", f"{prefix}_agrees"]
        if scored.num_rows("judgments")
        else []
    )
    click.echo(
        f"scored {scored.num_rows('responses'):,} responses; added {', '.join(added)}; wrote {out}"
    )


@rm.command("heads")
def heads_cmd() -> None:
    """List the heads, what they read, their papers and parameters."""
    from prefkit.models.heads.base import load_heads

    table = Table("head", "reads", "summary", "parameters", "paper", show_lines=True)
    for name, cls in load_heads().items():
        params = "\n".join(f"{k}={p.default!r}: {p.help}" for k, p in cls.params.items())
        table.add_row(name, cls.kind, cls.summary, params, cls.paper)
    Console().print(table)


__all__ = ["rm"]
