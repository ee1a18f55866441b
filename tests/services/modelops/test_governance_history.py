"""Production history: which version served production, when, how, by whom and why."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from governance_helpers import decide, models_with_versions, promote, require_approval
from modelops_helpers import Auth

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.governance.gate import production_changed


async def _history(
    client: httpx.AsyncClient, auth: Auth, query: str = "", role: str = "viewer"
) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/models/churn/production-history?{query}", headers=auth(role))
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["data"]
    return rows


async def _ids(client: httpx.AsyncClient, auth: Auth) -> tuple[str, dict[int, str]]:
    r = await client.get("/api/v1/models/churn/versions", headers=auth("viewer"))
    versions = {v["version"]: v["id"] for v in r.json()["data"]}
    return r.json()["data"][0]["model_id"], versions


async def test_two_promotions_make_two_intervals(client: httpx.AsyncClient, auth: Auth) -> None:
    await models_with_versions(client, auth, 2)
    assert (await promote(client, auth, 1)).status_code == 200
    assert (await promote(client, auth, 2, role="admin", archive=True)).status_code == 200
    second, first = await _history(client, auth)
    assert (first["version"], first["source"]) == (1, "stage")
    assert first["started_by"] == identity("member").user_id
    assert first["start_reason"] == "stage None -> Production"
    assert first["ended_at"] is not None
    assert first["ended_by"] == identity("admin").user_id
    assert first["end_reason"] == "archived: version 2 went to Production"
    assert (second["version"], second["ended_at"], second["deployment_id"]) == (2, None, None)
    assert second["started_at"] >= first["ended_at"]
    # Leaving production ends the interval; coming back opens a new one.
    h = auth("member")
    await client.post("/api/v1/models/churn/versions/2/stage", json={"stage": "None"}, headers=h)
    assert (await _history(client, auth))[0]["end_reason"] == "stage Production -> None"
    assert (await promote(client, auth, 2)).status_code == 200
    rows = await _history(client, auth)
    assert [(r["version"], r["ended_at"] is None) for r in rows] == [
        (2, True),
        (2, False),
        (1, False),
    ]
    assert len(await _history(client, auth, "per_page=1&page=3")) == 1
    assert [r["version"] for r in await _history(client, auth, "order=asc")] == [1, 2, 2]


async def test_approved_promotion_and_alias_and_deployments_are_recorded(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 2)
    model_id, versions = await _ids(client, auth)
    await require_approval(client, auth)
    approval_id = (await promote(client, auth, 1)).json()["data"]["id"]
    assert await _history(client, auth) == []
    await decide(client, auth, approval_id, role="owner")
    (stage,) = await _history(client, auth)
    assert stage["started_by"] == identity("owner").user_id
    assert stage["start_reason"] == f"promotion approved by {identity('owner').user_id}"

    h = auth("admin")
    r = await client.put("/api/v1/models/churn/aliases/production", json={"version": 1}, headers=h)
    approval_id = r.json()["data"]["id"]
    await decide(client, auth, approval_id, role="owner")
    r = await client.put("/api/v1/models/churn/aliases/production", json={"version": 2}, headers=h)
    await decide(client, auth, r.json()["data"]["id"], role="owner")
    aliases = [r for r in await _history(client, auth) if r["source"] == "alias"]
    assert [(a["version"], a["ended_at"] is None) for a in aliases] == [(2, True), (1, False)]

    # What a production deployment serves, as deployments report it.
    async with app.state.db.session() as session:
        for version in (1, 1, 2):
            await production_changed(
                session,
                ORGS["a"],
                model_id=model_id,
                version_id=versions[version],
                deployment_id="dep_1",
                actor="usr_deployer",
                reason=f"rollout to version {version}",
            )
        await production_changed(
            session,
            ORGS["a"],
            model_id=model_id,
            version_id=None,
            deployment_id="dep_2",
            actor="usr_deployer",
            reason="nothing",
        )
    deployed = [r for r in await _history(client, auth) if r["source"] == "deployment"]
    assert [(d["version"], d["deployment_id"], d["ended_at"] is None) for d in deployed] == [
        (2, "dep_1", True),
        (1, "dep_1", False),
    ]
    assert deployed[1]["end_reason"] == "rollout to version 2"
    async with app.state.db.session() as session:
        await production_changed(
            session,
            ORGS["a"],
            model_id=model_id,
            version_id=None,
            deployment_id="dep_1",
            actor="usr_deployer",
            reason="deployment deleted",
        )
    deployed = [r for r in await _history(client, auth) if r["source"] == "deployment"]
    assert deployed[0]["end_reason"] == "deployment deleted"
    # Deleting a version ends whatever it served.
    await client.delete("/api/v1/models/churn/versions/2", headers=h)
    assert all(r["ended_at"] for r in await _history(client, auth) if r["version"] == 2)


async def test_history_reads_window_roles_and_organizations(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await promote(client, auth, 1)
    assert len(await _history(client, auth, "since=2000-01-01T00:00:00Z")) == 1
    assert await _history(client, auth, "until=2000-01-01T00:00:00Z") == []
    r = await client.get(
        "/api/v1/models/churn/production-history?since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z",
        headers=auth("viewer"),
    )
    assert_error(r, 400)
    r = await client.get("/api/v1/models/churn/production-history", headers=auth("admin", "b"))
    assert_error(r, 404)
    r = await client.get("/api/v1/models/nope/production-history", headers=auth("viewer"))
    assert_error(r, 404)
    r = await client.get("/api/v1/models/churn/production-history")
    assert_error(r, 401)
