"""Helpers of the end-to-end tests: ``inwire up`` in a subprocess on free ports.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inwire.services.registry import SERVICES


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    """Poll ``condition`` until true; fail naming ``what`` with the output so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s; inwire up said:\n{log.read_text()[-4000:]}")


@dataclass
class Platform:
    """A running ``inwire up``."""

    gateway: str
    home: Path
    output: Path
    process: subprocess.Popen[bytes]

    def _row(self, service: str) -> list[str]:
        for line in self.output.read_text().splitlines():
            cells = [c.strip() for c in line.split("│")]
            if len(cells) > 4 and cells[1] == service:
                return cells
        raise AssertionError(f"no {service} row in:\n{self.output.read_text()}")

    def pid_of(self, service: str) -> int:
        """The PID the status table printed for ``service``."""
        return int(self._row(service)[4])

    def url_of(self, service: str) -> str:
        """The service's own URL (not the gateway's), from the status table."""
        return self._row(service)[2]

    def credentials(self) -> dict[str, Any]:
        """The first admin's e-mail, password and organization, as Core wrote them."""
        data: dict[str, Any] = json.loads((self.home / "credentials").read_text())
        return data

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client of the gateway (no proxy from the environment)."""
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.gateway, trust_env=False, **kwargs)

    def login(self, client: httpx.Client) -> dict[str, str]:
        """Sign the first admin in through the gateway; bearer headers."""
        credentials = self.credentials()
        response = client.post(
            "/core/api/v1/auth/login",
            json={"email": credentials["email"], "password": credentials["password"]},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


@contextlib.contextmanager
def running_platform(workdir: Path, **settings: str) -> Iterator[Platform]:
    """``inwire up`` with every service and the gateway on free ports, a fresh
    ``INWIRE_HOME`` under ``workdir`` and ``settings`` as extra environment variables
    (``INWIRE_GATEWAY_MAX_BODY_BYTES="1048576"``); stopped with SIGTERM, which must end
    it cleanly (exit status 0)."""
    home = workdir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    env.update({f"{spec.env_prefix}PORT": str(free_port()) for spec in SERVICES})
    gateway_port = free_port()
    env.update(
        INWIRE_HOME=str(home),
        INWIRE_GATEWAY_PORT=str(gateway_port),
        COLUMNS="250",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    output = workdir / "up.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inwire.cli", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gateway = f"http://127.0.0.1:{gateway_port}"
    running = Platform(gateway, home, output, process)
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{gateway}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        until(ready, 180, "the gateway was not ready", output)
        until(lambda: "Press Ctrl-C" in output.read_text(), 30, "no status table", output)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    assert process.returncode == 0, output.read_text()[-4000:]
