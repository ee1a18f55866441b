"""The profile as an HTML page for people: overview, alerts, one section per column,
correlations, with inline-SVG charts (see ``reports``)."""

from __future__ import annotations

from typing import Any

from inwire.services.synthex.reports import charts
from inwire.services.synthex.reports.page import (
    Html,
    Section,
    badge,
    document,
    format_value,
    grid,
    join,
    key_values,
    paragraph,
    percent,
    table,
)

#: Correlation heatmaps list at most this many columns (the JSON holds them all).
HEATMAP_COLUMNS = 40

_LEVEL = {"warning": "warning", "info": "info"}


def render_html(profile: dict[str, Any], *, title: str = "Data profile") -> str:
    """The profile ``profile`` (from ``engine.profile``) as a self-contained HTML page."""
    t = profile["table"]
    subtitle = f"{t['rows']:,} rows, {t['columns']:,} columns"
    sections = [
        Section("Overview", _overview(profile), anchor="overview"),
        Section(f"Alerts ({len(profile['alerts'])})", _alerts(profile["alerts"]), anchor="alerts"),
        Section(
            "Columns",
            _column_index(profile["columns"]),
            anchor="columns",
            children=[_column(i, c) for i, c in enumerate(profile["columns"])],
        ),
        Section("Correlations", _correlations(profile["correlations"]), anchor="correlations"),
    ]
    return document(title, sections, subtitle=subtitle)


def _overview(p: dict[str, Any]) -> Html:
    t, sample = p["table"], p["sample"]
    facts = key_values(
        [
            ("Rows", t["rows"]),
            ("Columns", t["columns"]),
            ("Missing cells", f"{t['missing_cells']:,} ({percent(t['missing_share'])})"),
            ("Duplicate rows", f"{t['duplicate_rows']:,} ({percent(t['duplicate_share'])})"),
            ("Column types", ", ".join(f"{k}: {v}" for k, v in sorted(t["types"].items()))),
            ("Computed in", f"{p.get('elapsed_seconds', 0):.2f} s"),
        ]
    )
    if sample["sampled"]:
        note = (
            f"Counts, moments, quantiles, histograms, top values and Pearson use all "
            f"{sample['of_rows']:,} rows. Spearman, Cramér's V and the correlation ratio use a "
            f"random sample of {sample['rows']:,} rows (seed {sample['seed']}); patterns and "
            f"PII hints read {sample['pattern_rows']:,} of them."
        )
    else:
        note = (
            f"Every statistic uses all rows; patterns and PII hints read "
            f"{sample['pattern_rows']:,} of them."
        )
    types = charts.bars(list(t["types"]), list(t["types"].values()), title="Columns by type")
    return join(grid([facts, types]), paragraph(note, "muted"))


def _alerts(alerts: list[dict[str, Any]]) -> Html:
    if not alerts:
        return paragraph("Nothing to flag.")
    rows = [
        [
            badge(a["level"], _LEVEL.get(a["level"], "info")),
            a["kind"].replace("_", " "),
            a["column"] if a["column"] is not None else "(table)",
            a["message"],
        ]
        for a in alerts
    ]
    return table(["", "alert", "column", "detail"], rows)


def _column_index(columns: list[dict[str, Any]]) -> Html:
    rows = [
        [
            Html(f'<a href="#col-{i}">') + join(c["name"]) + Html("</a>"),
            c["type"],
            c["semantic"] or "",
            percent(c["missing_share"]),
            c["distinct"],
        ]
        for i, c in enumerate(columns)
    ]
    return table(["column", "type", "semantic", "missing", "distinct"], rows, numeric=[3, 4])


