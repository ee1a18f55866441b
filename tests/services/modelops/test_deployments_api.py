"""Deployments and clusters through the API without model servers: validation, roles,
organizations, listing and filters, Kubernetes targets (manifests rendered and validated;
applied to a FAKE Kubernetes API server — no cluster runs in these tests), protected
targets gated by approval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from deployments_helpers import FakeKubernetes, iris_version
from fastapi import FastAPI
from modelops_helpers import Auth
from sqlalchemy import select

from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.db import OUTBOX
from inwire.services.modelops.deployments import kubernetes
from inwire.services.modelops.settings import ModelOpsSettings

CLUSTERS = [
    {"name": "staging", "namespace": "models"},
    {
        "name": "prod",
        "api_url": "https://k8s.example.test",
        "namespace": "serving",
        "token": "secret-token",
        "protected": True,
    },
    {"name": "lab", "api_url": "https://lab.example.test", "token": "secret-token"},
]


@pytest.fixture
def modelops_settings(inwire_settings: dict[str, Any]) -> ModelOpsSettings:
    """ModelOps with three Kubernetes targets: rendered only, protected, applied."""
    return ModelOpsSettings(**inwire_settings, jobs_concurrency=1, deployment_clusters=CLUSTERS)


@pytest.fixture
def fake_k8s(app: FastAPI) -> FakeKubernetes:
    """A fake Kubernetes API behind every cluster's URL (tests only)."""
    fake = FakeKubernetes()
    app.state.deployments.kube_transport = fake.transport()
    app.state.deployments_kube = fake
    return fake


def k8s_body(**extra: Any) -> dict[str, Any]:
    return {"model": "iris", "version": 1, "image": "registry.test/iris:v1", **extra}


