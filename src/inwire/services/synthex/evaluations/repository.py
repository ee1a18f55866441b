"""Every query on evaluations; an evaluation's status comes from its job until it completes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import case, or_

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.kit.jobs.models import Job
from inwire.kit.jobs.repository import JobRepository
from inwire.services.synthex.db import JOB_TABLES
from inwire.services.synthex.evaluations.models import Evaluation

_jobs = JOB_TABLES.jobs

#: ``succeeded`` once the report is stored, else the job's status (queued, running, failed,
#: cancelled): the job record is the one truth about work in progress.
evaluation_status = case((Evaluation.completed_at.is_not(None), "succeeded"), else_=_jobs.c.status)


class EvaluationRepository(RepositoryBase[Evaluation]):
    """Evaluations of one organization."""

    model = Evaluation
    noun = "Evaluation"

    async def search(self, query: ListQuery) -> tuple[Sequence[Evaluation], int]:
        """One page; ``dataset_id`` matches the real or synthetic dataset, ``version_id``
        any of the three versions, ``status`` the evaluation's status; other filters are
        equality on their column."""
        filters = dict(query.filters)
        status = filters.pop("status", None)
        dataset_id = filters.pop("dataset_id", None)
        version_id = filters.pop("version_id", None)
        stmt = self.select()
        if dataset_id is not None:
            stmt = stmt.where(
                or_(
                    Evaluation.real_dataset_id == dataset_id,
                    Evaluation.synthetic_dataset_id == dataset_id,
                )
            )
        if version_id is not None:
            stmt = stmt.where(
                or_(
                    Evaluation.real_version_id == version_id,
                    Evaluation.synthetic_version_id == version_id,
                    Evaluation.holdout_version_id == version_id,
                )
            )
        if status is not None:
            # Outer: an evaluation outlives its job record (a generation job's, or a purged one).
            stmt = stmt.outerjoin(_jobs, _jobs.c.id == Evaluation.job_id).where(
                evaluation_status == status
            )
        return await self.page(replace(query, filters=filters), stmt)

    async def by_job(self, job_id: str) -> Evaluation | None:
        """The evaluation a job computes."""
        return await self.find(Evaluation.job_id == job_id)

    async def get_or_none(self, evaluation_id: str) -> Evaluation | None:
        """The evaluation, or None when it was deleted."""
        return await self.find(Evaluation.id == evaluation_id)

    async def jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs computing these evaluations, by id (one query)."""
        found = await JobRepository(self.session, JOB_TABLES, self.org_id).by_ids(job_ids)
        return {job.id: job for job in found}
