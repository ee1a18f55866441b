"""Reading and publishing dataset versions, from a job or a request.

A version is immutable Parquet in the object store plus one ``dataset_versions`` row. The
row is the version's existence: ``publish_version`` uploads the objects first and inserts
the row last, in one transaction, with ids derived from the job id, so

* a crash before the insert leaves no visible version (only objects a retry overwrites);
* a retried attempt that already inserted finds its row and returns it (no duplicate).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import polars as pl
from sqlalchemy.exc import IntegrityError

from inwire.kit.db.engine import Database
from inwire.kit.errors import Invalid, NotFound
from inwire.kit.storage import ObjectStore, open_object_store
from inwire.services.synthex.data import layout
from inwire.services.synthex.data.events import emit
from inwire.services.synthex.data.files import local_parts, new_workdir, remove_tree, stream_file
from inwire.services.synthex.datasets.models import Dataset, DatasetVersion
from inwire.services.synthex.datasets.repository import DatasetRepository, VersionRepository
from inwire.services.synthex.schema import ColumnSpec, Schema
from inwire.services.synthex.settings import SynthexSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from inwire.kit.jobs.context import JobContext

#: How many times publishing retries when another job took the same version number.
_NUMBER_RETRIES = 5


@dataclass(frozen=True)
class Lineage:
    """Where a new version comes from.

    ``source_kind`` is ``upload``, ``s3``, ``sql``, ``recipe``, ``generator``, ``edit``, …;
    ``source`` holds its details (file name and format, URL, query, method parameters).
    """

    source_kind: str
    source: Mapping[str, Any] = field(default_factory=dict)
    parent_version_id: str | None = None
    recipe_id: str | None = None
    generator_id: str | None = None


@dataclass(frozen=True)
class NewDataset:
    """A dataset to create for a published version (e.g. a generator's synthetic output)."""

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionRef:
    """What a job needs to know about a version: where its data is and what it means."""

    id: str
    organization_id: str
    dataset_id: str
    number: int
    schema: Schema
    rows: int
    columns: int
    bytes: int
    files: tuple[str, ...]
    source_kind: str
    parent_version_id: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DatasetVersion) -> VersionRef:
        """Build from a ``dataset_versions`` row."""
        return cls(
            id=row.id,
            organization_id=row.organization_id,
            dataset_id=row.dataset_id,
            number=row.number,
            schema=[ColumnSpec.model_validate(c) for c in row.schema],
            rows=row.rows,
            columns=row.columns,
            bytes=row.bytes,
            files=tuple(row.files),
            source_kind=row.source_kind,
            parent_version_id=row.parent_version_id,
            created_at=row.created_at,
        )


async def get_version(session: AsyncSession, org_id: str, version_id: str) -> VersionRef:
    """The organization's version ``version_id``, or NotFound."""
    row = await VersionRepository(session, org_id).get(version_id)
    return VersionRef.from_row(row)


async def read_version(
    store: ObjectStore,
    version: VersionRef,
    *,
    cache_dir: Path,
    cache_max_bytes: int = 20 * 1024**3,
) -> pl.LazyFrame:
    """A version's data as a polars LazyFrame over local Parquet (nothing loaded yet).

    On a ``file://`` store the objects are read in place; otherwise they are downloaded
    once into ``cache_dir``.
    """
    paths = await local_parts(store, version.files, cache_dir, cache_max_bytes=cache_max_bytes)
    return pl.scan_parquet(paths)


