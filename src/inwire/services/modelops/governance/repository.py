"""Every query of governance: approvals, audit entries, production intervals, policies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.modelops.governance.models import (
    Approval,
    AuditEntry,
    GovernancePolicy,
    ProductionInterval,
)


def _window(stmt: Select[Any], column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        stmt = stmt.where(column >= since)
    if until is not None:
        stmt = stmt.where(column < until)
    return stmt


class ApprovalRepository(RepositoryBase[Approval]):
    """Approvals of one organization."""

    model = Approval
    noun = "Approval"

    async def pending(self, kind: str, payload_key: str) -> Approval | None:
        """The pending approval of the same request, if any."""
        return await self.find(
            Approval.kind == kind, Approval.payload_key == payload_key, Approval.status == "pending"
        )

    async def locked(self, approval_id: str) -> Approval:
        """The approval, its row locked until the transaction ends (PostgreSQL; SQLite
        serialises writers anyway); 404 when absent."""
        result = await self.session.execute(
            self.select(Approval.id == approval_id).with_for_update()
        )
        row: Approval | None = result.scalars().first()
        if row is None:
            return await self.get(approval_id)  # raises the usual 404
        return row


class AuditRepository(RepositoryBase[AuditEntry]):
    """Audit entries of one organization."""

    model = AuditEntry
    noun = "Audit entry"

    async def page_entries(
        self, query: ListQuery, *, since: datetime | None, until: datetime | None
    ) -> tuple[Sequence[AuditEntry], int]:
        """One page of entries; equality filters from ``query``, the time window here."""
        return await self.page(query, _window(self.select(), AuditEntry.created_at, since, until))


class IntervalRepository(RepositoryBase[ProductionInterval]):
    """Production intervals of one organization."""

    model = ProductionInterval
    noun = "Production interval"

    async def open_ones(
        self,
        *,
        model_id: str | None = None,
        version_ids: Sequence[str] | None = None,
        source: str | None = None,
        deployment_id: str | None = None,
    ) -> Sequence[ProductionInterval]:
        """The intervals that have not ended, narrowed by the arguments given."""
        where: list[ColumnElement[bool]] = [ProductionInterval.ended_at.is_(None)]
        if model_id is not None:
            where.append(ProductionInterval.model_id == model_id)
        if version_ids is not None:
            where.append(ProductionInterval.version_id.in_(list(version_ids)))
        if source is not None:
            where.append(ProductionInterval.source == source)
        if deployment_id is not None:
            where.append(ProductionInterval.deployment_id == deployment_id)
        return await self.all(*where)

    async def page_of_model(
        self,
        query: ListQuery,
        model_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[Sequence[ProductionInterval], int]:
        """One page of a model's intervals; ``since``/``until`` keep those overlapping."""
        stmt = self.select(ProductionInterval.model_id == model_id)
        if since is not None:
            stmt = stmt.where(
                (ProductionInterval.ended_at.is_(None)) | (ProductionInterval.ended_at > since)
            )
        if until is not None:
            stmt = stmt.where(ProductionInterval.started_at < until)
        return await self.page(query, stmt)


class PolicyRepository(RepositoryBase[GovernancePolicy]):
    """The governance policy of one organization (at most one row)."""

    model = GovernancePolicy
    noun = "Governance policy"

    async def current(self) -> GovernancePolicy | None:
        """The stored policy, or None for the defaults."""
        return await self.find()
