"""Helpers of the gateway tests: servers on real ports, Core in a subprocess, settings.

A module with a name of its own (not ``conftest``), so test modules import it whatever
other ``conftest.py`` files pytest has loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inwire.gateway.app import Gateway, create_app
from inwire.gateway.routes import Upstream
from inwire.gateway.settings import GatewaySettings
from inwire.kit.testing.serving import serving

HERE = Path(__file__).parent


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without inherited ``INWIRE_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    env.update(extra)
    return env


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Poll ``url`` until 200; fail with the child's log if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited {process.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def serve_command(factory: str, settings: str, port: int, name: str) -> list[str]:
    """Serve an app the way ``inwire up`` serves each child."""
    return [
        sys.executable,
        "-m",
        "inwire.allinone.serve",
        "--name",
        name,
        "--factory",
        factory,
        "--settings",
        settings,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


@dataclass
class CoreServer:
    """Core on a real port, with its first-start admin."""

    url: str
    home: Path
    email: str
    password: str
    organization_id: str
    _token: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=30)

    def login(self) -> str:
        """A fresh access token of the admin (owner)."""
        with self.client() as client:
            response = client.post(
                "/api/v1/auth/login", json={"email": self.email, "password": self.password}
            )
        response.raise_for_status()
        token: str = response.json()["data"]["access_token"]
        return token

    @property
    def token(self) -> str:
        if not self._token:
            self._token = self.login()
        return self._token

    def create_key(self, role: str = "member", name: str = "gateway-test") -> tuple[str, str]:
        """A new API key ``(id, secret)``."""
        with self.client() as client:
            response = client.post(
                "/api/v1/api-keys",
                json={"name": name, "role": role},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        response.raise_for_status()
        data = response.json()["data"]
        return data["id"], data["key"]

    def revoke_key(self, key_id: str) -> None:
        with self.client() as client:
            response = client.delete(
                f"/api/v1/api-keys/{key_id}", headers={"Authorization": f"Bearer {self.token}"}
            )
        response.raise_for_status()


@contextlib.contextmanager
def start_core(home: Path) -> Iterator[CoreServer]:
    """Core served by ``inwire.allinone.serve`` on a free port, with its first-start admin."""
    port = free_port()
    log = home / "core.log"
    env = clean_env(
        INWIRE_HOME=str(home),
        INWIRE_CORE_BOOTSTRAP="true",
        INWIRE_CORE_ARGON2_TIME_COST="1",
        INWIRE_CORE_ARGON2_MEMORY_KIB="1024",
        INWIRE_CORE_LOGIN_ATTEMPTS_PER_IP="10000",
        INWIRE_CORE_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            serve_command(
                "inwire.services.core.app:create_app",
                "inwire.services.core.settings:CoreSettings",
                port,
                "core",
            ),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/health/ready", process, log)
        credentials = json.loads((home / "credentials").read_text())
        yield CoreServer(
            url=url,
            home=home,
            email=credentials["email"],
            password=credentials["password"],
            organization_id=credentials["organization_id"],
        )
    finally:
        stop(process)


@dataclass
class RunningGateway:
    """A gateway serving on a real port."""

    url: str
    app: Gateway

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=30, **kw)


def gateway_settings(**overrides: Any) -> GatewaySettings:
    """Test settings: plain logs, generous limits unless a test narrows them."""
    values: dict[str, Any] = {
        "log_json": False,
        "log_level": "WARNING",
        "access_log": False,
        "rate_limit": {"rate": 1000, "burst": 1000},
        "anonymous_rate_limit": {"rate": 1000, "burst": 1000},
    }
    values.update(overrides)
    return GatewaySettings(**values)


@asynccontextmanager
async def run_gateway(upstreams: list[Upstream], **overrides: Any) -> AsyncIterator[RunningGateway]:
    """A gateway in front of ``upstreams`` with settings ``overrides``."""
    app = create_app(gateway_settings(**overrides), upstreams=upstreams)
    async with serving(app) as url:
        yield RunningGateway(url, app)
