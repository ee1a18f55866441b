"""Proxying: bodies streamed both ways, SSE, WebSocket, headers, CORS, limits and routes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from gateway_support import CoreServer, RunningGateway, run_gateway, serving
from upstream_app import CHUNK, LOCKSTEP_TIMEOUT, Lockstep
from upstream_app import create_app as create_upstream

from inwire.gateway.routes import Upstream
from inwire.kit.testing.plugin import assert_error

MiB = 1024 * 1024


@pytest.fixture
def key(core_server: CoreServer) -> str:
    """An API key of a member."""
    return core_server.create_key()[1]


@pytest.fixture
async def lockstep_gateway(
    core_server: CoreServer,
) -> AsyncIterator[tuple[RunningGateway, Lockstep]]:
    """A gateway in front of an upstream that waits for the other side's first chunk."""
    lockstep = Lockstep()
    async with serving(create_upstream(lockstep)) as url:
        upstreams = [Upstream("core", "/core", core_server.url), Upstream("echo", "/echo", url)]
        async with run_gateway(upstreams) as gateway:
            yield gateway, lockstep


async def test_an_upload_streams_to_the_service_before_the_client_has_sent_it_all(
    lockstep_gateway: tuple[RunningGateway, Lockstep], key: str
) -> None:
    gateway, lockstep = lockstep_gateway
    size = 64 * MiB
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        block = b"x" * CHUNK
        sent = 0
        while sent < size:
            digest.update(block)
            yield block
            sent += len(block)
            if sent == CHUNK:
                # A buffering gateway would never pass this chunk on before the end.
                await asyncio.wait_for(lockstep.upstream_got_first.wait(), LOCKSTEP_TIMEOUT)

    async with gateway.client() as client:
        response = await client.post(
            "/echo/api/v1/upload", content=body(), headers={"X-API-Key": key}
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"bytes": size, "sha256": digest.hexdigest()}


@pytest.mark.parametrize("with_length", [False, True], ids=["chunked", "content-length"])
async def test_a_download_streams_to_the_client_before_the_service_has_sent_it_all(
    lockstep_gateway: tuple[RunningGateway, Lockstep], key: str, with_length: bool
) -> None:
    gateway, lockstep = lockstep_gateway
    size = 64 * MiB
    query = f"size={size}" + ("&length=1" if with_length else "")
    received = 0
    async with (
        gateway.client() as client,
        client.stream("GET", f"/echo/api/v1/download?{query}", headers={"X-API-Key": key}) as r,
    ):
        assert r.status_code == 200
        assert ("content-length" in r.headers) is with_length
        async for chunk in r.aiter_raw():
            received += len(chunk)
            lockstep.client_got_first.set()
    assert received == size


async def test_server_sent_events_arrive_one_by_one(
    lockstep_gateway: tuple[RunningGateway, Lockstep], key: str
) -> None:
    gateway, lockstep = lockstep_gateway
    seen: list[str] = []
    async with (
        gateway.client() as client,
        client.stream("GET", "/echo/api/v1/events?count=3", headers={"X-API-Key": key}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                seen.append(line)
                # The next event is only produced after this acknowledgement.
                lockstep.client_acks.put_nowait(len(seen))
    assert seen == ["data: 0", "data: 1", "data: 2"]


async def test_a_websocket_passes_through_both_ways_with_the_exchanged_token(
    gateway: RunningGateway, key: str
) -> None:
    url = gateway.url.replace("http", "ws") + "/echo/api/v1/ws"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"X-API-Key": key}, protocols=("inwire.v1",)) as ws,
    ):
        assert ws.protocol == "inwire.v1"
        hello = await ws.receive_json()
        assert hello["authorization"].startswith("Bearer eyJ")
        await ws.send_str("ping")
        assert await ws.receive_str() == "echo:ping"
        await ws.send_bytes(b"\x01\x02\x03")
        assert await ws.receive_bytes() == b"\x03\x02\x01"
        await ws.send_str("close")
        closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4000


