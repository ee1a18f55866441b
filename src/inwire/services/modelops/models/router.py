"""HTTP endpoints of the model registry: models, versions, tags, aliases, stages, files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import Database, SessionDep
from inwire.kit.errors import NotFound
from inwire.kit.storage import ObjectStore, StorageDep
from inwire.services.modelops.governance import promotion
from inwire.services.modelops.governance.schemas import ApprovalOut
from inwire.services.modelops.models import files, service
from inwire.services.modelops.models.repository import NameFilter, VersionFilter
from inwire.services.modelops.models.schemas import (
    Alias,
    AliasSet,
    Key,
    ModelCreate,
    ModelUpdate,
    ModelVersionOut,
    RegisteredModelOut,
    StageTransition,
    TagValueIn,
    VersionCreate,
    VersionFile,
    VersionUpdate,
)
from inwire.services.modelops.settings import ModelOpsSettings

router = APIRouter(prefix="/models", tags=["models"])
versions_router = APIRouter(prefix="/model-versions", tags=["models"])
routers = [router, versions_router]

Reader = Annotated[Principal, require("models:read")]
Creator = Annotated[Principal, require("models:create")]
Updater = Annotated[Principal, require("models:update")]
Deleter = Annotated[Principal, require("models:delete")]

_models_query = list_params(
    ("name", "created_at", "updated_at"),
    default_sort="name",
    default_order="asc",
    filters={"created_by": str},
)
_VERSION_FILTERS: dict[str, Any] = {
    "status": Literal["PENDING_REGISTRATION", "READY", "FAILED_REGISTRATION"],
    "flavor": Literal["sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "python"],
    "source_kind": Literal["run", "upload"],
    "created_by": str,
}
_versions_query = list_params(("version", "created_at", "updated_at"), filters=_VERSION_FILTERS)
_all_versions_query = list_params(("created_at", "updated_at", "version"), filters=_VERSION_FILTERS)

#: The request body of an upload, for the OpenAPI document (the route reads it as a stream).
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "One part per file, its filename the path inside the version (`MLmodel`, "
            "`model/model.pkl`); other parts are fields, JSON for the structured ones."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "description": {"type": "string"},
                        "flavor": {"type": "string"},
                        "tags": {"type": "string", "description": "JSON object"},
                        "signature": {"type": "string", "description": "JSON object"},
                        "input_example": {"type": "string", "description": "JSON"},
                        "output_example": {"type": "string", "description": "JSON"},
                        "lineage": {"type": "string", "description": "JSON object"},
                    },
                }
            }
        },
    }
}

#: A promotion to production that waits for approval answers 202 with the approval, and
#: ``meta.approval_required`` so that clients tell it from the version.
_GATED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Item[ApprovalOut],
        "description": "Promotion to production awaits approval (`meta.approval_required`)",
    }
}


def _awaiting(approval: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"data": approval, "meta": {"approval_required": True}}, status_code=202)


Q = Query  # short alias for the many query parameters below
NameQ = Annotated[str | None, Q(max_length=250, description="Model name contains (any case)")]
ExactQ = Annotated[str | None, Q(max_length=250, description="Model name is exactly this")]
LikeQ = Annotated[
    str | None, Q(max_length=250, description="Model name matches this SQL LIKE pattern")
]
ILikeQ = Annotated[str | None, Q(max_length=250, description="As name_like, ignoring case")]
TagQ = Annotated[
    list[str] | None,
    Q(max_length=100, description="Has this tag: `key` or `key=value` (repeat: all of them)"),
]


async def _settings(request: Request) -> ModelOpsSettings:
    settings: ModelOpsSettings = request.app.state.settings
    return settings


async def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _training_store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.training_store
    return store


SettingsDep = Annotated[ModelOpsSettings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_db)]
TrainingStoreDep = Annotated[ObjectStore, Depends(_training_store)]


async def _model_out(session: Any, who: Principal, row: Any) -> RegisteredModelOut:
    return (await service.model_views(session, who, [row]))[0]


async def _version_out(session: Any, who: Principal, model: Any, row: Any) -> ModelVersionOut:
    return (await service.version_views(session, who, [row], {model.id: model.name}))[0]


async def _version_by_number(db: Database, who: Principal, model_id: str, number: int) -> Any:
    async with db.session(write=False) as session:
        model, version = await service.get_version(session, who, model_id, number)
        return await _version_out(session, who, model, version)


# -- registered models --------------------------------------------------------------------


@router.post("", status_code=201, response_model=Item[RegisteredModelOut])
async def create_model(data: ModelCreate, session: SessionDep, who: Creator) -> dict[str, Any]:
    """Register a model name (no versions yet); 409 when the name is taken."""
    row = await service.create_model(session, who, data)
    return {"data": await _model_out(session, who, row)}


@router.get("", response_model=Page[RegisteredModelOut])
async def list_models(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_models_query)],
    who: Reader,
    q: NameQ = None,
    name: ExactQ = None,
    name_like: LikeQ = None,
    name_ilike: ILikeQ = None,
    tag: TagQ = None,
) -> dict[str, Any]:
    """Models of your organization, by name (A-Z) unless sorted otherwise; search by name
    or tags."""
    names = NameFilter(q=q, exact=name, like=name_like, ilike=name_ilike)
    rows, total = await service.list_models(session, who, query, names=names, tags=tag or [])
    return query.page_of(await service.model_views(session, who, rows), total)


@router.get("/{model}", response_model=Item[RegisteredModelOut])
async def get_model(model: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One model (by id or name), with its aliases and latest version per stage."""
    return {"data": await _model_out(session, who, await service.get_model(session, who, model))}


