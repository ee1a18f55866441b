"""Runs and what they log: params, tags, metric values and each metric's latest value.

A run's params, tags and metrics are rows of their own tables, keyed by the run (no
organization column: they are reached only through a run the caller may see). Metric
values are append-only, written in bulk; ``run_latest_metrics`` keeps each key's latest
value (highest step, then timestamp, then value, as MLflow orders them) so search and
compare never scan the history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.training.db import TrainingBase

#: Every status a run can have; the last three are final (a final run may be resumed).
STATUSES: tuple[str, ...] = ("scheduled", "running", "finished", "failed", "killed")
FINAL: frozenset[str] = frozenset({"finished", "failed", "killed"})


class Run(TrainingBase, TenantMixin, TimestampMixin):
    """One execution of training code: its status, times, source and lineage."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_experiment_start", "experiment_id", "start_time"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(250), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: ``active`` or ``archived``; archived runs leave searches unless asked for.
    lifecycle: Mapped[str] = mapped_column(String(10), default="active", index=True)
    start_time: Mapped[datetime | None] = mapped_column(default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    notes: Mapped[str] = mapped_column(Text, default="")
    #: The run this one is nested in (a tuning trial's study run, a fold's parent).
    parent_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None, index=True
    )
    # -- source ----------------------------------------------------------------------------
    #: The Synthex dataset version the run trained on.
    dataset_version_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    git_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    entry_point: Mapped[str | None] = mapped_column(String(500), default=None)
    #: Who ran the code (an OS user, a CI name); ``created_by`` is the principal.
    source_user: Mapped[str | None] = mapped_column(String(200), default=None)
    created_by: Mapped[str] = mapped_column(String(100))


class RunParam(TrainingBase):
    """A parameter of a run: logged once, never changed."""

    __tablename__ = "run_params"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTag(TrainingBase):
    """A tag of a run: set, overwritten and deleted freely."""

    __tablename__ = "run_tags"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(TrainingBase):
    """One logged value of a metric. Duplicate logs (same everything) are kept once.

    ``timestamp`` is milliseconds since the Unix epoch, as MLflow logs it. NaN cannot be
    stored on SQLite (it becomes NULL), so it is ``is_nan`` with a value of 0, as MLflow
    stores it. The primary key's order serves history reads (run, key, step, timestamp)
    straight from the index.
    """

    __tablename__ = "metrics"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float, primary_key=True)
    is_nan: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)


class LatestMetric(TrainingBase):
    """The latest value of one metric of a run, kept up to date on every write."""

    __tablename__ = "run_latest_metrics"
    # No index on (key, value): a search filters and sorts the runs of some experiments,
    # each by a primary-key lookup (run_id, key). With such an index PostgreSQL, before it
    # has statistics of a freshly filled table, scans it for every run (1,000 runs: 220 ms
    # instead of 4 ms).
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
