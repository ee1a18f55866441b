"""Rate limits (memory and shared Redis), timeouts, retries and the circuit breaker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from gateway_support import (
    CoreServer,
    clean_env,
    free_port,
    run_gateway,
    serve_command,
    serving,
    stop,
    wait_ready,
)
from upstream_app import create_app as create_upstream

from inwire.gateway.routes import Upstream
from inwire.kit.testing.plugin import assert_error

REDIS_URL = os.environ.get("INWIRE_TEST_REDIS_URL")


@pytest.fixture
def key(core_server: CoreServer) -> str:
    return core_server.create_key()[1]


async def test_anonymous_calls_are_limited_per_client_address_with_429_and_headers(
    upstreams: list[Upstream],
) -> None:
    async with (
        run_gateway(upstreams, anonymous_rate_limit={"rate": 0.1, "burst": 2}) as gateway,
        gateway.client() as client,
    ):
        first = await client.get("/core/health")
        second = await client.get("/core/health")
        third = await client.get("/core/health")
    assert first.headers["ratelimit-limit"] == "2"
    assert first.headers["ratelimit-remaining"] == "1"
    assert second.headers["ratelimit-remaining"] == "0"
    assert_error(third, 429, "RATE_LIMITED")
    assert int(third.headers["retry-after"]) >= 9
    assert third.headers["ratelimit-remaining"] == "0"
    assert third.json()["error"]["details"][0]["group"] == "anonymous"


async def test_each_principal_has_its_own_budget(
    upstreams: list[Upstream], core_server: CoreServer
) -> None:
    _, alice = core_server.create_key(name="alice")
    _, bob = core_server.create_key(role="viewer", name="bob")
    async with (
        run_gateway(upstreams, rate_limit={"rate": 0.1, "burst": 1}) as gateway,
        gateway.client() as client,
    ):
        alice_1 = await client.get("/echo/api/v1/echo", headers={"X-API-Key": alice})
        alice_2 = await client.get("/echo/api/v1/echo", headers={"X-API-Key": alice})
        bob_1 = await client.get("/echo/api/v1/echo", headers={"X-API-Key": bob})
    # Both keys belong to the admin user: one principal, one budget, whatever the key.
    assert alice_1.status_code == 200
    assert_error(alice_2, 429)
    assert_error(bob_1, 429)


async def test_a_route_group_limit_is_a_separate_budget(
    upstreams: list[Upstream], key: str
) -> None:
    async with (
        run_gateway(
            upstreams,
            rate_limit={"rate": 100, "burst": 100},
            route_groups={"uploads": ["/echo/api/v1/upload"]},
            group_limits={"uploads": {"rate": 0.1, "burst": 1}},
        ) as gateway,
        gateway.client() as client,
    ):
        up_1 = await client.post("/echo/api/v1/upload", content=b"a", headers={"X-API-Key": key})
        up_2 = await client.post("/echo/api/v1/upload", content=b"b", headers={"X-API-Key": key})
        other = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
    assert up_1.status_code == 200
    assert_error(up_2, 429)
    assert up_2.json()["error"]["details"][0]["group"] == "uploads"
    assert other.status_code == 200
    assert other.headers["ratelimit-limit"] == "100"


async def test_an_organization_limit_replaces_the_default_for_its_principals(
    upstreams: list[Upstream], core_server: CoreServer, key: str
) -> None:
    async with (
        run_gateway(
            upstreams,
            rate_limit={"rate": 100, "burst": 100},
            organization_limits={core_server.organization_id: {"rate": 0.1, "burst": 1}},
        ) as gateway,
        gateway.client() as client,
    ):
        first = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
        second = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
    assert first.headers["ratelimit-limit"] == "1"
    assert_error(second, 429)


@pytest.mark.skipif(not REDIS_URL, reason="needs INWIRE_TEST_REDIS_URL")
def test_two_gateway_processes_share_one_budget_on_redis(
    core_server: CoreServer, tmp_path: Path
) -> None:
    assert REDIS_URL is not None
    env = clean_env(
        INWIRE_GATEWAY_UPSTREAMS=f'{{"core": "{core_server.url}"}}',
        INWIRE_CACHE_URL=REDIS_URL,
        INWIRE_GATEWAY_RATE_LIMIT_PREFIX=f"inwire:test:{uuid.uuid4().hex}:",
        INWIRE_GATEWAY_ANONYMOUS_RATE_LIMIT='{"rate": 0.01, "burst": 6}',
        INWIRE_GATEWAY_LOG_LEVEL="WARNING",
    )
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for n in range(2):
            port = free_port()
            log = tmp_path / f"gateway-{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    serve_command(
                        "inwire.gateway.app:create_app",
                        "inwire.gateway.settings:GatewaySettings",
                        port,
                        "gateway",
                    ),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            wait_ready(f"{urls[-1]}/health/live", process, log)
        statuses = []
        with httpx.Client(trust_env=False, timeout=10) as client:
            for n in range(10):
                statuses.append(client.get(f"{urls[n % 2]}/core/health").status_code)
    finally:
        for process in processes:
            stop(process)
    # Six in all, not six per process.
    assert statuses == [200] * 6 + [429] * 4


async def test_a_slow_service_is_504(upstreams: list[Upstream], key: str) -> None:
    async with (
        run_gateway(upstreams, upstream_timeout_seconds=0.3) as gateway,
        gateway.client() as client,
    ):
        slow = await client.get("/echo/api/v1/slow?seconds=2", headers={"X-API-Key": key})
        quick = await client.get("/echo/api/v1/slow?seconds=0.01", headers={"X-API-Key": key})
    assert_error(slow, 504, "UPSTREAM_TIMEOUT")
    assert "echo" in slow.json()["error"]["message"]
    assert quick.status_code == 200


async def test_the_circuit_opens_after_repeated_failures_and_names_the_service(
    core_server: CoreServer, unused_port: int, key: str
) -> None:
    upstreams = [
        Upstream("core", "/core", core_server.url),
        Upstream("synthex", "/synthex", f"http://127.0.0.1:{unused_port}"),
    ]
    async with (
        run_gateway(upstreams, breaker_failures=2, breaker_open_seconds=30, retries=0) as gateway,
        gateway.client() as client,
    ):
        calls = [
            await client.get("/synthex/api/v1/datasets", headers={"X-API-Key": key})
            for _ in range(3)
        ]
        core = await client.get("/core/api/v1/auth/me", headers={"X-API-Key": key})
        metrics = (await client.get("/metrics")).text
    for response in calls:
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert "'synthex'" in response.json()["error"]["message"]
        assert response.json()["error"]["details"] == [{"service": "synthex"}]
    assert "unreachable" in calls[0].json()["error"]["message"]
    assert "circuit open" in calls[2].json()["error"]["message"]
    assert int(calls[2].headers["retry-after"]) > 20
    assert core.status_code == 200  # one upstream's circuit does not touch another
    assert 'inwire_gateway_circuit_state{upstream="synthex"} 2.0' in metrics
    assert (
        'inwire_gateway_upstream_failures_total{kind="connect",upstream="synthex"} 2.0' in metrics
    )


async def test_a_half_open_circuit_closes_again_when_the_service_is_back(
    core_server: CoreServer, key: str
) -> None:
    port = free_port()
    upstreams = [
        Upstream("core", "/core", core_server.url),
        Upstream("echo", "/echo", f"http://127.0.0.1:{port}"),
    ]
    async with (
        run_gateway(upstreams, breaker_failures=1, breaker_open_seconds=0.3, retries=0) as gateway,
        gateway.client() as client,
    ):
        down = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
        async with serving(create_upstream(), port):
            still_open = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
            await asyncio.sleep(0.4)
            back = await client.get("/echo/api/v1/echo", headers={"X-API-Key": key})
    assert_error(down, 503)
    assert_error(still_open, 503)
    assert "circuit open" in still_open.json()["error"]["message"]
    assert back.status_code == 200


class FlakyUpstream:
    """A raw HTTP server that drops the first ``drops`` connections without answering."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            writer.close()
            return
        if self.connections <= self.drops:
            writer.close()
            return
        self.requests.append(head)
        body = b'{"data":{"ok":true}}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyUpstream, str]]:
    upstream = FlakyUpstream(drops=2)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield upstream, f"http://127.0.0.1:{port}"


