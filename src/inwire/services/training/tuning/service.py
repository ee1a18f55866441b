"""Rules of tuning jobs: submit, read, list, trials, importances and cancel.

A tuning job is a ``training.tune`` job (``tuning.jobs.tune``) plus a ``tuning_jobs`` row
and a study run in the experiment, made together in the request's transaction.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db.base import utcnow
from inwire.kit.errors import Invalid, NotFound
from inwire.kit.ids import new_id
from inwire.kit.jobs import Job, JobService, JobStatus
from inwire.services.training.runs import service as runs
from inwire.services.training.runs.schemas import RunCreate, RunSource, RunUpdate
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs.data import lineage_of
from inwire.services.training.trainjobs.service import (
    check_trainer,
    dataset_version,
    submitter_of,
)
from inwire.services.training.tuning import study
from inwire.services.training.tuning.models import TuningJob, TuningTrial
from inwire.services.training.tuning.repository import (
    JournalRepository,
    TrialRepository,
    TuningRepository,
)
from inwire.services.training.tuning.schemas import TuningCreate

JOB_TYPE = "training.tune"
#: Tags that tie a run to its tuning job (the study run and every trial's run).
TAG_TUNING_JOB = "inwire.tuning_job_id"
TAG_TRIAL = "inwire.trial_number"
TAG_TRIAL_STATE = "inwire.trial_state"
#: A key runs accept as a param name (``experiments.schemas.Key``).
_KEY = re.compile(r"^[\w\-. /:]{1,250}$")


def study_params(request: TuningCreate) -> dict[str, str]:
    """The study run's params: the search settings and the trainer's fixed params."""
    flat: dict[str, str] = {
        "tuning.metric": request.objective.metric,
        "tuning.direction": request.objective.direction,
        "tuning.sampler": request.sampler.type,
        "tuning.pruner": request.pruner.type,
        "tuning.n_parallel": str(request.n_parallel),
        "tuning.seed": str(request.seed),
        "tuning.space": ",".join(request.space),
        "trainer.framework": request.trainer.framework,
        "trainer.task": request.trainer.task,
        "trainer.target": request.trainer.target,
    }
    if request.budget.n_trials is not None:
        flat["tuning.n_trials"] = str(request.budget.n_trials)
    if request.budget.timeout_seconds is not None:
        flat["tuning.timeout_seconds"] = str(request.budget.timeout_seconds)
    if request.trainer.estimator:
        flat["trainer.estimator"] = request.trainer.estimator
    for key, value in request.trainer.params.items():
        if _KEY.match(key):
            flat[key] = str(value)[:8000]
    return flat


async def create(
    session: AsyncSession,
    who: Principal,
    jobs: JobService,
    request: TuningCreate,
    *,
    settings: TrainingSettings,
    idempotency_key: str | None = None,
) -> tuple[TuningJob, Job]:
    """Check the request against the rules and the dataset version, then ``submit`` it."""
    study.check(request)
    if request.n_parallel > settings.tuning_max_parallel:
        message = (
            f"At most {settings.tuning_max_parallel} parallel trials "
            "(INWIRE_TRAINING_TUNING_MAX_PARALLEL)"
        )
        raise Invalid(message, details=[{"field": "n_parallel", "message": message}])
    version = await dataset_version(settings, who, request.dataset)
    check_trainer(request.trainer, version)
    return await submit(
        session, who, jobs, request, lineage_of(version), idempotency_key=idempotency_key
    )


async def submit(
    session: AsyncSession,
    who: Principal,
    jobs: JobService,
    request: TuningCreate,
    lineage: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> tuple[TuningJob, Job]:
    """Open the study run and queue the job on the version ``lineage`` names.

    With an ``Idempotency-Key`` already used, the tuning job it made is returned.
    """
    tuning_id = new_id("tun")
    job = await jobs.submit(
        session,
        who.org,
        JOB_TYPE,
        {
            "tuning_job_id": tuning_id,
            "dataset": lineage,
            "submitter": submitter_of(who).model_dump(),
        },
        who.subject,
        idempotency_key=idempotency_key,
        max_attempts=request.max_attempts,
    )
    earlier = job.input.get("tuning_job_id")
    if earlier != tuning_id:
        return await TuningRepository(session, who.org).get(str(earlier)), job
    try:
        run = await runs.create(
            session,
            who,
            RunCreate(
                experiment_id=request.experiment_id,
                name=request.name or f"tuning {tuning_id[-8:].lower()}",
                status="scheduled",
                params=study_params(request),
                tags={TAG_TUNING_JOB: tuning_id, "inwire.job_id": job.id},
                source=RunSource(
                    dataset_version_id=lineage.get("dataset_version_id"),
                    entry_point=f"tuning:{request.trainer.framework}",
                    user=who.subject,
                ),
            ),
        )
    except NotFound as exc:
        raise NotFound(
            exc.message, details=[{"field": "experiment_id", "message": "no such experiment"}]
        ) from exc
    row = TuningJob(
        id=tuning_id,
        name=request.name,
        experiment_id=request.experiment_id,
        run_id=run.id,
        job_id=job.id,
        spec=request.model_dump(mode="json"),
        metric=request.objective.metric,
        direction=request.objective.direction,
        sampler=request.sampler.type,
        pruner=request.pruner.type,
        created_by=who.subject,
    )
    await TuningRepository(session, who.org).add(row)
    return row, job


async def get(session: AsyncSession, who: Principal, tuning_job_id: str) -> TuningJob:
    """The organization's tuning job, or 404."""
    return await TuningRepository(session, who.org).get(tuning_job_id)


