"""Model Training's contract: experiments, runs, metrics, params, tags and artifacts.

:class:`TrainingClient` is what the SDK's tracking helpers, training jobs and other
services use to log to Model Training: create experiments and runs, move a run through its
lifecycle, log params, tags and metric values in batches, read histories (paged or
downsampled), search and compare runs, and upload or download artifacts streamed. The
models mirror Model Training's ``experiments/schemas.py`` and ``runs/schemas.py``
(``tests/services/training/test_training_contract.py`` fails when they drift apart) and
ignore fields they do not know.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, Field

from inwire.contracts.core import Page
from inwire.kit.peers import QueryParams, ServiceClient

#: Where Model Training's API lives behind the gateway: ``http://gateway:8080/training/api/v1``.
GATEWAY_PREFIX = "/training"

RunStatus = Literal["scheduled", "running", "finished", "failed", "killed"]
Lifecycle = Literal["active", "archived"]
LifecycleFilter = Literal["active", "archived", "all"]
Order = Literal["asc", "desc"]
ExperimentSort = Literal["created_at", "updated_at", "name"]
Downsampling = Literal["lttb", "minmax"]

T = TypeVar("T", bound=BaseModel)


def _number(value: Any) -> float:
    """A metric value from the wire (non-finite values arrive as strings)."""
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return float(value)


class Experiment(BaseModel):
    """A named group of runs."""

    id: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    lifecycle: Lifecycle = "active"
    archived_at: datetime | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime


class RunSource(BaseModel):
    """Where a run came from: the Synthex dataset version, the code and who ran it."""

    dataset_version_id: str | None = None
    git_commit: str | None = None
    entry_point: str | None = None
    user: str | None = None


#: A float that arrives as a number or, when not finite, as "NaN", "Infinity", "-Infinity".
WireFloat = Annotated[float, BeforeValidator(_number)]


class LatestMetric(BaseModel):
    """A metric's latest value (highest step, then time)."""

    key: str
    value: WireFloat
    step: int
    timestamp: datetime


class Run(BaseModel):
    """A run with its params, tags and latest metric values."""

    id: str
    experiment_id: str
    name: str = ""
    status: RunStatus
    lifecycle: Lifecycle = "active"
    start_time: datetime | None = None
    end_time: datetime | None = None
    notes: str = ""
    parent_run_id: str | None = None
    source: RunSource = Field(default_factory=RunSource)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: list[LatestMetric] = Field(default_factory=list)
    artifact_prefix: str = ""
    created_by: str
    created_at: datetime
    updated_at: datetime


class MetricValue(BaseModel):
    """One value to log; ``timestamp`` defaults to when the server receives it."""

    key: str
    value: float
    step: int = 0
    timestamp: datetime | None = None


class MetricPoint(BaseModel):
    """One point of a metric's history."""

    step: int
    value: WireFloat
    timestamp: datetime


class MetricHistory(BaseModel):
    """A page of a metric's history, or the whole series downsampled."""

    run_id: str
    key: str
    downsampling: Literal["none", "lttb", "minmax"]
    total: int
    points: list[MetricPoint]


class Logged(BaseModel):
    """What a logging call stored."""

    metrics: int = 0
    params: int = 0
    tags: int = 0


class ArtifactEntry(BaseModel):
    """A file or folder of a run's artifacts."""

    path: str
    is_dir: bool
    size: int | None = None
    last_modified: datetime | None = None


class StoredArtifact(BaseModel):
    """An uploaded artifact."""

    path: str
    size: int
    sha256: str | None = None
    content_type: str | None = None


class CompareValue(BaseModel):
    """One param, tag or metric across compared runs."""

    key: str
    values: dict[str, Any]
    differs: bool
    min_run_id: str | None = None
    max_run_id: str | None = None


class CompareRun(BaseModel):
    """A compared run."""

    id: str
    name: str
    experiment_id: str
    status: RunStatus
    start_time: datetime | None = None
    end_time: datetime | None = None


