"""An evaluation report (from ``engine.evaluate``) as an HTML page for people.

Headline scores with a verdict badge, then one section per part (column shapes with real
vs synthetic distributions, pair trends as heatmaps, detection, ML utility, privacy), each
opening with a sentence on how to read it. Charts come from ``reports.charts``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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

#: Pair heatmaps list at most this many columns (the JSON holds every pair).
HEATMAP_COLUMNS = 40
#: Pairs listed by name, weakest first.
WEAKEST_PAIRS = 15


def render_html(
    report: dict[str, Any], *, title: str = "Evaluation report", subtitle: str = ""
) -> str:
    """The report as a self-contained HTML page (inline CSS and SVG, no scripts)."""
    rows = report["rows"]
    if not subtitle:
        subtitle = f"{rows['real']:,} real rows against {rows['synthetic']:,} synthetic rows"
        if rows.get("holdout") is not None:
            subtitle += f", with a holdout of {rows['holdout']:,} real rows"
    quality = report["quality"]
    sections = [
        Section("Summary", _summary(report), anchor="summary"),
        Section(
            "Column shapes",
            _shapes(quality["column_shapes"]),
            anchor="shapes",
            children=[_column(c) for c in quality["column_shapes"]["columns"]],
        ),
        Section("Column-pair trends", _pairs(report), anchor="pairs"),
        Section("Detection", _detection(report["detection"]), anchor="detection"),
    ]
    if report.get("ml_utility"):
        sections.append(Section("ML utility", _utility(report["ml_utility"]), anchor="utility"))
    sections.append(Section("Privacy", _privacy(report["privacy"]), anchor="privacy"))
    sections.append(Section("About this report", _about(report), anchor="about"))
    return document(title, sections, subtitle=subtitle)


# -- verdicts ------------------------------------------------------------------------------


def _score_badge(score: float | None) -> Html:
    """Higher is better, 0 to 1."""
    if score is None:
        return badge("not computed")
    level = "ok" if score >= 0.9 else "warning" if score >= 0.75 else "danger"
    return badge(f"{score:.3f}", level)


def _risk_badge(value: float | None, warn: float, danger: float, shown: str | None = None) -> Html:
    """Lower is better."""
    if value is None:
        return badge("not computed")
    level = "danger" if value >= danger else "warning" if value >= warn else "ok"
    return badge(shown or f"{value:.3f}", level)


def _summary(r: dict[str, Any]) -> Html:
    s, privacy = r["summary"], r["privacy"]
    copies = privacy["exact_copies"]
    baseline = copies.get("holdout_rate") or 0.0
    dcr = privacy.get("dcr") or {}
    expected = dcr.get("expected_close_share")
    close = dcr.get("close_share")
    facts: list[tuple[str, Any]] = [
        ("Overall quality", _score_badge(s["quality"])),
        ("Column shapes", _score_badge(s["column_shapes"])),
        ("Column-pair trends", _score_badge(s["column_pair_trends"])),
        ("Detection", _score_badge(s["detection"])),
        (
            "ML utility (synthetic / real)",
            _score_badge(s["ml_utility_ratio"]) if r.get("ml_utility") else "no target given",
        ),
        (
            "Exact copies of real rows",
            _risk_badge(
                copies["rate"] - baseline,
                0.005,
                0.02,
                shown=percent(copies["rate"], 2),
            ),
        ),
        (
            "Rows closer than the holdout's 5th percentile",
            _risk_badge(
                None if close is None or expected is None else close - expected,
                0.02,
                0.05,
                shown=None if close is None else f"{percent(close)} (expected {percent(expected)})",
            ),
        ),
        ("Membership-inference risk", _risk_badge(s["membership_risk"], 0.05, 0.2)),
    ]
    scores = [
        ("quality", s["quality"]),
        ("shapes", s["column_shapes"]),
        ("pair trends", s["column_pair_trends"]),
        ("detection", s["detection"]),
    ]
    if s["ml_utility_ratio"] is not None:
        scores.append(("ML utility", min(s["ml_utility_ratio"], 1.0)))
    shown = [(name, v) for name, v in scores if v is not None]
    chart = charts.hbars([n for n, _ in shown], [v for _, v in shown], title="Scores (1 is best)")
    note = paragraph(
        "Quality scores run from 0 to 1, higher is more alike. Privacy figures compare the "
        "synthetic data with real rows the generator never saw (the holdout): a synthetic "
        "table should sit no closer to the training rows than fresh real rows do.",
        "muted",
    )
    return join(grid([key_values(facts), chart]), note)


# -- column shapes -------------------------------------------------------------------------


def _shapes(shapes: dict[str, Any]) -> Html:
    columns = shapes["columns"]
    intro = paragraph(
        "How closely each column's distribution matches the real one, ignoring the other "
        "columns: 1 - Kolmogorov-Smirnov statistic for numbers and datetimes, 1 - total "
        "variation distance for categories and booleans (missing values are a category)."
    )
    if not columns:
        return join(intro, paragraph("No column could be compared."))
    rows = [
        [
            Html(f'<a href="#shape-{_slug(c["column"])}">') + join(c["column"]) + Html("</a>"),
            c["type"],
            c["metric"].replace("_", " "),
            _score_badge(c["score"]),
            percent(c["real"].get("missing")),
            percent(c["synthetic"].get("missing")),
        ]
        for c in columns
    ]
    listing = table(
        ["column", "type", "metric", "score", "missing (real)", "missing (synthetic)"],
        rows,
        numeric=[4, 5],
    )
    ordered = sorted((c for c in columns if c["score"] is not None), key=lambda c: c["score"])
    chart = charts.hbars(
        [c["column"] for c in ordered], [c["score"] for c in ordered], title="Score by column"
    )
    return join(intro, grid([listing, chart]))


def _day(microseconds: float) -> str:
    """A datetime bin edge (microseconds since 1970, UTC) as its day."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)).strftime(
        "%Y-%m-%d"
    )


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)