async def test_an_idempotent_request_is_retried_after_a_dropped_connection(
    core_server: CoreServer, flaky: tuple[FlakyUpstream, str], key: str
) -> None:
    upstream, url = flaky
    upstreams = [Upstream("core", "/core", core_server.url), Upstream("flaky", "/flaky", url)]
    async with run_gateway(upstreams, retries=2) as gateway, gateway.client() as client:
        response = await client.get("/flaky/api/v1/x", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    assert upstream.connections == 3


async def test_a_post_is_never_retried(
    core_server: CoreServer, flaky: tuple[FlakyUpstream, str], key: str
) -> None:
    upstream, url = flaky
    upstreams = [Upstream("core", "/core", core_server.url), Upstream("flaky", "/flaky", url)]
    async with run_gateway(upstreams, retries=2) as gateway, gateway.client() as client:
        response = await client.post("/flaky/api/v1/x", json={}, headers={"X-API-Key": key})
    assert_error(response, 502, "BAD_GATEWAY")
    assert upstream.connections == 1


async def test_the_gateway_keeps_answering_when_the_rate_limiter_is_down(
    upstreams: list[Upstream], unused_port: int
) -> None:
    async with (
        run_gateway(upstreams, cache_url=f"redis://127.0.0.1:{unused_port}/0") as gateway,
        gateway.client() as client,
    ):
        response = await client.get("/core/health")
    assert response.status_code == 200
    assert "ratelimit-limit" not in response.headers
