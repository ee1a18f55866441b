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


def _pin(what: str) -> Any:
    """The field pinning a version of ``what`` (None: its latest at each run)."""
    return Field(
        default=None,
        min_length=1,
        max_length=40,
        description=f"Pin a version of the {what}; default: its latest at each run",
    )


#: The most child tables one generator makes.
MAX_RELATIONS = 10
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]


class RelationIn(BaseModel):
    """A child table generated with the generator's source (its parent) through a key."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(min_length=1, max_length=40, description="The child dataset")
    version_id: str | None = _pin("child")
    foreign_key: ColumnName = Field(description="The child's column naming its parent row")
    parent_key: ColumnName = Field(
        description="The parent's column the foreign key refers to (unique in the parent)"
    )
    parent_columns: list[ColumnName] | None = Field(
        default=None,
        max_length=10,
        description="Parent columns the child rows are conditioned on; default: the "
        "parent's categorical and boolean columns with at most 20 values (up to 3)",
    )
    method: MethodName | None = Field(
        default=None, description="The child's method; default: the generator's"
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="The child method's parameters; default: the generator's (when "
        "method is not given either) or the method's defaults",
    )


class RelationOut(WireModel):
    """A child table of a generator."""

    dataset_id: str
    version_id: str | None
    foreign_key: str
    parent_key: str
    parent_columns: list[str] | None
    method: str | None = Field(description="None: the generator's method")
    params: dict[str, Any] | None = Field(description="None: the generator's parameters")
    output_dataset_id: str | None = None


class GeneratorIn(BaseModel):
    """A new generator: which data to learn from, which method, which rules."""

    model_config = ConfigDict(extra="forbid")

    name: GeneratorName
    description: Description = ""
    dataset_id: str = Field(min_length=1, max_length=40, description="The source dataset")
    version_id: str | None = _pin("source")
    method: MethodName = "gaussian_copula"
    params: dict[str, Any] = Field(
        default_factory=dict, description="The method's parameters (see GET /generators/methods)"
    )
    constraints: list[Constraint] = Field(default_factory=list, max_length=100)
    relations: list[RelationIn] = Field(
        default_factory=list,
        max_length=MAX_RELATIONS,
        description="Child tables generated with the source, joined by foreign keys",
    )


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
    relations: list[RelationIn] | None = Field(
        default=None, max_length=MAX_RELATIONS, description="Replace the child tables"
    )


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
    relations: list[RelationOut] = Field(default_factory=list)
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
    relations: list[dict[str, Any]] = Field(
        default_factory=list, description="The child tables of the run (versions pinned)"
    )
    tables: list[dict[str, Any]] = Field(
        default_factory=list,
        description="With relations: each table made (parent first): output dataset, "
        "version and rows; children add referential integrity, cardinality and (GET of "
        "one generation) their evaluation report",
    )
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
