"""HTTP endpoints of datasets and their versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.errors import InwireError
from inwire.kit.jobs import JobOut, JobsDep
from inwire.kit.storage import ObjectStore, StorageDep
from inwire.services.synthex.datasets import service
from inwire.services.synthex.datasets.schemas import (
    DatasetImportIn,
    DatasetOut,
    DatasetUpdate,
    DownloadFormat,
    ImportStarted,
    IntegrationImportIn,
    Preview,
    PreviewMeta,
    PreviewPage,
    SchemaPatch,
    SchemaPatched,
    VersionOut,
    VersionUpdate,
)
from inwire.services.synthex.datasets.upload import ReceivedUpload, receive_upload
from inwire.services.synthex.settings import SynthexSettings

router = APIRouter(prefix="/datasets", tags=["datasets"])

Reader = Annotated[Principal, require("datasets:read")]
Creator = Annotated[Principal, require("datasets:create")]
Updater = Annotated[Principal, require("datasets:update")]
Deleter = Annotated[Principal, require("datasets:delete")]

_datasets_query = list_params(
    ("created_at", "updated_at", "name", "rows", "bytes"), filters={"created_by": str}
)
_versions_query = list_params(
    ("number", "created_at", "rows", "bytes"),
    filters={"source_kind": str, "created_by": str},
)

#: The request body of an upload, for the OpenAPI document (the route reads it as a stream).
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The file: a multipart part named `file` (other parts are the same fields as "
            "the query parameters), or the raw bytes with `?filename=`."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


async def get_settings(request: Request) -> SynthexSettings:
    """Synthex's settings."""
    settings: SynthexSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[SynthexSettings, Depends(get_settings)]


class UploadParams:
    """Query parameters of an upload (multipart fields of the same names fill the gaps)."""

    def __init__(
        self,
        name: Annotated[str | None, Query(max_length=200, description="Dataset name")] = None,
        description: Annotated[str | None, Query(max_length=5000)] = None,
        tags: Annotated[list[str] | None, Query(description="Tags (repeat the parameter)")] = None,
        filename: Annotated[
            str | None, Query(max_length=255, description="File name of a raw-body upload")
        ] = None,
        format: Annotated[
            Literal["csv", "tsv", "parquet", "json", "jsonl", "excel"] | None,
            Query(description="The file's format; default: from the file name"),
        ] = None,
        delimiter: Annotated[str | None, Query(description="CSV delimiter; detected")] = None,
        header: Annotated[bool | None, Query(description="CSV has a header row; detected")] = None,
        encoding: Annotated[str | None, Query(description="Text encoding; detected")] = None,
        sheet: Annotated[str | None, Query(description="Excel sheet; the first")] = None,
    ) -> None:
        self.values: dict[str, Any] = {
            "name": name,
            "description": description,
            "tags": tags,
            "format": format,
            "delimiter": delimiter,
            "header": header,
            "encoding": encoding,
            "sheet": sheet,
        }
        self.filename = filename

    def request(self, fields: dict[str, list[str]]) -> service.UploadRequest:
        """The upload's request, query values first, then form fields."""
        values = dict(self.values)
        for key in ("name", "description", "format", "delimiter", "encoding", "sheet", "header"):
            if values.get(key) is None and fields.get(key):
                values[key] = fields[key][-1]
        if not values.get("tags") and fields.get("tags"):
            values["tags"] = fields["tags"]
        header = values["header"]
        if isinstance(header, str):
            values["header"] = header.strip().lower() in ("1", "true", "yes", "on")
        from pydantic import TypeAdapter, ValidationError

        from inwire.services.synthex.datasets.schemas import DatasetName, Tags

        try:
            name = TypeAdapter(DatasetName | None).validate_python(values["name"])
            tags = TypeAdapter(Tags).validate_python(values["tags"] or [])
        except ValidationError as exc:
            raise service._invalid(exc) from exc
        return service.UploadRequest(
            name=name,
            description=(values["description"] or "")[:5000],
            tags=tags,
            format=values["format"],
            options={k: values[k] for k in ("delimiter", "header", "encoding", "sheet")},
        )


Upload = Annotated[UploadParams, Depends()]


async def _receive(
    request: Request,
    params: UploadParams,
    store: ObjectStore,
    settings: SynthexSettings,
    who: Principal,
) -> tuple[ReceivedUpload, service.UploadRequest]:
    """Check the query, stream the file in, then check the form fields with it."""
    service.import_options(params.request({}).options)
    received = await receive_upload(
        request,
        store,
        org_id=who.org,
        max_bytes=settings.max_upload_bytes,
        filename=params.filename,
        declared_format=params.values["format"],
    )
    try:
        wanted = params.request(received.fields)
        service.import_options(wanted.options)
    except InwireError:
        await store.delete(received.key)
        raise
    return received, wanted


