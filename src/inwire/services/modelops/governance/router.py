"""HTTP endpoints of governance: approvals, the audit trail, production history, policy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, PrincipalDep, require
from inwire.kit.db import SessionDep
from inwire.services.modelops.governance import audit, gate, history, policy
from inwire.services.modelops.governance.schemas import (
    ApprovalOut,
    ApprovalStatus,
    AuditEntryOut,
    Decision,
    PolicyIn,
    PolicyOut,
    ProductionIntervalOut,
)
from inwire.services.modelops.models import service as registry

approvals_router = APIRouter(prefix="/approvals", tags=["governance"])
audit_router = APIRouter(prefix="/audit", tags=["governance"])
governance_router = APIRouter(prefix="/governance", tags=["governance"])
history_router = APIRouter(prefix="/models", tags=["governance"])
routers = [approvals_router, audit_router, governance_router, history_router]

Reader = Annotated[Principal, require("approvals:read")]
AuditReader = Annotated[Principal, require("audit:read")]
ModelReader = Annotated[Principal, require("models:read")]

Since = Annotated[datetime | None, Query(description="At or after this time (RFC 3339)")]
Until = Annotated[datetime | None, Query(description="Before this time (RFC 3339)")]

_approvals_query = list_params(
    ("created_at", "updated_at"),
    filters={"status": ApprovalStatus, "kind": str, "requested_by": str},
)
_audit_query = list_params(
    ("created_at",),
    filters={"actor": str, "action": str, "resource_type": str, "resource_id": str},
)
_history_query = list_params(("started_at",))


def _approval(row: Any) -> dict[str, Any]:
    return {"data": ApprovalOut.model_validate(row)}


# -- approvals --------------------------------------------------------------------------------


@approvals_router.get("", response_model=Page[ApprovalOut])
async def list_approvals(
    session: SessionDep, query: Annotated[ListQuery, Depends(_approvals_query)], who: Reader
) -> dict[str, Any]:
    """Approval requests of your organization, newest first; filter by status, kind or
    requester (`requested_by`)."""
    rows, total = await gate.list_approvals(session, who, query)
    return query.page_of([ApprovalOut.model_validate(r) for r in rows], total)


@approvals_router.get("/{approval_id}", response_model=Item[ApprovalOut])
async def get_approval(approval_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """One approval request, with its decision and the outcome of its action."""
    return _approval(await gate.get_approval(session, who, approval_id))


@approvals_router.post("/{approval_id}/approve", response_model=Item[ApprovalOut])
async def approve(
    approval_id: str, session: SessionDep, who: PrincipalDep, data: Decision | None = None
) -> dict[str, Any]:
    """Approve a pending request and run its action (approvers only, never the requester):
    `approved` with the action's `result`, or `failed` with its `error`."""
    row = await gate.approve(session, who, approval_id, data.comment if data else "")
    return _approval(row)


@approvals_router.post("/{approval_id}/reject", response_model=Item[ApprovalOut])
async def reject(
    approval_id: str, session: SessionDep, who: PrincipalDep, data: Decision | None = None
) -> dict[str, Any]:
    """Reject a pending request, with a comment (approvers only, never the requester)."""
    row = await gate.reject(session, who, approval_id, data.comment if data else "")
    return _approval(row)


@approvals_router.post("/{approval_id}/cancel", response_model=Item[ApprovalOut])
async def cancel(approval_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """Withdraw your own pending request."""
    return _approval(await gate.cancel(session, who, approval_id))


# -- audit ------------------------------------------------------------------------------------


@audit_router.get("", response_model=Page[AuditEntryOut])
async def list_audit_entries(
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_audit_query)],
    who: AuditReader,
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    """Who did what to which resource in ModelOps, newest first (admins and owners);
    filter by actor, action, resource and time."""
    rows, total = await audit.list_entries(session, who, query, since=since, until=until)
    return query.page_of([AuditEntryOut.model_validate(r) for r in rows], total)


@audit_router.get("/{entry_id}", response_model=Item[AuditEntryOut])
async def get_audit_entry(entry_id: str, session: SessionDep, who: AuditReader) -> dict[str, Any]:
    """One audit entry (admins and owners)."""
    return {"data": AuditEntryOut.model_validate(await audit.get_entry(session, who, entry_id))}


# -- policy -----------------------------------------------------------------------------------


@governance_router.get("/policy", response_model=Item[PolicyOut])
async def get_policy(session: SessionDep, who: Reader) -> dict[str, Any]:
    """Your organization's governance policy."""
    return {"data": await policy.get_policy(session, who.org)}


@governance_router.put("/policy", response_model=Item[PolicyOut])
async def put_policy(data: PolicyIn, session: SessionDep, who: PrincipalDep) -> dict[str, Any]:
    """Set your organization's governance policy (approvers: admins and owners)."""
    return {"data": await policy.set_policy(session, who, data)}


# -- production history -----------------------------------------------------------------------


@history_router.get("/{model}/production-history", response_model=Page[ProductionIntervalOut])
async def production_history(
    model: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_history_query)],
    who: ModelReader,
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    """What served production for this model, from when to when, through which stage,
    alias or deployment, who changed it and why; newest first."""
    row = await registry.get_model(session, who, model)
    rows, total = await history.model_history(
        session, who.org, row.id, query, since=since, until=until
    )
    return query.page_of([ProductionIntervalOut.model_validate(r) for r in rows], total)
