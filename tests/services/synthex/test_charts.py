"""Inline-SVG charts and the report page: well-formed SVG, escaped text, odd values."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from inwire.services.synthex.reports import charts
from inwire.services.synthex.reports.page import (
    Html,
    Section,
    badge,
    document,
    escape,
    format_value,
    key_values,
    table,
)

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script> & "quotes"'


def parse(svg: str) -> ET.Element:
    """The chart parsed as XML (fails the test when it is not well-formed)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def rects(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}rect")


def test_histogram_draws_one_bar_per_nonempty_bin_scaled_to_the_peak() -> None:
    svg = charts.histogram([0, 1, 2, 3], [5, 0, 10], title="ages")
    root = parse(svg)
    bars = rects(root)
    assert len(bars) == 2  # the empty bin draws nothing
    heights = sorted(float(b.get("height", 0)) for b in bars)
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.02)
    tips = [b.find(f"{SVG}title").text for b in bars]  # type: ignore[union-attr]
    assert "[0, 1): 5" in tips
    assert "ages" in svg


def test_histogram_rejects_mismatched_edges() -> None:
    with pytest.raises(ValueError, match="one more edge"):
        charts.histogram([0, 1], [1, 2])


def test_every_chart_escapes_labels_from_data() -> None:
    made = [
        charts.histogram([0, 1], [3], title=EVIL),
        charts.hbars([EVIL, "b"], [3, 1], title=EVIL, total=4),
        charts.grouped_bars([EVIL, "b"], {EVIL: [1, 2], "synthetic": [2, 1]}, title=EVIL),
        charts.heatmap([EVIL, "b"], [[1.0, 0.2], [0.2, 1.0]], title=EVIL),
        charts.line_chart({EVIL: [(0, 1), (1, 2)]}, title=EVIL, x_label=EVIL, y_label=EVIL),
    ]
    for svg in made:
        assert "<script>" not in svg
        assert "&lt;script&gt;" in svg
        parse(svg)


def test_hbars_shows_share_of_total() -> None:
    svg = charts.hbars(["Paris", "Rome"], [3, 1], total=4)
    assert "3 (75.0%)" in svg
    assert len(rects(parse(svg))) == 2


def test_heatmap_colours_sign_and_greys_missing_cells() -> None:
    svg = charts.heatmap(["a", "b"], [[1.0, -1.0], [None, math.nan]], annotate=True)
    root = parse(svg)
    cells = rects(root)[:4]
    fills = [c.get("fill") for c in cells]
    assert fills[0] == "#b2182b"  # +1: full red
    assert fills[1] == "#2166ac"  # -1: full blue
    assert fills[2] == fills[3] == "#e4e7eb"  # not computed
    assert "not computed" in svg
    assert "1.00" in svg
    assert "-1.00" in svg


def test_heatmap_with_positive_scale_goes_white_to_blue() -> None:
    svg = charts.heatmap(["a", "b"], [[0.0, 1.0], [1.0, 0.0]], vmin=0, vmax=1)
    fills = [c.get("fill") for c in rects(parse(svg))[:2]]
    assert fills == ["#ffffff", "#2166ac"]


def test_line_chart_breaks_at_missing_points() -> None:
    svg = charts.line_chart(
        {"loss": [(0, 1.0), (1, 0.5), (2, None), (3, 0.2), (4, 0.1)], "val": [(0, 2), (4, 1)]},
        x_label="epoch",
    )
    root = parse(svg)
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 3  # loss in two runs, val in one
    assert len(root.findall(f".//{SVG}circle")) == 6
    assert "epoch" in svg


def test_charts_survive_empty_and_constant_data() -> None:
    parse(charts.histogram([1.0], []))
    parse(charts.hbars([], []))
    parse(charts.bars([], []))
    parse(charts.heatmap([], []))
    parse(charts.line_chart({}))
    parse(charts.line_chart({"flat": [(1, 5), (1, 5)]}))
    parse(charts.histogram([0, 0], [7]))


def test_format_value_is_short_and_total() -> None:
    assert format_value(None) == "—"
    assert format_value(1234567) == "1,234,567"
    assert format_value(0.000012) == "1.200e-05"
    assert format_value(3.0) == "3"
    assert format_value(math.nan) == "NaN"
    assert format_value(True) == "yes"
    assert format_value(2.345678) == "2.346"


def test_document_escapes_text_keeps_markup_and_forbids_scripts() -> None:
    chart = charts.bars(["a"], [1])
    page = document(
        EVIL,
        [
            Section(
                "Overview",
                Html(
                    table(
                        ["name", "count"], [[EVIL, 3], [badge("warn", "warning"), 4]], numeric=[1]
                    )
                ),
                children=[Section(EVIL, chart)],
            ),
            Section("Facts", key_values([("rows", 10), ("note", EVIL)])),
            Section("Plain", "just <text>"),
        ],
        subtitle=EVIL,
    )
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") == 6  # title tag, h1, subtitle, table cell, section, fact
    assert "<svg" in page
    assert '<span class="badge warning">warn</span>' in page
    assert "just &lt;text&gt;" in page
    assert "default-src 'none'" in page
    assert '<a href="#s0">Overview</a>' in page
    assert escape(Html("<b>")) == "<b>"
