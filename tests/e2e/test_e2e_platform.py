"""``inwire up`` for real: processes, ports, the gateway in front, a crash and its restart.

A newcomer's first session, through the gateway only: sign in with the printed
credentials, create a team and an API key, call Core with the key; then Core is killed and
the supervisor brings it back.
"""

from __future__ import annotations

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

import httpx
import pytest

from inwire.services.registry import SERVICES

pytestmark = pytest.mark.slow


def free_port() -> int:
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

    def pid_of(self, service: str) -> int:
        """The PID the status table printed for ``service``."""
        for line in self.output.read_text().splitlines():
            cells = [c.strip() for c in line.split("│")]
            if len(cells) > 4 and cells[1] == service:
                return int(cells[4])
        raise AssertionError(f"no {service} row in:\n{self.output.read_text()}")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    env.update({f"{spec.env_prefix}PORT": str(free_port()) for spec in SERVICES})
    gateway_port = free_port()
    env.update(
        INWIRE_HOME=str(home),
        INWIRE_GATEWAY_PORT=str(gateway_port),
        COLUMNS="250",
        PYTHONUNBUFFERED="1",
    )
    output = tmp_path / "up.out"
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

        until(ready, 120, "the gateway was not ready", output)
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


def test_a_newcomer_signs_in_makes_a_team_and_a_key_and_a_crashed_core_comes_back(
    platform: Platform,
) -> None:
    table = platform.output.read_text()
    assert "gateway" in table
    assert platform.gateway in table
    credentials = json.loads((platform.home / "credentials").read_text())

    with httpx.Client(base_url=platform.gateway, trust_env=False, timeout=30) as client:
        assert client.get("/core/api/v1/auth/me").status_code == 401
        assert client.get("/nowhere/api/v1/x").status_code == 404
        login = client.post(
            "/core/api/v1/auth/login",
            json={"email": credentials["email"], "password": credentials["password"]},
        )
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}

        team = client.post("/core/api/v1/teams", json={"name": "forecasting"}, headers=bearer)
        assert team.status_code == 201, team.text
        created = client.post(
            "/core/api/v1/api-keys",
            json={"name": "nightly-job", "role": "member", "expires_in_days": 90},
            headers=bearer,
        )
        assert created.status_code == 201, created.text
        key = created.json()["data"]["key"]

        me = client.get("/core/api/v1/auth/me", headers={"X-API-Key": key})
        assert me.status_code == 200, me.text
        assert me.json()["data"]["role"] == "member"
        teams = client.get("/core/api/v1/teams", headers={"Authorization": f"Bearer {key}"})
        assert [t["name"] for t in teams.json()["data"]] == ["forecasting"]

        core_pid = platform.pid_of("core")
        os.kill(core_pid, signal.SIGKILL)

        def core_answers_again() -> bool:
            try:
                response = client.get("/core/api/v1/auth/me", headers={"X-API-Key": key})
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        until(core_answers_again, 90, "Core did not come back", platform.output)

    said = platform.output.read_text()
    assert "core exited" in said
    assert "core is ready again" in said
