"""Read-only diagnostics of a preference dataset (`prefkit inspect`).

Checks live in one registry (:data:`CHECKS`); each returns typed :class:`Finding`
records that ``report/`` renders to the terminal, HTML and JSON.
"""

from prefkit.diagnostics.context import Context, InspectOptions
from prefkit.diagnostics.findings import SEVERITIES, Finding, InspectReport, Plot, Table
from prefkit.diagnostics.inspect import inspect
from prefkit.diagnostics.registry import CHECKS, Check, register

__all__ = [
    "CHECKS",
    "SEVERITIES",
    "Check",
    "Context",
    "Finding",
    "InspectOptions",
    "InspectReport",
    "Plot",
    "Table",
    "inspect",
    "register",
]
