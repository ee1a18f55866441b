"""HTTP endpoints of runs: lifecycle, params, tags, metrics, history, search and compare."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import pydantic_core
from fastapi import BackgroundTasks, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.errors import Invalid, UnsupportedMediaType
from inwire.kit.storage import StorageDep
from inwire.services.training.artifacts.service import delete_run_artifacts
from inwire.services.training.runs import service
from inwire.services.training.runs.schemas import (
    BatchIn,
    LatestMetricOut,
    LoggedOut,
    MetricBatch,
    MetricHistory,
    MetricIn,
    ParamsIn,
    RunComparison,
    RunCreate,
    RunMetricBatch,
    RunOut,
    RunUpdate,
    SearchIn,
    Status,
    TagsIn,
)
from inwire.services.training.settings import TrainingSettings

router = APIRouter(prefix="/runs", tags=["runs"])

T = TypeVar("T")

Reader = Annotated[Principal, require("runs:read")]
Creator = Annotated[Principal, require("runs:create")]
Updater = Annotated[Principal, require("runs:update")]
Deleter = Annotated[Principal, require("runs:delete")]
MetricReader = Annotated[Principal, require("metrics:read")]
MetricWriter = Annotated[Principal, require("metrics:create")]

#: Most runs one comparison shows side by side.
MAX_COMPARE = 50

_query = list_params(
    ("start_time", "end_time", "created_at", "name", "status"),
    filters={
        "experiment_id": str,
        "status": Status,
        "parent_run_id": str,
        "dataset_version_id": str,
        "created_by": str,
    },
)
_SORT_TERMS = {
    "start_time": "attributes.start_time",
    "end_time": "attributes.end_time",
    "created_at": "attributes.start_time",
    "name": "attributes.name",
    "status": "attributes.status",
}


async def _settings(request: Request) -> TrainingSettings:
    settings: TrainingSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[TrainingSettings, Depends(_settings)]


async def _one(session: Any, who: Principal, run: Any) -> dict[str, Any]:
    return {"data": (await service.views(session, who, [run]))[0]}


@router.post("", status_code=201, response_model=Item[RunOut])
async def create_run(data: RunCreate, session: SessionDep, who: Creator) -> dict[str, Any]:
    """Start a run in an experiment (``running`` now, or ``scheduled``), with params, tags,
    notes, a parent run and its source (dataset version, git commit, entry point, user)."""
    return await _one(session, who, await service.create(session, who, data))


@router.get("", response_model=Page[RunOut])
async def list_runs(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_query)],
    who: Reader,
    filter: Annotated[
        str | None,
        Query(max_length=10_000, description="Filter expression, e.g. `metrics.rmse < 0.5`"),
    ] = None,
    lifecycle: Annotated[Literal["active", "archived", "all"], Query()] = "active",
) -> dict[str, Any]:
    """Runs of your organization: filter by experiment, status, parent, dataset version or
    a filter expression; sort by time, name or status."""
    filters = dict(query.filters)
    experiment_id = filters.pop("experiment_id", None)
    request = SearchIn(
        experiment_ids=[experiment_id] if experiment_id else [],
        filter=filter or "",
        order_by=[f"{_SORT_TERMS[query.sort]} {query.order.upper()}"],
        lifecycle=lifecycle,
        page=query.page,
        per_page=query.per_page,
    )
    rows, total = await service.search(session, who, request, equal=filters)
    return query.page_of(await service.views(session, who, rows), total)


@router.post("/search", response_model=Page[RunOut])
async def search_runs(data: SearchIn, session: SessionDep, who: Reader) -> dict[str, Any]:
    """Search runs with a filter expression on params, metrics, tags and attributes, sorted
    by any of them (`order_by: ["metrics.rmse ASC"]`)."""
    rows, total = await service.search(session, who, data)
    return {
        "data": await service.views(session, who, rows),
        "meta": {"page": data.page, "per_page": data.per_page, "total": total},
    }


@router.get("/compare", response_model=Item[RunComparison])
async def compare_runs(
    session: SessionDep,
    who: Reader,
    ids: Annotated[str, Query(max_length=5000, description="Run ids, comma-separated")],
) -> dict[str, Any]:
    """Params, tags and latest metrics of runs side by side, with the differences marked."""
    run_ids = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not 1 <= len(run_ids) <= MAX_COMPARE:
        raise Invalid(
            f"Compare 1 to {MAX_COMPARE} runs",
            details=[{"field": "ids", "message": f"between 1 and {MAX_COMPARE} run ids"}],
        )
    return {"data": await service.compare(session, who, run_ids)}


@router.get("/{run_id}", response_model=Item[RunOut])
async def get_run(run_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One run with its params, tags and latest metric values."""
    return await _one(session, who, await service.get(session, who, run_id))


