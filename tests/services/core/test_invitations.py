"""Core invitations: create (mailed token, shown once), list, revoke, accept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from inwire.kit.db import utcnow
from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.organizations.models import Invitation
from inwire.services.core.security import token_hash

pytestmark = pytest.mark.usefixtures("seeded")

A, B = ORGS["a"], ORGS["b"]
INVITATIONS = "/api/v1/invitations"
ACCEPT = "/api/v1/invitations/accept"
PASSWORD = "a-long-enough-password"


async def invite(
    client: httpx.AsyncClient, headers: dict[str, str], email: str, role: str = "member"
) -> dict[str, Any]:
    r = await client.post(INVITATIONS, json={"email": email, "role": role}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


async def actions(app: FastAPI) -> list[str]:
    async with app.state.db.session() as session:
        return list((await session.execute(select(AuditEvent.action))).scalars())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- create -----------------------------------------------------------------------------------


async def test_invitation_is_mailed_and_its_token_shown_once_and_stored_hashed(
    client, auth, app, core_settings
) -> None:
    data = await invite(client, auth(), "New.Hire@Example.com", "viewer")
    assert (data["email"], data["role"], data["status"]) == (
        "new.hire@example.com",
        "viewer",
        "pending",
    )
    assert data["mail_sent"] is True
    assert data["invited_by"] == identity("admin").user_id
    token = data["token"]
    mails = list(Path(core_settings.home, "mail").glob("*.eml"))
    assert len(mails) == 1
    text = mails[0].read_text()
    assert "To: new.hire@example.com" in text
    assert f"Invitation token: {token}" in text
    listed = await client.get(INVITATIONS, headers=auth())
    assert token not in listed.text
    assert "token" not in listed.json()["data"][0]
    async with app.state.db.session() as session:
        row = await session.get(Invitation, data["id"])
    assert row is not None
    assert row.token_hash == token_hash(token)
    assert (row.expires_at - row.created_at).total_seconds() == pytest.approx(
        core_settings.invitation_ttl_seconds, abs=5
    )
    assert "invitations.created" in await actions(app)


async def test_create_roles_conflicts_and_validation(client, auth) -> None:
    for role in ("member", "viewer"):
        r = await client.post(INVITATIONS, json={"email": "x@example.com"}, headers=auth(role))
        assert_error(r, 403)
    owner = {"email": "boss@example.com", "role": "owner"}
    assert_error(await client.post(INVITATIONS, json=owner, headers=auth()), 403)
    assert (await client.post(INVITATIONS, json=owner, headers=auth("owner"))).status_code == 201
    member = {"email": identity("viewer").email}
    assert_error(await client.post(INVITATIONS, json=member, headers=auth()), 409, "ALREADY_MEMBER")
    for body in (
        {},
        {"email": "nope"},
        {"email": "x@example.com", "role": "king"},
        {"email": "x@example.com", "token": "mine"},
    ):
        assert_error(
            await client.post(INVITATIONS, json=body, headers=auth()), 400, "VALIDATION_ERROR"
        )


async def test_a_new_invitation_replaces_the_pending_one(client, auth) -> None:
    first = await invite(client, auth(), "again@example.com")
    second = await invite(client, auth(), "again@example.com", "viewer")
    assert_error(
        await client.post(ACCEPT, json={"token": first["token"]}), 410, "INVITATION_REVOKED"
    )
    statuses = await client.get(f"{INVITATIONS}?sort=created_at&order=asc", headers=auth())
    assert [(i["id"], i["status"]) for i in statuses.json()["data"]] == [
        (first["id"], "revoked"),
        (second["id"], "pending"),
    ]


# -- list -------------------------------------------------------------------------------------


async def test_list_filters_by_status_paginates_and_stays_in_the_organization(
    client, auth, app
) -> None:
    h = auth()
    pending = await invite(client, h, "p@example.com")
    revoked = await invite(client, h, "r@example.com")
    expired = await invite(client, h, "e@example.com", "viewer")
    accepted = await invite(client, h, "a@example.com")
    await invite(client, auth("admin", "b"), "b-only@example.com")
    assert (await client.delete(f"{INVITATIONS}/{revoked['id']}", headers=h)).status_code == 204
    async with app.state.db.session() as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    ok = await client.post(
        ACCEPT, json={"token": accepted["token"], "name": "A", "password": PASSWORD}
    )
    assert ok.status_code == 200, ok.text
    for status, want in (
        ("pending", pending),
        ("revoked", revoked),
        ("expired", expired),
        ("accepted", accepted),
    ):
        r = await client.get(f"{INVITATIONS}?status={status}", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        assert [i["id"] for i in r.json()["data"]] == [want["id"]], status
        assert r.json()["data"][0]["status"] == status
    everything = await client.get(f"{INVITATIONS}?per_page=3&sort=email&order=asc", headers=h)
    assert everything.json()["meta"] == {"page": 1, "per_page": 3, "total": 4}
    assert [i["email"] for i in everything.json()["data"]] == [
        "a@example.com",
        "e@example.com",
        "p@example.com",
    ]
    by_role = await client.get(f"{INVITATIONS}?role=viewer", headers=h)
    assert [i["id"] for i in by_role.json()["data"]] == [expired["id"]]
    by_email = await client.get(f"{INVITATIONS}?email=P@example.com", headers=h)
    assert [i["id"] for i in by_email.json()["data"]] == [pending["id"]]
    for bad in ("status=lost", "sort=token_hash", "page=0"):
        assert_error(await client.get(f"{INVITATIONS}?{bad}", headers=h), 400, "VALIDATION_ERROR")
    assert_error(await client.get(INVITATIONS), 401)


# -- revoke -----------------------------------------------------------------------------------


async def test_revoke_roles_tenancy_and_effect(client, auth, app) -> None:
    data = await invite(client, auth(), "gone@example.com")
    url = f"{INVITATIONS}/{data['id']}"
    for role in ("member", "viewer"):
        assert_error(await client.delete(url, headers=auth(role)), 403)
    assert_error(await client.delete(url, headers=auth("owner", "b")), 404)
    assert (await client.delete(url, headers=auth())).status_code == 204
    assert (await client.delete(url, headers=auth())).status_code == 204  # idempotent
    r = await client.post(ACCEPT, json={"token": data["token"], "name": "G", "password": PASSWORD})
    assert_error(r, 410, "INVITATION_REVOKED")
    assert (await actions(app)).count("invitations.revoked") == 1
    used = await invite(client, auth(), "used@example.com")
    await client.post(ACCEPT, json={"token": used["token"], "name": "U", "password": PASSWORD})
    assert_error(
        await client.delete(f"{INVITATIONS}/{used['id']}", headers=auth()), 409, "INVITATION_USED"
    )


# -- accept -----------------------------------------------------------------------------------


async def test_accepting_creates_the_account_signs_it_in_and_works_once(client, auth, app) -> None:
    data = await invite(client, auth(), "fresh@example.com", "viewer")
    token = data["token"]
    for body in (
        {"token": token},
        {"token": token, "name": "Fresh"},
        {"token": token, "name": "Fresh", "password": "short"},
        {"token": token, "name": "Fresh", "password": "fresh@example.com"},
        {"token": "", "name": "Fresh", "password": PASSWORD},
    ):
        assert_error(await client.post(ACCEPT, json=body), 400, "VALIDATION_ERROR")
    assert_error(
        await client.post(ACCEPT, json={"token": "bogus", "name": "F", "password": PASSWORD}),
        400,
        "INVALID_INVITATION",
    )
    r = await client.post(ACCEPT, json={"token": token, "name": "Fresh", "password": PASSWORD})
    assert r.status_code == 200, r.text
    pair = r.json()["data"]
    assert (pair["organization_id"], pair["role"]) == (A, "viewer")
    assert pair["refresh_token"]
    me = await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert (me.json()["data"]["email"], me.json()["data"]["name"]) == ("fresh@example.com", "Fresh")
    again = await client.post(ACCEPT, json={"token": token, "name": "Fresh", "password": PASSWORD})
    assert_error(again, 410, "INVITATION_USED")
    login = await client.post(
        "/api/v1/auth/login", json={"email": "fresh@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert "invitations.accepted" in await actions(app)


async def test_an_expired_invitation_is_gone(client, auth, app) -> None:
    data = await invite(client, auth(), "late@example.com")
    async with app.state.db.session() as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.id == data["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    r = await client.post(ACCEPT, json={"token": data["token"], "name": "L", "password": PASSWORD})
    assert_error(r, 410, "INVITATION_EXPIRED")


async def test_an_existing_account_accepts_only_when_signed_in_as_itself(client, auth) -> None:
    invited = identity("viewer", "b")
    token = (await invite(client, auth(), invited.email, "member"))["token"]
    anonymous = await client.post(ACCEPT, json={"token": token, "name": "X", "password": PASSWORD})
    assert_error(anonymous, 401, "INVALID_CREDENTIALS")
    assert_error(await client.post(ACCEPT, json={"token": token}), 401, "AUTHENTICATION_REQUIRED")
    someone_else = await client.post(ACCEPT, json={"token": token}, headers=auth("member"))
    assert_error(someone_else, 403, "INVITATION_EMAIL_MISMATCH")
    r = await client.post(ACCEPT, json={"token": token}, headers=auth("viewer", "b"))
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["organization_id"], r.json()["data"]["role"]) == (A, "member")
    orgs = await client.get("/api/v1/organizations", headers=auth("viewer", "b"))
    assert {o["id"]: o["role"] for o in orgs.json()["data"]} == {A: "member", B: "viewer"}


async def test_an_existing_account_may_prove_itself_with_its_password(client, auth) -> None:
    invited = identity("member", "b")
    token = (await invite(client, auth(), invited.email))["token"]
    r = await client.post(ACCEPT, json={"token": token, "password": invited.password})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["organization_id"] == A
    assert r.json()["data"]["user"]["email"] == invited.email
