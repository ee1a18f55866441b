"""The prediction recorder: observe in memory, flush per-minute windows to the database."""

from __future__ import annotations

import random

import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import undefer

from inwire.kit.testing.identities import ORGS
from inwire.services.modelops.monitoring.models import MonitoringWindow
from inwire.services.modelops.monitoring.recorder import PredictionRecorder
from inwire.services.modelops.monitoring.sketch import (
    Reservoir,
    latency_bucket,
    merge_samples,
    percentiles,
    pick,
    split_predictions,
)


async def _windows(app: FastAPI) -> list[MonitoringWindow]:
    async with app.state.db.session(write=False) as session:
        rows = await session.execute(
            select(MonitoringWindow)
            .options(
                undefer(MonitoringWindow.input_sample),
                undefer(MonitoringWindow.prediction_sample),
            )
            .order_by(MonitoringWindow.id)
        )
        return list(rows.scalars())


async def test_observe_then_flush_writes_one_window_per_version(app: FastAPI) -> None:
    recorder = PredictionRecorder(app.state.db, flush_interval=60, sample_rows=5, seed=1)
    org = ORGS["a"]
    for i in range(8):
        rows = [{"x": float(i), "plan": "a"}, {"x": float(i) + 0.5, "plan": "b"}]
        recorder.observe(org, "dep_1", "ver_1", rows, [0.1 * i, 1], 0.01 * (i + 1), False)
    recorder.observe(org, "dep_1", "ver_1", [{"x": 1.0}], None, 0.5, True)
    recorder.observe(org, "dep_1", "ver_2", [{"x": 2.0}], ["yes"], 0.02, False)
    await recorder.close()  # close flushes without a start
    windows = await _windows(app)
    by_version = {w.version_id: w for w in windows}
    one = by_version["ver_1"]
    assert (one.requests, one.errors, one.rows) == (9, 1, 17)
    assert one.input_seen == 16
    assert len(one.input_sample) == 5
    assert all(r["plan"] in ("a", "b") for r in one.input_sample)
    assert one.prediction_counts == {"1": 8}
    assert one.prediction_seen == 16
    assert len(one.prediction_sample) == 5
    assert sum(one.latency_buckets.values()) == 9
    assert one.latency_max == pytest.approx(0.5)
    assert by_version["ver_2"].prediction_counts == {"yes": 1}
    assert {w.organization_id for w in windows} == {org}


async def test_a_second_flush_of_the_same_minute_merges(app: FastAPI) -> None:
    recorder = PredictionRecorder(app.state.db, flush_interval=60, sample_rows=4, seed=2)
    org = ORGS["a"]
    recorder.observe(org, "dep_1", "ver_1", [{"x": 1}] * 3, [1, 2, 3], 0.01, False)
    await recorder.flush()
    recorder.observe(org, "dep_1", "ver_1", [{"x": 2}] * 3, [4.0, 5.0, 6.0], 0.02, False)
    await recorder.flush()
    windows = await _windows(app)
    if len(windows) == 2:  # the minute turned between the two flushes
        assert sum(w.requests for w in windows) == 2
        return
    (w,) = windows
    assert (w.requests, w.rows, w.input_seen, w.prediction_seen) == (2, 6, 6, 6)
    assert len(w.input_sample) == 4
    assert len(w.prediction_sample) == 4
    assert w.prediction_counts == {"1": 1, "2": 1, "3": 1}


async def test_the_background_task_flushes(app: FastAPI) -> None:
    recorder = PredictionRecorder(app.state.db, flush_interval=0.05)
    await recorder.start()
    try:
        recorder.observe(ORGS["a"], "dep_9", "ver_9", [{"x": 1}], [1.0], 0.001, False)
        for _ in range(100):
            if await _windows(app):
                break
            import asyncio

            await asyncio.sleep(0.05)
    finally:
        await recorder.close()
    assert [w.requests for w in await _windows(app)] == [1]


