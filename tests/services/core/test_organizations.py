"""Core organizations: the caller's list, creation with owner and slug, read, update, delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.core.apikeys.models import ServiceAccount
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.organizations.models import Membership
from inwire.services.core.organizations.service import slugify
from inwire.services.core.users.models import User

pytestmark = pytest.mark.usefixtures("seeded")

A, B = ORGS["a"], ORGS["b"]


async def join_b(app: FastAPI, role: str = "admin", as_role: str = "viewer") -> None:
    """Make the test identity ``role``@a also a member of organization b."""
    async with app.state.db.session() as session:
        session.add(
            Membership(
                id=f"mem_extra_{role}",
                organization_id=B,
                user_id=identity(role).user_id,
                role=as_role,
            )
        )


async def actions(app: FastAPI, org_id: str) -> list[str]:
    async with app.state.db.session() as session:
        rows = await session.execute(
            select(AuditEvent.action).where(AuditEvent.organization_id == org_id)
        )
        return list(rows.scalars())


async def login(client: httpx.AsyncClient, role: str = "admin", org: str = "a") -> dict[str, Any]:
    who = identity(role, org)
    r = await client.post("/api/v1/auth/login", json={"email": who.email, "password": who.password})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


# -- list ---------------------------------------------------------------------------------


async def test_list_shows_every_organization_of_the_user_with_role_page_sort_filter(
    client, auth, app
) -> None:
    await join_b(app)
    r = await client.get("/api/v1/organizations", headers=auth("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meta"] == {"page": 1, "per_page": 20, "total": 2}
    assert {(o["id"], o["role"]) for o in body["data"]} == {(A, "admin"), (B, "viewer")}
    only_a = await client.get("/api/v1/organizations", headers=auth("member"))
    assert [o["id"] for o in only_a.json()["data"]] == [A]

    h = auth("admin")
    page1 = await client.get("/api/v1/organizations?per_page=1&sort=name&order=asc", headers=h)
    page2 = await client.get(
        "/api/v1/organizations?per_page=1&page=2&sort=name&order=asc", headers=h
    )
    assert [o["name"] for o in page1.json()["data"]] == ["Org A"]
    assert [o["name"] for o in page2.json()["data"]] == ["Org B"]
    assert page2.json()["meta"]["total"] == 2
    desc = await client.get("/api/v1/organizations?sort=slug&order=desc", headers=h)
    assert [o["slug"] for o in desc.json()["data"]] == ["org-b", "org-a"]
    viewer = await client.get("/api/v1/organizations?role=viewer", headers=h)
    assert [o["id"] for o in viewer.json()["data"]] == [B]


async def test_list_validation_errors_and_anonymous_caller(client, auth) -> None:
    h = auth("admin")
    for bad in ("per_page=0", "per_page=101", "page=0", "sort=password", "role=king"):
        assert_error(
            await client.get(f"/api/v1/organizations?{bad}", headers=h), 400, "VALIDATION_ERROR"
        )
    assert_error(await client.get("/api/v1/organizations"), 401)


async def test_a_service_account_sees_only_its_organization_and_creates_none(
    client, app, token_factory
) -> None:
    async with app.state.db.session() as session:
        session.add(
            ServiceAccount(id="sa_ci", organization_id=A, name="ci", role="admin", created_by="x")
        )
    h = {"Authorization": f"Bearer {token_factory(sub='sa_ci', kind='service', name='ci')}"}
    r = await client.get("/api/v1/organizations", headers=h)
    assert [(o["id"], o["role"]) for o in r.json()["data"]] == [(A, "admin")]
    assert r.json()["meta"]["total"] == 1
    assert (await client.get(f"/api/v1/organizations/{A}", headers=h)).status_code == 200
    assert_error(await client.get(f"/api/v1/organizations/{B}", headers=h), 404)
    assert_error(await client.post("/api/v1/organizations", json={"name": "X"}, headers=h), 403)


# -- create -------------------------------------------------------------------------------


async def test_any_user_creates_an_organization_and_becomes_its_owner(client, auth, app) -> None:
    r = await client.post(
        "/api/v1/organizations", json={"name": "  Acme Labs "}, headers=auth("viewer")
    )
    assert r.status_code == 201, r.text
    org = r.json()["data"]
    assert (org["name"], org["slug"], org["role"]) == ("Acme Labs", "acme-labs", "owner")
    assert org["id"].startswith("org_")
    mine = await client.get("/api/v1/organizations", headers=auth("viewer"))
    assert {o["id"]: o["role"] for o in mine.json()["data"]}[org["id"]] == "owner"
    switched = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": org["id"]},
        headers=auth("viewer"),
    )
    assert switched.json()["data"]["role"] == "owner"
    assert "organizations.created" in await actions(app, org["id"])


async def test_derived_slug_gets_a_suffix_and_a_given_slug_must_be_free(client, auth) -> None:
    assert slugify("Café Ñandú -- Labs!") == "cafe-nandu-labs"
    assert slugify("!!!") == "org"
    assert len(slugify("x" * 300)) == 63
    h = auth("member")
    first = await client.post("/api/v1/organizations", json={"name": "Org A"}, headers=h)
    assert first.json()["data"]["slug"] == "org-a-2"
    r = await client.post("/api/v1/organizations", json={"name": "X", "slug": "org-b"}, headers=h)
    assert_error(r, 409, "SLUG_TAKEN")
    r = await client.post("/api/v1/organizations", json={"name": "X", "slug": "my-x"}, headers=h)
    assert r.json()["data"]["slug"] == "my-x"


async def test_create_validation_errors(client, auth) -> None:
    for body in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "a\x00b"},
        {"name": "x" * 201},
        {"name": "X", "slug": "Has Caps"},
        {"name": "X", "slug": "-edge"},
        {"name": "X", "slug": "a--b"},
        {"name": "X", "slug": "x" * 64},
        {"name": "X", "owner": "someone"},
    ):
        r = await client.post("/api/v1/organizations", json=body, headers=auth("admin"))
        assert_error(r, 400, "VALIDATION_ERROR")


# -- read -------------------------------------------------------------------------------------


async def test_get_an_organization_only_when_a_member(client, auth, app) -> None:
    r = await client.get(f"/api/v1/organizations/{A}", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["slug"], r.json()["data"]["role"]) == ("org-a", "viewer")
    assert_error(await client.get(f"/api/v1/organizations/{B}", headers=auth("owner")), 404)
    assert_error(await client.get("/api/v1/organizations/org_nope", headers=auth()), 404)
    await join_b(app)
    r = await client.get(f"/api/v1/organizations/{B}", headers=auth("admin"))
    assert r.json()["data"]["role"] == "viewer"


# -- update -----------------------------------------------------------------------------------


async def test_admin_renames_the_current_organization(client, auth, app) -> None:
    r = await client.patch(
        f"/api/v1/organizations/{A}", json={"name": "Renamed", "slug": "renamed"}, headers=auth()
    )
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["name"], r.json()["data"]["slug"]) == ("Renamed", "renamed")
    got = await client.get(f"/api/v1/organizations/{A}", headers=auth("member"))
    assert got.json()["data"]["name"] == "Renamed"
    assert "organizations.updated" in await actions(app, A)


async def test_update_needs_admin_and_applies_to_the_token_organization_only(
    client, auth, app
) -> None:
    for role in ("member", "viewer"):
        r = await client.patch(f"/api/v1/organizations/{A}", json={"name": "X"}, headers=auth(role))
        assert_error(r, 403, "FORBIDDEN")
    assert_error(
        await client.patch(f"/api/v1/organizations/{B}", json={"name": "X"}, headers=auth()), 404
    )
    await join_b(app, as_role="owner")  # even an owner of b acting with a token for a
    assert_error(
        await client.patch(f"/api/v1/organizations/{B}", json={"name": "X"}, headers=auth()), 404
    )


async def test_update_conflicts_and_validation(client, auth) -> None:
    url = f"/api/v1/organizations/{A}"
    assert_error(await client.patch(url, json={"slug": "org-b"}, headers=auth()), 409, "SLUG_TAKEN")
    for body in ({"name": None}, {"slug": "Bad Slug"}, {"name": ""}, {"id": "org_x"}):
        assert_error(await client.patch(url, json=body, headers=auth()), 400, "VALIDATION_ERROR")
    same = await client.patch(url, json={"slug": "org-a"}, headers=auth())
    assert same.status_code == 200


# -- delete -----------------------------------------------------------------------------------


async def test_only_an_owner_deletes_the_organization_and_everything_it_owns(
    client, auth, app
) -> None:
    for role in ("admin", "member", "viewer"):
        assert_error(await client.delete(f"/api/v1/organizations/{A}", headers=auth(role)), 403)
    pair = await login(client, "member")
    assert_error(await client.delete(f"/api/v1/organizations/{B}", headers=auth("owner")), 404)
    r = await client.delete(f"/api/v1/organizations/{A}", headers=auth("owner"))
    assert r.status_code == 204, r.text
    async with app.state.db.session() as session:
        left = await session.scalar(
            select(func.count()).select_from(Membership).where(Membership.organization_id == A)
        )
        accounts = await session.scalar(select(func.count()).select_from(User))
    assert left == 0
    assert accounts == 8  # accounts outlive the organization
    assert "organizations.deleted" in await actions(app, A)
    assert_error(await client.get("/api/v1/auth/me", headers=auth("member")), 401)
    refreshed = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_error(refreshed, 401)
    other = await client.get(f"/api/v1/organizations/{B}", headers=auth("owner", "b"))
    assert other.status_code == 200
