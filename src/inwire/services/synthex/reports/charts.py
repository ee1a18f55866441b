"""Small inline-SVG charts for Synthex's HTML reports, with no plotting library.

Each function returns an ``Html`` string holding one ``<svg>`` element sized by its
``viewBox`` (it scales with the page). Every label comes from data and is escaped; each mark
carries a ``<title>`` so hovering shows its exact value. Values that are None, NaN or
infinite are skipped (lines, bars) or drawn grey (heatmap cells), never crash a report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from inwire.services.synthex.reports.page import Html, escape, format_value

#: Colours of series, in order (colour-blind friendly, Okabe-Ito).
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
_AXIS = "#9aa5b1"
_MISSING = "#e4e7eb"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _n(value: float) -> str:
    """A coordinate with one decimal, the shortest form (keeps the SVG small)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _shorten(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: max(1, limit - 1)] + "…"


def _svg(width: float, height: float, body: str, title: str, label: str) -> Html:
    heading = (
        f'<text x="{_n(width / 2)}" y="13" text-anchor="middle" font-weight="600">'
        f"{escape(title)}</text>"
        if title
        else ""
    )
    aria = escape(label or title or "chart")
    return Html(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'width="{_n(width)}" height="{_n(height)}" role="img" aria-label="{aria}">'
        f"{heading}{body}</svg>"
    )


def histogram(
    edges: Sequence[float | str],
    counts: Sequence[float],
    *,
    title: str = "",
    width: int = 320,
    height: int = 150,
    color: str = PALETTE[0],
) -> Html:
    """Bars over the bins ``[edges[i], edges[i+1])`` with heights ``counts`` (len(edges) - 1).

    Edges are numbers or already formatted labels (ISO dates of a datetime histogram).

    The x axis is labelled at both ends; each bar's tooltip gives its range and count.
    """
    if len(edges) != len(counts) + 1:
        raise ValueError("a histogram needs one more edge than counts")
    top = 20 if title else 6
    left, right, bottom = 6, 6, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((c for c in counts if _finite(c)), default=0) or 1
    parts: list[str] = []
    n = len(counts)
    bar_w = plot_w / n if n else plot_w
    for i, count in enumerate(counts):
        if not _finite(count) or count <= 0:
            continue
        h = max(plot_h * count / peak, 1.0)
        x = left + i * bar_w
        tip = f"[{format_value(edges[i])}, {format_value(edges[i + 1])}): {format_value(count)}"
        parts.append(
            f'<rect x="{_n(x + 0.5)}" y="{_n(top + plot_h - h)}" '
            f'width="{_n(max(bar_w - 1, 0.5))}" height="{_n(h)}" fill="{escape(color)}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{_n(base)}" x2="{_n(width - right)}" y2="{_n(base)}" '
        f'stroke="{_AXIS}"/>'
    )
    if n:
        parts.append(
            f'<text x="{left}" y="{_n(height - 4)}">{escape(format_value(edges[0]))}</text>'
            f'<text x="{_n(width - right)}" y="{_n(height - 4)}" text-anchor="end">'
            f"{escape(format_value(edges[-1]))}</text>"
        )
    return _svg(width, height, "".join(parts), title, title or "histogram")


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    width: int | None = None,
    height: int = 170,
    label_chars: int = 10,
) -> Html:
    """Vertical bars per category, one bar per series side by side (e.g. real vs synthetic).

    With more than one series a legend names them; categories are labelled under the bars
    (shortened to ``label_chars``, the full name in the tooltip).
    """
    names = list(series)
    k = max(len(names), 1)
    n = len(categories)
    width = width or max(220, min(900, 24 + n * (8 + 10 * k)))
    top = (20 if title else 6) + (14 if len(names) > 1 else 0)
    left, right, bottom = 6, 6, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for s in series.values() for v in s if v is not None and _finite(v)]
    peak = max(values, default=0) or 1
    group_w = plot_w / n if n else plot_w
    bar_w = max((group_w - 4) / k, 0.5)
    parts: list[str] = []
    for j, name in enumerate(names):
        color = PALETTE[j % len(PALETTE)]
        for i, value in enumerate(series[name]):
            if i >= n or not _finite(value) or value is None or value <= 0:
                continue
            h = max(plot_h * value / peak, 1.0)
            x = left + i * group_w + 2 + j * bar_w
            tip = f"{categories[i]} · {name}: {format_value(value)}"
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(top + plot_h - h)}" width="{_n(bar_w)}" '
                f'height="{_n(h)}" fill="{color}"><title>{escape(tip)}</title></rect>'
            )
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{_n(base)}" x2="{_n(width - right)}" y2="{_n(base)}" '
        f'stroke="{_AXIS}"/>'
    )
    step = max(1, math.ceil(n / max(plot_w / 40, 1)))
    for i in range(0, n, step):
        cx = left + (i + 0.5) * group_w
        parts.append(
            f'<text x="{_n(cx)}" y="{_n(base + 12)}" text-anchor="middle">'
            f"<title>{escape(categories[i])}</title>"
            f"{escape(_shorten(str(categories[i]), label_chars))}</text>"
        )
    if len(names) > 1:
        parts.append(_legend(names, left, (20 if title else 6) + 4))
    return _svg(width, height, "".join(parts), title, title or "bar chart")


