"""Typed results of `prefkit inspect`: findings, their tables and plots, and the report.

A check returns :class:`Finding` records. They hold only plain data (numbers, strings,
lists), so one record renders to the terminal, to HTML and to JSON alike; only
``report/`` and ``cli/`` turn them into text (DESIGN.md §4).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

#: Severities from harmless to blocking; "skipped" means the check did not apply.
SEVERITIES = ("skipped", "ok", "info", "warning", "error")
PLOT_KINDS = ("bar", "line", "hist", "scatter")


@dataclass
class Table:
    """A small table for people: e.g. the worst offenders, by id.

    ``rows`` hold plain values; cells that are ids are ordinary strings so a reader can
    paste them into ``prefkit`` filters.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class Plot:
    """A plot as data; ``report/`` draws it.

    kind
        ``bar`` (``x`` are category labels), ``line`` and ``scatter`` (``x`` numbers, one
        y-list per series), ``hist`` (``x`` are the ``n + 1`` bin edges, each series
        ``n`` counts).
    reference
        Optional horizontal reference line (e.g. 0.5 for "no bias").
    """

    kind: str
    title: str
    x: list[Any]
    series: dict[str, list[float]]
    xlabel: str = ""
    ylabel: str = ""
    reference: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"plot kind {self.kind!r} not in {PLOT_KINDS}")
        n = len(self.x) - 1 if self.kind == "hist" else len(self.x)
        for name, ys in self.series.items():
            if len(ys) != n:
                raise ValueError(
                    f"plot {self.title!r}: series {name!r} has {len(ys)} values, x {n}"
                )


@dataclass
class Finding:
    """One thing a check found.

    Parameters
    ----------
    check
        Registry name of the check that produced it.
    title
        Short heading ("Length bias").
    severity
        One of :data:`SEVERITIES`.
    verdict
        One or two plain-language sentences: what it means for training.
    metrics
        Named numbers (JSON-serialisable); the headline ones first.
    tables, plots
        Worst offenders and pictures.
    ids
        The ids this finding concerns, by id kind (``"judgment_id"``, ``"prompt_id"``,
        ``"response_id"``, ``"annotator_id"``): all of them, not only those shown.
    """

    check: str
    title: str
    severity: str
    verdict: str
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not in {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def skipped(check: str, title: str, why: str) -> Finding:
    """The finding of a check that does not apply to this dataset (``why`` says why)."""
    return Finding(check, title, "skipped", why)


def snippet(text: str | None, width: int) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``width`` characters with
    an ellipsis; a table cell that shows which text a row is about."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@dataclass
class InspectReport:
    """Everything `prefkit inspect` found in one dataset."""

    dataset: str
    fingerprint: str
    counts: dict[str, int]
    kinds: list[str]
    findings: list[Finding]
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """The worst severity among the findings ("ok" when nothing was found)."""
        ranks = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[max([*ranks, SEVERITIES.index("ok")])]

    def by_severity(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out

    def findings_of(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        d = _plain(asdict(self))
        d["severity"] = self.severity
        return d

    def to_json(self, path: str | Path) -> None:
        Path(path).write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InspectReport:
        findings = [
            Finding(
                **{
                    **f,
                    "tables": [Table(**t) for t in f["tables"]],
                    "plots": [Plot(**p) for p in f["plots"]],
                }
            )
            for f in d["findings"]
        ]
        keep = {
            k: d[k] for k in ("dataset", "fingerprint", "counts", "kinds", "seconds", "options")
        }
        return cls(findings=findings, **keep)


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = [
    "PLOT_KINDS",
    "SEVERITIES",
    "Finding",
    "InspectReport",
    "Plot",
    "Table",
    "skipped",
    "snippet",
]