def _column(c: dict[str, Any]) -> Section:
    blocks: list[Any] = []
    dist = c.get("distribution")
    if dist and "edges" in dist:
        edges = dist["edges"]
        labels = [format_value(round(e, 4)) for e in edges[:-1]]
        if c["type"] == "datetime":
            labels = [_day(e) for e in edges[:-1]]
        blocks.append(
            charts.grouped_bars(
                labels,
                {"real": dist["real"], "synthetic": dist["synthetic"]},
                title="Share of rows per bin (real range)",
            )
        )
        stats = [
            [key, c["real"].get(key), c["synthetic"].get(key)]
            for key in ("mean", "std", "min", "max")
        ]
        stats.append(
            ["missing", percent(c["real"].get("missing")), percent(c["synthetic"].get("missing"))]
        )
        blocks.append(table(["", "real", "synthetic"], stats, numeric=[1, 2]))
    elif dist:
        blocks.append(
            charts.grouped_bars(
                dist["categories"],
                {"real": dist["real"], "synthetic": dist["synthetic"]},
                title="Share of rows per category",
            )
        )
        blocks.append(
            table(
                ["", "real", "synthetic"],
                [
                    ["categories", c["real"]["categories"], c["synthetic"]["categories"]],
                    ["missing", percent(c["real"]["missing"]), percent(c["synthetic"]["missing"])],
                ],
                numeric=[1, 2],
            )
        )
    head = join(paragraph(f"{c['metric'].replace('_', ' ')}: ", "muted"), _score_badge(c["score"]))
    if c.get("note"):
        head = join(head, paragraph(c["note"], "muted"))
    return Section(c["column"], join(head, grid(blocks)), anchor=f"shape-{_slug(c['column'])}")


# -- pair trends ---------------------------------------------------------------------------


def _pairs(report: dict[str, Any]) -> Html:
    trends = report["quality"]["column_pair_trends"]
    pairs = trends["pairs"]
    intro = paragraph(
        "Whether relationships between two columns survive: for two numbers, 1 - |real "
        "correlation - synthetic correlation| / 2; otherwise 1 - total variation distance "
        "between the two joint distributions (numbers in 10 equal-width bins). The score "
        "averages the pairs the real data relates (|correlation| > 0.5, Cramér's V > 0.3); "
        "every pair is in the heatmap."
    )
    if not pairs:
        return join(intro, paragraph("Fewer than two comparable columns: no pairs."))
    names = [c["column"] for c in report["columns"]["compared"]][:HEATMAP_COLUMNS]
    index = {n: i for i, n in enumerate(names)}
    scores: list[list[float | None]] = [[None] * len(names) for _ in names]
    real_corr: list[list[float | None]] = [[None] * len(names) for _ in names]
    syn_corr: list[list[float | None]] = [[None] * len(names) for _ in names]
    for i in range(len(names)):
        scores[i][i] = 1.0
    for p in pairs:
        a, b = p["columns"]
        if a not in index or b not in index:
            continue
        i, j = index[a], index[b]
        scores[i][j] = scores[j][i] = p["score"]
        if p["metric"] == "correlation_similarity":
            real_corr[i][j] = real_corr[j][i] = p.get("real")
            syn_corr[i][j] = syn_corr[j][i] = p.get("synthetic")
    blocks: list[Any] = [
        charts.heatmap(names, scores, vmin=0.0, vmax=1.0, title="Pair score (1 = same trend)")
    ]
    numeric = [n for n in names if any(v is not None for v in real_corr[index[n]])]
    if len(numeric) >= 2:
        pick = [index[n] for n in numeric]
        for label, matrix in (("Real", real_corr), ("Synthetic", syn_corr)):
            sub = [[1.0 if i == j else matrix[i][j] for j in pick] for i in pick]
            blocks.append(charts.heatmap(numeric, sub, title=f"{label} correlations"))
    # Related pairs first (they make the score), weakest first within each group.
    weakest = sorted(
        (p for p in pairs if p["score"] is not None),
        key=lambda p: (not p.get("contributes", True), p["score"]),
    )
    rows = [
        [
            " & ".join(p["columns"]),
            p["metric"].replace("_", " "),
            _score_badge(p["score"]),
            "yes" if p.get("contributes", True) else "no",
            p.get("real", p.get("real_association", "")),
            p.get("synthetic", ""),
        ]
        for p in weakest[:WEAKEST_PAIRS]
    ]
    listing = table(
        ["pair", "metric", "score", "counts", "real correlation / V", "synthetic correlation"],
        rows,
        numeric=[4, 5],
    )
    counted = paragraph(
        f"{trends.get('contributing_pairs', len(pairs)):,} of {len(pairs):,} pairs count in "
        f"the score; the mean over every pair is {format_value(trends.get('score_all_pairs'))}.",
        "muted",
    )
    more = ""
    if len(report["columns"]["compared"]) > HEATMAP_COLUMNS:
        more = paragraph(f"Heatmaps show the first {HEATMAP_COLUMNS} columns.", "muted")
    return join(intro, counted, grid(blocks), more, Html("<h3>Weakest pairs</h3>"), listing)


