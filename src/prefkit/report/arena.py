"""The arena leaderboard as a self-contained HTML page, a CSV and terminal text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv

from prefkit.ratings.arena import ArenaReport
from prefkit.report.html import cards, esc, figure_png, matplotlib, page, table


def _ratings_plot(report: ArenaReport) -> str:
    plt = matplotlib()
    r = report.result
    order = r.order()[::-1]  # best at the top
    y = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.2))
    rating, lo, hi = r.rating[order], r.lower[order], r.upper[order]
    ax.errorbar(
        rating,
        y,
        xerr=[rating - lo, hi - rating],
        fmt="o",
        color="#0969da",
        ecolor="#8c959f",
        capsize=3,
    )
    ax.set_yticks(y, [r.models[k] for k in order])
    ax.set_xlabel(f"rating ({r.method} {int(r.ci * 100)}% interval)")
    ax.grid(axis="x", alpha=0.3)
    return figure_png(fig)


def _heatmap(report: ArenaReport, values: np.ndarray, title: str) -> str:
    plt = matplotlib()
    order = report.result.order()
    names = [report.result.models[k] for k in order]
    idx = [report.models.index(n) for n in names]
    mat = values[np.ix_(idx, idx)]
    n = len(names)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.5 * n + 1.8))
    im = ax.imshow(np.ma.masked_invalid(mat), cmap="RdBu", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("model b")
    ax.set_ylabel("model a")
    ax.set_title(title)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return figure_png(fig)


def _matrix_table(report: ArenaReport, values: np.ndarray, digits: int) -> str:
    order = report.result.order()
    names = [report.result.models[k] for k in order]
    idx = [report.models.index(n) for n in names]
    rows = [[names[a], *[values[idx[a], idx[b]] for b in range(len(idx))]] for a in range(len(idx))]
    return table(["a \\ b", *names], rows, digits=digits)


def render_html(report: ArenaReport, title: str = "Arena leaderboard") -> str:
    """The whole report: summary, leaderboard, ratings plot, win-rate heatmaps, counts."""
    r = report.result
    lb = r.to_table().to_pylist()
    summary = cards(
        [
            ("models", len(r.models)),
            ("battles", report.n_battles),
            ("ties", report.n_ties),
            ("tie convention", r.ties),
            ("intervals", f"{r.method}" + (f" × {r.rounds}" if r.rounds else "")),
        ]
    )
    warn = ""
    warnings = list(report.warnings)
    if r.degenerate_rounds:
        warnings.append(
            f"{r.degenerate_rounds} bootstrap round(s) had a model that never won or never lost "
            f"({r.degenerate_policy}): {', '.join(f'{m} ({n})' for m, n in r.degenerate_models.items())}"
        )
    if warnings:
        warn = '<div class="warn">' + "<br>".join(esc(w) for w in warnings) + "</div>"
    board = table(
        ["rank", "model", "rating", "lower", "upper", "battles"],
        [
            [row["rank"], row["model"], row["rating"], row["lower"], row["upper"], row["battles"]]
            for row in lb
        ],
        left=2,
    )
    sections = [
        ("Summary", summary + warn),
        ("Leaderboard", board + _ratings_plot(report)),
    ]
    if r.tie_param:
        t = r.tie_param
        sections.append(
            (
                "Tie model",
                f"<p>{esc(t['name'])} = {t['value']:.4f} "
                f"[{t.get('lower', float('nan')):.4f}, {t.get('upper', float('nan')):.4f}]</p>",
            )
        )
    sections += [
        ("Observed win rate (ties as half)", _heatmap(report, report.observed, "observed")),
        ("Predicted win rate", _heatmap(report, report.predicted, "Bradley–Terry")),
        ("Battle counts", _matrix_table(report, report.battle_matrix, 0)),
    ]
    if report.style is not None:
        s = report.style
        coef = table(
            ["covariate", "coefficient", "lower", "upper", "p-value"],
            [
                [f, c, lo, hi, p]
                for f, c, lo, hi, p in zip(
                    s.features, s.coef, s.coef_lower, s.coef_upper, s.pvalue, strict=True
                )
            ],
            digits=4,
        )
        ratings = table(
            ["model", "style-controlled", "uncontrolled", "change"],
            sorted(
                (
                    [m, c, u, c - u]
                    for m, c, u in zip(s.models, s.controlled, s.uncontrolled, strict=True)
                ),
                key=lambda row: -row[1],
            ),
        )
        note = (
            f'<p class="muted">constant (left out): {esc(", ".join(s.constant))}</p>'
            if s.constant
            else ""
        )
        if s.dropped_battles:
            note += f'<p class="muted">{s.dropped_battles:,} battles whose responses have no text were left out.</p>'
        sections.append(("Style control", coef + ratings + note))
    subtitle = f"Bradley–Terry ({r.ties} ties), scale {r.scale:g}, base {r.base:g}, init {r.init:g}"
    if r.anchor:
        subtitle += f", anchored {r.anchor[0]} = {r.anchor[1]:g}"
    return page(title, subtitle, sections)


def write_html(report: ArenaReport, path: str | Path, title: str = "Arena leaderboard") -> None:
    Path(path).write_text(render_html(report, title), encoding="utf-8")


def write_csv(report: ArenaReport, path: str | Path) -> None:
    pacsv.write_csv(report.result.to_table(), str(path))
