"""Where an import's bytes come from: one fetcher per source kind.

The import job (``data.imports``) takes ``input["source"] = {"kind": ..., ...}`` and asks
the fetcher of that kind for a local file. A new kind (``s3``, ``sql``) is one entry in
``SOURCES`` naming its fetcher by import path, so a worker imports only what it runs::

    async def fetch_s3(data: JobData, source: Mapping[str, Any], workdir: Path) -> Fetched:
        ...download the object into workdir...
        return Fetched(path=..., filename="sales.csv", format=None, lineage_kind="s3",
                       details={"url": source["url"]})

``format=None`` lets the import pick the format from the file name (or the request's
``format``). ``cleanup`` runs once the job is over for good (succeeded, or failed with no
attempt left).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inwire.kit.errors import Invalid, NotFound
from inwire.kit.jobs.registry import resolve
from inwire.services.synthex.data.files import download, store_path
from inwire.services.synthex.data.versions import JobData
from inwire.services.synthex.schema import Schema

#: Source kind → ``"module:function"`` of its fetcher.
SOURCES: dict[str, str] = {
    "upload": "inwire.services.synthex.data.sources:fetch_upload",
    "version": "inwire.services.synthex.data.sources:fetch_version",
    "s3": "inwire.services.synthex.data.integrations:fetch_s3",
    "sql": "inwire.services.synthex.data.integrations:fetch_sql",
}


@dataclass
class Fetched:
    """A source made local: the file, its name and format, and lineage details."""

    path: Path
    filename: str
    #: One of ``formats.FORMATS``, or None to decide from the file name.
    format: str | None
    #: ``source_kind`` of the version the import makes.
    lineage_kind: str
    #: Stored as the version's ``source`` (no secrets here).
    details: dict[str, Any] = field(default_factory=dict)
    #: Removes what only this import needed (an uploaded file), when the job is over.
    cleanup: Callable[[], Awaitable[None]] | None = None
    #: A schema the data already has (a version's, with its corrections): used instead
    #: of inferring one.
    schema: Schema | None = None


Fetcher = Callable[[JobData, Mapping[str, Any], Path], Awaitable[Fetched]]


def fetcher(kind: str) -> Fetcher:
    """The fetcher of a source kind; Invalid naming the known kinds otherwise."""
    target = SOURCES.get(kind)
    if target is None:
        raise Invalid(
            f"Unknown import source {kind!r}; known: {', '.join(sorted(SOURCES))}",
            details=[{"field": "source.kind", "message": "unknown"}],
        )
    fn: Fetcher = resolve(target)
    return fn


async def fetch_upload(data: JobData, source: Mapping[str, Any], workdir: Path) -> Fetched:
    """An uploaded file waiting in the object store (``key``, ``filename``)."""
    key = str(source["key"])
    filename = str(source.get("filename") or key.rsplit("/", 1)[-1])
    local = store_path(data.store, key)
    if local is None:
        local = await download(data.store, key, workdir / "upload" / Path(key).name)
    elif not local.exists():
        raise NotFound(f"The uploaded file {filename!r} is no longer stored")

    async def cleanup() -> None:
        with contextlib.suppress(NotFound):
            await data.store.delete(key)

    return Fetched(
        path=local,
        filename=filename,
        format=None,
        lineage_kind="upload",
        details={"filename": filename, "bytes": source.get("bytes")},
        cleanup=cleanup,
    )


async def fetch_version(data: JobData, source: Mapping[str, Any], workdir: Path) -> Fetched:
    """An existing version's Parquet (re-imported with schema changes: ``edit``)."""
    version = await data.version(str(source["version_id"]))
    lf_paths = await _version_paths(data, version.files)
    if len(lf_paths) != 1:
        raise Invalid("Only single-part versions can be re-imported")
    return Fetched(
        path=lf_paths[0],
        filename=f"{version.id}.parquet",
        format="parquet",
        lineage_kind="edit",
        details={"version_id": version.id, "number": version.number},
        schema=version.schema,
    )


async def _version_paths(data: JobData, keys: tuple[str, ...]) -> list[Path]:
    from inwire.services.synthex.data.files import local_parts

    return await local_parts(
        data.store, keys, data.settings.cache_path, cache_max_bytes=data.settings.cache_max_bytes
    )
