"""Render reward-model evaluations: a terminal summary and a reliability diagram (PNG)."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console
from rich.table import Table

from prefkit.models.evaluate import RMEval, pool_categories
from prefkit.report.html import matplotlib


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _sd(values: list[float | None]) -> str:
    v = [x for x in values if x is not None]
    return f" ± {100 * float(np.std(v, ddof=1)):.1f}" if len(v) > 1 else ""


def print_eval(console: Console, results: list[RMEval], title: str) -> None:
    """Headline table (mean ± sd over folds when several), then categories, rankings,
    annotators and attributes where present."""
    t = Table(title=title, show_header=True)
    t.add_column("metric")
    t.add_column("value", justify="right")
    acc = [r.accuracy for r in results]
    rows = [
        (
            "judgments (decisive / ties)",
            f"{sum(r.n_decisive for r in results):,} / {sum(r.n_ties for r in results):,}",
        ),
        ("pairwise accuracy", _pct(_mean(acc)) + _sd(acc)),
        ("pick-longer baseline", _pct(_mean([r.baselines["longer"] for r in results]))),
        ("pick-shorter baseline", _pct(_mean([r.baselines["shorter"] for r in results]))),
        ("expected calibration error", _pct(_mean([r.ece for r in results]))),
        ("log loss", f"{_mean([r.log_loss for r in results]) or float('nan'):.4f}"),
    ]
    if any(r.tie_accuracy is not None for r in results):
        rows.append(("3-way accuracy (with ties)", _pct(_mean([r.tie_accuracy for r in results]))))
    if any(r.ranking for r in results):
        rows.append(
            (
                "ranking pair accuracy",
                _pct(_mean([r.ranking["pair_accuracy"] for r in results if r.ranking])),
            )
        )
        rows.append(
            (
                "ranking top-1 accuracy",
                _pct(_mean([r.ranking["top1_accuracy"] for r in results if r.ranking])),
            )
        )
    if len(results) == 1 and results[0].annotators:
        a = results[0].annotators
        rows.append((f"annotators scored (≥{a['min_judgments']} judgments)", f"{a['n_scored']:,}"))
        rows.append(
            (
                "annotator accuracy mean / min",
                f"{_pct(a['mean_accuracy'])} / {_pct(a['min_accuracy'])}",
            )
        )
    categories, macro = pool_categories(results)
    if len(categories) > 1:
        rows.append(("macro accuracy over categories", _pct(macro)))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    if len(categories) > 1:
        c = Table("category", "n", "accuracy", "longer", "shorter", title="per category")
        for row in categories:
            c.add_row(
                row["category"],
                f"{row['n']:,}",
                _pct(row["accuracy"]),
                _pct(row["longer"]),
                _pct(row["shorter"]),
            )
        console.print(c)
    if len(results) == 1:
        r = results[0]
        if r.attributes:
            at = Table("attribute", "n", "RMSE", "Pearson r", title="attributes")
            for row in r.attributes:
                at.add_row(
                    row["attribute"],
                    f"{row['n']:,}",
                    f"{row['rmse']:.3f}",
                    "–" if row["pearson"] is None else f"{row['pearson']:.3f}",
                )
            console.print(at)


def reliability_png(results: list[RMEval]) -> bytes:
    """Reliability diagram: accuracy against confidence per bin (folds pooled by count)."""
    plt = matplotlib()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    pooled: dict[tuple[float, float], list[float]] = {}
    for r in results:
        for b in r.reliability:
            s = pooled.setdefault((b["lo"], b["hi"]), [0.0, 0.0, 0.0])
            s[0] += b["n"]
            s[1] += b["n"] * b["confidence"]
            s[2] += b["n"] * b["accuracy"]
    keys = sorted(pooled)
    conf = [pooled[k][1] / pooled[k][0] for k in keys]
    acc = [pooled[k][2] / pooled[k][0] for k in keys]
    ax.plot(
        [0.5, 1.0],
        [0.5, 1.0],
        color="0.6",
        linestyle="--",
        linewidth=1,
        label="perfect calibration",
    )
    ax.bar(
        [(lo + hi) / 2 for lo, hi in keys],
        acc,
        width=[hi - lo for lo, hi in keys],
        alpha=0.35,
        edgecolor="C0",
        label="accuracy per bin",
    )
    ax.plot(conf, acc, "o-", color="C0", label="mean confidence vs accuracy")
    ece = _mean([r.ece for r in results])
    ax.set(
        xlim=(0.5, 1.0),
        ylim=(0.0, 1.0),
        xlabel="confidence max(P, 1-P)",
        ylabel="accuracy",
        title=f"Reliability (ECE {_pct(ece)})",
    )
    ax.legend(fontsize=7, loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


__all__ = ["print_eval", "reliability_png"]
