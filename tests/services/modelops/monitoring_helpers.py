"""Helpers of the monitoring tests: a deployment id the organization owns, and traffic
recorded for it through the prediction recorder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from inwire.kit.ids import new_id
from inwire.kit.testing.identities import ORGS
from inwire.services.modelops.db import ModelOpsBase
from inwire.services.modelops.monitoring.recorder import PredictionRecorder


def _filler(column: sa.Column[Any]) -> Any:
    kind = column.type
    if isinstance(kind, sa.JSON):
        return {}
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer | sa.Float | sa.Numeric):
        return 0
    if isinstance(kind, sa.DateTime) or getattr(kind, "python_type", None) is datetime:
        return datetime.now(UTC)
    return "x"


async def make_deployment(app: FastAPI, org: str = "a") -> str:
    """A deployment id of organization ``org``: a row of the deployments table when this
    installation has one (its required columns filled with plain values), else just an id
    (monitoring then knows the deployment by its recorded traffic)."""
    deployment_id = new_id("dep")
    table = ModelOpsBase.metadata.tables.get("deployments")
    if table is not None:
        values: dict[str, Any] = {"id": deployment_id, "organization_id": ORGS[org]}
        for column in table.columns:
            needed = not column.nullable and column.default is None
            if column.name not in values and needed and column.server_default is None:
                values[column.name] = _filler(column)
        async with app.state.db.session() as session:
            await session.execute(table.insert().values(**values))
    return deployment_id


async def record(
    app: FastAPI,
    deployment_id: str,
    version_id: str,
    rows: Sequence[dict[str, Any]],
    *,
    org: str = "a",
    outputs: Sequence[Any] | None = None,
    errors: int = 0,
    latency: float = 0.01,
    batch: int = 10,
) -> None:
    """Record ``rows`` as predictions of ``batch`` rows each (then ``errors`` failed
    requests), and flush them."""
    recorder = PredictionRecorder(app.state.db, sample_rows=2000, seed=5)
    outs = list(outputs) if outputs is not None else [1] * len(rows)
    for start in range(0, len(rows), batch):
        chunk = list(rows[start : start + batch])
        recorder.observe(
            ORGS[org], deployment_id, version_id, chunk, outs[start : start + batch], latency, False
        )
    for _ in range(errors):
        recorder.observe(ORGS[org], deployment_id, version_id, [{}], None, latency, True)
    await recorder.close()
