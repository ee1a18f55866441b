"""API keys: created once in plaintext, stored hashed, capped by the owner's role, revocable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.core.apikeys.models import ApiKey
from inwire.services.core.security import token_hash

pytestmark = pytest.mark.usefixtures("seeded")

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"


async def make_key(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "ci", **extra: Any
) -> dict[str, Any]:
    r = await client.post(KEYS, json={"name": name, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_create_returns_the_key_once_and_stores_only_its_hash(client, auth, app) -> None:
    data = await make_key(client, auth("member"), "laptop")
    key = data["key"]
    assert key.startswith("iwk_")
    assert data["prefix"] == key[:12]
    assert data["role"] == "member"
    assert data["user_id"] == identity("member").user_id
    assert data["service_account_id"] is None
    assert data["organization_id"] == ORGS["a"]
    assert data["status"] == "active"
    assert data["expires_at"] is None
    assert data["last_used_at"] is None
    assert data["revoked_at"] is None
    assert "key_hash" not in data
    shown = (await client.get(f"{KEYS}/{data['id']}", headers=auth("member"))).json()["data"]
    assert "key" not in shown
    assert "key_hash" not in shown
    assert shown["prefix"] == data["prefix"]
    listed = (await client.get(KEYS, headers=auth("member"))).json()["data"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    async with app.state.db.session() as session:
        row = (await session.execute(select(ApiKey).where(ApiKey.id == data["id"]))).scalar_one()
    assert row.key_hash == token_hash(key)
    assert key not in {row.key_hash, row.prefix, row.name}


async def test_created_key_authenticates_directly_and_through_token_exchange(client, auth) -> None:
    data = await make_key(client, auth("member"))
    r = await client.get(ME, headers=bearer(data["key"]))
    assert r.status_code == 200, r.text
    me = r.json()["data"]
    assert me["id"] == identity("member").user_id
    assert me["kind"] == "user"
    assert me["role"] == "member"
    assert me["organization_id"] == ORGS["a"]
    r = await client.post("/api/v1/auth/token", json={"api_key": data["key"]})
    assert r.status_code == 200, r.text
    token = r.json()["data"]
    assert token["role"] == "member"
    assert token["refresh_token"] is None
    r = await client.get(ME, headers=bearer(token["access_token"]))
    assert r.status_code == 200
    assert r.json()["data"]["id"] == identity("member").user_id
    # Use is recorded.
    shown = (await client.get(f"{KEYS}/{data['id']}", headers=auth("member"))).json()["data"]
    assert shown["last_used_at"] is not None


async def test_key_role_defaults_to_callers_and_may_not_exceed_it(client, auth) -> None:
    assert (await make_key(client, auth("admin")))["role"] == "admin"
    lower = await make_key(client, auth("member"), role="viewer")
    assert lower["role"] == "viewer"
    me = (await client.get(ME, headers=bearer(lower["key"]))).json()["data"]
    assert me["role"] == "viewer"
    # A viewer-role key cannot write even though its owner could.
    r = await client.post(KEYS, json={"name": "x"}, headers=bearer(lower["key"]))
    assert_error(r, 403, "FORBIDDEN")
    r = await client.post(KEYS, json={"name": "up", "role": "admin"}, headers=auth("member"))
    assert_error(r, 403, "FORBIDDEN")
    r = await client.post(KEYS, json={"name": "up", "role": "owner"}, headers=auth("admin"))
    assert_error(r, 403, "FORBIDDEN")
    assert (await make_key(client, auth("owner"), role="owner"))["role"] == "owner"


async def test_viewer_cannot_create_keys(client, auth) -> None:
    assert_error(await client.post(KEYS, json={"name": "x"}, headers=auth("viewer")), 403)
    assert_error(await client.post(KEYS, json={"name": "x"}), 401)


async def test_create_validation_errors(client, auth) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    far = (datetime.now(UTC) + timedelta(days=4000)).isoformat()
    for body in (
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "x", "role": "superuser"},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": 3651},
        {"name": "x", "expires_in_days": 1, "expires_at": far},
        {"name": "x", "expires_at": "tomorrow"},
        {"name": "x", "expires_at": past},
        {"name": "x", "expires_at": far},
        {"name": "x", "scopes": ["all"]},
    ):
        r = await client.post(KEYS, json=body, headers=auth("member"))
        assert_error(r, 400, "VALIDATION_ERROR")


async def test_expiry_by_days_or_date_and_an_expired_key_is_401(client, auth, app) -> None:
    by_days = await make_key(client, auth("member"), expires_in_days=30)
    expires = datetime.fromisoformat(by_days["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    naive = (datetime.now(UTC) + timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    by_date = await make_key(client, auth("member"), expires_at=naive.isoformat())
    assert datetime.fromisoformat(by_date["expires_at"]) == naive.replace(tzinfo=UTC)
    assert (await client.get(ME, headers=bearer(by_date["key"]))).status_code == 200
    async with app.state.db.session() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == by_date["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert_error(await client.get(ME, headers=bearer(by_date["key"])), 401, "INVALID_API_KEY")
    r = await client.post("/api/v1/auth/token", json={"api_key": by_date["key"]})
    assert_error(r, 401, "INVALID_API_KEY")
    shown = (await client.get(f"{KEYS}/{by_date['id']}", headers=auth("member"))).json()["data"]
    assert shown["status"] == "expired"


async def test_malformed_and_unknown_keys_are_401(client, auth) -> None:
    key = (await make_key(client, auth("member")))["key"]
    last = "A" if key[-1] != "A" else "B"
    broken = key[:-1] + last
    assert_error(await client.get(ME, headers=bearer(broken)), 401, "INVALID_API_KEY")
    r = await client.post("/api/v1/auth/token", json={"api_key": broken})
    assert_error(r, 401, "INVALID_API_KEY")
    assert_error(await client.get(ME, headers=bearer("iwk_short")), 401)
    from inwire.services.core.security import new_api_key

    assert_error(await client.get(ME, headers=bearer(new_api_key())), 401, "INVALID_API_KEY")


async def test_revoked_key_stops_working_and_revoking_again_changes_nothing(client, auth) -> None:
    data = await make_key(client, auth("member"))
    token = (await client.post("/api/v1/auth/token", json={"api_key": data["key"]})).json()
    r = await client.delete(f"{KEYS}/{data['id']}", headers=auth("member"))
    assert r.status_code == 200, r.text
    revoked = r.json()["data"]
    assert revoked["revoked_at"] is not None
    assert revoked["status"] == "revoked"
    assert_error(await client.get(ME, headers=bearer(data["key"])), 401, "INVALID_API_KEY")
    r = await client.post("/api/v1/auth/token", json={"api_key": data["key"]})
    assert_error(r, 401, "INVALID_API_KEY")
    # A token obtained before the revocation belongs to the user and lives out its 15 minutes.
    assert token["data"]["access_token"]
    again = await client.delete(f"{KEYS}/{data['id']}", headers=auth("member"))
    assert again.status_code == 200
    assert again.json()["data"]["revoked_at"] == revoked["revoked_at"]
    events = await client.get(
        "/api/v1/audit-events", params={"target_type": "api_key"}, headers=auth("admin")
    )
    actions = sorted(e["action"] for e in events.json()["data"])
    assert actions == ["api_keys.created", "api_keys.revoked"]


async def test_only_the_owner_or_an_admin_sees_and_revokes_a_key(client, auth) -> None:
    data = await make_key(client, auth("member"))
    url = f"{KEYS}/{data['id']}"
    # Another user of the same organization: no admin rights over the key.
    assert_error(await client.get(url, headers=auth("viewer")), 403, "FORBIDDEN")
    assert_error(await client.delete(url, headers=auth("viewer")), 403, "FORBIDDEN")
    # Another organization: the key does not exist.
    assert_error(await client.get(url, headers=auth("owner", "b")), 404, "NOT_FOUND")
    assert_error(await client.delete(url, headers=auth("owner", "b")), 404, "NOT_FOUND")
    assert_error(await client.get(f"{KEYS}/key_missing", headers=auth()), 404)
    assert_error(await client.delete(f"{KEYS}/key%00", headers=auth()), 400, "VALIDATION_ERROR")
    assert (await client.get(url, headers=auth("admin"))).status_code == 200
    r = await client.delete(url, headers=auth("admin"))
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "revoked"


async def test_listing_own_keys_and_admins_see_all_with_filters_and_pages(client, auth) -> None:
    for name in ("c", "a", "b"):
        await make_key(client, auth("member"), name)
    admin_key = await make_key(client, auth("admin"), "admin-key")
    await make_key(client, auth("member", "b"), "other-org")
    revoked = await make_key(client, auth("member"), "old")
    await client.delete(f"{KEYS}/{revoked['id']}", headers=auth("member"))

    mine = (await client.get(KEYS, headers=auth("member"))).json()
    assert mine["meta"]["total"] == 4
    assert {k["user_id"] for k in mine["data"]} == {identity("member").user_id}
    # A non-admin asking for someone else's keys sees none of them.
    r = await client.get(
        KEYS, params={"user_id": identity("admin").user_id}, headers=auth("member")
    )
    assert r.json()["meta"]["total"] == 0
    r = await client.get(
        KEYS, params={"revoked": "false", "sort": "name", "order": "asc"}, headers=auth("member")
    )
    assert [k["name"] for k in r.json()["data"]] == ["a", "b", "c"]
    r = await client.get(KEYS, params={"revoked": "true"}, headers=auth("member"))
    assert [k["name"] for k in r.json()["data"]] == ["old"]

    every = (await client.get(KEYS, params={"per_page": 2}, headers=auth("admin"))).json()
    assert every["meta"] == {"page": 1, "per_page": 2, "total": 5}
    assert [k["name"] for k in every["data"]] == ["old", "admin-key"]
    r = await client.get(KEYS, params={"user_id": identity("admin").user_id}, headers=auth())
    assert [k["id"] for k in r.json()["data"]] == [admin_key["id"]]
    r = await client.get(
        KEYS,
        params={
            "user_id": identity("member").user_id,
            "revoked": "false",
            "page": 2,
            "per_page": 2,
            "sort": "name",
        },
        headers=auth("admin"),
    )
    assert [k["name"] for k in r.json()["data"]] == ["a"]
    r = await client.get(KEYS, params={"service_account_id": "sa_none"}, headers=auth())
    assert r.json()["data"] == []
    assert (await client.get(KEYS, headers=auth("viewer"))).json()["meta"]["total"] == 0
    b = (await client.get(KEYS, headers=auth("owner", "b"))).json()["data"]
    assert [k["name"] for k in b] == ["other-org"]
    for params in ({"sort": "key_hash"}, {"revoked": "maybe"}, {"per_page": 0}):
        assert_error(await client.get(KEYS, params=params, headers=auth()), 400, "VALIDATION_ERROR")


async def test_demoting_the_owner_caps_the_keys_role(client, auth, app) -> None:
    from inwire.services.core.organizations.models import Membership

    data = await make_key(client, auth("admin"))
    async with app.state.db.session() as session:
        await session.execute(
            update(Membership)
            .where(Membership.user_id == identity("admin").user_id)
            .values(role="viewer")
        )
    me = (await client.get(ME, headers=bearer(data["key"]))).json()["data"]
    assert me["role"] == "viewer"