@router.patch("/{run_id}", response_model=Item[RunOut])
async def update_run(
    run_id: str, data: RunUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Rename or annotate a run, or move it on: scheduled → running → finished, failed or
    killed (a final run may be resumed)."""
    return await _one(session, who, await service.update(session, who, run_id, data))


@router.post("/{run_id}/archive", response_model=Item[RunOut])
async def archive_run(run_id: str, session: SessionDep, who: Updater) -> dict[str, Any]:
    """Archive a run: it leaves searches and takes no more logging until restored."""
    return await _one(session, who, await service.set_lifecycle(session, who, run_id, "archived"))


@router.post("/{run_id}/restore", response_model=Item[RunOut])
async def restore_run(run_id: str, session: SessionDep, who: Updater) -> dict[str, Any]:
    """Restore an archived run."""
    return await _one(session, who, await service.set_lifecycle(session, who, run_id, "active"))


@router.delete("/{run_id}", status_code=204)
async def delete_run(
    run_id: str,
    session: SessionDep,
    store: StorageDep,
    background: BackgroundTasks,
    who: Deleter,
) -> Response:
    """Delete a run with its params, tags, metrics and artifacts."""
    await service.delete(session, who, run_id)
    background.add_task(delete_run_artifacts, store, who.org, run_id)
    return Response(status_code=204)


@router.post("/{run_id}/params", response_model=Item[LoggedOut])
async def log_params(
    run_id: str, data: ParamsIn, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Log params. A param is immutable: the same value again is fine, another is a 409."""
    count = await service.log_params(session, who, run_id, data.params)
    return {"data": LoggedOut(params=count)}


@router.put("/{run_id}/tags", response_model=Item[LoggedOut])
async def set_tags(run_id: str, data: TagsIn, session: SessionDep, who: Updater) -> dict[str, Any]:
    """Set tags, overwriting the values of keys already set; other tags stay."""
    count = await service.set_tags(session, who, run_id, data.tags)
    return {"data": LoggedOut(tags=count)}


@router.delete("/{run_id}/tags/{key:path}", status_code=204)
async def delete_tag(run_id: str, key: str, session: SessionDep, who: Updater) -> Response:
    """Remove one tag."""
    await service.delete_tag(session, who, run_id, key)
    return Response(status_code=204)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``#/$defs/…`` reference replaced by its definition."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.rpartition("/")[2]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _body_doc(schema: Any) -> dict[str, Any]:
    """The OpenAPI request body of a route that parses its JSON itself."""
    raw = TypeAdapter(schema).json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(raw, raw.get("$defs", {}))}},
        }
    }


