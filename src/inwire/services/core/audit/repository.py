"""Queries on the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.core.audit.models import AuditEvent


class AuditRepository(RepositoryBase[AuditEvent]):
    """Audit events of one organization."""

    model = AuditEvent
    noun = "Audit event"

    async def page_events(
        self,
        query: ListQuery,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[Sequence[AuditEvent], int]:
        """One page of events; equality filters come from ``query``, the time window here."""
        stmt = self.select()
        if since is not None:
            stmt = stmt.where(AuditEvent.created_at >= since)
        if until is not None:
            stmt = stmt.where(AuditEvent.created_at < until)
        return await self.page(query, stmt)
