"""Generators (a synthesis configuration) and generations (one run of it).

A generator names its source dataset (and optionally a pinned version; by default each
run reads the dataset's latest), a method with its validated parameters, and constraints.
A generation snapshots that configuration when it starts, so editing the generator never
changes what a queued or finished run did. Its status is its job's until the job stores
the result (``completed_at``), like profiles.

The synthetic rows are a new dataset version (``output_version_id``), published into the
generator's output dataset with lineage (generator, source version, job). A generator with
``relations`` also makes its child tables, each into an output dataset of its own
(``Generation.tables``). A version pinned
by a generator blocks deleting that version unless forced (then the pin is cleared); the
generations of a deleted source version go with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.kit.db.base import utcnow
from inwire.services.synthex.db import SynthexBase


class Generator(SynthexBase, TenantMixin, TimestampMixin):
    """How to make synthetic data from a dataset: method, parameters, constraints."""

    __tablename__ = "generators"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    method: Mapped[str] = mapped_column(String(40), index=True)
    #: The method's parameters, as validated by its ``Params`` model (defaults filled in).
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Constraint dicts (see ``generators.constraints``).
    constraints: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    #: A pinned source version, or None for the dataset's latest at each run.
    version_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), default=None, index=True
    )
    #: The dataset synthetic versions are published to (made by the first run).
    output_dataset_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: Child tables generated with the source (see ``generators.multitable``): dicts of
    #: dataset_id, version_id, foreign_key, parent_key, parent_columns, method, params and
    #: output_dataset_id (made by the first run).
    relations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(100))


class Generation(SynthexBase, TenantMixin):
    """One run of a generator: a ``synthex.generate`` job and what it made."""

    __tablename__ = "generations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    generator_id: Mapped[str] = mapped_column(
        ForeignKey("generators.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    source_version_id: Mapped[str] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    #: The generator's method, params and constraints when the run started.
    method: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    constraints: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rows: Mapped[int] = mapped_column(BigInteger)
    seed: Mapped[int] = mapped_column(BigInteger)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Share of the source held out of the fit for the evaluation (0: fit on every row).
    holdout: Mapped[float] = mapped_column(default=0.2)
    evaluate: Mapped[bool] = mapped_column(default=True)
    #: The generator's relations when the run started, each with its child version pinned.
    relations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # -- results ---------------------------------------------------------------------------
    output_dataset_id: Mapped[str | None] = mapped_column(String(40), default=None)
    output_version_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    #: The evaluation report of the synthetic rows against the source (and holdout).
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: A differentially private method's privacy report (ε spent, mechanisms).
    privacy: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: Timings and facts of the run (fit and sample seconds, rows fitted).
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: With relations: one entry per table made (the parent first), with its output
    #: version, rows, evaluation and, for a child, referential integrity and cardinality.
    tables: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