@router.patch("/{model}", response_model=Item[RegisteredModelOut])
async def update_model(
    model: str, data: ModelUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Rename a model, or change its description, model card or tags (replacing them)."""
    row = await service.update_model(session, who, model, data.changes())
    return {"data": await _model_out(session, who, row)}


@router.delete("/{model}", status_code=204)
async def delete_model(
    model: str,
    session: SessionDep,
    store: StorageDep,
    background: BackgroundTasks,
    who: Deleter,
) -> Response:
    """Delete a model with all its versions, aliases and files."""
    prefix = await service.delete_model(session, who, model)
    background.add_task(files.purge, store, prefix)
    return Response(status_code=204)


@router.put("/{model}/tags/{key:path}", response_model=Item[RegisteredModelOut])
async def set_model_tag(
    model: str, key: Key, data: TagValueIn, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Set one tag of a model."""
    row = await service.set_model_tag(session, who, model, key, data.value)
    return {"data": await _model_out(session, who, row)}


@router.delete("/{model}/tags/{key:path}", response_model=Item[RegisteredModelOut])
async def delete_model_tag(
    model: str, key: Key, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Remove one tag of a model."""
    row = await service.delete_model_tag(session, who, model, key)
    return {"data": await _model_out(session, who, row)}


# -- versions ---------------------------------------------------------------------------------


@router.post("/{model}/versions", status_code=201, response_model=Item[ModelVersionOut])
async def create_version(
    model: str,
    data: VersionCreate,
    db: DatabaseDep,
    store: StorageDep,
    training_store: TrainingStoreDep,
    settings: SettingsDep,
    who: Creator,
) -> dict[str, Any]:
    """Register a version from a training run's artifact (a folder, usually the logged
    model, or one file): the files are copied into the registry, the flavor and signature
    read from an MLmodel file or inferred from the examples, the lineage recorded. The
    answer's `status` is `READY`, or `FAILED_REGISTRATION` when the copy failed."""
    model_id, number = await service.register_from_run(
        db, store, training_store, who, model, data, max_files=settings.max_version_files
    )
    return {"data": await _version_by_number(db, who, model_id, number)}


@router.post(
    "/{model}/versions/upload",
    status_code=201,
    response_model=Item[ModelVersionOut],
    openapi_extra=_UPLOAD_BODY,
)
async def upload_version(
    model: str,
    request: Request,
    db: DatabaseDep,
    store: StorageDep,
    settings: SettingsDep,
    who: Creator,
) -> dict[str, Any]:
    """Register a version from uploaded files (multipart, streamed to the object store;
    exempt from the body limit, bounded by `max_upload_bytes`)."""

    async def receive(prefix: str) -> files.ReceivedFiles:
        return await files.receive_files(
            request,
            store,
            prefix,
            max_bytes=settings.max_upload_bytes,
            max_files=settings.max_version_files,
        )

    model_id, number = await service.register_upload(db, store, who, model, receive)
    return {"data": await _version_by_number(db, who, model_id, number)}


@router.get("/{model}/versions", response_model=Page[ModelVersionOut])
async def list_versions(
    model: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_versions_query)],
    who: Reader,
    stage: Annotated[list[str] | None, Q(description="In one of these stages")] = None,
    run_id: Annotated[list[str] | None, Q(description="Made from one of these runs")] = None,
    tag: TagQ = None,
) -> dict[str, Any]:
    """A model's versions, newest first unless sorted otherwise; filter by stage, status,
    flavor, run or tags."""
    where = VersionFilter(
        run_ids=run_id or [],
        stages=[service.canonical_stage(s) for s in stage or []],
        tags=service.parse_tag_filters(tag or []),
    )
    rows, total, names = await service.list_versions(session, who, query, ref=model, where=where)
    return query.page_of(await service.version_views(session, who, rows, names), total)


