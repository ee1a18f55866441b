"""Wire shapes of datasets and versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from inwire.kit.api import PatchModel, WireModel, printable
from inwire.kit.jobs.router import JobOut
from inwire.services.synthex.data.imports import ColumnChange, ImportOptions
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


# -- imports through Core integrations --------------------------------------------------------

IntegrationId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)
]


class S3ImportSource(BaseModel):
    """An object in the bucket of an ``s3`` integration: ``url`` or ``key``, not both."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["s3"]
    integration_id: IntegrationId
    url: str | None = Field(
        default=None, max_length=1100, description="s3://<bucket>/<key> (the integration's bucket)"
    )
    key: str | None = Field(
        default=None, min_length=1, max_length=1024, description="Key in the integration's bucket"
    )

    @model_validator(mode="after")
    def _url_or_key(self) -> S3ImportSource:
        if (self.url is None) == (self.key is None):
            raise ValueError("give exactly one of url and key")
        if self.url is not None:
            bucket, _, key = self.url.removeprefix("s3://").partition("/")
            if not self.url.startswith("s3://") or not bucket or not key or key.endswith("/"):
                raise ValueError("url must be s3://<bucket>/<key> naming one object")
        elif self.key is not None and self.key.endswith("/"):
            raise ValueError("key must name one object, not a folder")
        return self

    def location(self, bucket: str) -> tuple[str, str]:
        """(bucket, key) of the object; ``bucket`` is the integration's, for a ``key``."""
        if self.url is not None:
            found, _, key = self.url.removeprefix("s3://").partition("/")
            return found, key
        assert self.key is not None
        return bucket, self.key


class SqlImportSource(BaseModel):
    """The result of a read-only query on the database of a ``postgres`` integration."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sql"]
    integration_id: IntegrationId
    query: str = Field(
        min_length=1,
        max_length=100_000,
        description="One SELECT (or WITH … SELECT); run in a READ ONLY transaction",
    )

    @model_validator(mode="after")
    def _has_text(self) -> SqlImportSource:
        if not self.query.strip().rstrip(";").strip():
            raise ValueError("query is empty")
        return self


ImportSource = Annotated[S3ImportSource | SqlImportSource, Field(discriminator="kind")]


class IntegrationImportIn(BaseModel):
    """A new version read through a Core integration; the job fetches it."""

    model_config = ConfigDict(extra="forbid")

    source: ImportSource
    format: Literal["csv", "tsv", "parquet", "json", "jsonl", "excel"] | None = Field(
        default=None, description="Format of an S3 object; default: from its name"
    )
    options: ImportOptions = Field(default_factory=ImportOptions)
    description: Description = ""
    tags: Tags = Field(default_factory=list)

    @model_validator(mode="after")
    def _format_of_objects_only(self) -> IntegrationImportIn:
        if self.format is not None and self.source.kind != "s3":
            raise ValueError("format applies to S3 objects only (a query's result is typed)")
        return self


class DatasetImportIn(IntegrationImportIn):
    """A new dataset read through a Core integration."""

    name: DatasetName | None = Field(
        default=None, description="Default: the object's file name, or the integration's name"
    )