# -- detection and utility -----------------------------------------------------------------


def _detection(d: dict[str, Any]) -> Html:
    intro = paragraph(
        "A classifier (gradient-boosted trees, cross-validated) is trained to tell real rows "
        "from synthetic ones. ROC AUC 0.5 means it cannot; 1 means it always can. "
        "Score = 1 - max(0, 2·AUC - 1)."
    )
    facts = [
        ("Score", _score_badge(d.get("score"))),
        ("ROC AUC", d.get("auc")),
        ("Rows of each", d.get("rows")),
        ("Folds", d.get("folds")),
    ]
    if d.get("note"):
        facts.append(("Note", d["note"]))
    return join(intro, key_values(facts))


def _utility(u: dict[str, Any]) -> Html:
    source = {
        "holdout": "the holdout",
        "split_of_real": "a 20% split of the real data (the generator saw it: may read high)",
    }.get(u["test_source"], u["test_source"])
    intro = paragraph(
        f"Predicting {u['target']!r} ({u['task']}): one model trained on synthetic rows and "
        f"one on real rows, both tested on {source}. The ratio of their {u['metric']} says "
        "how much predictive value survives synthesis (1 = all of it)."
    )
    facts = [
        ("Ratio (synthetic / real)", _score_badge(u.get("ratio"))),
        (
            "Training rows (real / synthetic)",
            f"{u['rows']['real_train']:,} / {u['rows']['synthetic_train']:,}",
        ),
        ("Test rows", u["rows"]["test"]),
    ]
    if u.get("note"):
        facts.append(("Note", u["note"]))
    real, synthetic = u.get("real") or {}, u.get("synthetic") or {}
    metrics = list(real or synthetic)
    rows = [[m, real.get(m), synthetic.get(m)] for m in metrics]
    blocks: list[Any] = [key_values(facts)]
    if rows:
        blocks.append(
            table(["metric", "trained on real", "trained on synthetic"], rows, numeric=[1, 2])
        )
        plotted = [m for m in metrics if m != "mae"]
        blocks.append(
            charts.grouped_bars(
                plotted,
                {
                    "trained on real": [real.get(m) for m in plotted],
                    "trained on synthetic": [synthetic.get(m) for m in plotted],
                },
                title="Scores on the real test rows",
            )
        )
    return join(intro, grid(blocks))


# -- privacy -------------------------------------------------------------------------------

_SUMMARY_KEYS = ("min", "p5", "p25", "median", "mean", "p95", "zero_share")


def _distances(label: str, part: dict[str, Any]) -> Html:
    rows = [
        [key, (part.get("synthetic") or {}).get(key), (part.get("holdout") or {}).get(key)]
        for key in _SUMMARY_KEYS
    ]
    return table([label, "synthetic → real", "holdout → real"], rows, numeric=[1, 2])


