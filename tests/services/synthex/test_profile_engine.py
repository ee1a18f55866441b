"""The profile engine on small tables with known answers."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from inwire.services.synthex.profiles.engine import (
    ProfileOptions,
    correlation_ratio,
    cramers_v,
    profile,
)
from inwire.services.synthex.schema import ColumnSpec, ColumnType


def spec(name: str, ctype: str, semantic: str | None = None) -> ColumnSpec:
    return ColumnSpec(name=name, type=ColumnType(ctype), semantic=semantic)


def column(p: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in p["columns"] if c["name"] == name)


def matrix_value(block: dict[str, Any], a: str, b: str) -> float | None:
    cols = block["columns"]
    value: float | None = block["matrix"][cols.index(a)][cols.index(b)]
    return value


def alerts(p: dict[str, Any], kind: str) -> list[str | None]:
    return [a["column"] for a in p["alerts"] if a["kind"] == kind]


def json_ready(p: dict[str, Any]) -> None:
    """Plain JSON: no NaN or infinity, no dates or numpy types."""
    json.dumps(p, allow_nan=False)


def test_numeric_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, 500)
    p = profile(pl.DataFrame({"x": x}), [spec("x", "float")])
    num = column(p, "x")["numeric"]
    assert num["mean"] == pytest.approx(x.mean())
    assert num["std"] == pytest.approx(x.std(ddof=1))
    assert num["min"] == pytest.approx(x.min())
    assert num["max"] == pytest.approx(x.max())
    assert num["quantiles"]["p25"] == pytest.approx(np.quantile(x, 0.25))
    assert num["quantiles"]["p99"] == pytest.approx(np.quantile(x, 0.99))
    hist = num["histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 == 21
    assert sum(hist["counts"]) == 500
    assert np.histogram(x, bins=20)[0].tolist()[1:-1] == hist["counts"][1:-1]
    json_ready(p)


def test_missing_values_nan_and_infinity() -> None:
    df = pl.DataFrame({"v": [1.0, None, math.nan, math.inf, 3.0, None]})
    p = profile(df, [spec("v", "float")])
    v = column(p, "v")
    assert v["missing"] == 3  # two nulls and a NaN
    assert v["nan"] == 1
    assert v["missing_share"] == pytest.approx(0.5)
    assert v["count"] == 3
    assert v["numeric"]["infinite"] == 1
    assert v["numeric"]["mean"] == pytest.approx(2.0)  # infinity left out of the moments
    assert v["numeric"]["max"] == 3.0
    assert alerts(p, "many_missing") == ["v"]
    assert alerts(p, "infinite") == ["v"]
    json_ready(p)


def test_small_integer_range_gets_one_bin_per_value() -> None:
    p = profile(pl.DataFrame({"stars": [1, 2, 2, 3, 3, 3, 5]}), [spec("stars", "integer")])
    hist = column(p, "stars")["numeric"]["histogram"]
    assert hist["edges"] == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert hist["counts"] == [1, 2, 3, 0, 1]


def test_top_values_distinct_and_imbalance() -> None:
    values = ["a"] * 6 + ["b"] * 3 + ["c"] + [None] * 2
    p = profile(
        pl.DataFrame({"k": values}), [spec("k", "categorical")], ProfileOptions(top_values=2)
    )
    k = column(p, "k")
    assert k["distinct"] == 3
    assert k["missing"] == 2
    assert k["top_values"] == [
        {"value": "a", "count": 6, "share": 0.6},
        {"value": "b", "count": 3, "share": 0.3},
    ]
    assert k["other_count"] == 1
    shares = np.array([0.6, 0.3, 0.1])
    entropy = -(shares * np.log(shares)).sum()
    assert k["imbalance"] == pytest.approx(1 - entropy / math.log(3), abs=1e-6)


def test_pearson_of_a_linear_column_is_one_and_spearman_sees_monotone_curves() -> None:
    x = np.arange(1, 201, dtype=float)
    df = pl.DataFrame({"x": x, "double": 2 * x + 1, "neg": -x, "cube": x**3})
    schema = [spec(n, "float") for n in df.columns]
    p = profile(df, schema)
    pearson, spearman = p["correlations"]["pearson"], p["correlations"]["spearman"]
    assert matrix_value(pearson, "x", "double") == pytest.approx(1.0)
    assert matrix_value(pearson, "x", "neg") == pytest.approx(-1.0)
    assert matrix_value(pearson, "x", "cube") < 0.95
    assert matrix_value(spearman, "x", "cube") == pytest.approx(1.0)
    assert "x" in alerts(p, "high_correlation")


def test_pearson_uses_pairwise_complete_rows() -> None:
    df = pl.DataFrame({"a": [1.0, 2.0, None, 4.0, 5.0], "b": [2.0, 4.0, 100.0, 8.0, None]})
    p = profile(df, [spec("a", "float"), spec("b", "float")])
    assert matrix_value(p["correlations"]["pearson"], "a", "b") == pytest.approx(1.0)


def test_cramers_v_of_identical_categories_is_one_and_of_independent_ones_zero() -> None:
    left = ["a", "b", "c", "d"] * 50
    df = pl.DataFrame(
        {
            "left": left,
            "same": left,
            "renamed": [{"a": "w", "b": "x", "c": "y", "d": "z"}[v] for v in left],
            # Every combination equally often: no association at all.
            "other": (["p"] * 4 + ["q"] * 4) * 25,
        }
    )
    p = profile(df, [spec(n, "categorical") for n in df.columns])
    v = p["correlations"]["cramers_v"]
    assert matrix_value(v, "left", "same") == pytest.approx(1.0)
    assert matrix_value(v, "left", "renamed") == pytest.approx(1.0)
    assert matrix_value(v, "left", "other") == pytest.approx(0.0, abs=1e-9)


def test_cramers_v_and_eta_functions() -> None:
    a = np.array([0, 1, 2, 0, 1, 2, -1])
    assert cramers_v(a, a) == pytest.approx(1.0)
    assert cramers_v(a, np.zeros_like(a)) is None  # a constant has no association
    groups = np.array([0, 0, 1, 1, 2, 2])
    assert correlation_ratio(np.array([1.0, 1.0, 5.0, 5.0, 9.0, 9.0]), groups) == pytest.approx(1.0)
    assert correlation_ratio(np.array([1.0, 5.0, 1.0, 5.0, 1.0, 5.0]), groups) == pytest.approx(0.0)
    assert correlation_ratio(np.array([1.0, np.nan, 3.0]), np.array([0, 1, -1])) is None


def test_correlation_ratio_for_number_by_category() -> None:
    groups = ["low", "mid", "high"] * 40
    df = pl.DataFrame(
        {"group": groups, "level": [{"low": 1.0, "mid": 2.0, "high": 3.0}[g] for g in groups]}
    )
    p = profile(df, [spec("group", "categorical"), spec("level", "float")])
    eta = p["correlations"]["correlation_ratio"]
    assert eta["rows"] == ["level"]
    assert eta["columns"] == ["group"]
    assert eta["matrix"][0][0] == pytest.approx(1.0)
    assert matrix_value(p["correlations"]["associations"], "level", "group") == pytest.approx(1.0)
    assert p["correlations"]["top_pairs"][0]["measure"] == "correlation_ratio"


def test_duplicate_rows_are_counted_exactly() -> None:
    df = pl.DataFrame({"a": [1, 2, 3, 1, 1, 2], "b": ["x", "y", "z", "x", "x", "q"]})
    p = profile(df, [spec("a", "integer"), spec("b", "categorical")])
    assert p["table"]["duplicate_rows"] == 2  # (1, x) twice more; (2, q) differs from (2, y)
    assert alerts(p, "duplicates") == [None]
    unique = profile(df.unique(maintain_order=True), [])
    assert unique["table"]["duplicate_rows"] == 0
    assert alerts(unique, "duplicates") == []


def test_alerts_for_constant_cardinality_identifier_skew_and_imbalance() -> None:
    n = 200
    rng = np.random.default_rng(0)
    df = pl.DataFrame(
        {
            "id": list(range(n)),
            "const": ["same"] * n,
            "code": [f"c{i % 120}" for i in range(n)],
            "income": np.exp(rng.normal(0, 2, n)),
            "flag": [True] * 196 + [False] * 4,
            "empty": pl.Series([None] * n, dtype=pl.Float64),
        }
    )
    schema = [
        spec("id", "integer"),
        spec("const", "categorical"),
        spec("code", "categorical"),
        spec("income", "float"),
        spec("flag", "boolean"),
        spec("empty", "float"),
    ]
    p = profile(df, schema)
    assert alerts(p, "constant") == ["const"]
    assert alerts(p, "high_cardinality") == ["code"]
    assert alerts(p, "likely_identifier") == ["id"]
    assert alerts(p, "skewed") == ["income"]
    assert alerts(p, "imbalanced") == ["flag"]
    assert alerts(p, "all_missing") == ["empty"]
    levels = [a["level"] for a in p["alerts"]]
    assert levels == sorted(levels, key=lambda level: level != "warning")  # warnings first
    json_ready(p)


def test_pii_from_schema_and_detected_in_values() -> None:
    df = pl.DataFrame(
        {
            "contact": [f"person{i}@example.org" for i in range(50)],
            "who": ["x"] * 50,
            "note": ["hello"] * 50,
        }
    )
    schema = [spec("contact", "text"), spec("who", "text", "person_name"), spec("note", "text")]
    p = profile(df, schema)
    assert column(p, "contact")["pii"] == {"semantic": "email", "source": "detected"}
    assert column(p, "who")["pii"] == {"semantic": "person_name", "source": "schema"}
    assert column(p, "note")["pii"] is None
    assert sorted(alerts(p, "likely_pii")) == ["contact", "who"]  # type: ignore[type-var]


def test_patterns_and_string_lengths() -> None:
    df = pl.DataFrame(
        {
            "zip": ["75001", "10115", "00184", "75002"],
            "name": ["John Smith", "Ada Lovelace", "Alan Turing", "AB-123"],
        }
    )
    p = profile(df, [spec("zip", "categorical"), spec("name", "text")])
    zip_text = column(p, "zip")["text"]
    assert zip_text["patterns"]["top"] == [{"pattern": "99999", "count": 4, "share": 1.0}]
    assert zip_text["length"]["min"] == zip_text["length"]["max"] == 5
    names = column(p, "name")["text"]["patterns"]["top"]
    assert names[0] == {"pattern": "Aa+ Aa+", "count": 3, "share": 0.75}
    assert names[1]["pattern"] == "A+-999"


def test_datetime_range_and_histogram() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(366)]
    stamps = [dt.datetime(2024, 1, 1, 12) + dt.timedelta(hours=i) for i in range(366)]
    p = profile(pl.DataFrame({"day": days, "at": stamps}), [])
    day = column(p, "day")
    assert day["type"] == "datetime"
    assert day["datetime"]["min"] == "2024-01-01"
    assert day["datetime"]["max"] == "2024-12-31"
    assert day["datetime"]["range_days"] == 365
    assert sum(day["datetime"]["histogram"]["counts"]) == 366
    assert column(p, "at")["datetime"]["min"] == "2024-01-01T12:00:00"
    json_ready(p)


def test_columns_missing_from_the_schema_are_profiled_from_their_storage() -> None:
    df = pl.DataFrame({"n": [1, 2, 3], "s": ["a", "b", "c"], "b": [True, False, True]})
    p = profile(df, [spec("n", "integer")])
    assert [c["type"] for c in p["columns"]] == ["integer", "text", "boolean"]
    assert column(p, "b")["boolean"] == {"true": 2, "false": 1, "true_share": pytest.approx(2 / 3)}


def test_large_tables_use_a_sample_for_rank_and_category_measures() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    x = rng.normal(size=n)
    df = pl.DataFrame(
        {"x": x, "y": x * 3 + rng.normal(scale=0.1, size=n), "g": rng.integers(0, 3, n)}
    )
    opts = ProfileOptions(sample_rows=1000, pattern_rows=200)
    schema = [spec("x", "float"), spec("y", "float"), spec("g", "categorical")]
    p = profile(df, schema, opts)
    assert p["sample"] == {
        "rows": 1000,
        "of_rows": 5000,
        "sampled": True,
        "seed": 0,
        "used_for": ["spearman", "cramers_v", "correlation_ratio"],
        "pattern_rows": 200,
    }
    assert column(p, "x")["count"] == 5000  # counts and moments stay exact
    assert matrix_value(p["correlations"]["spearman"], "x", "y") > 0.99
    again = profile(df, schema, opts)
    assert again["correlations"] == p["correlations"]  # the seeded sample repeats
    lazy = profile(df.lazy(), schema, opts)
    assert lazy["columns"] == p["columns"]
    assert lazy["table"] == p["table"]
    assert lazy["correlations"]["pearson"] == p["correlations"]["pearson"]


def test_correlation_matrices_are_capped() -> None:
    df = pl.DataFrame({f"c{i}": np.arange(50) * (i + 1) % 17 for i in range(6)})
    p = profile(df, [], ProfileOptions(max_correlation_columns=4))
    assert p["correlations"]["pearson"]["columns"] == ["c0", "c1", "c2", "c3"]
    assert p["correlations"]["left_out"] == ["c4", "c5"]


def test_empty_and_tiny_tables_do_not_break() -> None:
    empty = pl.DataFrame(
        {"a": pl.Series([], dtype=pl.Float64), "b": pl.Series([], dtype=pl.String)}
    )
    p = profile(empty, [])
    assert p["table"]["rows"] == 0
    assert p["table"]["duplicate_rows"] == 0
    json_ready(p)
    one = profile(pl.DataFrame({"a": [1.0], "b": ["x"]}), [])
    assert column(one, "a")["numeric"]["std"] is None
    json_ready(one)


def test_html_report_has_charts_alerts_and_escapes_names() -> None:
    from inwire.services.synthex.profiles.report import render_html

    evil = "<b>x</b>"
    df = pl.DataFrame(
        {
            "age": [20, 30, 40, 50, 60] * 10,
            evil: ["a", "b", "a", "a", "a"] * 10,
            "score": [1.0, 2.0, 3.0, 4.0, 5.0] * 10,
            "when": [dt.date(2024, 1, d) for d in range(1, 6)] * 10,
        }
    )
    page = render_html(profile(df, [spec(evil, "categorical")]))
    assert page.startswith("<!DOCTYPE html>")
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count('aria-label="Histogram"') == 2  # age, score
    assert page.count('aria-label="Over time"') == 1  # when
    assert 'aria-label="Top values"' in page
    assert "Pearson" in page
    assert "high correlation" in page  # age and score are perfectly correlated
    assert "duplicates" in page