async def test_a_websocket_without_credentials_is_refused_with_401(
    gateway: RunningGateway,
) -> None:
    url = gateway.url.replace("http", "ws") + "/echo/api/v1/ws"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
    assert refused.value.status == 401


async def test_request_id_and_trace_context_reach_the_service_and_come_back(
    gateway: RunningGateway, key: str
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with gateway.client() as client:
        given = await client.get(
            "/echo/api/v1/echo",
            headers={"X-API-Key": key, "X-Request-ID": "req-mine-1", "traceparent": traceparent},
        )
        generated = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
    seen = given.json()["data"]["headers"]
    assert given.headers["x-request-id"] == "req-mine-1"
    assert seen["x-request-id"] == "req-mine-1"
    version, upstream_trace, parent_span, _ = seen["traceparent"].split("-")
    assert (version, upstream_trace) == ("00", trace_id)
    assert parent_span != "00f067aa0ba902b7"  # the gateway's own span is the parent now
    rid = generated.headers["x-request-id"]
    assert rid.startswith("req_")
    assert generated.json()["data"]["headers"]["x-request-id"] == rid
    assert len(generated.json()["data"]["headers"]["traceparent"].split("-")[1]) == 32


async def test_hop_by_hop_headers_stop_at_the_gateway_and_forwarding_headers_are_set(
    gateway: RunningGateway, key: str
) -> None:
    async with gateway.client() as client:
        response = await client.get(
            "/echo/api/v1/echo?a=1&b=%2F",
            headers={
                "X-API-Key": key,
                "Connection": "keep-alive, x-client-private",
                "X-Client-Private": "secret",
                "X-Custom": "kept",
            },
        )
    data = response.json()["data"]
    seen = data["headers"]
    assert "x-client-private" not in seen
    assert seen["x-custom"] == "kept"
    assert seen["x-forwarded-prefix"] == "/echo"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert data["path"] == "/api/v1/echo"
    assert data["query"] == "a=1&b=%2F"
    # The upstream's own hop-by-hop field and the one it listed in Connection are dropped.
    assert "x-upstream-private" not in response.headers
    assert response.headers.get("connection", "keep-alive") == "keep-alive"
    assert response.headers["ratelimit-limit"] == "1000"


async def test_the_platforms_internal_secret_header_never_passes_the_gateway(
    gateway: RunningGateway, key: str
) -> None:
    async with gateway.client() as client:
        for name in ("X-Inwire-Internal", "x-inwire-internal", "X-INWIRE-INTERNAL"):
            response = await client.get(
                "/echo/api/v1/echo", headers={"X-API-Key": key, name: "guessed-or-stolen"}
            )
            assert response.status_code == 200, response.text
            seen = response.json()["data"]["headers"]
            assert "x-inwire-internal" not in seen
            assert "guessed-or-stolen" not in seen.values()


async def test_status_codes_and_bodies_of_the_service_pass_unchanged(
    gateway: RunningGateway, key: str
) -> None:
    async with gateway.client() as client:
        for code in (201, 202, 400, 409, 418, 500, 503):
            response = await client.get(f"/echo/api/v1/status/{code}", headers={"X-API-Key": key})
            assert response.status_code == code
            assert response.json() == {"data": {"status": code}}


async def test_an_unknown_prefix_is_404_and_an_unknown_service_route_is_the_services_404(
    gateway: RunningGateway, key: str
) -> None:
    async with gateway.client() as client:
        unknown_prefix = await client.get("/nowhere/api/v1/x", headers={"X-API-Key": key})
        unknown_route = await client.get("/core/api/v1/nothing-here", headers={"X-API-Key": key})
        dotted = await client.get("/core/api/v1/auth/sso/../../users")
    assert_error(unknown_prefix, 404, "NOT_FOUND")
    assert "/core" in unknown_prefix.json()["error"]["details"][0]["message"]
    assert_error(unknown_route, 404, "NOT_FOUND")
    # httpx normalises dot segments itself, so this reached the gateway as /core/api/v1/users.
    assert dotted.status_code == 401


async def test_dot_segments_are_refused_before_any_routing(gateway: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection(
        *httpx.URL(gateway.url).netloc.decode().split(":")
    )
    writer.write(
        b"GET /core/api/v1/auth/sso/../../users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert b'"INVALID_PATH"' in answer


async def test_a_declared_body_over_the_limit_is_413(upstreams: list[Upstream], key: str) -> None:
    async with run_gateway(upstreams, max_body_bytes=1000) as gateway, gateway.client() as client:
        response = await client.post(
            "/echo/api/v1/upload", content=b"x" * 1001, headers={"X-API-Key": key}
        )
        fits = await client.post(
            "/echo/api/v1/upload", content=b"x" * 1000, headers={"X-API-Key": key}
        )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert fits.status_code == 200


async def test_a_streamed_body_that_grows_over_the_limit_is_413(
    upstreams: list[Upstream], key: str
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    async with (
        run_gateway(upstreams, max_body_bytes=10_000) as gateway,
        gateway.client() as client,
    ):
        response = await client.post(
            "/echo/api/v1/upload", content=body(), headers={"X-API-Key": key}
        )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_cors_preflight_is_answered_for_allowed_origins_only(
    upstreams: list[Upstream], key: str
) -> None:
    origin = "https://app.example.com"
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with (
        run_gateway(upstreams, cors_origins=[origin]) as gateway,
        gateway.client() as client,
    ):
        allowed = await client.options("/core/api/v1/teams", headers=preflight)
        refused = await client.options(
            "/core/api/v1/teams", headers={**preflight, "Origin": "https://evil.example"}
        )
        simple = await client.get("/echo/api/v1/echo", headers={"Origin": origin, "X-API-Key": key})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert_error(refused, 400, "CORS_REJECTED")
    assert simple.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_health_live_and_aggregated_readiness(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        health = await client.get("/health")
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        wrong_method = await client.post("/health")
    assert health.json()["status"] == "ok"
    assert live.json() == {"status": "ok", "service": "gateway"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"core": "ready", "echo": "ready"}
    assert_error(wrong_method, 405, "METHOD_NOT_ALLOWED")


async def test_readiness_names_the_services_that_are_not_ready(
    core_server: CoreServer, unused_port: int
) -> None:
    upstreams = [
        Upstream("core", "/core", core_server.url),
        Upstream("dead", "/dead", f"http://127.0.0.1:{unused_port}"),
    ]
    async with run_gateway(upstreams) as gateway, gateway.client() as client:
        ready = await client.get("/health/ready")
    assert_error(ready, 503, "NOT_READY")
    assert ready.json()["error"]["message"] == "Not ready: dead"
    assert [d["field"] for d in ready.json()["error"]["details"]] == ["dead"]


async def test_metrics_count_requests_per_upstream(gateway: RunningGateway, key: str) -> None:
    async with gateway.client() as client:
        await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        'inwire_http_requests_total{method="GET",route="echo",service="gateway",status="200"}'
        in text
    )
    assert 'inwire_gateway_circuit_state{upstream="core"} 0.0' in text


async def test_the_docs_page_links_every_services_swagger_redoc_and_schema(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        page = await client.get("/docs")
        swagger = await client.get("/core/docs")
        schema = await client.get("/core/openapi.json")
    assert page.headers["content-type"].startswith("text/html")
    for prefix in ("/core", "/echo"):
        for target in ("docs", "redoc", "openapi.json"):
            assert f'href="{prefix}/{target}"' in page.text
    assert "/core/openapi.json" in swagger.text
    assert schema.json()["servers"] == [{"url": "/core", "description": "Inwire gateway"}]
    assert "/api/v1/auth/login" in schema.json()["paths"]
