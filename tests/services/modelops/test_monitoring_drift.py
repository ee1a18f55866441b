"""The drift engine: PSI, KS and chi-square per feature, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from inwire.services.modelops.monitoring.drift import (
    Thresholds,
    categorical_drift,
    compare,
    feature_kind,
    numeric_drift,
    psi,
    quantile_edges,
)


def test_psi_is_the_textbook_sum() -> None:
    expected = np.array([50.0, 30.0, 20.0])
    actual = np.array([30.0, 30.0, 40.0])
    e, a = expected / 100, actual / 100
    assert psi(expected, actual) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert psi(expected, expected) == 0.0
    # an empty bin on one side is floored, not infinite
    assert np.isfinite(psi(np.array([10.0, 0.0]), np.array([5.0, 5.0])))


def test_numeric_drift_matches_scipy_ks_and_quantile_bins() -> None:
    rng = np.random.default_rng(7)
    ref = rng.normal(0, 1, 2000)
    cur = rng.normal(0.5, 1, 1500)
    result = numeric_drift(ref, cur)
    want = stats.ks_2samp(ref, cur)
    assert result["statistic"] == pytest.approx(want.statistic)
    assert result["p_value"] == pytest.approx(want.pvalue)
    edges = quantile_edges(ref)
    assert len(edges) == 9
    ref_counts = np.histogram(ref, bins=np.concatenate(([-np.inf], edges, [np.inf])))[0]
    assert ref_counts.min() >= 199  # deciles of the reference: ~200 each
    assert result["psi"] > 0.2


def test_categorical_drift_matches_scipy_chi2_contingency() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["c"] * 45 + ["d"] * 5
    result = categorical_drift(ref, cur)
    table = np.array([[50, 30, 20, 0], [20, 30, 45, 5]])
    want = stats.chi2_contingency(table, correction=False)
    assert result["statistic"] == pytest.approx(want.statistic)
    assert result["p_value"] == pytest.approx(want.pvalue)
    assert result["categories"] == 4
    assert result["top"]["c"] == 45
    single = categorical_drift(["x"] * 10, ["x"] * 10)
    assert (single["statistic"], single["p_value"], single["psi"]) == (0.0, 1.0, 0.0)


def _rows(rng: np.random.Generator, n: int, shift: float, plans: list[float]) -> list[dict]:
    ages = rng.normal(40 + shift, 10, n)
    incomes = rng.lognormal(10, 0.5, n)
    chosen = rng.choice(["basic", "plus", "pro"], size=n, p=plans)
    return [
        {"age": float(a), "income": float(i), "plan": str(p)}
        for a, i, p in zip(ages, incomes, chosen, strict=True)
    ]


def _columns(rows: list[dict]) -> dict[str, list]:
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_no_drift_on_the_same_distribution_and_drift_on_shifted_features() -> None:
    rng = np.random.default_rng(42)
    reference = _columns(_rows(rng, 3000, 0, [0.5, 0.3, 0.2]))
    same = compare(reference, _rows(rng, 1000, 0, [0.5, 0.3, 0.2]), Thresholds())
    assert [f["drifted"] for f in same] == [False, False, False]
    assert all(f["psi"] < 0.1 for f in same)
    shifted = compare(reference, _rows(rng, 1000, 8, [0.2, 0.3, 0.5]), Thresholds())
    verdicts = {f["feature"]: f["drifted"] for f in shifted}
    assert verdicts == {"age": True, "income": False, "plan": True}
    kinds = {f["feature"]: (f["kind"], f["test"]) for f in shifted}
    assert kinds == {
        "age": ("number", "ks"),
        "income": ("number", "ks"),
        "plan": ("category", "chi2"),
    }


def test_too_few_rows_gives_no_verdict_and_missing_values_are_counted() -> None:
    reference = {"x": [float(i) for i in range(100)]}
    rows = [{"x": 1.0}] * 10 + [{"y": 2}] * 5
    (entry,) = compare(reference, rows, Thresholds(min_rows=20))
    assert entry["drifted"] is None
    assert (entry["rows"], entry["missing"]) == (10, 5)


def test_overrides_and_feature_kinds() -> None:
    t = Thresholds().with_overrides({"psi": 0.5, "min_rows": 10.0, "unknown": 1, "p_value": None})
    assert (t.psi, t.min_rows, t.p_value) == (0.5, 10, 0.01)
    assert feature_kind([1, 2.5, None]) == "number"
    assert feature_kind([True, False]) == "category"
    assert feature_kind(["a", 1]) == "category"
