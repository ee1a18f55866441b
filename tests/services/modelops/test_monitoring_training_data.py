"""The drift reference from a version's training data, read from Synthex on the caller's
behalf (a stand-in Synthex app checks the delegation headers and serves the Parquet)."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
from conftest import FAST_POLICY
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from modelops_helpers import Auth, create_model, upload_version
from monitoring_helpers import make_deployment, record

from inwire.kit.auth.internal import INTERNAL_HEADER, internal_secret
from inwire.kit.testing.identities import ORGS
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.app import create_app
from inwire.services.modelops.settings import ModelOpsSettings


def _training_rows(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(30)
    return pl.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "plan": rng.choice(["basic", "pro"], size=n, p=[0.6, 0.4]).tolist(),
        }
    )


@pytest.fixture
def synthex_calls() -> list[dict[str, str]]:
    return []


@pytest.fixture
def service_app(
    modelops_settings: ModelOpsSettings, synthex_calls: list[dict[str, str]]
) -> FastAPI:
    """ModelOps whose Synthex peer is a stand-in serving dataset ds_1 version dsv_1."""
    synthex = FastAPI()
    secret = internal_secret(modelops_settings)

    @synthex.get("/api/v1/datasets/{dataset_id}/versions/{version}/download")
    async def download(dataset_id: str, version: str, request: Request) -> Any:
        headers = {k.lower(): v for k, v in request.headers.items()}
        synthex_calls.append(headers)
        if headers.get(INTERNAL_HEADER.lower()) != secret:
            return JSONResponse({"error": {"code": "INTERNAL_ONLY", "message": "no"}}, 403)
        if (dataset_id, version) != ("ds_1", "dsv_1"):
            body = {"error": {"code": "NOT_FOUND", "message": "Dataset not found"}}
            return JSONResponse(body, 404)
        buffer = io.BytesIO()
        _training_rows(3000).write_parquet(buffer)
        return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet")

    return create_app(modelops_settings, peers={"synthex": synthex}, job_policy=FAST_POLICY)


async def test_training_data_becomes_the_reference(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI, synthex_calls: list[dict[str, str]]
) -> None:
    await create_model(client, auth)
    lineage = {"dataset_id": "ds_1", "dataset_version_id": "dsv_1"}
    r = await upload_version(client, auth, lineage=lineage)
    assert r.status_code == 201, r.text
    version_id = r.json()["data"]["id"]
    r = await upload_version(
        client, auth, lineage={"dataset_id": "ds_9", "dataset_version_id": "x"}
    )
    missing_id = r.json()["data"]["id"]
    r = await upload_version(client, auth)
    no_lineage_id = r.json()["data"]["id"]
    dep = await make_deployment(app)
    url = f"/api/v1/deployments/{dep}/monitoring"

    r = await client.post(
        f"{url}/reference/training-data", json={"version_id": version_id}, headers=auth("member")
    )
    assert r.status_code == 200, r.text
    ref = r.json()["data"]
    assert (ref["source"], ref["rows"]) == ("dataset", 3000)
    assert ref["detail"] == {"version_id": version_id, **lineage}
    assert ref["columns"] == {"age": "number", "plan": "category"}
    (call,) = synthex_calls
    assert call["x-inwire-on-behalf-of-org"] == ORGS["a"]
    assert call["x-inwire-on-behalf-of-role"] == "member"
    assert "authorization" not in call

    rng = np.random.default_rng(31)
    shifted = [{"age": float(a), "plan": "pro"} for a in rng.normal(55, 10, 300)]
    await record(app, dep, version_id, shifted)
    r = await client.post(f"{url}/drift", json={}, headers=auth())
    (report,) = r.json()["data"]
    assert report["thresholds"]["reference_source"] == "dataset"
    assert report["reference_rows"] == 3000
    assert report["drifted"] is True

    body = {"version_id": missing_id}
    assert_error(
        await client.post(f"{url}/reference/training-data", json=body, headers=auth()), 404
    )
    body = {"version_id": no_lineage_id}
    assert_error(
        await client.post(f"{url}/reference/training-data", json=body, headers=auth()), 400
    )
    body = {"version_id": "mv_unknown"}
    assert_error(
        await client.post(f"{url}/reference/training-data", json=body, headers=auth()), 404
    )
    body = {"version_id": version_id}
    viewer = auth("viewer")
    assert_error(
        await client.post(f"{url}/reference/training-data", json=body, headers=viewer), 403
    )
    other = auth("admin", "b")
    assert_error(await client.post(f"{url}/reference/training-data", json=body, headers=other), 404)
    assert_error(await client.post(f"{url}/reference/training-data", json={}, headers=auth()), 400)
