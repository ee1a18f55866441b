"""Monitoring's domain logic: traffic statistics, drift references, drift checks, alerts."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.kit.db import Database
from inwire.kit.errors import Invalid, NotFound
from inwire.kit.events import CloudEvent
from inwire.kit.ids import new_id
from inwire.services.modelops.db import OUTBOX
from inwire.services.modelops.deployments.service import DeploymentRepository
from inwire.services.modelops.models.models import ModelVersion
from inwire.services.modelops.monitoring import drift
from inwire.services.modelops.monitoring.models import (
    DriftReport,
    MonitorConfig,
    MonitoringAlert,
    MonitoringWindow,
)
from inwire.services.modelops.monitoring.repository import (
    AlertRepository,
    ConfigRepository,
    WindowRepository,
    versions_with_traffic,
)
from inwire.services.modelops.monitoring.sketch import (
    merge_counts,
    merge_samples,
    percentiles,
    pick,
)
from inwire.services.modelops.monitoring.training_data import dataset_of

SOURCE = "/inwire/modelops"
#: Longest period one statistics or drift request may cover.
MAX_PERIOD = timedelta(days=31)
#: Points of a statistics timeline at most (windows are merged into wider steps beyond).
TIMELINE_POINTS = 120
#: Bins of a numeric prediction histogram.
HISTOGRAM_BINS = 20
#: Input rows a drift check compares at most (a uniform sample of the period's samples).
DRIFT_ROWS = 5000
#: Windows whose prediction samples a statistics request reads at most, per version.
SAMPLE_WINDOWS = 240
#: Windows whose input samples a drift check reads at most, per version.
DRIFT_WINDOWS = 60
#: Integer predictions with at most this many distinct values are shown as classes.
MAX_CLASS_VALUES = 50


def utc(value: datetime) -> datetime:
    """``value`` in UTC (a naive value is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The asked period (default: the last hour), checked."""
    end = utc(until) if until else datetime.now(UTC)
    start = utc(since) if since else end - timedelta(hours=1)
    if start >= end:
        raise Invalid(
            "since must be before until", details=[{"field": "since", "message": "not before"}]
        )
    if end - start > MAX_PERIOD:
        raise Invalid(
            "The period may cover 31 days at most",
            details=[{"field": "since", "message": "too far before until"}],
        )
    return start, end


async def check_deployment(session: AsyncSession, who: Principal, deployment_id: str) -> None:
    """404 unless the deployment belongs to the caller's organization."""
    await DeploymentRepository(session, who.org).get(deployment_id)


# -- statistics ---------------------------------------------------------------------------


def _prediction_summary(
    windows: Sequence[MonitoringWindow], samples: Sequence[tuple[list[Any], float]]
) -> dict[str, Any]:
    """Class counts of the windows, and a histogram of the numeric samples (each value
    weighted by the population its sample stands for)."""
    counts: dict[str, int] = {}
    for w in windows:
        merge_counts(counts, w.prediction_counts or {})
    values: list[float] = []
    weights: list[float] = []
    for sample, population in samples:
        if sample:
            values.extend(float(v) for v in sample)
            weights.extend([population / len(sample)] * len(sample))
    array = np.asarray(values, dtype=np.float64)
    integral = bool(array.size) and bool(np.all(array == np.round(array)))
    few = len(np.unique(array)) <= MAX_CLASS_VALUES if array.size else True
    kind: str | None
    if counts and (not array.size or (integral and few)):
        kind = "classes"
    elif array.size:
        kind = "numbers"
    else:
        kind = None
    histogram = None
    if array.size:
        hist, edges = np.histogram(array, bins=HISTOGRAM_BINS, weights=np.asarray(weights))
        histogram = {
            "edges": [float(e) for e in edges],
            "counts": [round(float(c)) for c in hist],
            "mean": float(np.average(array, weights=np.asarray(weights))),
        }
    classes = dict(sorted(counts.items(), key=lambda kv: -kv[1])) if counts else None
    return {"kind": kind, "classes": classes, "histogram": histogram}


def _latency(windows: Sequence[MonitoringWindow]) -> dict[str, float | None]:
    buckets: dict[str, int] = {}
    for w in windows:
        merge_counts(buckets, w.latency_buckets or {})
    requests = sum(w.requests for w in windows)
    p50, p90, p99 = percentiles(buckets, (50, 90, 99))
    return {
        "mean": (sum(w.latency_sum for w in windows) / requests) if requests else None,
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": max((w.latency_max for w in windows), default=None),
    }


def _counts(windows: Sequence[MonitoringWindow]) -> dict[str, Any]:
    requests = sum(w.requests for w in windows)
    errors = sum(w.errors for w in windows)
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": (errors / requests) if requests else None,
        "rows": sum(w.rows for w in windows),
    }


