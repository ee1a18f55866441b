"""Wire shapes of evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inwire.kit.api import WireModel
from inwire.kit.jobs.router import JobOut

EvaluationStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
EvaluationSource = Literal["request", "generation"]


class EvaluationCreate(BaseModel):
    """Which versions to compare; any two versions of your organization's datasets."""

    model_config = ConfigDict(extra="forbid")

    real_version_id: str = Field(
        min_length=1, max_length=40, description="The real data (what a generator learnt from)"
    )
    synthetic_version_id: str = Field(
        min_length=1, max_length=40, description="The data to judge against it"
    )
    holdout_version_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description=(
            "Real rows the generator never saw: the privacy baseline and the ML-utility test "
            "set. Without one, privacy has no baseline and ML utility splits the real data."
        ),
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Column to predict for ML utility (numeric, categorical or boolean)",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of every sample")


class EvaluationSummary(BaseModel):
    """The headline figures (also in ``report.summary``)."""

    quality: float | None = Field(description="Mean of column shapes and pair trends, 0-1")
    detection: float | None = Field(description="1 - max(0, 2*AUC - 1) of a classifier, 0-1")
    ml_utility_ratio: float | None = Field(description="TSTR / TRTR headline metric")
    exact_copy_rate: float | None = Field(description="Share of synthetic rows equal to a real")
    dcr_close_share: float | None = Field(
        description="Share of synthetic rows closer than the holdout's 5th percentile DCR"
    )
    membership_risk: float | None = Field(description="max(0, 2*AUC - 1) of the attack, 0-1")


class EvaluationOut(WireModel):
    """An evaluation: status while computing, headline figures and (one by id) the report."""

    id: str
    source: EvaluationSource
    status: EvaluationStatus
    progress: float = Field(description="The job's progress, 0 to 1")
    progress_message: str | None = None
    error: str | None = Field(default=None, description="Why the job failed")
    real_dataset_id: str
    real_version_id: str | None = Field(description="None once that version was deleted")
    synthetic_dataset_id: str
    synthetic_version_id: str
    holdout_version_id: str | None
    holdout_share: float | None = Field(
        description="Share of the real version held out by a generation job"
    )
    target: str | None
    seed: int
    generator_id: str | None
    job_id: str
    summary: EvaluationSummary | None = Field(description="Set once succeeded")
    created_by: str
    created_at: datetime
    completed_at: datetime | None
    report: dict[str, Any] | None = Field(
        default=None, description="The full report (GET of one evaluation, once succeeded)"
    )


class EvaluationStarted(WireModel):
    """An evaluation and the job computing it."""

    evaluation: EvaluationOut
    job: JobOut
