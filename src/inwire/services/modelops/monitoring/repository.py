"""Queries of monitoring: windows of a period, configs, drift reports, alerts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.db import RepositoryBase
from inwire.services.modelops.monitoring.models import (
    DriftReport,
    MonitorConfig,
    MonitoringAlert,
    MonitoringWindow,
)


class WindowRepository(RepositoryBase[MonitoringWindow]):
    """Per-minute windows of one organization's deployments."""

    model = MonitoringWindow
    noun = "Window"

    async def period(
        self,
        deployment_id: str,
        since: datetime,
        until: datetime,
        version_id: str | None = None,
    ) -> Sequence[MonitoringWindow]:
        """The deployment's windows starting in ``[since, until)``, oldest first (without
        their samples: ``samples`` reads those of the windows picked)."""
        stmt = self.select(
            MonitoringWindow.deployment_id == deployment_id,
            MonitoringWindow.window_start >= since,
            MonitoringWindow.window_start < until,
        )
        if version_id is not None:
            stmt = stmt.where(MonitoringWindow.version_id == version_id)
        rows = await self.session.execute(
            stmt.order_by(MonitoringWindow.window_start, MonitoringWindow.version_id)
        )
        windows: Sequence[MonitoringWindow] = rows.scalars().all()
        return windows

    async def samples(self, ids: Collection[int], column: Any) -> dict[int, list[Any]]:
        """Window id -> its sample in ``column`` (``input_sample``, ``prediction_sample``)."""
        if not ids:
            return {}
        rows = await self.session.execute(
            select(MonitoringWindow.id, column).where(
                MonitoringWindow.organization_id == self.org_id,
                MonitoringWindow.id.in_(list(ids)),
            )
        )
        return {int(i): list(v or []) for i, v in rows}


class ConfigRepository(RepositoryBase[MonitorConfig]):
    """Drift references and threshold overrides."""

    model = MonitorConfig
    noun = "Monitoring configuration"

    async def of(self, deployment_id: str) -> MonitorConfig | None:
        """The deployment's configuration, if any."""
        return await self.find(MonitorConfig.deployment_id == deployment_id)


class ReportRepository(RepositoryBase[DriftReport]):
    """Drift reports."""

    model = DriftReport
    noun = "Drift report"


class AlertRepository(RepositoryBase[MonitoringAlert]):
    """Alerts."""

    model = MonitoringAlert
    noun = "Alert"


async def versions_with_traffic(
    session: AsyncSession, org_id: str, deployment_id: str, since: datetime, until: datetime
) -> list[str]:
    """Version ids with windows in the period."""
    rows = await session.execute(
        select(MonitoringWindow.version_id)
        .distinct()
        .where(
            MonitoringWindow.organization_id == org_id,
            MonitoringWindow.deployment_id == deployment_id,
            MonitoringWindow.window_start >= since,
            MonitoringWindow.window_start < until,
        )
    )
    return sorted(r[0] for r in rows)
