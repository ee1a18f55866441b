"""Recording security events."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.ids import new_id
from inwire.services.core.audit.models import AuditEvent

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


async def record_now(sessionmaker: Any, action: str, **kwargs: Any) -> None:
    """Record in a session of its own, for failures whose request rolls back."""
    async with sessionmaker() as session:
        await record(session, action, **kwargs)
        await session.commit()