async def load_version_frame(
    store: ObjectStore,
    version: VersionRef,
    *,
    cache_dir: Path,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
    cache_max_bytes: int = 20 * 1024**3,
) -> pl.DataFrame:
    """A version's data (or some columns, or the first ``limit`` rows) in memory."""
    lf = await read_version(store, version, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
    if columns is not None:
        lf = lf.select(list(columns))
    if limit is not None:
        lf = lf.head(limit)
    return lf.collect()


def _write_parquet(data: pl.DataFrame | pl.LazyFrame | Path, target: Path) -> Path:
    if isinstance(data, Path):
        return data
    if isinstance(data, pl.LazyFrame):
        data.sink_parquet(target, compression="zstd")
    else:
        data.write_parquet(target, compression="zstd")
    return target


def checked_schema(schema: Schema | None, file_schema: Mapping[str, pl.DataType]) -> Schema:
    """``schema`` in the file's column order with ``storage`` filled from the file.

    Without a schema, one is inferred from the storage types alone. A schema that names
    other columns than the file has is a ValueError listing the differences.
    """
    if schema is None:
        from inwire.services.synthex.data.infer import schema_from_dtypes

        return schema_from_dtypes(file_schema)
    specs = {c.name: c for c in schema}
    missing = [n for n in file_schema if n not in specs]
    extra = [n for n in specs if n not in file_schema]
    if missing or extra:
        raise ValueError(
            f"schema does not match the data: columns without a spec {missing}, "
            f"specs without a column {extra}"
        )
    return [
        specs[name].model_copy(update={"storage": str(dtype)})
        for name, dtype in file_schema.items()
    ]


@dataclass(frozen=True)
class Publication:
    """One version for `publish_versions` to publish (the arguments of `publish_version`)."""

    data: pl.DataFrame | pl.LazyFrame | Path
    schema: Schema | None
    lineage: Lineage
    dataset_id: str | None = None
    new_dataset: NewDataset | None = None
    slot: str = ""
    description: str = ""
    tags: Sequence[str] = ()


async def publish_version(
    db: Database,
    store: ObjectStore,
    *,
    org_id: str,
    job_id: str,
    created_by: str,
    data: pl.DataFrame | pl.LazyFrame | Path,
    schema: Schema | None,
    lineage: Lineage,
    workdir: Path,
    dataset_id: str | None = None,
    new_dataset: NewDataset | None = None,
    slot: str = "",
    description: str = "",
    tags: Sequence[str] = (),
) -> VersionRef:
    """Store ``data`` as a new version of ``dataset_id`` (or of a new dataset); idempotent.

    ``data`` is a DataFrame, a LazyFrame (written streaming) or a local Parquet file.
    Objects are written first, the row inserted last; the version id (and a new dataset's
    id) derive from ``job_id`` and ``slot``, so calling this again for the same job returns
    the same version. ``schema`` is checked against the data (``storage`` filled in);
    without one it is inferred from the column types.
    """
    item = Publication(data, schema, lineage, dataset_id, new_dataset, slot, description, tags)
    published = await publish_versions(
        db,
        store,
        org_id=org_id,
        job_id=job_id,
        created_by=created_by,
        items=[item],
        workdir=workdir,
    )
    return published[0]


async def publish_versions(
    db: Database,
    store: ObjectStore,
    *,
    org_id: str,
    job_id: str,
    created_by: str,
    items: Sequence[Publication],
    workdir: Path,
) -> list[VersionRef]:
    """Publish several versions of one job all at once (each in its own ``slot``).

    Every object is written first, then every row is inserted in one transaction, so
    either all the versions become visible or none does (a multi-table generation never
    shows a parent table without its children). Idempotent like `publish_version`.
    """
    for item in items:
        if (item.dataset_id is None) == (item.new_dataset is None):
            raise ValueError("publish_version needs exactly one of dataset_id and new_dataset")
    async with db.session(write=False) as session:
        versions = VersionRepository(session, org_id)
        done = [await versions.by_job(job_id, item.slot) for item in items]
        if all(row is not None for row in done):
            return [VersionRef.from_row(row) for row in done if row is not None]
        for item in items:
            if item.dataset_id is not None:
                await DatasetRepository(session, org_id).get(item.dataset_id)
    staged = [await _stage(store, org_id, job_id, created_by, item, workdir) for item in items]
    for attempt in range(_NUMBER_RETRIES):
        try:
            async with db.session() as session:
                return [
                    await _insert_version(session, values, item.new_dataset)
                    for values, item in zip(staged, items, strict=True)
                ]
        except IntegrityError:
            # Another publisher took the number (PostgreSQL), or this job's row appeared.
            if attempt == _NUMBER_RETRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _stage(
    store: ObjectStore,
    org_id: str,
    job_id: str,
    created_by: str,
    item: Publication,
    workdir: Path,
) -> dict[str, Any]:
    """Write and upload one version's Parquet; the values of its row (not inserted yet)."""
    version_id = layout.derived_id("dsv", job_id, item.slot)
    target_dataset = item.dataset_id or layout.derived_id("ds", job_id, item.slot)
    parquet = _write_parquet(item.data, workdir / f"{version_id}.parquet")
    file_schema = pl.read_parquet_schema(parquet)
    if not file_schema:
        raise ValueError("a dataset version needs at least one column")
    specs = checked_schema(item.schema, file_schema)
    import pyarrow.parquet as pq

    rows = int(pq.read_metadata(parquet).num_rows)
    key = layout.part_key(org_id, target_dataset, version_id)
    info = await store.put(key, stream_file(parquet), "application/vnd.apache.parquet")
    lineage = item.lineage
    return {
        "id": version_id,
        "organization_id": org_id,
        "dataset_id": target_dataset,
        "schema": [c.model_dump(mode="json") for c in specs],
        "rows": rows,
        "columns": len(specs),
        "bytes": info.size,
        "files": [key],
        "description": item.description,
        "tags": list(item.tags),
        "source_kind": lineage.source_kind,
        "source": dict(lineage.source),
        "parent_version_id": lineage.parent_version_id,
        "recipe_id": lineage.recipe_id,
        "generator_id": lineage.generator_id,
        "job_id": job_id,
        "job_slot": item.slot,
        "created_by": created_by,
    }


async def _insert_version(
    session: AsyncSession, values: dict[str, Any], new_dataset: NewDataset | None
) -> VersionRef:
    org_id = values["organization_id"]
    versions = VersionRepository(session, org_id)
    done = await versions.by_job(values["job_id"], values["job_slot"])
    if done is not None:
        return VersionRef.from_row(done)
    datasets = DatasetRepository(session, org_id)
    dataset = await datasets.find(Dataset.id == values["dataset_id"])
    if dataset is None:
        if new_dataset is None:
            raise NotFound(f"Dataset {values['dataset_id']!r} not found")
        dataset = Dataset(
            id=values["dataset_id"],
            organization_id=org_id,
            name=new_dataset.name,
            description=new_dataset.description,
            tags=list(new_dataset.tags),
            created_by=values["created_by"],
        )
        session.add(dataset)
        await session.flush()
        await emit(
            session,
            "dataset.created",
            org_id,
            dataset.id,
            {"dataset_id": dataset.id, "name": dataset.name, "job_id": values["job_id"]},
        )
    else:
        dataset = await datasets.lock(dataset.id)
    number = await versions.next_number(dataset.id)
    row = DatasetVersion(**values, number=number)
    session.add(row)
    await session.flush()
    dataset.latest_version_id = row.id
    dataset.version_count = (dataset.version_count or 0) + 1
    dataset.rows, dataset.columns, dataset.bytes = row.rows, row.columns, row.bytes
    await session.flush()
    await emit(
        session,
        "dataset.version.created",
        org_id,
        row.id,
        {
            "dataset_id": dataset.id,
            "version_id": row.id,
            "number": row.number,
            "rows": row.rows,
            "columns": row.columns,
            "source_kind": row.source_kind,
            "parent_version_id": row.parent_version_id,
            "job_id": row.job_id,
        },
    )
    return VersionRef.from_row(row)


class JobData:
    """A job's access to Synthex data: its organization's versions, the store, a workdir.

    ``async with JobData.open(ctx) as data`` opens the service's database and object store
    from ``ctx.settings`` and a private temporary folder, and closes them all after.
    """

    def __init__(
        self,
        settings: SynthexSettings,
        *,
        org_id: str,
        job_id: str,
        created_by: str,
        db: Database,
        store: ObjectStore,
        workdir: Path,
    ) -> None:
        self.settings = settings
        self.org_id = org_id
        self.job_id = job_id
        self.created_by = created_by
        self.db = db
        self.store = store
        #: A private folder for this attempt's temporary files, removed on close.
        self.workdir = workdir

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, ctx: JobContext) -> AsyncIterator[Self]:
        """Open everything a job of ``ctx`` needs; close it when the block ends."""
        settings = SynthexSettings(**ctx.settings)
        db = Database(settings.database_url, schema=settings.database_schema)
        store = open_object_store(settings.storage_url)
        workdir = new_workdir(settings.work_path)
        try:
            yield cls(
                settings,
                org_id=ctx.organization_id,
                job_id=ctx.job_id,
                created_by=ctx.created_by,
                db=db,
                store=store,
                workdir=workdir,
            )
        finally:
            remove_tree(workdir)
            await store.close()
            await db.dispose()

    async def version(self, version_id: str) -> VersionRef:
        """The organization's version ``version_id``; NotFound names it otherwise."""
        async with self.db.session(write=False) as session:
            return await get_version(session, self.org_id, version_id)

    async def latest_version(self, dataset_id: str) -> VersionRef:
        """The newest version of a dataset; Invalid if it has none yet."""
        async with self.db.session(write=False) as session:
            row = await VersionRepository(session, self.org_id).latest(dataset_id)
        if row is None:
            raise Invalid(f"Dataset {dataset_id!r} has no version yet")
        return VersionRef.from_row(row)

    async def scan(self, version: VersionRef) -> pl.LazyFrame:
        """The version's data as a LazyFrame (streaming-friendly)."""
        return await read_version(
            self.store,
            version,
            cache_dir=self.settings.cache_path,
            cache_max_bytes=self.settings.cache_max_bytes,
        )

    async def load(
        self,
        version: VersionRef,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """The version's data in memory (optionally some columns or the first rows)."""
        return await load_version_frame(
            self.store,
            version,
            cache_dir=self.settings.cache_path,
            columns=columns,
            limit=limit,
            cache_max_bytes=self.settings.cache_max_bytes,
        )

    async def publish(
        self,
        data: pl.DataFrame | pl.LazyFrame | Path,
        *,
        schema: Schema | None,
        lineage: Lineage,
        dataset_id: str | None = None,
        new_dataset: NewDataset | None = None,
        slot: str = "",
        description: str = "",
        tags: Sequence[str] = (),
    ) -> VersionRef:
        """Publish ``data`` as a new version (see ``publish_version``) for this job."""
        return await publish_version(
            self.db,
            self.store,
            org_id=self.org_id,
            job_id=self.job_id,
            created_by=self.created_by,
            data=data,
            schema=schema,
            lineage=lineage,
            workdir=self.workdir,
            dataset_id=dataset_id,
            new_dataset=new_dataset,
            slot=slot,
            description=description,
            tags=tags,
        )

    async def publish_many(self, items: Sequence[Publication]) -> list[VersionRef]:
        """Publish several versions at once, all or none (see ``publish_versions``)."""
        return await publish_versions(
            self.db,
            self.store,
            org_id=self.org_id,
            job_id=self.job_id,
            created_by=self.created_by,
            items=items,
            workdir=self.workdir,
        )
