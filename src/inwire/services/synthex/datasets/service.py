"""Rules of datasets and versions: import, metadata, schema corrections, reading, deleting."""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.errors import Conflict, Invalid, NotFound
from inwire.kit.jobs import Job, JobService
from inwire.kit.storage import ObjectStore
from inwire.services.synthex.data import formats, layout
from inwire.services.synthex.data.events import emit
from inwire.services.synthex.data.files import local_parts
from inwire.services.synthex.data.imports import ColumnChange, ImportInput, ImportOptions
from inwire.services.synthex.data.infer import storage_fits
from inwire.services.synthex.data.integrations import SOURCE_INTEGRATION_KINDS, check_s3_location
from inwire.services.synthex.datasets.models import Dataset, DatasetVersion
from inwire.services.synthex.datasets.repository import (
    ActiveJobRepository,
    DatasetRepository,
    VersionRepository,
)
from inwire.services.synthex.datasets.schemas import (
    DatasetImportIn,
    Dependent,
    IntegrationImportIn,
    S3ImportSource,
)
from inwire.services.synthex.datasets.upload import ReceivedUpload
from inwire.services.synthex.db import SynthexBase
from inwire.services.synthex.schema import ColumnSpec
from inwire.services.synthex.settings import SynthexSettings

if TYPE_CHECKING:
    from inwire.contracts.core import Integration

IMPORT_JOB = "synthex.import"
_LINEAGE_TABLES = {"datasets", "dataset_versions"}


