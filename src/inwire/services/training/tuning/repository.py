"""Every query on tuning jobs, their trials and their Optuna journals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.kit.jobs.models import Job
from inwire.services.training.db import JOB_TABLES
from inwire.services.training.tuning.models import TuningJob, TuningJournalEntry, TuningTrial


class TuningRepository(RepositoryBase[TuningJob]):
    """Tuning jobs of one organization."""

    model = TuningJob
    noun = "Tuning job"

    async def page_with_jobs(self, query: ListQuery) -> tuple[list[tuple[TuningJob, Job]], int]:
        """One page of tuning jobs with their jobs; ``status`` filters on the job's status."""
        jobs = JOB_TABLES.jobs
        filters = dict(query.filters)
        stmt = self.select().join(jobs, jobs.c.id == TuningJob.job_id)
        status = filters.pop("status", None)
        if status is not None:
            stmt = stmt.where(jobs.c.status == status)
        for name, value in filters.items():
            stmt = stmt.where(getattr(TuningJob, name) == value)
        total = await self.count(stmt)
        column = getattr(TuningJob, query.sort)
        order = column.desc() if query.order == "desc" else column.asc()
        tie = TuningJob.id.desc() if query.order == "desc" else TuningJob.id.asc()
        rows = list(
            (
                await self.session.execute(
                    stmt.order_by(order, tie).offset(query.offset).limit(query.per_page)
                )
            ).scalars()
        )
        found = await self.jobs_of([r.job_id for r in rows])
        return [(r, found[r.job_id]) for r in rows], total

    async def jobs_of(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The job records of these tuning jobs, by job id."""
        if not job_ids:
            return {}
        jobs = JOB_TABLES.jobs
        rows = await self.session.execute(
            select(jobs).where(jobs.c.id.in_(list(job_ids)), jobs.c.organization_id == self.org_id)
        )
        return {row.id: Job.from_row(row) for row in rows.mappings()}

    async def set_values(self, tuning_job_id: str, **values: Any) -> None:
        """Update columns of one tuning job."""
        await self.session.execute(
            update(TuningJob)
            .where(TuningJob.id == tuning_job_id, TuningJob.organization_id == self.org_id)
            .values(**values)
        )


class TrialRepository:
    """Trials of one tuning job (reached only through a tuning job the caller may see)."""

    def __init__(self, session: AsyncSession, tuning_job_id: str) -> None:
        self.session = session
        self.tuning_job_id = tuning_job_id

    async def get(self, number: int) -> TuningTrial | None:
        """One trial by number, or None."""
        return await self.session.get(TuningTrial, (self.tuning_job_id, number))

    async def save(self, number: int, **values: Any) -> TuningTrial:
        """Insert or update trial ``number`` with ``values``."""
        row = await self.get(number)
        if row is None:
            row = TuningTrial(tuning_job_id=self.tuning_job_id, number=number)
            self.session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        await self.session.flush()
        return row

    async def page(
        self, *, state: str | None, offset: int, limit: int, descending: bool
    ) -> tuple[list[TuningTrial], int]:
        """Trials by number, optionally in one state."""
        stmt = select(TuningTrial).where(TuningTrial.tuning_job_id == self.tuning_job_id)
        if state is not None:
            stmt = stmt.where(TuningTrial.state == state)
        total = await self.session.scalar(
            select(func.count()).select_from(stmt.order_by(None).subquery())
        )
        order = TuningTrial.number.desc() if descending else TuningTrial.number.asc()
        rows = await self.session.execute(stmt.order_by(order).offset(offset).limit(limit))
        return list(rows.scalars()), int(total or 0)

    async def counts(self) -> dict[str, int]:
        """Trials per state."""
        rows = await self.session.execute(
            select(TuningTrial.state, func.count())
            .where(TuningTrial.tuning_job_id == self.tuning_job_id)
            .group_by(TuningTrial.state)
        )
        return {str(state): int(n) for state, n in rows.all()}


class JournalRepository:
    """The Optuna journal of tuning jobs (no tenant column: reached through a tuning job)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(self, tuning_job_id: str, start: int = 0) -> list[str]:
        """Entries numbered ``start`` and up, in order."""
        rows = await self.session.execute(
            select(TuningJournalEntry.entry)
            .where(
                TuningJournalEntry.tuning_job_id == tuning_job_id,
                TuningJournalEntry.seq >= start,
            )
            .order_by(TuningJournalEntry.seq)
        )
        return list(rows.scalars())

    async def append(self, tuning_job_id: str, entries: Sequence[str]) -> None:
        """Append entries after the last one (IntegrityError if another writer took them)."""
        last = await self.session.scalar(
            select(func.max(TuningJournalEntry.seq)).where(
                TuningJournalEntry.tuning_job_id == tuning_job_id
            )
        )
        start = -1 if last is None else int(last)
        self.session.add_all(
            TuningJournalEntry(tuning_job_id=tuning_job_id, seq=start + 1 + i, entry=text)
            for i, text in enumerate(entries)
        )
        await self.session.flush()