def _timeline(
    windows: Sequence[MonitoringWindow], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    minutes = max(1, int((until - since).total_seconds() // 60))
    step = timedelta(minutes=max(1, -(-minutes // TIMELINE_POINTS)))
    groups: dict[int, list[MonitoringWindow]] = {}
    for w in windows:
        groups.setdefault(int((utc(w.window_start) - since) // step), []).append(w)
    return [
        {
            "start": since + step * index,
            **_counts(group),
            "latency_p50": _latency(group)["p50"],
        }
        for index, group in sorted(groups.items())
    ]


def summarize(
    windows: Sequence[MonitoringWindow],
    since: datetime,
    until: datetime,
    samples: Mapping[int, tuple[list[Any], float]],
) -> dict[str, Any]:
    """Statistics of some windows: counts, error rate, latency, predictions (from the
    prediction samples read, window id -> (sample, population)), timeline."""
    picked = [samples[w.id] for w in windows if w.id in samples]
    return {
        **_counts(windows),
        "latency_seconds": _latency(windows),
        "predictions": _prediction_summary(windows, picked),
        "timeline": _timeline(windows, since, until),
    }


async def statistics(
    session: AsyncSession,
    who: Principal,
    deployment_id: str,
    since: datetime,
    until: datetime,
    version_id: str | None,
) -> dict[str, Any]:
    """The deployment's traffic in the period, overall and per version."""
    await check_deployment(session, who, deployment_id)
    repo = WindowRepository(session, who.org)
    windows = await repo.period(deployment_id, since, until, version_id)
    by_version: dict[str, list[MonitoringWindow]] = {}
    for w in windows:
        by_version.setdefault(w.version_id, []).append(w)
    rng = random.Random(f"{deployment_id}:{since.isoformat()}:{until.isoformat()}")
    populations: dict[int, float] = {}
    for ws in by_version.values():
        picked = pick([w.prediction_seen for w in ws], SAMPLE_WINDOWS, rng)
        populations.update({ws[i].id: population for i, population in picked.items()})
    read = await repo.samples(populations, MonitoringWindow.prediction_sample)
    samples = {i: (read.get(i, []), population) for i, population in populations.items()}
    return {
        "deployment_id": deployment_id,
        "since": since,
        "until": until,
        **summarize(windows, since, until, samples),
        "versions": [
            {"version_id": v, **summarize(ws, since, until, samples)}
            for v, ws in sorted(by_version.items())
        ],
    }


# -- reference and thresholds -----------------------------------------------------------


async def config_of(session: AsyncSession, org_id: str, deployment_id: str) -> MonitorConfig:
    """The deployment's configuration (an empty one, not stored, when it has none)."""
    row = await ConfigRepository(session, org_id).of(deployment_id)
    return row or MonitorConfig(
        organization_id=org_id,
        deployment_id=deployment_id,
        thresholds={},
        reference_rows=0,
        reference_detail={},
    )


async def _stored_config(
    session: AsyncSession, who: Principal, deployment_id: str
) -> MonitorConfig:
    repo = ConfigRepository(session, who.org)
    row = await repo.of(deployment_id)
    if row is None:
        row = MonitorConfig(
            organization_id=who.org,
            deployment_id=deployment_id,
            thresholds={},
            reference_rows=0,
            reference_detail={},
        )
        session.add(row)
    row.updated_by = who.subject
    return row


async def set_reference(
    session: AsyncSession,
    who: Principal,
    deployment_id: str,
    columns: dict[str, list[Any]],
    rows: int,
    *,
    source: str = "upload",
    detail: dict[str, Any] | None = None,
) -> MonitorConfig:
    """Store the deployment's drift reference (columns of rows)."""
    row = await _stored_config(session, who, deployment_id)
    row.reference = columns
    row.reference_rows = rows
    row.reference_source = source
    row.reference_detail = detail or {}
    await session.flush()
    return row


async def delete_reference(session: AsyncSession, who: Principal, deployment_id: str) -> None:
    """Forget the reference (drift then compares with the version's input example)."""
    row = await ConfigRepository(session, who.org).of(deployment_id)
    if row is None or row.reference is None:
        raise NotFound(f"Deployment {deployment_id!r} has no reference")
    row.reference, row.reference_rows, row.reference_source = None, 0, None
    row.reference_detail = {}
    await session.flush()


async def set_thresholds(
    session: AsyncSession, who: Principal, deployment_id: str, overrides: Mapping[str, Any]
) -> MonitorConfig:
    """Replace the deployment's threshold overrides (None or absent: the setting's)."""
    row = await _stored_config(session, who, deployment_id)
    row.thresholds = {k: v for k, v in overrides.items() if v is not None}
    await session.flush()
    return row


async def training_dataset_of(
    session: AsyncSession, who: Principal, version_id: str
) -> tuple[str, str]:
    """(dataset id, dataset version id) a model version of the caller's organization was
    trained on; 404 for an unknown version, 400 when its lineage names no dataset."""
    version = await session.get(ModelVersion, version_id)
    if version is None or version.organization_id != who.org:
        raise NotFound(f"Model version {version_id!r} not found")
    dataset = dataset_of(version.lineage)
    if dataset is None:
        raise Invalid(
            "The version's lineage names no Synthex dataset version: upload a reference",
            details=[{"field": "version_id", "message": "no dataset_id/dataset_version_id"}],
        )
    return dataset


# -- drift --------------------------------------------------------------------------------


def _example_reference(version: ModelVersion | None) -> dict[str, list[Any]] | None:
    """The version's input example as columns, when it is a list of records."""
    example = version.input_example if version is not None else None
    if isinstance(example, dict) and isinstance(example.get("dataframe_records"), list):
        example = example["dataframe_records"]
    if not isinstance(example, list) or not all(isinstance(r, dict) for r in example):
        return None
    keys: dict[str, None] = {}
    for record in example:
        keys.update(dict.fromkeys(record))
    return {k: [r.get(k) for r in example] for k in keys} if keys else None


async def _inputs(
    repo: WindowRepository, windows: Sequence[MonitoringWindow], rng: random.Random
) -> list[dict[str, Any]]:
    """A uniform sample (at most ``DRIFT_ROWS``) of the input rows the windows saw, from
    the samples of at most ``DRIFT_WINDOWS`` of them."""
    picked = pick([w.input_seen for w in windows], DRIFT_WINDOWS, rng)
    populations = {windows[i].id: population for i, population in picked.items()}
    read = await repo.samples(populations, MonitoringWindow.input_sample)
    sample: list[dict[str, Any]] = []
    seen = 0.0
    for window_id, population in populations.items():
        rows = read.get(window_id, [])
        sample = merge_samples(sample, seen, rows, population, DRIFT_ROWS, rng)
        seen += population
    return sample


async def _emit(
    session: AsyncSession, org_id: str, kind: str, subject: str, data: dict[str, Any]
) -> None:
    await OUTBOX.add(
        session,
        CloudEvent(
            source=SOURCE,
            type=f"inwire.modelops.deployment.{kind}",
            subject=subject,
            data=data,
            inwireorg=org_id,
        ),
    )


async def _alert(
    session: AsyncSession,
    org_id: str,
    deployment_id: str,
    version_id: str,
    kind: str,
    message: str,
    details: dict[str, Any],
    report_id: str | None = None,
) -> MonitoringAlert:
    alert = MonitoringAlert(
        id=new_id("alr"),
        organization_id=org_id,
        deployment_id=deployment_id,
        version_id=version_id,
        kind=kind,
        message=message,
        report_id=report_id,
        details=details,
    )
    await AlertRepository(session, org_id).add(alert)
    await _emit(
        session,
        org_id,
        "alert_raised",
        deployment_id,
        {
            "alert_id": alert.id,
            "deployment_id": deployment_id,
            "version_id": version_id,
            "kind": kind,
            "message": message,
            "report_id": report_id,
            "details": details,
        },
    )
    return alert


async def check_drift(
    session: AsyncSession,
    org_id: str,
    deployment_id: str,
    since: datetime,
    until: datetime,
    *,
    base: drift.Thresholds,
    version_id: str | None = None,
    trigger: str = "on_demand",
) -> list[DriftReport]:
    """Compare each version's recent inputs with the reference; store a report per
    version; raise alerts (drift, error rate) and publish them as events."""
    config = await config_of(session, org_id, deployment_id)
    thresholds = base.with_overrides(config.thresholds)
    versions = (
        [version_id]
        if version_id
        else await versions_with_traffic(session, org_id, deployment_id, since, until)
    )
    rng = random.Random(f"{deployment_id}:{since.isoformat()}")
    reports: list[DriftReport] = []
    windows_repo = WindowRepository(session, org_id)
    for vid in versions:
        windows = await windows_repo.period(deployment_id, since, until, vid)
        reference = config.reference
        source = config.reference_source
        if reference is None:
            model_version = await session.get(ModelVersion, vid)
            if model_version is not None and model_version.organization_id != org_id:
                model_version = None
            reference = _example_reference(model_version)
            source = "input_example" if reference is not None else None
        rows = await _inputs(windows_repo, windows, rng)
        features = drift.compare(reference or {}, rows, thresholds)
        drifted = [f["feature"] for f in features if f.get("drifted")]
        report = DriftReport(
            id=new_id("drf"),
            organization_id=org_id,
            deployment_id=deployment_id,
            version_id=vid,
            since=since,
            until=until,
            rows=len(rows),
            reference_rows=max((len(v) for v in (reference or {}).values()), default=0),
            drifted=bool(drifted),
            features=features,
            thresholds={**vars(thresholds), "reference_source": source},
            trigger=trigger,
        )
        session.add(report)
        await session.flush()
        reports.append(report)
        if drifted:
            details = {"features": drifted, "since": since.isoformat(), "until": until.isoformat()}
            alert = await _alert(
                session,
                org_id,
                deployment_id,
                vid,
                "drift",
                f"Input drift in {len(drifted)} feature(s): {', '.join(drifted[:10])}",
                details,
                report.id,
            )
            await _emit(
                session,
                org_id,
                "drift_detected",
                deployment_id,
                {
                    "deployment_id": deployment_id,
                    "version_id": vid,
                    "report_id": report.id,
                    "alert_id": alert.id,
                    "features": [f for f in features if f.get("drifted")],
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                },
            )
        counts = _counts(windows)
        rate = counts["error_rate"]
        if (
            rate is not None
            and counts["requests"] >= thresholds.min_rows
            and rate > thresholds.error_rate
        ):
            await _alert(
                session,
                org_id,
                deployment_id,
                vid,
                "error_rate",
                f"Error rate {rate:.1%} above {thresholds.error_rate:.1%}",
                {"requests": counts["requests"], "errors": counts["errors"], "error_rate": rate},
            )
    return reports


async def check_periodic(
    db: Database, org_id: str, deployment_id: str, *, since: datetime, base: drift.Thresholds
) -> list[DriftReport]:
    """The recorder's periodic drift check of one deployment (its own transaction)."""
    async with db.session() as session:
        return await check_drift(
            session,
            org_id,
            deployment_id,
            since,
            datetime.now(UTC),
            base=base,
            trigger="periodic",
        )
