"""Rules of runs: lifecycle, immutable params, tags, metrics, history, search and compare."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.kit.db.base import utcnow
from inwire.kit.errors import Conflict, Invalid, NotFound
from inwire.kit.ids import new_id
from inwire.services.training.artifacts.service import run_prefix
from inwire.services.training.experiments.repository import ExperimentRepository
from inwire.services.training.runs import downsample as ds
from inwire.services.training.runs.models import FINAL, Run
from inwire.services.training.runs.repository import (
    MetricRepository,
    MetricRow,
    ParamRepository,
    RunRepository,
    TagRepository,
)
from inwire.services.training.runs.schemas import (
    BatchIn,
    MetricIn,
    RunCreate,
    RunMetricIn,
    RunUpdate,
    SearchIn,
    wire_float,
)
from inwire.services.training.runs.search import parse_filter, parse_order_by

#: Status changes a run may make. A final run may be resumed (``running`` again), as
#: MLflow's ``start_run(run_id=…)`` does with a finished run.
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"running", "finished", "failed", "killed"}),
    "running": frozenset({"finished", "failed", "killed"}),
    "finished": frozenset({"running"}),
    "failed": frozenset({"running"}),
    "killed": frozenset({"running"}),
}


def to_millis(moment: datetime | None) -> int:
    """Milliseconds since the Unix epoch (now when ``moment`` is None)."""
    if moment is None:
        return time.time_ns() // 1_000_000
    return int(moment.timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    """The UTC time of ``ms`` milliseconds since the Unix epoch."""
    return datetime.fromtimestamp(ms / 1000, UTC)


# -- runs --------------------------------------------------------------------------------------


async def get(session: AsyncSession, who: Principal, run_id: str) -> Run:
    """The run, or 404 (also for another organization's)."""
    return await RunRepository(session, who.org).get(run_id)


async def create(session: AsyncSession, who: Principal, data: RunCreate) -> Run:
    """A new run in an active experiment, with its first params and tags."""
    experiment = await ExperimentRepository(session, who.org).get(data.experiment_id)
    if experiment.lifecycle != "active":
        raise Conflict(
            f"Experiment {experiment.id!r} is archived; restore it to add runs",
            code="EXPERIMENT_ARCHIVED",
        )
    runs = RunRepository(session, who.org)
    if data.parent_run_id is not None:
        await runs.get(data.parent_run_id)
    start = data.start_time or (utcnow() if data.status == "running" else None)
    run = Run(
        id=new_id("run"),
        experiment_id=experiment.id,
        name=data.name,
        status=data.status,
        lifecycle="active",
        start_time=start,
        notes=data.notes,
        parent_run_id=data.parent_run_id,
        dataset_version_id=data.source.dataset_version_id,
        git_commit=data.source.git_commit,
        entry_point=data.source.entry_point,
        source_user=data.source.user,
        created_by=who.subject,
    )
    await runs.add(run)
    await ParamRepository(session).insert_new(run.id, data.params)
    await TagRepository(session).upsert(run.id, data.tags)
    return run


async def update(session: AsyncSession, who: Principal, run_id: str, data: RunUpdate) -> Run:
    """Rename, annotate or move a run through its lifecycle."""
    runs = RunRepository(session, who.org)
    run = await runs.get(run_id)
    changes = data.changes()
    status = changes.pop("status", None)
    end_time = changes.pop("end_time", None)
    if status is not None and status != run.status:
        if status not in TRANSITIONS[run.status]:
            allowed = ", ".join(sorted(TRANSITIONS[run.status]))
            raise Conflict(
                f"A {run.status} run cannot become {status}; it may become: {allowed}",
                code="INVALID_TRANSITION",
                details=[{"field": "status", "message": f"{run.status} -> {status} not allowed"}],
            )
        if status == "running":
            run.start_time = run.start_time or utcnow()
            run.end_time = None
        elif status in FINAL:
            run.start_time = run.start_time or end_time or utcnow()
            run.end_time = end_time or utcnow()
        run.status = status
    elif end_time is not None:
        if run.status not in FINAL:
            raise Invalid(
                "end_time can be set only on a finished, failed or killed run",
                details=[{"field": "end_time", "message": f"the run is {run.status}"}],
            )
        run.end_time = end_time
    if run.end_time is not None and run.start_time is not None and run.end_time < run.start_time:
        raise Invalid(
            "end_time is before the run's start_time",
            details=[{"field": "end_time", "message": "before start_time"}],
        )
    for field, value in changes.items():
        setattr(run, field, value)
    run.updated_at = utcnow()
    await runs.flush()
    return run


async def set_lifecycle(session: AsyncSession, who: Principal, run_id: str, lifecycle: str) -> Run:
    """Archive or restore a run; doing it twice is harmless."""
    runs = RunRepository(session, who.org)
    run = await runs.get(run_id)
    if run.lifecycle != lifecycle:
        run.lifecycle = lifecycle
        run.updated_at = utcnow()
        await runs.flush()
    return run


async def delete(session: AsyncSession, who: Principal, run_id: str) -> None:
    """Delete a run with its params, tags and metrics; runs nested in it lose their parent.

    Its artifacts are the caller's to remove from the object store.
    """
    runs = RunRepository(session, who.org)
    await runs.remove(await runs.get(run_id))


async def _writable(session: AsyncSession, who: Principal, run_id: str) -> Run:
    run = await RunRepository(session, who.org).get(run_id)
    if run.lifecycle != "active":
        raise Conflict(f"Run {run_id!r} is archived; restore it to log to it", code="RUN_ARCHIVED")
    return run


# -- params and tags ---------------------------------------------------------------------------


async def _log_params(session: AsyncSession, run_id: str, params: Mapping[str, str]) -> int:
    repo = ParamRepository(session)
    existing = await repo.existing(run_id, list(params))
    changed = {k: (existing[k], v) for k, v in params.items() if k in existing and existing[k] != v}
    if changed:
        raise Conflict(
            "Params are immutable once logged: "
            + ", ".join(f"{k!r} is {old!r}, not {new!r}" for k, (old, new) in changed.items()),
            code="PARAM_CHANGED",
            details=[
                {"field": f"params.{k}", "message": f"already logged as {old!r}"}
                for k, (old, _) in changed.items()
            ],
        )
    new = {k: v for k, v in params.items() if k not in existing}
    await repo.insert_new(run_id, new)
    return len(new)


async def log_params(
    session: AsyncSession, who: Principal, run_id: str, params: Mapping[str, str]
) -> int:
    """Log params; one already logged with the same value is fine, a new value is a 409."""
    await _writable(session, who, run_id)
    return await _log_params(session, run_id, params)


async def set_tags(
    session: AsyncSession, who: Principal, run_id: str, tags: Mapping[str, str]
) -> int:
    """Set tags (overwriting values of the same keys)."""
    await _writable(session, who, run_id)
    await TagRepository(session).upsert(run_id, tags)
    return len(tags)


async def delete_tag(session: AsyncSession, who: Principal, run_id: str, key: str) -> None:
    """Remove one tag; 404 when the run has no such tag."""
    await _writable(session, who, run_id)
    if not await TagRepository(session).remove_key(run_id, key):
        raise NotFound(f"Run {run_id!r} has no tag {key!r}")


# -- metrics -----------------------------------------------------------------------------------


def metric_rows(metrics: Sequence[MetricIn]) -> list[MetricRow]:
    """Rows to store for logged values (timestamps default to now)."""
    now = to_millis(None)
    return [
        MetricRow.of(
            m.key,
            m.value,
            m.step,
            now if m.timestamp is None else int(m.timestamp.timestamp() * 1000),
        )
        for m in metrics
    ]


def _check_batch_size(n: int, limit: int) -> None:
    if n > limit:
        raise Invalid(
            f"A batch holds at most {limit} values; this one has {n}",
            details=[{"field": "metrics", "message": f"at most {limit} values"}],
        )


async def log_metrics(
    session: AsyncSession,
    who: Principal,
    run_id: str,
    metrics: Sequence[MetricIn],
    *,
    limit: int,
) -> int:
    """Store metric values (one bulk insert) and update each key's latest value."""
    _check_batch_size(len(metrics), limit)
    await _writable(session, who, run_id)
    await MetricRepository(session).insert(run_id, metric_rows(metrics))
    return len(metrics)


async def log_metrics_of_runs(
    session: AsyncSession, who: Principal, metrics: Sequence[RunMetricIn], *, limit: int
) -> int:
    """Store values of several runs in one transaction: all stored, or none (404 when a run
    is not the caller's organization's, 409 when one is archived)."""
    _check_batch_size(len(metrics), limit)
    by_run: dict[str, list[MetricIn]] = {}
    for m in metrics:
        by_run.setdefault(m.run_id, []).append(m)
    found = await RunRepository(session, who.org).many(by_run)
    missing = [rid for rid in by_run if rid not in found]
    if missing:
        raise NotFound(
            f"No run {missing[0]!r}",
            details=[{"field": "metrics.run_id", "message": f"no run {rid!r}"} for rid in missing],
        )
    archived = [rid for rid, run in found.items() if run.lifecycle != "active"]
    if archived:
        raise Conflict(
            f"Run {archived[0]!r} is archived; restore it to log to it", code="RUN_ARCHIVED"
        )
    repo = MetricRepository(session)
    for rid, values in by_run.items():
        await repo.insert(rid, metric_rows(values))
    return len(metrics)


async def log_batch(
    session: AsyncSession, who: Principal, run_id: str, data: BatchIn, *, limit: int
) -> dict[str, int]:
    """Params, tags and metrics in one transaction: all stored, or none."""
    _check_batch_size(len(data.metrics) + len(data.params) + len(data.tags), limit)
    await _writable(session, who, run_id)
    params = await _log_params(session, run_id, data.params)
    await TagRepository(session).upsert(run_id, data.tags)
    await MetricRepository(session).insert(run_id, metric_rows(data.metrics))
    return {"metrics": len(data.metrics), "params": params, "tags": len(data.tags)}


def _latest_out(row: MetricRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "value": wire_float(row.real_value),
        "step": row.step,
        "timestamp": from_millis(row.timestamp),
    }


async def latest_metrics(
    session: AsyncSession, who: Principal, run_id: str
) -> list[dict[str, Any]]:
    """The latest value of each of a run's metrics."""
    await get(session, who, run_id)
    latest = await MetricRepository(session).latest_of_runs([run_id])
    return [_latest_out(r) for r in latest[run_id]]


@dataclass(frozen=True)
class HistoryQuery:
    """What part of a series to read: a page of raw points, or ``max_points`` downsampled."""

    key: str
    page: int = 1
    per_page: int = 1000
    max_points: int | None = None
    method: ds.Method = "lttb"
    step_min: int | None = None
    step_max: int | None = None


def _points(
    steps: np.ndarray[Any, Any], values: np.ndarray[Any, Any], stamps: np.ndarray[Any, Any]
) -> list[dict[str, Any]]:
    """Points for the wire; times formatted in one vectorised call (RFC 3339, UTC)."""
    times = np.datetime_as_string(stamps.astype("datetime64[ms]"), unit="ms", timezone="UTC")
    finite = np.isfinite(values)
    out_values: list[Any] = values.tolist()
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out_values[i] = wire_float(out_values[i])
    return [
        {"step": s, "value": v, "timestamp": t}
        for s, v, t in zip(steps.tolist(), out_values, times.tolist(), strict=True)
    ]


def _arrays(
    blocks: Sequence[Sequence[Any]],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(steps, values with NaN restored, timestamps) of rows (step, value, timestamp, is_nan)."""
    rows = [r for block in blocks for r in block]
    n = len(rows)
    steps = np.fromiter((r[0] for r in rows), np.int64, n)
    values = np.fromiter((r[1] for r in rows), np.float64, n)
    values[np.fromiter((r[3] for r in rows), np.bool_, n)] = np.nan
    stamps = np.fromiter((r[2] for r in rows), np.int64, n)
    return steps, values, stamps


async def history(
    session: AsyncSession, who: Principal, run_id: str, q: HistoryQuery
) -> dict[str, Any]:
    """A metric's history: one page of points, or the series downsampled when it has more
    than ``max_points`` (all of it when it has fewer)."""
    await get(session, who, run_id)
    repo = MetricRepository(session)
    method = "none"
    if q.max_points is None:
        total = await repo.history_count(run_id, q.key, q.step_min, q.step_max)
        rows = await repo.history_page(
            run_id,
            q.key,
            offset=(q.page - 1) * q.per_page,
            limit=q.per_page,
            step_min=q.step_min,
            step_max=q.step_max,
        )
        steps, values, stamps = _arrays([rows])
    else:
        blocks = [
            block
            async for block in repo.history_stream(
                run_id, q.key, step_min=q.step_min, step_max=q.step_max
            )
        ]
        steps, values, stamps = _arrays(blocks)
        total = len(steps)
        if total > q.max_points:
            picked = ds.downsample(steps, values, q.max_points, q.method)
            steps, values, stamps = steps[picked], values[picked], stamps[picked]
            method = q.method
    return {
        "run_id": run_id,
        "key": q.key,
        "downsampling": method,
        "total": total,
        "points": _points(steps, values, stamps),
    }


# -- views, search and compare -----------------------------------------------------------------


async def views(session: AsyncSession, who: Principal, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Runs as ``RunOut`` dicts, with params, tags and latest metrics (three queries)."""
    ids = [r.id for r in runs]
    params = await ParamRepository(session).of_runs(ids)
    tags = await TagRepository(session).of_runs(ids)
    latest = await MetricRepository(session).latest_of_runs(ids)
    return [
        {
            "id": r.id,
            "experiment_id": r.experiment_id,
            "name": r.name,
            "status": r.status,
            "lifecycle": r.lifecycle,
            "start_time": r.start_time,
            "end_time": r.end_time,
            "notes": r.notes,
            "parent_run_id": r.parent_run_id,
            "source": {
                "dataset_version_id": r.dataset_version_id,
                "git_commit": r.git_commit,
                "entry_point": r.entry_point,
                "user": r.source_user,
            },
            "params": params[r.id],
            "tags": tags[r.id],
            "metrics": [_latest_out(m) for m in latest[r.id]],
            "artifact_prefix": run_prefix(who.org, r.id),
            "created_by": r.created_by,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }
        for r in runs
    ]


async def search(
    session: AsyncSession,
    who: Principal,
    request: SearchIn,
    *,
    equal: Mapping[str, Any] | None = None,
) -> tuple[list[Run], int]:
    """Runs matching a filter expression (``runs.search`` grammar), sorted and paged.

    The MLflow API calls this with MLflow's filter strings and ``order_by`` terms.
    """
    expr = parse_filter(request.filter)
    order = parse_order_by(request.order_by)
    if request.experiment_ids:
        found = await ExperimentRepository(session, who.org).all(
            ExperimentRepository.model.id.in_(request.experiment_ids)
        )
        missing = set(request.experiment_ids) - {e.id for e in found}
        if missing:
            raise NotFound(f"Experiment {sorted(missing)[0]!r} not found")
    return await RunRepository(session, who.org).search(
        experiment_ids=request.experiment_ids,
        expr=expr,
        order=order,
        lifecycle=request.lifecycle,
        equal=equal,
        offset=(request.page - 1) * request.per_page,
        limit=request.per_page,
    )


def _compare(values: dict[str, Any], run_ids: Sequence[str], numeric: bool) -> dict[str, Any]:
    present = [values[r] for r in run_ids if r in values]
    differs = len(present) != len(run_ids) or len({repr(v) for v in present}) > 1
    out: dict[str, Any] = {"values": values, "differs": differs}
    if numeric:
        finite = {r: v for r, v in values.items() if isinstance(v, float) and math.isfinite(v)}
        if finite:
            out["min_run_id"] = min(finite, key=lambda r: (finite[r], run_ids.index(r)))
            out["max_run_id"] = max(finite, key=lambda r: (finite[r], -run_ids.index(r)))
    return out


async def compare(session: AsyncSession, who: Principal, run_ids: Sequence[str]) -> dict[str, Any]:
    """Params, tags and latest metrics of runs side by side, with differences marked."""
    found = await RunRepository(session, who.org).many(run_ids)
    for run_id in run_ids:
        if run_id not in found:
            raise NotFound(f"Run {run_id!r} not found")
    params = await ParamRepository(session).of_runs(run_ids)
    tags = await TagRepository(session).of_runs(run_ids)
    latest = await MetricRepository(session).latest_of_runs(run_ids)
    metric_values: dict[str, dict[str, float]] = {}
    for run_id in run_ids:
        for m in latest[run_id]:
            metric_values.setdefault(m.key, {})[run_id] = m.real_value

    def side_by_side(per_run: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        keys = sorted({k for rid in run_ids for k in per_run[rid]})
        return [
            {
                "key": k,
                **_compare({r: per_run[r][k] for r in run_ids if k in per_run[r]}, run_ids, False),
            }
            for k in keys
        ]

    metrics = []
    for key in sorted(metric_values):
        entry = _compare(metric_values[key], run_ids, True)
        entry["values"] = {r: wire_float(v) for r, v in entry["values"].items()}
        metrics.append({"key": key, **entry})
    return {
        "runs": [
            {
                "id": found[r].id,
                "name": found[r].name,
                "experiment_id": found[r].experiment_id,
                "status": found[r].status,
                "start_time": found[r].start_time,
                "end_time": found[r].end_time,
            }
            for r in run_ids
        ],
        "params": side_by_side(params),
        "tags": side_by_side(tags),
        "metrics": metrics,
    }
