"""Approvals: protected actions wait for an approver who is not the one who asked.

A caller about to run a protected action calls :func:`gate`; when the action is
protected, an approval request is stored (or the same pending one found) and the caller
answers 202 with it. An approver (:data:`APPROVER_PERMISSION`, which organization admins
and owners hold) approves it: the action's handler, registered by kind with
:func:`register_action`, runs then with the stored payload, as the approver, and its
result (or its error) is stored on the approval. Requests, decisions and outcomes are
audited and published (``inwire.modelops.approval.requested`` / ``approved`` /
``rejected`` / ``cancelled``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal, ensure
from inwire.kit.db import utcnow
from inwire.kit.errors import Conflict, Forbidden, InwireError
from inwire.kit.events import CloudEvent
from inwire.kit.ids import new_id
from inwire.services.modelops.db import OUTBOX
from inwire.services.modelops.governance import audit
from inwire.services.modelops.governance.history import production_changed
from inwire.services.modelops.governance.models import Approval
from inwire.services.modelops.governance.repository import ApprovalRepository
from inwire.services.modelops.governance.schemas import ApprovalOut

#: Who may approve or reject: organization admins and owners hold it (``kit.auth``'s
#: ``admin`` action), members and viewers do not.
APPROVER_PERMISSION = "approvals:admin"

__all__ = [
    "APPROVER_PERMISSION",
    "approve",
    "cancel",
    "gate",
    "production_changed",
    "register_action",
    "reject",
]

Handler = Callable[[AsyncSession, Principal, dict[str, Any]], Awaitable[dict[str, Any]]]

_HANDLERS: dict[str, Handler] = {}


def register_action(kind: str, handler: Handler) -> None:
    """Name the function that runs an approved action of ``kind`` (``model.promote``).

    ``handler(session, approver, payload)`` runs in the approving request's transaction
    and returns a JSON-able result; an ``InwireError`` it raises is stored as the
    approval's error (the action's changes undone).
    """
    _HANDLERS[kind] = handler


def view(row: Approval) -> dict[str, Any]:
    """The approval's wire form, as JSON."""
    return ApprovalOut.model_validate(row).model_dump(mode="json")


