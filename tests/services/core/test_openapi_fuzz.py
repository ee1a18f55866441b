"""Schemathesis against Core's own OpenAPI: no 5xx, and nothing outside the envelope.

Core runs for real (uvicorn on a free port, SQLite, first-start admin); every documented
operation gets generated requests, authenticated as the owner.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from inwire.services.core.app import create_app
from inwire.services.core.settings import CoreSettings

pytestmark = pytest.mark.slow

# Calls that would end the fuzzer's own session are left out; they have their own tests.
SKIP = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/password/change")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def core_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Core on a real port with a bootstrapped owner; yields its URL and an owner token."""
    home = tmp_path_factory.mktemp("core-home")
    port = _free_port()
    core = CoreSettings(
        home=home,
        bootstrap=True,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        log_level="ERROR",
        login_attempts_per_ip=100000,
        login_attempts_per_account=100000,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(core), host="127.0.0.1", port=port, log_level="error", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    creds = json.loads(Path(home, "credentials").read_text())
    login = httpx.post(
        f"{url}/api/v1/auth/login", json={"email": creds["email"], "password": creds["password"]}
    )
    token = login.json()["data"]["access_token"]
    yield {"url": url, "token": token}
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def core_schema(core_server: dict[str, Any]) -> Any:
    """Core's OpenAPI document, fetched from the running server."""
    return schemathesis.openapi.from_url(f"{core_server['url']}/openapi.json")


def _check_envelope(case: Any, response: Any) -> None:
    path = case.operation.path
    if not path.startswith("/api/v1") or response.status_code in (204, 302, 303, 307):
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        pytest.fail(f"{case.method} {path} -> {response.status_code}: not JSON")
    assert isinstance(body, dict), body
    if response.status_code >= 400:
        assert set(body) == {"error"}, body
        assert {"code", "message", "details"} <= set(body["error"]), body
    else:
        assert "data" in body, body
        assert set(body) <= {"data", "meta"}, body


def test_core_api_never_fails_and_always_answers_in_the_envelope(
    core_schema: Any, core_server: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {core_server['token']}"}
    tested = 0
    for result in core_schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def exercise(case: Any) -> None:
            response = case.call(base_url=core_server["url"], headers=headers, timeout=10)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            _check_envelope(case, response)

        exercise()
        tested += 1
    assert tested >= 10
