"""Building blocks for self-contained HTML reports: one file, inline CSS, plots embedded
as PNG data URIs (matplotlib, Agg backend), so a report opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
.sub{color:#57606a;margin-top:0}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:8px;padding:.7rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.3rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:right}th{background:#f6f8fa}
td.l,th.l{text-align:left}.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.5rem 1rem}
img{max-width:100%}.muted{color:#57606a;font-size:.85rem}
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1, digits: int = 1
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (names)."""
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{esc(fmt(v, digits))}</td>'
            for i, v in enumerate(r)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def cards(items: Sequence[tuple[str, Any]]) -> str:
    inner = "".join(
        f'<div class="card"><span class="muted">{esc(k)}</span><b>{esc(fmt(v))}</b></div>'
        for k, v in items
    )
    return f'<div class="cards">{inner}</div>'


def figure_png(fig: Any) -> str:
    """An ``<img>`` holding a matplotlib figure as an inline PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


#: Content Security Policy for pages that must not run scripts or fetch anything: only
#: inline styles and ``data:`` images load, and a browser logs any other attempt.
OFFLINE_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def document(title: str, body: str, extra_css: str = "", csp: str | None = None) -> str:
    """A complete HTML document around ``body`` (raw HTML) with the shared CSS."""
    policy = f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">' if csp else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{policy}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}{extra_css}</style></head><body>{body}</body></html>"
    )


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete HTML document with one ``<h2>`` section per (heading, body)."""
    body = "".join(f"<section><h2>{esc(h)}</h2>{b}</section>" for h, b in sections)
    return document(title, f'<h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>{body}')


def matplotlib() -> Any:
    """pyplot with the non-interactive Agg backend (reports are rendered headless)."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt
