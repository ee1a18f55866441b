"""The evaluation engine: every metric against a known answer or an independent computation."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from inwire.services.synthex.evaluations.engine import (
    EvaluationError,
    Limits,
    contingency_similarity,
    evaluate,
    ks_statistic,
    pairwise_pearson,
)
from inwire.services.synthex.schema import ColumnSpec, ColumnType

SCHEMA = [
    ColumnSpec(name="id", type=ColumnType.identifier),
    ColumnSpec(name="x", type=ColumnType.float),
    ColumnSpec(name="y", type=ColumnType.float),
    ColumnSpec(name="group", type=ColumnType.categorical),
    ColumnSpec(name="count", type=ColumnType.integer),
    ColumnSpec(name="flag", type=ColumnType.boolean),
    ColumnSpec(name="day", type=ColumnType.datetime),
    ColumnSpec(name="note", type=ColumnType.text),
]


def table(n: int, seed: int, shift: float = 0.0) -> pl.DataFrame:
    """Rows where y follows x closely and the group follows x: strong pair trends."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    y = 2.0 * x + rng.normal(0.0, 0.4, n)
    group = np.where(x + rng.normal(0.0, 0.4, n) > 0, "high", "low")
    count = rng.poisson(3 + 2 * (x > 0), n)
    return pl.DataFrame(
        {
            "id": [f"{seed}-{i}" for i in range(n)],
            "x": x,
            "y": y,
            "group": group,
            "count": count,
            "flag": rng.random(n) < 0.3,
            "day": [date(2024, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365, n)],
            "note": [f"note {i % 5}" for i in range(n)],
        }
    ).with_columns(
        # Some missing values, as real tables have.
        pl.when(pl.col("count") == 1).then(None).otherwise(pl.col("x")).alias("x")
    )


def shuffled(df: pl.DataFrame) -> pl.DataFrame:
    """Every column permuted on its own: same marginals, no relationships."""
    return df.select(pl.col(c).shuffle(seed=i) for i, c in enumerate(df.columns))


def by_column(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["column"]: c for c in report["quality"]["column_shapes"]["columns"]}


def pair(report: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    for p in report["quality"]["column_pair_trends"]["pairs"]:
        if set(p["columns"]) == {a, b}:
            return p
    raise AssertionError(f"no pair {a}, {b}")


@pytest.fixture(scope="module")
def real() -> pl.DataFrame:
    return table(800, seed=1)


@pytest.fixture(scope="module")
def holdout() -> pl.DataFrame:
    return table(400, seed=2)


@pytest.fixture(scope="module")
def identical_report(real: pl.DataFrame, holdout: pl.DataFrame) -> dict[str, Any]:
    return evaluate(real, real, SCHEMA, holdout=holdout, target="group", seed=0)


@pytest.fixture(scope="module")
def fresh_report(real: pl.DataFrame, holdout: pl.DataFrame) -> dict[str, Any]:
    return evaluate(real, table(800, seed=3), SCHEMA, holdout=holdout, target="group", seed=0)


# -- building blocks -----------------------------------------------------------------------


def test_ks_statistic_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, 500).astype(float)
    b = rng.integers(3, 25, 300).astype(float)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    c = rng.normal(size=1000)
    assert ks_statistic(c, c + 0.3) == pytest.approx(stats.ks_2samp(c, c + 0.3).statistic)


def test_pairwise_pearson_uses_rows_where_both_are_present() -> None:
    rng = np.random.default_rng(1)
    m = rng.normal(size=(300, 4))
    m[:, 1] += m[:, 0]
    assert np.allclose(pairwise_pearson(m), np.corrcoef(m, rowvar=False))
    m[rng.random(m.shape) < 0.2] = np.nan
    got = pairwise_pearson(m)
    for i in range(4):
        for j in range(4):
            both = ~np.isnan(m[:, i]) & ~np.isnan(m[:, j])
            want = np.corrcoef(m[both, i], m[both, j])[0, 1]
            assert got[i, j] == pytest.approx(want, abs=1e-9)


def test_pairwise_pearson_is_undefined_for_a_constant_column() -> None:
    m = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    assert np.isnan(pairwise_pearson(m)[0, 1])


