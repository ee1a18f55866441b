"""Domain events of datasets, written to Synthex's outbox in the changing transaction.

Types: ``inwire.synthex.dataset.created``, ``inwire.synthex.dataset.deleted``,
``inwire.synthex.dataset.version.created`` and ``inwire.synthex.dataset.version.deleted``;
``subject`` is the dataset or version id, ``inwireorg`` the organization.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.events import CloudEvent
from inwire.services.synthex.db import OUTBOX

SOURCE = "/inwire/synthex"


async def emit(
    session: AsyncSession, kind: str, org_id: str, subject: str, data: dict[str, Any]
) -> None:
    """Add ``inwire.synthex.<kind>`` to the outbox of ``session``'s transaction."""
    await OUTBOX.add(
        session,
        CloudEvent(
            source=SOURCE,
            type=f"inwire.synthex.{kind}",
            subject=subject,
            data=data,
            inwireorg=org_id,
        ),
    )