def _key(kind: str, payload: dict[str, Any]) -> str:
    text = json.dumps([kind, to_jsonable_python(payload, fallback=str)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _state(row: Approval) -> dict[str, Any]:
    """What the audit keeps of an approval."""
    return {
        "kind": row.kind,
        "status": row.status,
        "summary": row.summary,
        "payload": row.payload,
        "requested_by": row.requested_by,
        "decided_by": row.decided_by,
        "comment": row.comment,
        "result": row.result,
        "error": row.error,
    }


async def _emit(session: AsyncSession, who: Principal, verb: str, row: Approval) -> None:
    await OUTBOX.add(
        session,
        CloudEvent(
            source="/inwire/modelops",
            type=f"inwire.modelops.approval.{verb}",
            subject=row.id,
            data={
                "kind": row.kind,
                "status": row.status,
                "summary": row.summary,
                "requested_by": row.requested_by,
                "decided_by": row.decided_by,
                "comment": row.comment,
                "actor": who.subject,
            },
            inwireorg=who.org,
        ),
    )


async def gate(
    session: AsyncSession,
    who: Principal,
    kind: str,
    payload: dict[str, Any],
    *,
    protected: bool,
    summary: str,
) -> dict[str, Any] | None:
    """None when the action may run now (not ``protected``); otherwise the approval it
    waits for, as JSON: a new one, or the pending one for the same kind and payload."""
    if not protected:
        return None
    payload = to_jsonable_python(payload, fallback=str)
    key = _key(kind, payload)
    repo = ApprovalRepository(session, who.org)
    row = await repo.pending(kind, key)
    if row is None:
        row = Approval(
            id=new_id("apr"),
            kind=kind,
            status="pending",
            summary=summary,
            payload=payload,
            payload_key=key,
            requested_by=who.subject,
            comment="",
        )
        try:
            await repo.add(row)
        except Conflict:  # the same request, committed an instant before this one
            pending = await repo.pending(kind, key)
            if pending is None:
                raise
            return view(pending)
        await audit.record_by(
            session, who, "approval.request", "approval", row.id, after=_state(row)
        )
        await _emit(session, who, "requested", row)
    return view(row)


async def list_approvals(
    session: AsyncSession, who: Principal, query: ListQuery
) -> tuple[Sequence[Approval], int]:
    """One page of the organization's approvals (filters: status, kind, requested_by)."""
    return await ApprovalRepository(session, who.org).page(query)


async def get_approval(session: AsyncSession, who: Principal, approval_id: str) -> Approval:
    """One approval of the caller's organization; 404 otherwise."""
    return await ApprovalRepository(session, who.org).get(approval_id)


def _check_pending(row: Approval) -> None:
    if row.status != "pending":
        raise Conflict(f"Approval {row.id} is {row.status}, not pending", code="NOT_PENDING")


async def _decidable(session: AsyncSession, who: Principal, approval_id: str) -> Approval:
    """The approval, locked, when ``who`` may decide it now: an approver (403), not its
    requester (403 ``SELF_APPROVAL``), still pending (409 ``NOT_PENDING``)."""
    ensure(who, APPROVER_PERMISSION)
    row = await ApprovalRepository(session, who.org).locked(approval_id)
    if row.requested_by == who.subject:
        raise Forbidden(
            "You requested this action: another approver must decide it",
            code="SELF_APPROVAL",
        )
    _check_pending(row)
    return row


def _decide(row: Approval, who: Principal, status: str, comment: str) -> None:
    row.status = status
    row.decided_by = who.subject
    row.decided_at = utcnow()
    row.comment = comment
    row.updated_at = utcnow()


async def approve(
    session: AsyncSession, who: Principal, approval_id: str, comment: str = ""
) -> Approval:
    """Approve and run the action with the stored payload, as ``who``; the approval ends
    ``approved`` with the result, or ``failed`` with the action's error (its changes
    undone, the decision kept)."""
    row = await _decidable(session, who, approval_id)
    handler = _HANDLERS.get(row.kind)
    if handler is None:
        raise Conflict(f"No action of kind {row.kind!r} can run here", code="UNKNOWN_ACTION")
    before = _state(row)
    _decide(row, who, "approved", comment)
    await audit.record_by(
        session, who, "approval.approve", "approval", row.id, before=before, after=_state(row)
    )
    await session.flush()
    try:
        async with session.begin_nested():
            result = await handler(session, who, dict(row.payload))
        row.result = to_jsonable_python(result, fallback=str)
    except InwireError as exc:
        row.status = "failed"
        row.error = {**exc.body()["error"], "status": exc.status}
    row.updated_at = utcnow()
    await session.flush()
    outcome = {"status": row.status, "result": row.result, "error": row.error}
    await audit.record_by(session, who, "approval.execute", "approval", row.id, after=outcome)
    await _emit(session, who, "approved", row)
    return row


async def reject(
    session: AsyncSession, who: Principal, approval_id: str, comment: str = ""
) -> Approval:
    """Reject a pending approval; its action never runs."""
    row = await _decidable(session, who, approval_id)
    before = _state(row)
    _decide(row, who, "rejected", comment)
    await session.flush()
    await audit.record_by(
        session, who, "approval.reject", "approval", row.id, before=before, after=_state(row)
    )
    await _emit(session, who, "rejected", row)
    return row


async def cancel(session: AsyncSession, who: Principal, approval_id: str) -> Approval:
    """Withdraw one's own pending approval (403 for anyone else's, 409 once decided)."""
    row = await ApprovalRepository(session, who.org).locked(approval_id)
    if row.requested_by != who.subject:
        raise Forbidden("Only the requester may cancel an approval", code="NOT_REQUESTER")
    _check_pending(row)
    before = _state(row)
    row.status = "cancelled"
    row.updated_at = utcnow()
    await session.flush()
    await audit.record_by(
        session, who, "approval.cancel", "approval", row.id, before=before, after=_state(row)
    )
    await _emit(session, who, "cancelled", row)
    return row
