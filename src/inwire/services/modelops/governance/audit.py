"""The audit trail of ModelOps: who did what to which resource, when, before and after.

Every change to the registry, to approvals, to deployments and to the governance policy
is recorded in the same transaction as the change itself, so an entry exists exactly when
the change committed. ``before``/``after`` are JSON snapshots of the resource (``None``
for a creation or a deletion).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.errors import Invalid
from inwire.kit.ids import new_id
from inwire.services.modelops.governance.models import AuditEntry
from inwire.services.modelops.governance.repository import AuditRepository


def _json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = to_jsonable_python(value, fallback=str)
    return out


async def record(
    session: AsyncSession,
    org_id: str,
    actor: str,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to ``session``'s transaction (it commits with the change).

    ``action`` is ``<resource>.<verb>`` (``model.version.stage``, ``deployment.update``);
    ``before``/``after`` are made JSON-safe (datetimes as RFC 3339 text).
    """
    session.add(
        AuditEntry(
            id=new_id("aud"),
            organization_id=org_id,
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            before=_json(before),
            after=_json(after),
        )
    )


async def record_by(
    session: AsyncSession,
    who: Principal,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """:func:`record` for an action ``who`` took in its own organization."""
    await record(
        session,
        who.org,
        who.subject,
        action,
        resource_type,
        resource_id,
        before=before,
        after=after,
    )


def utc(value: datetime | None) -> datetime | None:
    """A query's time as UTC (a time without a zone is taken as UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def check_window(since: datetime | None, until: datetime | None) -> None:
    """400 unless ``since`` comes before ``until``."""
    if since is not None and until is not None and since >= until:
        raise Invalid(
            "since must be before until",
            details=[{"field": "since", "message": "must be before until"}],
        )


async def list_entries(
    session: AsyncSession,
    who: Principal,
    query: ListQuery,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[AuditEntry], int]:
    """A page of the caller's organization's entries, in an optional time window."""
    since, until = utc(since), utc(until)
    check_window(since, until)
    return await AuditRepository(session, who.org).page_entries(query, since=since, until=until)


async def get_entry(session: AsyncSession, who: Principal, entry_id: str) -> AuditEntry:
    """One entry of the caller's organization; 404 otherwise."""
    return await AuditRepository(session, who.org).get(entry_id)