def test_contingency_similarity_is_one_minus_total_variation() -> None:
    # Real pairs: (0,0) (0,1) (1,0) (1,1) once each; synthetic: (0,0) twice, (1,1) twice.
    real_a, real_b = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    syn_a, syn_b = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])
    # |.25-.5| + |.25-0| + |.25-0| + |.25-.5| = 1, halved: TVD .5.
    assert contingency_similarity(real_a, real_b, syn_a, syn_b, 2) == pytest.approx(0.5)
    assert contingency_similarity(real_a, real_b, real_a, real_b, 2) == pytest.approx(1.0)


def test_tv_complement_counts_missing_values_as_a_category() -> None:
    schema = [ColumnSpec(name="c", type=ColumnType.categorical)]
    real = pl.DataFrame({"c": ["a", "a", "b", None]})
    synthetic = pl.DataFrame({"c": ["a", "a", "a", "b"]})
    report = evaluate(real, synthetic, schema)
    # Shares a .5/.75, b .25/.25, missing .25/0: TVD = (.25 + 0 + .25) / 2.
    assert by_column(report)["c"]["score"] == pytest.approx(0.75)
    assert by_column(report)["c"]["real"]["missing"] == pytest.approx(0.25)


# -- whole reports -------------------------------------------------------------------------


def test_identical_data_scores_perfect_quality_and_full_copying(
    identical_report: dict[str, Any],
) -> None:
    r = identical_report
    assert r["summary"]["column_shapes"] == pytest.approx(1.0)
    assert r["summary"]["column_pair_trends"] == pytest.approx(1.0)
    assert r["summary"]["quality"] == pytest.approx(1.0)
    assert all(c["score"] == pytest.approx(1.0) for c in by_column(r).values())
    # Real and synthetic rows are indistinguishable to a classifier...
    assert r["detection"]["score"] > 0.8
    # ...but every synthetic row is a real row: the privacy metrics must say so.
    privacy = r["privacy"]
    assert privacy["exact_copies"]["rate"] == pytest.approx(1.0)
    assert privacy["dcr"]["synthetic"]["median"] == 0.0
    assert privacy["dcr"]["close_share"] == pytest.approx(1.0)
    assert privacy["nndr"]["synthetic"]["median"] == 0.0
    assert privacy["membership"]["auc"] > 0.95
    assert privacy["membership"]["risk"] > 0.9
    assert privacy["overfitting"]["closer_to_train_share"] > 0.95
    assert privacy["overfitting"]["score"] < 0.1
    assert r["ml_utility"]["ratio"] == pytest.approx(1.0)


def test_a_fresh_sample_scores_high_quality_and_low_risk(fresh_report: dict[str, Any]) -> None:
    r = fresh_report
    assert r["summary"]["quality"] > 0.9
    assert r["detection"]["score"] > 0.7
    privacy = r["privacy"]
    assert privacy["exact_copies"]["rate"] == 0.0
    assert privacy["dcr"]["close_share"] < 0.15
    assert privacy["membership"]["risk"] < 0.2
    overfit = privacy["overfitting"]
    assert overfit["expected_share"] == pytest.approx(800 / 1200)
    assert abs(overfit["closer_to_train_share"] - overfit["expected_share"]) < 0.1
    assert overfit["score"] > 0.7
    assert r["ml_utility"]["ratio"] > 0.85


def test_independent_columns_lose_pair_trends_not_shapes(
    real: pl.DataFrame, holdout: pl.DataFrame, fresh_report: dict[str, Any]
) -> None:
    r = evaluate(real, shuffled(table(800, seed=3)), SCHEMA, holdout=holdout, target="group")
    assert r["summary"]["column_shapes"] == pytest.approx(
        fresh_report["summary"]["column_shapes"], abs=1e-9
    )
    assert r["summary"]["column_pair_trends"] < fresh_report["summary"]["column_pair_trends"] - 0.05
    xy = pair(r, "x", "y")
    assert xy["metric"] == "correlation_similarity"
    assert xy["real"] > 0.95
    assert abs(xy["synthetic"]) < 0.15
    assert xy["score"] < 0.6
    assert pair(r, "x", "group")["metric"] == "contingency_similarity"
    assert pair(r, "x", "group")["score"] < pair(fresh_report, "x", "group")["score"]
    # A classifier exploits the broken relationships, and a model trained on them is useless.
    assert r["detection"]["auc"] > 0.8
    assert r["ml_utility"]["ratio"] < 0.8


