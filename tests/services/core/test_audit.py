"""The audit log: admins read their organization's security events, nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error

pytestmark = pytest.mark.usefixtures("seeded")

EVENTS = "/api/v1/audit-events"


async def login(client: httpx.AsyncClient, role: str, org: str = "a", password: str = "") -> int:
    who = identity(role, org)
    r = await client.post(
        "/api/v1/auth/login", json={"email": who.email, "password": password or who.password}
    )
    return r.status_code


async def test_login_success_and_failure_appear(client, auth) -> None:
    assert await login(client, "member") == 200
    assert await login(client, "member", password="wrong-password-entirely") == 401
    r = await client.get(
        EVENTS,
        params={"action": "auth.login", "actor_id": identity("member").user_id},
        headers=auth("admin"),
    )
    assert r.status_code == 200, r.text
    events = r.json()["data"]
    assert [e["outcome"] for e in events] == ["failure", "success"]
    for e in events:
        assert e["organization_id"] == ORGS["a"]
        assert e["actor_kind"] == "user"
        assert e["ip"]
    assert events[0]["details"] == {"email": identity("member").email}
    r = await client.get(EVENTS, params={"outcome": "failure"}, headers=auth("owner"))
    assert [e["action"] for e in r.json()["data"]] == ["auth.login"]


async def test_role_change_events_from_own_actions_appear(client, auth) -> None:
    team = (await client.post("/api/v1/teams", json={"name": "t"}, headers=auth())).json()["data"]
    viewer = identity("viewer").user_id
    await client.post(
        f"/api/v1/teams/{team['id']}/members", json={"user_id": viewer}, headers=auth()
    )
    r = await client.patch(
        f"/api/v1/teams/{team['id']}/members/{viewer}", json={"role": "maintainer"}, headers=auth()
    )
    assert r.status_code == 200, r.text
    account = await client.post(
        "/api/v1/service-accounts", json={"name": "bot", "role": "member"}, headers=auth()
    )
    account_id = account.json()["data"]["id"]
    r = await client.patch(
        f"/api/v1/service-accounts/{account_id}", json={"role": "viewer"}, headers=auth()
    )
    assert r.status_code == 200, r.text

    r = await client.get(
        EVENTS, params={"action": "teams.member_role_changed"}, headers=auth("owner")
    )
    (team_change,) = r.json()["data"]
    assert team_change["actor_id"] == identity().user_id
    assert (team_change["target_type"], team_change["target_id"]) == ("team", team["id"])
    assert team_change["details"]["role"] == "maintainer"
    r = await client.get(
        EVENTS,
        params={"target_type": "service_account", "action": "service_accounts.updated"},
        headers=auth(),
    )
    (sa_change,) = r.json()["data"]
    assert sa_change["target_id"] == account_id
    assert sa_change["details"]["changes"]["role"] == {"from": "member", "to": "viewer"}
    one = await client.get(f"{EVENTS}/{sa_change['id']}", headers=auth())
    assert one.status_code == 200
    assert one.json()["data"] == sa_change


async def test_members_and_viewers_get_403(client, auth) -> None:
    await login(client, "admin")
    event_id = (await client.get(EVENTS, headers=auth())).json()["data"][0]["id"]
    for role in ("member", "viewer"):
        assert_error(await client.get(EVENTS, headers=auth(role)), 403, "FORBIDDEN")
        assert_error(await client.get(f"{EVENTS}/{event_id}", headers=auth(role)), 403)
    assert_error(await client.get(EVENTS), 401)


async def test_another_organization_sees_none_of_the_events(client, auth) -> None:
    await login(client, "admin")
    await login(client, "viewer", password="wrong-password-entirely")
    await client.post("/api/v1/teams", json={"name": "a-team"}, headers=auth())
    await login(client, "owner", "b")
    a_events = (await client.get(EVENTS, headers=auth())).json()
    assert a_events["meta"]["total"] == 3
    b_events = await client.get(EVENTS, params={"per_page": 100}, headers=auth("admin", "b"))
    assert b_events.json()["meta"]["total"] == 1
    (only,) = b_events.json()["data"]
    assert only["organization_id"] == ORGS["b"]
    assert only["actor_id"] == identity("owner", "b").user_id
    for e in a_events["data"]:
        assert_error(await client.get(f"{EVENTS}/{e['id']}", headers=auth("admin", "b")), 404)
    r = await client.get(
        EVENTS, params={"actor_id": identity().user_id}, headers=auth("owner", "b")
    )
    assert r.json()["data"] == []
    assert_error(await client.get(f"{EVENTS}/aud_missing", headers=auth()), 404, "NOT_FOUND")


async def test_list_paginates_sorts_filters_and_validates(client, auth) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for role in ("owner", "admin", "member", "viewer"):
        assert await login(client, role) == 200
    await client.post("/api/v1/teams", json={"name": "x"}, headers=auth("member"))
    r = await client.get(EVENTS, params={"per_page": 2}, headers=auth())
    body = r.json()
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 5}
    assert [e["action"] for e in body["data"]] == ["teams.created", "auth.login"]
    r = await client.get(EVENTS, params={"per_page": 2, "page": 3}, headers=auth())
    assert [e["actor_id"] for e in r.json()["data"]] == [identity("owner").user_id]
    r = await client.get(EVENTS, params={"order": "asc", "action": "auth.login"}, headers=auth())
    assert [e["actor_id"] for e in r.json()["data"]] == [
        identity(role).user_id for role in ("owner", "admin", "member", "viewer")
    ]
    r = await client.get(EVENTS, params={"target_type": "team"}, headers=auth())
    assert [e["action"] for e in r.json()["data"]] == ["teams.created"]
    r = await client.get(EVENTS, params={"actor_kind": "service"}, headers=auth())
    assert r.json()["meta"]["total"] == 0
    r = await client.get(EVENTS, params={"since": before.isoformat()}, headers=auth())
    assert r.json()["meta"]["total"] == 5
    r = await client.get(EVENTS, params={"until": before.isoformat()}, headers=auth())
    assert r.json()["meta"]["total"] == 0
    for params in (
        {"sort": "action"},
        {"outcome": "maybe"},
        {"actor_kind": "robot"},
        {"since": "yesterday"},
        {"since": datetime.now(UTC).isoformat(), "until": before.isoformat()},
        {"per_page": 1000},
        {"action": "auth.\x00login"},
    ):
        assert_error(
            await client.get(EVENTS, params=params, headers=auth()), 400, "VALIDATION_ERROR"
        )
