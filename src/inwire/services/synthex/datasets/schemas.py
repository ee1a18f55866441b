"""Wire shapes of datasets and versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from inwire.kit.api import PatchModel, WireModel, printable
from inwire.kit.jobs.router import JobOut
from inwire.services.synthex.data.imports import ColumnChange
from inwire.services.synthex.schema import ColumnSpec

DatasetName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(printable),
]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
    AfterValidator(printable),
]
Tags = Annotated[list[Tag], Field(max_length=50)]
Description = Annotated[str, Field(max_length=5000)]
DownloadFormat = Literal["csv", "parquet", "jsonl"]


class DatasetOut(WireModel):
    """A dataset with the facts of its latest version."""

    id: str
    name: str
    description: str
    tags: list[str]
    latest_version_id: str | None
    version_count: int
    rows: int | None = Field(description="Rows of the latest version")
    columns: int | None = Field(description="Columns of the latest version")
    bytes: int | None = Field(description="Parquet bytes of the latest version")
    created_by: str
    created_at: datetime
    updated_at: datetime


class DatasetUpdate(PatchModel):
    """Changes to a dataset's name, description or tags."""

    name: DatasetName | None = None
    description: Description | None = None
    tags: Tags | None = None


class VersionOut(WireModel):
    """An immutable version: its schema, size and lineage."""

    id: str
    dataset_id: str
    number: int
    schema_: list[ColumnSpec] = Field(alias="schema", validation_alias="schema")
    rows: int
    columns: int
    bytes: int
    description: str
    tags: list[str]
    source_kind: str = Field(description="upload, s3, sql, recipe, generator, edit, …")
    source: dict[str, Any]
    parent_version_id: str | None
    recipe_id: str | None
    generator_id: str | None
    job_id: str | None
    created_by: str
    created_at: datetime

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class VersionUpdate(PatchModel):
    """Changes to a version's description or tags (its data never changes)."""

    description: Description | None = None
    tags: Tags | None = None


class SchemaPatch(BaseModel):
    """Corrections of a version's schema, by column name."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, ColumnChange] = Field(
        min_length=1, description="Column name → new type, semantic hint or description"
    )


class ImportStarted(BaseModel):
    """A dataset (new or existing) and the job importing its next version."""

    dataset: DatasetOut
    job: JobOut


class SchemaPatched(BaseModel):
    """The version, edited in place, or the job making a cast copy of it."""

    version: VersionOut | None = Field(
        default=None, description="Set when the change edited the schema in place"
    )
    job: JobOut | None = Field(
        default=None, description="Set when the data must be cast: the job making a new version"
    )


class Dependent(BaseModel):
    """Something that refers to a dataset or version."""

    kind: str = Field(description="version, generator, recipe, profile, …")
    id: str
    field: str = Field(description="The column that holds the reference")
    blocking: bool = Field(description="False when it is deleted along (it belongs to it)")


class Preview(BaseModel):
    """One page of a version's rows, each a column name → value object."""

    columns: list[str]
    rows: list[dict[str, Any]]


class PreviewMeta(BaseModel):
    """Where the page is."""

    page: int
    per_page: int
    total: int


class PreviewPage(BaseModel):
    """Envelope of a preview page."""

    data: Preview
    meta: PreviewMeta