def test_shifted_data_lowers_ks_complement_and_is_detected(
    real: pl.DataFrame, holdout: pl.DataFrame, fresh_report: dict[str, Any]
) -> None:
    r = evaluate(real, table(800, seed=3, shift=2.0), SCHEMA, holdout=holdout)
    x = by_column(r)["x"]
    assert x["metric"] == "ks_complement"
    assert x["score"] < 0.5
    assert by_column(fresh_report)["x"]["score"] > 0.9
    # Columns that did not move keep their score.
    assert by_column(r)["flag"]["score"] > 0.9
    assert r["detection"]["auc"] > 0.9
    assert r["detection"]["score"] < 0.2


def test_regression_utility_reports_r2_for_both_models(
    real: pl.DataFrame, holdout: pl.DataFrame
) -> None:
    good = evaluate(real, table(800, seed=3), SCHEMA, holdout=holdout, target="y")
    bad = evaluate(real, shuffled(table(800, seed=3)), SCHEMA, holdout=holdout, target="y")
    utility = good["ml_utility"]
    assert utility["task"] == "regression"
    assert utility["metric"] == "r2"
    assert utility["test_source"] == "holdout"
    assert utility["real"]["r2"] > 0.8
    assert utility["ratio"] > 0.9
    assert bad["ml_utility"]["synthetic"]["r2"] < 0.2
    assert bad["ml_utility"]["ratio"] < 0.3


def test_classification_utility_reports_accuracy_f1_and_auc(
    fresh_report: dict[str, Any],
) -> None:
    utility = fresh_report["ml_utility"]
    assert utility["task"] == "classification"
    for side in ("real", "synthetic"):
        assert set(utility[side]) == {"accuracy", "f1_macro", "roc_auc"}
        assert utility[side]["roc_auc"] > 0.8
    assert utility["ratio"] == pytest.approx(
        utility["synthetic"]["f1_macro"] / utility["real"]["f1_macro"]
    )


def test_a_synthetic_target_with_one_class_predicts_the_majority(real: pl.DataFrame) -> None:
    synthetic = table(400, seed=5).with_columns(group=pl.lit("high"))
    r = evaluate(real, synthetic, SCHEMA, target="group")
    assert r["ml_utility"]["synthetic"]["accuracy"] < r["ml_utility"]["real"]["accuracy"]
    assert r["ml_utility"]["ratio"] < 0.8


def test_without_holdout_privacy_explains_what_needs_one(real: pl.DataFrame) -> None:
    r = evaluate(real, real, SCHEMA, target="group")
    privacy = r["privacy"]
    assert privacy["exact_copies"]["rate"] == pytest.approx(1.0)
    assert privacy["exact_copies"]["holdout_rate"] is None
    assert privacy["dcr"]["holdout"] is None
    assert privacy["membership"] is None
    assert privacy["overfitting"] is None
    assert any("holdout" in note for note in privacy["notes"])
    assert r["ml_utility"]["test_source"] == "split_of_real"
    assert r["summary"]["membership_risk"] is None


def test_text_and_identifiers_are_skipped_with_reasons(fresh_report: dict[str, Any]) -> None:
    skipped = {s["column"]: s["reason"] for s in fresh_report["columns"]["skipped"]}
    assert set(skipped) == {"id", "note"}
    assert "identifier" in skipped["id"]
    compared = {c["column"] for c in fresh_report["columns"]["compared"]}
    assert compared == {"x", "y", "group", "count", "flag", "day"}
    # Text takes part in exact copies: x..day plus note.
    assert fresh_report["privacy"]["exact_copies"]["columns"] == 7


def test_a_column_missing_from_the_synthetic_data_is_skipped(real: pl.DataFrame) -> None:
    r = evaluate(real, real.drop("flag"), SCHEMA)
    skipped = {s["column"]: s["reason"] for s in r["columns"]["skipped"]}
    assert skipped["flag"] == "missing in the synthetic data"
    assert "flag" not in by_column(r)


