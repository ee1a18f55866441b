"""The history of production: which version served production, from when to when, how.

An interval opens when a version enters production and closes when it leaves, through one
of three doors (``source``): the registry's ``Production`` stage, the ``production`` alias,
or a production deployment (:func:`production_changed`, called by deployments). Each end
carries who did it and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.db import utcnow
from inwire.kit.ids import new_id
from inwire.services.modelops.governance.audit import check_window, utc
from inwire.services.modelops.governance.models import ProductionInterval
from inwire.services.modelops.governance.repository import IntervalRepository
from inwire.services.modelops.models.models import ModelVersion
from inwire.services.modelops.models.repository import VersionRepository

#: The stage and the alias that mean "serves production".
PRODUCTION_STAGE = "Production"
PRODUCTION_ALIAS = "production"


def _close(rows: Sequence[ProductionInterval], actor: str, reason: str) -> None:
    now = utcnow()
    for row in rows:
        row.ended_at = now
        row.ended_by = actor
        row.end_reason = reason


async def _open(
    session: AsyncSession,
    org_id: str,
    *,
    model_id: str,
    version_id: str,
    source: str,
    deployment_id: str | None,
    actor: str,
    reason: str,
) -> None:
    version = await VersionRepository(session, org_id).find(ModelVersion.id == version_id)
    await IntervalRepository(session, org_id).add(
        ProductionInterval(
            id=new_id("pri"),
            model_id=model_id,
            version_id=version_id,
            version=version.version if version is not None else None,
            source=source,
            deployment_id=deployment_id,
            started_at=utcnow(),
            started_by=actor,
            start_reason=reason,
        )
    )


async def production_changed(
    session: AsyncSession,
    org_id: str,
    *,
    model_id: str,
    version_id: str | None,
    deployment_id: str | None,
    actor: str,
    reason: str,
) -> None:
    """A production deployment (``deployment_id``) of ``model_id`` now serves
    ``version_id`` (None: nothing any more): the interval of what it served before ends,
    a new one begins. Telling the same thing twice changes nothing."""
    repo = IntervalRepository(session, org_id)
    current = await repo.open_ones(
        model_id=model_id, source="deployment", deployment_id=deployment_id
    )
    if deployment_id is None:  # the open_ones filter above skips a None deployment
        current = [r for r in current if r.deployment_id is None]
    ending = [r for r in current if r.version_id != version_id]
    _close(ending, actor, reason)
    if version_id is not None and len(ending) == len(current):
        await _open(
            session,
            org_id,
            model_id=model_id,
            version_id=version_id,
            source="deployment",
            deployment_id=deployment_id,
            actor=actor,
            reason=reason,
        )
    await repo.flush()


async def entered(
    session: AsyncSession,
    org_id: str,
    *,
    model_id: str,
    version_id: str,
    source: str,
    actor: str,
    reason: str,
) -> None:
    """A version entered production through the registry (``stage`` or ``alias``);
    nothing when it already serves that way."""
    repo = IntervalRepository(session, org_id)
    if await repo.open_ones(version_ids=[version_id], source=source):
        return
    await _open(
        session,
        org_id,
        model_id=model_id,
        version_id=version_id,
        source=source,
        deployment_id=None,
        actor=actor,
        reason=reason,
    )


async def left(
    session: AsyncSession,
    org_id: str,
    version_ids: Sequence[str],
    *,
    source: str | None,
    actor: str,
    reason: str,
) -> None:
    """Versions left production through the registry (``stage``, ``alias``, or every
    way when None: the version was deleted)."""
    if not version_ids:
        return
    repo = IntervalRepository(session, org_id)
    rows = await repo.open_ones(version_ids=version_ids, source=source)
    _close(rows, actor, reason)
    await repo.flush()


async def model_history(
    session: AsyncSession,
    org_id: str,
    model_id: str,
    query: ListQuery,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[ProductionInterval], int]:
    """One page of a model's production intervals overlapping the time window."""
    since, until = utc(since), utc(until)
    check_window(since, until)
    return await IntervalRepository(session, org_id).page_of_model(
        query, model_id, since=since, until=until
    )
