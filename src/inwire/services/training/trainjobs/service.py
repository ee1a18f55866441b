"""Rules of training jobs: submission checks, the run each job logs to, and the job view.

A training job is a ``training.train`` job of the kit (its row holds the input, status,
progress, log and result) plus the run it logs to, created at submission (``scheduled``)
so its metrics can be watched from the first boosting round. The submitter's organization,
id and role are stored in the input: the job's worker reads Synthex as that user.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.contracts.synthex import DatasetVersion
from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import Database
from inwire.kit.db.engine import after_transaction, writing
from inwire.kit.errors import Conflict, Invalid, InwireError, NotFound
from inwire.kit.jobs.models import Job, JobStatus
from inwire.kit.jobs.service import JobService
from inwire.services.training.runs import service as runs
from inwire.services.training.runs.models import Run
from inwire.services.training.runs.schemas import RunCreate, RunSource, RunUpdate
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs import trainers
from inwire.services.training.trainjobs.data import DelegatedSynthexClient, Submitter, lineage_of
from inwire.services.training.trainjobs.schemas import (
    JOB_TYPE,
    DatasetRef,
    ScriptSpec,
    TrainingJobCreate,
    TrainingJobOut,
)

#: The run tag naming the training job that logs to it.
JOB_TAG = "inwire.training_job"


def submitter_of(who: Principal) -> Submitter:
    """Whom the job acts for: the caller, with the role they hold now."""
    return Submitter(subject=who.subject, role=who.role or (who.roles[0] if who.roles else ""))


async def dataset_version(
    settings: TrainingSettings, who: Principal, ref: DatasetRef
) -> DatasetVersion:
    """The version ``ref`` names, read from Synthex as the caller; 404 names the dataset."""
    try:
        async with DelegatedSynthexClient(settings, who.org, submitter_of(who)) as synthex:
            return await synthex.get_version(ref.id, ref.version)
    except NotFound as exc:
        raise NotFound(
            f"Dataset {ref.id!r} has no version {ref.version!r} (or does not exist)",
            details=[{"field": "dataset", "message": exc.message}],
        ) from exc


def check_trainer(spec: trainers.TrainerSpec, version: DatasetVersion) -> None:
    """400 naming the field when the trainer does not fit the version's columns."""
    columns: dict[str, str] = {c.name: c.type for c in version.schema_}
    try:
        trainers.validate(spec, columns)
    except trainers.InvalidSpec as exc:
        raise Invalid(exc.message, details=[{"field": exc.field, "message": exc.message}]) from exc
    target = columns[spec.target]
    if spec.task == "regression" and target not in ("integer", "float"):
        message = f"Regression needs a numeric target; {spec.target!r} is {target}"
        raise Invalid(message, details=[{"field": "trainer.target", "message": message}])


def _entry_point(spec: trainers.TrainerSpec) -> str:
    estimator = f"/{spec.estimator}" if spec.estimator else ""
    return f"builtin:{spec.framework}{estimator}"


async def _run(
    session: AsyncSession,
    who: Principal,
    experiment_id: str,
    name: str,
    source: RunSource,
) -> Run:
    try:
        return await runs.create(
            session,
            who,
            RunCreate(experiment_id=experiment_id, name=name, status="scheduled", source=source),
        )
    except NotFound as exc:
        raise NotFound(
            exc.message, details=[{"field": "experiment_id", "message": "no such experiment"}]
        ) from exc


def _request_of(job_input: dict[str, Any]) -> dict[str, Any]:
    """What the caller asked for: the input without the run and the upload's own key."""
    out = {k: v for k, v in job_input.items() if k != "run_id"}
    if isinstance(out.get("script"), dict):
        out["script"] = {k: v for k, v in out["script"].items() if k != "key"}
    return out


async def _queue(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    run_source: tuple[str, str, RunSource],
    job_input: dict[str, Any],
    idempotency_key: str | None,
    max_attempts: int,
) -> Job:
    """Create the run and queue the job; a repeated Idempotency-Key returns the first job.

    The key is looked up first: each submission would otherwise make a run of its own.
    """
    if idempotency_key is not None:
        earlier = await jobs.repository(session, who.org).by_idempotency_key(idempotency_key)
        if earlier is not None:
            same = _request_of(earlier.input) == _request_of(job_input)
            if earlier.type != JOB_TYPE or not same:
                raise Conflict(
                    "Idempotency-Key was already used for a different request",
                    details=[{"field": "Idempotency-Key", "message": f"used by {earlier.id}"}],
                    code="IDEMPOTENCY_KEY_REUSED",
                )
            return earlier
    experiment_id, name, source = run_source
    run = await _run(session, who, experiment_id, name, source)
    job = await jobs.submit(
        session,
        who.org,
        JOB_TYPE,
        {**job_input, "run_id": run.id},
        who.subject,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
    )
    await runs.set_tags(session, who, run.id, {JOB_TAG: job.id})
    return job