def test_datetimes_compare_across_time_units_and_zones() -> None:
    schema = [ColumnSpec(name="t", type=ColumnType.datetime)]
    moments = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(200)]
    real = pl.DataFrame({"t": moments}).with_columns(pl.col("t").dt.cast_time_unit("ms"))
    as_text = pl.DataFrame({"t": [m.strftime("%Y-%m-%d %H:%M:%S") for m in moments]})
    assert by_column(evaluate(real, as_text, schema))["t"]["score"] == pytest.approx(1.0)
    shape = by_column(evaluate(real, real, schema))["t"]
    assert shape["real"]["min"] == "2024-01-01T00:00:00Z"


def test_numbers_stored_as_text_in_the_synthetic_data_are_read_as_numbers() -> None:
    schema = [ColumnSpec(name="n", type=ColumnType.integer)]
    real = pl.DataFrame({"n": list(range(100))})
    synthetic = pl.DataFrame({"n": [str(i) for i in range(100)]})
    assert by_column(evaluate(real, synthetic, schema))["n"]["score"] == pytest.approx(1.0)


def test_same_seed_same_report(real: pl.DataFrame, holdout: pl.DataFrame) -> None:
    synthetic = table(500, seed=9)
    first = evaluate(real, synthetic, SCHEMA, holdout=holdout, target="group", seed=7)
    second = evaluate(real, synthetic, SCHEMA, holdout=holdout, target="group", seed=7)
    first.pop("timings"), second.pop("timings")
    assert first == second


def test_report_is_plain_json(fresh_report: dict[str, Any]) -> None:
    text = json.dumps(fresh_report, allow_nan=False)
    assert json.loads(text) == fresh_report
    assert set(fresh_report["timings"]) >= {"column_shapes", "detection", "privacy"}


def test_sample_caps_bound_every_part(real: pl.DataFrame, holdout: pl.DataFrame) -> None:
    limits = Limits(
        quality_rows=300,
        detection_rows=200,
        utility_rows=250,
        privacy_reference_rows=500,
        privacy_query_rows=100,
    )
    r = evaluate(real, table(800, 3), SCHEMA, holdout=holdout, target="y", limits=limits)
    assert r["detection"]["rows"] == 200
    assert r["ml_utility"]["rows"]["real_train"] <= 250
    assert r["ml_utility"]["rows"]["synthetic_train"] <= 250
    distance = r["privacy"]["distance"]
    assert distance["reference_rows"] == 500
    assert distance["synthetic_rows"] == distance["holdout_rows"] == 100
    assert r["privacy"]["membership"]["members"] == 100
    assert any("reference cap" in note for note in r["privacy"]["notes"])
    # Exact copies always use every row.
    copied = evaluate(real, real, SCHEMA, holdout=holdout, limits=limits)
    assert copied["privacy"]["exact_copies"]["rate"] == pytest.approx(1.0)


