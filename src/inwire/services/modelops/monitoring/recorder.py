"""The prediction recorder: the predict path tells it what happened, it writes windows.

``observe`` only updates an in-memory summary of the current minute (no I/O, no await);
a background task flushes the summaries every ``flush_interval`` seconds into
``monitoring_windows``, merging with what an earlier flush of the same minute wrote. With
``drift_interval`` set, the same task checks each deployment that had traffic for input
drift that often (``monitoring.service.check_periodic``: reports, alerts, events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import undefer

from inwire.kit.db import Database
from inwire.services.modelops.monitoring.drift import Thresholds
from inwire.services.modelops.monitoring.models import MonitoringWindow
from inwire.services.modelops.monitoring.sketch import (
    MAX_CLASSES,
    Reservoir,
    latency_bucket,
    merge_counts,
    merge_samples,
    split_predictions,
)
from inwire.services.modelops.settings import ModelOpsSettings

log = logging.getLogger(__name__)

#: Seconds between deletions of windows past their retention.
PRUNE_INTERVAL = 3600.0

#: (organization, deployment, version, window start)
WindowKey = tuple[str, str, str, datetime]


def window_start(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in (UTC)."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass
class WindowState:
    """What one minute of one version's traffic looks like so far (not yet flushed)."""

    inputs: Reservoir
    predictions: Reservoir
    requests: int = 0
    errors: int = 0
    rows: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    latency_buckets: dict[str, int] = field(default_factory=dict)
    prediction_counts: dict[str, int] = field(default_factory=dict)


