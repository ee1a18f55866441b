"""Core single sign-on: OIDC providers per organization and the code + PKCE sign-in flow.

The identity provider is a real one (``oidc_provider.py``) reached in process through
``app.state.sso_http_transport``; the browser is a second httpx client that follows the
redirects by hand.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider import OIDCTestProvider
from sqlalchemy import func, select, update

from inwire.kit.db import utcnow
from inwire.kit.testing.identities import ORGS, identity
from inwire.kit.testing.plugin import assert_error
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.sso.models import IdentityLink, OIDCProvider, SSOLoginState
from inwire.services.core.users.models import User

pytestmark = pytest.mark.usefixtures("seeded")

PROVIDERS = "/api/v1/sso/providers"
CALLBACK = "http://127.0.0.1:18000/api/v1/auth/sso/callback"


@pytest.fixture
def idp(app) -> OIDCTestProvider:
    """An identity provider that Core reaches in process."""
    provider = OIDCTestProvider()
    app.state.sso_http_transport = httpx.ASGITransport(app=provider.app)
    return provider


@pytest.fixture
async def browser(idp: OIDCTestProvider) -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser at the identity provider."""
    transport = httpx.ASGITransport(app=idp.app)
    async with httpx.AsyncClient(transport=transport, base_url=idp.issuer) as c:
        yield c


async def add_provider(client, auth, idp: OIDCTestProvider, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Corp IdP",
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        **fields,
    }
    r = await client.post(PROVIDERS, json=body, headers=auth())
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def start(client, provider_id: str, **params: str) -> httpx.Response:
    r = await client.get(f"/api/v1/auth/sso/{provider_id}/login", params=params)
    assert r.status_code == 302, r.text
    return r


async def authorize(browser: httpx.AsyncClient, login: httpx.Response) -> httpx.URL:
    """The browser at the provider: signed in at once, sent back with code and state."""
    r = await browser.get(login.headers["location"])
    assert r.status_code == 302, r.text
    back = httpx.URL(r.headers["location"])
    assert str(back.copy_with(query=None)) == CALLBACK
    return back


async def callback(client, back: httpx.URL, **changes: str) -> httpx.Response:
    params = {**dict(back.params), **changes}
    return await client.get("/api/v1/auth/sso/callback", params=params)


