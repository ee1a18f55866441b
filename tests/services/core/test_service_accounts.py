"""Service accounts: admin-only management, their keys, service tokens, deactivation."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error

pytestmark = pytest.mark.usefixtures("seeded")

ACCOUNTS = "/api/v1/service-accounts"
ME = "/api/v1/auth/me"


async def make_account(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str = "nightly-etl",
    role: str = "member",
    **extra: Any,
) -> dict[str, Any]:
    r = await client.post(ACCOUNTS, json={"name": name, "role": role, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def issue_key(
    client: httpx.AsyncClient, headers: dict[str, str], account_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{ACCOUNTS}/{account_id}/keys", json={"name": "k", **body}, headers=headers
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_admin_creates_account_and_its_key_yields_a_service_token(client, auth) -> None:
    account = await make_account(client, auth(), description="Loads data at night")
    assert account["id"].startswith("sa_")
    assert account["is_active"] is True
    assert account["created_by"] == identity().user_id
    assert account["description"] == "Loads data at night"
    r = await issue_key(client, auth(), account["id"])
    assert r.status_code == 201, r.text
    key = r.json()["data"]
    assert key["key"].startswith("iwk_")
    assert key["service_account_id"] == account["id"]
    assert key["user_id"] is None
    assert key["role"] == "member"
    # The key alone authenticates on Core as the service account.
    me = (await client.get(ME, headers=bearer(key["key"]))).json()["data"]
    assert (me["kind"], me["id"], me["role"]) == ("service", account["id"], "member")
    # Exchanged, it gives a JWT of kind "service".
    r = await client.post("/api/v1/auth/token", json={"api_key": key["key"]})
    assert r.status_code == 200, r.text
    token = r.json()["data"]["access_token"]
    claims = claims_of(token)
    assert claims["kind"] == "service"
    assert claims["sub"] == account["id"]
    assert claims["org"] == ORGS["a"]
    assert claims["roles"] == ["member"]
    me = (await client.get(ME, headers=bearer(token))).json()["data"]
    assert (me["kind"], me["id"], me["organization_id"]) == ("service", account["id"], ORGS["a"])
    # The account works with its role: a member may create teams.
    r = await client.post("/api/v1/teams", json={"name": "bots"}, headers=bearer(token))
    assert r.status_code == 201, r.text
    # The key is listed under the account, without its secret.
    r = await client.get(f"{ACCOUNTS}/{account['id']}/keys", headers=auth())
    (listed,) = r.json()["data"]
    assert listed["id"] == key["id"]
    assert "key" not in listed
    assert listed["last_used_at"] is not None


async def test_deactivated_accounts_key_and_token_stop_working(client, auth) -> None:
    account = await make_account(client, auth())
    key = (await issue_key(client, auth(), account["id"])).json()["data"]["key"]
    token = (await client.post("/api/v1/auth/token", json={"api_key": key})).json()["data"]
    token = token["access_token"]
    r = await client.patch(f"{ACCOUNTS}/{account['id']}", json={"is_active": False}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["is_active"] is False
    assert_error(await client.get(ME, headers=bearer(key)), 401)
    assert_error(await client.get(ME, headers=bearer(token)), 401)
    assert_error(await client.post("/api/v1/auth/token", json={"api_key": key}), 401)
    assert_error(await issue_key(client, auth(), account["id"]), 409, "CONFLICT")
    r = await client.patch(f"{ACCOUNTS}/{account['id']}", json={"is_active": True}, headers=auth())
    assert r.status_code == 200
    assert (await client.get(ME, headers=bearer(key))).status_code == 200
    assert (await client.get(ME, headers=bearer(token))).status_code == 200


async def test_deleting_an_account_deletes_its_keys(client, auth) -> None:
    account = await make_account(client, auth())
    key = (await issue_key(client, auth(), account["id"])).json()["data"]
    token = (await client.post("/api/v1/auth/token", json={"api_key": key["key"]})).json()
    r = await client.delete(f"{ACCOUNTS}/{account['id']}", headers=auth())
    assert r.status_code == 204
    assert_error(await client.get(f"{ACCOUNTS}/{account['id']}", headers=auth()), 404)
    assert_error(await client.get(f"/api/v1/api-keys/{key['id']}", headers=auth()), 404)
    assert_error(await client.get(ME, headers=bearer(key["key"])), 401)
    assert_error(await client.get(ME, headers=bearer(token["data"]["access_token"])), 401)
    assert_error(await client.delete(f"{ACCOUNTS}/{account['id']}", headers=auth()), 404)


async def test_members_and_viewers_get_403_on_every_endpoint(client, auth) -> None:
    account = await make_account(client, auth())
    url = f"{ACCOUNTS}/{account['id']}"
    for role in ("member", "viewer"):
        h = auth(role)
        assert_error(await client.get(ACCOUNTS, headers=h), 403, "FORBIDDEN")
        assert_error(
            await client.post(ACCOUNTS, json={"name": "x", "role": "viewer"}, headers=h), 403
        )
        assert_error(await client.get(url, headers=h), 403)
        assert_error(await client.patch(url, json={"description": "x"}, headers=h), 403)
        assert_error(await client.delete(url, headers=h), 403)
        assert_error(await issue_key(client, h, account["id"]), 403)
        assert_error(await client.get(f"{url}/keys", headers=h), 403)


async def test_another_organizations_account_is_404(client, auth) -> None:
    account = await make_account(client, auth())
    url = f"{ACCOUNTS}/{account['id']}"
    b = auth("owner", "b")
    assert_error(await client.get(url, headers=b), 404, "NOT_FOUND")
    assert_error(await client.patch(url, json={"description": "x"}, headers=b), 404)
    assert_error(await client.delete(url, headers=b), 404)
    assert_error(await issue_key(client, b, account["id"]), 404)
    assert_error(await client.get(f"{url}/keys", headers=b), 404)
    assert (await client.get(ACCOUNTS, headers=b)).json()["data"] == []
    assert_error(await client.get(f"{ACCOUNTS}/sa%00", headers=b), 400, "VALIDATION_ERROR")


async def test_roles_cannot_exceed_the_granters_or_the_accounts(client, auth) -> None:
    r = await client.post(ACCOUNTS, json={"name": "root", "role": "owner"}, headers=auth("admin"))
    assert_error(r, 403, "FORBIDDEN")
    owner_account = await make_account(client, auth("owner"), "root", role="owner")
    url = f"{ACCOUNTS}/{owner_account['id']}"
    # An admin cannot steer an account that outranks it.
    assert_error(await client.patch(url, json={"description": "x"}, headers=auth("admin")), 403)
    assert_error(await client.delete(url, headers=auth("admin")), 403)
    assert_error(await issue_key(client, auth("admin"), owner_account["id"]), 403)
    account = await make_account(client, auth("admin"), role="viewer")
    r = await client.patch(f"{ACCOUNTS}/{account['id']}", json={"role": "owner"}, headers=auth())
    assert_error(r, 403)
    # A key cannot outrank its account.
    r = await issue_key(client, auth(), account["id"], role="member")
    assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.patch(f"{ACCOUNTS}/{account['id']}", json={"role": "admin"}, headers=auth())
    assert r.status_code == 200, r.text
    key = await issue_key(client, auth(), account["id"], role="member")
    assert key.json()["data"]["role"] == "member"
    # Lowering the account's role caps the keys it already holds.
    await client.patch(f"{ACCOUNTS}/{account['id']}", json={"role": "viewer"}, headers=auth())
    me = (await client.get(ME, headers=bearer(key.json()["data"]["key"]))).json()["data"]
    assert me["role"] == "viewer"


async def test_validation_errors_and_duplicate_names(client, auth) -> None:
    for body in (
        {},
        {"name": "x"},
        {"name": "", "role": "member"},
        {"name": "x" * 101, "role": "member"},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "member", "description": "d" * 1001},
        {"name": "x", "role": "member", "is_active": False},
    ):
        assert_error(
            await client.post(ACCOUNTS, json=body, headers=auth()), 400, "VALIDATION_ERROR"
        )
    account = await make_account(client, auth(), "etl")
    assert_error(
        await client.post(ACCOUNTS, json={"name": "ETL", "role": "viewer"}, headers=auth()),
        409,
        "CONFLICT",
    )
    url = f"{ACCOUNTS}/{account['id']}"
    for body in (
        {"is_active": None},
        {"role": "root"},
        {"name": "renamed"},
        {"is_active": "maybe"},
    ):
        assert_error(await client.patch(url, json=body, headers=auth()), 400, "VALIDATION_ERROR")
    for body in ({}, {"name": "k", "role": "boss"}, {"name": "k", "expires_in_days": -1}):
        r = await client.post(f"{url}/keys", json=body, headers=auth())
        assert_error(r, 400, "VALIDATION_ERROR")


async def test_list_accounts_and_keys_paginate_sort_and_filter(client, auth) -> None:
    for name, role in (("gamma", "viewer"), ("alpha", "member"), ("beta", "member")):
        await make_account(client, auth(), name, role=role)
    await make_account(client, auth("owner", "b"), "delta")
    r = await client.get(ACCOUNTS, params={"per_page": 2}, headers=auth())
    body = r.json()
    assert [a["name"] for a in body["data"]] == ["alpha", "beta"]
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 3}
    r = await client.get(ACCOUNTS, params={"role": "member", "order": "desc"}, headers=auth())
    assert [a["name"] for a in r.json()["data"]] == ["beta", "alpha"]
    gamma = (await client.get(ACCOUNTS, params={"role": "viewer"}, headers=auth())).json()
    gamma_id = gamma["data"][0]["id"]
    await client.patch(f"{ACCOUNTS}/{gamma_id}", json={"is_active": False}, headers=auth())
    r = await client.get(ACCOUNTS, params={"is_active": "false"}, headers=auth("owner"))
    assert [a["name"] for a in r.json()["data"]] == ["gamma"]
    r = await client.get(ACCOUNTS, params={"sort": "created_at", "order": "asc"}, headers=auth())
    assert [a["name"] for a in r.json()["data"]] == ["gamma", "alpha", "beta"]
    assert_error(await client.get(ACCOUNTS, params={"sort": "role"}, headers=auth()), 400)

    alpha_id = r.json()["data"][1]["id"]
    for name in ("k1", "k2", "k3"):
        assert (await issue_key(client, auth(), alpha_id, name=name)).status_code == 201
    keys_url = f"{ACCOUNTS}/{alpha_id}/keys"
    first = (await client.get(keys_url, params={"per_page": 2}, headers=auth())).json()
    assert [k["name"] for k in first["data"]] == ["k3", "k2"]
    assert first["meta"]["total"] == 3
    await client.delete(f"/api/v1/api-keys/{first['data'][0]['id']}", headers=auth())
    r = await client.get(keys_url, params={"revoked": "false", "sort": "name"}, headers=auth())
    assert [k["name"] for k in r.json()["data"]] == ["k2", "k1"]
    # Admins find service-account keys in the organization's key list too.
    r = await client.get(
        "/api/v1/api-keys", params={"service_account_id": alpha_id}, headers=auth()
    )
    assert r.json()["meta"]["total"] == 3
    assert_error(await client.get(keys_url, params={"revoked": "x"}, headers=auth()), 400)


async def test_service_account_changes_are_audited(client, auth) -> None:
    account = await make_account(client, auth())
    await client.patch(
        f"{ACCOUNTS}/{account['id']}", json={"role": "viewer", "description": "d"}, headers=auth()
    )
    await issue_key(client, auth(), account["id"])
    await client.delete(f"{ACCOUNTS}/{account['id']}", headers=auth())
    r = await client.get(
        "/api/v1/audit-events",
        params={"sort": "created_at", "order": "asc", "actor_id": identity().user_id},
        headers=auth(),
    )
    events = [
        e
        for e in r.json()["data"]
        if e["target_id"] == account["id"]
        or e["details"].get("service_account_id") == account["id"]
    ]
    assert [e["action"] for e in events] == [
        "service_accounts.created",
        "service_accounts.updated",
        "api_keys.created",
        "service_accounts.deleted",
    ]
    assert events[1]["details"]["changes"] == {
        "role": {"from": "member", "to": "viewer"},
        "description": {"from": "", "to": "d"},
    }
    assert events[3]["details"]["keys_deleted"] == 1
