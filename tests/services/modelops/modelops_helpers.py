"""Shared helpers of the registry tests: a run's artifacts laid out as Model Training
writes them, an MLflow MLmodel file, and shortcuts for creating models and versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from inwire.kit.storage import ObjectStore
from inwire.kit.testing.identities import ORGS

Auth = Callable[..., dict[str, str]]

#: An MLmodel as ``mlflow.sklearn.log_model(..., signature=...)`` writes it.
SKLEARN_MLMODEL = b"""artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.9
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.2
mlflow_version: 2.17.0
model_size_bytes: 1234
model_uuid: 6e0b5b3e1f0a4d8c9b7a6e5d4c3b2a19
run_id: RUN_ID
signature:
  inputs: '[{"type": "double", "name": "age", "required": true}, {"type": "string",
    "name": "plan", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
utc_time_created: '2026-11-26 12:00:00.000000'
"""


def run_key(run_id: str, path: str, org: str = "a") -> str:
    """The object key of a run's artifact, as Model Training stores it."""
    return f"training/{ORGS[org]}/{run_id}/artifacts/{path}"


async def log_sklearn_model(
    store: ObjectStore, run_id: str, folder: str = "model", org: str = "a"
) -> None:
    """Lay out an MLflow sklearn model folder in a run's artifacts."""
    await store.put(
        run_key(run_id, f"{folder}/MLmodel", org),
        SKLEARN_MLMODEL.replace(b"RUN_ID", run_id.encode()),
    )
    await store.put(run_key(run_id, f"{folder}/model.pkl", org), b"\x80\x04pickle" * 100)
    await store.put(run_key(run_id, f"{folder}/requirements.txt", org), b"scikit-learn==1.5.2\n")


async def create_model(
    client: httpx.AsyncClient, auth: Auth, name: str = "churn", **fields: Any
) -> dict[str, Any]:
    """Create a model as a member; its wire form."""
    r = await client.post("/api/v1/models", json={"name": name, **fields}, headers=auth("member"))
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def upload_version(
    client: httpx.AsyncClient,
    auth: Auth,
    model: str = "churn",
    files: dict[str, bytes] | None = None,
    **fields: Any,
) -> httpx.Response:
    """Upload a version (JSON-encoding the structured fields); the response."""
    form = {
        k: (v if isinstance(v, str) and k in ("description", "flavor") else json.dumps(v))
        for k, v in fields.items()
    }
    parts = [("file", (path, body)) for path, body in (files or {"model.bin": b"m"}).items()]
    return await client.post(
        f"/api/v1/models/{model}/versions/upload",
        files=parts,
        data=form,
        headers=auth("member"),
    )
