"""``inwire up`` for real: processes, ports, the gateway in front, a crash and its restart.

A newcomer's first session, through the gateway only: sign in with the printed
credentials, create a team and an API key, call Core with the key; then Core is killed and
the supervisor brings it back.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import Platform, running_platform, until

pytestmark = pytest.mark.slow


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path) as running:
        yield running


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
