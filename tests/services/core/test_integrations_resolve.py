"""Resolving an integration's credentials: platform services only, scoped and audited."""

from __future__ import annotations

import stat
from typing import Any

import pytest
from sqlalchemy import select

from inwire.kit.auth.internal import INTERNAL_HEADER, internal_secret
from inwire.kit.ids import new_id
from inwire.kit.settings import ServiceSettings
from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.core.apikeys.models import ServiceAccount
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.organizations.models import Membership

pytestmark = pytest.mark.usefixtures("seeded")

BASE = "/api/v1/integrations"
PASSWORD = "s3cr3t-Pa55word-for-the-warehouse"


async def make_integration(client, auth, org: str = "a") -> str:
    body = {
        "name": "warehouse",
        "kind": "postgres",
        "config": {"host": "db.internal", "database": "sales"},
        "credentials": {"user": "reader", "password": PASSWORD},
    }
    r = await client.post(BASE, json=body, headers=auth("admin", org))
    assert r.status_code == 201, r.text
    integration_id: str = r.json()["data"]["id"]
    return integration_id


def for_(role: str = "member", org: str = "a", *, acting_org: str | None = None) -> dict[str, str]:
    who = identity(role, org)
    return {"organization_id": ORGS[acting_org or org], "on_behalf_of": who.user_id}


async def resolve(client, app, integration_id: str, body: dict[str, str], **headers: str) -> Any:
    sent = {INTERNAL_HEADER: internal_secret(app.state.settings), **headers}
    return await client.post(f"{BASE}/{integration_id}/resolve", json=body, headers=sent)


async def test_a_platform_service_gets_config_and_credentials_for_a_member(
    app, client, auth
) -> None:
    integration_id = await make_integration(client, auth)
    for role in ("viewer", "member", "owner"):
        r = await resolve(client, app, integration_id, for_(role))
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["id"] == integration_id
        assert data["kind"] == "postgres"
        assert data["config"] == {
            "host": "db.internal",
            "port": 5432,
            "database": "sales",
            "sslmode": "prefer",
        }
        assert data["credentials"] == {"user": "reader", "password": PASSWORD}
    async with app.state.core.db.session() as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.action == "integrations.resolved")
        )
        events = list(rows.scalars())
    assert {e.actor_id for e in events} == {
        identity(r).user_id for r in ("viewer", "member", "owner")
    }
    assert {e.target_id for e in events} == {integration_id}
    # Users never get the credentials, whatever their role.
    shown = await client.get(f"{BASE}/{integration_id}", headers=auth("owner"))
    assert PASSWORD not in shown.text


async def test_without_the_internal_secret_nobody_resolves(app, client, auth) -> None:
    integration_id = await make_integration(client, auth)
    url = f"{BASE}/{integration_id}/resolve"
    for headers in ({}, auth("owner"), {INTERNAL_HEADER: "guessed"}, {INTERNAL_HEADER: ""}):
        r = await client.post(url, json=for_(), headers=headers)
        assert_error(r, 403, "INTERNAL_ONLY")
        assert PASSWORD not in r.text
    routes = (await client.get("/openapi.json")).json()["paths"]
    assert f"{BASE}/{{integration_id}}/resolve" not in routes


async def test_resolving_is_scoped_to_the_organization_and_its_current_members(
    app, client, auth
) -> None:
    integration_id = await make_integration(client, auth)
    # Organization b's work cannot name organization a's integration.
    assert_error(await resolve(client, app, integration_id, for_("owner", "b")), 404, "NOT_FOUND")
    # Nor can b's people claim to act in a.
    r = await resolve(client, app, integration_id, for_("owner", "b", acting_org="a"))
    assert_error(r, 403)
    assert_error(
        await resolve(client, app, integration_id, {**for_(), "on_behalf_of": "usr_nobody"}), 403
    )
    assert_error(await resolve(client, app, "int_nothing", for_()), 404)

    # A member removed after queueing work gets nothing when the work runs.
    async with app.state.core.db.session() as session:
        membership = await session.scalar(
            select(Membership).where(Membership.user_id == identity("member").user_id)
        )
        await session.delete(membership)
    assert_error(await resolve(client, app, integration_id, for_("member")), 403)


async def test_service_accounts_resolve_while_active(app, client, auth) -> None:
    integration_id = await make_integration(client, auth)
    account_id = new_id("sva")
    async with app.state.core.db.session() as session:
        session.add(
            ServiceAccount(
                id=account_id,
                organization_id=ORGS["a"],
                name="importer",
                role="member",
                created_by=identity().user_id,
            )
        )
    body = {"organization_id": ORGS["a"], "on_behalf_of": account_id}
    assert (await resolve(client, app, integration_id, body)).status_code == 200
    assert_error(
        await resolve(client, app, integration_id, {**body, "organization_id": ORGS["b"]}), 403
    )
    async with app.state.core.db.session() as session:
        account = await session.get(ServiceAccount, account_id)
        assert account is not None
        account.is_active = False
    assert_error(await resolve(client, app, integration_id, body), 403)


def test_the_internal_secret_is_made_once_in_the_home_and_shared(tmp_path) -> None:
    first = ServiceSettings(home=tmp_path)
    secret = internal_secret(first)
    assert len(secret) >= 40
    path = tmp_path / "internal-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert internal_secret(ServiceSettings(home=tmp_path)) == secret
    assert internal_secret(ServiceSettings(home=tmp_path, internal_secret="set")) == "set"
    assert "set" not in repr(ServiceSettings(home=tmp_path, internal_secret="set"))
