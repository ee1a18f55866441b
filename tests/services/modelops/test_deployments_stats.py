"""The controller's in-memory statistics: canary windows and the shadow comparison."""

from __future__ import annotations

import pytest

from inwire.services.modelops.deployments.stats import (
    ShadowRecord,
    Window,
    compare,
    percentile,
    shadow_summary,
)


def test_window_summary_counts_errors_and_latency_percentiles() -> None:
    w = Window()
    for i in range(1, 101):
        w.add(error=i % 10 == 0, latency=i / 1000)
    count, error_rate, p50, p99 = w.summary(60)
    assert count == 100
    assert error_rate == pytest.approx(0.1)
    ok = sorted(i for i in range(1, 101) if i % 10)
    assert p50 == pytest.approx(ok[44])  # nearest rank over the 90 answered
    assert p99 == pytest.approx(ok[89])
    assert Window().summary(60) == (0, 0.0, None, None)


def test_compare_and_shadow_summary() -> None:
    assert compare([1, 2, "a"], [1, 3, "b"]) == (3, 1, [0.0, 1.0])
    assert compare([True], [1]) == (1, 1, [])  # booleans are not numbers to diff
    records = [
        ShadowRecord(rows=2, agree=2, diffs=[0.0, 0.0], primary_ms=1.0, shadow_ms=2.0, error=False),
        ShadowRecord(rows=2, agree=0, diffs=[1.0, 3.0], primary_ms=3.0, shadow_ms=4.0, error=False),
        ShadowRecord(rows=0, agree=0, diffs=[], primary_ms=5.0, shadow_ms=None, error=True),
    ]
    out = shadow_summary(records)
    assert out["requests"] == 3
    assert out["shadow_errors"] == 1
    assert out["agreement_rate"] == pytest.approx(0.5)
    assert out["mean_abs_diff"] == pytest.approx(1.0)
    assert out["latency_ms"]["primary"] == {"p50": 3.0, "p99": 5.0}
    assert out["latency_ms"]["shadow"] == {"p50": 2.0, "p99": 4.0}
    empty = shadow_summary([])
    assert empty["agreement_rate"] is None
    assert empty["latency_ms"]["shadow"]["p50"] is None
    assert percentile([], 0.5) is None
