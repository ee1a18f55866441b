"""Wire shapes of tuning jobs: the search space, objective, budget, sampler and pruner."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inwire.kit.api import WireModel
from inwire.kit.jobs import JobStatus
from inwire.services.training.experiments.schemas import Key
from inwire.services.training.runs.schemas import RunName
from inwire.services.training.trainjobs.schemas import DatasetRef
from inwire.services.training.trainjobs.trainers import TrainerSpec

SamplerName = Literal["tpe", "random", "grid", "cmaes"]
PrunerName = Literal["median", "successive_halving", "none"]
Direction = Literal["minimize", "maximize"]
TrialState = Literal["running", "complete", "pruned", "failed"]
Choice = Annotated[str, Field(max_length=1000)] | bool | int | float | None

_STRICT = ConfigDict(extra="forbid")


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


class FloatParam(BaseModel):
    """A float in ``[low, high]``; ``log`` samples on a log scale, ``step`` discretises."""

    model_config = _STRICT
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if not _finite(self.low, self.high, self.step):
            raise ValueError("low, high and step must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, not {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log-scale range cannot have a step")
        return self


class IntParam(BaseModel):
    """An integer in ``[low, high]`` (both included), every ``step``-th, or on a log scale."""

    model_config = _STRICT
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, not {self.low}")
        if self.log and self.step != 1:
            raise ValueError("a log-scale range cannot have a step")
        return self


class CategoricalParam(BaseModel):
    """One of a list of values (strings, numbers, booleans or null)."""

    model_config = _STRICT
    type: Literal["categorical"]
    choices: Annotated[list[Choice], Field(max_length=1000)]

    @model_validator(mode="after")
    def _choices(self) -> Self:
        if not self.choices:
            raise ValueError("choices must not be empty")
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError("choices must be distinct")
        if not all(_finite(c) for c in self.choices if isinstance(c, float)):
            raise ValueError("choices must be finite numbers")
        return self


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(BaseModel):
    """The validation metric a trial is judged by, and whether lower or higher is better."""

    model_config = _STRICT
    metric: Key
    direction: Direction


class Budget(BaseModel):
    """When the search stops: after ``n_trials`` finished trials and/or ``timeout_seconds``
    of wall-clock time since the job first started (whichever comes first)."""

    model_config = _STRICT
    n_trials: Annotated[int, Field(ge=1, le=10_000)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=30 * 86_400)] | None = None


class Sampler(BaseModel):
    """How the next params are chosen. ``n_startup_trials`` random trials come first (TPE,
    CMA-ES)."""

    model_config = _STRICT
    type: SamplerName = "tpe"
    n_startup_trials: Annotated[int, Field(ge=0, le=1000)] | None = None


class Pruner(BaseModel):
    """How hopeless trials are stopped early from their intermediate values.

    ``median``: stop a trial whose best value so far is worse than the median of earlier
    trials at the same step, after ``n_startup_trials`` trials and ``n_warmup_steps`` steps.
    ``successive_halving``: asynchronous successive halving (Li et al., 2020, "A System for
    Massively Parallel Hyperparameter Tuning"), rungs of ``min_resource`` steps times powers
    of ``reduction_factor``.
    """

    model_config = _STRICT
    type: PrunerName = "median"
    n_startup_trials: Annotated[int, Field(ge=0, le=1000)] = 5
    n_warmup_steps: Annotated[int, Field(ge=0)] = 0
    min_resource: Annotated[int, Field(ge=1)] | None = None
    reduction_factor: Annotated[int, Field(ge=2, le=100)] = 3


class TuningCreate(BaseModel):
    """A tuning job: a built-in trainer on a dataset version, searched over ``space``."""

    model_config = _STRICT
    experiment_id: str
    name: RunName = ""
    dataset: DatasetRef
    trainer: TrainerSpec
    space: Annotated[dict[Key, Param], Field(min_length=1, max_length=100)]
    objective: Objective
    budget: Budget = Field(default_factory=Budget)
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    #: Trials run at the same time, as threads of the job (capped by the service).
    n_parallel: Annotated[int, Field(ge=1, le=64)] = 1
    seed: int = 0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3


class TrialOut(WireModel):
    """One trial: sampled params, state, objective value and the run that recorded it."""

    number: int
    state: TrialState
    value: float | None
    params: dict[str, Any]
    run_id: str | None
    last_step: int | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class BestTrial(BaseModel):
    """The best complete trial so far."""

    number: int
    value: float
    params: dict[str, Any]
    run_id: str | None


class TrialCounts(BaseModel):
    """How many trials ended in each state (running ones included)."""

    complete: int
    pruned: int
    failed: int
    running: int


class TuningOut(BaseModel):
    """A tuning job: its request, its job's status, the best trial and the trial counts."""

    id: str
    name: str
    experiment_id: str
    run_id: str | None
    job_id: str
    status: JobStatus
    progress: float
    error: str | None
    metric: str
    direction: Direction
    sampler: SamplerName
    pruner: PrunerName
    spec: dict[str, Any]
    trials: TrialCounts
    best: BestTrial | None
    importances: dict[str, float] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ImportancesOut(BaseModel):
    """Parameter importances of a study (fANOVA), each in [0, 1], summing to 1."""

    evaluator: str
    complete_trials: int
    importances: dict[str, float]
