"""Core users: the members of an organization, adding them, roles, deactivation, removal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.core.apikeys.models import ApiKey
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.organizations.models import Membership
from inwire.services.core.teams.models import Team, TeamMember
from inwire.services.core.users.models import User

pytestmark = pytest.mark.usefixtures("seeded")

A, B = ORGS["a"], ORGS["b"]
USERS = "/api/v1/users"
NEW_PASSWORD = "a-long-enough-password"


def uid(role: str, org: str = "a") -> str:
    return identity(role, org).user_id


async def login(
    client: httpx.AsyncClient, email: str, password: str, org: str | None = None
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password, "organization_id": org},
    )


async def login_as(client: httpx.AsyncClient, role: str, org: str = "a") -> httpx.Response:
    who = identity(role, org)
    return await login(client, who.email, who.password, who.org_id)


async def audit(app: FastAPI, action: str) -> list[dict[str, Any]]:
    async with app.state.db.session() as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.action == action))
        return [
            {"org": e.organization_id, "actor": e.actor_id, "target": e.target_id, **e.details}
            for e in rows.scalars()
        ]


async def also_member_of_a(app: FastAPI, role: str, org: str, as_role: str) -> str:
    """Make test identity ``role``@``org`` a member of a too; returns the user id."""
    user_id = uid(role, org)
    async with app.state.db.session() as session:
        session.add(
            Membership(id=f"mem_x_{role}{org}", organization_id=A, user_id=user_id, role=as_role)
        )
    return user_id


# -- list and read ------------------------------------------------------------------------


async def test_list_members_of_the_own_organization_with_page_sort_filters(client, auth) -> None:
    r = await client.get(USERS, headers=auth("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"]["total"] == 4
    assert {m["id"] for m in body["data"]} == {
        uid(role) for role in ("owner", "admin", "member", "viewer")
    }
    assert all("password" not in k for m in body["data"] for k in m)
    h = auth()
    by_email = await client.get(f"{USERS}?sort=email&order=asc&per_page=3", headers=h)
    assert [m["email"] for m in by_email.json()["data"]] == [
        "admin@a.example.com",
        "member@a.example.com",
        "owner@a.example.com",
    ]
    page2 = await client.get(f"{USERS}?sort=email&order=asc&per_page=3&page=2", headers=h)
    assert [m["email"] for m in page2.json()["data"]] == ["viewer@a.example.com"]
    assert page2.json()["meta"] == {"page": 2, "per_page": 3, "total": 4}
    by_name = await client.get(f"{USERS}?sort=name&order=desc&per_page=1", headers=h)
    assert by_name.json()["data"][0]["name"] == "viewer a"
    role = await client.get(f"{USERS}?role=member", headers=h)
    assert [m["id"] for m in role.json()["data"]] == [uid("member")]
    email = await client.get(f"{USERS}?email=OWNER@a.example.com", headers=h)
    assert [m["role"] for m in email.json()["data"]] == ["owner"]
    inactive = await client.get(f"{USERS}?is_active=false", headers=h)
    assert inactive.json()["meta"]["total"] == 0
    for bad in ("sort=password_hash", "role=king", "is_active=maybe", "per_page=500"):
        assert_error(await client.get(f"{USERS}?{bad}", headers=h), 400, "VALIDATION_ERROR")
    assert_error(await client.get(USERS), 401)


async def test_get_a_member_and_never_one_of_another_organization(client, auth) -> None:
    r = await client.get(f"{USERS}/{uid('member')}", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["email"], data["role"], data["is_active"]) == (
        "member@a.example.com",
        "member",
        True,
    )
    assert data["joined_at"]
    assert_error(
        await client.get(f"{USERS}/{uid('member', 'b')}", headers=auth()), 404, "NOT_FOUND"
    )
    assert_error(await client.get(f"{USERS}/usr_nope", headers=auth()), 404)


# -- add ----------------------------------------------------------------------------------


async def test_admin_creates_an_account_that_can_sign_in(client, auth, app) -> None:
    body = {"email": "New.Person@Example.com", "name": "New Person", "password": NEW_PASSWORD}
    r = await client.post(USERS, json={**body, "role": "viewer"}, headers=auth())
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert (data["email"], data["role"], data["name"]) == (
        "new.person@example.com",
        "viewer",
        "New Person",
    )
    assert "password" not in r.text
    signed_in = await login(client, "new.person@example.com", NEW_PASSWORD)
    assert signed_in.json()["data"]["organization_id"] == A
    again = await client.post(USERS, json={"email": "new.person@example.com"}, headers=auth())
    assert_error(again, 409, "ALREADY_MEMBER")
    [event] = await audit(app, "members.added")
    assert (event["org"], event["target"], event["role"], event["created_account"]) == (
        A,
        data["id"],
        "viewer",
        True,
    )
    no_password = await client.post(USERS, json={"email": "sso.only@example.com"}, headers=auth())
    assert no_password.status_code == 201
    assert_error(await login(client, "sso.only@example.com", NEW_PASSWORD), 401)


async def test_admin_adds_an_existing_account_by_email_without_touching_its_credentials(
    client, auth
) -> None:
    other = identity("member", "b")
    with_password = await client.post(
        USERS, json={"email": other.email, "password": NEW_PASSWORD}, headers=auth()
    )
    assert_error(with_password, 409, "ACCOUNT_EXISTS")
    r = await client.post(USERS, json={"email": other.email, "name": "Ignored"}, headers=auth())
    assert r.status_code == 201, r.text
    assert (r.json()["data"]["id"], r.json()["data"]["name"]) == (other.user_id, "member b")
    assert (await login(client, other.email, other.password, A)).status_code == 200
    assert (await login(client, other.email, other.password, B)).status_code == 200


async def test_add_member_roles_and_validation(client, auth) -> None:
    fresh = {"email": "someone@example.com", "password": NEW_PASSWORD}
    for role in ("member", "viewer"):
        assert_error(await client.post(USERS, json=fresh, headers=auth(role)), 403)
    as_owner = {**fresh, "role": "owner"}
    assert_error(await client.post(USERS, json=as_owner, headers=auth("admin")), 403)
    for body in (
        {},
        {"email": "not-an-email"},
        {**fresh, "role": "king"},
        {**fresh, "password": "short"},
        {**fresh, "password": "someone@example.com"},
        {**fresh, "name": ""},
        {**fresh, "is_active": False},
    ):
        assert_error(await client.post(USERS, json=body, headers=auth()), 400, "VALIDATION_ERROR")
    r = await client.post(USERS, json=as_owner, headers=auth("owner"))
    assert r.status_code == 201, r.text
    assert r.json()["data"]["role"] == "owner"


# -- update -------------------------------------------------------------------------------


async def test_only_the_user_renames_themselves(client, auth) -> None:
    r = await client.patch(f"{USERS}/{uid('viewer')}", json={"name": "Vee"}, headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["name"] == "Vee"
    other = await client.patch(f"{USERS}/{uid('member')}", json={"name": "X"}, headers=auth())
    assert_error(other, 403)
    viewer_role = await client.patch(
        f"{USERS}/{uid('viewer')}", json={"role": "admin"}, headers=auth("viewer")
    )
    assert_error(viewer_role, 403)
    for body in ({"name": None}, {"name": " "}, {"role": "king"}, {"email": "x@y.example.com"}):
        r = await client.patch(f"{USERS}/{uid('viewer')}", json=body, headers=auth("viewer"))
        assert_error(r, 400, "VALIDATION_ERROR")


async def test_admin_changes_roles_and_the_change_is_audited(client, auth, app) -> None:
    for role in ("member", "viewer"):
        r = await client.patch(
            f"{USERS}/{uid('viewer')}", json={"role": "member"}, headers=auth(role)
        )
        assert_error(r, 403)
    other_org = await client.patch(
        f"{USERS}/{uid('viewer', 'b')}", json={"role": "admin"}, headers=auth()
    )
    assert_error(other_org, 404)
    r = await client.patch(f"{USERS}/{uid('member')}", json={"role": "admin"}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["role"] == "admin"
    me = await client.get("/api/v1/auth/me", headers=auth("member"))
    assert me.json()["data"]["role"] == "admin"
    [event] = await audit(app, "members.role_changed")
    assert (event["actor"], event["target"], event["old"], event["new"]) == (
        uid("admin"),
        uid("member"),
        "member",
        "admin",
    )


async def test_only_an_owner_grants_or_revokes_owner(client, auth) -> None:
    grant = await client.patch(f"{USERS}/{uid('member')}", json={"role": "owner"}, headers=auth())
    assert_error(grant, 403)
    revoke = await client.patch(f"{USERS}/{uid('owner')}", json={"role": "member"}, headers=auth())
    assert_error(revoke, 403)
    r = await client.patch(f"{USERS}/{uid('admin')}", json={"role": "owner"}, headers=auth("owner"))
    assert r.status_code == 200, r.text


async def test_the_last_owner_cannot_be_demoted_or_removed(client, auth) -> None:
    url = f"{USERS}/{uid('owner')}"
    h = auth("owner")
    assert_error(await client.patch(url, json={"role": "admin"}, headers=h), 409, "LAST_OWNER")
    assert_error(await client.delete(url, headers=h), 409, "LAST_OWNER")
    promote = await client.patch(f"{USERS}/{uid('admin')}", json={"role": "owner"}, headers=h)
    assert promote.status_code == 200
    # With a second owner, the first may step down; then the second is the last one.
    assert (await client.patch(url, json={"role": "admin"}, headers=h)).status_code == 200
    last = f"{USERS}/{uid('admin')}"
    assert_error(await client.delete(last, headers=auth("admin")), 409, "LAST_OWNER")


# -- deactivation ---------------------------------------------------------------------------


async def test_deactivating_a_single_organization_account_locks_it_out_until_reactivated(
    client, auth, app
) -> None:
    pair = (await login_as(client, "viewer")).json()["data"]
    url = f"{USERS}/{uid('viewer')}"
    r = await client.patch(url, json={"is_active": False}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["is_active"] is False
    assert_error(await login_as(client, "viewer"), 401)
    refreshed = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_error(refreshed, 401)
    listed = await client.get(f"{USERS}?is_active=false", headers=auth())
    assert [m["id"] for m in listed.json()["data"]] == [uid("viewer")]
    assert (await audit(app, "users.deactivated"))[0]["target"] == uid("viewer")
    back = await client.patch(url, json={"is_active": True}, headers=auth())
    assert back.json()["data"]["is_active"] is True
    assert (await login_as(client, "viewer")).status_code == 200
    yourself = await client.patch(
        f"{USERS}/{uid('admin')}", json={"is_active": False}, headers=auth()
    )
    assert_error(yourself, 409, "SELF_DEACTIVATION")
    assert_error(
        await client.patch(f"{USERS}/{uid('owner')}", json={"is_active": False}, headers=auth()),
        403,
    )
    assert_error(
        await client.patch(url, json={"is_active": False}, headers=auth("member")),
        403,
    )


async def test_deactivating_an_account_shared_with_another_organization_only_removes_it_here(
    client, auth, app
) -> None:
    shared = await also_member_of_a(app, "member", "b", "member")
    r = await client.patch(f"{USERS}/{shared}", json={"is_active": False}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["is_active"] is False
    assert_error(await client.get(f"{USERS}/{shared}", headers=auth()), 404)
    assert (await login_as(client, "member", "b")).status_code == 200
    [event] = await audit(app, "members.removed")
    assert (event["org"], event["target"], event["reason"]) == (A, shared, "deactivated")


async def test_an_organization_never_reactivates_an_account_deactivated_elsewhere(
    client, auth, app
) -> None:
    shared = await also_member_of_a(app, "viewer", "b", "viewer")
    async with app.state.db.session() as session:
        await session.execute(update(User).where(User.id == shared).values(is_active=False))
    r = await client.patch(f"{USERS}/{shared}", json={"is_active": True}, headers=auth())
    assert_error(r, 409, "ACCOUNT_SHARED")
    disabled = identity("member", "b")
    async with app.state.db.session() as session:
        await session.execute(
            update(User).where(User.id == disabled.user_id).values(is_active=False)
        )
    r = await client.post(USERS, json={"email": disabled.email}, headers=auth())
    assert_error(r, 409, "ACCOUNT_DEACTIVATED")


# -- removal --------------------------------------------------------------------------------


async def test_admin_removes_a_member_ending_their_sessions_keys_and_team_places_here(
    client, auth, app
) -> None:
    async with app.state.db.session() as session:
        session.add(Team(id="team_x", organization_id=A, name="x"))
        await session.flush()
        session.add(
            TeamMember(
                id="tm_x", organization_id=A, team_id="team_x", user_id=uid("member"), role="member"
            )
        )
        session.add(
            ApiKey(
                id="key_x",
                organization_id=A,
                name="laptop",
                prefix="iwk_x",
                key_hash="0" * 64,
                role="member",
                user_id=uid("member"),
                created_by=uid("member"),
            )
        )
    pair = (await login_as(client, "member")).json()["data"]
    r = await client.delete(f"{USERS}/{uid('member')}", headers=auth())
    assert r.status_code == 204, r.text
    assert_error(await client.get(f"{USERS}/{uid('member')}", headers=auth()), 404)
    refreshed = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_error(refreshed, 401)
    assert_error(await client.get("/api/v1/auth/me", headers=auth("member")), 401)
    async with app.state.db.session() as session:
        places = await session.scalar(select(func.count()).select_from(TeamMember))
        key = await session.get(ApiKey, "key_x")
    assert places == 0
    assert key is not None
    assert key.revoked_at is not None
    [event] = await audit(app, "members.removed")
    assert (event["actor"], event["target"], event["role"]) == (
        uid("admin"),
        uid("member"),
        "member",
    )


async def test_removal_roles_tenancy_and_leaving(client, auth) -> None:
    for role in ("member", "viewer"):
        assert_error(await client.delete(f"{USERS}/{uid('admin')}", headers=auth(role)), 403)
    assert_error(await client.delete(f"{USERS}/{uid('owner')}", headers=auth()), 403)
    assert_error(await client.delete(f"{USERS}/{uid('viewer', 'b')}", headers=auth()), 404)
    leave = await client.delete(f"{USERS}/{uid('viewer')}", headers=auth("viewer"))
    assert leave.status_code == 204
    assert_error(await client.get(f"{USERS}/{uid('viewer')}", headers=auth()), 404)
