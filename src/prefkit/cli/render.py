"""Terminal rendering (rich) of the records that library functions return."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from prefkit.info import Info
from prefkit.ratings.arena import ArenaReport
from prefkit.schema.validate import Problem

console = Console()


def _kv(title: str, rows: Mapping[str, Any]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows.items():
        t.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
    return t


def render_info(name: str, info: Info) -> None:
    console.print(f"[bold]{name}[/bold]  fingerprint {info.fingerprint[:16]}")
    console.print(_kv("tables", info.counts))
    console.print(f"[bold]feedback kinds:[/bold] {', '.join(info.kinds) or 'none'}")
    if info.outcomes:
        total = sum(info.outcomes.values())
        mix = {k: f"{v:,} ({v / total:.1%})" for k, v in info.outcomes.items() if v}
        console.print(_kv("outcomes", mix))
        jp = info.judges_per_pair
        console.print(
            f"[bold]judgments per pair:[/bold] mean {jp['mean']}, max {jp['max']} over {jp['pairs']:,} pairs"
        )
    if info.annotators:
        a = info.annotators
        console.print(
            f"[bold]annotators:[/bold] {a['distinct_in_judgments']:,} in judgments, "
            f"{a['in_table']:,} profiled; kinds {a['kinds']}"
        )
    if info.sources:
        more = (
            f" (top {len(info.sources)} of {info.n_sources})"
            if info.n_sources > len(info.sources)
            else ""
        )
        console.print(_kv(f"sources{more}", info.sources))
    if info.rankings:
        console.print(_kv("rankings", info.rankings))
    if info.scores:
        console.print(_kv("scores", info.scores))
    if info.attributes:
        t = Table(title="attributes", title_justify="left")
        for col in ("name", "n", "min", "max", "mean"):
            t.add_column(col)
        for k, v in info.attributes.items():
            t.add_row(k, f"{v['n']:,}", str(v["min"]), str(v["max"]), str(v["mean"]))
        console.print(t)
    o = info.origin
    if o.get("source"):
        console.print(f"[bold]source:[/bold] {o['source']}")
    if o.get("lineage"):
        console.print(f"[bold]lineage:[/bold] {' -> '.join(str(s) for s in o['lineage'])}")
    q = o.get("quarantine")
    if q:
        console.print(
            f"[bold]records:[/bold] read {q['read']:,} = kept {q['kept']:,} + quarantined {q['quarantined']:,}"
        )
    if o.get("planted"):
        console.print(f"[bold]planted ground truth:[/bold] {', '.join(o['planted'])}")


def render_problems(name: str, problems: list[Problem]) -> None:
    if not problems:
        console.print(f"[green]{name}: no problems found[/green]")
        return
    t = Table(title=f"{name}: {len(problems)} problem(s)", title_justify="left")
    t.add_column("severity")
    t.add_column("check", no_wrap=True)
    for col in ("table", "rows", "what", "examples"):
        t.add_column(col)
    for p in problems:
        color = "red" if p.severity == "error" else "yellow"
        t.add_row(
            f"[{color}]{p.severity}[/{color}]",
            p.code,
            p.table,
            f"{p.count:,}",
            p.message,
            ", ".join(p.examples[:3]),
        )
    console.print(t)


def render_formats(registry: Mapping[str, Any]) -> None:
    t = Table(title="formats", title_justify="left")
    for col in ("name", "holds", "write", "what"):
        t.add_column(col)
    for name in sorted(registry):
        f = registry[name]
        t.add_row(name, ", ".join(f.kinds), "yes" if f.write else "no", f.summary)
    console.print(t)


def render_arena(name: str, report: ArenaReport) -> None:
    r = report.result
    how = f"{r.method}" + (f", {r.rounds} rounds" if r.rounds else "")
    t = Table(
        title=f"{name}: {report.n_battles:,} battles, {len(r.models)} models, ties {r.ties}, {how}",
        title_justify="left",
    )
    for col, justify in (
        ("rank", "right"),
        ("model", "left"),
        ("rating", "right"),
        (f"{int(r.ci * 100)}% interval", "right"),
        ("battles", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in r.to_table().to_pylist():
        t.add_row(
            str(row["rank"]),
            row["model"],
            f"{row['rating']:.1f}",
            f"{row['lower']:.1f} – {row['upper']:.1f}",
            f"{row['battles']:,}",
        )
    console.print(t)
    if r.tie_param:
        tp = r.tie_param
        console.print(f"[bold]{tp['name']}[/bold] = {tp['value']:.4f}")
    s = report.style
    if s is not None:
        st = Table(
            title="style control (log-odds per std of the normalised difference)",
            title_justify="left",
        )
        for col in ("covariate", "coef", "interval", "p-value"):
            st.add_column(col)
        for f, c, lo, hi, p in zip(
            s.features, s.coef, s.coef_lower, s.coef_upper, s.pvalue, strict=True
        ):
            st.add_row(f, f"{c:.3f}", f"{lo:.3f} – {hi:.3f}", f"{p:.2g}")
        console.print(st)
        if s.dropped_battles:
            console.print(
                f"style control left out {s.dropped_battles:,} battles whose responses have no text"
            )
        shifts = sorted(
            zip(s.models, s.controlled, s.uncontrolled, strict=True), key=lambda x: -x[1]
        )
        console.print(
            "[bold]controlled ratings:[/bold] "
            + ", ".join(f"{m} {c:.0f} ({c - u:+.0f})" for m, c, u in shifts)
        )
    warnings = list(report.warnings)  # already holds the fit's warnings
    if r.degenerate_rounds:
        warnings.append(
            f"{r.degenerate_rounds} degenerate bootstrap round(s) ({r.degenerate_policy}): {r.degenerate_models}"
        )
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