def bars(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str = "",
    width: int | None = None,
    height: int = 170,
) -> Html:
    """Vertical bars, one per label (a single-series ``grouped_bars``)."""
    return grouped_bars(labels, {"value": values}, title=title, width=width, height=height)


def _legend(names: Sequence[str], x: float, y: float) -> str:
    parts = []
    for j, name in enumerate(names):
        color = PALETTE[j % len(PALETTE)]
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(y - 8)}" width="9" height="9" fill="{color}"/>'
            f'<text x="{_n(x + 12)}" y="{_n(y)}">{escape(_shorten(name, 18))}</text>'
        )
        x += 20 + 6.2 * min(len(name), 18)
    return "".join(parts)


def hbars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    width: int = 360,
    row_height: int = 16,
    label_chars: int = 22,
    total: float | None = None,
    color: str = PALETTE[0],
) -> Html:
    """Horizontal bars, one row per label (top values, importances).

    With ``total`` each row also shows its share of it (``12.5%``).
    """
    top = 20 if title else 4
    label_w = min(label_chars, max((len(str(x)) for x in labels), default=1)) * 6.4 + 8
    value_w = 92 if total else 56
    plot_w = max(width - label_w - value_w, 20)
    height = top + row_height * len(labels) + 4
    peak = max((v for v in values if _finite(v)), default=0) or 1
    parts: list[str] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_height
        text = str(label)
        shown = format_value(value)
        if total:
            shown += f" ({value / total * 100:.1f}%)"
        parts.append(
            f'<text x="{_n(label_w - 6)}" y="{_n(y + row_height - 4)}" text-anchor="end">'
            f"<title>{escape(text)}</title>{escape(_shorten(text, label_chars))}</text>"
        )
        if _finite(value) and value > 0:
            w = max(plot_w * value / peak, 1.0)
            parts.append(
                f'<rect x="{_n(label_w)}" y="{_n(y + 2)}" width="{_n(w)}" '
                f'height="{_n(row_height - 4)}" fill="{escape(color)}">'
                f"<title>{escape(text)}: {escape(shown)}</title></rect>"
            )
        else:
            w = 0
        parts.append(
            f'<text x="{_n(label_w + w + 4)}" y="{_n(y + row_height - 4)}" '
            f'fill="#616e7c">{escape(shown)}</text>'
        )
    return _svg(width, height, "".join(parts), title, title or "bar chart")


