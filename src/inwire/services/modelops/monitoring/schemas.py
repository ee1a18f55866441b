"""Wire forms of monitoring: statistics, references, thresholds, drift reports, alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LatencyOut(BaseModel):
    """Request latency in seconds (percentiles within 10 %: a log-spaced histogram)."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


class HistogramOut(BaseModel):
    """Numeric predictions: counts per bin (estimated from a uniform sample)."""

    edges: list[float]
    counts: list[int]
    mean: float


class PredictionsOut(BaseModel):
    """What was predicted: ``classes`` (counts) or ``numbers`` (histogram)."""

    kind: str | None
    classes: dict[str, int] | None
    histogram: HistogramOut | None


class TimelinePoint(BaseModel):
    """One step of the period."""

    start: datetime
    requests: int
    errors: int
    error_rate: float | None
    rows: int
    latency_p50: float | None


class TrafficStats(BaseModel):
    """Traffic of some windows."""

    requests: int
    errors: int
    error_rate: float | None
    rows: int
    latency_seconds: LatencyOut
    predictions: PredictionsOut
    timeline: list[TimelinePoint]


class VersionStats(TrafficStats):
    """One version's traffic."""

    version_id: str


class MonitoringOut(TrafficStats):
    """A deployment's traffic in a period, overall and per version."""

    deployment_id: str
    since: datetime
    until: datetime
    versions: list[VersionStats]


class ThresholdsIn(BaseModel):
    """Per-deployment overrides of the drift and alert thresholds (null: the setting)."""

    model_config = ConfigDict(extra="forbid")
    psi: float | None = Field(default=None, gt=0, le=100)
    p_value: float | None = Field(default=None, gt=0, lt=1)
    min_rows: int | None = Field(default=None, ge=2, le=1_000_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)


class ThresholdsOut(BaseModel):
    """The thresholds in force, and the deployment's own overrides."""

    psi: float
    p_value: float
    min_rows: int
    error_rate: float
    overrides: dict[str, float]


class ReferenceOut(BaseModel):
    """The deployment's drift reference: where it comes from and its columns."""

    source: str | None = Field(
        description="upload, dataset (a version's training data), or null: each version's "
        "input example"
    )
    rows: int
    detail: dict[str, Any] = Field(
        default_factory=dict, description="for dataset: version_id, dataset_id, dataset_version_id"
    )
    columns: dict[str, str] = Field(description="column -> number or category")
    updated_at: datetime | None = None
    updated_by: str | None = None


class TrainingDataIn(BaseModel):
    """Use a model version's training data (its lineage's Synthex dataset version)."""

    model_config = ConfigDict(extra="forbid")
    version_id: str = Field(min_length=1, max_length=40, description="Model version id")


class DriftIn(BaseModel):
    """A drift check now: the period (default the last hour) and the version (default
    every version with traffic)."""

    model_config = ConfigDict(extra="forbid")
    since: datetime | None = None
    until: datetime | None = None
    version_id: str | None = Field(default=None, max_length=40)


class DriftReportOut(BaseModel):
    """One drift check of one version."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    deployment_id: str
    version_id: str
    since: datetime
    until: datetime
    rows: int
    reference_rows: int
    drifted: bool
    features: list[dict[str, Any]]
    thresholds: dict[str, Any]
    trigger: str
    created_at: datetime


class AlertOut(BaseModel):
    """A threshold crossed."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    deployment_id: str
    version_id: str
    kind: str
    message: str
    report_id: str | None
    details: dict[str, Any]
    created_at: datetime