async def _json_body(request: Request, adapter: TypeAdapter[T]) -> T:
    """The body parsed and validated in one pass by pydantic-core: logging routes take
    thousands of values per call, and FastAPI's json.loads-then-validate costs twice that."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content type {media!r} is not supported here; send application/json",
            details=[{"field": "content-type", "message": "expected application/json"}],
        )
    body = await request.body()
    if b"\\u0000" in body:
        raise Invalid(
            "The request body contains a NUL character",
            details=[{"field": "body", "message": "NUL not allowed"}],
        )
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            if loc and loc[0] in ("one", "batch"):
                loc = loc[1:]
            errors.append({**e, "loc": ("body", *loc)})
        raise RequestValidationError(errors) from exc


def _metrics_kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "metrics" in value else "one"


_METRICS_IN: TypeAdapter[MetricIn | MetricBatch] = TypeAdapter(
    Annotated[
        Annotated[MetricIn, Tag("one")] | Annotated[MetricBatch, Tag("batch")],
        Discriminator(_metrics_kind),
    ]
)
_BATCH_IN: TypeAdapter[BatchIn] = TypeAdapter(BatchIn)


@router.post(
    "/{run_id}/metrics",
    status_code=201,
    response_model=Item[LoggedOut],
    openapi_extra=_body_doc(MetricIn | MetricBatch),
)
async def log_metrics(
    run_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    who: MetricWriter,
) -> dict[str, Any]:
    """Log one metric value (`{"key", "value", "step", "timestamp"}`) or many
    (`{"metrics": [...]}`) in one bulk insert."""
    data = await _json_body(request, _METRICS_IN)
    metrics = data.metrics if isinstance(data, MetricBatch) else [data]
    count = await service.log_metrics(
        session, who, run_id, metrics, limit=settings.max_batch_values
    )
    return {"data": LoggedOut(metrics=count)}


@router.post(
    "/{run_id}/batch",
    status_code=201,
    response_model=Item[LoggedOut],
    openapi_extra=_body_doc(BatchIn),
)
async def log_batch(
    run_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    who: Updater,
    _writer: MetricWriter,
) -> dict[str, Any]:
    """Log metrics, params and tags together, all or nothing (like MLflow's log-batch)."""
    data = await _json_body(request, _BATCH_IN)
    logged = await service.log_batch(session, who, run_id, data, limit=settings.max_batch_values)
    return {"data": LoggedOut(**logged)}


@router.get("/{run_id}/metrics", response_model=Item[list[LatestMetricOut]])
async def latest_metrics(run_id: str, session: SessionDep, who: MetricReader) -> dict[str, Any]:
    """The latest value (highest step, then time) of each of a run's metrics."""
    return {"data": await service.latest_metrics(session, who, run_id)}


async def _history_query(
    settings: SettingsDep,
    key: Annotated[str, Query(min_length=1, max_length=250, description="Metric key")],
    page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, description="Points per page")] = 1000,
    max_points: Annotated[
        int | None,
        Query(ge=3, le=100_000, description="Downsample the whole series to this many points"),
    ] = None,
    method: Annotated[Literal["lttb", "minmax"], Query(description="Downsampling method")] = "lttb",
    step_min: Annotated[int | None, Query(description="Only steps from this one")] = None,
    step_max: Annotated[int | None, Query(description="Only steps up to this one")] = None,
) -> service.HistoryQuery:
    """The history query parameters, shared by both history routes."""
    if per_page > settings.max_history_points:
        raise Invalid(
            f"per_page is at most {settings.max_history_points}; use max_points for more",
            details=[{"field": "per_page", "message": f"at most {settings.max_history_points}"}],
        )
    return service.HistoryQuery(
        key=key,
        page=page,
        per_page=per_page,
        max_points=max_points,
        method=method,
        step_min=step_min,
        step_max=step_max,
    )


HistoryDep = Annotated[service.HistoryQuery, Depends(_history_query)]


async def _history_response(
    session: Any, who: Principal, run_id: str, q: service.HistoryQuery
) -> Response:
    data = await service.history(session, who, run_id, q)
    # Serialised here, not through the response model: validating 100k points again would
    # cost more than reading them (the schema above still documents the shape).
    return Response(pydantic_core.to_json({"data": data}), media_type="application/json")


@router.get("/{run_id}/metrics/history", response_model=Item[MetricHistory])
async def metric_history(
    run_id: str, session: SessionDep, who: MetricReader, q: HistoryDep
) -> Response:
    """A metric's history by step: a page of points, or with `max_points` the whole series
    downsampled (LTTB or min/max per bucket) so a chart never loads millions of points."""
    return await _history_response(session, who, run_id, q)


# -- /api/v1/metrics: the same logging and history, across runs --------------------------------

metrics_router = APIRouter(prefix="/metrics", tags=["metrics"])

_RUN_METRICS_IN: TypeAdapter[RunMetricBatch] = TypeAdapter(RunMetricBatch)


@metrics_router.post(
    "",
    status_code=201,
    response_model=Item[LoggedOut],
    openapi_extra=_body_doc(RunMetricBatch),
)
async def log_run_metrics(
    request: Request, session: SessionDep, settings: SettingsDep, who: MetricWriter
) -> dict[str, Any]:
    """Log values to one or several runs at once
    (`{"metrics": [{"run_id", "key", "value", "step", "timestamp"}, ...]}`), all or nothing."""
    data = await _json_body(request, _RUN_METRICS_IN)
    count = await service.log_metrics_of_runs(
        session, who, data.metrics, limit=settings.max_batch_values
    )
    return {"data": LoggedOut(metrics=count)}


@metrics_router.get("", response_model=Item[MetricHistory])
async def run_metric_history(
    session: SessionDep,
    who: MetricReader,
    q: HistoryDep,
    run_id: Annotated[str, Query(min_length=1, max_length=40, description="The run")],
) -> Response:
    """A run's metric history (`?run_id=…&key=…`), paged or downsampled like
    `GET /runs/{run_id}/metrics/history`."""
    return await _history_response(session, who, run_id, q)


#: Mounted under /api/v1 by the app.
routers = [router, metrics_router]
