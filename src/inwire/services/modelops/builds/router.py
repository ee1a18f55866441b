"""HTTP endpoints of builds: start, list, get, logs, cancel, and the artifacts' downloads."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.errors import NotFound
from inwire.kit.jobs import IdempotencyKeyDep, JobsDep
from inwire.kit.jobs.router import JobLogs, read_logs
from inwire.kit.jobs.service import MAX_LOG_LINES
from inwire.kit.storage import StorageDep
from inwire.services.modelops.builds import service
from inwire.services.modelops.builds.schemas import BuildCreate, BuildOut
from inwire.services.modelops.models.router import DatabaseDep, SettingsDep

router = APIRouter(prefix="/builds", tags=["builds"])

Reader = Annotated[Principal, require("builds:read")]
Creator = Annotated[Principal, require("builds:create")]
Updater = Annotated[Principal, require("builds:update")]

_builds_query = list_params(
    ("created_at", "updated_at", "version"),
    filters={
        "status": Literal["queued", "running", "succeeded", "failed", "cancelled"],
        "version_id": str,
        "created_by": str,
    },
)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _one(
    session: Any, jobs: Any, who: Principal, build_id: str, request: Request
) -> BuildOut:
    row = await service.BuildRepository(session, who.org).get(build_id)
    return (await service.views(session, jobs, who, [row], _base(request)))[0]


@router.post("", status_code=202, response_model=Item[BuildOut])
async def start_build(
    data: BuildCreate,
    request: Request,
    session: SessionDep,
    jobs: JobsDep,
    key: IdempotencyKeyDep,
    settings: SettingsDep,
    who: Creator,
) -> dict[str, Any]:
    """Package a model version: a serving bundle and a container build context (and an
    image, pushed to the registry integration, when a container builder is configured).
    Follow it with `GET /builds/{id}` and `GET /builds/{id}/logs`."""
    row = await service.create_build(
        session,
        jobs,
        who,
        data,
        default_registry=settings.build_registry_integration,
        idempotency_key=key,
    )
    return {"data": (await service.views(session, jobs, who, [row], _base(request)))[0]}


@router.get("", response_model=Page[BuildOut])
async def list_builds(
    request: Request,
    session: SessionDep,
    jobs: JobsDep,
    query: Annotated[ListQuery, Depends(_builds_query)],
    who: Reader,
    model: Annotated[str | None, Query(max_length=250, description="Model id or name")] = None,
) -> dict[str, Any]:
    """Builds of your organization, newest first; filter by model, version, status."""
    rows, total = await service.list_builds(session, who, query, model)
    return query.page_of(await service.views(session, jobs, who, rows, _base(request)), total)


@router.get("/{build_id}", response_model=Item[BuildOut])
async def get_build(
    build_id: str, request: Request, session: SessionDep, jobs: JobsDep, who: Reader
) -> dict[str, Any]:
    """One build: status, message, artifacts with their download links, image."""
    return {"data": await _one(session, jobs, who, build_id, request)}


@router.post("/{build_id}/cancel", response_model=Item[BuildOut])
async def cancel_build(
    build_id: str, request: Request, session: SessionDep, jobs: JobsDep, who: Updater
) -> dict[str, Any]:
    """Cancel a build that has not finished (409 when it has)."""
    row = await service.BuildRepository(session, who.org).get(build_id)
    await jobs.cancel(session, who.org, row.job_id)
    return {"data": await _one(session, jobs, who, build_id, request)}


@router.get("/{build_id}/logs", response_model=JobLogs)
async def build_logs(
    build_id: str,
    session: SessionDep,
    jobs: JobsDep,
    who: Reader,
    after_seq: Annotated[int, Query(ge=0, description="Only lines after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LINES, description="Most lines")] = 500,
) -> JobLogs:
    """The build's log lines after `after_seq`, oldest first; poll it while it runs."""
    row = await service.BuildRepository(session, who.org).get(build_id)
    return await read_logs(session, jobs, who.org, row.job_id, after_seq, limit)


async def _download(
    db: Any, store: Any, who: Principal, build_id: str, which: str
) -> StreamingResponse:
    async with db.session(write=False) as session:
        row = await service.BuildRepository(session, who.org).get(build_id)
    key = row.bundle_key if which == "bundle" else row.context_key
    if not key:
        raise NotFound(f"Build {build_id!r} has no {which} (it has not succeeded)")
    reader = await store.open(key)
    name = quote(f"{row.model_name}-v{row.version}-{which}.tar.gz")
    return StreamingResponse(
        reader,
        media_type="application/gzip",
        headers={
            "Content-Length": str(reader.info.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
        },
        background=BackgroundTask(reader.aclose),
    )


_GZIP: dict[int | str, dict[str, Any]] = {200: {"content": {"application/gzip": {}}}}


@router.get("/{build_id}/bundle", response_class=StreamingResponse, responses=_GZIP)
async def download_bundle(
    build_id: str, db: DatabaseDep, store: StorageDep, who: Reader
) -> StreamingResponse:
    """The serving bundle (tar.gz: model/, requirements.txt, inwire-bundle.json), streamed."""
    return await _download(db, store, who, build_id, "bundle")


@router.get("/{build_id}/context", response_class=StreamingResponse, responses=_GZIP)
async def download_context(
    build_id: str, db: DatabaseDep, store: StorageDep, who: Reader
) -> StreamingResponse:
    """The container build context (tar.gz: Dockerfile, bundle/), streamed."""
    return await _download(db, store, who, build_id, "context")
