"""Wire forms of builds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BuildCreate(BaseModel):
    """Package a model version: which model (id or name) and version number."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=250, description="Model id or name")
    version: int = Field(ge=1, description="Version number")
    registry_integration: str | None = Field(
        default=None,
        max_length=40,
        description="Core integration (container_registry) to push the image to; default "
        "the `build_registry_integration` setting",
    )


class Artifact(BaseModel):
    """A build artifact (tar.gz) and where to download it."""

    size: int | None
    sha256: str | None = None
    url: str


class BuildArtifacts(BaseModel):
    """The serving bundle and the container build context."""

    bundle: Artifact
    context: Artifact


class BuildOut(BaseModel):
    """A build: its status (the job's), its artifacts once done, and the image if one was
    built (never a pretend one: `image` is null when no builder is configured)."""

    id: str
    model_id: str
    model_name: str
    version: int
    version_id: str
    status: str
    progress: float
    message: str
    error: str | None
    job_id: str
    image: str | None
    image_digest: str | None
    pushed: bool
    registry_integration: str | None
    requirements: list[str]
    requirements_source: str | None
    manifest: dict[str, Any]
    artifacts: BuildArtifacts | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
