"""The `prefkit inspect` report as one self-contained HTML page, and the docs table of checks.

The page has a summary card row (dataset, table counts, findings per severity, the worst
severity), a table of contents that doubles as an executive summary, then one section per
check in registry order: a severity badge, the plain-language verdict, the metrics, each
:class:`~prefkit.diagnostics.findings.Plot` drawn with matplotlib (Agg) and inlined as a
PNG data URI, and each worst-offenders table. Checks that did not apply are listed
compactly at the end with the reason.

The page runs no script and fetches nothing: a Content Security Policy allows only inline
styles and ``data:`` images, so it opens offline, can be mailed, and a browser reports any
attempt to load something else (the headless-Chromium test relies on that). Every text
from the dataset (prompts, ids, model names) is HTML-escaped.

    python -m prefkit.report.inspect docs/inspect.md   # refresh the checks table in the docs
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prefkit import __version__
from prefkit.diagnostics.findings import SEVERITIES, Finding, InspectReport, Plot, Table
from prefkit.report.html import OFFLINE_CSP, document, esc, figure_png, matplotlib

# --- constants ---------------------------------------------------------------------------

#: Text and background colour of each severity's badge (GitHub Primer palette).
SEVERITY_COLORS = {
    "error": ("#ffffff", "#cf222e"),
    "warning": ("#3b2300", "#f2cc60"),
    "info": ("#ffffff", "#0969da"),
    "ok": ("#ffffff", "#1a7f37"),
    "skipped": ("#57606a", "#eaeef2"),
}
#: Line colours of plot series, in order.
PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#57606a")
#: Scalar metrics shown as cards at the top of a finding; the rest go to a key/value grid.
HEADLINE_METRICS = 4
#: Display limits: characters per table cell, of an id kept on one line, rows of a nested
#: metric, of a tick label.
MAX_CELL_CHARS = 240
MAX_ID_CHARS = 48
MAX_NESTED_ROWS = 30
MAX_TICK_CHARS = 28
#: Markers around the generated checks table in docs/inspect.md.
DOCS_START = (
    "<!-- checks-table:start (generated: python -m prefkit.report.inspect docs/inspect.md) -->"
)
DOCS_END = "<!-- checks-table:end -->"

INSPECT_CSS = (
    "".join(f".sev-{s}{{color:{fg};background:{bg}}}" for s, (fg, bg) in SEVERITY_COLORS.items())
    + """
