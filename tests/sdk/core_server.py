"""Running Core for SDK tests: settings, a uvicorn-in-a-thread server, and its handle.

Core starts with its first-start admin (the bootstrap writes ``$INWIRE_HOME/credentials``)
on a fresh SQLite file per test; the SDK's behaviour does not depend on the database, so
these tests do not repeat on PostgreSQL (Core's own tests do).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jwt
import uvicorn
from fastapi import FastAPI

from inwire.kit.auth.tokens import sign_token
from inwire.services.core.settings import CoreSettings

T = TypeVar("T")


def core_settings(home: Path) -> CoreSettings:
    """Core on a fresh SQLite file in ``home``, with cheap hashing and no login throttle."""
    return CoreSettings(
        home=home,
        database_url=f"sqlite+aiosqlite:///{home / 'db' / 'core.db'}",
        storage_url=f"file://{home / 'objects'}",
        events_url=f"sqlite:///{home / 'events.db'}",
        mail_url=f"file://{home / 'mail'}",
        log_json=False,
        log_level="WARNING",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        login_attempts_per_ip=10_000,
        login_attempts_per_account=10_000,
    )


@dataclass
class RunningCore:
    """A started Core: how to reach it, its admin, and a way to run code in its loop."""

    mode: str
    app: FastAPI
    url: str | None
    admin_email: str
    admin_password: str
    organization_id: str
    run: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]

    def target(self) -> dict[str, Any]:
        """Client arguments that reach this Core."""
        if self.url is None:
            return {"services": {"core": self.app}}
        return {"core_url": self.url}

    async def expired_copy(self, access_token: str) -> str:
        """``access_token`` re-signed by Core's key with an expiry two minutes ago."""
        claims = jwt.decode(access_token, options={"verify_signature": False})
        now = int(time.time())
        claims.update(iat=now - 600, nbf=now - 600, exp=now - 120)
        kid, key = await self.run(self.app.state.core.keyring.signing_key())
        return sign_token(key, kid, claims)


def read_credentials(home: Path) -> dict[str, str]:
    values: dict[str, str] = json.loads((home / "credentials").read_text())
    return values


def free_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_in_thread(app: Any) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """Serve ``app`` with uvicorn (lifespan on) on a free port, in a thread with its own loop."""
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    # The loop uvicorn itself would use (uvloop when installed): served from a plain asyncio
    # loop in a thread, every answer waits ~45 ms here.
    factory = server.config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[sock]),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", loop
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        loop.close()


@contextmanager
def served(home: Path) -> Iterator[RunningCore]:
    """Core with its data in ``home``, served by uvicorn on a free port."""
    from inwire.services.core.app import create_app

    app = create_app(core_settings(home))
    with serve_in_thread(app) as (url, loop):

        async def run(coro: Coroutine[Any, Any, Any]) -> Any:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

        creds = read_credentials(home)
        yield RunningCore(
            "http", app, url, creds["email"], creds["password"], creds["organization_id"], run
        )
