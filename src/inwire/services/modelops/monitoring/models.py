"""Monitoring's tables: per-minute windows of traffic, references, drift reports, alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.modelops.db import ModelOpsBase


class MonitoringWindow(ModelOpsBase, TenantMixin):
    """One minute of one deployment version's traffic, aggregated by the recorder.

    Counts add up exactly; latency is a log-spaced histogram (mergeable, percentiles
    within the bucket width); predictions are class counts and a bounded sample of the
    numbers; inputs a bounded uniform sample of the rows (the drift check reads it).
    """

    __tablename__ = "monitoring_windows"
    __table_args__ = (
        UniqueConstraint("deployment_id", "version_id", "window_start"),
        Index("ix_monitoring_windows_deployment_start", "deployment_id", "window_start"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[str] = mapped_column(String(40))
    #: The window's first instant (UTC, on a minute boundary).
    window_start: Mapped[datetime] = mapped_column()
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    #: Rows predicted (a request may carry several).
    rows: Mapped[int] = mapped_column(Integer, default=0)
    latency_sum: Mapped[float] = mapped_column(Float, default=0.0)
    latency_max: Mapped[float] = mapped_column(Float, default=0.0)
    #: ``{bucket index: count}`` of request latencies (see ``sketch.LATENCY_EDGES``).
    latency_buckets: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    #: ``{class: count}`` of categorical predictions (strings, booleans, integers).
    prediction_counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    #: A uniform sample of the numeric predictions and how many it was drawn from.
    prediction_sample: Mapped[list[float]] = mapped_column(JSON, default=list, deferred=True)
    prediction_seen: Mapped[int] = mapped_column(Integer, default=0)
    #: A uniform sample of the input rows and how many it was drawn from.
    input_sample: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, deferred=True)
    input_seen: Mapped[int] = mapped_column(Integer, default=0)


class MonitorConfig(ModelOpsBase, TenantMixin, TimestampMixin):
    """A deployment's drift reference (columns of rows) and threshold overrides."""

    __tablename__ = "monitoring_configs"
    deployment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: ``upload`` or ``dataset`` (a version's training data): where the reference came from.
    reference_source: Mapped[str | None] = mapped_column(String(20), default=None)
    #: ``{column: [values]}``: the reference rows, column by column (bounded).
    reference: Mapped[dict[str, list[Any]] | None] = mapped_column(JSON, default=None)
    reference_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: Where a ``dataset`` reference was read: model version, dataset and dataset version.
    reference_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Overrides of the drift thresholds (``psi``, ``p_value``, ``min_rows``, ``error_rate``).
    thresholds: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str] = mapped_column(String(100), default="")


class DriftReport(ModelOpsBase, TenantMixin, TimestampMixin):
    """One drift check of a deployment version's inputs against the reference."""

    __tablename__ = "monitoring_drift_reports"
    __table_args__ = (Index("ix_monitoring_drift_reports_deployment", "deployment_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[str] = mapped_column(String(40))
    since: Mapped[datetime] = mapped_column()
    until: Mapped[datetime] = mapped_column()
    rows: Mapped[int] = mapped_column(Integer, default=0)
    reference_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: Where a ``dataset`` reference was read: model version, dataset and dataset version.
    reference_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    drifted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: One entry per feature: kind, PSI, test, statistic, p-value, drifted.
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    thresholds: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    #: ``on_demand`` or ``periodic``.
    trigger: Mapped[str] = mapped_column(String(12), default="on_demand")


class MonitoringAlert(ModelOpsBase, TenantMixin, TimestampMixin):
    """A threshold crossed: input drift of some features, or an error rate too high."""

    __tablename__ = "monitoring_alerts"
    __table_args__ = (Index("ix_monitoring_alerts_deployment", "deployment_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[str] = mapped_column(String(40))
    #: ``drift`` or ``error_rate``.
    kind: Mapped[str] = mapped_column(String(20), index=True)
    message: Mapped[str] = mapped_column(Text)
    report_id: Mapped[str | None] = mapped_column(String(40), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
