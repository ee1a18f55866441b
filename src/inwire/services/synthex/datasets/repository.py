"""Every query on datasets and their versions."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import String, Table, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.kit.db.repository import like_escape
from inwire.services.synthex.datasets.models import Dataset, DatasetVersion
from inwire.services.synthex.db import JOB_TABLES


class DatasetRepository(RepositoryBase[Dataset]):
    """Datasets of one organization."""

    model = Dataset
    noun = "Dataset"

    async def search(
        self, query: ListQuery, *, q: str | None = None, tag: str | None = None
    ) -> tuple[Sequence[Dataset], int]:
        """One page of datasets; ``q`` matches the name (case-insensitive), ``tag`` a tag."""
        stmt = self.select()
        if q:
            stmt = stmt.where(Dataset.name.ilike(f"%{like_escape(q)}%", escape="\\"))
        if tag:
            # Tags are a JSON list serialised by json.dumps on both databases, so an element
            # appears in the stored text exactly as json.dumps(tag), quotes included.
            pattern = f"%{like_escape(json.dumps(tag))}%"
            stmt = stmt.where(cast(Dataset.tags, String).like(pattern, escape="\\"))
        return await self.page(query, stmt)

    async def lock(self, dataset_id: str) -> Dataset:
        """The dataset, locked for update on PostgreSQL (serialises version numbering)."""
        result = await self.session.execute(self.select(Dataset.id == dataset_id).with_for_update())
        row: Dataset | None = result.scalars().first()
        if row is None:
            return await self.get(dataset_id)
        return row


class VersionRepository(RepositoryBase[DatasetVersion]):
    """Versions of one organization's datasets."""

    model = DatasetVersion
    noun = "Dataset version"

    async def of_dataset(
        self, dataset_id: str, query: ListQuery
    ) -> tuple[Sequence[DatasetVersion], int]:
        """One page of a dataset's versions."""
        return await self.page(query, self.select(DatasetVersion.dataset_id == dataset_id))

    async def by_number(self, dataset_id: str, number: int) -> DatasetVersion | None:
        """Version ``number`` of a dataset."""
        return await self.find(
            DatasetVersion.dataset_id == dataset_id, DatasetVersion.number == number
        )

    async def by_job(self, job_id: str, slot: str = "") -> DatasetVersion | None:
        """The version a job published (in this slot), if it did."""
        return await self.find(DatasetVersion.job_id == job_id, DatasetVersion.job_slot == slot)

    async def latest(self, dataset_id: str) -> DatasetVersion | None:
        """The highest-numbered version of a dataset."""
        result = await self.session.execute(
            self.select(DatasetVersion.dataset_id == dataset_id)
            .order_by(DatasetVersion.number.desc())
            .limit(1)
        )
        row: DatasetVersion | None = result.scalars().first()
        return row

    async def next_number(self, dataset_id: str) -> int:
        """The number the dataset's next version gets."""
        highest = await self.session.scalar(
            self.scope(
                select(func.max(DatasetVersion.number)).where(
                    DatasetVersion.dataset_id == dataset_id
                )
            )
        )
        return int(highest or 0) + 1

    async def ids_of(self, dataset_id: str) -> list[str]:
        """Ids of every version of a dataset."""
        result = await self.session.execute(
            self.scope(select(DatasetVersion.id).where(DatasetVersion.dataset_id == dataset_id))
        )
        return list(result.scalars().all())

    async def children(self, version_ids: Collection[str]) -> Sequence[DatasetVersion]:
        """Versions derived from any of ``version_ids`` (their parent), outside that set."""
        if not version_ids:
            return []
        return await self.all(
            DatasetVersion.parent_version_id.in_(list(version_ids)),
            DatasetVersion.id.not_in(list(version_ids)),
        )

    async def referencing(
        self, table: Table, column: str, ids: Collection[str], limit: int = 20
    ) -> list[dict[str, Any]]:
        """Rows of another Synthex table whose ``column`` names one of ``ids``."""
        col = table.c[column]
        stmt = select(table).where(col.in_(list(ids)))
        if "organization_id" in table.c and self.org_id is not None:
            stmt = stmt.where(table.c.organization_id == self.org_id)
        rows = await self.session.execute(stmt.limit(limit))
        return [dict(r) for r in rows.mappings().all()]

    async def count_referencing(self, table: Table, column: str, ids: Collection[str]) -> int:
        """How many rows of ``table`` name one of ``ids`` in ``column``."""
        stmt = select(func.count()).select_from(table).where(table.c[column].in_(list(ids)))
        if "organization_id" in table.c and self.org_id is not None:
            stmt = stmt.where(table.c.organization_id == self.org_id)
        return int(await self.session.scalar(stmt) or 0)

    async def clear_references(self, table: Table, column: str, ids: Collection[str]) -> int:
        """Set ``column`` to NULL where it names one of ``ids``; returns rows changed."""
        stmt = update(table).where(table.c[column].in_(list(ids))).values({column: None})
        if "organization_id" in table.c and self.org_id is not None:
            stmt = stmt.where(table.c.organization_id == self.org_id)
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)


class ActiveJobRepository:
    """Queued and running Synthex jobs, looked up by the ids their input names."""

    def __init__(self, session: AsyncSession, org_id: str) -> None:
        self.session = session
        self.org_id = org_id

    async def mentioning(self, ids: Collection[str], limit: int = 20) -> list[dict[str, Any]]:
        """Unfinished jobs of the organization whose input names one of ``ids``."""
        if not ids:
            return []
        jobs = JOB_TABLES.jobs
        text = cast(jobs.c.input, String)
        mentions = or_(*[text.like(f"%{like_escape(json.dumps(i))}%", escape="\\") for i in ids])
        stmt = (
            select(jobs.c.id, jobs.c.type, jobs.c.status)
            .where(
                jobs.c.organization_id == self.org_id,
                jobs.c.status.in_(["queued", "running"]),
                mentions,
            )
            .limit(limit)
        )
        rows = await self.session.execute(stmt)
        return [dict(r) for r in rows.mappings().all()]
