"""Core authentication: login, tokens, refresh rotation, logout, passwords, JWKS."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error

pytestmark = pytest.mark.usefixtures("seeded")


async def login(
    client: httpx.AsyncClient, role: str = "admin", org: str = "a", **extra: Any
) -> httpx.Response:
    who = identity(role, org)
    return await client.post(
        "/api/v1/auth/login", json={"email": who.email, "password": who.password, **extra}
    )


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_login_returns_eddsa_token_with_claims_and_refresh_token(client) -> None:
    r = await login(client, "member")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] <= 900
    assert data["refresh_token"].startswith("iwr_")
    header = json.loads(base64.urlsafe_b64decode(data["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "EdDSA"
    assert header["kid"]
    claims = claims_of(data["access_token"])
    assert claims["org"] == ORGS["a"]
    assert claims["roles"] == ["member"]
    assert claims["iss"] == "inwire"
    assert claims["aud"] == "inwire"
    assert claims["exp"] - claims["iat"] <= 900
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert me.json()["data"]["email"] == identity("member").email
    assert me.json()["data"]["role"] == "member"


async def test_wrong_password_and_unknown_user_look_the_same(client) -> None:
    wrong = await client.post(
        "/api/v1/auth/login",
        json={"email": identity().email, "password": "not-the-password-at-all"},
    )
    unknown = await client.post(
        "/api/v1/auth/login",
        json={"email": "nobody@nowhere.example.com", "password": "not-the-password-at-all"},
    )
    assert_error(wrong, 401, "INVALID_CREDENTIALS")
    assert_error(unknown, 401, "INVALID_CREDENTIALS")
    assert wrong.json() == unknown.json()


async def test_login_validation_errors(client) -> None:
    assert_error(
        await client.post("/api/v1/auth/login", json={"email": "x"}), 400, "VALIDATION_ERROR"
    )
    assert_error(
        await client.post(
            "/api/v1/auth/login", content=b"a", headers={"content-type": "text/plain"}
        ),
        415,
    )


async def test_login_is_throttled_per_account_with_429(client) -> None:
    for _ in range(10):
        await client.post(
            "/api/v1/auth/login",
            json={"email": identity("viewer").email, "password": "wrong-password-123"},
        )
    r = await login(client, "viewer")
    assert_error(r, 429, "RATE_LIMITED")
    assert int(r.headers["retry-after"]) >= 1
    assert (await login(client, "member")).status_code == 200


async def test_login_into_a_chosen_organization_and_not_into_a_foreign_one(client) -> None:
    assert_error(await login(client, "admin", organization_id=ORGS["b"]), 403)


async def test_refresh_rotates_and_reuse_revokes_the_family(client) -> None:
    first = (await login(client)).json()["data"]
    r = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert r.status_code == 200, r.text
    second = r.json()["data"]
    assert second["refresh_token"] != first["refresh_token"]
    # Replaying the spent token is theft: the family dies, including the fresh token.
    replay = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_error(replay, 401, "INVALID_TOKEN")
    after = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert_error(after, 401, "INVALID_TOKEN")
    assert_error(
        await client.post("/api/v1/auth/token/refresh", json={"refresh_token": "iwr_bogus"}), 401
    )


async def test_logout_revokes_access_and_refresh_tokens(client) -> None:
    pair = (await login(client)).json()["data"]
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    r = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=headers
    )
    assert r.status_code == 204
    assert_error(await client.get("/api/v1/auth/me", headers=headers), 401, "TOKEN_REVOKED")
    assert_error(
        await client.post(
            "/api/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
        ),
        401,
    )


async def test_expired_tampered_wrong_audience_and_none_tokens_are_rejected(
    client, token_factory
) -> None:
    me = "/api/v1/auth/me"
    expired = token_factory(exp=1, iat=0, nbf=0)
    assert_error(
        await client.get(me, headers={"Authorization": f"Bearer {expired}"}), 401, "TOKEN_EXPIRED"
    )
    good = token_factory()
    head, body, sig = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["roles"] = ["owner"]
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    tampered = f"{head}.{forged_body}.{sig}"
    assert_error(await client.get(me, headers={"Authorization": f"Bearer {tampered}"}), 401)
    aud = token_factory(aud="not-inwire")
    assert_error(await client.get(me, headers={"Authorization": f"Bearer {aud}"}), 401)
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    none = f"{none_head}.{body}."
    assert_error(await client.get(me, headers={"Authorization": f"Bearer {none}"}), 401)
    assert_error(await client.get(me), 401, "UNAUTHORIZED")


async def test_role_change_in_core_applies_immediately(client, app, auth) -> None:
    from sqlalchemy import update

    from inwire.services.core.organizations.models import Membership

    headers = auth("admin")
    async with app.state.db.session() as session:
        await session.execute(
            update(Membership)
            .where(Membership.user_id == identity("admin").user_id)
            .values(role="viewer")
        )
    assert (await client.get("/api/v1/auth/me", headers=headers)).json()["data"]["role"] == "viewer"


async def test_switch_organization_needs_membership(client, auth, app) -> None:
    r = await client.post(
        "/api/v1/auth/switch-organization", json={"organization_id": ORGS["b"]}, headers=auth()
    )
    assert_error(r, 403)
    from inwire.services.core.organizations.models import Membership

    async with app.state.db.session() as session:
        session.add(
            Membership(
                id="mem_switch",
                organization_id=ORGS["b"],
                user_id=identity().user_id,
                role="viewer",
            )
        )
    r = await client.post(
        "/api/v1/auth/switch-organization", json={"organization_id": ORGS["b"]}, headers=auth()
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["organization_id"] == ORGS["b"]
    assert r.json()["data"]["role"] == "viewer"


async def test_password_change_then_login_with_new_password(client, auth) -> None:
    who = identity("member")
    r = await client.post(
        "/api/v1/auth/password/change",
        headers=auth("member"),
        json={"current_password": "wrong-one-entirely", "new_password": "a-brand-new-password"},
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.post(
        "/api/v1/auth/password/change",
        headers=auth("member"),
        json={"current_password": who.password, "new_password": "short"},
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.post(
        "/api/v1/auth/password/change",
        headers=auth("member"),
        json={"current_password": who.password, "new_password": "a-brand-new-password"},
    )
    assert r.status_code == 204, r.text
    r = await client.post(
        "/api/v1/auth/login", json={"email": who.email, "password": "a-brand-new-password"}
    )
    assert r.status_code == 200


async def test_password_reset_by_mailed_token_is_single_use(client, core_settings) -> None:
    who = identity("viewer")
    for email in (who.email, "ghost@nowhere.example.com"):
        r = await client.post("/api/v1/auth/password/reset-request", json={"email": email})
        assert r.status_code == 202
    mails = list(Path(core_settings.home, "mail").glob("*.eml"))
    assert len(mails) == 1
    text = mails[0].read_text()
    token = text.split("Reset token: ")[1].split()[0]
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "reset-password-1234"}
    )
    assert r.status_code == 204, r.text
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "reset-password-5678"}
    )
    assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.post(
        "/api/v1/auth/login", json={"email": who.email, "password": "reset-password-1234"}
    )
    assert r.status_code == 200


async def test_jwks_publishes_the_signing_key_and_rotation_keeps_old_tokens_valid(
    client, app, auth
) -> None:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [k["alg"] for k in jwks["keys"]] == ["EdDSA"]
    assert "d" not in jwks["keys"][0]
    old_headers = auth("member")
    new_kid = await app.state.core.keyring.rotate()
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 2
    assert jwks["keys"][0]["kid"] == new_kid
    assert (await client.get("/api/v1/auth/me", headers=old_headers)).status_code == 200
    r = await login(client, "member")
    header = json.loads(
        base64.urlsafe_b64decode(r.json()["data"]["access_token"].split(".")[0] + "==")
    )
    assert header["kid"] == new_kid


async def test_another_service_verifies_core_tokens_through_jwks(client, app) -> None:
    from inwire.kit.auth import JWKSKeySource, TokenVerifier

    async def fetch() -> dict[str, Any]:
        return (await client.get("/.well-known/jwks.json")).json()

    verifier = TokenVerifier(JWKSKeySource("x", fetch=fetch), issuer="inwire", audience="inwire")
    token = (await login(client, "viewer", "b")).json()["data"]["access_token"]
    principal = await verifier.verify(token)
    assert principal.org == ORGS["b"]
    assert principal.roles == ("viewer",)


async def test_concurrent_logins_all_succeed(client) -> None:
    import asyncio

    # On SQLite, read-then-write transactions used to fail at once with "database is locked"
    # (SQLITE_BUSY_SNAPSHOT) when another login committed in between.
    results = await asyncio.gather(
        *(login(client, role) for role in ("owner", "admin", "member", "viewer") * 2)
    )
    assert [r.status_code for r in results] == [200] * 8


async def test_api_key_tokens_stay_in_their_organization_and_role(client, auth, app) -> None:
    from inwire.services.core.organizations.models import Membership

    async with app.state.db.session() as session:
        session.add(
            Membership(
                id="mem_keyswitch",
                organization_id=ORGS["b"],
                user_id=identity().user_id,
                role="admin",
            )
        )
    r = await client.post(
        "/api/v1/api-keys", headers=auth(), json={"name": "reader", "role": "viewer"}
    )
    assert r.status_code == 201, r.text
    key = r.json()["data"]["key"]
    exchanged = await client.post("/api/v1/auth/token", json={"api_key": key})
    token = exchanged.json()["data"]["access_token"]
    assert claims_of(token)["amr"] == ["key"]
    for bearer in (key, token):
        headers = {"Authorization": f"Bearer {bearer}"}
        me = await client.get("/api/v1/auth/me", headers=headers)
        assert me.json()["data"]["role"] == "viewer"  # not the owner's admin role
        r = await client.post(
            "/api/v1/auth/switch-organization", headers=headers, json={"organization_id": ORGS["b"]}
        )
        assert_error(r, 403, "KEY_BOUND")


async def test_key_cache_reload_inside_a_writing_request_does_not_wait_for_itself(
    client, app
) -> None:
    # The signing-key cache reloads every 30 s; on SQLite, a reload that opened a writing
    # session inside a login (which already holds the write lock) waited 15 s and failed.
    app.state.core.keyring._loaded_at = 0.0
    r = await login(client, "member")
    assert r.status_code == 200, r.text


async def test_rotation_makes_the_next_key_before_the_current_retires(app) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from inwire.kit.db import utcnow
    from inwire.services.core.auth.models import SigningKey

    keyring = app.state.core.keyring
    old_kid, _ = await keyring.signing_key()
    await keyring.ensure_current()
    assert (await keyring.signing_key())[0] == old_kid  # nothing due yet
    async with app.state.db.session() as session:
        await session.execute(
            update(SigningKey).values(signs_until=utcnow() + timedelta(seconds=5))
        )
    await keyring.ensure_current()
    new_kid, _ = await keyring.signing_key()
    assert new_kid != old_kid
    assert {k["kid"] for k in (await keyring.jwks())["keys"]} == {old_kid, new_kid}
