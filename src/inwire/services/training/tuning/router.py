"""HTTP endpoints of tuning jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.jobs import IdempotencyKeyDep, JobsDep, JobStatus
from inwire.services.training.runs.router import SettingsDep
from inwire.services.training.tuning import service
from inwire.services.training.tuning.schemas import (
    ImportancesOut,
    TrialOut,
    TrialState,
    TuningCreate,
    TuningOut,
)

router = APIRouter(prefix="/tuning-jobs", tags=["tuning"])

Reader = Annotated[Principal, require("runs:read")]
Creator = Annotated[Principal, require("runs:create")]
Updater = Annotated[Principal, require("runs:update")]

_query = list_params(
    ("created_at", "updated_at", "name"),
    filters={"status": JobStatus, "experiment_id": str, "created_by": str},
)


@router.post("", status_code=202, response_model=Item[TuningOut])
async def create_tuning_job(
    data: TuningCreate,
    settings: SettingsDep,
    session: SessionDep,
    jobs: JobsDep,
    key: IdempotencyKeyDep,
    who: Creator,
) -> dict[str, Any]:
    """Start a hyperparameter search: a built-in trainer on a dataset version, each trial a
    run nested in the study's run; follow it here or through its job."""
    row, job = await service.create(
        session,
        who,
        jobs,
        data,
        settings=settings,
        idempotency_key=key,
    )
    return {"data": await service.view(session, row, job)}


@router.get("", response_model=Page[TuningOut])
async def list_tuning_jobs(
    session: SessionDep, query: Annotated[ListQuery, Depends(_query)], who: Reader
) -> dict[str, Any]:
    """Tuning jobs of your organization, newest first; filter by status or experiment."""
    rows, total = await service.list_page(session, who, query)
    return query.page_of(rows, total)


@router.get("/{tuning_job_id}", response_model=Item[TuningOut])
async def get_tuning_job(
    tuning_job_id: str, session: SessionDep, jobs: JobsDep, who: Reader
) -> dict[str, Any]:
    """A tuning job: status, progress, trial counts, best trial (value, params, run)."""
    return {"data": await service.read(session, who, jobs, tuning_job_id)}


@router.get("/{tuning_job_id}/trials", response_model=Page[TrialOut])
async def list_trials(
    tuning_job_id: str,
    session: SessionDep,
    who: Reader,
    page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    state: Annotated[TrialState | None, Query(description="Only trials in this state")] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="By trial number")] = "asc",
) -> dict[str, Any]:
    """The trials so far, by number: params, state, objective value and run."""
    rows, total = await service.trials(
        session,
        who,
        tuning_job_id,
        state=state,
        page=page,
        per_page=per_page,
        descending=order == "desc",
    )
    return {
        "data": [TrialOut.model_validate(r) for r in rows],
        "meta": {"page": page, "per_page": per_page, "total": total},
    }


@router.get("/{tuning_job_id}/importances", response_model=Item[ImportancesOut])
async def get_importances(
    tuning_job_id: str, session: SessionDep, jobs: JobsDep, who: Reader
) -> dict[str, Any]:
    """Parameter importances (fANOVA) once two trials completed; empty before."""
    return {"data": await service.importances(session, who, jobs, tuning_job_id)}


@router.post("/{tuning_job_id}/cancel", response_model=Item[TuningOut])
async def cancel_tuning_job(
    tuning_job_id: str, session: SessionDep, jobs: JobsDep, who: Updater
) -> dict[str, Any]:
    """Cancel a search: trials running now stop at their next step; finished ones stay."""
    return {"data": await service.cancel(session, who, jobs, tuning_job_id)}