@router.get("/{model}/latest-versions", response_model=Item[list[ModelVersionOut]])
async def latest_versions(
    model: str,
    session: SessionDep,
    who: Reader,
    stage: Annotated[list[str] | None, Q(description="Only these stages")] = None,
) -> dict[str, Any]:
    """The newest version in each stage (or in the stages asked), as MLflow's
    get-latest-versions."""
    row, versions = await service.latest_versions(session, who, model, stage or [])
    return {"data": await service.version_views(session, who, versions, {row.id: row.name})}


@router.get("/{model}/versions/{version}", response_model=Item[ModelVersionOut])
async def get_version(model: str, version: int, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One version of a model, by number."""
    row, ver = await service.get_version(session, who, model, version)
    return {"data": await _version_out(session, who, row, ver)}


@router.patch("/{model}/versions/{version}", response_model=Item[ModelVersionOut])
async def update_version(
    model: str, version: int, data: VersionUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Change a version's description or tags (replacing them)."""
    row, ver = await service.update_version(session, who, model, version, data.changes())
    return {"data": await _version_out(session, who, row, ver)}


@router.delete("/{model}/versions/{version}", status_code=204)
async def delete_version(
    model: str,
    version: int,
    session: SessionDep,
    store: StorageDep,
    background: BackgroundTasks,
    who: Deleter,
) -> Response:
    """Delete a version, its aliases and its files."""
    prefix = await service.delete_version(session, who, model, version)
    background.add_task(files.purge, store, prefix)
    return Response(status_code=204)


@router.put("/{model}/versions/{version}/tags/{key:path}", response_model=Item[ModelVersionOut])
async def set_version_tag(
    model: str, version: int, key: Key, data: TagValueIn, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Set one tag of a version."""
    row, ver = await service.set_version_tag(session, who, model, version, key, data.value)
    return {"data": await _version_out(session, who, row, ver)}


@router.delete("/{model}/versions/{version}/tags/{key:path}", response_model=Item[ModelVersionOut])
async def delete_version_tag(
    model: str, version: int, key: Key, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Remove one tag of a version."""
    row, ver = await service.delete_version_tag(session, who, model, version, key)
    return {"data": await _version_out(session, who, row, ver)}


@router.post(
    "/{model}/versions/{version}/stage", response_model=Item[ModelVersionOut], responses=_GATED
)
async def transition_stage(
    model: str, version: int, data: StageTransition, session: SessionDep, who: Updater
) -> Any:
    """Move a version to None, Staging, Production or Archived; with
    `archive_existing_versions` the versions already in that stage are archived. When
    your organization's policy requires approval, a move to Production answers 202 with
    the approval it waits for."""
    approval = await promotion.gate_stage(
        session,
        who,
        model,
        version,
        data.stage,
        archive_existing_versions=data.archive_existing_versions,
    )
    if approval is not None:
        return _awaiting(approval)
    row, ver, _ = await service.transition_stage(
        session,
        who,
        model,
        version,
        data.stage,
        archive_existing_versions=data.archive_existing_versions,
    )
    return {"data": await _version_out(session, who, row, ver)}


# -- aliases ----------------------------------------------------------------------------------


@router.put("/{model}/aliases/{alias}", response_model=Item[ModelVersionOut], responses=_GATED)
async def set_alias(
    model: str, alias: Alias, data: AliasSet, session: SessionDep, who: Updater
) -> Any:
    """Point an alias at a version, moving it from the version that had it. The
    `production` alias is a promotion: when your organization's policy requires approval,
    it answers 202 with the approval it waits for."""
    approval = await promotion.gate_alias(session, who, model, alias, data.version)
    if approval is not None:
        return _awaiting(approval)
    row, ver = await service.set_alias(session, who, model, alias, data.version)
    return {"data": await _version_out(session, who, row, ver)}


@router.get("/{model}/aliases/{alias}", response_model=Item[ModelVersionOut])
async def get_by_alias(model: str, alias: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """The version an alias points at."""
    row, ver = await service.by_alias(session, who, model, alias)
    return {"data": await _version_out(session, who, row, ver)}


@router.delete("/{model}/aliases/{alias}", status_code=204)
async def delete_alias(model: str, alias: str, session: SessionDep, who: Updater) -> Response:
    """Remove an alias (the version stays)."""
    await service.delete_alias(session, who, model, alias)
    return Response(status_code=204)


# -- files ------------------------------------------------------------------------------------


async def _readable(db: Database, who: Principal, model: str, version: int) -> Any:
    """A READY version; a short read transaction, none held while bytes flow."""
    async with db.session(write=False) as session:
        ver, _ = await service.version_files(session, who, model, version)
        return ver


@router.get("/{model}/versions/{version}/files", response_model=Item[list[VersionFile]])
async def list_version_files(
    model: str,
    version: int,
    db: DatabaseDep,
    store: StorageDep,
    who: Reader,
    path: Annotated[str, Q(max_length=1000, description="Folder to list; the root")] = "",
    recursive: Annotated[bool, Q(description="Every file below the folder")] = False,
) -> dict[str, Any]:
    """The files and folders of a version (directly in `path`, or all below it)."""
    ver = await _readable(db, who, model, version)
    folder = files.clean_path(path, folder=True)
    stored = await files.list_files(store, ver.storage_prefix)
    if recursive:
        base = folder + "/" if folder else ""
        out = [VersionFile(path=f.path, is_dir=False, size=f.size) for f in stored]
        out = [f for f in out if f.path.startswith(base)]
    else:
        out = [
            VersionFile(path=p, is_dir=d, size=s)
            for p, d, s in files.folder_entries(stored, folder)
        ]
    return {"data": out}


@router.get(
    "/{model}/versions/{version}/files/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_version_file(
    model: str, version: int, path: str, db: DatabaseDep, store: StorageDep, who: Reader
) -> StreamingResponse:
    """Download one file of a version, streamed."""
    ver = await _readable(db, who, model, version)
    clean = files.clean_path(path)
    try:
        reader = await store.open(ver.storage_prefix + clean)
    except NotFound as exc:
        raise NotFound(f"Version {version} has no file {clean!r}") from exc
    headers = {
        "Content-Length": str(reader.info.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(clean.rpartition('/')[2])}",
        "ETag": f'"{reader.info.etag.strip(chr(34))}"',
    }
    return StreamingResponse(
        reader,
        media_type=reader.info.content_type or "application/octet-stream",
        headers=headers,
        background=BackgroundTask(reader.aclose),
    )


@router.get(
    "/{model}/versions/{version}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}}},
)
async def download_version(
    model: str, version: int, db: DatabaseDep, store: StorageDep, who: Reader
) -> StreamingResponse:
    """Download all of a version's files as one tar archive, streamed."""
    ver = await _readable(db, who, model, version)
    stored = await files.list_files(store, ver.storage_prefix)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in files.tar_stream(store, ver.storage_prefix, stored):
            yield chunk

    name = quote(f"{model}-v{version}.tar")
    return StreamingResponse(
        body(),
        media_type="application/x-tar",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


# -- every model's versions -------------------------------------------------------------------


@versions_router.get("", response_model=Page[ModelVersionOut])
async def search_versions(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_all_versions_query)],
    who: Reader,
    q: NameQ = None,
    name: ExactQ = None,
    name_like: LikeQ = None,
    name_ilike: ILikeQ = None,
    stage: Annotated[list[str] | None, Q(description="In one of these stages")] = None,
    run_id: Annotated[list[str] | None, Q(description="Made from one of these runs")] = None,
    tag: TagQ = None,
) -> dict[str, Any]:
    """Versions of every model of your organization: by model name, run, stage, status,
    flavor or tags (MLflow's search-model-versions)."""
    where = VersionFilter(
        names=NameFilter(q=q, exact=name, like=name_like, ilike=name_ilike),
        run_ids=run_id or [],
        stages=[service.canonical_stage(s) for s in stage or []],
        tags=service.parse_tag_filters(tag or []),
    )
    rows, total, names = await service.list_versions(session, who, query, where=where)
    return query.page_of(await service.version_views(session, who, rows, names), total)
