"""Wire shapes of generators and generations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from inwire.kit.api import PatchModel, WireModel, printable
from inwire.kit.jobs.router import JobOut
from inwire.services.synthex.generators.constraints import Constraint

GenerationStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]

GeneratorName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(printable),
]
Description = Annotated[str, Field(max_length=2000)]
MethodName = Annotated[str, Field(min_length=1, max_length=40, examples=["gaussian_copula"])]
#: The most rows one generation makes.
MAX_ROWS = 50_000_000


class GeneratorIn(BaseModel):
    """A new generator: which data to learn from, which method, which rules."""

    model_config = ConfigDict(extra="forbid")

    name: GeneratorName
    description: Description = ""
    dataset_id: str = Field(min_length=1, max_length=40, description="The source dataset")
    version_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="Pin a version of the source; default: its latest at each run",
    )
    method: MethodName = "gaussian_copula"
    params: dict[str, Any] = Field(
        default_factory=dict, description="The method's parameters (see GET /generators/methods)"
    )
    constraints: list[Constraint] = Field(default_factory=list, max_length=100)


class GeneratorUpdate(PatchModel):
    """Changes to a generator (runs already started keep the configuration they had)."""

    name: GeneratorName | None = None
    description: Description | None = None
    version_id: str | None = Field(
        default=None, min_length=1, max_length=40, description="Pin another version"
    )
    unpin: bool | None = Field(default=None, description="true: use the latest version again")
    method: MethodName | None = None
    params: dict[str, Any] | None = None
    constraints: list[Constraint] | None = Field(default=None, max_length=100)


class GeneratorOut(WireModel):
    """A generator."""

    id: str
    name: str
    description: str
    dataset_id: str
    version_id: str | None
    method: str
    params: dict[str, Any]
    constraints: list[dict[str, Any]]
    output_dataset_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class MethodOut(WireModel):
    """A synthesis method and the JSON schema of its parameters."""

    name: str
    description: str
    params_schema: dict[str, Any]
    available: bool = Field(description="False when a dependency (PyTorch) is not installed")


class GenerateIn(BaseModel):
    """What one run makes."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=1, le=MAX_ROWS, description="Synthetic rows to make")
    seed: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="Same seed, same rows; default: random"
    )
    conditions: dict[str, Any] = Field(
        default_factory=dict,
        description="Every row gets these values (column → value; null = missing)",
    )
    evaluate: bool = Field(default=True, description="Evaluate the result against the source")
    holdout: float = Field(
        default=0.2,
        ge=0.0,
        le=0.5,
        description="Share of source rows kept out of the fit for the evaluation",
    )


class GenerationOut(WireModel):
    """One run of a generator: its status, then the version it made and its evaluation."""

    id: str
    generator_id: str
    job_id: str
    status: GenerationStatus
    progress: float = Field(description="The job's progress, 0 to 1")
    progress_message: str | None = None
    error: str | None = Field(default=None, description="Why the job failed")
    source_version_id: str
    method: str
    params: dict[str, Any]
    constraints: list[dict[str, Any]]
    rows: int
    seed: int
    conditions: dict[str, Any]
    holdout: float
    evaluate: bool
    output_dataset_id: str | None = None
    output_version_id: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    privacy: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = Field(
        default=None, description="The evaluation report (GET of one generation)"
    )
    created_by: str
    created_at: datetime
    completed_at: datetime | None = None


class GenerationStarted(WireModel):
    """A generation and the job running it."""

    generation: GenerationOut
    job: JobOut
