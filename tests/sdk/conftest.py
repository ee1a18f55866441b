"""Core for SDK tests: in process (ASGI) and on a real port (uvicorn in a thread).

Core starts with its first-start admin (the bootstrap writes ``$INWIRE_HOME/credentials``)
on a fresh SQLite file per test; the SDK's behaviour does not depend on the database, so
these tests do not repeat on PostgreSQL (Core's own tests do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from core_server import RunningCore, core_settings, read_credentials, served

from inwire.services.core.app import create_app


@pytest.fixture
async def inprocess_core(tmp_path: Path) -> AsyncIterator[RunningCore]:
    """Core's app, started in this test's loop, called through ASGI."""
    home = tmp_path / "home"
    app = create_app(core_settings(home))

    async def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return await coro

    async with app.router.lifespan_context(app):
        creds = read_credentials(home)
        yield RunningCore(
            "asgi", app, None, creds["email"], creds["password"], creds["organization_id"], run
        )


@pytest.fixture
def served_core(tmp_path: Path) -> Iterator[RunningCore]:
    """Core served by uvicorn on a real port."""
    with served(tmp_path / "home") as running:
        yield running


@pytest.fixture(params=["asgi", "http"])
def core(request: pytest.FixtureRequest) -> RunningCore:
    """Core in process and on a real port: every test using it runs against both."""
    name = "inprocess_core" if request.param == "asgi" else "served_core"
    running: RunningCore = request.getfixturevalue(name)
    return running
