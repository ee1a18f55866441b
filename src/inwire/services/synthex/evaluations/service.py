"""Rules of evaluations: which versions to compare, starting the job, reading, deleting."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.errors import Conflict, Invalid, NotFound
from inwire.kit.jobs import Job, JobService
from inwire.services.synthex.data import layout
from inwire.services.synthex.datasets.models import DatasetVersion
from inwire.services.synthex.datasets.repository import VersionRepository
from inwire.services.synthex.evaluations.engine import EvaluationError, check_inputs
from inwire.services.synthex.evaluations.models import Evaluation
from inwire.services.synthex.evaluations.repository import EvaluationRepository
from inwire.services.synthex.evaluations.schemas import EvaluationCreate
from inwire.services.synthex.schema import ColumnSpec

EVALUATE_JOB = "synthex.evaluate"

#: Which request field an engine complaint is about.
_FIELDS = {
    "target": "target",
    "synthetic": "synthetic_version_id",
    "real": "real_version_id",
    None: "synthetic_version_id",
}


async def _version(versions: VersionRepository, version_id: str, field: str) -> DatasetVersion:
    """One of the organization's versions; 404 naming the request field otherwise."""
    try:
        return await versions.get(version_id)
    except NotFound as exc:
        raise NotFound(
            f"Dataset version {version_id!r} not found",
            details=[{"field": field, "message": "no such version in your organization"}],
        ) from exc


def _names(version: DatasetVersion) -> list[str]:
    return [c["name"] for c in version.schema]


async def start(
    session: AsyncSession,
    jobs: JobService,
    who: Principal,
    body: EvaluationCreate,
    idempotency_key: str | None,
) -> tuple[Evaluation, Job]:
    """An evaluation row and the job computing it; the same Idempotency-Key returns the same.

    Versions are checked now (404 for one that is not the organization's, 400 for a holdout
    that is the real or synthetic data itself, a target that cannot be predicted, or no
    column in common), so the job fails only for reasons found in the data.
    """
    versions = VersionRepository(session, who.org)
    real = await _version(versions, body.real_version_id, "real_version_id")
    synthetic = await _version(versions, body.synthetic_version_id, "synthetic_version_id")
    holdout = None
    if body.holdout_version_id is not None:
        if body.holdout_version_id in (real.id, synthetic.id):
            raise Invalid(
                "The holdout must be real rows other than the real and synthetic data",
                details=[{"field": "holdout_version_id", "message": "same version"}],
            )
        holdout = await _version(versions, body.holdout_version_id, "holdout_version_id")
    try:
        check_inputs(
            [ColumnSpec.model_validate(c) for c in real.schema],
            _names(synthetic),
            _names(holdout) if holdout is not None else None,
            body.target,
        )
    except EvaluationError as exc:
        raise Invalid(
            str(exc), details=[{"field": _FIELDS.get(exc.field, exc.field), "message": str(exc)}]
        ) from exc
    job = await jobs.submit(
        session,
        who.org,
        EVALUATE_JOB,
        body.model_dump(mode="json", exclude_none=True),
        who.subject,
        idempotency_key=idempotency_key,
    )
    repo = EvaluationRepository(session, who.org)
    existing = await repo.by_job(job.id)
    if existing is not None:
        return existing, job
    row = Evaluation(
        id=layout.derived_id("ev", job.id),
        source="request",
        real_dataset_id=real.dataset_id,
        real_version_id=real.id,
        synthetic_dataset_id=synthetic.dataset_id,
        synthetic_version_id=synthetic.id,
        holdout_version_id=holdout.id if holdout is not None else None,
        target=body.target,
        seed=body.seed,
        job_id=job.id,
        created_by=who.subject,
    )
    await repo.add(row)
    return row, job


async def list_evaluations(
    session: AsyncSession, who: Principal, query: ListQuery
) -> tuple[Sequence[Evaluation], int, dict[str, Job]]:
    """One page of evaluations, and the jobs computing them."""
    repo = EvaluationRepository(session, who.org)
    rows, total = await repo.search(query)
    return rows, total, await repo.jobs([r.job_id for r in rows])


async def get_evaluation(
    session: AsyncSession, who: Principal, evaluation_id: str
) -> tuple[Evaluation, Job | None]:
    """An evaluation and the job computing it."""
    repo = EvaluationRepository(session, who.org)
    row = await repo.get(evaluation_id)
    return row, (await repo.jobs([row.job_id])).get(row.job_id)


async def finished_evaluation(
    session: AsyncSession, who: Principal, evaluation_id: str
) -> Evaluation:
    """An evaluation whose report is stored; 409 ``NOT_READY`` while it is being computed."""
    row, job = await get_evaluation(session, who, evaluation_id)
    if row.report is None:
        status = job.status.value if job is not None else "unknown"
        raise Conflict(
            f"Evaluation {row.id!r} has no report yet (status {status})",
            details=[{"field": "status", "message": status}],
            code="NOT_READY",
        )
    return row


async def delete_evaluation(
    session: AsyncSession, jobs: JobService, who: Principal, evaluation_id: str
) -> None:
    """Delete an evaluation; its own job, if still computing it, is cancelled (a generation
    job that stored an evaluation is never touched: its report is already there)."""
    row, job = await get_evaluation(session, who, evaluation_id)
    running = job is not None and job.status.value in ("queued", "running")
    if row.report is None and row.source == "request" and running:
        with contextlib.suppress(Conflict):  # it finished meanwhile
            await jobs.cancel(session, who.org, row.job_id)
    await EvaluationRepository(session, who.org).remove(row)