def _dataset(row: Any) -> DatasetOut:
    return DatasetOut.model_validate(row)


def _version(row: Any) -> VersionOut:
    return VersionOut.model_validate(row)


@router.post(
    "",
    status_code=202,
    response_model=Item[ImportStarted],
    openapi_extra=_UPLOAD_BODY,
)
async def upload_dataset(
    request: Request,
    params: Upload,
    session: SessionDep,
    jobs: JobsDep,
    store: StorageDep,
    settings: SettingsDep,
    who: Creator,
) -> dict[str, Any]:
    """Upload a file (CSV, TSV, Parquet, JSON, JSON Lines, Excel) as a new dataset.

    The file streams to the object store; a `synthex.import` job then converts it to
    Parquet and infers its schema. Follow the job for progress.
    """
    received, wanted = await _receive(request, params, store, settings, who)
    dataset, job = await service.create_from_upload(session, jobs, store, who, received, wanted)
    return {"data": {"dataset": _dataset(dataset), "job": JobOut.model_validate(job)}}


@router.post("/import", status_code=202, response_model=Item[ImportStarted])
async def import_dataset(
    body: DatasetImportIn, session: SessionDep, jobs: JobsDep, settings: SettingsDep, who: Creator
) -> dict[str, Any]:
    """Import a new dataset through a Core integration: an S3 object or a SQL query's result.

    The integration is checked now (404 if it is not your organization's); a
    `synthex.import` job then fetches the data with its credentials, which Core gives only
    to the job and which are stored nowhere in Synthex.
    """
    dataset, job = await service.create_from_integration(session, jobs, settings, who, body)
    return {"data": {"dataset": _dataset(dataset), "job": JobOut.model_validate(job)}}


@router.get("", response_model=Page[DatasetOut])
async def list_datasets(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_datasets_query)],
    who: Reader,
    q: Annotated[str | None, Query(max_length=200, description="Name contains")] = None,
    tag: Annotated[str | None, Query(max_length=50, description="Has this tag")] = None,
) -> dict[str, Any]:
    """Datasets of your organization; search by name, filter by tag or creator, sort."""
    rows, total = await service.list_datasets(session, who, query, q=q, tag=tag)
    return query.page_of([_dataset(r) for r in rows], total)


@router.get("/{dataset_id}", response_model=Item[DatasetOut])
async def get_dataset(dataset_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One dataset, with the facts of its latest version."""
    return {"data": _dataset(await service.get_dataset(session, who, dataset_id))}


@router.patch("/{dataset_id}", response_model=Item[DatasetOut])
async def update_dataset(
    dataset_id: str, body: DatasetUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Rename a dataset or change its description or tags."""
    row = await service.update_dataset(session, who, dataset_id, body.changes())
    return {"data": _dataset(row)}


@router.delete("/{dataset_id}", status_code=204)
async def delete_dataset(
    dataset_id: str,
    session: SessionDep,
    jobs: JobsDep,
    store: StorageDep,
    background: BackgroundTasks,
    who: Deleter,
    force: Annotated[bool, Query(description="Delete even if something depends on it")] = False,
) -> Response:
    """Delete a dataset and all its versions; 409 names what depends on it unless force."""
    prefix = await service.delete_dataset(session, jobs, who, dataset_id, force=force)
    background.add_task(service.purge, store, prefix)
    return Response(status_code=204)


@router.post(
    "/{dataset_id}/versions",
    status_code=202,
    response_model=Item[ImportStarted],
    openapi_extra=_UPLOAD_BODY,
)
async def upload_version(
    dataset_id: str,
    request: Request,
    params: Upload,
    session: SessionDep,
    jobs: JobsDep,
    store: StorageDep,
    settings: SettingsDep,
    who: Creator,
) -> dict[str, Any]:
    """Upload a file as the dataset's next version."""
    received, wanted = await _receive(request, params, store, settings, who)
    dataset, job = await service.add_version_from_upload(
        session, jobs, store, who, dataset_id, received, wanted
    )
    return {"data": {"dataset": _dataset(dataset), "job": JobOut.model_validate(job)}}


@router.post("/{dataset_id}/versions/import", status_code=202, response_model=Item[ImportStarted])
async def import_version(
    dataset_id: str,
    body: IntegrationImportIn,
    session: SessionDep,
    jobs: JobsDep,
    settings: SettingsDep,
    who: Creator,
) -> dict[str, Any]:
    """Import the dataset's next version through a Core integration (S3 object or query)."""
    dataset, job = await service.add_version_from_integration(
        session, jobs, settings, who, dataset_id, body
    )
    return {"data": {"dataset": _dataset(dataset), "job": JobOut.model_validate(job)}}


@router.get("/{dataset_id}/versions", response_model=Page[VersionOut])
async def list_versions(
    dataset_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_versions_query)],
    who: Reader,
) -> dict[str, Any]:
    """A dataset's versions, newest first by default; filter by source kind."""
    rows, total = await service.list_versions(session, who, dataset_id, query)
    return query.page_of([_version(r) for r in rows], total)


