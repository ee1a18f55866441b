"""Authentication at the gateway, against a real Core: JWTs, API keys and public routes."""

from __future__ import annotations

import asyncio

import pytest
from gateway_support import CoreServer, RunningGateway, run_gateway

from inwire.gateway.routes import Upstream
from inwire.kit.testing.plugin import TestKeys, assert_error


async def test_no_credentials_on_a_protected_route_is_401_in_the_envelope(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        response = await client.get("/core/api/v1/auth/me")
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer", "Token abc"],
)
async def test_malformed_or_foreign_credentials_are_401(
    gateway: RunningGateway, authorization: str
) -> None:
    async with gateway.client() as client:
        response = await client.get("/echo/api/v1/echo", headers={"Authorization": authorization})
    assert_error(response, 401)


async def test_a_jwt_signed_by_another_key_is_401(
    gateway: RunningGateway, test_keys: TestKeys
) -> None:
    async with gateway.client() as client:
        response = await client.get(
            "/echo/api/v1/echo", headers={"Authorization": f"Bearer {test_keys.token()}"}
        )
    assert_error(response, 401, "UNAUTHORIZED")
    assert "unknown key" in response.json()["error"]["message"]


async def test_an_expired_jwt_is_401_token_expired(
    upstreams: list[Upstream], test_keys: TestKeys
) -> None:
    expired = test_keys.token(ttl=-120)
    async with (
        run_gateway(upstreams, jwks_url=test_keys.jwks_url) as gateway,
        gateway.client() as client,
    ):
        response = await client.get(
            "/echo/api/v1/echo", headers={"Authorization": f"Bearer {expired}"}
        )
        valid = await client.get(
            "/echo/api/v1/echo", headers={"Authorization": f"Bearer {test_keys.token()}"}
        )
    assert_error(response, 401, "TOKEN_EXPIRED")
    assert valid.status_code == 200


async def test_login_through_the_gateway_gives_a_token_that_the_gateway_accepts(
    gateway: RunningGateway, core_server: CoreServer
) -> None:
    async with gateway.client() as client:
        login = await client.post(
            "/core/api/v1/auth/login",
            json={"email": core_server.email, "password": core_server.password},
        )
        assert login.status_code == 200, login.text
        token = login.json()["data"]["access_token"]
        me = await client.get("/core/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["data"]["email"] == core_server.email
    assert me.json()["data"]["role"] == "owner"


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
async def test_an_api_key_is_exchanged_and_services_receive_a_jwt_not_the_key(
    gateway: RunningGateway, core_server: CoreServer, style: str
) -> None:
    _, key = core_server.create_key(role="member")
    headers = {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}
    async with gateway.client() as client:
        me = await client.get("/core/api/v1/auth/me", headers=headers)
        echoed = await client.get("/echo/api/v1/echo", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["data"]["role"] == "member"
    seen = echoed.json()["data"]["headers"]
    assert seen["authorization"].startswith("Bearer eyJ")
    assert key not in seen["authorization"]
    assert "x-api-key" not in seen
    assert gateway.app.running is not None
    assert gateway.app.running.authenticator.is_cached(key)


async def test_concurrent_first_calls_with_one_key_share_one_exchange(
    gateway: RunningGateway, core_server: CoreServer
) -> None:
    _, key = core_server.create_key()
    async with gateway.client() as client:
        responses = await asyncio.gather(
            *(client.get("/echo/api/v1/echo", headers={"X-API-Key": key}) for _ in range(8))
        )
    tokens = {r.json()["data"]["headers"]["authorization"] for r in responses}
    assert len(tokens) == 1


async def test_a_revoked_api_key_is_401(gateway: RunningGateway, core_server: CoreServer) -> None:
    key_id, key = core_server.create_key()
    core_server.revoke_key(key_id)
    async with gateway.client() as client:
        response = await client.get("/core/api/v1/auth/me", headers={"X-API-Key": key})
    assert_error(response, 401)


async def test_a_revoked_key_stops_working_once_its_cached_exchange_lapses(
    upstreams: list[Upstream], core_server: CoreServer
) -> None:
    key_id, key = core_server.create_key()
    async with (
        run_gateway(upstreams, api_key_cache_seconds=0.3) as gateway,
        gateway.client() as client,
    ):
        before = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
        core_server.revoke_key(key_id)
        await asyncio.sleep(0.5)
        after = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
    assert before.status_code == 200
    assert_error(after, 401)


async def test_an_unknown_api_key_is_401(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        response = await client.get(
            "/echo/api/v1/echo", headers={"Authorization": "Bearer iwk_nonsense"}
        )
    assert_error(response, 401)


@pytest.mark.parametrize(
    "path",
    [
        "/core/health",
        "/core/health/ready",
        "/core/.well-known/jwks.json",
        "/core/openapi.json",
        "/core/docs",
        "/core/redoc",
        "/echo/health/ready",
    ],
)
async def test_public_routes_pass_without_credentials(gateway: RunningGateway, path: str) -> None:
    async with gateway.client() as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text


async def test_public_core_endpoints_are_answered_by_core_not_refused_by_the_gateway(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        login = await client.post(
            "/core/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 12}
        )
        refresh = await client.post(
            "/core/api/v1/auth/token/refresh", json={"refresh_token": "iwr_nope"}
        )
        exchange = await client.post("/core/api/v1/auth/token", json={"api_key": "iwk_nope"})
    # Core's own answers (wrong credentials), not the gateway's "authentication required".
    for response in (login, refresh, exchange):
        assert response.status_code in (400, 401), response.text
        assert "Authentication required" not in response.text


async def test_a_viewer_key_gets_cores_403_through_the_gateway(
    gateway: RunningGateway, core_server: CoreServer
) -> None:
    _, key = core_server.create_key(role="viewer")
    async with gateway.client() as client:
        response = await client.post(
            "/core/api/v1/teams", json={"name": "not-allowed"}, headers={"X-API-Key": key}
        )
    assert_error(response, 403, "FORBIDDEN")


async def test_a_member_creates_a_team_through_the_gateway(
    gateway: RunningGateway, core_server: CoreServer
) -> None:
    _, key = core_server.create_key(role="admin")
    async with gateway.client() as client:
        response = await client.post(
            "/core/api/v1/teams", json={"name": "via-gateway"}, headers={"X-API-Key": key}
        )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["name"] == "via-gateway"