.badge{display:inline-block;border-radius:1rem;padding:.05rem .6rem;font-size:.75rem;font-weight:600;
text-transform:uppercase;letter-spacing:.03em;vertical-align:middle;margin-right:.4rem}
.card.worst b{display:table;border-radius:6px;padding:0 .5rem;margin-top:.15rem}
.card.name{max-width:24rem}.card.name b{overflow-wrap:anywhere;font-size:1.05rem}
.plots figure.wide{grid-column:1/-1}
.verdict{font-size:1.02rem;margin:.4rem 0 .8rem}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.1rem 1.5rem;
margin:.5rem 0;font-size:.88rem}.kv div{display:flex;justify-content:space-between;
border-bottom:1px dotted #d0d7de;padding:.1rem 0}.kv span{color:#57606a;margin-right:.5rem;
overflow-wrap:anywhere}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:1rem;margin:.8rem 0}
.plots figure{margin:0}figcaption{font-size:.85rem;color:#57606a}
h3{font-size:1.05rem;margin:1.4rem 0 .3rem}h4{font-size:.95rem;margin:1rem 0 .2rem}
table.toc td{vertical-align:top}table.toc a{color:#0969da;text-decoration:none}
td.txt,td.lid{text-align:left;max-width:36rem;overflow-wrap:break-word}td.lid{overflow-wrap:anywhere}
td.id{text-align:left;white-space:nowrap}
tr.skip td{color:#57606a}.skipline{color:#57606a;font-size:.9rem}
.scroll{overflow-x:auto}.scroll td{vertical-align:top}footer{margin-top:3rem;border-top:1px solid #d0d7de;padding-top:.5rem}
"""
)


# --- formatting (shared with the terminal summary) ---------------------------------------


def number(value: Any) -> str:
    """A metric value for people: thousands separators, about three significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if value == 0:
            return "0"
        return f"{value:.3g}"
    return str(value)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)


def headline(metrics: dict[str, Any], n: int = HEADLINE_METRICS) -> list[tuple[str, str]]:
    """The first ``n`` scalar metrics, formatted (checks put their headline ones first)."""
    return [(k, number(v)) for k, v in metrics.items() if is_scalar(v)][:n]


def worst(findings: Sequence[Finding]) -> str:
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")


def group_by_check(findings: Sequence[Finding]) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by their check, in the order the checks first appear (registry order)."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.check, []).append(f)
    return list(groups.items())


def check_title(check: str, findings: Sequence[Finding]) -> str:
    """The registry title of ``check``; its first finding's title for an unknown check."""
    from prefkit.diagnostics.registry import load_checks

    checks = load_checks()
    return checks[check].title if check in checks else findings[0].title


# --- HTML pieces -------------------------------------------------------------------------


def _badge(severity: str) -> str:
    return f'<span class="badge sev-{esc(severity)}">{esc(severity)}</span>'


def _anchor(check: str) -> str:
    return "check-" + re.sub(r"[^A-Za-z0-9_-]", "-", check)


def _cell(value: Any) -> str:
    text = number(value) if is_scalar(value) else _compact(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    return esc(text)


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_compact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        shown = ", ".join(_compact(v) for v in value[:12])
        return shown + (f", … (+{len(value) - 12})" if len(value) > 12 else "")
    return number(value)


def _column_class(rows: Sequence[Sequence[Any]], j: int) -> str:
    """``""`` (numbers, right-aligned), ``"id"`` (short tokens kept on one line), ``"lid"``
    (long tokens, broken anywhere) or ``"txt"`` (words, wrapped)."""
    values = [r[j] for r in rows if j < len(r) and r[j] is not None]
    if values and all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values
    ):
        return ""
    if values and all(isinstance(v, str) and not any(c.isspace() for c in v) for v in values):
        return "id" if max(len(v) for v in values) <= MAX_ID_CHARS else "lid"
    return "txt"


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table: numbers right-aligned, ids on one line, texts wrapped."""
    kinds = [_column_class(rows, j) for j in range(len(columns))]
    head = "".join(
        f'<th class="{"" if kinds[j] == "" else "l"}">{esc(c)}</th>' for j, c in enumerate(columns)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{kinds[j] if j < len(kinds) else "txt"}">{_cell(v)}</td>'
            for j, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _offenders(t: Table) -> str:
    note = f'<p class="muted">{esc(t.note)}</p>' if t.note else ""
    if not t.rows:
        return f'<h4>{esc(t.title)}</h4><p class="muted">none</p>{note}'
    return f"<h4>{esc(t.title)}</h4>{html_table(t.columns, t.rows)}{note}"


def _nested_metric(key: str, value: Any) -> str:
    """A metric holding a dict or list, as a small table (longer ones are cut, visibly)."""
    rows: list[list[Any]]
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()) and value:
        cols: list[str] = []
        for v in value.values():
            cols += [c for c in v if c not in cols]
        columns = ["", *cols]
        rows = [[k, *[v.get(c) for c in cols]] for k, v in value.items()]
    elif isinstance(value, dict):
        columns, rows = ["", "value"], [[k, v] for k, v in value.items()]
    elif value and all(isinstance(v, dict) for v in value):
        columns = []
        for v in value:
            columns += [c for c in v if c not in columns]
        rows = [[v.get(c) for c in columns] for v in value]
    else:
        return f'<div class="kv"><div><span>{esc(key)}</span>{_cell(value)}</div></div>'
    more = len(rows) - MAX_NESTED_ROWS
    note = (
        f'<p class="muted">… {more:,} more rows in the JSON output (--json).</p>'
        if more > 0
        else ""
    )
    return f"<h4>{esc(key)}</h4>{html_table(columns, rows[:MAX_NESTED_ROWS])}{note}"


def _metrics(metrics: dict[str, Any]) -> str:
    scalars = [(k, v) for k, v in metrics.items() if is_scalar(v)]
    nested = [(k, v) for k, v in metrics.items() if not is_scalar(v)]
    top, rest = scalars[:HEADLINE_METRICS], scalars[HEADLINE_METRICS:]
    out = ""
    if top:
        out += '<div class="cards">' + "".join(
            f'<div class="card"><span class="muted">{esc(k)}</span><b>{esc(number(v))}</b></div>'
            for k, v in top
        )
        out += "</div>"
    if rest:
        out += (
            '<div class="kv">'
            + "".join(f"<div><span>{esc(k)}</span>{esc(number(v))}</div>" for k, v in rest)
            + "</div>"
        )
    for k, v in nested:
        out += _nested_metric(k, v)
    return out


def _ids_line(ids: dict[str, list[str]]) -> str:
    parts = [f"{len(v):,} {k}" for k, v in ids.items() if v]
    if not parts:
        return ""
    return f'<p class="muted">Concerns {esc(", ".join(parts))} (all listed in the JSON output).</p>'


# --- plots -------------------------------------------------------------------------------


def _mpl_text(text: Any, limit: int | None = None) -> str:
    """Text safe for matplotlib: ``$`` would start mathtext."""
    s = str(text)
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Numbers as floats, ``None`` (a non-finite value after JSON) as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _numeric_x(x: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """x as numbers; positions plus tick labels when the values are not numbers."""
    try:
        return _floats(x), None
    except (TypeError, ValueError):
        return np.arange(len(x), dtype=float), [_mpl_text(v, MAX_TICK_CHARS) for v in x]


def _log_spaced(edges: np.ndarray) -> bool:
    """Geometric bin edges (after an optional 0) spanning a decade or more: draw on a log axis."""
    pos = edges[edges > 0]
    if len(pos) < 4 or len(pos) < len(edges) - 1 or not np.all(np.isfinite(pos)):
        return False
    steps = np.diff(np.log(pos))
    return bool(
        steps.min() > 0
        and steps.max() - steps.min() <= 0.1 * steps.mean() + 0.01
        and pos[-1] / pos[0] >= 10
    )


def draw_plot(plot: Plot) -> str:
    """One plot as a ``<figure>`` holding an inline PNG."""
    plt = matplotlib()
    n_x = len(plot.x)
    wide = plot.kind == "bar" and n_x > 12
    fig, ax = plt.subplots(figsize=(min(11.0, 4.0 + 0.22 * n_x) if wide else 6.0, 3.3))
    try:
        _draw(plot, ax, n_x)
    except BaseException:
        plt.close(fig)
        raise
    img = figure_png(fig).replace('alt="plot"', f'alt="{esc(plot.title)}"', 1)
    return f'<figure class="wide">{img}</figure>' if wide else f"<figure>{img}</figure>"


def _draw(plot: Plot, ax: Any, n_x: int) -> None:
    """Draw ``plot`` on the matplotlib axes ``ax`` by its kind."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    series = list(plot.series.items())
    if not plot.x or not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    elif plot.kind == "bar":
        pos = np.arange(n_x, dtype=float)
        width = 0.8 / len(series)
        for i, (name, ys) in enumerate(series):
            ax.bar(
                pos + (i - (len(series) - 1) / 2) * width,
                _floats(ys),
                width,
                label=_mpl_text(name),
                color=PALETTE[i % len(PALETTE)],
            )
        labels = [_mpl_text(v, MAX_TICK_CHARS) for v in plot.x]
        rotate = n_x > 6 or max(len(s) for s in labels) > 8
        if n_x <= 80:
            ax.set_xticks(
                pos, labels, rotation=60 if rotate else 0, ha="right" if rotate else "center"
            )
            ax.tick_params(axis="x", labelsize=8 if n_x > 20 else 9)
        else:
            ax.set_xticks([])
            ax.set_xlabel(f"{n_x:,} categories")
    elif plot.kind == "hist":
        edges = _floats(plot.x)
        for i, (name, counts) in enumerate(series):
            ax.stairs(
                np.nan_to_num(_floats(counts)),
                edges,
                fill=len(series) == 1,
                alpha=0.55 if len(series) == 1 else 1.0,
                lw=1.5,
                label=_mpl_text(name),
                color=PALETTE[i % len(PALETTE)],
            )
        if _log_spaced(edges):
            # log-normal lengths binned geometrically; symlog keeps a [0, 1) bin visible
            first = float(edges[edges > 0][0])
            ax.set_xscale(
                "symlog" if edges[0] <= 0 else "log",
                **({"linthresh": first} if edges[0] <= 0 else {}),
            )
            # plain numbers at the decades; the default mathtext labels of minor ticks overlap
            if edges[0] > 0:
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        x, ticks = _numeric_x(plot.x)
        for i, (name, ys) in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            if plot.kind == "line":
                ax.plot(
                    x, _floats(ys), marker="o", ms=3.5, lw=1.6, label=_mpl_text(name), color=color
                )
            else:
                alpha = 0.8 if n_x <= 200 else max(0.15, 200 / n_x)
                ax.scatter(x, _floats(ys), s=14, alpha=alpha, label=_mpl_text(name), color=color)
        if ticks is not None:
            ax.set_xticks(x, ticks, rotation=45 if len(ticks) > 6 else 0, ha="right")
    if plot.reference is not None and plot.x and series:
        ax.axhline(
            plot.reference, color="#57606a", ls="--", lw=1, label=f"reference {plot.reference:g}"
        )
    if plot.xlabel:
        ax.set_xlabel(_mpl_text(plot.xlabel))
    if plot.ylabel:
        ax.set_ylabel(_mpl_text(plot.ylabel))
    ax.set_title(_mpl_text(plot.title), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if plot.x and series and (len(series) > 1 or plot.reference is not None):
        ax.legend(fontsize=8, frameon=False)


def _plots(plots: Sequence[Plot]) -> str:
    if not plots:
        return ""
    figures = []
    for p in plots:
        try:
            figures.append(draw_plot(p))
        except Exception as exc:  # a bad plot must not lose the rest of the report
            figures.append(
                f'<div class="warn">plot {esc(p.title)} could not be drawn: '
                f"{esc(type(exc).__name__)}: {esc(exc)}</div>"
            )
    return f'<div class="plots">{"".join(figures)}</div>'


# --- sections ----------------------------------------------------------------------------


def _finding_body(f: Finding) -> str:
    return (
        f'<p class="verdict">{esc(f.verdict)}</p>'
        + _metrics(f.metrics)
        + _plots(f.plots)
        + "".join(_offenders(t) for t in f.tables)
        + _ids_line(f.ids)
    )


def _check_section(check: str, findings: list[Finding]) -> str:
    title = check_title(check, findings)
    shown = [f for f in findings if f.severity != "skipped"]
    parts = [f"<h2>{_badge(worst(findings))}{esc(title)}</h2>"]
    for f in shown:
        if len(shown) > 1 or f.title != title:
            parts.append(f"<h3>{_badge(f.severity)}{esc(f.title)}</h3>")
        parts.append(_finding_body(f))
    for f in findings:
        if f.severity == "skipped":
            parts.append(
                f'<p class="skipline">{_badge("skipped")}<b>{esc(f.title)}</b>: {esc(f.verdict)}</p>'
            )
    return f'<section id="{_anchor(check)}">{"".join(parts)}</section>'


def _summary(report: InspectReport, groups: list[tuple[str, list[Finding]]]) -> str:
    counts = [(k, v) for k, v in report.counts.items() if v] or list(report.counts.items())
    sev = report.by_severity()
    fg, bg = SEVERITY_COLORS[report.severity]
    items = [
        f'<div class="card name"><span class="muted">dataset</span><b>{esc(report.dataset or "–")}</b></div>'
    ]
    items += [
        f'<div class="card"><span class="muted">{esc(k)}</span><b>{esc(number(v))}</b></div>'
        for k, v in counts
    ]
    items.append(
        f'<div class="card worst"><span class="muted">worst severity</span>'
        f'<b style="color:{fg};background:{bg}">{esc(report.severity)}</b></div>'
    )
    tally = " ".join(
        f"{_badge(s)}{sev[s]:,}"
        for s in reversed(SEVERITIES)
        if sev[s] or s in ("error", "warning")
    )
    items.append(
        f'<div class="card"><span class="muted">findings ({len(report.findings):,}) in '
        f'{len(groups):,} checks</span><div style="margin-top:.35rem">{tally}</div></div>'
    )
    return f'<div class="cards">{"".join(items)}</div>'


def _toc(report: InspectReport, groups: list[tuple[str, list[Finding]]]) -> str:
    rows = []
    for check, findings in groups:
        sev = worst(findings)
        skipped = sev == "skipped"
        target = f"skip-{_anchor(check)}" if skipped else _anchor(check)
        lead = next(f for f in findings if f.severity == sev)  # the verdict behind the badge
        seconds = report.seconds.get(check)
        rows.append(
            f'<tr class="{"skip" if skipped else ""}"><td class="l">'
            f'<a href="#{target}">{esc(check_title(check, findings))}</a></td>'
            f'<td class="l">{_badge(sev)}</td><td class="txt">{esc(lead.verdict)}</td>'
            f"<td>{esc(number(seconds)) if seconds is not None else ''}</td></tr>"
        )
    return (
        '<nav><h2>Contents</h2><div class="scroll"><table class="toc"><thead><tr>'
        '<th class="l">check</th><th class="l">severity</th><th class="l">verdict</th>'
        f"<th>seconds</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div></nav>"
    )


def _skipped_section(groups: list[tuple[str, list[Finding]]]) -> str:
    rows = []
    for check, findings in groups:
        if worst(findings) != "skipped":
            continue
        reasons = "; ".join(dict.fromkeys(f.verdict for f in findings))
        rows.append(
            f'<tr id="skip-{_anchor(check)}"><td class="l">{esc(check_title(check, findings))}</td>'
            f'<td class="txt">{esc(reasons)}</td></tr>'
        )
    if not rows:
        return ""
    return (
        '<section id="skipped"><h2>Not applicable to this dataset</h2>'
        '<table><thead><tr><th class="l">check</th><th class="l">why it was skipped</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _footer(report: InspectReport) -> str:
    opts = {k: v for k, v in report.options.items() if v not in (None, "", [], {})}
    shown = "; ".join(f"{k}: {_compact(v)}" for k, v in opts.items())
    total = sum(report.seconds.values())
    return (
        f'<footer class="muted">prefkit {esc(__version__)} · fingerprint '
        f"{esc(report.fingerprint)} · {esc(number(total))} s"
        + (f" · {esc(shown)}" if shown else "")
        + "</footer>"
    )


# --- entry points ------------------------------------------------------------------------


def render_html(report: InspectReport, title: str = "prefkit inspect") -> str:
    """The whole report as one HTML document (no script, no external resource)."""
    groups = group_by_check(report.findings)
    kinds = ", ".join(report.kinds) or "no feedback"
    subtitle = f"{report.dataset} · {kinds}" if report.dataset else kinds
    body = (
        f'<h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>'
        + _summary(report, groups)
        + _toc(report, groups)
        + "".join(
            _check_section(check, findings)
            for check, findings in groups
            if worst(findings) != "skipped"
        )
        + _skipped_section(groups)
        + _footer(report)
    )
    return document(title, body, extra_css=INSPECT_CSS, csp=OFFLINE_CSP)


def write_html(report: InspectReport, path: str | Path, title: str = "prefkit inspect") -> None:
    Path(path).write_text(render_html(report, title), encoding="utf-8")


def checks_table_markdown() -> str:
    """The Markdown table of registered checks for docs/inspect.md (derived from the registry)."""
    from prefkit.diagnostics.registry import load_checks

    lines = ["| check | section | what it looks for |", "|---|---|---|"]
    for c in load_checks().values():
        summary = c.summary.replace("|", "\\|")
        if c.needs_against:
            summary += " (runs with `--against`)"
        lines.append(f"| [`{c.name}`](inspect/{c.name}.md) | {c.title} | {summary} |")
    return "\n".join(lines) + "\n"


def update_docs(path: str | Path) -> bool:
    """Rewrite the generated checks table between the markers in ``path``; True if changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    start, end = text.index(DOCS_START) + len(DOCS_START), text.index(DOCS_END)
    new = text[:start] + "\n" + checks_table_markdown() + text[end:]
    if new != text:
        p.write_text(new, encoding="utf-8")
    return new != text


__all__ = [
    "checks_table_markdown",
    "draw_plot",
    "headline",
    "number",
    "render_html",
    "update_docs",
    "write_html",
]

if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if update_docs(arg) else 'up to date'}")