async def submit_builtin(
    session: AsyncSession,
    jobs: JobService,
    settings: TrainingSettings,
    who: Principal,
    body: TrainingJobCreate,
    idempotency_key: str | None,
) -> Job:
    """Check the trainer against the version's schema, create the run, queue the job."""
    version = await dataset_version(settings, who, body.dataset)
    check_trainer(body.trainer, version)
    lineage = lineage_of(version)
    source = RunSource(
        dataset_version_id=version.id, entry_point=_entry_point(body.trainer), user=who.subject
    )
    job_input = {
        "kind": "builtin",
        "experiment_id": body.experiment_id,
        "dataset": lineage,
        "trainer": body.trainer.model_dump(mode="json"),
        "submitter": submitter_of(who).model_dump(),
    }
    return await _queue(
        session,
        jobs,
        who,
        (body.experiment_id, body.run_name, source),
        job_input,
        idempotency_key,
        body.max_attempts,
    )


async def submit_script(
    session: AsyncSession,
    jobs: JobService,
    settings: TrainingSettings,
    who: Principal,
    spec: ScriptSpec,
    script: dict[str, Any],
    idempotency_key: str | None,
) -> Job:
    """Create the run and queue a script job (the file is already in the object store)."""
    lineage = None
    if spec.dataset is not None:
        lineage = lineage_of(await dataset_version(settings, who, spec.dataset))
    timeout = min(
        spec.timeout_seconds or settings.script_timeout_seconds, settings.script_timeout_seconds
    )
    entry = spec.entry_point or script["filename"]
    source = RunSource(
        dataset_version_id=lineage["dataset_version_id"] if lineage else None,
        entry_point=entry[:500],
        user=who.subject,
    )
    job_input = {
        "kind": "script",
        "experiment_id": spec.experiment_id,
        "dataset": lineage,
        "script": {
            **script,
            "entry_point": spec.entry_point,
            "parameters": spec.parameters,
            "timeout_seconds": timeout,
        },
        "submitter": submitter_of(who).model_dump(),
    }
    return await _queue(
        session,
        jobs,
        who,
        (spec.experiment_id, spec.run_name, source),
        job_input,
        idempotency_key,
        spec.max_attempts,
    )


async def get(
    session: AsyncSession, jobs: JobService, who: Principal, job_id: str, db: Database
) -> Job:
    """The organization's training job; 404 for other jobs and other organizations'.

    A job that ended without its worker closing the run (the worker was killed, the job
    then failed or was cancelled) closes it here: the run never stays ``running``.
    """
    try:
        job = await jobs.get(session, who.org, job_id)
    except NotFound as exc:
        raise NotFound(f"Training job {job_id!r} not found") from exc
    if job.type != JOB_TYPE:
        raise NotFound(f"Training job {job_id!r} not found")
    ended = {JobStatus.failed: "failed", JobStatus.cancelled: "killed"}.get(job.status)
    if ended is None:
        return job
    run_id = job.input["run_id"]
    if writing():
        await _close_run(session, who, run_id, ended)
    elif await _open_run(session, who, run_id):
        # A read-only transaction cannot write (SQLite refuses: see the kit's query_only);
        # the run is closed in a writing transaction of its own as soon as this one ends,
        # before the response is sent.
        async def close() -> None:
            async with db.session() as own:
                await _close_run(own, who, run_id, ended)

        after_transaction(session, close)
    return job


async def _open_run(session: AsyncSession, who: Principal, run_id: str) -> bool:
    try:
        run = await runs.get(session, who, run_id)
    except NotFound:
        return False
    return run.status in ("scheduled", "running")


async def _close_run(session: AsyncSession, who: Principal, run_id: str, ended: str) -> None:
    if await _open_run(session, who, run_id):
        try:
            await runs.update(session, who, run_id, RunUpdate(status=ended))
        except InwireError:
            return


async def page(
    session: AsyncSession, jobs: JobService, who: Principal, query: ListQuery
) -> tuple[Sequence[Job], int]:
    """One page of the organization's training jobs."""
    filtered = dataclasses.replace(query, filters={**query.filters, "type": JOB_TYPE})
    return await jobs.list(session, who.org, filtered)


def view(job: Job) -> TrainingJobOut:
    """The API's view of a training job."""
    data = job.input
    return TrainingJobOut(
        id=job.id,
        kind=data["kind"],
        status=job.status,
        progress=job.progress,
        progress_message=job.progress_message,
        experiment_id=data["experiment_id"],
        run_id=data["run_id"],
        dataset=data.get("dataset"),
        trainer=data.get("trainer"),
        script=data.get("script"),
        result=job.result,
        error=job.error,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