def _invalid(exc: ValidationError, prefix: str = "") -> Invalid:
    details = [
        {
            "field": prefix + ".".join(str(p) for p in e["loc"]),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors()
    ]
    fields = ", ".join(sorted({d["field"] for d in details}))
    return Invalid(f"Invalid input: {fields}", details=details)


@dataclass(frozen=True)
class UploadRequest:
    """What an upload asks for besides the file."""

    name: str | None
    description: str
    tags: list[str]
    format: str | None
    options: dict[str, Any]


def import_options(options: dict[str, Any]) -> ImportOptions:
    """Reading options, checked (400 naming the bad one)."""
    try:
        return ImportOptions.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise _invalid(exc) from exc


async def _check_file(store: ObjectStore, received: ReceivedUpload) -> None:
    """Refuse an obviously malformed file now, and forget it."""
    try:
        formats.check_head(received.format, received.head, received.tail, received.size)
    except Invalid:
        await store.delete(received.key)
        raise


async def _submit_import(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    dataset: Dataset,
    received: ReceivedUpload,
    request: UploadRequest,
    options: ImportOptions,
    parent_version_id: str | None,
) -> Job:
    job_input = ImportInput(
        dataset_id=dataset.id,
        source={
            "kind": "upload",
            "key": received.key,
            "filename": received.filename,
            "bytes": received.size,
        },
        format=received.format,
        options=options,
        parent_version_id=parent_version_id,
        description=request.description,
        tags=request.tags,
    )
    return await jobs.submit(
        session, who.org, IMPORT_JOB, job_input.model_dump(mode="json"), who.subject
    )


async def _new_dataset(
    session: AsyncSession, who: Principal, name: str, description: str, tags: list[str]
) -> Dataset:
    """A dataset row of the caller's organization, without versions yet."""
    from inwire.kit.ids import new_id

    dataset = Dataset(
        id=new_id("ds"),
        name=name[:200],
        description=description,
        tags=tags,
        created_by=who.subject,
    )
    await DatasetRepository(session, who.org).add(dataset)
    return dataset


async def _announce(session: AsyncSession, who: Principal, dataset: Dataset, job: Job) -> None:
    """``dataset.created``, with the job importing its first version."""
    await emit(
        session,
        "dataset.created",
        who.org,
        dataset.id,
        {"dataset_id": dataset.id, "name": dataset.name, "job_id": job.id},
    )


async def create_from_upload(
    session: AsyncSession,
    jobs: JobService,
    store: ObjectStore,
    who: Principal,
    received: ReceivedUpload,
    request: UploadRequest,
) -> tuple[Dataset, Job]:
    """A new dataset for an uploaded file, and the job importing it as version 1."""
    options = import_options(request.options)
    await _check_file(store, received)
    stem = received.filename.rsplit(".", 1)[0].strip() or "dataset"
    dataset = await _new_dataset(
        session, who, request.name or stem, request.description, request.tags
    )
    job = await _submit_import(session, jobs, who, dataset, received, request, options, None)
    await _announce(session, who, dataset, job)
    return dataset, job


async def add_version_from_upload(
    session: AsyncSession,
    jobs: JobService,
    store: ObjectStore,
    who: Principal,
    dataset_id: str,
    received: ReceivedUpload,
    request: UploadRequest,
) -> tuple[Dataset, Job]:
    """The job importing an uploaded file as the dataset's next version."""
    options = import_options(request.options)
    try:
        dataset = await DatasetRepository(session, who.org).get(dataset_id)
    except NotFound:
        await store.delete(received.key)
        raise
    await _check_file(store, received)
    # A new upload does not derive from the previous version: no parent (deleting an old
    # version stays free).
    job = await _submit_import(session, jobs, who, dataset, received, request, options, None)
    return dataset, job


# -- imports through Core integrations -----------------------------------------------------------


async def _integration_source(
    settings: SynthexSettings, who: Principal, body: IntegrationImportIn
) -> tuple[dict[str, Any], Integration]:
    """The job's source for ``body`` (ids and locations, no secret) and the integration,
    checked now with the caller's own token: Core answers 404 for another organization's
    integration, and the kind and S3 location must fit."""
    from inwire.contracts.core import CoreClient

    source = body.source
    async with CoreClient(settings.core_url, credentials=who.token, timeout=10) as core:
        try:
            integration = await core.get_integration(source.integration_id)
        except NotFound as exc:
            raise NotFound(
                f"Integration {source.integration_id!r} not found",
                details=[{"field": "source.integration_id", "message": "not found"}],
            ) from exc
    expected = SOURCE_INTEGRATION_KINDS[source.kind]
    if integration.kind != expected:
        raise Invalid(
            f"Integration {integration.id!r} is {integration.kind}; "
            f"{source.kind} imports need a {expected} integration",
            details=[{"field": "source.integration_id", "message": f"needs a {expected} one"}],
        )
    if isinstance(source, S3ImportSource):
        bucket, key = source.location(str(integration.config.get("bucket", "")))
        check_s3_location(integration.config, bucket, key)
        return (
            {"kind": "s3", "integration_id": integration.id, "bucket": bucket, "key": key},
            integration,
        )
    return (
        {"kind": "sql", "integration_id": integration.id, "query": source.query},
        integration,
    )


async def _submit_integration_import(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    dataset: Dataset,
    source: dict[str, Any],
    body: IntegrationImportIn,
) -> Job:
    job_input = ImportInput(
        dataset_id=dataset.id,
        source=source,
        format=body.format,
        options=body.options,
        description=body.description,
        tags=body.tags,
    )
    return await jobs.submit(
        session, who.org, IMPORT_JOB, job_input.model_dump(mode="json"), who.subject
    )


async def create_from_integration(
    session: AsyncSession,
    jobs: JobService,
    settings: SynthexSettings,
    who: Principal,
    body: DatasetImportIn,
) -> tuple[Dataset, Job]:
    """A new dataset, and the job importing an S3 object or a query's result as version 1."""
    source, integration = await _integration_source(settings, who, body)
    if source["kind"] == "s3":
        default_name = str(source["key"]).rsplit("/", 1)[-1].rsplit(".", 1)[0].strip()
    else:
        default_name = integration.name
    name = body.name or default_name or "dataset"
    dataset = await _new_dataset(session, who, name, body.description, body.tags)
    job = await _submit_integration_import(session, jobs, who, dataset, source, body)
    await _announce(session, who, dataset, job)
    return dataset, job


async def add_version_from_integration(
    session: AsyncSession,
    jobs: JobService,
    settings: SynthexSettings,
    who: Principal,
    dataset_id: str,
    body: IntegrationImportIn,
) -> tuple[Dataset, Job]:
    """The job importing an S3 object or a query's result as the dataset's next version."""
    dataset = await DatasetRepository(session, who.org).get(dataset_id)
    source, _ = await _integration_source(settings, who, body)
    job = await _submit_integration_import(session, jobs, who, dataset, source, body)
    return dataset, job


# -- datasets ----------------------------------------------------------------------------------


async def list_datasets(
    session: AsyncSession, who: Principal, query: ListQuery, *, q: str | None, tag: str | None
) -> tuple[Sequence[Dataset], int]:
    """One page of the organization's datasets."""
    return await DatasetRepository(session, who.org).search(query, q=q, tag=tag)


async def get_dataset(session: AsyncSession, who: Principal, dataset_id: str) -> Dataset:
    """One dataset of the organization."""
    return await DatasetRepository(session, who.org).get(dataset_id)


async def update_dataset(
    session: AsyncSession, who: Principal, dataset_id: str, changes: dict[str, Any]
) -> Dataset:
    """Rename a dataset or change its description or tags."""
    repo = DatasetRepository(session, who.org)
    dataset = await repo.get(dataset_id)
    for name, value in changes.items():
        setattr(dataset, name, value)
    await repo.flush()
    return dataset


# -- versions ----------------------------------------------------------------------------------


async def get_version(
    session: AsyncSession, who: Principal, dataset_id: str, ref: str
) -> DatasetVersion:
    """A version by id, by number, or ``latest``; 404 if it is not this dataset's."""
    dataset = await get_dataset(session, who, dataset_id)
    versions = VersionRepository(session, who.org)
    row: DatasetVersion | None
    if ref == "latest":
        row = await versions.latest(dataset.id)
    elif ref.isdigit():
        row = await versions.by_number(dataset.id, int(ref))
    else:
        row = await versions.find(DatasetVersion.id == ref, DatasetVersion.dataset_id == dataset.id)
    if row is None:
        raise NotFound(f"Dataset {dataset_id!r} has no version {ref!r}")
    return row


async def list_versions(
    session: AsyncSession, who: Principal, dataset_id: str, query: ListQuery
) -> tuple[Sequence[DatasetVersion], int]:
    """One page of a dataset's versions."""
    dataset = await get_dataset(session, who, dataset_id)
    return await VersionRepository(session, who.org).of_dataset(dataset.id, query)


async def update_version(
    session: AsyncSession, who: Principal, dataset_id: str, ref: str, changes: dict[str, Any]
) -> DatasetVersion:
    """Change a version's description or tags."""
    version = await get_version(session, who, dataset_id, ref)
    for name, value in changes.items():
        setattr(version, name, value)
    await VersionRepository(session, who.org).flush()
    return version


def needs_cast(schema: list[ColumnSpec], changes: dict[str, ColumnChange]) -> list[str]:
    """Columns whose new type the stored data does not hold (their data must be cast)."""
    specs = {c.name: c for c in schema}
    unknown = sorted(set(changes) - set(specs))
    if unknown:
        raise Invalid(
            f"Unknown column(s): {', '.join(unknown)}",
            details=[{"field": f"columns.{n}", "message": "no such column"} for n in unknown],
        )
    return [
        name
        for name, change in changes.items()
        if change.type is not None
        and change.type != specs[name].type
        and not storage_fits(specs[name].storage, change.type)
    ]


async def patch_schema(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    dataset_id: str,
    ref: str,
    changes: dict[str, ColumnChange],
) -> tuple[DatasetVersion, Job | None]:
    """Correct a version's schema.

    Semantic hints, descriptions and type changes the stored data already holds (integer
    codes as categorical, text as identifier, …) edit this version's schema in place: the
    data is unchanged. If any column needs its data cast (text to integer or datetime, …),
    nothing changes here: a job makes a new version with every requested change applied.
    """
    version = await get_version(session, who, dataset_id, ref)
    schema = [ColumnSpec.model_validate(c) for c in version.schema]
    if needs_cast(schema, changes):
        job_input = ImportInput(
            dataset_id=version.dataset_id,
            source={"kind": "version", "version_id": version.id},
            format="parquet",
            schema_changes=changes,
            parent_version_id=version.id,
            description=f"Schema change of version {version.number}",
            tags=list(version.tags),
        )
        job = await jobs.submit(
            session, who.org, IMPORT_JOB, job_input.model_dump(mode="json"), who.subject
        )
        return version, job
    updated: list[dict[str, Any]] = []
    for spec in schema:
        change = changes.get(spec.name)
        if change is not None:
            update: dict[str, Any] = {}
            if change.type is not None:
                update["type"] = change.type
            if change.semantic is not None:
                update["semantic"] = change.semantic or None
            if change.description is not None:
                update["description"] = change.description
            spec = spec.model_copy(update=update)
        updated.append(spec.model_dump(mode="json"))
    version.schema = updated
    await VersionRepository(session, who.org).flush()
    return version, None


# -- dependents and deletion -------------------------------------------------------------------


def _references(target: str) -> list[tuple[Table, str, bool, bool]]:
    """(table, column, cascades, nullable) of every Synthex column referencing ``target``."""
    found = []
    for table in SynthexBase.metadata.tables.values():
        if table.name in _LINEAGE_TABLES:
            continue
        for fk in table.foreign_keys:
            if fk.target_fullname == target:
                cascades = (fk.ondelete or "").upper() == "CASCADE"
                found.append((table, fk.parent.name, cascades, bool(fk.parent.nullable)))
    return found


def _row_id(table: Table, row: dict[str, Any]) -> str:
    if "id" in row:
        return str(row["id"])
    return "/".join(str(row[c.name]) for c in table.primary_key.columns)


@dataclass
class Dependents:
    """What refers to the versions about to be deleted."""

    items: list[Dependent]
    #: (table, column) references a forced delete sets to NULL.
    clearable: list[tuple[Table, str]]
    #: Blocking references a forced delete cannot clear (NOT NULL, no cascade).
    hard: list[Dependent]

    @property
    def blocking(self) -> list[Dependent]:
        return [d for d in self.items if d.blocking]


async def dependents(
    session: AsyncSession, org_id: str, dataset_id: str | None, version_ids: list[str]
) -> Dependents:
    """Versions derived from these, rows of other Synthex tables referencing them (by
    foreign key: CASCADE ones belong to them and go along), and unfinished jobs naming them."""
    versions = VersionRepository(session, org_id)
    items: list[Dependent] = []
    clearable: list[tuple[Table, str]] = []
    hard: list[Dependent] = []
    for child in await versions.children(version_ids):
        if dataset_id is None or child.dataset_id != dataset_id:
            items.append(
                Dependent(kind="version", id=child.id, field="parent_version_id", blocking=True)
            )
    targets = [("dataset_versions.id", version_ids)]
    if dataset_id is not None:
        targets.append(("datasets.id", [dataset_id]))
    for target, ids in targets:
        for table, column, cascades, nullable in _references(target):
            rows = await versions.referencing(table, column, ids)
            for row in rows:
                dep = Dependent(
                    kind=table.name, id=_row_id(table, row), field=column, blocking=not cascades
                )
                items.append(dep)
                if not cascades and not nullable:
                    hard.append(dep)
            if rows and not cascades and nullable:
                clearable.append((table, column))
    mentioned = [*version_ids, *([dataset_id] if dataset_id else [])]
    for job in await ActiveJobRepository(session, org_id).mentioning(mentioned):
        items.append(
            Dependent(
                kind=f"job ({job['type']}, {job['status']})",
                id=job["id"],
                field="input",
                blocking=True,
            )
        )
    return Dependents(items=items, clearable=clearable, hard=hard)


def _refuse(what: str, found: Dependents, *, forced: bool) -> None:
    if forced and not found.hard:
        return
    blocking = found.hard if forced else found.blocking
    if not blocking:
        return
    names = ", ".join(f"{d.kind} {d.id}" for d in blocking[:5])
    more = f" and {len(blocking) - 5} more" if len(blocking) > 5 else ""
    hint = (
        "delete or change them first"
        if forced
        else "delete them first, or pass force=true to delete anyway"
    )
    raise Conflict(
        f"{what} is in use by {names}{more}; {hint}",
        details=[d.model_dump() for d in blocking],
        code="IN_USE",
    )


async def _force_through(
    session: AsyncSession, jobs: JobService, org_id: str, ids: list[str], found: Dependents
) -> None:
    versions = VersionRepository(session, org_id)
    for table, column in found.clearable:
        await versions.clear_references(table, column, ids)
    for dep in found.items:
        if dep.field == "input":
            with contextlib.suppress(Conflict):  # it finished meanwhile
                await jobs.cancel(session, org_id, dep.id)


async def delete_dataset(
    session: AsyncSession, jobs: JobService, who: Principal, dataset_id: str, *, force: bool
) -> str:
    """Delete a dataset and its versions; returns the object prefix to purge after commit.

    409 ``IN_USE`` names what depends on it (versions of other datasets derived from it,
    generators and other records referencing it, unfinished jobs reading it) unless
    ``force``: then references are cleared, jobs cancelled and derived versions keep their
    data (their parent id stays as history).
    """
    dataset = await get_dataset(session, who, dataset_id)
    ids = await VersionRepository(session, who.org).ids_of(dataset.id)
    found = await dependents(session, who.org, dataset.id, ids)
    _refuse(f"Dataset {dataset.id!r}", found, forced=force)
    if force:
        await _force_through(session, jobs, who.org, [*ids, dataset.id], found)
    await DatasetRepository(session, who.org).remove(dataset)
    await emit(
        session,
        "dataset.deleted",
        who.org,
        dataset.id,
        {"dataset_id": dataset.id, "versions": ids, "forced": force},
    )
    return layout.dataset_prefix(who.org, dataset.id)


async def delete_version(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    dataset_id: str,
    ref: str,
    *,
    force: bool,
) -> str:
    """Delete one version (the same rules as a dataset); returns its object prefix."""
    version = await get_version(session, who, dataset_id, ref)
    found = await dependents(session, who.org, None, [version.id])
    _refuse(f"Version {version.number} of dataset {dataset_id!r}", found, forced=force)
    if force:
        await _force_through(session, jobs, who.org, [version.id], found)
    versions = VersionRepository(session, who.org)
    await versions.remove(version)
    dataset = await DatasetRepository(session, who.org).get(version.dataset_id)
    latest = await versions.latest(dataset.id)
    dataset.latest_version_id = latest.id if latest else None
    dataset.version_count = max(0, dataset.version_count - 1)
    dataset.rows = latest.rows if latest else None
    dataset.columns = latest.columns if latest else None
    dataset.bytes = latest.bytes if latest else None
    await versions.flush()
    await emit(
        session,
        "dataset.version.deleted",
        who.org,
        version.id,
        {"dataset_id": dataset.id, "version_id": version.id, "forced": force},
    )
    return layout.version_prefix(who.org, version.dataset_id, version.id)


async def purge(store: ObjectStore, prefix: str) -> None:
    """Delete every object under ``prefix`` (after the rows are gone)."""
    for info in await store.list(prefix):
        try:
            await store.delete(info.key)
        except NotFound:
            continue


# -- reading -----------------------------------------------------------------------------------


async def version_paths(
    store: ObjectStore, settings: SynthexSettings, version: DatasetVersion
) -> list[Any]:
    """Local Parquet files of a version (downloaded once from a remote store)."""
    return await local_parts(
        store, version.files, settings.cache_path, cache_max_bytes=settings.cache_max_bytes
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


async def preview(
    store: ObjectStore,
    settings: SynthexSettings,
    version: DatasetVersion,
    page: int,
    per_page: int,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows ``(page-1)*per_page …`` of a version, as JSON-ready objects."""
    paths = await version_paths(store, settings, version)
    offset = (page - 1) * per_page

    def read() -> pl.DataFrame:
        return pl.scan_parquet(paths).slice(offset, per_page).collect()

    frame = await asyncio.to_thread(read)
    rows = [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
    return frame.columns, rows


DOWNLOAD_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
_BATCH_ROWS = 50_000


def text_chunks(paths: Sequence[Any], fmt: str) -> Iterator[bytes]:
    """A version's rows as CSV or JSON Lines, one record batch at a time."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    first = True
    for path in paths:
        # pre_buffer (pyarrow's default) would read every row group's bytes up front:
        # a whole compressed version in memory before the first row goes out.
        reader = pq.ParquetFile(path, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=_BATCH_ROWS):
            if fmt == "csv":
                buffer = io.BytesIO()
                options = pacsv.WriteOptions(include_header=first)
                pacsv.write_csv(batch, buffer, write_options=options)
                yield buffer.getvalue()
            else:
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                yield frame.write_ndjson().encode()
            first = False
    if first and fmt == "csv":
        yield b""


def download_name(dataset: Dataset, version: DatasetVersion, fmt: str) -> str:
    """``<dataset name>-v<number>.<format>``, safe for a Content-Disposition header."""
    stem = layout.safe_filename(dataset.name) or "dataset"
    return f"{stem}-v{version.number}.{fmt}"
