"""Curation steps: `Dataset -> Dataset` transforms in one registry, each recorded in the
manifest lineage with its parameters, input and output fingerprints, and the rows it
removed or added and why (DESIGN.md §1, §3).

A step function takes the dataset and its parameters and returns an :class:`Outcome`
(the replaced tables, the reasons rows went, an optional row-level report); :func:`apply`
validates the parameters, runs it and writes the lineage entry, so no step can forget to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from prefkit.diagnostics.findings import _plain
from prefkit.errors import PrefkitError
from prefkit.schema import ID_COLUMN, TABLES

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

#: Columns of a step's row-level report (what went, and why).
REPORT_SCHEMA = pa.schema(
    [("table", pa.string()), ("id", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)


@dataclass(frozen=True)
class Param:
    """One parameter of a step. ``default`` fixes its type (``None``: an optional string);
    ``choices`` restricts it; ``help`` is one line for the CLI and docs."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    required: bool = False

    def convert(self, step: str, value: Any) -> Any:
        """``value`` as this parameter's type, or a :class:`PrefkitError` naming it."""
        if value is None:
            if self.required:
                raise PrefkitError(f"curate {step}: parameter {self.name!r} is required")
            return None
        kind = type(self.default) if self.default is not None else str
        try:
            if kind is bool and isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = low in ("1", "true", "yes", "on")
            elif (kind in (int, float) and isinstance(value, bool)) or (
                kind is int and isinstance(value, float | str) and float(value) != int(float(value))
            ):
                raise ValueError
            elif kind in (list, tuple) and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            value = kind(value)
        except (TypeError, ValueError):
            raise PrefkitError(
                f"curate {step}: parameter {self.name!r} expects {kind.__name__}, got {value!r}"
            ) from None
        if self.choices and value not in self.choices:
            raise PrefkitError(
                f"curate {step}: parameter {self.name!r} must be one of "
                f"{', '.join(self.choices)}, got {value!r}"
            )
        return value


@dataclass
class Outcome:
    """What a step function returns.

    tables
        The tables it replaced (the others are kept as they are).
    reasons
        Rows removed per table and reason, e.g. ``{"judgments": {"tie": 12}}``; rows
        added likewise under ``added``.
    report
        Optional row-level report (:data:`REPORT_SCHEMA`): every row that went and why.
    info
        Extra numbers worth keeping in the lineage (e.g. a trade-off curve).
    """

    tables: dict[str, pa.Table]
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    added: dict[str, dict[str, int]] = field(default_factory=dict)
    report: pa.Table | None = None
    info: dict[str, Any] = field(default_factory=dict)


def merge_reasons(parts: Iterable[Outcome]) -> dict[str, dict[str, int]]:
    """The removed-row counts of several outcomes, summed per table and reason."""
    reasons: dict[str, dict[str, int]] = {}
    for o in parts:
        for table, by in o.reasons.items():
            into = reasons.setdefault(table, {})
            for why, k in by.items():
                into[why] = into.get(why, 0) + k
    return reasons


@dataclass(frozen=True)
class Step:
    """A registered curation step.

    name
        Registry key (``prefkit curate NAME``, a recipe's step name).
    summary
        One line for help and docs.
    run
        ``run(ds, **params) -> Outcome``.
    params
        Its parameters.
    paper
        The method's source, cited in help and docs ("" for plain bookkeeping).
    """

    name: str
    summary: str
    run: Callable[..., Outcome]
    params: tuple[Param, ...] = ()
    paper: str = ""

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """All parameters, given ones converted and checked, the rest at their defaults."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise PrefkitError(
                f"curate {self.name}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(known) or 'none'}"
            )
        for n, p in known.items():
            if p.required and given.get(n) in (None, ""):
                raise PrefkitError(f"curate {self.name}: parameter {n!r} is required")
        return {n: p.convert(self.name, given.get(n, p.default)) for n, p in known.items()}


#: Every curation step by name, in registration order.
STEPS: dict[str, Step] = {}


def register(step: Step) -> Step:
    if step.name in STEPS:
        raise ValueError(f"curation step {step.name!r} registered twice")
    STEPS[step.name] = step
    return step


def get_step(name: str) -> Step:
    import prefkit.curation.steps  # noqa: F401  (registers every step)

    if name not in STEPS:
        raise PrefkitError(f"unknown curation step {name!r}; known: {', '.join(STEPS)}")
    return STEPS[name]


def run_step(ds: Dataset, name: str, **params: Any) -> tuple[Dataset, Outcome]:
    """Run one step; return the new dataset (lineage appended) and the step's outcome."""
    step = get_step(name)
    resolved = step.resolve(params)
    outcome = step.run(ds, **resolved)
    unknown = set(outcome.tables) - set(TABLES)
    if unknown:
        raise ValueError(f"step {name} returned unknown tables {sorted(unknown)}")
    removed, added = _row_changes(ds, outcome.tables)
    entry = {
        "step": name,
        "params": _plain(resolved),
        "removed": removed,
        "added": added,
        "reasons": outcome.reasons,
        "added_reasons": outcome.added,
    }
    if outcome.info:
        entry["info"] = _plain(outcome.info)
    return ds.with_tables(step=entry, **outcome.tables), outcome


def apply(ds: Dataset, name: str, **params: Any) -> Dataset:
    """Run the curation step ``name`` on ``ds`` and return the new dataset.

    Parameters are checked against the step's declared ones (unknown or mistyped ones
    raise :class:`PrefkitError`); the manifest lineage gains an entry with the step, all
    its parameters, input/output fingerprints and the rows removed/added per table.
    """
    return run_step(ds, name, **params)[0]


def _row_changes(ds: Dataset, tables: Mapping[str, pa.Table]) -> tuple[dict[str, int], ...]:
    """Rows removed and added per replaced table, by id."""
    removed: dict[str, int] = {}
    added: dict[str, int] = {}
    for name, new in tables.items():
        key = ID_COLUMN[name]
        old_ids = ds.table(name).column(key)
        new_ids = new.column(key)
        gone = len(old_ids) - int(pc.sum(pc.is_in(old_ids, value_set=new_ids)).as_py() or 0)
        fresh = len(new_ids) - int(pc.sum(pc.is_in(new_ids, value_set=old_ids)).as_py() or 0)
        if gone:
            removed[name] = gone
        if fresh:
            added[name] = fresh
    return removed, added


def report_table(
    table: str, ids: pa.Array | list[str], reason: str, detail: Any = None
) -> pa.Table:
    """Report rows: ``ids`` of ``table`` went for ``reason`` (``detail`` per row or shared)."""
    ids = pa.array(ids, pa.string()) if isinstance(ids, list) else ids.cast(pa.string())
    n = len(ids)
    if detail is None or isinstance(detail, str):
        details = pa.array([detail] * n, pa.string())
    else:
        details = pa.array(detail, pa.string())
    return pa.table(
        [pa.array([table] * n, pa.string()), ids, pa.array([reason] * n, pa.string()), details],
        schema=REPORT_SCHEMA,
    )


__all__ = [
    "REPORT_SCHEMA",
    "STEPS",
    "Outcome",
    "Param",
    "Step",
    "apply",
    "get_step",
    "merge_reasons",
    "register",
    "report_table",
    "run_step",
]
