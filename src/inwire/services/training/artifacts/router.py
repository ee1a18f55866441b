"""HTTP endpoints of run artifacts: upload, download, list and delete, all streamed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from inwire.kit.api import APIRouter, Item
from inwire.kit.auth import Principal, require
from inwire.kit.storage import ObjectStore, StorageDep
from inwire.services.training.artifacts import service
from inwire.services.training.runs import service as runs
from inwire.services.training.settings import TrainingSettings

router = APIRouter(prefix="/runs/{run_id}/artifacts", tags=["artifacts"])

Reader = Annotated[Principal, require("artifacts:read")]
Creator = Annotated[Principal, require("artifacts:create")]
Deleter = Annotated[Principal, require("artifacts:delete")]


async def _check_run(request: Request, who: Principal, run_id: str) -> None:
    """404 unless the run exists in the caller's organization.

    A short session of its own: an upload or download may last minutes, and must not hold
    a database transaction (on SQLite, the write lock) while the bytes flow.
    """
    async with request.app.state.db.session(write=False) as session:
        await runs.get(session, who, run_id)


class ArtifactOut(BaseModel):
    """A file or folder of a run's artifacts."""

    path: str
    is_dir: bool
    size: int | None = None
    last_modified: datetime | None = None


class ArtifactStored(BaseModel):
    """An uploaded artifact."""

    path: str
    size: int
    sha256: str | None
    content_type: str | None


class ArtifactsDeleted(BaseModel):
    """What a delete removed."""

    path: str
    files: int


#: The request body of an upload, for the OpenAPI document (the route reads it as a stream).
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, sent as the raw body (any size; streamed).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def _list(
    request: Request, store: ObjectStore, who: Principal, run_id: str, path: str
) -> dict[str, Any]:
    await _check_run(request, who, run_id)
    entries = await service.list_folder(store, who.org, run_id, path)
    return {"data": [ArtifactOut(**e.__dict__) for e in entries]}


async def _upload(
    request: Request, store: ObjectStore, who: Principal, run_id: str, path: str
) -> dict[str, Any]:
    await _check_run(request, who, run_id)
    clean = service.clean_path(path)
    settings: TrainingSettings = request.app.state.settings
    info = await service.upload(
        store,
        who.org,
        run_id,
        clean,
        request.stream(),
        max_bytes=settings.max_artifact_bytes,
        content_type=request.headers.get("content-type"),
    )
    return {
        "data": ArtifactStored(
            path=clean, size=info.size, sha256=info.sha256, content_type=info.content_type
        )
    }


async def _download(
    request: Request, store: ObjectStore, who: Principal, run_id: str, path: str
) -> StreamingResponse:
    await _check_run(request, who, run_id)
    reader = await service.open_file(store, who.org, run_id, path)
    name = service.clean_path(path).rpartition("/")[2]
    headers = {
        "Content-Length": str(reader.info.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "ETag": f'"{reader.info.etag.strip(chr(34))}"',
    }
    return StreamingResponse(
        reader,
        media_type=reader.info.content_type or "application/octet-stream",
        headers=headers,
        background=BackgroundTask(reader.aclose),
    )


@router.get("", response_model=Item[list[ArtifactOut]])
async def list_artifacts(
    request: Request,
    run_id: str,
    store: StorageDep,
    who: Reader,
    path: Annotated[str, Query(max_length=1000, description="Folder to list; the root")] = "",
) -> dict[str, Any]:
    """The files and folders directly inside a folder of a run's artifacts."""
    return await _list(request, store, who, run_id, path)


@router.put(
    "/{path:path}",
    status_code=201,
    response_model=Item[ArtifactStored],
    openapi_extra=_UPLOAD_BODY,
)
async def upload_artifact(
    run_id: str,
    path: str,
    request: Request,
    store: StorageDep,
    who: Creator,
) -> dict[str, Any]:
    """Upload a file to a run's artifacts at `path`, streamed to the object store."""
    return await _upload(request, store, who, run_id, path)


@router.get(
    "/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_artifact(
    request: Request, run_id: str, path: str, store: StorageDep, who: Reader
) -> StreamingResponse:
    """Download one artifact file, streamed."""
    return await _download(request, store, who, run_id, path)


@router.delete("/{path:path}", response_model=Item[ArtifactsDeleted])
async def delete_artifact(
    request: Request, run_id: str, path: str, store: StorageDep, who: Deleter
) -> dict[str, Any]:
    """Delete an artifact file, or a folder with everything in it."""
    await _check_run(request, who, run_id)
    files = await service.delete(store, who.org, run_id, path)
    return {"data": ArtifactsDeleted(path=service.clean_path(path), files=files)}


# -- /api/v1/artifacts: the same files, the run and path as query parameters ------------------

files_router = APIRouter(prefix="/artifacts", tags=["artifacts"])

RunQuery = Annotated[str, Query(min_length=1, max_length=40, description="The run")]
FileQuery = Annotated[str, Query(min_length=1, max_length=1000, description="File path")]


@files_router.get("", response_model=Item[list[ArtifactOut]])
async def list_run_artifacts(
    request: Request,
    store: StorageDep,
    who: Reader,
    run_id: RunQuery,
    path: Annotated[str, Query(max_length=1000, description="Folder to list; the root")] = "",
) -> dict[str, Any]:
    """The files and folders directly inside a folder of a run's artifacts
    (`?run_id=…&path=…`)."""
    return await _list(request, store, who, run_id, path)


@files_router.post(
    "",
    status_code=201,
    response_model=Item[ArtifactStored],
    openapi_extra=_UPLOAD_BODY,
)
async def upload_run_artifact(
    request: Request, store: StorageDep, who: Creator, run_id: RunQuery, path: FileQuery
) -> dict[str, Any]:
    """Upload a file to a run's artifacts (`?run_id=…&path=…`, the bytes as the raw body),
    streamed to the object store."""
    return await _upload(request, store, who, run_id, path)


@files_router.get(
    "/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_run_artifact(
    request: Request, store: StorageDep, who: Reader, run_id: RunQuery, path: FileQuery
) -> StreamingResponse:
    """Download one artifact file (`?run_id=…&path=…`), streamed."""
    return await _download(request, store, who, run_id, path)


#: Mounted under /api/v1 by the app.
routers = [router, files_router]
