"""Synthex's contract: datasets and their versions, for other services and the SDK.

Model Training reads dataset versions through :class:`SynthexClient`: list and read
datasets and versions, and download a version's Parquet streamed to a file. The models
mirror Synthex's ``datasets/schemas.py`` (``tests/services/synthex/test_contract.py`` fails
when they drift apart) and ignore fields they do not know.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from inwire.contracts.core import Page
from inwire.kit.peers import QueryParams, ServiceClient

#: Where Synthex's API lives behind the gateway: ``http://gateway:8080/synthex/api/v1/...``.
GATEWAY_PREFIX = "/synthex"

#: The logical type of a column.
ColumnType = Literal["integer", "float", "boolean", "categorical", "datetime", "text", "identifier"]
#: Formats a version downloads as.
DownloadFormat = Literal["parquet", "csv", "jsonl"]
Order = Literal["asc", "desc"]
DatasetSort = Literal["created_at", "updated_at", "name", "rows", "bytes"]
VersionSort = Literal["number", "created_at", "rows", "bytes"]

T = TypeVar("T", bound=BaseModel)


class Column(BaseModel):
    """One column of a version's schema."""

    name: str
    type: ColumnType
    #: A semantic hint (email, phone, postal_code, …) or None.
    semantic: str | None = None
    nullable: bool = True
    #: The polars dtype the Parquet stores (``Int64``, ``String``, ``Date``, …).
    storage: str = ""
    description: str = ""


class Dataset(BaseModel):
    """A dataset and the facts of its latest version."""

    id: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    latest_version_id: str | None = None
    version_count: int = 0
    rows: int | None = None
    columns: int | None = None
    bytes: int | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime


class DatasetVersion(BaseModel):
    """An immutable version: schema, size and lineage."""

    id: str
    dataset_id: str
    number: int
    #: The version's schema (``schema`` on the wire).
    schema_: list[Column] = Field(alias="schema")
    rows: int
    columns: int
    bytes: int
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    source_kind: str
    source: dict[str, Any] = Field(default_factory=dict)
    parent_version_id: str | None = None
    recipe_id: str | None = None
    generator_id: str | None = None
    job_id: str | None = None
    created_by: str
    created_at: datetime

    model_config = {"populate_by_name": True}


class SynthexClient(ServiceClient):
    """Typed calls to Synthex (``http://host:18090``, ``http://gateway:8080/synthex`` or
    its app). Versions are addressed by id, by number, or as ``"latest"``."""

    async def _page(self, path: str, model: type[T], params: Mapping[str, Any]) -> Page[T]:
        query: QueryParams = {k: v for k, v in params.items() if v is not None}
        data, meta = await self.get_page(path, params=query)
        return Page[model](  # type: ignore[valid-type]
            items=[model.model_validate(row) for row in data],
            page=int(meta.get("page", params.get("page") or 1)),
            per_page=int(meta.get("per_page", params.get("per_page") or len(data))),
            total=int(meta.get("total", len(data))),
        )

    async def list_datasets(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        q: str | None = None,
        tag: str | None = None,
        sort: DatasetSort | None = None,
        order: Order | None = None,
    ) -> Page[Dataset]:
        """One page of the organization's datasets (``q`` searches names)."""
        params = {"page": page, "per_page": per_page, "q": q, "tag": tag}
        return await self._page(
            "/api/v1/datasets", Dataset, {**params, "sort": sort, "order": order}
        )

    async def get_dataset(self, dataset_id: str) -> Dataset:
        """One dataset."""
        return Dataset.model_validate(await self.get(f"/api/v1/datasets/{dataset_id}"))

    async def list_versions(
        self,
        dataset_id: str,
        *,
        page: int = 1,
        per_page: int = 20,
        source_kind: str | None = None,
        sort: VersionSort | None = None,
        order: Order | None = None,
    ) -> Page[DatasetVersion]:
        """One page of a dataset's versions, newest first by default."""
        params = {"page": page, "per_page": per_page, "source_kind": source_kind}
        return await self._page(
            f"/api/v1/datasets/{dataset_id}/versions",
            DatasetVersion,
            {**params, "sort": sort, "order": order},
        )

    async def get_version(self, dataset_id: str, version: str | int = "latest") -> DatasetVersion:
        """A version by id, number or ``"latest"``."""
        data = await self.get(f"/api/v1/datasets/{dataset_id}/versions/{version}")
        return DatasetVersion.model_validate(data)

    @asynccontextmanager
    async def stream_version(
        self,
        dataset_id: str,
        version: str | int = "latest",
        *,
        format: DownloadFormat = "parquet",
        chunk_size: int = 1024 * 1024,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A version's data as a stream of chunks (Parquet by default)."""
        path = f"/api/v1/datasets/{dataset_id}/versions/{version}/download"
        async with self.stream(path, params={"format": format}, chunk_size=chunk_size) as body:
            yield body

    async def download_version(
        self,
        dataset_id: str,
        target: Path,
        version: str | int = "latest",
        *,
        format: DownloadFormat = "parquet",
    ) -> int:
        """Write a version's data to ``target`` (streamed; a partial file never stays);
        returns the bytes written."""
        partial = target.with_name(f".{target.name}.part")
        written = 0
        try:
            with partial.open("wb") as f:
                async with self.stream_version(dataset_id, version, format=format) as body:
                    async for chunk in body:
                        await asyncio.to_thread(f.write, chunk)
                        written += len(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return written