def test_the_reference_cap_bounds_memory_by_cells(real: pl.DataFrame) -> None:
    limits = Limits(privacy_reference_cells=1000)
    r = evaluate(real, real, SCHEMA, limits=limits)
    distance = r["privacy"]["distance"]
    assert distance["reference_rows"] == 1000 // distance["width"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "nope"}, "not a column"),
        ({"target": "note"}, "free text"),
        ({"target": "id"}, "identifier"),
        ({"target": "day"}, "datetime"),
    ],
)
def test_unusable_targets_are_refused(
    real: pl.DataFrame, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate(real, real, SCHEMA, **kwargs)


def test_empty_tables_are_refused(real: pl.DataFrame) -> None:
    with pytest.raises(EvaluationError, match="synthetic data has no rows"):
        evaluate(real, real.head(0), SCHEMA)
    with pytest.raises(EvaluationError, match="real data has no rows"):
        evaluate(real.head(0), real, SCHEMA)


def test_progress_is_reported_in_order(real: pl.DataFrame) -> None:
    seen: list[float] = []
    evaluate(real, real, SCHEMA, progress=lambda f, _m: seen.append(f))
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


# -- the HTML report -----------------------------------------------------------------------


def test_html_report_has_every_part_with_charts(fresh_report: dict[str, Any]) -> None:
    from inwire.services.synthex.evaluations.report import render_html

    page = render_html(fresh_report)
    assert page.startswith("<!DOCTYPE html>")
    for heading in (
        "Summary",
        "Column shapes",
        "Column-pair trends",
        "Detection",
        "ML utility",
        "Privacy",
        "Membership inference",
        "Distance to closest record",
    ):
        assert heading in page
    assert page.count("<svg") >= 10
    assert "<script" not in page


def test_html_report_escapes_column_names_and_handles_missing_parts() -> None:
    from inwire.services.synthex.evaluations.report import render_html

    schema = [ColumnSpec(name="<b>odd</b>", type=ColumnType.categorical)]
    data = pl.DataFrame({"<b>odd</b>": ["a", "b"] * 20})
    page = render_html(evaluate(data, data, schema))
    assert "<b>odd</b>" not in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page
    assert 'id="utility"' not in page
    assert "Fewer than two comparable columns" in page
    assert "no holdout" in page


def test_wide_tables_use_fewer_rows_for_pair_trends(real: pl.DataFrame) -> None:
    # x, y, group, count, flag and day are compared: 15 pairs.
    wide = evaluate(real, real, SCHEMA, limits=Limits(pair_cells=15 * 300, pair_min_rows=100))
    trends = wide["quality"]["column_pair_trends"]
    assert len(trends["pairs"]) == 15
    assert trends["rows"] == {"real": 300, "synthetic": 300}
    floor = evaluate(real, real, SCHEMA, limits=Limits(pair_cells=15, pair_min_rows=400))
    assert floor["quality"]["column_pair_trends"]["rows"]["real"] == 400


def test_identical_tables_score_one_even_when_sampled(real: pl.DataFrame) -> None:
    limits = Limits(quality_rows=200, pair_cells=15 * 100, pair_min_rows=100)
    r = evaluate(real, real, SCHEMA, limits=limits)
    assert r["summary"]["column_shapes"] == pytest.approx(1.0)
    assert r["summary"]["column_pair_trends"] == pytest.approx(1.0)


def test_column_names_never_clash_with_internal_ones() -> None:
    names = ("real", "synthetic", "n", "value", "proportion")
    schema = [ColumnSpec(name=n, type=ColumnType.categorical) for n in names]
    data = pl.DataFrame({n: ["a", "b", "b", None] * 10 for n in names})
    r = evaluate(data, data, schema)
    assert [c["column"] for c in r["quality"]["column_shapes"]["columns"]] == list(names)
    assert r["summary"]["quality"] == pytest.approx(1.0)


def test_cramers_v_matches_scipy() -> None:
    from scipy.stats.contingency import association, crosstab

    from inwire.services.synthex.evaluations.engine import cramers_v

    rng = np.random.default_rng(4)
    a = rng.integers(0, 4, 500)
    b = (a + rng.integers(0, 3, 500)) % 5
    want = association(crosstab(a, b).count, method="cramer")
    assert cramers_v(a, b, 4, 5) == pytest.approx(want)
    assert cramers_v(a, np.zeros(500, dtype=int), 4, 1) == 0.0


def test_only_related_pairs_count_in_the_pair_trends_score(
    fresh_report: dict[str, Any],
) -> None:
    trends = fresh_report["quality"]["column_pair_trends"]
    xy = pair(fresh_report, "x", "y")
    assert xy["contributes"] is True  # |rho| ~ 0.98 in the real data
    flag_day = pair(fresh_report, "flag", "day")
    assert flag_day["real_association"] < 0.3
    assert flag_day["contributes"] is False  # unrelated in the real data
    counted = [p["score"] for p in trends["pairs"] if p["contributes"]]
    assert trends["contributing_pairs"] == len(counted) < len(trends["pairs"])
    assert trends["score"] == pytest.approx(float(np.mean(counted)))
    every = [p["score"] for p in trends["pairs"] if p["score"] is not None]
    assert trends["score_all_pairs"] == pytest.approx(float(np.mean(every)))
