"""Each rollout strategy end to end with real model-server processes: canary split and
automatic rollback, shadow mirroring, blue/green switch and rollback, rolling replacement
(and its rollback), a replica killed under traffic, autoscaling, scale to zero, and the
desired state restored after a restart."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from deployments_helpers import (
    BROKEN_LOAD,
    FAILING_PREDICT,
    deploy,
    get,
    iris_version,
    python_version,
    ready_replicas,
    wait_for,
)
from modelops_helpers import Auth
from serving_helpers import expected, rows

from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.app import create_app
from inwire.services.modelops.settings import ModelOpsSettings

pytestmark = pytest.mark.slow

CONSTANT_PREDICT = b"""
class Model:
    def predict(self, rows):
        return [0 for _ in rows]


def load(model_dir):
    return Model()
"""


@pytest.fixture
def modelops_settings(inwire_settings: dict[str, Any]) -> ModelOpsSettings:
    """ModelOps with a quick control loop."""
    return ModelOpsSettings(
        **inwire_settings,
        jobs_concurrency=1,
        deployment_control_interval=0.1,
        deployment_ready_timeout=120,
    )


async def predict(
    client: httpx.AsyncClient, auth: Auth, dep_id: str, records: list[dict[str, Any]]
) -> httpx.Response:
    return await client.post(
        f"/api/v1/deployments/{dep_id}/predict", json={"inputs": records}, headers=auth("member")
    )


def ready(dep: dict[str, Any]) -> bool:
    return dep["status"] == "ready" and ready_replicas(dep, dep["revisions"][-1]["version"]) > 0


async def test_canary_split_manual_traffic_and_promote(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    await iris_version(client, auth, tmp_path, new=False)
    dep = await deploy(client, auth, model="iris", version=1)
    dep = await wait_for(client, auth, dep["id"], ready)
    one = rows(3, start=48)
    r = await predict(client, auth, dep["id"], one)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected(one), "version": 1, "deployment": dep["id"]}
    # validation against the signature, before routing
    bad = await predict(client, auth, dep["id"], [{"sepal_length": "x"}])
    assert_error(bad, 400, "INVALID_INPUT")
    assert {d["field"] for d in bad.json()["error"]["details"]} >= {"sepal_length", "sepal_width"}
    assert_error(
        await client.post(
            f"/api/v1/deployments/{dep['id']}/predict", json={"nope": 1}, headers=auth("member")
        ),
        400,
    )

    r = await client.patch(
        f"/api/v1/deployments/{dep['id']}",
        json={
            "version": 2,
            "strategy": "canary",
            "strategy_params": {"weight": 20, "min_requests": 100_000},
        },
        headers=auth("member"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "rolling_out"
    dep = await wait_for(client, auth, dep["id"], lambda d: d["traffic"] == {"1": 80, "2": 20})
    assert ready_replicas(dep, 2) == 1
    n = 400
    sample = rows(20)
    versions: Counter[int] = Counter()
    for _start in range(0, n, 20):
        answers = await asyncio.gather(
            *(predict(client, auth, dep["id"], [sample[i]]) for i in range(20))
        )
        for a in answers:
            assert a.status_code == 200, a.text
            versions[a.json()["version"]] += 1
            assert a.json()["predictions"] == expected([sample[answers.index(a)]])
    share = versions[2] / n
    sigma = math.sqrt(0.2 * 0.8 / n)
    assert abs(share - 0.2) <= 3 * sigma, versions

    r = await client.post(
        f"/api/v1/deployments/{dep['id']}/traffic", json={"weight": 100}, headers=auth("member")
    )
    assert r.json()["data"]["traffic"] == {"2": 100}
    answers = [await predict(client, auth, dep["id"], one) for _ in range(10)]
    assert {a.json()["version"] for a in answers} == {2}
    r = await client.post(f"/api/v1/deployments/{dep['id']}/promote", headers=auth("member"))
    assert r.status_code == 200, r.text
    dep = await wait_for(
        client, auth, dep["id"], lambda d: d["status"] == "ready" and ready_replicas(d, 1) == 0
    )
    roles = {(rev["version"], rev["role"], rev["status"]) for rev in dep["revisions"]}
    assert roles == {(1, "stable", "retired"), (2, "stable", "ready")}
    audit = await client.get(
        "/api/v1/audit", params={"resource_id": dep["id"]}, headers=auth("admin")
    )
    actions = [e["action"] for e in audit.json()["data"]]
    assert {"deployment.create", "deployment.update", "deployment.traffic"} <= set(actions)
    assert "deployment.promote" in actions


async def test_canary_rolls_back_by_itself_when_its_version_fails(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    await python_version(client, auth, "iris", FAILING_PREDICT)
    dep = await deploy(
        client,
        auth,
        model="iris",
        version=1,
        strategy="canary",
        strategy_params={
            "steps": [50, 100],
            "interval_seconds": 600,
            "max_error_rate": 0.2,
            "min_requests": 10,
        },
    )
    await wait_for(client, auth, dep["id"], ready)
    r = await client.patch(
        f"/api/v1/deployments/{dep['id']}", json={"version": 2}, headers=auth("member")
    )
    assert r.status_code == 200, r.text
    await wait_for(client, auth, dep["id"], lambda d: d["traffic"] == {"1": 50, "2": 50})
    codes: Counter[int] = Counter()
    for _ in range(200):
        r = await predict(client, auth, dep["id"], rows(1))
        codes[r.status_code] += 1
        if r.status_code == 502:
            assert r.json()["error"]["code"] == "MODEL_ERROR"
        if (await get(client, auth, dep["id"]))["status"] == "rolled_back":
            break
    dep = await get(client, auth, dep["id"])
    assert dep["status"] == "rolled_back", (codes, dep)
    assert "automatic rollback" in dep["message"]
    assert "error rate" in dep["message"]
    assert dep["traffic"] == {"1": 100}
    assert codes[502] >= 2
    answers = [await predict(client, auth, dep["id"], rows(2)) for _ in range(10)]
    assert all(a.status_code == 200 and a.json()["version"] == 1 for a in answers)
    audit = await client.get(
        "/api/v1/audit", params={"resource_id": dep["id"]}, headers=auth("admin")
    )
    rollback = [e for e in audit.json()["data"] if e["action"] == "deployment.rollback"]
    assert rollback
    assert rollback[0]["actor"] == "system:deployments"


async def test_shadow_mirrors_without_changing_responses(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    await python_version(client, auth, "iris", CONSTANT_PREDICT)
    dep = await deploy(client, auth, model="iris", version=1, strategy="shadow")
    await wait_for(client, auth, dep["id"], ready)
    r = await client.patch(
        f"/api/v1/deployments/{dep['id']}", json={"version": 2}, headers=auth("member")
    )
    assert r.status_code == 200, r.text
    await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 2) == 1)
    sample = rows(40, start=30)  # classes 0 and 1
    for record in sample:
        r = await predict(client, auth, dep["id"], [record])
        assert r.json()["version"] == 1
        assert r.json()["predictions"] == expected([record])
    report: dict[str, Any] = {}
    for _ in range(200):
        report = (
            await client.get(f"/api/v1/deployments/{dep['id']}/shadow", headers=auth("viewer"))
        ).json()["data"]
        if report["requests"] == len(sample):
            break
        await asyncio.sleep(0.05)
    zeros = sum(1 for p in expected(sample) if p == 0)
    assert report["shadow_version"] == 2
    assert report["shadow_errors"] == 0
    assert report["agreement_rate"] == pytest.approx(zeros / len(sample))
    assert report["mean_abs_diff"] == pytest.approx(
        sum(abs(p) for p in expected(sample)) / len(sample)
    )
    assert report["latency_ms"]["shadow"]["p50"] is not None
    assert report["latency_ms"]["primary"]["p99"] >= report["latency_ms"]["primary"]["p50"]
    # both versions' answers went to the monitoring recorder (the shadow's too)
    seen: dict[str, int] = {}
    for _ in range(100):
        r = await client.get(f"/api/v1/deployments/{dep['id']}/monitoring", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        seen = {v["version_id"]: v["requests"] for v in r.json()["data"]["versions"]}
        if sum(seen.values()) >= 2 * len(sample):
            break
        await asyncio.sleep(0.1)
    assert sorted(seen.values()) == [len(sample), len(sample)], seen
    r = await client.post(f"/api/v1/deployments/{dep['id']}/rollback", headers=auth("member"))
    assert r.json()["data"]["status"] == "rolled_back"
    await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 2) == 0)


async def test_blue_green_switch_and_instant_rollback(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    await python_version(client, auth, "iris", CONSTANT_PREDICT)
    dep = await deploy(client, auth, model="iris", version=1, strategy="blue_green")
    await wait_for(client, auth, dep["id"], ready)
    await client.patch(
        f"/api/v1/deployments/{dep['id']}", json={"version": 2}, headers=auth("member")
    )
    dep = await wait_for(client, auth, dep["id"], lambda d: d["traffic"] == {"2": 100})
    assert ready_replicas(dep, 1) == 1  # blue kept running
    assert {(r["version"], r["role"]) for r in dep["revisions"]} == {(1, "blue"), (2, "green")}
    r = await predict(client, auth, dep["id"], rows(2, start=60))
    assert r.json() == {"predictions": [0, 0], "version": 2, "deployment": dep["id"]}
    r = await client.post(f"/api/v1/deployments/{dep['id']}/rollback", headers=auth("member"))
    assert r.json()["data"]["traffic"] == {"1": 100}
    r = await predict(client, auth, dep["id"], rows(2, start=60))  # at once: blue was running
    assert r.json()["version"] == 1
    assert r.json()["predictions"] == expected(rows(2, start=60))
    await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 2) == 0)


async def test_rolling_replaces_replicas_and_rolls_back_a_version_that_fails_readiness(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    await python_version(client, auth, "iris", CONSTANT_PREDICT)
    await python_version(client, auth, "iris", BROKEN_LOAD)
    dep = await deploy(client, auth, model="iris", version=1, replicas_min=2)
    await wait_for(client, auth, dep["id"], lambda d: ready(d) and ready_replicas(d, 1) == 2)
    await client.patch(
        f"/api/v1/deployments/{dep['id']}", json={"version": 2}, headers=auth("member")
    )
    seen: set[int] = set()
    for _ in range(600):
        r = await predict(client, auth, dep["id"], rows(1))
        assert r.status_code == 200, r.text  # no request lost during the rollout
        seen.add(r.json()["version"])
        d = await get(client, auth, dep["id"])
        if d["status"] == "ready" and ready_replicas(d, 2) == 2 and ready_replicas(d, 1) == 0:
            break
    assert d["traffic"] == {"2": 100}, d
    assert 2 in seen
    r = await client.patch(
        f"/api/v1/deployments/{dep['id']}", json={"version": 3}, headers=auth("member")
    )
    assert r.status_code == 200
    d = await wait_for(client, auth, dep["id"], lambda d: d["status"] == "rolled_back")
    assert "failed readiness" in d["message"]
    assert "cannot load" in d["message"]
    d = await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 2) == 2)
    assert d["traffic"] == {"2": 100}
    assert (await predict(client, auth, dep["id"], rows(1))).json()["version"] == 2


async def test_a_replica_killed_under_traffic_is_replaced(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    dep = await deploy(client, auth, model="iris", version=1, replicas_min=2)
    dep = await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 1) == 2)
    victim = dep["revisions"][0]["instances"][0]
    stop = asyncio.Event()
    codes: Counter[int] = Counter()

    async def traffic() -> None:
        while not stop.is_set():
            r = await predict(client, auth, dep["id"], rows(2))
            codes[r.status_code] += 1

    workers = [asyncio.create_task(traffic()) for _ in range(8)]
    await asyncio.sleep(0.5)
    os.kill(victim["pid"], signal.SIGKILL)
    d = await wait_for(
        client,
        auth,
        dep["id"],
        lambda d: (
            ready_replicas(d, 1) == 2
            and victim["id"] not in {i["id"] for i in d["revisions"][0]["instances"]}
        ),
    )
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*workers)
    # only requests in flight on the killed process could fail; they are retried elsewhere
    assert set(codes) == {200}, codes
    assert codes[200] > 20, codes
    assert d["status"] == "ready"


async def test_autoscaling_up_under_load_and_down_after(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    dep = await deploy(
        client,
        auth,
        model="iris",
        version=1,
        replicas_min=1,
        replicas_max=3,
        autoscaling={
            "metric": "in_flight",
            "target": 2,
            "scale_up_cooldown_seconds": 0,
            "scale_down_cooldown_seconds": 1,
        },
    )
    await wait_for(client, auth, dep["id"], ready)
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            r = await predict(client, auth, dep["id"], rows(50))
            assert r.status_code == 200, r.text

    workers = [asyncio.create_task(traffic()) for _ in range(12)]
    try:
        await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 1) >= 2, within=120)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    d = await wait_for(
        client,
        auth,
        dep["id"],
        lambda d: ready_replicas(d, 1) == 1 and d["revisions"][0]["replicas"] == 1,
        within=120,
    )
    assert d["status"] == "ready"


async def test_scale_to_zero_and_back_on_the_first_request(
    client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    await iris_version(client, auth, tmp_path)
    dep = await deploy(
        client,
        auth,
        model="iris",
        version=1,
        replicas_min=0,
        replicas_max=2,
        autoscaling={
            "metric": "rps",
            "target": 100,
            "scale_down_cooldown_seconds": 0,
            "scale_to_zero_after_seconds": 1,
        },
    )
    await wait_for(client, auth, dep["id"], lambda d: d["status"] == "ready")
    d = await wait_for(client, auth, dep["id"], lambda d: d["revisions"][0]["instances"] == [])
    assert d["revisions"][0]["replicas"] == 0
    r = await predict(client, auth, dep["id"], rows(2))
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == expected(rows(2))
    d = await get(client, auth, dep["id"])
    if ready_replicas(d, 1) != 1:
        raise AssertionError(json.dumps(d["revisions"]))


async def test_a_restart_restores_the_replicas(
    modelops_settings: ModelOpsSettings, auth: Auth, tmp_path: Path
) -> None:
    async def started() -> tuple[Any, Any]:
        app = create_app(modelops_settings)
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        return app, ctx

    app, ctx = await started()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await iris_version(client, auth, tmp_path)
        dep = await deploy(client, auth, model="iris", version=1)
        await wait_for(client, auth, dep["id"], ready)
    await ctx.__aexit__(None, None, None)  # every replica stops with the app

    app, ctx = await started()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await predict(client, auth, dep["id"], rows(3))  # waits for the restored one
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == expected(rows(3))
            d = await wait_for(client, auth, dep["id"], lambda d: ready_replicas(d, 1) == 1)
            assert d["status"] == "ready"
    finally:
        await ctx.__aexit__(None, None, None)
