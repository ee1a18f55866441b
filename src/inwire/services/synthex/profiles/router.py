"""HTTP endpoints of profiles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response
from fastapi.responses import HTMLResponse

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.jobs import JobOut, JobsDep
from inwire.kit.jobs.router import IdempotencyKeyDep
from inwire.services.synthex.profiles import service
from inwire.services.synthex.profiles.models import Profile
from inwire.services.synthex.profiles.schemas import (
    ProfileCreate,
    ProfileOut,
    ProfileStarted,
    ProfileStatus,
)

router = APIRouter(prefix="/profiles", tags=["profiles"])

Reader = Annotated[Principal, require("profiles:read")]
Creator = Annotated[Principal, require("profiles:create")]
Deleter = Annotated[Principal, require("profiles:delete")]

_query = list_params(
    ("created_at", "completed_at", "rows", "columns", "alerts"),
    filters={"dataset_id": str, "version_id": str, "status": ProfileStatus},
)


def _out(row: Profile, state: dict[str, Any], *, full: bool = False) -> ProfileOut:
    done = row.result is not None
    return ProfileOut(
        id=row.id,
        dataset_id=row.dataset_id,
        version_id=row.version_id,
        job_id=row.job_id,
        status="succeeded" if done else state.get("status", "queued"),
        progress=1.0 if done else float(state.get("progress") or 0.0),
        progress_message=None if done else state.get("progress_message"),
        error=None if done else state.get("error"),
        rows=row.rows,
        columns=row.columns,
        alerts=row.alerts,
        created_by=row.created_by,
        created_at=row.created_at,
        completed_at=row.completed_at,
        profile=row.result if full else None,
    )


@router.post("", status_code=202, response_model=Item[ProfileStarted])
async def start_profile(
    body: ProfileCreate,
    session: SessionDep,
    jobs: JobsDep,
    key: IdempotencyKeyDep,
    who: Creator,
) -> dict[str, Any]:
    """Profile a dataset version (the latest by default) in a `synthex.profile` job."""
    row, job = await service.start(session, jobs, who, body, key)
    state = {"status": job.status.value, "progress": job.progress}
    return {"data": {"profile": _out(row, state), "job": JobOut.model_validate(job)}}


@router.get("", response_model=Page[ProfileOut])
async def list_profiles(
    session: SessionDep, query: Annotated[ListQuery, Depends(_query)], who: Reader
) -> dict[str, Any]:
    """Profiles of your organization, newest first; filter by dataset, version, status."""
    rows, total, states = await service.list_profiles(session, who, query)
    return query.page_of([_out(r, states.get(r.job_id, {})) for r in rows], total)


@router.get("/{profile_id}", response_model=Item[ProfileOut])
async def get_profile(profile_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """A profile: its status while computing, the full JSON profile once succeeded."""
    row, state = await service.get_profile(session, who, profile_id)
    return {"data": _out(row, state, full=True)}


@router.get(
    "/{profile_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The HTML report"}},
)
async def profile_report(profile_id: str, session: SessionDep, who: Reader) -> HTMLResponse:
    """The profile as a self-contained HTML page with charts; 409 until it is computed."""
    from inwire.services.synthex.profiles.report import render_html

    row = await service.finished_profile(session, who, profile_id)
    assert row.result is not None
    page = render_html(row.result, title=f"Profile of {row.dataset_id} ({row.version_id})")
    return HTMLResponse(page)


@router.delete("/{profile_id}", status_code=204)
async def delete_profile(
    profile_id: str, session: SessionDep, jobs: JobsDep, who: Deleter
) -> Response:
    """Delete a profile (a job still computing it is cancelled)."""
    await service.delete_profile(session, jobs, who, profile_id)
    return Response(status_code=204)
