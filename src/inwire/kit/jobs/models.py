"""The job record: the ``jobs`` and ``job_logs`` tables a service adds to its own MetaData.

The tables are plain SQLAlchemy Core ``Table`` objects rather than ORM classes so that
several services can hold their own job tables in one process (``inwire up --one-process``)
and so that a worker subprocess can rebuild them from their names alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import RowMapping

from inwire.kit.db.base import UTCDateTime

#: Longest accepted ``Idempotency-Key``.
IDEMPOTENCY_KEY_MAX = 200
#: Longest stored progress message and error; longer ones are cut.
MESSAGE_MAX = 500
ERROR_MAX = 2000
#: Longest stored log line; longer ones are cut.
LOG_LINE_MAX = 4000


class JobStatus(StrEnum):
    """Where a job is in its life. ``succeeded``, ``failed`` and ``cancelled`` are final."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def final(self) -> bool:
        """Whether the job will never run again."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


@dataclass(frozen=True)
class JobTables:
    """The two tables of one service's job record."""

    jobs: Table
    logs: Table


def job_tables(
    metadata: MetaData, *, jobs_name: str = "jobs", logs_name: str = "job_logs"
) -> JobTables:
    """Declare the job tables in a service's own ``metadata`` (next to its models).

    Call it once per service, where its models are declared, so Alembic sees the tables::

        JOB_TABLES = job_tables(SynthexBase.metadata)
    """
    jobs = Table(
        jobs_name,
        metadata,
        Column("id", String(40), primary_key=True),
        Column("organization_id", String(40), nullable=False, index=True),
        Column("type", String(100), nullable=False, index=True),
        Column("input", JSON, nullable=False),
        Column("status", String(16), nullable=False, default=JobStatus.queued.value),
        Column("progress", Float, nullable=False, default=0.0),
        Column("progress_message", String(MESSAGE_MAX), nullable=True),
        Column("result", JSON, nullable=True),
        Column("error", Text, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("max_attempts", Integer, nullable=False, default=3),
        Column("next_attempt_at", UTCDateTime(), nullable=True),
        Column("heartbeat_at", UTCDateTime(), nullable=True),
        Column("worker_id", String(100), nullable=True),
        Column("idempotency_key", String(IDEMPOTENCY_KEY_MAX), nullable=True),
        Column("created_by", String(100), nullable=False),
        Column("cancel_requested", Boolean, nullable=False, default=False),
        # Number of log lines so far: each append claims the next sequence numbers with one
        # UPDATE, so a job's lines are numbered 1, 2, 3… without gaps or races.
        Column("log_seq", Integer, nullable=False, default=0),
        Column("created_at", UTCDateTime(), nullable=False, index=True),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("started_at", UTCDateTime(), nullable=True),
        Column("finished_at", UTCDateTime(), nullable=True),
        UniqueConstraint("organization_id", "idempotency_key"),
        Index(f"ix_{jobs_name}_status_next_attempt_at", "status", "next_attempt_at"),
    )
    logs = Table(
        logs_name,
        metadata,
        Column(
            "job_id",
            String(40),
            ForeignKey(f"{jobs_name}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("at", UTCDateTime(), nullable=False),
        Column("level", String(10), nullable=False, default="info"),
        Column("line", Text, nullable=False),
    )
    return JobTables(jobs=jobs, logs=logs)


@dataclass(frozen=True)
class Job:
    """One job as stored: what to run, for whom, and how far it got."""

    id: str
    organization_id: str
    type: str
    input: dict[str, Any]
    status: JobStatus
    progress: float
    progress_message: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    heartbeat_at: datetime | None
    worker_id: str | None
    idempotency_key: str | None
    created_by: str
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping | dict[str, Any]) -> Job:
        """Build from a ``jobs`` row (extra columns are ignored)."""
        values = {name: row[name] for name in JOB_FIELDS}
        values["status"] = JobStatus(values["status"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)


JOB_FIELDS: tuple[str, ...] = tuple(Job.__dataclass_fields__)


@dataclass(frozen=True)
class JobLogLine:
    """One line a job logged; ``seq`` counts from 1 within the job."""

    seq: int
    at: datetime
    level: str
    line: str
