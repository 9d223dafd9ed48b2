"""The registry of inspect checks: the only list of their names (DESIGN.md §3).

A check is a function ``Context -> list[Finding]``. Help text, the docs table, the
``--checks`` choices and the contract test are all derived from :data:`CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    from prefkit.diagnostics.context import Context
    from prefkit.diagnostics.findings import Finding


@dataclass(frozen=True)
class Check:
    """One inspect check.

    name
        Registry key (``--checks`` value).
    title
        Section heading in reports.
    summary
        One line: what it looks for (shown by ``prefkit inspect --help`` and in docs).
    run
        The check itself; returns one or more findings (a skipped finding when it does
        not apply).
    needs_against
        Only runs when eval prompts are given (``--against``).
    """

    name: str
    title: str
    summary: str
    run: Callable[[Context], list[Finding]]
    needs_against: bool = False


#: All checks by name, in report order (the order of registration).
CHECKS: dict[str, Check] = {}


def register(check: Check) -> Check:
    if check.name in CHECKS:
        raise ValueError(f"check {check.name!r} registered twice")
    CHECKS[check.name] = check
    return check


def load_checks() -> dict[str, Check]:
    """The registry with every check module imported (they register on import)."""
    import prefkit.diagnostics.checks  # noqa: F401

    return CHECKS


def resolve(names: list[str] | None) -> list[Check]:
    """The checks to run: all of them for ``None``, else the named ones (checked)."""
    if not names:
        return list(CHECKS.values())
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise PrefkitError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return [CHECKS[n] for n in CHECKS if n in names]


__all__ = ["CHECKS", "Check", "load_checks", "register", "resolve"]
