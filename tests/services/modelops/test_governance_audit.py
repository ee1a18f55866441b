"""The audit trail: every registry and approval action, who, when, before and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from governance_helpers import decide, models_with_versions, promote, require_approval
from modelops_helpers import Auth

from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error


async def _entries(client: httpx.AsyncClient, auth: Auth, query: str = "") -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/audit?per_page=100&{query}", headers=auth("admin"))
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["data"]
    return entries


async def test_registry_actions_are_audited_with_before_and_after(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    h = auth("member")
    model_id = (await client.get("/api/v1/models/churn", headers=h)).json()["data"]["id"]
    assert (
        await client.patch("/api/v1/models/churn", json={"description": "v2"}, headers=h)
    ).status_code == 200
    await client.put("/api/v1/models/churn/tags/team", json={"value": "risk"}, headers=h)
    await client.put("/api/v1/models/churn/versions/1/tags/ok", json={"value": "1"}, headers=h)
    await client.put("/api/v1/models/churn/aliases/champion", json={"version": 1}, headers=h)
    await client.post("/api/v1/models/churn/versions/1/stage", json={"stage": "Staging"}, headers=h)
    await client.delete("/api/v1/models/churn/aliases/champion", headers=h)

    actions = [e["action"] for e in reversed(await _entries(client, auth))]
    assert actions == [
        "model.create",
        "model.version.create",
        "model.update",
        "model.tag.set",
        "model.version.tag.set",
        "model.alias.set",
        "model.version.stage",
        "model.alias.delete",
    ]
    (update,) = await _entries(client, auth, "action=model.update")
    assert update["actor"] == identity("member").user_id
    assert (update["resource_type"], update["resource_id"]) == ("model", model_id)
    assert update["before"]["description"] == ""
    assert update["after"]["description"] == "v2"
    (stage,) = await _entries(client, auth, "action=model.version.stage")
    assert stage["before"] == {"stage": "None"}
    assert stage["after"] == {"stage": "Staging", "archived_versions": []}
    (created,) = await _entries(client, auth, "action=model.version.create")
    assert created["before"] is None
    assert created["after"]["status"] == "READY"
    assert created["after"]["version"] == 1
    on_model = await _entries(client, auth, f"resource_type=model&resource_id={model_id}")
    assert len(on_model) == 5
    r = await client.get(f"/api/v1/audit/{update['id']}", headers=auth("owner"))
    assert r.json()["data"] == update

    await client.delete("/api/v1/models/churn/versions/1", headers=h)
    await client.delete("/api/v1/models/churn", headers=h)
    (gone,) = await _entries(client, auth, "action=model.delete")
    assert (gone["before"]["name"], gone["after"]) == ("churn", None)
    (version_gone,) = await _entries(client, auth, "action=model.version.delete")
    assert version_gone["before"]["tags"] == {"ok": "1"}


async def test_approvals_and_their_outcome_are_audited(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    approval_id = (await promote(client, auth, 1)).json()["data"]["id"]
    await decide(client, auth, approval_id)
    entries = await _entries(client, auth, f"resource_id={approval_id}")
    assert [e["action"] for e in reversed(entries)] == [
        "approval.request",
        "approval.approve",
        "approval.execute",
    ]
    request, approve_, execute = reversed(entries)
    assert request["actor"] == identity("member").user_id
    assert approve_["actor"] == identity("admin").user_id
    assert approve_["before"]["status"] == "pending"
    assert approve_["after"]["status"] == "approved"
    assert execute["after"]["result"]["version"]["stage"] == "Production"
    # The executed action itself, by the approver.
    (stage,) = await _entries(client, auth, "action=model.version.stage")
    assert stage["actor"] == identity("admin").user_id
    (policy,) = await _entries(client, auth, "action=governance.policy.update")
    assert policy["before"] == {"require_approval_for_production": False}
    assert policy["after"] == {"require_approval_for_production": True}


async def test_audit_is_admin_only_filtered_paged_and_per_organization(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 2)
    for role in ("member", "viewer"):
        assert_error(await client.get("/api/v1/audit", headers=auth(role)), 403)
    r = await client.get("/api/v1/audit?per_page=2", headers=auth("admin"))
    assert r.json()["meta"] == {"page": 1, "per_page": 2, "total": 3}
    r = await client.get("/api/v1/audit?per_page=2&page=2&order=asc", headers=auth("admin"))
    assert [e["action"] for e in r.json()["data"]] == ["model.version.create"]
    member = identity("member").user_id
    assert len(await _entries(client, auth, f"actor={member}")) == 3
    assert await _entries(client, auth, "actor=usr_nobody") == []
    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    earlier = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert len(await _entries(client, auth, f"since={earlier}&until={later}")) == 3
    assert await _entries(client, auth, f"since={later}") == []
    r = await client.get(f"/api/v1/audit?since={later}&until={earlier}", headers=auth("admin"))
    assert_error(r, 400)
    assert_error(await client.get("/api/v1/audit?since=yesterday", headers=auth("admin")), 400)
    assert_error(await client.get("/api/v1/audit?sort=actor", headers=auth("admin")), 400)
    r = await client.get("/api/v1/audit", headers=auth("admin", "b"))
    assert r.json()["meta"]["total"] == 0
    entry_id = (await _entries(client, auth))[0]["id"]
    assert_error(await client.get(f"/api/v1/audit/{entry_id}", headers=auth("admin", "b")), 404)
    assert_error(await client.get(f"/api/v1/audit/{entry_id}", headers=auth("member")), 403)
