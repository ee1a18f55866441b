"""Recording security events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import Database
from inwire.kit.db.engine import after_transaction
from inwire.kit.errors import Invalid
from inwire.kit.ids import new_id
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.audit.repository import AuditRepository

log = logging.getLogger("inwire.core.audit")


class ClientInfo:
    """Where a request came from, for the audit trail and throttling."""

    def __init__(self, ip: str = "", user_agent: str = "") -> None:
        self.ip = ip
        self.user_agent = user_agent[:300]


async def record(
    session: AsyncSession,
    action: str,
    *,
    org_id: str = "",
    actor_id: str = "",
    actor_kind: str = "user",
    target_type: str = "",
    target_id: str = "",
    outcome: str = "success",
    client: ClientInfo | None = None,
    **details: Any,
) -> None:
    """Add an audit event to the session (it commits with the request)."""
    client = client or ClientInfo()
    session.add(
        AuditEvent(
            id=new_id("aud"),
            organization_id=org_id,
            action=action,
            outcome=outcome,
            actor_id=actor_id,
            actor_kind=actor_kind,
            target_type=target_type,
            target_id=target_id,
            ip=client.ip,
            user_agent=client.user_agent,
            details=details,
        )
    )
    log.info(
        "audit %s %s",
        action,
        outcome,
        extra={"audit_action": action, "outcome": outcome, "actor": actor_id, "target": target_id},
    )


def record_after(session: AsyncSession, db: Database, action: str, **kwargs: Any) -> None:
    """Record once the request's transaction has ended, for failures whose request rolls back."""

    async def write() -> None:
        async with db.session() as own:
            await record(own, action, **kwargs)

    after_transaction(session, write)


async def record_by(
    session: AsyncSession,
    principal: Principal,
    action: str,
    *,
    target_type: str = "",
    target_id: str = "",
    client: ClientInfo | None = None,
    **details: Any,
) -> None:
    """Record an action a principal took in its own organization."""
    await record(
        session,
        action,
        org_id=principal.org,
        actor_id=principal.subject,
        actor_kind=principal.kind,
        target_type=target_type,
        target_id=target_id,
        client=client,
        **details,
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def list_events(
    session: AsyncSession,
    principal: Principal,
    query: ListQuery,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[AuditEvent], int]:
    """A page of the caller's organization's events, in an optional time window."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise Invalid(
            "since must be before until",
            details=[{"field": "since", "message": "must be before until"}],
        )
    return await AuditRepository(session, principal.org).page_events(
        query, since=since, until=until
    )


async def get_event(session: AsyncSession, principal: Principal, event_id: str) -> AuditEvent:
    """One event of the caller's organization."""
    return await AuditRepository(session, principal.org).get(event_id)
