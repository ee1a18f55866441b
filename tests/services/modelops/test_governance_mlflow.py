"""A gated promotion through Model Training's MLflow API: an MLflow error naming the approval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from governance_helpers import decide, models_with_versions, require_approval, stage_of
from modelops_helpers import Auth

from inwire.services.training.app import create_app as create_training
from inwire.services.training.settings import TrainingSettings

API = "/api/2.0/mlflow"


@pytest.fixture
async def mlflow(
    app: FastAPI, inwire_settings: dict[str, Any], tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Model Training's MLflow API in process, with this ModelOps as its registry."""
    own_db = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 't.db'}", "database_schema": ""}
    settings = TrainingSettings(**{**inwire_settings, **own_db})
    training = create_training(settings, {"modelops": app})
    async with training.router.lifespan_context(training):
        transport = httpx.ASGITransport(app=training, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://training") as c:
            yield c


async def test_mlflow_transition_and_alias_answer_a_pending_approval(
    client: httpx.AsyncClient, mlflow: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    h = auth("member")
    r = await mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "churn", "version": "1", "stage": "Production"},
        headers=h,
    )
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error_code"] == "RESOURCE_CONFLICT"
    assert "waits for approval" in body["message"]
    (approval,) = (await client.get("/api/v1/approvals", headers=h)).json()["data"]
    assert approval["id"] in body["message"]
    r = await mlflow.post(
        f"{API}/registered-models/alias",
        json={"name": "churn", "alias": "production", "version": "1"},
        headers=h,
    )
    assert r.status_code == 409
    assert r.json()["error_code"] == "RESOURCE_CONFLICT"
    # Staging is not gated; once approved, the version is in Production for MLflow too.
    r = await mlflow.post(
        f"{API}/model-versions/transition-stage",
        json={"name": "churn", "version": "1", "stage": "Staging"},
        headers=h,
    )
    assert r.json()["model_version"]["current_stage"] == "Staging"
    assert (await decide(client, auth, approval["id"])).json()["data"]["status"] == "approved"
    assert await stage_of(client, auth, 1) == "Production"
    r = await mlflow.get(
        f"{API}/model-versions/get", params={"name": "churn", "version": "1"}, headers=h
    )
    assert r.json()["model_version"]["current_stage"] == "Production"
