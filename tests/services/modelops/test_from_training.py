"""A version registered from artifacts that the real Model Training service stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from modelops_helpers import SKLEARN_MLMODEL, Auth, create_model

from inwire.services.training.app import create_app as create_training
from inwire.services.training.settings import TrainingSettings


async def test_a_run_logged_through_model_training_registers_here(
    client: httpx.AsyncClient, auth: Auth, inwire_settings: dict[str, Any]
) -> None:
    # Model Training on the same object store, as in the embedded setup.
    settings = TrainingSettings(
        **{**inwire_settings, "database_url": "", "database_schema": ""},
    )
    training = create_training(settings)

    async def started() -> AsyncIterator[httpx.AsyncClient]:
        async with training.router.lifespan_context(training):
            transport = httpx.ASGITransport(app=training)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                yield c

    async for tr in started():
        h = auth("member")
        r = await tr.post("/api/v1/experiments", json={"name": "churn"}, headers=h)
        assert r.status_code == 201, r.text
        r = await tr.post(
            "/api/v1/runs",
            json={"experiment_id": r.json()["data"]["id"], "source": {"git_commit": "abc1234"}},
            headers=h,
        )
        run_id = r.json()["data"]["id"]
        for path, body in [("model/MLmodel", SKLEARN_MLMODEL), ("model/model.pkl", b"pkl")]:
            r = await tr.put(f"/api/v1/runs/{run_id}/artifacts/{path}", content=body, headers=h)
            assert r.status_code == 201, r.text

    await create_model(client, auth)
    r = await client.post(
        "/api/v1/models/churn/versions",
        json={
            "source": {"run_id": run_id, "artifact_path": "model"},
            "lineage": {"git_commit": "abc1234"},
        },
        headers=auth("member"),
    )
    assert r.status_code == 201, r.text
    v = r.json()["data"]
    assert (v["status"], v["flavor"], v["run_id"], v["file_count"]) == (
        "READY",
        "sklearn",
        run_id,
        2,
    )
    r = await client.get("/api/v1/models/churn/versions/1/files/model.pkl", headers=auth())
    assert r.content == b"pkl"