def _color(value: float, vmin: float, vmax: float) -> str:
    """A diverging blue-white-red colour when vmin < 0 < vmax, else white to blue."""
    if vmin < 0 < vmax:
        t = max(-1.0, min(1.0, value / (vmax if value >= 0 else -vmin)))
        # Positive: white → #b2182b (red); negative: white → #2166ac (blue).
        end = (178, 24, 43) if t >= 0 else (33, 102, 172)
        a = abs(t)
    else:
        span = (vmax - vmin) or 1.0
        a = max(0.0, min(1.0, (value - vmin) / span))
        end = (33, 102, 172)
    r, g, b = (round(255 + (c - 255) * a) for c in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    labels: Sequence[str],
    matrix: Sequence[Sequence[float | None]],
    *,
    title: str = "",
    vmin: float = -1.0,
    vmax: float = 1.0,
    cell: int | None = None,
    label_chars: int = 14,
    column_labels: Sequence[str] | None = None,
    annotate: bool | None = None,
) -> Html:
    """A matrix of coloured cells (correlations): rows ``labels``, columns ``column_labels``.

    Cells are coloured on a diverging scale when ``vmin < 0 < vmax`` (negative blue,
    positive red), else from white to blue; None or NaN cells are grey ("not computed").
    Small matrices print each value in its cell (``annotate``).
    """
    cols = list(column_labels) if column_labels is not None else list(labels)
    n_rows, n_cols = len(labels), len(cols)
    cell = cell or max(10, min(36, 480 // max(n_rows, n_cols, 1)))
    annotate = cell >= 28 if annotate is None else annotate
    longest = max((len(str(x)) for x in [*labels, *cols]), default=1)
    pad = min(label_chars, longest) * 6.2 + 8
    top = (20 if title else 4) + pad
    left = pad
    width = left + n_cols * cell + 8
    height = top + n_rows * cell + 24
    parts: list[str] = []
    for i in range(n_rows):
        for j in range(n_cols):
            value = matrix[i][j] if j < len(matrix[i]) else None
            x, y = left + j * cell, top + i * cell
            ok = value is not None and _finite(value)
            fill = _color(value, vmin, vmax) if ok and value is not None else _MISSING
            shown = format_value(round(value, 3)) if ok and value is not None else "not computed"
            tip = f"{labels[i]} \N{MULTIPLICATION SIGN} {cols[j]}: {shown}"
            parts.append(
                f'<rect x="{_n(x)}" y="{_n(y)}" width="{cell}" height="{cell}" fill="{fill}" '
                f'stroke="#fff"><title>{escape(tip)}</title></rect>'
            )
            if annotate and ok and value is not None:
                ink = "#fff" if abs(value) > 0.6 * max(abs(vmin), abs(vmax)) else "#1f2933"
                parts.append(
                    f'<text x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 + 4)}" '
                    f'text-anchor="middle" font-size="10" style="fill:{ink}">'
                    f"{value:.2f}</text>"
                )
    for i, label in enumerate(labels):
        y = top + i * cell + cell / 2 + 4
        parts.append(
            f'<text x="{_n(left - 4)}" y="{_n(y)}" text-anchor="end"><title>{escape(label)}</title>'
            f"{escape(_shorten(str(label), label_chars))}</text>"
        )
    for j, label in enumerate(cols):
        x = left + j * cell + cell / 2 + 4
        parts.append(
            f'<text transform="translate({_n(x)},{_n(top - 4)}) rotate(-90)">'
            f"<title>{escape(label)}</title>{escape(_shorten(str(label), label_chars))}</text>"
        )
    # The colour scale: its two ends and the middle.
    scale_y = top + n_rows * cell + 8
    for k in range(21):
        v = vmin + (vmax - vmin) * k / 20
        parts.append(
            f'<rect x="{_n(left + k * 6)}" y="{_n(scale_y)}" width="6" height="8" '
            f'fill="{_color(v, vmin, vmax)}"/>'
        )
    parts.append(
        f'<text x="{_n(left)}" y="{_n(scale_y + 18)}">{escape(format_value(vmin))}</text>'
        f'<text x="{_n(left + 126)}" y="{_n(scale_y + 18)}" text-anchor="end">'
        f"{escape(format_value(vmax))}</text>"
    )
    return _svg(width, height, "".join(parts), title, title or "heatmap")


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    width: int = 420,
    height: int = 200,
) -> Html:
    """Lines through (x, y) points, one per series, with a legend and labelled axes.

    A None or non-finite y breaks the line (no point is invented across the gap).
    """
    names = list(series)
    points = [(x, y) for s in series.values() for x, y in s if _finite(x) and _finite(y)]
    top = (20 if title else 6) + (14 if len(names) > 1 else 0)
    left, right, bottom = 48, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [float(p[1]) for p in points if p[1] is not None] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts: list[str] = [
        f'<line x1="{left}" y1="{_n(top + plot_h)}" x2="{_n(width - right)}" '
        f'y2="{_n(top + plot_h)}" stroke="{_AXIS}"/>',
        f'<line x1="{left}" y1="{_n(top)}" x2="{left}" y2="{_n(top + plot_h)}" stroke="{_AXIS}"/>',
    ]
    for k in range(3):
        yv = y0 + (y1 - y0) * k / 2
        parts.append(
            f'<text x="{left - 4}" y="{_n(py(yv) + 4)}" text-anchor="end">'
            f"{escape(format_value(yv))}</text>"
        )
    parts.append(
        f'<text x="{left}" y="{_n(top + plot_h + 13)}">{escape(format_value(x0))}</text>'
        f'<text x="{_n(width - right)}" y="{_n(top + plot_h + 13)}" text-anchor="end">'
        f"{escape(format_value(x1))}</text>"
    )
    if x_label:
        parts.append(
            f'<text x="{_n(left + plot_w / 2)}" y="{_n(height - 3)}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
        )
    if y_label:
        parts.append(
            f'<text transform="translate(11,{_n(top + plot_h / 2)}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )
    for j, name in enumerate(names):
        color = PALETTE[j % len(PALETTE)]
        run: list[str] = []
        runs: list[list[str]] = [run]
        for x, y in series[name]:
            if not (_finite(x) and _finite(y)) or y is None:
                run = []
                runs.append(run)
                continue
            run.append(f"{_n(px(x))},{_n(py(y))}")
            parts.append(
                f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="2" fill="{color}">'
                f"<title>{escape(name)}: ({escape(format_value(x))}, "
                f"{escape(format_value(y))})</title></circle>"
            )
        for r in runs:
            if len(r) > 1:
                parts.append(
                    f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" '
                    f'stroke-width="1.5"/>'
                )
    if len(names) > 1:
        parts.append(_legend(names, left, (20 if title else 6) + 4))
    return _svg(width, height, "".join(parts), title, title or "line chart")
