"""Wire shapes of profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inwire.kit.api import WireModel
from inwire.kit.jobs.router import JobOut

ProfileStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ProfileSettings(BaseModel):
    """How much the profile computes (see ``engine.ProfileOptions``); defaults suit most."""

    model_config = ConfigDict(extra="forbid")

    sample_rows: int = Field(
        default=200_000,
        ge=1_000,
        le=5_000_000,
        description="Rows sampled for Spearman, Cramér's V and the correlation ratio",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of that sample")
    bins: int = Field(default=20, ge=2, le=200, description="Bins per histogram")
    top_values: int = Field(default=10, ge=1, le=100, description="Top values per column")
    max_correlation_columns: int = Field(
        default=30, ge=2, le=200, description="Most numeric (and categorical) columns correlated"
    )


class ProfileCreate(BaseModel):
    """Which version to profile: a dataset's latest, or one of its versions."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(min_length=1, max_length=40)
    version_id: str | None = Field(
        default=None, min_length=1, max_length=40, description="Default: the latest version"
    )
    options: ProfileSettings | None = None


class ProfileOut(WireModel):
    """A profile: its status while the job runs, its summary and result when done."""

    id: str
    dataset_id: str
    version_id: str
    job_id: str
    status: ProfileStatus
    progress: float = Field(description="The job's progress, 0 to 1")
    progress_message: str | None = None
    error: str | None = Field(default=None, description="Why the job failed")
    rows: int | None = None
    columns: int | None = None
    alerts: int | None = Field(default=None, description="Number of alerts")
    created_by: str
    created_at: datetime
    completed_at: datetime | None = None
    profile: dict[str, Any] | None = Field(
        default=None, description="The profile (GET of one profile, once succeeded)"
    )


class ProfileStarted(WireModel):
    """A profile and the job computing it."""

    profile: ProfileOut
    job: JobOut