class PredictionRecorder:
    """Aggregates predictions per deployment, version and minute; flushes them to the
    database in the background. Create once per app; ``start`` then ``close``."""

    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = 1.0,
        sample_rows: int = 1000,
        drift_interval: float | None = None,
        thresholds: Thresholds | None = None,
        retention_days: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.sample_rows = sample_rows
        self.drift_interval = drift_interval or None
        self.thresholds = thresholds or Thresholds()
        self.retention_days = retention_days or None
        self._last_prune = 0.0
        self._minute = window_start(datetime.now(UTC))
        self._minute_end = 0.0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._windows: dict[WindowKey, WindowState] = {}
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._last_drift = time.monotonic()
        #: Deployments (organization, deployment) with traffic since the last drift check.
        self._active: set[tuple[str, str]] = set()

    def observe(
        self,
        org_id: str,
        deployment_id: str,
        version_id: str,
        inputs: list[dict[str, Any]],
        outputs: list[Any] | None,
        latency_s: float,
        error: bool,
    ) -> None:
        """Count one request that ``version_id`` answered (or failed) in ``latency_s``."""
        now = time.time()
        if now >= self._minute_end:
            start = window_start(datetime.fromtimestamp(now, UTC))
            self._minute, self._minute_end = start, start.timestamp() + 60
        key = (org_id, deployment_id, version_id, self._minute)
        numbers, classes = split_predictions(outputs or []) if not error else ([], {})
        with self._lock:
            state = self._windows.get(key)
            if state is None:
                state = WindowState(
                    inputs=Reservoir(self.sample_rows, self._rng),
                    predictions=Reservoir(self.sample_rows, self._rng),
                )
                self._windows[key] = state
            state.requests += 1
            state.errors += int(bool(error))
            state.rows += len(inputs)
            latency = max(0.0, float(latency_s))
            state.latency_sum += latency
            state.latency_max = max(state.latency_max, latency)
            bucket = str(latency_bucket(latency))
            state.latency_buckets[bucket] = state.latency_buckets.get(bucket, 0) + 1
            if not error:
                state.inputs.offer(inputs)
                state.predictions.offer(numbers)
                merge_counts(state.prediction_counts, classes, MAX_CLASSES)
            self._active.add((org_id, deployment_id))

    async def start(self) -> None:
        """Start flushing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="prediction-recorder")

    async def close(self) -> None:
        """Stop the background task and flush what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                if (
                    self.drift_interval is not None
                    and time.monotonic() - self._last_drift >= self.drift_interval
                ):
                    await self.check_drift()
                if (
                    self.retention_days is not None
                    and time.monotonic() - self._last_prune >= PRUNE_INTERVAL
                ):
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive a database hiccup
                log.exception("prediction recorder: flush or drift check failed")

    async def check_drift(self) -> None:
        """Check each deployment that had traffic since the last check for input drift,
        over the last ``drift_interval`` seconds (at least a minute)."""
        from inwire.services.modelops.monitoring.service import check_periodic

        self._last_drift = time.monotonic()
        with self._lock:
            active, self._active = self._active, set()
        since = window_start(datetime.now(UTC)) - timedelta(
            seconds=max(60.0, self.drift_interval or 0.0)
        )
        for org_id, deployment_id in sorted(active):
            try:
                await check_periodic(
                    self.db, org_id, deployment_id, since=since, base=self.thresholds
                )
            except Exception:
                log.exception("drift check of deployment %s failed", deployment_id)

    async def prune(self) -> int:
        """Delete the windows older than ``retention_days``; how many went."""
        self._last_prune = time.monotonic()
        if self.retention_days is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
        async with self.db.session() as session:
            result = await session.execute(
                delete(MonitoringWindow).where(MonitoringWindow.window_start < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def flush(self) -> None:
        """Write every pending window now (merging into rows already there)."""
        async with self._flush_lock:
            with self._lock:
                pending, self._windows = self._windows, {}
            if not pending:
                return
            try:
                async with self.db.session() as session:
                    for key, state in pending.items():
                        await self._write(session, key, state)
            except BaseException:
                # Kept for the next flush, also when cancelled mid-write (``close`` cancels
                # the background flush, then flushes what is left).
                with self._lock:
                    for key, state in pending.items():
                        newer = self._windows.get(key)
                        self._windows[key] = (
                            state if newer is None else self._merge_states(state, newer)
                        )
                raise

    def _merge_states(self, old: WindowState, new: WindowState) -> WindowState:
        new.requests += old.requests
        new.errors += old.errors
        new.rows += old.rows
        new.latency_sum += old.latency_sum
        new.latency_max = max(new.latency_max, old.latency_max)
        merge_counts(new.latency_buckets, old.latency_buckets)
        merge_counts(new.prediction_counts, old.prediction_counts, MAX_CLASSES)
        for mine, theirs in ((new.inputs, old.inputs), (new.predictions, old.predictions)):
            mine.items = merge_samples(
                theirs.items, theirs.seen, mine.items, mine.seen, self.sample_rows, self._rng
            )
            mine.seen += theirs.seen
        return new

    async def _write(self, session: Any, key: WindowKey, state: WindowState) -> None:
        org_id, deployment_id, version_id, start = key
        row = (
            await session.execute(
                select(MonitoringWindow)
                .where(
                    MonitoringWindow.deployment_id == deployment_id,
                    MonitoringWindow.version_id == version_id,
                    MonitoringWindow.window_start == start,
                )
                .options(
                    undefer(MonitoringWindow.input_sample),
                    undefer(MonitoringWindow.prediction_sample),
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is None:
            session.add(
                MonitoringWindow(
                    organization_id=org_id,
                    deployment_id=deployment_id,
                    version_id=version_id,
                    window_start=start,
                    requests=state.requests,
                    errors=state.errors,
                    rows=state.rows,
                    latency_sum=state.latency_sum,
                    latency_max=state.latency_max,
                    latency_buckets=state.latency_buckets,
                    prediction_counts=state.prediction_counts,
                    prediction_sample=state.predictions.items,
                    prediction_seen=state.predictions.seen,
                    input_sample=_jsonable(state.inputs.items),
                    input_seen=state.inputs.seen,
                )
            )
            await session.flush()
            return
        buckets = dict(row.latency_buckets or {})
        merge_counts(buckets, state.latency_buckets)
        counts = dict(row.prediction_counts or {})
        merge_counts(counts, state.prediction_counts, MAX_CLASSES)
        row.requests += state.requests
        row.errors += state.errors
        row.rows += state.rows
        row.latency_sum += state.latency_sum
        row.latency_max = max(row.latency_max, state.latency_max)
        row.latency_buckets = buckets
        row.prediction_counts = counts
        row.prediction_sample = merge_samples(
            list(row.prediction_sample or []),
            row.prediction_seen,
            state.predictions.items,
            state.predictions.seen,
            self.sample_rows,
            self._rng,
        )
        row.prediction_seen += state.predictions.seen
        row.input_sample = merge_samples(
            list(row.input_sample or []),
            row.input_seen,
            _jsonable(state.inputs.items),
            state.inputs.seen,
            self.sample_rows,
            self._rng,
        )
        row.input_seen += state.inputs.seen
        await session.flush()


def thresholds_from(settings: ModelOpsSettings) -> Thresholds:
    """The drift and alert thresholds the settings give."""
    return Thresholds(
        psi=settings.drift_psi_threshold,
        p_value=settings.drift_p_value,
        min_rows=settings.drift_min_rows,
        error_rate=settings.alert_error_rate,
    )


def recorder_from_settings(db: Database, settings: ModelOpsSettings) -> PredictionRecorder:
    """A recorder configured by the ``monitoring_*``, ``drift_*`` and ``alert_*`` settings."""
    return PredictionRecorder(
        db,
        flush_interval=settings.monitoring_flush_interval,
        sample_rows=settings.monitoring_sample_rows,
        drift_interval=settings.monitoring_drift_interval or None,
        thresholds=thresholds_from(settings),
        retention_days=settings.monitoring_retention_days or None,
    )


def _jsonable(rows: list[Any]) -> list[Any]:
    """The sampled rows as plain JSON values (dates and the like become strings)."""
    result: list[Any] = json.loads(json.dumps(rows, default=str))
    return result
