"""Approvals: promotion to production waits for an approver who is not the requester."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from governance_helpers import (
    decide,
    models_with_versions,
    promote,
    require_approval,
    stage_of,
)
from modelops_helpers import Auth
from sqlalchemy import select

from inwire.contracts.modelops import ApprovalPending, ModelOpsClient
from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.db import OUTBOX


async def _event_types(app: FastAPI) -> list[str]:
    async with app.state.db.session(write=False) as session:
        rows = await session.execute(select(OUTBOX.table.c.type).order_by(OUTBOX.table.c.seq))
        return [t for (t,) in rows if ".approval." in t]


async def test_policy_defaults_to_off_and_promotion_runs_at_once(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    r = await client.get("/api/v1/governance/policy", headers=auth("viewer"))
    assert r.status_code == 200
    assert r.json()["data"]["require_approval_for_production"] is False
    r = await promote(client, auth, 1)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["stage"] == "Production"
    r = await client.get("/api/v1/approvals", headers=auth("viewer"))
    assert r.json()["meta"]["total"] == 0


async def test_policy_is_set_by_approvers_per_organization(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    body = {"require_approval_for_production": True}
    for role in ("member", "viewer"):
        r = await client.put("/api/v1/governance/policy", json=body, headers=auth(role))
        assert_error(r, 403)
    for bad in ({"require_approval_for_production": "yes"}, {}, {**body, "other": 1}):
        r = await client.put("/api/v1/governance/policy", json=bad, headers=auth("admin"))
        assert_error(r, 400)
    r = await client.put("/api/v1/governance/policy", json=body, headers=auth("owner"))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["require_approval_for_production"] is True
    assert data["updated_by"] == identity("owner").user_id
    r = await client.get("/api/v1/governance/policy", headers=auth("member"))
    assert r.json()["data"]["require_approval_for_production"] is True
    r = await client.get("/api/v1/governance/policy", headers=auth("admin", "b"))
    assert r.json()["data"]["require_approval_for_production"] is False
    r = await client.put(
        "/api/v1/governance/policy",
        json={"require_approval_for_production": False},
        headers=auth("admin"),
    )
    assert r.json()["data"]["require_approval_for_production"] is False


async def test_request_then_approval_by_another_approver_runs_the_promotion(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    r = await promote(client, auth, 1)
    assert r.status_code == 202, r.text
    assert r.json()["meta"] == {"approval_required": True}
    approval = r.json()["data"]
    assert approval["status"] == "pending"
    assert approval["kind"] == "model.promote"
    assert approval["requested_by"] == identity("member").user_id
    assert approval["payload"]["version"] == 1
    assert "churn version 1" in approval["summary"]
    assert await stage_of(client, auth, 1) == "None"
    # Asking again finds the same pending request.
    again = await promote(client, auth, 1)
    assert again.status_code == 202
    assert again.json()["data"]["id"] == approval["id"]
    # A member (no approver permission) may not decide it.
    assert_error(await decide(client, auth, approval["id"], role="member"), 403, "FORBIDDEN")
    assert_error(await decide(client, auth, approval["id"], role="viewer"), 403)

    r = await decide(client, auth, approval["id"], comment="looks good")
    assert r.status_code == 200, r.text
    done = r.json()["data"]
    assert done["status"] == "approved"
    assert done["decided_by"] == identity("admin").user_id
    assert done["comment"] == "looks good"
    assert done["decided_at"] is not None
    assert done["result"]["version"]["stage"] == "Production"
    assert done["error"] is None
    assert await stage_of(client, auth, 1) == "Production"
    # Approving twice, or rejecting a decided one, is a conflict.
    assert_error(await decide(client, auth, approval["id"], role="owner"), 409, "NOT_PENDING")
    r = await decide(client, auth, approval["id"], "reject", role="owner")
    assert_error(r, 409, "NOT_PENDING")
    # Already in production: nothing to approve.
    assert (await promote(client, auth, 1)).status_code == 200
    assert await _event_types(app) == [
        "inwire.modelops.approval.requested",
        "inwire.modelops.approval.approved",
    ]


async def test_self_approval_is_refused(client: httpx.AsyncClient, auth: Auth) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    r = await promote(client, auth, 1, role="admin")
    assert r.status_code == 202
    approval_id = r.json()["data"]["id"]
    assert_error(await decide(client, auth, approval_id), 403, "SELF_APPROVAL")
    assert_error(await decide(client, auth, approval_id, "reject"), 403, "SELF_APPROVAL")
    assert await stage_of(client, auth, 1) == "None"
    r = await decide(client, auth, approval_id, role="owner")
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "approved"


async def test_reject_with_a_comment_never_runs_the_action(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    approval_id = (await promote(client, auth, 1)).json()["data"]["id"]
    assert_error(await decide(client, auth, approval_id, "reject", comment="x" * 2001), 400)
    r = await decide(client, auth, approval_id, "reject", comment="no metrics yet")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["status"], data["comment"], data["result"]) == ("rejected", "no metrics yet", None)
    assert await stage_of(client, auth, 1) == "None"
    assert_error(await decide(client, auth, approval_id), 409, "NOT_PENDING")
    # A new request after a rejection is a new approval.
    r = await promote(client, auth, 1)
    assert r.status_code == 202
    assert r.json()["data"]["id"] != approval_id
    assert "inwire.modelops.approval.rejected" in await _event_types(app)


async def test_only_the_requester_cancels(client: httpx.AsyncClient, auth: Auth) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    approval_id = (await promote(client, auth, 1)).json()["data"]["id"]
    r = await decide(client, auth, approval_id, "cancel", role="admin")
    assert_error(r, 403, "NOT_REQUESTER")
    r = await decide(client, auth, approval_id, "cancel", role="member")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "cancelled"
    assert_error(await decide(client, auth, approval_id, "cancel", role="member"), 409)
    assert_error(await decide(client, auth, approval_id), 409, "NOT_PENDING")


async def test_another_organization_sees_no_approval(client: httpx.AsyncClient, auth: Auth) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    approval_id = (await promote(client, auth, 1)).json()["data"]["id"]
    r = await client.get(f"/api/v1/approvals/{approval_id}", headers=auth("admin", "b"))
    assert_error(r, 404)
    for verb in ("approve", "reject", "cancel"):
        assert_error(await decide(client, auth, approval_id, verb, org="b"), 404)
    r = await client.get("/api/v1/approvals", headers=auth("admin", "b"))
    assert r.json()["meta"]["total"] == 0
    assert_error(await client.get("/api/v1/approvals/apr_nope", headers=auth("admin")), 404)
    assert await stage_of(client, auth, 1) == "None"


async def test_approvals_list_filters_and_pages(client: httpx.AsyncClient, auth: Auth) -> None:
    await models_with_versions(client, auth, 3)
    await require_approval(client, auth)
    ids = [(await promote(client, auth, v)).json()["data"]["id"] for v in (1, 2)]
    ids.append((await promote(client, auth, 3, role="admin")).json()["data"]["id"])
    await decide(client, auth, ids[0], "reject")
    h = auth("viewer")
    r = await client.get("/api/v1/approvals?per_page=2", headers=h)
    assert r.status_code == 200
    assert r.json()["meta"] == {"page": 1, "per_page": 2, "total": 3}
    assert [a["id"] for a in r.json()["data"]] == [ids[2], ids[1]]
    r = await client.get("/api/v1/approvals?per_page=2&page=2", headers=h)
    assert [a["id"] for a in r.json()["data"]] == [ids[0]]
    r = await client.get("/api/v1/approvals?status=pending", headers=h)
    assert {a["id"] for a in r.json()["data"]} == set(ids[1:])
    member = identity("member").user_id
    r = await client.get(f"/api/v1/approvals?requested_by={member}", headers=h)
    assert {a["id"] for a in r.json()["data"]} == set(ids[:2])
    r = await client.get("/api/v1/approvals?kind=deployment.apply", headers=h)
    assert r.json()["meta"]["total"] == 0
    r = await client.get(f"/api/v1/approvals/{ids[1]}", headers=h)
    assert r.json()["data"]["status"] == "pending"
    assert_error(await client.get("/api/v1/approvals?status=maybe", headers=h), 400)
    assert_error(await client.get("/api/v1/approvals?per_page=1000", headers=h), 400)


async def test_a_failed_action_is_stored_on_the_approval(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    approval_id = (await promote(client, auth, 1)).json()["data"]["id"]
    r = await client.delete("/api/v1/models/churn/versions/1", headers=auth("member"))
    assert r.status_code == 204
    r = await decide(client, auth, approval_id)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "failed"
    assert data["error"]["status"] == 404
    assert data["error"]["code"] == "NOT_FOUND"
    assert data["result"] is None
    assert_error(await decide(client, auth, approval_id, role="owner"), 409)


async def test_production_alias_is_gated_other_aliases_and_stages_are_not(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 2)
    await require_approval(client, auth)
    h = auth("member")
    r = await client.put("/api/v1/models/churn/aliases/champion", json={"version": 1}, headers=h)
    assert r.status_code == 200
    r = await client.post(
        "/api/v1/models/churn/versions/1/stage", json={"stage": "Staging"}, headers=h
    )
    assert r.status_code == 200
    r = await client.put("/api/v1/models/churn/aliases/Production", json={"version": 2}, headers=h)
    assert r.status_code == 202, r.text
    approval = r.json()["data"]
    assert approval["payload"]["alias"] == "Production"
    r = await client.get("/api/v1/models/churn/aliases/Production", headers=h)
    assert_error(r, 404)
    assert (await decide(client, auth, approval["id"])).json()["data"]["status"] == "approved"
    r = await client.get("/api/v1/models/churn/aliases/Production", headers=h)
    assert r.json()["data"]["version"] == 2
    # Pointing it where it already points asks nothing; an unknown version is still 404.
    r = await client.put("/api/v1/models/churn/aliases/Production", json={"version": 2}, headers=h)
    assert r.status_code == 200
    r = await client.put("/api/v1/models/churn/aliases/production", json={"version": 9}, headers=h)
    assert_error(r, 404)
    # Leaving production is never gated.
    assert (
        await client.delete("/api/v1/models/churn/aliases/Production", headers=h)
    ).status_code == 204


async def test_gated_promotion_refuses_bad_input_before_asking(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    assert_error(await promote(client, auth, 7), 404)
    assert_error(await promote(client, auth, 1, role="viewer"), 403)
    assert_error(await promote(client, auth, 1, role="admin", model="other"), 404)
    r = await client.get("/api/v1/approvals", headers=auth("viewer"))
    assert r.json()["meta"]["total"] == 0


async def test_contract_client_raises_approval_pending(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, token_factory: Callable[..., str]
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    async with ModelOpsClient(app=app, credentials=token_factory("member")) as registry:
        with pytest.raises(ApprovalPending) as stage:
            await registry.transition_stage("churn", 1, "production")
        assert stage.value.status == 409
        assert stage.value.approval["status"] == "pending"
        assert stage.value.approval["id"] in stage.value.message
        with pytest.raises(ApprovalPending):
            await registry.set_alias("churn", "production", 1)
        assert (await registry.transition_stage("churn", 1, "Staging")).stage == "Staging"


def test_mlflow_layer_explains_a_pending_approval() -> None:
    from inwire.services.training.mlflow.errors import translate

    pending: dict[str, Any] = {"id": "apr_1", "summary": "Move churn version 1 to Production"}
    response = translate(ApprovalPending(pending))
    assert response.status_code == 409
    body = response.body.decode()
    assert "RESOURCE_CONFLICT" in body
    assert "waits for approval" in body
    assert "apr_1" in body


async def test_the_same_request_at_once_makes_one_approval(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    await models_with_versions(client, auth, 1)
    await require_approval(client, auth)
    answers = await asyncio.gather(
        *(promote(client, auth, 1, role) for role in ("member", "admin"))
    )
    assert [r.status_code for r in answers] == [202, 202]
    assert len({r.json()["data"]["id"] for r in answers}) == 1
    r = await client.get("/api/v1/approvals", headers=auth("viewer"))
    assert r.json()["meta"]["total"] == 1