async def sign_in(client, browser, provider_id: str, **params: str) -> httpx.Response:
    back = await authorize(browser, await start(client, provider_id, **params))
    return await callback(client, back)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def sso_audit(app) -> list[tuple[str, str]]:
    async with app.state.core.db.session() as session:
        rows = await session.execute(
            select(AuditEvent)
            .where(AuditEvent.action == "auth.sso_login")
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return [
            (e.outcome, e.details.get("reason") or e.details.get("method")) for e in rows.scalars()
        ]


# -- the sign-in flow ----------------------------------------------------------------------------


async def test_first_sign_in_provisions_the_user_and_the_next_reuses_the_link(
    app, client, auth, idp, browser
) -> None:
    provider = await add_provider(client, auth, idp, default_role="viewer")
    login = await start(client, provider["id"])
    location = urlsplit(login.headers["location"])
    asked = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://idp.test/authorize"
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == [CALLBACK]
    assert asked["scope"] == ["openid email profile"]
    assert login.headers["cache-control"] == "no-store"
    assert "httponly" in login.headers["set-cookie"].lower()

    r = await callback(client, await authorize(browser, login))
    assert r.status_code == 200, r.text
    pair = r.json()["data"]
    assert pair["organization_id"] == ORGS["a"]
    assert pair["role"] == "viewer"
    assert pair["user"]["email"] == "ada@corp.example.com"
    assert pair["user"]["name"] == "Ada Lovelace"
    assert pair["refresh_token"].startswith("iwr_")
    assert claims_of(pair["access_token"])["org"] == ORGS["a"]
    # The token exchange authenticated the client and proved possession of the verifier.
    sent = idp.token_requests[-1]
    assert len(sent["code_verifier"]) >= 43
    assert "client_secret" not in sent  # client_secret_basic, in the header

    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["data"]["role"] == "viewer"
    # Provisioned without a password: password login cannot work for this account.
    password_login = await client.post(
        "/api/v1/auth/login",
        json={"email": "ada@corp.example.com", "password": "any-password-at-all-123"},
    )
    assert_error(password_login, 401, "INVALID_CREDENTIALS")

    # The provider changes her address: the link on (issuer, sub) still finds her.
    idp.user["email"] = "ada.lovelace@corp.example.com"
    again = await sign_in(client, browser, provider["id"])
    assert again.status_code == 200, again.text
    assert again.json()["data"]["user"]["id"] == pair["user"]["id"]
    async with app.state.core.db.session() as session:
        links = (await session.execute(select(IdentityLink))).scalars().all()
        assert [(x.issuer, x.subject, x.user_id) for x in links] == [
            ("https://idp.test", "idp-user-1", pair["user"]["id"])
        ]
        users = await session.scalar(
            select(func.count()).select_from(User).where(User.email.like("%corp.example.com"))
        )
        assert users == 1
    assert await sso_audit(app) == [("success", "provisioned"), ("success", "link")]


async def test_existing_member_with_a_verified_email_is_linked(app, client, auth, idp, browser):
    provider = await add_provider(client, auth, idp)
    member = identity("member", "a")
    idp.user.update(sub="idp-member", email=member.email.upper(), email_verified=False)
    r = await sign_in(client, browser, provider["id"])
    assert_error(r, 403, "SSO_EMAIL_UNVERIFIED")

    idp.user["email_verified"] = True
    r = await sign_in(client, browser, provider["id"])
    assert r.status_code == 200, r.text
    pair = r.json()["data"]
    assert pair["user"]["id"] == member.user_id
    assert pair["role"] == "member"  # the existing membership stays as it is

    # A provider of organization a cannot vouch for a person of organization b.
    idp.user.update(sub="idp-outsider", email=identity("admin", "b").email)
    r = await sign_in(client, browser, provider["id"])
    assert_error(r, 409, "SSO_ACCOUNT_EXISTS")
    async with app.state.core.db.session() as session:
        links = (await session.execute(select(IdentityLink.subject))).scalars().all()
        assert links == ["idp-member"]
    assert [o for o, _ in await sso_audit(app)] == ["failure", "success", "failure"]


async def test_redirect_uri_receives_the_tokens_in_the_fragment(client, auth, idp, browser):
    provider = await add_provider(client, auth, idp)
    r = await sign_in(client, browser, provider["id"], redirect_uri="http://127.0.0.1:8765/done")
    assert r.status_code == 302, r.text
    target = urlsplit(r.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("http", "127.0.0.1:8765", "/done")
    fragment = {k: v[0] for k, v in parse_qs(target.fragment).items()}
    assert fragment["access_token"]
    assert fragment["refresh_token"].startswith("iwr_")
    assert fragment["organization_id"] == ORGS["a"]
    assert fragment["token_type"] == "Bearer"
    assert r.headers["cache-control"] == "no-store"
    r = await sign_in(client, browser, provider["id"], redirect_uri="/app/signed-in")
    assert r.headers["location"].startswith("/app/signed-in#access_token=")

    for bad in ("https://evil.example.com/steal", "//evil.example.com/x", "javascript:alert(1)"):
        r = await client.get(
            f"/api/v1/auth/sso/{provider['id']}/login", params={"redirect_uri": bad}
        )
        assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.get(
        f"/api/v1/auth/sso/{provider['id']}/login", params={"redirect_uri": "/" + "x" * 1000}
    )
    assert_error(r, 400, "VALIDATION_ERROR")


async def test_wrong_replayed_expired_and_foreign_browser_states_are_rejected(
    app, client, auth, idp, browser
) -> None:
    provider = await add_provider(client, auth, idp)
    back = await authorize(browser, await start(client, provider["id"]))
    assert_error(await callback(client, back, state="forged-state"), 400, "SSO_STATE_INVALID")
    assert_error(
        await client.get("/api/v1/auth/sso/callback", params={"code": "x"}),
        400,
        "SSO_STATE_INVALID",
    )
    assert_error(
        await client.get("/api/v1/auth/sso/callback", params={"state": "s" * 201}),
        400,
        "VALIDATION_ERROR",
    )
    # Another browser (no binding cookie) holding the callback link cannot use it.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as stranger:
        r = await callback(stranger, back)
        assert_error(r, 400, "SSO_STATE_INVALID")
        assert "another browser" in r.json()["error"]["message"]
    # ...and the state is spent by that attempt, like by any other.
    assert_error(await callback(client, back), 400, "SSO_STATE_INVALID")

    back = await authorize(browser, await start(client, provider["id"]))
    assert (await callback(client, back)).status_code == 200
    assert_error(await callback(client, back), 400, "SSO_STATE_INVALID")  # replay

    back = await authorize(browser, await start(client, provider["id"]))
    async with app.state.core.db.session() as session:
        await session.execute(
            update(SSOLoginState).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_error(await callback(client, back), 400, "SSO_STATE_EXPIRED")
    outcomes = await sso_audit(app)
    # forged, missing, foreign browser, spent, replayed
    assert outcomes.count(("failure", "SSO_STATE_INVALID")) == 5
    assert ("failure", "SSO_STATE_EXPIRED") in outcomes


async def test_pkce_mismatch_and_bad_codes_are_rejected_by_the_provider(
    client, auth, idp, browser
) -> None:
    provider = await add_provider(client, auth, idp)
    # Code injection: a code issued to one sign-in is replayed into another. PKCE binds the
    # code to the first sign-in's verifier, so the provider refuses it.
    victim = await authorize(browser, await start(client, provider["id"]))
    attacker = await authorize(browser, await start(client, provider["id"]))
    r = await callback(client, attacker, code=victim.params["code"])
    assert_error(r, 400, "SSO_CODE_INVALID")
    assert "invalid_grant" in r.json()["error"]["message"]
    assert idp.token_requests[-1]["code_verifier"]

    back = await authorize(browser, await start(client, provider["id"]))
    assert_error(await callback(client, back, code="made-up"), 400, "SSO_CODE_INVALID")
    back = await authorize(browser, await start(client, provider["id"]))
    r = await callback(client, back, error="access_denied")
    assert_error(r, 400, "SSO_PROVIDER_ERROR")
    back = await authorize(browser, await start(client, provider["id"]))
    r = await client.get("/api/v1/auth/sso/callback", params={"state": back.params["state"]})
    assert_error(r, 400, "SSO_CODE_INVALID")

    # A wrong client secret is refused at the token endpoint too.
    await client.patch(
        f"{PROVIDERS}/{provider['id']}", json={"client_secret": "wrong-secret"}, headers=auth()
    )
    r = await sign_in(client, browser, provider["id"])
    assert_error(r, 400, "SSO_CODE_INVALID")
    assert "invalid_client" in r.json()["error"]["message"]


async def test_id_tokens_for_another_audience_or_nonce_are_rejected(
    client, auth, idp, browser
) -> None:
    provider = await add_provider(client, auth, idp)
    for claim, value in (("aud", "someone-else"), ("nonce", "stale"), ("iss", "https://x.test")):
        idp.id_token_overrides = {claim: value}
        r = await sign_in(client, browser, provider["id"])
        assert_error(r, 400, "SSO_ID_TOKEN_INVALID")
        assert claim in r.json()["error"]["message"]
    idp.id_token_overrides = {"exp": 1_000_000}
    assert_error(await sign_in(client, browser, provider["id"]), 400, "SSO_ID_TOKEN_INVALID")


async def test_disallowed_domain_is_forbidden(app, client, auth, idp, browser) -> None:
    provider = await add_provider(client, auth, idp, allowed_domains=["Example.ORG"])
    assert provider["allowed_domains"] == ["example.org"]
    r = await sign_in(client, browser, provider["id"])
    assert_error(r, 403, "SSO_DOMAIN_NOT_ALLOWED")
    async with app.state.core.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(IdentityLink)) == 0
        assert (
            await session.scalar(select(User).where(User.email == "ada@corp.example.com"))
        ) is None
    idp.user["email"] = "ada@example.org"
    assert (await sign_in(client, browser, provider["id"])).status_code == 200
    assert [o for o, _ in await sso_audit(app)] == ["failure", "success"]


async def test_disabled_or_unknown_or_unreachable_providers_cannot_sign_in(
    app, client, auth, idp, browser
) -> None:
    provider = await add_provider(client, auth, idp, enabled=False)
    login = f"/api/v1/auth/sso/{provider['id']}/login"
    assert_error(await client.get(login), 403, "SSO_PROVIDER_DISABLED")
    url = f"{PROVIDERS}/{provider['id']}"
    await client.patch(url, json={"enabled": True}, headers=auth())
    back = await authorize(browser, await start(client, provider["id"]))
    await client.patch(url, json={"enabled": False}, headers=auth())
    assert_error(await callback(client, back), 403, "SSO_PROVIDER_DISABLED")

    assert_error(await client.get("/api/v1/auth/sso/sso_nope/login"), 404, "NOT_FOUND")
    await client.patch(url, json={"enabled": True}, headers=auth())
    app.state.sso_http_transport = httpx.MockTransport(lambda request: httpx.Response(503))
    assert_error(await client.get(login), 503, "SSO_PROVIDER_UNAVAILABLE")
    app.state.sso_http_transport = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"issuer": "https://impostor.test"})
    )
    assert_error(await client.get(login), 503, "SSO_PROVIDER_UNAVAILABLE")

    # Each start stores a row, so one address may start only so many sign-ins.
    for _ in range(app.state.core.settings.login_attempts_per_ip):
        r = await client.get("/api/v1/auth/sso/sso_nope/login")
        if r.status_code == 429:
            break
    assert_error(r, 429, "RATE_LIMITED")
    assert int(r.headers["retry-after"]) >= 1