async def view(session: AsyncSession, row: TuningJob, job: Job) -> dict[str, Any]:
    """A tuning job as ``TuningOut``: its job's status and its trial counts."""
    counts = await TrialRepository(session, row.id).counts()
    best = None
    if row.best_trial_number is not None and row.best_value is not None:
        best = {
            "number": row.best_trial_number,
            "value": row.best_value,
            "params": row.best_params or {},
            "run_id": row.best_run_id,
        }
    return {
        "id": row.id,
        "name": row.name,
        "experiment_id": row.experiment_id,
        "run_id": row.run_id,
        "job_id": row.job_id,
        "status": job.status,
        "progress": job.progress,
        "error": job.error,
        "metric": row.metric,
        "direction": row.direction,
        "sampler": row.sampler,
        "pruner": row.pruner,
        "spec": row.spec,
        "trials": {s: counts.get(s, 0) for s in ("complete", "pruned", "failed", "running")},
        "best": best,
        "importances": row.importances,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


async def read(
    session: AsyncSession, who: Principal, jobs: JobService, tuning_job_id: str
) -> dict[str, Any]:
    """One tuning job's view."""
    row = await get(session, who, tuning_job_id)
    return await view(session, row, await jobs.get(session, who.org, row.job_id))


async def list_page(
    session: AsyncSession, who: Principal, query: ListQuery
) -> tuple[list[dict[str, Any]], int]:
    """One page of the organization's tuning jobs as views."""
    pairs, total = await TuningRepository(session, who.org).page_with_jobs(query)
    return [await view(session, row, job) for row, job in pairs], total


async def trials(
    session: AsyncSession,
    who: Principal,
    tuning_job_id: str,
    *,
    state: str | None,
    page: int,
    per_page: int,
    descending: bool,
) -> tuple[list[TuningTrial], int]:
    """A page of a tuning job's trials by number."""
    await get(session, who, tuning_job_id)
    return await TrialRepository(session, tuning_job_id).page(
        state=state, offset=(page - 1) * per_page, limit=per_page, descending=descending
    )


def _replayed_importances(texts: list[str], name: str, seed: int) -> tuple[dict[str, float], int]:
    import optuna
    from optuna.storages import JournalStorage

    from inwire.services.training.tuning.storage import ReplayJournal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded = optuna.load_study(study_name=name, storage=JournalStorage(ReplayJournal(texts)))
    complete = loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.importances(loaded, seed) or {}, len(complete)


async def importances(
    session: AsyncSession, who: Principal, jobs: JobService, tuning_job_id: str
) -> dict[str, Any]:
    """Parameter importances: stored when the job ended, computed from the journal before."""
    row = await get(session, who, tuning_job_id)
    job = await jobs.get(session, who.org, row.job_id)
    counts = await TrialRepository(session, row.id).counts()
    complete = counts.get("complete", 0)
    if row.importances is not None and job.status.final:
        values: dict[str, float] = row.importances
    elif complete >= 2:
        texts = await JournalRepository(session).read(row.id)
        values, complete = await asyncio.to_thread(
            _replayed_importances, texts, row.id, int(row.spec.get("seed", 0))
        )
    else:
        values = {}
    return {"evaluator": "fanova", "complete_trials": complete, "importances": values}


async def cancel(
    session: AsyncSession, who: Principal, jobs: JobService, tuning_job_id: str
) -> dict[str, Any]:
    """Cancel the search: a queued one at once, a running one after its current trials."""
    row = await get(session, who, tuning_job_id)
    job = await jobs.cancel(session, who.org, row.job_id)
    if job.status == JobStatus.cancelled and row.run_id is not None:
        run = await runs.get(session, who, row.run_id)
        if run.status == "scheduled":
            await runs.update(session, who, row.run_id, RunUpdate(status="killed"))
            row.finished_at = utcnow()
    return await view(session, row, job)