def _column(index: int, c: dict[str, Any]) -> Section:
    facts: list[tuple[str, Any]] = [
        ("Type", f"{c['type']} (stored as {c['storage']})"),
        ("Semantic", c["semantic"] or "—"),
        ("Values", c["count"]),
        ("Missing", f"{c['missing']:,} ({percent(c['missing_share'])})"),
        ("Distinct", f"{c['distinct']:,} ({percent(c['distinct_share'])})"),
    ]
    if c.get("pii"):
        facts.append(("PII", f"{c['pii']['semantic']} ({c['pii']['source']})"))
    blocks: list[Any] = []
    numeric, dates, text, boolean = (c.get(k) for k in ("numeric", "datetime", "text", "boolean"))
    if numeric:
        facts += [
            ("Mean", numeric["mean"]),
            ("Std", numeric["std"]),
            ("Min / max", f"{format_value(numeric['min'])} / {format_value(numeric['max'])}"),
            ("Skewness", numeric["skewness"]),
            ("Zeros", f"{numeric['zeros']:,} ({percent(numeric['zeros_share'])})"),
        ]
        if numeric["infinite"]:
            facts.append(("Infinite", numeric["infinite"]))
        hist = numeric.get("histogram")
        if hist:
            blocks.append(charts.histogram(hist["edges"], hist["counts"], title="Histogram"))
        q = numeric["quantiles"]
        blocks.append(table(["quantile", "value"], [[k, v] for k, v in q.items()], numeric=[1]))
    if dates:
        facts += [
            ("First", dates["min"]),
            ("Last", dates["max"]),
            ("Median", dates["median"]),
            ("Range (days)", dates["range_days"]),
        ]
        hist = dates.get("histogram")
        if hist:
            blocks.append(charts.histogram(hist["edges"], hist["counts"], title="Over time"))
    if boolean:
        facts.append(("True", f"{boolean['true']:,} ({percent(boolean['true_share'])})"))
    if text:
        length = text["length"]
        facts.append(
            (
                "Length",
                f"{format_value(length['min'])} to {format_value(length['max'])}, "
                f"mean {format_value(length['mean'])}",
            )
        )
        if text["blank"]:
            facts.append(("Blank", text["blank"]))
        hist = length.get("histogram")
        if hist:
            blocks.append(charts.histogram(hist["edges"], hist["counts"], title="Lengths"))
        patterns = text.get("patterns")
        if patterns and patterns["top"]:
            blocks.append(
                table(
                    ["pattern", "share"],
                    [[p["pattern"], percent(p["share"])] for p in patterns["top"]],
                    numeric=[1],
                )
            )
    if c.get("top_values"):
        top = c["top_values"]
        labels = [str(v["value"]) for v in top]
        counts = [v["count"] for v in top]
        if c.get("other_count"):
            labels.append("(other values)")
            counts.append(c["other_count"])
        blocks.append(charts.hbars(labels, counts, title="Top values", total=c["count"] or None))
    body = join(grid([key_values(facts), *blocks]))
    return Section(c["name"], body, anchor=f"col-{index}")


def _heatmap(block: dict[str, Any], title: str, vmin: float) -> Html | None:
    columns = block["columns"][:HEATMAP_COLUMNS]
    if len(columns) < 2:
        return None
    matrix = [row[: len(columns)] for row in block["matrix"][: len(columns)]]
    return charts.heatmap(columns, matrix, title=title, vmin=vmin, vmax=1.0)


def _correlations(corr: dict[str, Any]) -> Html:
    parts: list[Any] = []
    maps = [
        _heatmap(corr["associations"], "Associations (|Spearman|, Cramér's V, η)", 0.0),
        _heatmap(corr["pearson"], "Pearson", -1.0),
        _heatmap(corr["spearman"], "Spearman", -1.0),
        _heatmap(corr["cramers_v"], "Cramér's V", 0.0),
    ]
    shown = [m for m in maps if m is not None]
    if not shown:
        return paragraph("Fewer than two numeric or categorical columns: nothing to correlate.")
    parts.append(grid(shown))
    if corr["top_pairs"]:
        parts.append(
            table(
                ["column", "column", "measure", "value"],
                [
                    [p["a"], p["b"], p["measure"].replace("_", " "), p["value"]]
                    for p in corr["top_pairs"]
                ],
                numeric=[3],
            )
        )
    if corr["left_out"]:
        parts.append(
            paragraph(
                "Left out of the matrices (column cap): " + ", ".join(corr["left_out"]), "muted"
            )
        )
    return join(*parts)