def test_latency_percentiles_are_within_a_bucket() -> None:
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(mean=-4, sigma=0.6, size=5000)
    buckets: dict[str, int] = {}
    for value in latencies:
        key = str(latency_bucket(float(value)))
        buckets[key] = buckets.get(key, 0) + 1
    for q, got in zip((50, 90, 99), percentiles(buckets, (50, 90, 99)), strict=True):
        want = float(np.percentile(latencies, q))
        assert got is not None
        assert abs(got - want) / want < 0.1
    assert percentiles({}, (50,)) == [None]


def test_samples_stay_uniform_when_merged() -> None:
    rng = random.Random(3)
    picks_from_a = 0
    for _ in range(400):
        a = Reservoir(10, rng)
        a.offer(range(100))
        b = Reservoir(10, rng)
        b.offer(range(100, 400))
        merged = merge_samples(a.items, a.seen, b.items, b.seen, 10, rng)
        assert len(merged) == 10
        picks_from_a += sum(1 for v in merged if v < 100)
    # a holds a quarter of the population: about 1000 of the 4000 picks
    assert 850 < picks_from_a < 1150


def test_predictions_split_into_numbers_and_classes() -> None:
    numbers, classes = split_predictions(
        [0.5, 1, "cat", True, [0.1, 0.9], {"score": 2.5}, None, float("nan")]
    )
    assert numbers == [0.5, 1.0, 1.0, 2.5]
    assert classes == {"1": 2, "cat": 1, "True": 1}


async def test_windows_past_their_retention_are_pruned(app: FastAPI) -> None:
    from datetime import UTC, datetime, timedelta

    recorder = PredictionRecorder(app.state.db, retention_days=7)
    recorder.observe(ORGS["a"], "dep_1", "ver_1", [{"x": 1}], [1.0], 0.01, False)
    await recorder.flush()
    async with app.state.db.session() as session:
        session.add(
            MonitoringWindow(
                organization_id=ORGS["a"],
                deployment_id="dep_1",
                version_id="ver_1",
                window_start=datetime.now(UTC) - timedelta(days=8),
                requests=5,
            )
        )
    assert len(await _windows(app)) == 2
    assert await recorder.prune() == 1
    assert [w.requests for w in await _windows(app)] == [1]
    assert await PredictionRecorder(app.state.db).prune() == 0  # no retention: kept


def test_the_reservoir_keeps_a_uniform_sample_across_batches() -> None:
    rng = random.Random(11)
    hits = np.zeros(10)
    for _ in range(1000):
        reservoir = Reservoir(20, rng)
        offered = 0
        while offered < 1000:
            size = rng.choice([1, 3, 17, 64])
            reservoir.offer(list(range(offered, min(1000, offered + size))))
            offered = min(1000, offered + size)
        assert reservoir.seen == 1000
        assert len(reservoir.items) == 20
        assert len(set(reservoir.items)) == 20
        for item in reservoir.items:
            hits[item // 100] += 1
    # each tenth of the stream holds a tenth of the 20 000 picks (2000 +- ~4 sd)
    assert hits.min() > 1800
    assert hits.max() < 2200
    small = Reservoir(5, rng)
    small.offer([1, 2])
    small.offer([])
    assert (small.items, small.seen) == ([1, 2], 2)


def test_pick_reads_all_windows_or_a_weighted_draw() -> None:
    rng = random.Random(4)
    assert pick([3, 0, 5], 10, rng) == {0: 3.0, 2: 5.0}
    assert pick([0, 0], 10, rng) == {}
    weights = [1] * 900 + [100] * 100  # the last tenth holds ~92 % of the population
    drawn = pick(weights, 200, rng)
    assert sum(drawn.values()) == pytest.approx(sum(weights))
    heavy = sum(v for i, v in drawn.items() if i >= 900)
    assert 0.85 < heavy / sum(weights) < 0.98
