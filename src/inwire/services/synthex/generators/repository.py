"""Every query on generators and generations; a generation's status comes from its job
until it completes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import case, select

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.synthex.db import JOB_TABLES
from inwire.services.synthex.generators.models import Generation, Generator

_jobs = JOB_TABLES.jobs

#: ``succeeded`` once the result is stored, else the job's status.
generation_status = case((Generation.completed_at.is_not(None), "succeeded"), else_=_jobs.c.status)


class GeneratorRepository(RepositoryBase[Generator]):
    """Generators of one organization."""

    model = Generator
    noun = "Generator"

    async def search(self, query: ListQuery) -> tuple[Sequence[Generator], int]:
        """One page of generators; filters: ``method``, ``dataset_id``, ``name``."""
        return await self.page(query)

    async def get_or_none(self, generator_id: str) -> Generator | None:
        """The generator, or None when it was deleted."""
        return await self.find(Generator.id == generator_id)


class GenerationRepository(RepositoryBase[Generation]):
    """Generations (runs) of one organization."""

    model = Generation
    noun = "Generation"

    async def search(self, query: ListQuery) -> tuple[Sequence[Generation], int]:
        """One page of runs; filters: ``generator_id``, ``source_version_id``, ``status``."""
        filters = dict(query.filters)
        status = filters.pop("status", None)
        stmt = self.select()
        if status is not None:
            stmt = stmt.join(_jobs, _jobs.c.id == Generation.job_id).where(
                generation_status == status
            )
        return await self.page(replace(query, filters=filters), stmt)

    async def by_job(self, job_id: str) -> Generation | None:
        """The run a job makes."""
        return await self.find(Generation.job_id == job_id)

    async def get_or_none(self, generation_id: str) -> Generation | None:
        """The run, or None when it (or its generator) was deleted."""
        return await self.find(Generation.id == generation_id)

    async def unfinished_jobs(self, generator_id: str) -> list[str]:
        """Jobs of a generator's runs that have not stored a result."""
        rows = await self.all(
            Generation.generator_id == generator_id, Generation.completed_at.is_(None)
        )
        return [r.job_id for r in rows]

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Status, progress and error of these jobs, by job id (one query)."""
        if not job_ids:
            return {}
        jobs = _jobs.c
        stmt = select(jobs.id, jobs.status, jobs.progress, jobs.progress_message, jobs.error)
        stmt = stmt.where(jobs.id.in_(list(job_ids)))
        if self.org_id is not None:
            stmt = stmt.where(jobs.organization_id == self.org_id)
        rows = await self.session.execute(stmt)
        return {r["id"]: dict(r) for r in rows.mappings().all()}
