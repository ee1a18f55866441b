"""Helpers of the monitoring tests: a deployment the organization owns, and traffic
recorded for it through the prediction recorder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from inwire.kit.ids import new_id
from inwire.kit.testing.identities import ORGS
from inwire.services.modelops.deployments.models import Deployment
from inwire.services.modelops.monitoring.recorder import PredictionRecorder


async def make_deployment(app: FastAPI, org: str = "a") -> str:
    """A deployment of organization ``org``: a row of the deployments table (nothing
    serves it; monitoring only needs it to exist)."""
    deployment_id = new_id("dep")
    async with app.state.db.session() as session:
        session.add(
            Deployment(
                id=deployment_id, organization_id=ORGS[org], name=deployment_id, created_by="t"
            )
        )
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
