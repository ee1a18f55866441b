"""200 MiB up and down through a gateway process whose memory stays flat (slow)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from gateway_support import HERE, clean_env, free_port, serve_command, stop, wait_ready

from inwire.kit.testing.plugin import TestKeys

MiB = 1024 * 1024
SIZE = 200 * MiB
#: Allowed growth of the gateway's resident memory while 200 MiB pass through it.
GROWTH_LIMIT = 48 * MiB

pytestmark = pytest.mark.slow


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def processes(tmp_path: Path, test_keys: TestKeys) -> Iterator[tuple[str, int]]:
    """The test upstream and a gateway in front of it, each its own process."""
    env = clean_env(PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    upstream_port, gateway_port = free_port(), free_port()
    started: list[subprocess.Popen[bytes]] = []
    try:
        log = tmp_path / "upstream.log"
        with log.open("wb") as out:
            upstream = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "upstream_app:app",
                    "--port",
                    str(upstream_port),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(upstream)
        wait_ready(f"http://127.0.0.1:{upstream_port}/health/ready", upstream, log)
        env.update(
            INWIRE_TEST_EXTRA_UPSTREAMS=json.dumps({"echo": f"http://127.0.0.1:{upstream_port}"}),
            INWIRE_GATEWAY_JWKS_URL=test_keys.jwks_url,
            INWIRE_GATEWAY_ACCESS_LOG="false",
            INWIRE_GATEWAY_LOG_LEVEL="WARNING",
        )
        log = tmp_path / "gateway.log"
        with log.open("wb") as out:
            gateway = subprocess.Popen(
                serve_command(
                    "gateway_factory:create_app",
                    "inwire.gateway.settings:GatewaySettings",
                    gateway_port,
                    "gateway",
                ),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(gateway)
        wait_ready(f"http://127.0.0.1:{gateway_port}/health/live", gateway, log)
        yield f"http://127.0.0.1:{gateway_port}", gateway.pid
    finally:
        for process in reversed(started):
            stop(process)


async def _watch(pid: int, peak: list[int], done: asyncio.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], rss(pid))
        await asyncio.sleep(0.02)


async def test_200_mib_up_and_down_keep_the_gateways_memory_flat(
    processes: tuple[str, int], test_keys: TestKeys
) -> None:
    url, pid = processes
    headers = {"Authorization": f"Bearer {test_keys.token()}"}

    async def upload_body() -> AsyncIterator[bytes]:
        block = b"u" * (256 * 1024)
        for _ in range(SIZE // len(block)):
            yield block

    async with aiohttp.ClientSession() as session:
        # Warm up: connection pools, first-request imports.
        async with session.get(f"{url}/echo/api/v1/download?size=1048576", headers=headers) as r:
            await r.read()
        baseline = rss(pid)
        peak = [baseline]
        done = asyncio.Event()
        watcher = asyncio.create_task(_watch(pid, peak, done))
        try:
            async with session.post(
                f"{url}/echo/api/v1/upload", data=upload_body(), headers=headers
            ) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["data"]["bytes"] == SIZE
            received = 0
            async with session.get(
                f"{url}/echo/api/v1/download?size={SIZE}&length=1", headers=headers
            ) as r:
                assert r.status == 200
                async for chunk in r.content.iter_any():
                    received += len(chunk)
            assert received == SIZE
        finally:
            done.set()
            await watcher
    growth = peak[0] - baseline
    assert growth < GROWTH_LIMIT, f"gateway grew {growth / MiB:.1f} MiB for 2 x 200 MiB"
