"""HTTP endpoints of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.services.core.audit import service
from inwire.services.core.audit.schemas import AuditEventOut

router = APIRouter(prefix="/audit-events", tags=["audit"])

_events_query = list_params(
    ("created_at",),
    filters={
        "action": str,
        "outcome": Literal["success", "failure"],
        "actor_id": str,
        "actor_kind": Literal["user", "service"],
        "target_type": str,
        "target_id": str,
    },
)


@router.get("", response_model=Page[AuditEventOut])
async def list_audit_events(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_events_query)],
    principal: Annotated[Principal, require("audit:read")],
    since: Annotated[
        datetime | None, Query(description="Only events at or after this time")
    ] = None,
    until: Annotated[datetime | None, Query(description="Only events before this time")] = None,
) -> dict[str, Any]:
    """Security events of your organization (logins, role changes, keys), newest first."""
    rows, total = await service.list_events(session, principal, query, since=since, until=until)
    return query.page_of([AuditEventOut.model_validate(r) for r in rows], total)


@router.get("/{event_id}", response_model=Item[AuditEventOut])
async def get_audit_event(
    event_id: str,
    session: SessionDep,
    principal: Annotated[Principal, require("audit:read")],
) -> dict[str, Any]:
    """One security event of your organization."""
    return {
        "data": AuditEventOut.model_validate(await service.get_event(session, principal, event_id))
    }
