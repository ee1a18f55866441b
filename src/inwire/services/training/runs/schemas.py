"""Wire shapes of runs, params, tags, metrics, search and compare."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from inwire.kit.api import PatchModel, WireModel, printable
from inwire.services.training.experiments.schemas import Key, Tags

Status = Literal["scheduled", "running", "finished", "failed", "killed"]
Lifecycle = Literal["active", "archived"]
RunName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=250), AfterValidator(printable)
]
ParamValue = Annotated[str, Field(max_length=8000)]
Params = Annotated[dict[Key, ParamValue], Field(max_length=1000)]
Notes = Annotated[str, Field(max_length=100_000)]
#: Largest step and timestamp: fit a signed 64-bit column on every database.
_INT64 = 2**63 - 1


def wire_float(value: float) -> float | str:
    """A float for JSON: non-finite values as the strings ``NaN``, ``Infinity``,
    ``-Infinity`` (as protobuf's JSON mapping writes them; JSON has no literal for them)."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


class RunSource(BaseModel):
    """Where a run came from: the data, the code and who ran it."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
    dataset_version_id: Annotated[str, Field(max_length=40)] | None = None
    git_commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{4,64}$")] | None = None
    entry_point: Annotated[str, Field(max_length=500)] | None = None
    user: Annotated[str, Field(max_length=200)] | None = None


class RunCreate(BaseModel):
    """A new run in an experiment; it starts ``running`` unless ``scheduled``."""

    model_config = ConfigDict(extra="forbid")
    experiment_id: str
    name: RunName = ""
    status: Literal["scheduled", "running"] = "running"
    start_time: datetime | None = None
    parent_run_id: str | None = None
    notes: Notes = ""
    params: Params = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)
    source: RunSource = Field(default_factory=RunSource)


class RunUpdate(PatchModel):
    """Changes to a run: name, notes, status (checked against the lifecycle), end time."""

    name: RunName | None = None
    notes: Notes | None = None
    status: Status | None = None
    end_time: datetime | None = None


class MetricIn(BaseModel):
    """One metric value. ``timestamp`` defaults to now; ``step`` to 0."""

    model_config = ConfigDict(extra="forbid")
    key: Key
    value: float
    step: Annotated[int, Field(ge=-_INT64, le=_INT64)] = 0
    timestamp: datetime | None = None

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class MetricBatch(BaseModel):
    """Several metric values at once."""

    model_config = ConfigDict(extra="forbid")
    metrics: Annotated[list[MetricIn], Field(min_length=1)]


class RunMetricIn(MetricIn):
    """One metric value of a named run (``POST /metrics`` logs to several runs at once)."""

    run_id: Annotated[str, Field(min_length=1, max_length=40)]


class RunMetricBatch(BaseModel):
    """Metric values of one or several runs."""

    model_config = ConfigDict(extra="forbid")
    metrics: Annotated[list[RunMetricIn], Field(min_length=1)]


class ParamsIn(BaseModel):
    """Params to log; a key already logged must keep its value."""

    model_config = ConfigDict(extra="forbid")
    params: Annotated[Params, Field(min_length=1)]


class TagsIn(BaseModel):
    """Tags to set (others are kept)."""

    model_config = ConfigDict(extra="forbid")
    tags: Annotated[Tags, Field(min_length=1)]


class BatchIn(BaseModel):
    """Metrics, params and tags logged together, all or nothing (MLflow's log-batch)."""

    model_config = ConfigDict(extra="forbid")
    metrics: list[MetricIn] = Field(default_factory=list)
    params: Params = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)


class LatestMetricOut(BaseModel):
    """A metric's latest value."""

    key: str
    value: float | str
    step: int
    timestamp: datetime


class RunOut(WireModel):
    """A run with its params, tags and each metric's latest value."""

    id: str
    experiment_id: str
    name: str
    status: Status
    lifecycle: Lifecycle
    start_time: datetime | None
    end_time: datetime | None
    notes: str
    parent_run_id: str | None
    source: RunSource
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[LatestMetricOut]
    artifact_prefix: str = Field(description="Object-store prefix of the run's artifacts")
    created_by: str
    created_at: datetime
    updated_at: datetime


class LoggedOut(BaseModel):
    """What a logging call stored."""

    metrics: int = 0
    params: int = 0
    tags: int = 0


class MetricPoint(BaseModel):
    """One point of a metric's history."""

    step: int
    value: float | str
    timestamp: datetime


class MetricHistory(BaseModel):
    """A metric's history: every point of one page, or a downsampled series."""

    run_id: str
    key: str
    #: ``none`` (a page of raw points), ``lttb`` or ``minmax``.
    downsampling: Literal["none", "lttb", "minmax"]
    #: Points in the whole series (in the step range asked for).
    total: int
    points: list[MetricPoint]


class SearchIn(BaseModel):
    """A run search: experiments, a filter expression, an order and a page."""

    model_config = ConfigDict(extra="forbid")
    experiment_ids: Annotated[list[str], Field(max_length=100)] = Field(default_factory=list)
    filter: Annotated[str, Field(max_length=10_000)] = ""
    order_by: Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=10)] = Field(
        default_factory=list
    )
    lifecycle: Literal["active", "archived", "all"] = "active"
    page: Annotated[int, Field(ge=1, le=10_000_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=1000)] = 100


class CompareValue(BaseModel):
    """One param or metric across the compared runs."""

    key: str
    #: Value per run id; a run without it is missing from the map.
    values: dict[str, Any]
    #: True when the runs disagree (a run lacking it counts as different).
    differs: bool
    #: For metrics: the run with the lowest and the highest value.
    min_run_id: str | None = None
    max_run_id: str | None = None


class CompareRun(BaseModel):
    """A compared run, in the order asked for."""

    id: str
    name: str
    experiment_id: str
    status: Status
    start_time: datetime | None
    end_time: datetime | None


class RunComparison(BaseModel):
    """Params, tags and latest metrics of several runs side by side."""

    runs: list[CompareRun]
    params: list[CompareValue]
    metrics: list[CompareValue]
    tags: list[CompareValue]
