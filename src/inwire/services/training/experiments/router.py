"""HTTP endpoints of experiments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import BackgroundTasks, Depends, Query, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.storage import StorageDep
from inwire.services.training.artifacts.service import delete_run_artifacts
from inwire.services.training.experiments import service
from inwire.services.training.experiments.schemas import (
    ExperimentCreate,
    ExperimentOut,
    ExperimentUpdate,
)

router = APIRouter(prefix="/experiments", tags=["experiments"])

Reader = Annotated[Principal, require("experiments:read")]
Creator = Annotated[Principal, require("experiments:create")]
Updater = Annotated[Principal, require("experiments:update")]
Deleter = Annotated[Principal, require("experiments:delete")]

_query = list_params(
    ("created_at", "updated_at", "name"),
    filters={
        "lifecycle": Literal["active", "archived", "all"],
        "name": str,
        "created_by": str,
    },
)


def _out(row: Any) -> ExperimentOut:
    return ExperimentOut.model_validate(row)


@router.post("", status_code=201, response_model=Item[ExperimentOut])
async def create_experiment(
    data: ExperimentCreate, session: SessionDep, who: Creator
) -> dict[str, Any]:
    """Create an experiment; its name must be new in the organization (409 otherwise)."""
    return {"data": _out(await service.create(session, who, data))}


@router.get("", response_model=Page[ExperimentOut])
async def list_experiments(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_query)],
    who: Reader,
    q: Annotated[str | None, Query(max_length=250, description="Name contains")] = None,
    tag: Annotated[
        str | None, Query(max_length=500, description="Has this tag: `key` or `key=value`")
    ] = None,
) -> dict[str, Any]:
    """Experiments of your organization (active ones unless `lifecycle` says otherwise)."""
    rows, total = await service.list_page(session, who, query, q=q, tag=tag)
    return query.page_of([_out(r) for r in rows], total)


@router.get("/{experiment_id}", response_model=Item[ExperimentOut])
async def get_experiment(experiment_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One experiment."""
    return {"data": _out(await service.get(session, who, experiment_id))}


@router.patch("/{experiment_id}", response_model=Item[ExperimentOut])
async def update_experiment(
    experiment_id: str, data: ExperimentUpdate, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Rename an experiment, change its description, or replace its tags."""
    return {"data": _out(await service.update(session, who, experiment_id, data))}


@router.post("/{experiment_id}/archive", response_model=Item[ExperimentOut])
async def archive_experiment(
    experiment_id: str, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Archive an experiment: it leaves lists and takes no new runs; its runs stay."""
    return {"data": _out(await service.set_lifecycle(session, who, experiment_id, "archived"))}


@router.post("/{experiment_id}/restore", response_model=Item[ExperimentOut])
async def restore_experiment(
    experiment_id: str, session: SessionDep, who: Updater
) -> dict[str, Any]:
    """Restore an archived experiment."""
    return {"data": _out(await service.set_lifecycle(session, who, experiment_id, "active"))}


@router.delete("/{experiment_id}", status_code=204)
async def delete_experiment(
    experiment_id: str,
    session: SessionDep,
    store: StorageDep,
    background: BackgroundTasks,
    who: Deleter,
) -> Response:
    """Delete an experiment with all its runs, their metrics and their artifacts."""
    run_ids = await service.delete(session, who, experiment_id)
    for run_id in run_ids:
        background.add_task(delete_run_artifacts, store, who.org, run_id)
    return Response(status_code=204)