# -- provider management -------------------------------------------------------------------------


async def test_provider_crud_never_returns_the_client_secret(app, client, auth, idp) -> None:
    created = await add_provider(client, auth, idp, scopes=["openid", "email", "groups"])
    assert created["id"].startswith("sso_")
    assert created["has_client_secret"] is True
    assert created["scopes"] == ["openid", "email", "groups"]
    assert created["default_role"] == "member"
    assert created["enabled"] is True
    assert created["redirect_uri"] == CALLBACK
    assert created["login_url"].endswith(f"/api/v1/auth/sso/{created['id']}/login")
    url = f"{PROVIDERS}/{created['id']}"
    got = await client.get(url, headers=auth("viewer"))
    listed = await client.get(PROVIDERS, headers=auth("member"))
    assert got.json()["data"] == created
    for response in (got, listed):
        assert idp.client_secret not in response.text
    async with app.state.core.db.session() as session:
        row = await session.get(OIDCProvider, created["id"])
        assert row is not None
        assert row.client_secret_sealed
        assert idp.client_secret not in row.client_secret_sealed
        assert app.state.core.sealer.open(row.client_secret_sealed) == idp.client_secret

    r = await client.patch(
        url,
        json={"name": "Renamed", "default_role": "admin", "client_secret": None},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    changed = r.json()["data"]
    assert (changed["name"], changed["default_role"]) == ("Renamed", "admin")
    assert changed["has_client_secret"] is False
    assert changed["issuer"] == idp.issuer
    r = await client.patch(url, json={"client_secret": "new-secret-value"}, headers=auth())
    assert r.json()["data"]["has_client_secret"] is True
    assert "new-secret-value" not in r.text

    assert_error(
        await client.post(PROVIDERS, json={**_body(idp), "name": "Renamed"}, headers=auth()), 409
    )
    assert (await client.delete(url, headers=auth())).status_code == 204
    assert_error(await client.get(url, headers=auth()), 404)
    async with app.state.core.db.session() as session:
        rows = await session.execute(
            select(AuditEvent.action)
            .where(AuditEvent.target_id == created["id"])
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        assert list(rows.scalars()) == ["sso.created", "sso.updated", "sso.updated", "sso.deleted"]


def _body(idp: OIDCTestProvider, **fields: Any) -> dict[str, Any]:
    return {"name": "IdP", "issuer": idp.issuer, "client_id": idp.client_id, **fields}


async def test_provider_input_is_validated(client, auth, idp) -> None:
    cases = [
        ({"issuer": "http://idp.example.com"}, "issuer"),
        ({"issuer": "not a url"}, "issuer"),
        ({"scopes": ["email"]}, "scopes"),
        ({"scopes": ["openid", "bad scope"]}, "scopes"),
        ({"default_role": "owner"}, "default_role"),
        ({"allowed_domains": ["not_a_domain"]}, "allowed_domains.0"),
        ({"client_id": ""}, "client_id"),
        ({"name": " "}, "name"),
    ]
    for change, field in cases:
        r = await client.post(PROVIDERS, json=_body(idp, **change), headers=auth())
        assert_error(r, 400, "VALIDATION_ERROR")
        assert field in {d["field"] for d in r.json()["error"]["details"]}, (change, r.text)
    loopback = await client.post(
        PROVIDERS, json=_body(idp, issuer="http://127.0.0.1:5556/dex"), headers=auth()
    )
    assert loopback.status_code == 201, loopback.text
    url = f"{PROVIDERS}/{loopback.json()['data']['id']}"
    assert_error(await client.patch(url, json={"scopes": []}, headers=auth()), 400)
    assert_error(await client.patch(url, json={"enabled": "maybe"}, headers=auth()), 400)


async def test_only_admins_manage_providers_and_other_orgs_see_404(client, auth, idp) -> None:
    created = await add_provider(client, auth, idp)
    url = f"{PROVIDERS}/{created['id']}"
    member = auth("member")
    assert (await client.get(url, headers=member)).status_code == 200
    assert_error(await client.post(PROVIDERS, json=_body(idp), headers=member), 403, "FORBIDDEN")
    assert_error(await client.patch(url, json={"name": "x"}, headers=member), 403)
    assert_error(await client.delete(url, headers=member), 403)
    assert_error(await client.post(PROVIDERS, json=_body(idp), headers=auth("viewer")), 403)
    other = auth("admin", "b")
    assert_error(await client.get(url, headers=other), 404, "NOT_FOUND")
    assert_error(await client.patch(url, json={"name": "x"}, headers=other), 404)
    assert_error(await client.delete(url, headers=other), 404)
    assert (await client.get(PROVIDERS, headers=other)).json()["meta"]["total"] == 0
    assert_error(await client.get(PROVIDERS), 401)


async def test_provider_list_paginates_sorts_and_filters(client, auth, idp) -> None:
    for name, enabled in (("charlie", True), ("alpha", False), ("bravo", True)):
        await add_provider(client, auth, idp, name=name, enabled=enabled)
    r = await client.get(
        PROVIDERS, params={"sort": "name", "order": "asc", "per_page": 2}, headers=auth()
    )
    assert [p["name"] for p in r.json()["data"]] == ["alpha", "bravo"]
    assert r.json()["meta"] == {"page": 1, "per_page": 2, "total": 3}
    r = await client.get(
        PROVIDERS, params={"sort": "name", "order": "asc", "per_page": 2, "page": 2}, headers=auth()
    )
    assert [p["name"] for p in r.json()["data"]] == ["charlie"]
    r = await client.get(PROVIDERS, params={"enabled": "false"}, headers=auth())
    assert [p["name"] for p in r.json()["data"]] == ["alpha"]
    r = await client.get(PROVIDERS, headers=auth())
    assert [p["name"] for p in r.json()["data"]] == ["bravo", "alpha", "charlie"]
    for bad in ({"sort": "issuer"}, {"enabled": "perhaps"}, {"page": 0}):
        assert_error(await client.get(PROVIDERS, params=bad, headers=auth()), 400)


async def test_single_sign_on_session_cannot_switch_to_another_organization(
    app, client, auth, idp, browser
) -> None:
    from inwire.services.core.organizations.models import Membership

    provider = await add_provider(client, auth, idp)
    member = identity("member", "a")
    async with app.state.db.session() as session:
        session.add(
            Membership(
                id="mem_ssoswitch", organization_id=ORGS["b"], user_id=member.user_id, role="admin"
            )
        )
    idp.user.update(sub="idp-switcher", email=member.email, email_verified=True)
    r = await sign_in(client, browser, provider["id"])
    assert r.status_code == 200, r.text
    pair = r.json()["data"]
    assert claims_of(pair["access_token"])["amr"] == ["sso"]
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    r = await client.post(
        "/api/v1/auth/switch-organization", headers=headers, json={"organization_id": ORGS["b"]}
    )
    assert_error(r, 403, "SSO_SESSION_BOUND")
    # The binding survives refresh.
    refreshed = await client.post(
        "/api/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert claims_of(refreshed.json()["data"]["access_token"])["amr"] == ["sso"]
