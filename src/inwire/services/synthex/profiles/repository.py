"""Every query on profiles; a profile's status comes from its job until it completes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import case, select

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.synthex.db import JOB_TABLES
from inwire.services.synthex.profiles.models import Profile

_jobs = JOB_TABLES.jobs

#: ``succeeded`` once the result is stored, else the job's status (queued, running, failed,
#: cancelled): the job record is the one truth about work in progress.
profile_status = case((Profile.completed_at.is_not(None), "succeeded"), else_=_jobs.c.status)


class ProfileRepository(RepositoryBase[Profile]):
    """Profiles of one organization."""

    model = Profile
    noun = "Profile"

    async def search(self, query: ListQuery) -> tuple[Sequence[Profile], int]:
        """One page of profiles; filters: ``dataset_id``, ``version_id``, ``status``."""
        filters = dict(query.filters)
        status = filters.pop("status", None)
        stmt = self.select()
        if status is not None:
            stmt = stmt.join(_jobs, _jobs.c.id == Profile.job_id).where(profile_status == status)
        return await self.page(replace(query, filters=filters), stmt)

    async def by_job(self, job_id: str) -> Profile | None:
        """The profile a job computes."""
        return await self.find(Profile.job_id == job_id)

    async def get_or_none(self, profile_id: str) -> Profile | None:
        """The profile, or None when it was deleted."""
        return await self.find(Profile.id == profile_id)

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Status, progress and error of these jobs, by job id (one query)."""
        if not job_ids:
            return {}
        stmt = select(
            _jobs.c.id, _jobs.c.status, _jobs.c.progress, _jobs.c.progress_message, _jobs.c.error
        ).where(_jobs.c.id.in_(list(job_ids)))
        if self.org_id is not None:
            stmt = stmt.where(_jobs.c.organization_id == self.org_id)
        rows = await self.session.execute(stmt)
        return {r["id"]: dict(r) for r in rows.mappings().all()}
