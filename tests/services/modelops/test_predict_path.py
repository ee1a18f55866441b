"""The predict endpoint's two ways in, against a real model server: a bearer call answered
before FastAPI's routing (``deployments.fastpath``) and a platform service's call on behalf of
a user (the FastAPI route); both with the same envelope, roles, organizations and limits."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from deployments_helpers import deploy, iris_version, ready_replicas, wait_for
from modelops_helpers import Auth
from serving_helpers import expected, rows

from inwire.kit.auth.internal import on_behalf_headers
from inwire.kit.auth.tokens import KeySource, TokenVerifier
from inwire.kit.testing.identities import ORGS
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.deployments.fastpath import PredictFastPath
from inwire.services.modelops.settings import ModelOpsSettings


@pytest.fixture
def modelops_settings(inwire_settings: dict[str, Any]) -> ModelOpsSettings:
    """ModelOps with a quick control loop and a small body limit."""
    return ModelOpsSettings(
        **inwire_settings,
        jobs_concurrency=1,
        deployment_control_interval=0.1,
        deployment_ready_timeout=120,
        max_body_bytes=64 * 1024,
    )


@pytest.mark.slow
async def test_predict_by_token_and_on_behalf(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path, modelops_settings: ModelOpsSettings
) -> None:
    await iris_version(client, auth, tmp_path)
    dep = await deploy(client, auth, model="iris", version=1)
    dep = await wait_for(
        client, auth, dep["id"], lambda d: d["status"] == "ready" and ready_replicas(d, 1) > 0
    )
    url = f"/api/v1/deployments/{dep['id']}/predict"
    some = rows(4, start=10)
    want = {"predictions": expected(some), "version": 1, "deployment": dep["id"]}

    # a user's token
    r = await client.post(url, json={"inputs": some}, headers=auth("member"))
    assert r.status_code == 200, r.text
    assert r.json() == want
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"].startswith("req_")
    r = await client.post(
        url, json={"inputs": some}, headers={**auth("member"), "X-Request-ID": "mine-1"}
    )
    assert r.headers["x-request-id"] == "mine-1"

    # a platform service on behalf of a user: the FastAPI route, the same answer
    member = on_behalf_headers(modelops_settings, ORGS["a"], "usr_x", "member")
    r = await client.post(url, json={"inputs": some}, headers=member)
    assert r.status_code == 200, r.text
    assert r.json() == want
    viewer = on_behalf_headers(modelops_settings, ORGS["a"], "usr_x", "viewer")
    assert_error(await client.post(url, json={"inputs": some}, headers=viewer), 403)
    forged = {**member, "X-Inwire-Internal": "not-the-secret"}
    assert_error(await client.post(url, json={"inputs": some}, headers=forged), 403)

    # who is asking
    assert_error(await client.post(url, json={"inputs": some}), 401)
    assert_error(
        await client.post(url, json={"inputs": some}, headers={"Authorization": "Basic eDp5"}),
        401,
    )
    assert_error(
        await client.post(url, json={"inputs": some}, headers={"Authorization": "Bearer nope"}),
        401,
    )
    r = await client.post(url, json={"inputs": some}, headers=auth("viewer"))
    assert_error(r, 403)
    assert r.json()["error"]["details"][0]["permission"] == "deployments:execute"
    assert_error(
        await client.post(url, json={"inputs": some}, headers=auth("member", org="b")), 404
    )
    assert_error(
        await client.post(
            "/api/v1/deployments/dep_nope/predict", json={"inputs": some}, headers=auth("member")
        ),
        404,
    )

    # what is sent
    r = await client.post(url, content=b"{not json", headers=auth("member"))
    assert_error(r, 400)
    assert r.json()["error"]["details"][0] == {"field": "body", "message": "not JSON"}
    assert_error(await client.post(url, json=[1, 2], headers=auth("member")), 400)
    bad = await client.post(url, json={"inputs": [{"sepal_length": "x"}]}, headers=auth("member"))
    assert_error(bad, 400, "INVALID_INPUT")
    assert "sepal_length" in {d["field"] for d in bad.json()["error"]["details"]}
    big = {"inputs": rows(1) * 2000}
    assert_error(await client.post(url, json=big, headers=auth("member")), 413)

    # other methods and neighbouring paths are FastAPI's
    assert_error(await client.get(url, headers=auth("member")), 405)
    assert_error(await client.post(url + "/x", json={}, headers=auth("member")), 404)

    # metrics name the route's template, not each deployment's path
    text = (await client.get("/metrics")).text
    assert 'route="/api/v1/deployments/{deployment_id}/predict"' in text
    assert dep["id"] not in text


# -- which requests the fast path takes (no model server needed) ------------------------------


class _Downstream:
    """The app behind the middleware: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _call(
    middleware: PredictFastPath, method: str, path: str, headers: dict[str, str], state: Any
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": SimpleNamespace(state=state),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("method", "path", "headers", "authenticate", "taken"),
    [
        ("POST", "/api/v1/deployments/dep_1/predict", {}, False, True),
        ("POST", "/api/v1/deployments/dep_1/predict", {"Authorization": "Bearer x"}, False, True),
        ("GET", "/api/v1/deployments/dep_1/predict", {}, False, False),
        ("POST", "/api/v1/deployments/dep_1/predict/more", {}, False, False),
        ("POST", "/api/v1/deployments/dep_1", {}, False, False),
        ("POST", "/api/v1/deployments/dep_1/predict", {"X-Inwire-Internal": "s"}, False, False),
        ("POST", "/api/v1/deployments/dep_1/predict", {"Authorization": "Bearer x"}, True, False),
    ],
)
async def test_the_fast_path_takes_bearer_predict_calls_only(
    method: str, path: str, headers: dict[str, str], authenticate: bool, taken: bool
) -> None:
    downstream = _Downstream()
    # "x" is no JWT: refused before any key is looked up
    verifier = TokenVerifier(cast(KeySource, None), issuer="inwire", audience="inwire")
    state = SimpleNamespace(verifier=verifier, deployments=None)
    if authenticate:
        state.authenticate = object()
    status, body = await _call(PredictFastPath(downstream), method, path, headers, state)
    assert (downstream.paths == []) is taken
    if taken:
        assert status == 401
        assert json.loads(body)["error"]["code"] == "UNAUTHORIZED"
