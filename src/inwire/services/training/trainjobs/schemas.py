"""Wire shapes of training jobs: what a submission sends and what the API shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from inwire.kit.jobs.models import JobStatus
from inwire.services.training.trainjobs.trainers import TrainerSpec

#: The job type every training job runs as.
JOB_TYPE = "training.train"

RunName = Annotated[str, Field(max_length=250)]
ParamValue = str | int | float | bool


class DatasetRef(BaseModel):
    """A Synthex dataset version: by id, by number, or ``"latest"`` (resolved at submission)."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)] | int = "latest"


class TrainingJobCreate(BaseModel):
    """A built-in trainer on a Synthex dataset version, logged as a run of an experiment."""

    model_config = ConfigDict(extra="forbid")
    experiment_id: str
    run_name: RunName = ""
    dataset: DatasetRef
    trainer: TrainerSpec
    #: Attempts before the job fails (a lost worker or an unreachable Synthex is retried).
    max_attempts: int = Field(default=2, ge=1, le=5)


class ScriptSpec(BaseModel):
    """A user's script or package: what to run and with which parameters."""

    model_config = ConfigDict(extra="forbid")
    experiment_id: str
    run_name: RunName = ""
    #: For a package (``.zip``/``.tar.gz``): the file to run inside it, or ``module:``
    #: ``package.module`` to run with ``python -m``. A single ``.py`` runs itself.
    entry_point: Annotated[str, StringConstraints(max_length=500)] | None = None
    #: Passed as ``--name value`` arguments and in ``INWIRE_PARAMS`` (JSON).
    parameters: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.-]{0,99}$")], ParamValue
    ] = Field(default_factory=dict, max_length=200)
    #: A Synthex dataset version the script may read (its id in ``INWIRE_DATASET_ID``…).
    dataset: DatasetRef | None = None
    #: Seconds the script may run; at most ``script_timeout_seconds``.
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=1, ge=1, le=5)


class TrainingJobOut(BaseModel):
    """A training job: its state, its run and what it produced."""

    id: str
    kind: Literal["builtin", "script"]
    status: JobStatus
    progress: float
    progress_message: str | None
    experiment_id: str
    run_id: str
    dataset: dict[str, Any] | None
    trainer: dict[str, Any] | None
    script: dict[str, Any] | None
    #: The job's result once it succeeded: final metrics, the model's artifact path.
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
