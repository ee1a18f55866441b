"""Helpers of the deployments tests: real model versions (the iris model, a custom
Python model whose predict raises, one that cannot load), deployments waited for, and a
fake Kubernetes API server (tests only: no cluster runs here)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from modelops_helpers import Auth, create_model, upload_version
from serving_helpers import SIGNATURE, write_mlflow_sklearn

FAILING_PREDICT = b"""
class Model:
    def predict(self, rows):
        raise RuntimeError("this version is broken on purpose")


def load(model_dir):
    return Model()
"""

BROKEN_LOAD = b"""
def load(model_dir):
    raise RuntimeError("this version cannot load")
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


async def iris_version(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path, name: str = "iris", *, new: bool = True
) -> dict[str, Any]:
    """A READY version of the iris model (an MLflow sklearn folder) of model ``name``."""
    if new:
        await create_model(client, auth, name)
    folder = write_mlflow_sklearn(tmp_path / f"iris-{name}-{len(list(tmp_path.iterdir()))}")
    r = await upload_version(client, auth, name, files=_files(folder))
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def python_version(
    client: httpx.AsyncClient, auth: Auth, name: str, script: bytes
) -> dict[str, Any]:
    """A READY custom Python version of ``name`` (``predict.py``) with the iris signature."""
    r = await upload_version(
        client, auth, name, files={"predict.py": script}, flavor="python", signature=SIGNATURE
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def deploy(client: httpx.AsyncClient, auth: Auth, **body: Any) -> dict[str, Any]:
    """Create a deployment as a member; its wire form."""
    r = await client.post("/api/v1/deployments", json=body, headers=auth("member"))
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def get(client: httpx.AsyncClient, auth: Auth, dep_id: str) -> dict[str, Any]:
    """A deployment's wire form."""
    r = await client.get(f"/api/v1/deployments/{dep_id}", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def wait_for(
    client: httpx.AsyncClient, auth: Auth, dep_id: str, check: Any, within: float = 90.0
) -> dict[str, Any]:
    """Poll the deployment until ``check(deployment)`` holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        dep = await get(client, auth, dep_id)
        if check(dep):
            return dep
        if loop.time() > deadline:
            raise AssertionError(f"deployment never got there: {json.dumps(dep)[:3000]}")
        await asyncio.sleep(0.1)


def serving(dep: dict[str, Any], version: int, role: str | None = None) -> dict[str, Any]:
    """The active revision of ``version``."""
    for rev in dep["revisions"]:
        active = rev["version"] == version and rev["status"] in ("starting", "ready")
        if active and (role is None or rev["role"] == role):
            return rev
    raise AssertionError(f"version {version} is not active: {dep['revisions']}")


def ready_replicas(dep: dict[str, Any], version: int) -> int:
    """Ready replicas of the active revision of ``version`` (0 when not active)."""
    for rev in dep["revisions"]:
        if rev["version"] == version and rev["status"] in ("starting", "ready"):
            return sum(1 for i in rev["instances"] if i["state"] == "ready")
    return 0


class FakeKubernetes:
    """A fake Kubernetes API (server-side apply and delete of Deployments and Services),
    for tests only; it records what it was sent."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer one API request."""
        auth = request.headers.get("authorization", "")
        self.requests.append((request.method, request.url.path, auth))
        if auth != "Bearer secret-token":
            return httpx.Response(401, json={"kind": "Status", "message": "Unauthorized"})
        if request.method == "PATCH":
            assert request.headers["content-type"] == "application/apply-patch+yaml"
            assert request.url.params["fieldManager"] == "inwire"
            self.objects[request.url.path] = json.loads(request.content)
            return httpx.Response(200, json=self.objects[request.url.path])
        if request.method == "DELETE":
            if self.objects.pop(request.url.path, None) is None:
                return httpx.Response(404, json={"kind": "Status", "message": "not found"})
            return httpx.Response(200, json={"kind": "Status", "status": "Success"})
        return httpx.Response(405, json={"message": "unsupported"})

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering like this API server."""
        return httpx.MockTransport(self.handler)
