"""A self-contained HTML page for Synthex reports: inline CSS, sections, tables.

Text from data (column names, values, messages) is escaped everywhere; a string that is
already markup (a chart, a table built here) is wrapped in ``Html`` so it is inserted as is.
Nothing in a page loads from elsewhere, so reports open offline and cannot run scripts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class Html(str):
    """A string of trusted markup, inserted into a page without escaping."""

    __slots__ = ()


def escape(value: Any) -> Html:
    """``value`` as escaped text, or unchanged when it is already ``Html``."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(format_value(value), quote=True))


def format_value(value: Any) -> str:
    """A short human form of a value: numbers to 4 significant digits, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value != 0 and (abs(value) >= 1e9 or abs(value) < 1e-4):
            return f"{value:.3e}"
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.1f}"
    return str(value)


def percent(share: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage (``12.5%``)."""
    if share is None:
        return "—"
    return f"{share * 100:.{digits}f}%"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[int] = (),
    css_class: str = "",
) -> Html:
    """An HTML table; cells are escaped unless ``Html``; ``numeric`` columns align right."""
    right = set(numeric)
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in right else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if i in right else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return Html(f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def key_values(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A two-column table of facts (name, value)."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return Html(f'<table class="facts"><tbody>{rows}</tbody></table>')


def paragraph(text: Any, css_class: str = "") -> Html:
    """A paragraph of escaped text."""
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return Html(f"<p{cls}>{escape(text)}</p>")


def badge(text: Any, level: str = "info") -> Html:
    """A small coloured label; ``level`` is ``info``, ``warning`` or ``danger``."""
    safe_level = level if level in ("info", "warning", "danger", "ok") else "info"
    return Html(f'<span class="badge {safe_level}">{escape(text)}</span>')


def grid(items: Iterable[Any]) -> Html:
    """Blocks laid out side by side, wrapping on narrow screens."""
    return Html('<div class="grid">' + "".join(f"<div>{escape(i)}</div>" for i in items) + "</div>")


def join(*parts: Any) -> Html:
    """Pieces of markup (or escaped text) one after the other."""
    return Html("".join(escape(p) for p in parts))


@dataclass
class Section:
    """One titled part of a report; ``body`` is markup (charts, tables) or plain text."""

    title: str
    body: Any
    anchor: str = ""
    #: Sub-sections, rendered after the body (e.g. one per column).
    children: list[Section] = field(default_factory=list)


def _anchor(section: Section, index: str) -> str:
    raw = section.anchor or f"s{index}"
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in raw)


def _render_section(section: Section, index: str, level: int) -> str:
    anchor = _anchor(section, index)
    tag = f"h{min(level, 4)}"
    parts = [f'<section id="{escape(anchor)}"><{tag}>{escape(section.title)}</{tag}>']
    parts.append(escape(section.body))
    for i, child in enumerate(section.children):
        parts.append(_render_section(child, f"{index}-{i}", level + 1))
    parts.append("</section>")
    return "".join(parts)


_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bg:#fff;--soft:#f5f7fa;--accent:#2f6fdf}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
header{padding:24px 32px 12px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:var(--muted)}
nav{padding:8px 32px;border-bottom:1px solid var(--line);font-size:13px}
nav a{margin-right:14px;color:var(--accent);text-decoration:none}
main{padding:8px 32px 40px;max-width:1280px}
section{margin-top:20px}
section section{border-top:1px solid var(--line);padding-top:8px}
h2{font-size:18px;margin:24px 0 8px}h3{font-size:15px;margin:16px 0 6px}h4{font-size:14px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:3px 10px 3px 0;text-align:left;
vertical-align:top}
thead th{color:var(--muted);font-weight:600}
table.facts th{font-weight:500;color:var(--muted);padding-right:16px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.badge{display:inline-block;border-radius:9px;padding:0 8px;font-size:12px;
background:#e3ecfa;color:#1c3f7a}
.badge.warning{background:#fff3c4;color:#6b4e00}.badge.danger{background:#fde2e2;color:#8a1c1c}
.badge.ok{background:#dff5e3;color:#1d6b2f}
.muted{color:var(--muted)}
svg{font:11px system-ui,sans-serif;max-width:100%;height:auto}
svg text{fill:var(--fg)}
"""


def document(
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    navigation: bool = True,
) -> str:
    """A complete HTML document: header, a link per top section, the sections."""
    nav = ""
    if navigation and sections:
        links = "".join(
            f'<a href="#{escape(_anchor(s, str(i)))}">{escape(s.title)}</a>'
            for i, s in enumerate(sections)
        )
        nav = f"<nav>{links}</nav>"
    body = "".join(_render_section(s, str(i), 2) for i, s in enumerate(sections))
    sub = f"<p>{escape(subtitle)}</p>" if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No scripts and no remote content: a report is a document, not an application.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><header><h1>{escape(title)}</h1>{sub}</header>{nav}<main>{body}</main>"
        "</body></html>\n"
    )
