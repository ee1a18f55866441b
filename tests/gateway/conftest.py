"""Gateway fixtures: a real Core in a subprocess, real upstreams and gateways on real ports.

Core runs once per session (``python -m inwire.allinone.serve``, the same path
``inwire up`` uses) with its first-start admin; each test starts the gateways and test
upstreams it needs in its own event loop, each on a port of its own. Helpers live in
``gateway_support``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from gateway_support import CoreServer, RunningGateway, free_port, run_gateway, serving, start_core
from upstream_app import create_app as create_upstream

from inwire.gateway.routes import Upstream


@pytest.fixture(scope="session")
def core_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoreServer]:
    """Core on a free port for the whole session."""
    with start_core(tmp_path_factory.mktemp("core-home")) as core:
        yield core


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """The test upstream (``upstream_app``) on a real port."""
    async with serving(create_upstream()) as url:
        yield url


@pytest.fixture
def upstreams(core_server: CoreServer, echo_url: str) -> list[Upstream]:
    """Core at ``/core`` and the test upstream at ``/echo``."""
    return [Upstream("core", "/core", core_server.url), Upstream("echo", "/echo", echo_url)]


@pytest.fixture
async def gateway(upstreams: list[Upstream]) -> AsyncIterator[RunningGateway]:
    """A gateway with default behaviour (generous rate limits) in front of Core and echo."""
    async with run_gateway(upstreams) as running:
        yield running


@pytest.fixture
def unused_port() -> int:
    """A port with nothing listening (connections are refused)."""
    return free_port()
