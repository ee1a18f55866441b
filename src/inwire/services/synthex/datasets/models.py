"""Datasets and their immutable versions.

A version row is inserted only after its Parquet objects are fully written (``data.publish``),
so a visible version always has all its data. Lineage columns are plain ids, not foreign
keys: a version keeps naming the version or recipe it came from after those are deleted.

Other Synthex tables that need a version reference it with
``ForeignKey("dataset_versions.id", ondelete=...)``; deleting a version looks them up by
that foreign key (``datasets.service.dependents``): ``CASCADE`` marks data owned by the
version (deleted with it), anything else marks a dependent that blocks the delete unless
``force`` (then a nullable reference is set to NULL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.kit.db.base import utcnow
from inwire.services.synthex.db import SynthexBase


class Dataset(SynthexBase, TenantMixin, TimestampMixin):
    """A named table of data with a history of immutable versions."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The newest version (highest number), or None before the first import finishes.
    latest_version_id: Mapped[str | None] = mapped_column(String(40), default=None)
    version_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Facts of the latest version, copied so lists sort and show them without a join.
    rows: Mapped[int | None] = mapped_column(BigInteger, default=None)
    columns: Mapped[int | None] = mapped_column(Integer, default=None)
    bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_by: Mapped[str] = mapped_column(String(100))


class DatasetVersion(SynthexBase, TenantMixin):
    """One immutable state of a dataset: Parquet objects, schema, facts and lineage."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        # One version per (job, slot): a retried job finds the version it already made.
        UniqueConstraint("job_id", "job_slot"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    #: The version's logical schema: a list of ``ColumnSpec`` dicts.
    schema: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[int] = mapped_column(Integer)
    #: Bytes of the Parquet objects.
    bytes: Mapped[int] = mapped_column(BigInteger)
    #: Object keys of the Parquet parts, in order.
    files: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # -- lineage ---------------------------------------------------------------------------
    #: How the data came: upload, s3, sql, recipe, generator, cast, …
    source_kind: Mapped[str] = mapped_column(String(20), index=True)
    #: Details of the source (file name and format, object URL, query, parameters).
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_version_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    recipe_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    generator_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    job_slot: Mapped[str] = mapped_column(String(20), default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
