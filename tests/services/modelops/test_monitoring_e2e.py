"""Monitoring end to end: predictions through a real local deployment (a model-server
process) are recorded, summarised, and checked for drift against the training data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from deployments_helpers import deploy, iris_version, ready_replicas, wait_for
from fastapi import FastAPI
from modelops_helpers import Auth
from serving_helpers import expected, iris_model, rows

from inwire.services.modelops.settings import ModelOpsSettings

pytestmark = pytest.mark.slow


@pytest.fixture
def modelops_settings(inwire_settings: dict[str, Any]) -> ModelOpsSettings:
    """ModelOps with a quick control loop and recorder."""
    return ModelOpsSettings(
        **inwire_settings,
        jobs_concurrency=1,
        deployment_control_interval=0.1,
        deployment_ready_timeout=120,
        monitoring_flush_interval=0.1,
        monitoring_drift_interval=0,
    )


def _ready(dep: dict[str, Any]) -> bool:
    return dep["status"] == "ready" and ready_replicas(dep, 1) > 0


async def test_predictions_are_monitored_and_drift_is_detected(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI, tmp_path: Path
) -> None:
    version = await iris_version(client, auth, tmp_path)
    dep = await deploy(client, auth, model="iris", version=1)
    dep = await wait_for(client, auth, dep["id"], _ready)
    url = f"/api/v1/deployments/{dep['id']}"
    for start in range(0, 150, 10):
        r = await client.post(
            f"{url}/predict", json={"inputs": rows(10, start=start)}, headers=auth("member")
        )
        assert r.status_code == 200, r.text
    bad = await client.post(
        f"{url}/predict", json={"inputs": [{"sepal_length": "x"}]}, headers=auth("member")
    )
    assert bad.status_code == 400
    stats: dict[str, Any] = {}
    for _ in range(100):
        stats = (await client.get(f"{url}/monitoring", headers=auth("viewer"))).json()["data"]
        if stats["requests"] >= 15:
            break
        await asyncio.sleep(0.1)
    assert (stats["requests"], stats["rows"], stats["errors"]) == (15, 150, 0)
    (by_version,) = stats["versions"]
    assert by_version["version_id"] == version["id"]
    assert by_version["predictions"]["kind"] == "classes"
    predicted = expected(rows(150))
    want = {str(c): predicted.count(c) for c in set(predicted)}
    assert by_version["predictions"]["classes"] == want
    assert by_version["latency_seconds"]["p50"] > 0

    # the training data is the reference; the same rows do not drift
    _, features = iris_model()
    reference = features.to_dict("records")
    r = await client.put(f"{url}/monitoring/reference", json=reference, headers=auth("member"))
    assert r.status_code == 200, r.text
    r = await client.post(f"{url}/monitoring/drift", json={}, headers=auth("member"))
    (report,) = r.json()["data"]
    assert report["drifted"] is False, report["features"]

    # inputs with longer petals than any iris: drift, an alert and its event
    shifted = [{**row, "petal_length": row["petal_length"] + 4} for row in rows(100)]
    for start in range(0, 100, 20):
        await client.post(
            f"{url}/predict", json={"inputs": shifted[start : start + 20]}, headers=auth("member")
        )
    await asyncio.sleep(0.5)  # a flush or more
    since = {"since": stats["timeline"][-1]["start"]}
    r = await client.post(f"{url}/monitoring/drift", json=since, headers=auth("member"))
    (report,) = r.json()["data"]
    drifted = {f["feature"] for f in report["features"] if f["drifted"]}
    assert "petal_length" in drifted
    alerts = (await client.get(f"{url}/monitoring/alerts", headers=auth())).json()["data"]
    assert [a["kind"] for a in alerts] == ["drift"]