def _privacy(p: dict[str, Any]) -> Html:
    parts: list[Any] = []
    copies = p["exact_copies"]
    parts.append(Html("<h3>Exact copies</h3>"))
    parts.append(
        key_values(
            [
                (
                    "Synthetic rows equal to a real row",
                    f"{copies['rows']:,} ({percent(copies['rate'], 2)})",
                ),
                (
                    "Holdout rows equal to a real row (natural repeats)",
                    percent(copies.get("holdout_rate"), 2),
                ),
                ("Columns compared", copies["columns"]),
            ]
        )
    )
    dcr, nndr = p.get("dcr"), p.get("nndr")
    if dcr:
        parts.append(Html("<h3>Distance to closest record (DCR)</h3>"))
        parts.append(
            paragraph(
                "Distance from each row to its nearest real training row (0 = identical, about "
                "1 = unlike in every column; numbers scaled by their range, categories count 1 "
                "when different). Synthetic rows should be no closer than holdout rows: below "
                "the holdout's 5th percentile should fall about the expected share, not more."
            )
        )
        facts: list[tuple[str, Any]] = []
        if dcr.get("close_share") is not None:
            facts = [
                ("Holdout's 5th percentile", dcr["holdout_p5"]),
                ("Synthetic rows below it", percent(dcr["close_share"])),
                ("Expected (holdout rows below it)", percent(dcr["expected_close_share"])),
            ]
        blocks: list[Any] = [_distances("DCR", dcr)]
        hist = dcr.get("histogram")
        if hist:
            series = {k: hist[k] for k in ("synthetic", "holdout") if hist.get(k) is not None}
            labels = [format_value(round(e, 4)) for e in hist["edges"][:-1]]
            blocks.append(charts.grouped_bars(labels, series, title="Share of rows by DCR"))
        if facts:
            blocks.append(key_values(facts))
        parts.append(grid(blocks))
    if nndr:
        parts.append(Html("<h3>Nearest-neighbour distance ratio (NNDR)</h3>"))
        parts.append(
            paragraph(
                "Distance to the nearest real row divided by the distance to the second "
                "nearest: near 0, a synthetic row points at one particular real record; "
                "compare with the holdout's ratios."
            )
        )
        nfacts: list[tuple[str, Any]] = []
        if nndr.get("close_share") is not None:
            nfacts = [
                ("Synthetic rows below the holdout's 5th percentile", percent(nndr["close_share"])),
                ("Expected", percent(nndr["expected_close_share"])),
            ]
        parts.append(grid([_distances("NNDR", nndr), key_values(nfacts) if nfacts else ""]))
    membership = p.get("membership")
    if membership:
        parts.append(Html("<h3>Membership inference</h3>"))
        parts.append(
            paragraph(
                "An attacker holding the synthetic data guesses that a real record was in "
                "the training data when a synthetic row lies close to it. AUC 0.5 means the "
                "guess is no better than chance; risk = max(0, 2·AUC - 1)."
            )
        )
        parts.append(
            key_values(
                [
                    ("Risk", _risk_badge(membership["risk"], 0.05, 0.2)),
                    ("Attack ROC AUC", membership["auc"]),
                    (
                        "Members / non-members tried",
                        f"{membership['members']:,} / {membership['non_members']:,}",
                    ),
                ]
            )
        )
    over = p.get("overfitting")
    if over:
        parts.append(Html("<h3>Closer to training than to holdout</h3>"))
        parts.append(
            paragraph(
                "Share of synthetic rows whose nearest real record is a training row rather "
                "than a holdout row. A generator that learned the distribution, not the rows, "
                "stays near the expected share (training rows / all rows)."
            )
        )
        parts.append(
            key_values(
                [
                    ("Score", _score_badge(over["score"])),
                    ("Share closer to training", percent(over["closer_to_train_share"])),
                    ("Expected share", percent(over["expected_share"])),
                ]
            )
        )
    for note in p.get("notes") or []:
        parts.append(paragraph(note, "muted"))
    return join(*parts)


# -- about ---------------------------------------------------------------------------------


def _about(r: dict[str, Any]) -> Html:
    skipped = r["columns"]["skipped"]
    parts: list[Any] = []
    if skipped:
        parts.append(Html("<h3>Columns not compared</h3>"))
        parts.append(table(["column", "why"], [[s["column"], s["reason"]] for s in skipped]))
    limits = r.get("limits") or {}
    facts = [
        ("Seed", r.get("seed")),
        ("Rows for shapes and pairs (each table, at most)", limits.get("quality_rows")),
        ("Rows for detection (each table, at most)", limits.get("detection_rows")),
        ("Rows for each ML-utility model (at most)", limits.get("utility_rows")),
        ("Real rows searched for neighbours (at most)", limits.get("privacy_reference_rows")),
        ("Rows whose distances are measured (at most)", limits.get("privacy_query_rows")),
    ]
    timings = r.get("timings") or {}
    if timings:
        facts.append(
            (
                "Computed in",
                ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in timings.items()),
            )
        )
    parts.append(Html("<h3>Sampling</h3>"))
    parts.append(key_values(facts))
    return join(*parts)