async def test_clusters_list_local_and_kubernetes(client: httpx.AsyncClient, auth: Auth) -> None:
    r = await client.get("/api/v1/clusters", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    items = {c["name"]: c for c in r.json()["data"]}
    assert list(items) == ["local", "staging", "prod", "lab"]
    local = items["local"]["capacity"]
    assert local["cpus"] >= 1
    assert local["replicas_running"] == 0
    assert local["max_replicas"] == 16
    assert items["staging"]["configured"] is False
    assert items["prod"]["protected"] is True
    assert "token" not in items["prod"]
    r = await client.get("/api/v1/clusters/prod", headers=auth("viewer"))
    assert r.json()["data"]["namespace"] == "serving"
    assert_error(await client.get("/api/v1/clusters/nope", headers=auth("viewer")), 404)
    assert_error(await client.get("/api/v1/clusters"), 401)


async def test_kubernetes_without_api_url_renders_and_validates(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    r = await client.post(
        "/api/v1/deployments", json=k8s_body(target="staging"), headers=auth("member")
    )
    assert r.status_code == 201, r.text
    dep = r.json()["data"]
    assert dep["status"] == "rendered"
    assert dep["applied"] is False
    assert "nothing was applied" in dep["message"]
    deployment, service = dep["manifests"]
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    assert deployment["metadata"]["namespace"] == "models"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.test/iris:v1"
    assert kubernetes.validate(deployment) == []
    assert kubernetes.validate(service) == []
    broken = {**deployment, "spec": {**deployment["spec"], "selector": {"matchLabels": {"x": "y"}}}}
    assert any("selector" in p for p in kubernetes.validate(broken))
    # predictions are not served here for a Kubernetes target
    r = await client.post(
        f"/api/v1/deployments/{dep['id']}/predict", json={"inputs": [{}]}, headers=auth("member")
    )
    assert_error(r, 409, "NOT_SERVED_HERE")
    # a Kubernetes target needs an image: given, or from a build of the version
    r = await client.post(
        "/api/v1/deployments",
        json={"model": "iris", "version": 1, "target": "staging"},
        headers=auth("member"),
    )
    assert_error(r, 400)
    assert r.json()["error"]["details"][0]["field"] == "image"
    r = await client.post(
        "/api/v1/deployments",
        json=k8s_body(target="staging", image="bad image"),
        headers=auth("member"),
    )
    assert_error(r, 400)
    r = await client.post(
        "/api/v1/deployments",
        json=k8s_body(target="staging", strategy="canary"),
        headers=auth("member"),
    )
    assert_error(r, 400)


async def test_kubernetes_apply_update_and_delete_through_the_api(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path, fake_k8s: FakeKubernetes, app: FastAPI
) -> None:
    await iris_version(client, auth, tmp_path)
    await iris_version(client, auth, tmp_path, new=False)
    r = await client.post(
        "/api/v1/deployments", json=k8s_body(target="lab", replicas_min=2), headers=auth("member")
    )
    assert r.status_code == 201, r.text
    dep = r.json()["data"]
    assert dep["applied"] is True
    assert dep["status"] == "ready"
    name = kubernetes.object_name(dep["id"])
    path = f"/apis/apps/v1/namespaces/default/deployments/{name}"
    assert fake_k8s.objects[path]["spec"]["replicas"] == 2
    assert f"/api/v1/namespaces/default/services/{name}" in fake_k8s.objects
    r = await client.patch(
        f"/api/v1/deployments/{dep['id']}",
        json={"version": 2, "image": "registry.test/iris:v2"},
        headers=auth("member"),
    )
    assert r.status_code == 200, r.text
    container = fake_k8s.objects[path]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.test/iris:v2"
    assert r.json()["data"]["traffic"] == {"2": 100}
    r = await client.delete(f"/api/v1/deployments/{dep['id']}", headers=auth("member"))
    assert r.status_code == 204
    assert fake_k8s.objects == {}
    async with app.state.db.session(write=False) as session:
        rows = await session.execute(select(OUTBOX.table.c.type).order_by(OUTBOX.table.c.seq))
        types = [t for (t,) in rows if ".deployment." in t]
    assert types == [
        "inwire.modelops.deployment.created",
        "inwire.modelops.deployment.rollout_started",
        "inwire.modelops.deployment.deleted",
    ]
    assert (await client.get(f"/api/v1/deployments/{dep['id']}", headers=auth("viewer"))).json()[
        "data"
    ]["status"] == "stopped"


async def test_kubernetes_api_refusal_is_a_502_and_nothing_is_kept(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path, fake_k8s: FakeKubernetes, app: FastAPI
) -> None:
    await iris_version(client, auth, tmp_path)
    app.state.deployments.kube_transport = httpx.MockTransport(
        lambda request: httpx.Response(403, json={"message": "forbidden by RBAC"})
    )
    r = await client.post(
        "/api/v1/deployments", json=k8s_body(target="lab"), headers=auth("member")
    )
    assert_error(r, 502, "KUBERNETES_ERROR")
    assert "forbidden by RBAC" in r.json()["error"]["message"]
    listed = await client.get("/api/v1/deployments", headers=auth("viewer"))
    assert listed.json()["meta"]["total"] == 0


async def test_protected_target_waits_for_approval(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path, fake_k8s: FakeKubernetes
) -> None:
    await iris_version(client, auth, tmp_path)
    r = await client.post(
        "/api/v1/deployments", json=k8s_body(target="prod"), headers=auth("member")
    )
    assert r.status_code == 202, r.text
    approval = r.json()["data"]
    assert r.json()["meta"]["approval_required"] is True
    assert approval["kind"] == "deployment.apply"
    assert approval["status"] == "pending"
    assert fake_k8s.objects == {}
    # the same request again: the same pending approval
    again = await client.post(
        "/api/v1/deployments", json=k8s_body(target="prod"), headers=auth("member")
    )
    assert again.json()["data"]["id"] == approval["id"]
    r = await client.post(
        f"/api/v1/approvals/{approval['id']}/approve", json={}, headers=auth("admin")
    )
    assert r.status_code == 200, r.text
    decided = r.json()["data"]
    assert decided["status"] == "approved", decided
    dep_id = decided["result"]["deployment_id"]
    dep = (await client.get(f"/api/v1/deployments/{dep_id}", headers=auth("viewer"))).json()["data"]
    assert dep["applied"] is True
    assert dep["target"] == "prod"
    assert any(p.startswith("/apis/apps/v1/namespaces/serving/") for p in fake_k8s.objects)
    audit = await client.get("/api/v1/audit", params={"resource_id": dep_id}, headers=auth("admin"))
    assert "deployment.create" in [e["action"] for e in audit.json()["data"]]


async def test_create_validation(client: httpx.AsyncClient, auth: Auth, tmp_path: Path) -> None:
    await iris_version(client, auth, tmp_path)
    bad: list[dict[str, Any]] = [
        {"model": "iris"},  # neither version nor alias
        {"model": "iris", "version": 1, "alias": "champion"},
        {"model": "iris", "version": 9},
        {"model": "iris", "alias": "nope"},
        {"model": "iris", "version": 1, "target": "mars"},
        {"model": "iris", "version": 1, "strategy": "yolo"},
        {"model": "iris", "version": 1, "replicas_min": 3, "replicas_max": 2},
        {
            "model": "iris",
            "version": 1,
            "strategy": "canary",
            "strategy_params": {"steps": [50, 10]},
        },
        {"model": "iris", "version": 1, "strategy_params": {"steps": [10, 100]}},
        {"model": "iris", "version": 1, "autoscaling": {"metric": "cpu", "target": 1}},
        {"model": "iris", "version": 1, "extra": True},
    ]
    for body in bad:
        r = await client.post("/api/v1/deployments", json=body, headers=auth("member"))
        assert_error(r, 400)
    r = await client.post(
        "/api/v1/deployments", json={"model": "nope", "version": 1}, headers=auth("member")
    )
    assert_error(r, 404)


async def test_roles_organizations_list_and_filters(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    r = await client.post(
        "/api/v1/deployments", json=k8s_body(target="staging"), headers=auth("viewer")
    )
    assert_error(r, 403)
    ids = []
    for env in ("staging", "production"):
        r = await client.post(
            "/api/v1/deployments",
            json=k8s_body(target="staging", environment=env, name=f"iris-{env}"),
            headers=auth("member"),
        )
        ids.append(r.json()["data"]["id"])
    r = await client.get("/api/v1/deployments", headers=auth("viewer"))
    assert r.json()["meta"]["total"] == 2
    r = await client.get(
        "/api/v1/deployments", params={"environment": "production"}, headers=auth("viewer")
    )
    assert [d["id"] for d in r.json()["data"]] == [ids[1]]
    r = await client.get(
        "/api/v1/deployments", params={"status": "ready", "model": "iris"}, headers=auth("viewer")
    )
    assert r.json()["meta"]["total"] == 0
    r = await client.get(
        "/api/v1/deployments", params={"per_page": 1, "page": 2}, headers=auth("viewer")
    )
    assert len(r.json()["data"]) == 1
    assert r.json()["meta"]["total"] == 2
    assert_error(
        await client.get("/api/v1/deployments", params={"status": "x"}, headers=auth("viewer")), 400
    )
    # another organization sees none of it
    r = await client.get("/api/v1/deployments", headers=auth("admin", org="b"))
    assert r.json()["meta"]["total"] == 0
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"replicas_max": 3}),
        ("POST", "/traffic", {"weight": 20}),
        ("POST", "/promote", None),
        ("POST", "/rollback", None),
        ("GET", "/shadow", None),
        ("POST", "/predict", {"inputs": [{}]}),
        ("DELETE", "", None),
    ]:
        r = await client.request(
            method,
            f"/api/v1/deployments/{ids[0]}{suffix}",
            json=body,
            headers=auth("admin", org="b"),
        )
        assert_error(r, 404)
    # wrong roles
    for method, suffix, body in [
        ("PATCH", "", {"replicas_max": 3}),
        ("POST", "/traffic", {"weight": 20}),
        ("POST", "/promote", None),
        ("POST", "/rollback", None),
        ("DELETE", "", None),
        ("POST", "/predict", {"inputs": [{}]}),
    ]:
        r = await client.request(
            method, f"/api/v1/deployments/{ids[0]}{suffix}", json=body, headers=auth("viewer")
        )
        assert_error(r, 403)
    for content in (b"not json", b"[1, 2]"):
        r = await client.post(
            f"/api/v1/deployments/{ids[0]}/predict", content=content, headers=auth("member")
        )
        assert_error(r, 400)
    # nothing rolling out: no traffic to set, nothing to promote or roll back
    for suffix, body in [("/traffic", {"weight": 20}), ("/promote", None), ("/rollback", None)]:
        r = await client.post(
            f"/api/v1/deployments/{ids[0]}{suffix}", json=body, headers=auth("member")
        )
        assert_error(r, 409, "NO_ROLLOUT")
    assert_error(
        await client.post(
            f"/api/v1/deployments/{ids[0]}/traffic", json={"weight": 101}, headers=auth("member")
        ),
        400,
    )
    r = await client.patch(
        f"/api/v1/deployments/{ids[0]}",
        json={"replicas_min": 4, "replicas_max": 2},
        headers=auth("member"),
    )
    assert_error(r, 400)
    r = await client.patch(
        f"/api/v1/deployments/{ids[0]}", json={"version": 1}, headers=auth("member")
    )
    assert_error(r, 400)
