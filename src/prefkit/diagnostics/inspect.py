"""`inspect`: run the registered checks on a dataset and collect their findings.

Each check is independent; one that fails on malformed data raises a
:class:`~prefkit.errors.PrefkitError` naming itself instead of hiding the others.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefkit.diagnostics.context import Context, InspectOptions, Progress
from prefkit.diagnostics.findings import InspectReport, skipped
from prefkit.diagnostics.registry import load_checks, resolve

if TYPE_CHECKING:
    from prefkit.dataset import Dataset


def inspect(
    ds: Dataset,
    checks: Sequence[str] | None = None,
    options: InspectOptions | None = None,
    progress: Progress | None = None,
    name: str = "",
    **option_overrides: Any,
) -> InspectReport:
    """Run checks on ``ds`` and return their findings.

    Parameters
    ----------
    ds
        The dataset.
    checks
        Registry names (see :data:`prefkit.diagnostics.CHECKS`); all when None.
    options
        :class:`InspectOptions`; keyword overrides (``against=...``, ``embed="never"``)
        build one when not given.
    progress
        Progress factory (the CLI passes a rich one).
    name
        Dataset name shown in reports.
    """
    load_checks()
    options = options or InspectOptions(**option_overrides)
    resolve(list(options.params))  # a misspelt check name in params is an error
    ctx = Context(ds, options, progress)
    findings, seconds = [], {}
    chosen = resolve(list(checks) if checks else None)
    for check in ctx.track(chosen, "inspect", len(chosen)):
        start = time.perf_counter()
        if check.needs_against and not options.against:
            findings.append(skipped(check.name, check.title, "no eval prompts given (--against)"))
        else:
            findings.extend(check.run(ctx))
        seconds[check.name] = round(time.perf_counter() - start, 3)
    return InspectReport(
        dataset=name,
        fingerprint=ds.fingerprint(),
        counts=ds.counts(),
        kinds=ds.kinds(),
        findings=findings,
        seconds=seconds,
        options={
            "checks": [c.name for c in chosen],
            "against": options.against_name or (len(options.against) if options.against else None),
            "tokenizer": options.tokenizer,
            "embed": options.embed,
            "seed": options.seed,
            "params": {k: dict(v) for k, v in options.params.items()},
            "unused_params": sorted(
                f"{check}.{key}"
                for check, keys in options.params.items()
                for key in keys
                if (check, key) not in ctx.used_params and check in seconds
            ),
        },
    )


__all__ = ["inspect"]