class RunComparison(BaseModel):
    """Params, tags and latest metrics of runs side by side."""

    runs: list[CompareRun]
    params: list[CompareValue]
    metrics: list[CompareValue]
    tags: list[CompareValue]


def _metric_json(m: MetricValue | Mapping[str, Any]) -> dict[str, Any]:
    m = m if isinstance(m, MetricValue) else MetricValue.model_validate(m)
    out: dict[str, Any] = {"key": m.key, "value": m.value, "step": m.step}
    if m.timestamp is not None:
        stamp = m.timestamp if m.timestamp.tzinfo else m.timestamp.replace(tzinfo=UTC)
        out["timestamp"] = stamp.isoformat()
    return out


def _path(path: str) -> str:
    return quote(path.strip("/"), safe="/")


class TrainingClient(ServiceClient):
    """Typed calls to Model Training (``http://host:18052``, ``http://gateway:8080/training``
    or its app)."""

    async def _page(self, path: str, model: type[T], params: Mapping[str, Any]) -> Page[T]:
        query: QueryParams = {k: v for k, v in params.items() if v is not None}
        data, meta = await self.get_page(path, params=query)
        return self._as_page(model, data, meta)

    @staticmethod
    def _as_page(model: type[T], data: list[Any], meta: Mapping[str, Any]) -> Page[T]:
        return Page[model](  # type: ignore[valid-type]
            items=[model.model_validate(row) for row in data],
            page=int(meta.get("page", 1)),
            per_page=int(meta.get("per_page", len(data))),
            total=int(meta.get("total", len(data))),
        )

    # -- experiments -----------------------------------------------------------------------

    async def create_experiment(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> Experiment:
        """A new experiment; ``Conflict`` when the name is taken in the organization."""
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        return Experiment.model_validate(await self.post("/api/v1/experiments", json=body))

    async def get_experiment(self, experiment_id: str) -> Experiment:
        """One experiment."""
        return Experiment.model_validate(await self.get(f"/api/v1/experiments/{experiment_id}"))

    async def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name`` (archived or not), or None."""
        page = await self._page(
            "/api/v1/experiments", Experiment, {"name": name, "lifecycle": "all", "per_page": 1}
        )
        return page.items[0] if page.items else None

    async def list_experiments(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        q: str | None = None,
        tag: str | None = None,
        lifecycle: LifecycleFilter | None = None,
        sort: ExperimentSort | None = None,
        order: Order | None = None,
    ) -> Page[Experiment]:
        """One page of experiments (``q`` searches names, ``tag`` is ``key`` or ``key=value``)."""
        params = {"page": page, "per_page": per_page, "q": q, "tag": tag}
        return await self._page(
            "/api/v1/experiments",
            Experiment,
            {**params, "lifecycle": lifecycle, "sort": sort, "order": order},
        )

    async def update_experiment(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Experiment:
        """Rename, describe or retag (``tags`` replaces them all) an experiment."""
        body: dict[str, Any] = {
            k: v
            for k, v in {"name": name, "description": description, "tags": tags}.items()
            if v is not None
        }
        data = await self.patch(f"/api/v1/experiments/{experiment_id}", json=body)
        return Experiment.model_validate(data)

    async def archive_experiment(self, experiment_id: str) -> Experiment:
        """Archive an experiment."""
        data = await self.post(f"/api/v1/experiments/{experiment_id}/archive")
        return Experiment.model_validate(data)

    async def restore_experiment(self, experiment_id: str) -> Experiment:
        """Restore an archived experiment."""
        data = await self.post(f"/api/v1/experiments/{experiment_id}/restore")
        return Experiment.model_validate(data)

    async def delete_experiment(self, experiment_id: str) -> None:
        """Delete an experiment with its runs and their artifacts."""
        await self.delete(f"/api/v1/experiments/{experiment_id}")

    # -- runs ------------------------------------------------------------------------------

    async def create_run(
        self,
        experiment_id: str,
        *,
        name: str = "",
        status: Literal["scheduled", "running"] = "running",
        start_time: datetime | None = None,
        parent_run_id: str | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        notes: str = "",
        source: RunSource | None = None,
    ) -> Run:
        """A new run (``running`` now, or ``scheduled``)."""
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "name": name,
            "status": status,
            "parent_run_id": parent_run_id,
            "params": dict(params or {}),
            "tags": dict(tags or {}),
            "notes": notes,
            "source": (source or RunSource()).model_dump(),
        }
        if start_time is not None:
            body["start_time"] = start_time.isoformat()
        return Run.model_validate(await self.post("/api/v1/runs", json=body))

    async def get_run(self, run_id: str) -> Run:
        """One run with its params, tags and latest metrics."""
        return Run.model_validate(await self.get(f"/api/v1/runs/{run_id}"))

    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        notes: str | None = None,
        end_time: datetime | None = None,
    ) -> Run:
        """Rename or annotate a run, or move it through its lifecycle."""
        body: dict[str, Any] = {
            k: v for k, v in {"status": status, "name": name, "notes": notes}.items() if v
        }
        if end_time is not None:
            body["end_time"] = end_time.isoformat()
        return Run.model_validate(await self.patch(f"/api/v1/runs/{run_id}", json=body))

    async def archive_run(self, run_id: str) -> Run:
        """Archive a run."""
        return Run.model_validate(await self.post(f"/api/v1/runs/{run_id}/archive"))

    async def restore_run(self, run_id: str) -> Run:
        """Restore an archived run."""
        return Run.model_validate(await self.post(f"/api/v1/runs/{run_id}/restore"))

    async def delete_run(self, run_id: str) -> None:
        """Delete a run with its params, tags, metrics and artifacts."""
        await self.delete(f"/api/v1/runs/{run_id}")

    async def list_runs(
        self,
        *,
        experiment_id: str | None = None,
        status: RunStatus | None = None,
        parent_run_id: str | None = None,
        filter: str | None = None,
        lifecycle: LifecycleFilter | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Page[Run]:
        """One page of runs, newest first."""
        return await self._page(
            "/api/v1/runs",
            Run,
            {
                "experiment_id": experiment_id,
                "status": status,
                "parent_run_id": parent_run_id,
                "filter": filter,
                "lifecycle": lifecycle,
                "page": page,
                "per_page": per_page,
            },
        )

    async def search_runs(
        self,
        *,
        experiment_ids: Sequence[str] = (),
        filter: str = "",
        order_by: Sequence[str] = (),
        lifecycle: LifecycleFilter = "active",
        page: int = 1,
        per_page: int = 100,
    ) -> Page[Run]:
        """Runs matching a filter expression (``metrics.rmse < 0.5 and params.model = 'rf'``),
        sorted by ``order_by`` terms (``metrics.rmse ASC``)."""
        body = {
            "experiment_ids": list(experiment_ids),
            "filter": filter,
            "order_by": list(order_by),
            "lifecycle": lifecycle,
            "page": page,
            "per_page": per_page,
        }
        data, meta = await self.request("POST", "/api/v1/runs/search", json=body)
        return self._as_page(Run, data, meta)

    async def compare_runs(self, run_ids: Sequence[str]) -> RunComparison:
        """Params, tags and latest metrics of runs side by side, differences marked."""
        data = await self.get("/api/v1/runs/compare", params={"ids": ",".join(run_ids)})
        return RunComparison.model_validate(data)

    # -- logging ---------------------------------------------------------------------------

    async def log_params(self, run_id: str, params: Mapping[str, str]) -> Logged:
        """Log params (immutable: another value for a logged key is a ``Conflict``)."""
        data = await self.post(f"/api/v1/runs/{run_id}/params", json={"params": dict(params)})
        return Logged.model_validate(data)

    async def set_tags(self, run_id: str, tags: Mapping[str, str]) -> Logged:
        """Set tags, overwriting keys already set."""
        data = await self.put(f"/api/v1/runs/{run_id}/tags", json={"tags": dict(tags)})
        return Logged.model_validate(data)

    async def delete_tag(self, run_id: str, key: str) -> None:
        """Remove one tag."""
        await self.delete(f"/api/v1/runs/{run_id}/tags/{_path(key)}")

    async def log_metrics(
        self, run_id: str, metrics: Iterable[MetricValue | Mapping[str, Any]]
    ) -> Logged:
        """Log metric values in one call (one bulk insert on the server)."""
        body = {"metrics": [_metric_json(m) for m in metrics]}
        return Logged.model_validate(await self.post(f"/api/v1/runs/{run_id}/metrics", json=body))

    async def log_batch(
        self,
        run_id: str,
        *,
        metrics: Iterable[MetricValue | Mapping[str, Any]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Logged:
        """Log metrics, params and tags together: all stored, or none."""
        body = {
            "metrics": [_metric_json(m) for m in metrics],
            "params": dict(params or {}),
            "tags": dict(tags or {}),
        }
        return Logged.model_validate(await self.post(f"/api/v1/runs/{run_id}/batch", json=body))

    async def latest_metrics(self, run_id: str) -> list[LatestMetric]:
        """The latest value of each of a run's metrics."""
        data = await self.get(f"/api/v1/runs/{run_id}/metrics")
        return [LatestMetric.model_validate(m) for m in data]

    async def metric_history(
        self,
        run_id: str,
        key: str,
        *,
        page: int = 1,
        per_page: int = 1000,
        max_points: int | None = None,
        method: Downsampling = "lttb",
        step_min: int | None = None,
        step_max: int | None = None,
    ) -> MetricHistory:
        """A page of a metric's history, or with ``max_points`` the series downsampled."""
        params: dict[str, Any] = {
            "key": key,
            "page": page,
            "per_page": per_page,
            "max_points": max_points,
            "method": method,
            "step_min": step_min,
            "step_max": step_max,
        }
        data = await self.get(
            f"/api/v1/runs/{run_id}/metrics/history",
            params={k: v for k, v in params.items() if v is not None},
        )
        return MetricHistory.model_validate(data)

    # -- artifacts -------------------------------------------------------------------------

    async def upload_artifact(
        self,
        run_id: str,
        path: str,
        data: bytes | AsyncIterable[bytes] | Path,
        *,
        content_type: str = "application/octet-stream",
        chunk_size: int = 1024 * 1024,
    ) -> StoredArtifact:
        """Upload ``data`` (bytes, an async stream of chunks, or a local file, streamed) to
        the run's artifacts at ``path``."""
        body: bytes | AsyncIterable[bytes] = (
            _read_file(data, chunk_size) if isinstance(data, Path) else data
        )
        stored = await self.upload(
            f"/api/v1/runs/{run_id}/artifacts/{_path(path)}", body, content_type=content_type
        )
        return StoredArtifact.model_validate(stored)

    async def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactEntry]:
        """Files and folders directly in a folder of the run's artifacts."""
        data = await self.get(f"/api/v1/runs/{run_id}/artifacts", params={"path": path})
        return [ArtifactEntry.model_validate(e) for e in data]

    @asynccontextmanager
    async def stream_artifact(
        self, run_id: str, path: str, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """An artifact's bytes as a stream of chunks."""
        url = f"/api/v1/runs/{run_id}/artifacts/{_path(path)}"
        async with self.stream(url, chunk_size=chunk_size) as body:
            yield body

    async def download_artifact(self, run_id: str, path: str, target: Path) -> int:
        """Write an artifact to ``target`` (streamed; a partial file never stays); returns
        the bytes written."""
        partial = target.with_name(f".{target.name}.part")
        written = 0
        try:
            with partial.open("wb") as f:
                async with self.stream_artifact(run_id, path) as body:
                    async for chunk in body:
                        await asyncio.to_thread(f.write, chunk)
                        written += len(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return written

    async def delete_artifact(self, run_id: str, path: str) -> int:
        """Delete an artifact file or folder; returns the files deleted."""
        data = await self.delete(f"/api/v1/runs/{run_id}/artifacts/{_path(path)}")
        return int(data["files"])


async def _read_file(path: Path, chunk_size: int) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, chunk_size):
            yield chunk