@router.get("/{dataset_id}/versions/{version}", response_model=Item[VersionOut])
async def get_version(
    dataset_id: str, version: str, session: SessionDep, who: Reader
) -> dict[str, Any]:
    """A version by id, number or `latest`: schema, size and lineage."""
    return {"data": _version(await service.get_version(session, who, dataset_id, version))}


@router.patch("/{dataset_id}/versions/{version}", response_model=Item[VersionOut])
async def update_version(
    dataset_id: str, version: str, body: VersionUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Change a version's description or tags (its data never changes)."""
    row = await service.update_version(session, who, dataset_id, version, body.changes())
    return {"data": _version(row)}


@router.patch(
    "/{dataset_id}/versions/{version}/schema",
    response_model=Item[SchemaPatched],
    responses={202: {"model": Item[SchemaPatched], "description": "A cast job started"}},
)
async def patch_schema(
    dataset_id: str,
    version: str,
    body: SchemaPatch,
    response: Response,
    session: SessionDep,
    jobs: JobsDep,
    who: Updater,
) -> dict[str, Any]:
    """Correct column types, semantic hints or descriptions.

    200: the schema was edited in place (the data already holds the new types). 202: some
    column's data must be cast, so a job makes a new version with all the changes.
    """
    row, job = await service.patch_schema(session, jobs, who, dataset_id, version, body.columns)
    if job is not None:
        response.status_code = 202
        return {"data": {"version": None, "job": JobOut.model_validate(job)}}
    return {"data": {"version": _version(row), "job": None}}


@router.get("/{dataset_id}/versions/{version}/preview", response_model=PreviewPage)
async def preview_version(
    dataset_id: str,
    version: str,
    session: SessionDep,
    store: StorageDep,
    settings: SettingsDep,
    who: Reader,
    page: Annotated[int, Query(ge=1, le=10_000_000, description="Page number, from 1")] = 1,
    per_page: Annotated[int, Query(ge=1, description="Rows per page")] = 50,
) -> dict[str, Any]:
    """One page of a version's rows."""
    per_page = min(per_page, settings.preview_max_rows)
    row = await service.get_version(session, who, dataset_id, version)
    columns, rows = await service.preview(store, settings, row, page, per_page)
    return {
        "data": Preview(columns=columns, rows=rows),
        "meta": PreviewMeta(page=page, per_page=per_page, total=row.rows),
    }


@router.get(
    "/{dataset_id}/versions/{version}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {t: {} for t in service.DOWNLOAD_TYPES.values()}}},
)
async def download_version(
    dataset_id: str,
    version: str,
    session: SessionDep,
    store: StorageDep,
    settings: SettingsDep,
    who: Reader,
    format: Annotated[DownloadFormat, Query(description="csv, parquet or jsonl")] = "csv",
) -> StreamingResponse:
    """Download a version as CSV, Parquet or JSON Lines, streamed."""
    dataset = await service.get_dataset(session, who, dataset_id)
    row = await service.get_version(session, who, dataset_id, version)
    filename = service.download_name(dataset, row, format)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "parquet":
        # A version's Parquet is one object: it streams from the store as it is.
        reader = await store.open(row.files[0])
        headers["Content-Length"] = str(reader.info.size)

        async def chunks() -> AsyncIterator[bytes]:
            async with reader:
                async for chunk in reader:
                    yield chunk

        return StreamingResponse(
            chunks(), media_type=service.DOWNLOAD_TYPES["parquet"], headers=headers
        )
    paths = await service.version_paths(store, settings, row)
    return StreamingResponse(
        service.text_chunks(paths, format),
        media_type=service.DOWNLOAD_TYPES[format],
        headers=headers,
    )


@router.delete("/{dataset_id}/versions/{version}", status_code=204)
async def delete_version(
    dataset_id: str,
    version: str,
    session: SessionDep,
    jobs: JobsDep,
    store: StorageDep,
    background: BackgroundTasks,
    who: Deleter,
    force: Annotated[bool, Query(description="Delete even if something depends on it")] = False,
) -> Response:
    """Delete one version; 409 names what depends on it unless force."""
    prefix = await service.delete_version(session, jobs, who, dataset_id, version, force=force)
    background.add_task(service.purge, store, prefix)
    return Response(status_code=204)
