"""HTTP endpoints of training jobs: submit (built-in trainer or script), read, follow, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.errors import Invalid
from inwire.kit.jobs.models import FINAL_STATUSES, JobStatus
from inwire.kit.jobs.router import (
    IdempotencyKeyDep,
    JobLogLineOut,
    JobLogs,
    JobsDep,
    read_logs,
)
from inwire.kit.jobs.service import MAX_LOG_LINES
from inwire.kit.storage import StorageDep
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs import scripts, service
from inwire.services.training.trainjobs.schemas import (
    ScriptSpec,
    TrainingJobCreate,
    TrainingJobOut,
)

router = APIRouter(prefix="/training-jobs", tags=["training jobs"])

Reader = Annotated[Principal, require("jobs:read")]
Creator = Annotated[Principal, require("runs:create")]
Updater = Annotated[Principal, require("jobs:update")]

_query = list_params(("created_at", "updated_at", "status"), filters={"status": JobStatus})
Listing = Annotated[ListQuery, Depends(_query)]

#: Seconds between reads of a followed job's new log lines.
FOLLOW_POLL_SECONDS = 0.25


async def _settings(request: Request) -> TrainingSettings:
    settings: TrainingSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[TrainingSettings, Depends(_settings)]


@router.post("", status_code=202)
async def submit_training_job(
    body: TrainingJobCreate,
    session: SessionDep,
    jobs: JobsDep,
    settings: SettingsDep,
    key: IdempotencyKeyDep,
    who: Creator,
) -> Item[TrainingJobOut]:
    """Train a built-in scikit-learn, XGBoost or LightGBM model on a Synthex dataset version."""
    job = await service.submit_builtin(session, jobs, settings, who, body, key)
    return Item[TrainingJobOut](data=service.view(job))


@router.post("/scripts", status_code=202)
async def submit_script_job(
    session: SessionDep,
    jobs: JobsDep,
    settings: SettingsDep,
    store: StorageDep,
    key: IdempotencyKeyDep,
    who: Creator,
    file: Annotated[UploadFile, File(description="A .py script, or a .zip/.tar.gz package")],
    spec: Annotated[str, Form(description="The ScriptSpec as JSON")],
) -> Item[TrainingJobOut]:
    """Run a user's training script or package in a worker, logging to its own run."""
    try:
        parsed = ScriptSpec.model_validate_json(spec)
    except ValidationError as exc:
        raise Invalid(
            "The spec is not a valid script job",
            details=[
                {"field": "spec." + ".".join(map(str, e["loc"])), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc
    stored = await scripts.store_upload(store, settings, who.org, file, parsed.entry_point)
    job = await service.submit_script(session, jobs, settings, who, parsed, stored, key)
    return Item[TrainingJobOut](data=service.view(job))


@router.get("")
async def list_training_jobs(
    query: Listing, session: SessionDep, jobs: JobsDep, who: Reader
) -> Page[TrainingJobOut]:
    """List the organization's training jobs, newest first; filter by status."""
    rows, total = await service.page(session, jobs, who, query)
    return Page[TrainingJobOut].model_validate(
        query.page_of([service.view(j) for j in rows], total)
    )


@router.get("/{job_id}")
async def get_training_job(
    job_id: str, request: Request, session: SessionDep, jobs: JobsDep, who: Reader
) -> Item[TrainingJobOut]:
    """A training job: status, progress, its run, and its metrics once finished."""
    job = await service.get(session, jobs, who, job_id, request.app.state.db)
    return Item[TrainingJobOut](data=service.view(job))


@router.post("/{job_id}/cancel")
async def cancel_training_job(
    job_id: str, request: Request, session: SessionDep, jobs: JobsDep, who: Updater
) -> Item[TrainingJobOut]:
    """Cancel a training job: at once if queued; a running one stops and its run is killed."""
    await service.get(session, jobs, who, job_id, request.app.state.db)
    return Item[TrainingJobOut](data=service.view(await jobs.cancel(session, who.org, job_id)))


@router.get("/{job_id}/logs", response_model=None)
async def get_training_job_logs(
    job_id: str,
    request: Request,
    session: SessionDep,
    jobs: JobsDep,
    who: Reader,
    after_seq: Annotated[int, Query(ge=0, description="Only lines after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LINES, description="Most lines")] = 500,
    follow: Annotated[bool, Query(description="Stream lines as NDJSON until the job ends")] = False,
) -> JobLogs | StreamingResponse:
    """The job's log lines after ``after_seq``; ``follow=true`` streams them as they come."""
    db = request.app.state.db
    await service.get(session, jobs, who, job_id, db)
    if not follow:
        return await read_logs(session, jobs, who.org, job_id, after_seq, limit)

    async def stream() -> AsyncIterator[bytes]:
        seen = after_seq
        while True:
            async with db.session(write=False) as s:
                # Status first, lines second: a job seen final has all its lines stored.
                status = (await jobs.get(s, who.org, job_id)).status
                lines = await jobs.logs(s, who.org, job_id, seen, MAX_LOG_LINES)
            for line in lines:
                out = JobLogLineOut.model_validate(line).model_dump(mode="json")
                yield (json.dumps(out) + "\n").encode()
                seen = line.seq
            if status in FINAL_STATUSES and len(lines) < MAX_LOG_LINES:
                yield (json.dumps({"status": status.value, "next_after_seq": seen}) + "\n").encode()
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="application/x-ndjson")
